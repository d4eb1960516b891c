//! Tensors of a loaded model, as views into the GGUF file where the kernels
//! can read the file's layout directly (I2_S codes, F16 embeddings), and as
//! owned repacks where they cannot (TQ2_0 / TQ1_0 → I2_S codes).

use crate::error::ModelError;
use crate::gguf::{Gguf, TensorInfo, TensorType};
use bitnet_kernels::format::{
    collapse_block_scales, I2sMatrix, Tq1Matrix, Tq2Matrix, WeightScale, TQ_BLOCK,
};
use bitnet_kernels::Dispatch;
use std::ops::Range;

fn tensor_error(name: &str, problem: impl Into<String>) -> ModelError {
    ModelError::Tensor {
        name: name.into(),
        problem: problem.into(),
    }
}

/// `(K, M)` of a 2-D tensor, checked against what its role needs.
fn shape2(info: &TensorInfo, k: usize, m: usize) -> Result<(), ModelError> {
    if info.dims.len() != 2 || info.dims[0] as usize != k || info.dims[1] as usize != m {
        return Err(tensor_error(
            &info.name,
            format!("shape {:?}, expected [{k}, {m}]", info.dims),
        ));
    }
    Ok(())
}

enum Codes {
    /// Byte range of I2_S codes in the file (zero-copy).
    Mapped(Range<usize>),
    /// Repacked from a TQ format at load.
    Owned(Vec<u8>),
}

enum Scale {
    Tensor(f32),
    Blocks(Vec<f32>),
}

/// A ternary projection `M × K`, ready for the multiply-add kernels.
pub(crate) struct Ternary {
    pub m: usize,
    pub k: usize,
    codes: Codes,
    scale: Scale,
}

impl Ternary {
    pub fn load(g: &Gguf, name: &str, k: usize, m: usize) -> Result<Ternary, ModelError> {
        let (info, data) = g.require_tensor(name)?;
        shape2(info, k, m)?;
        let mut t = match info.ty {
            TensorType::I2S => {
                let w = I2sMatrix::from_gguf(data, m, k)
                    .map_err(|e| tensor_error(name, e.to_string()))?;
                let WeightScale::Tensor(s) = w.scale() else {
                    unreachable!("I2_S has one scale")
                };
                let start = info.data.start;
                Ternary {
                    m,
                    k,
                    codes: Codes::Mapped(start..start + m * k / 4),
                    scale: Scale::Tensor(s),
                }
            }
            TensorType::Tq2_0 | TensorType::Tq1_0 => {
                let mut codes = vec![0u8; m * k / 4];
                let mut scales = vec![0f32; m * k / TQ_BLOCK];
                let repacked = match info.ty {
                    TensorType::Tq2_0 => Tq2Matrix::from_gguf(data, m, k)
                        .and_then(|w| w.repack_i2s(&mut codes, &mut scales)),
                    _ => Tq1Matrix::from_gguf(data, m, k)
                        .and_then(|w| w.repack_i2s(&mut codes, &mut scales)),
                };
                repacked.map_err(|e| tensor_error(name, e.to_string()))?;
                let scale = match collapse_block_scales(&scales) {
                    Some(s) => Scale::Tensor(s),
                    None => Scale::Blocks(scales),
                };
                Ternary {
                    m,
                    k,
                    codes: Codes::Owned(codes),
                    scale,
                }
            }
            other => {
                return Err(tensor_error(
                    name,
                    format!(
                        "type {} is not ternary (I2_S, TQ2_0 or TQ1_0)",
                        other.name()
                    ),
                ))
            }
        };
        if let Scale::Tensor(s) = t.scale {
            if s == 0.0 {
                return Err(tensor_error(name, "weight scale is zero"));
            }
        }
        // `bitnet` (1bitLLM) files may carry a separate per-tensor multiplier.
        let extra = name
            .strip_suffix(".weight")
            .map(|base| format!("{base}.scale"));
        if let Some((info, data)) = extra.as_deref().and_then(|n| g.tensor(n)) {
            if info.ty != TensorType::F32 || data.len() != 4 {
                return Err(tensor_error(&info.name, "expected one F32 value"));
            }
            let mult = f32::from_le_bytes(data.try_into().expect("4 bytes"));
            match &mut t.scale {
                Scale::Tensor(s) => *s *= mult,
                Scale::Blocks(v) => v.iter_mut().for_each(|s| *s *= mult),
            }
        }
        Ok(t)
    }

    /// The kernel view; `file` is the model file's bytes.
    pub fn matrix<'a>(&'a self, file: &'a [u8]) -> I2sMatrix<'a> {
        let codes = match &self.codes {
            Codes::Mapped(r) => &file[r.clone()],
            Codes::Owned(v) => v,
        };
        let scale = match &self.scale {
            Scale::Tensor(s) => WeightScale::Tensor(*s),
            Scale::Blocks(v) => WeightScale::Blocks256(v),
        };
        I2sMatrix::new(codes, self.m, self.k, scale).expect("validated at load")
    }

    /// Bytes held outside the mapping (repacks).
    pub fn owned_bytes(&self) -> usize {
        match &self.codes {
            Codes::Mapped(_) => 0,
            Codes::Owned(v) => v.len(),
        }
    }
}

/// A norm weight vector, copied out as f32 (small).
pub(crate) fn load_vector(g: &Gguf, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
    let (info, data) = g.require_tensor(name)?;
    if info.dims.iter().product::<u64>() != len as u64 {
        return Err(tensor_error(
            name,
            format!("shape {:?}, expected [{len}]", info.dims),
        ));
    }
    let v: Vec<f32> = match info.ty {
        TensorType::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
            .collect(),
        TensorType::F16 => data
            .chunks_exact(2)
            .map(|c| bitnet_kernels::format::f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        other => {
            return Err(tensor_error(
                name,
                format!("type {} is not F32 or F16", other.name()),
            ))
        }
    };
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(tensor_error(name, format!("element {i} is not finite")));
    }
    Ok(v)
}

/// A dense `rows × cols` matrix read in place: the token embedding and the
/// LM head.
pub(crate) struct Dense {
    pub name: String,
    pub cols: usize,
    pub ty: TensorType,
    range: Range<usize>,
}

impl Dense {
    pub fn load(g: &Gguf, name: &str, cols: usize, rows: usize) -> Result<Dense, ModelError> {
        let (info, _) = g.require_tensor(name)?;
        shape2(info, cols, rows)?;
        match info.ty {
            TensorType::F32 | TensorType::F16 | TensorType::Q8_0 => {}
            other => {
                return Err(tensor_error(
                    name,
                    format!(
                        "type {} is not supported for embeddings yet (F32, F16 and Q8_0 are)",
                        other.name()
                    ),
                ))
            }
        }
        if info.data.start % 4 != 0 {
            return Err(tensor_error(name, "data is not 4-byte aligned"));
        }
        Ok(Dense {
            name: name.into(),
            cols,
            ty: info.ty,
            range: info.data.clone(),
        })
    }

    fn bytes<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        &file[self.range.clone()]
    }

    /// Row `i` as f32 (an embedding lookup).
    pub fn row(
        &self,
        file: &[u8],
        d: Dispatch,
        i: usize,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        let bytes = self.bytes(file);
        match self.ty {
            TensorType::F32 => {
                let row = &bytes[i * self.cols * 4..(i + 1) * self.cols * 4];
                for (o, c) in out.iter_mut().zip(row.chunks_exact(4)) {
                    *o = f32::from_le_bytes(c.try_into().expect("4"));
                }
            }
            TensorType::F16 => {
                let halves: &[u16] = aligned(bytes, &self.name)?;
                d.f16_to_f32(&halves[i * self.cols..(i + 1) * self.cols], out)?;
            }
            TensorType::Q8_0 => {
                let row_bytes = self.cols / 32 * 34;
                let row = &bytes[i * row_bytes..(i + 1) * row_bytes];
                for (block, o) in row.chunks_exact(34).zip(out.chunks_exact_mut(32)) {
                    let scale = bitnet_kernels::format::f16_to_f32(u16::from_le_bytes([
                        block[0], block[1],
                    ]));
                    for (v, &q) in o.iter_mut().zip(&block[2..]) {
                        *v = q as i8 as f32 * scale;
                    }
                }
            }
            _ => unreachable!("checked at load"),
        }
        Ok(())
    }

    /// `out[r - rows.start] = row_r · x` for `r ∈ rows` (the LM head).
    pub fn gemv(
        &self,
        file: &[u8],
        d: Dispatch,
        x: &[f32],
        rows: Range<usize>,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        let bytes = self.bytes(file);
        match self.ty {
            TensorType::F16 => d.gemv_f16(aligned(bytes, &self.name)?, self.cols, x, rows, out)?,
            TensorType::Q8_0 => d.gemv_q8_0(bytes, self.cols, x, rows, out)?,
            TensorType::F32 => {
                let w: &[f32] = aligned(bytes, &self.name)?;
                for (o, r) in out.iter_mut().zip(rows) {
                    *o = d.dot_f32(&w[r * self.cols..(r + 1) * self.cols], x)?;
                }
            }
            _ => unreachable!("checked at load"),
        }
        Ok(())
    }
}

fn aligned<'a, T: bytemuck::Pod>(bytes: &'a [u8], name: &str) -> Result<&'a [T], ModelError> {
    bytemuck::try_cast_slice(bytes)
        .map_err(|e| tensor_error(name, format!("cannot be read in place: {e}")))
}
