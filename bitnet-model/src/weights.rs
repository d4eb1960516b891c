//! Tensors of a loaded model, as views into the GGUF file where the kernels
//! can read the file's layout directly (I2_S codes, F16 embeddings), and as
//! owned repacks where they cannot (TQ2_0 / TQ1_0 → I2_S codes).

use crate::error::ModelError;
use crate::gguf::{Gguf, TensorInfo, TensorType};
use bitnet_kernels::format::{
    collapse_block_scales, I2sMatrix, Tq1Matrix, Tq2Matrix, WeightScale, TQ_BLOCK,
};
use bitnet_kernels::format::{f16_to_f32, f32_to_f16};
use bitnet_kernels::kquant::{dequantize_row_q6k, quantize_row_q8k, Q6K_BLOCK, Q8K_BLOCK_BYTES};
use bitnet_kernels::Dispatch;
use std::ops::Range;
use std::slice;

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
        // `bitnet` (1bitLLM) files may carry a separate per-tensor multiplier.
        let extra = name
            .strip_suffix(".weight")
            .map(|base| format!("{base}.scale"));
        if let Some((info, data)) = extra.as_deref().and_then(|n| g.tensor(n)) {
            if info.ty != TensorType::F32 || data.len() != 4 {
                return Err(tensor_error(&info.name, "expected one F32 value"));
            }
            let mult = f32::from_le_bytes(data.try_into().expect("4 bytes"));
            if !mult.is_finite() {
                return Err(tensor_error(
                    &info.name,
                    format!("multiplier {mult} is not finite"),
                ));
            }
            match &mut t.scale {
                Scale::Tensor(s) => *s *= mult,
                Scale::Blocks(v) => v.iter_mut().for_each(|s| *s *= mult),
            }
        }
        if let Scale::Tensor(s) = t.scale {
            if s == 0.0 {
                return Err(tensor_error(name, "weight scale is zero"));
            }
        }
        // The multiplier can overflow a scale; check the final view once here so
        // `matrix` cannot fail later.
        t.try_matrix(g.bytes())
            .map_err(|e| tensor_error(name, e.to_string()))?;
        Ok(t)
    }

    /// The kernel view; `file` is the model file's bytes.
    pub fn matrix<'a>(&'a self, file: &'a [u8]) -> I2sMatrix<'a> {
        self.try_matrix(file).expect("validated at load")
    }

    fn try_matrix<'a>(&'a self, file: &'a [u8]) -> Result<I2sMatrix<'a>, bitnet_kernels::Error> {
        let codes = match &self.codes {
            Codes::Mapped(r) => &file[r.clone()],
            Codes::Owned(v) => v,
        };
        let scale = match &self.scale {
            Scale::Tensor(s) => WeightScale::Tensor(*s),
            Scale::Blocks(v) => WeightScale::Blocks256(v),
        };
        I2sMatrix::new(codes, self.m, self.k, scale)
    }

    /// Bytes of 2-bit codes one multiplication reads.
    pub fn code_bytes(&self) -> usize {
        self.m * self.k / 4
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
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
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

/// Quantizes one row of floats into a block format's bytes.
type Quantizer = fn(&[f32], &mut [u8]);

/// A dense `rows × cols` matrix read in place: the token embedding and the
/// LM head (or, when re-quantized at load, held in memory).
pub(crate) struct Dense {
    pub name: String,
    pub cols: usize,
    pub ty: TensorType,
    range: Range<usize>,
    /// The matrix when it is not the file's bytes at `range`.
    owned: Option<Vec<u8>>,
}

/// Rows of an F16, Q8_0 or Q6_K LM head per [`Dispatch::dot_f16_multi`],
/// [`Dispatch::dot_q8_0_multi`] or [`Dispatch::dot_q6k_multi`] call of
/// [`Dense::gemv_tokens`]: bounds the staging buffer of their dots. The
/// kernels read each row from memory once for all the tokens.
const HEAD_ROW_BLOCK: usize = 64;

/// `dots(block, out)` over `rows` in blocks of [`HEAD_ROW_BLOCK`], `out`
/// holding the block's `rows × n` dots, each passed on as `put(t, r, v)`.
fn by_row_blocks(
    rows: Range<usize>,
    n: usize,
    put: impl Fn(usize, usize, f32),
    mut dots: impl FnMut(Range<usize>, &mut [f32]) -> Result<(), bitnet_kernels::Error>,
) -> Result<(), ModelError> {
    let mut staged = vec![0f32; HEAD_ROW_BLOCK * n];
    let mut r0 = rows.start;
    while r0 < rows.end {
        let block = r0..(r0 + HEAD_ROW_BLOCK).min(rows.end);
        let out = &mut staged[..block.len() * n];
        dots(block.clone(), out)?;
        for (r, row) in block.clone().zip(out.chunks_exact(n)) {
            for (t, &v) in row.iter().enumerate() {
                put(t, r, v);
            }
        }
        r0 = block.end;
    }
    Ok(())
}

impl Dense {
    pub fn load(g: &Gguf, name: &str, cols: usize, rows: usize) -> Result<Dense, ModelError> {
        let (info, _) = g.require_tensor(name)?;
        shape2(info, cols, rows)?;
        match info.ty {
            TensorType::F32
            | TensorType::F16
            | TensorType::BF16
            | TensorType::Q8_0
            | TensorType::Q6K => {}
            other => {
                return Err(tensor_error(
                    name,
                    format!(
                        "type {} cannot be an embedding (F32, F16, BF16, Q8_0 and Q6_K can)",
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
            owned: None,
        })
    }

    /// This matrix re-quantized to `ty` (Q8_0 or Q6_K) in memory, rows
    /// split over `threads` scoped threads.
    pub fn requantized(
        &self,
        file: &[u8],
        d: Dispatch,
        ty: TensorType,
        threads: usize,
    ) -> Result<Dense, ModelError> {
        self.requantized_with(file, d, ty, threads, |_, _| 0.0)
            .map(|(dense, _)| dense)
    }

    /// [`Dense::requantized`], also returning `per_row(row, quantized)` of
    /// every row (`row` as f32, `quantized` its bytes in `ty`).
    pub fn requantized_with(
        &self,
        file: &[u8],
        d: Dispatch,
        ty: TensorType,
        threads: usize,
        per_row: impl Fn(&[f32], &[u8]) -> f32 + Sync,
    ) -> Result<(Dense, Vec<f32>), ModelError> {
        let (block, block_bytes, quantize): (usize, usize, Quantizer) = match ty {
            TensorType::Q8_0 => (32, Q8_0_BLOCK_BYTES, quantize_q8_0),
            TensorType::Q6K => (256, Q6K_BLOCK_BYTES, quantize_q6_k),
            other => {
                return Err(tensor_error(
                    &self.name,
                    format!("cannot re-quantize to {} (Q8_0 and Q6_K)", other.name()),
                ))
            }
        };
        if !self.cols.is_multiple_of(block) {
            return Err(tensor_error(
                &self.name,
                format!(
                    "rows of {} cannot be {} (not a multiple of {block})",
                    self.cols,
                    ty.name()
                ),
            ));
        }
        let rows = self.bytes(file).len() / self.row_bytes();
        let out_row = self.cols / block * block_bytes;
        let mut out = vec![0u8; rows * out_row];
        let mut stats = vec![0f32; rows];
        let per_thread = rows.div_ceil(threads.max(1)).max(1);
        let per_row = &per_row;
        std::thread::scope(|scope| {
            let jobs: Vec<_> = out
                .chunks_mut(per_thread * out_row)
                .zip(stats.chunks_mut(per_thread))
                .enumerate()
                .map(|(j, (chunk, stats))| {
                    scope.spawn(move || -> Result<(), ModelError> {
                        let mut row = vec![0f32; self.cols];
                        let dsts = chunk.chunks_exact_mut(out_row);
                        for (i, (dst, stat)) in dsts.zip(stats).enumerate() {
                            self.row(file, d, j * per_thread + i, &mut row)?;
                            quantize(&row, dst);
                            *stat = per_row(&row, dst);
                        }
                        Ok(())
                    })
                })
                .collect();
            jobs.into_iter()
                .try_for_each(|h| h.join().expect("a re-quantizing thread panicked"))
        })?;
        let dense = Dense {
            name: format!("{} (re-quantized to {})", self.name, ty.name()),
            cols: self.cols,
            ty,
            range: 0..0,
            owned: Some(out),
        };
        Ok((dense, stats))
    }

    fn bytes<'a>(&'a self, file: &'a [u8]) -> &'a [u8] {
        match &self.owned {
            Some(bytes) => bytes,
            None => &file[self.range.clone()],
        }
    }

    /// Bytes of the whole matrix.
    pub fn len_bytes(&self) -> usize {
        self.owned.as_ref().map_or(self.range.len(), Vec::len)
    }

    /// Bytes held in memory rather than in the file mapping.
    pub fn owned_bytes(&self) -> usize {
        self.owned.as_ref().map_or(0, Vec::len)
    }

    /// Bytes of one row.
    fn row_bytes(&self) -> usize {
        match self.ty {
            TensorType::F32 => self.cols * 4,
            TensorType::F16 | TensorType::BF16 => self.cols * 2,
            TensorType::Q8_0 => self.cols / 32 * 34,
            TensorType::Q6K => self.cols / 256 * Q6K_BLOCK_BYTES,
            _ => unreachable!("checked at load"),
        }
    }

    /// Row `i` as f32 (an embedding lookup).
    pub fn row(
        &self,
        file: &[u8],
        d: Dispatch,
        i: usize,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        let rb = self.row_bytes();
        let row = &self.bytes(file)[i * rb..(i + 1) * rb];
        match self.ty {
            TensorType::F32 => {
                for (o, c) in out.iter_mut().zip(row.chunks_exact(4)) {
                    *o = f32::from_le_bytes(c.try_into().expect("4"));
                }
            }
            TensorType::F16 => d.f16_to_f32(aligned(row, &self.name)?, out)?,
            TensorType::BF16 => {
                for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                    *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
                }
            }
            TensorType::Q8_0 => {
                for (block, o) in row.chunks_exact(34).zip(out.chunks_exact_mut(32)) {
                    let scale = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
                    for (v, &q) in o.iter_mut().zip(&block[2..]) {
                        *v = q as i8 as f32 * scale;
                    }
                }
            }
            TensorType::Q6K => dequantize_row_q6k(row, out)?,
            _ => unreachable!("checked at load"),
        }
        Ok(())
    }

    /// The LM head over several tokens: `out[t·stride + r] = row_r · x_t` for
    /// `r ∈ rows` and each `cols`-wide row `x_t` of `xs`. N tokens cost one
    /// pass over the matrix from memory; every output is what the per-row
    /// kernel gives for its token alone, so results do not depend on how many
    /// tokens share the pass.
    ///
    /// One token (decode, and the last prompt token of a prefill): F16,
    /// Q8_0 and Q6_K go through the dispatched GEMV, which reads the matrix
    /// as several far-apart streams. Q6_K dots int8 activations
    /// ([`quantize_row_q8k`], one scale per 256), as ggml does. Several
    /// tokens, F16 (the tied head of BitNet-2B), Q8_0 and Q6_K:
    /// [`Dispatch::dot_f16_multi`] converts each row, and
    /// [`Dispatch::dot_q8_0_multi`] and [`Dispatch::dot_q6k_multi`] unpack
    /// each block, once for several tokens.
    ///
    /// # Safety
    /// `out[t·stride + r]` must be writable for every token `t` and `r ∈ rows`,
    /// and not touched by anyone else during the call.
    pub unsafe fn gemv_tokens(
        &self,
        file: &[u8],
        d: Dispatch,
        xs: &[f32],
        rows: Range<usize>,
        out: *mut f32,
        stride: usize,
    ) -> Result<(), ModelError> {
        let bytes = self.bytes(file);
        let rb = self.row_bytes();
        let n = xs.len() / self.cols;
        let put = |t: usize, r: usize, v: f32| {
            // SAFETY: forwarded from our caller's contract.
            unsafe { out.add(t * stride + r).write(v) }
        };
        match self.ty {
            // Decode: one token, so the matrix is one stream of reads and the
            // GEMV kernel's far-apart row streams pull it fastest.
            TensorType::F16 if n == 1 => {
                let w: &[u16] = aligned(bytes, &self.name)?;
                // SAFETY: token 0's outputs `out[r]`, `r ∈ rows`, are ours (caller).
                let y = unsafe { slice::from_raw_parts_mut(out.add(rows.start), rows.len()) };
                d.gemv_f16(w, self.cols, xs, rows, y)?;
            }
            TensorType::Q8_0 if n == 1 => {
                // SAFETY: as above.
                let y = unsafe { slice::from_raw_parts_mut(out.add(rows.start), rows.len()) };
                d.gemv_q8_0(bytes, self.cols, xs, rows, y)?;
            }
            // Every worker quantizes the tokens itself (a few µs), identically.
            TensorType::Q6K => {
                let xq_row = self.cols / Q6K_BLOCK * Q8K_BLOCK_BYTES;
                let mut xq = vec![0u8; n * xq_row];
                for (x, q) in xs.chunks_exact(self.cols).zip(xq.chunks_exact_mut(xq_row)) {
                    quantize_row_q8k(x, q)?;
                }
                if n == 1 {
                    // SAFETY: as above.
                    let y = unsafe { slice::from_raw_parts_mut(out.add(rows.start), rows.len()) };
                    d.gemv_q6k(bytes, self.cols, &xq, rows, y)?;
                } else {
                    by_row_blocks(rows, n, put, |block, dots| {
                        let w = &bytes[block.start * rb..block.end * rb];
                        d.dot_q6k_multi(&xq, w, self.cols, dots)
                    })?;
                }
            }
            TensorType::F16 => {
                let w: &[u16] = aligned(bytes, &self.name)?;
                let k = self.cols;
                by_row_blocks(rows, n, put, |block, dots| {
                    d.dot_f16_multi(xs, &w[block.start * k..block.end * k], k, dots)
                })?;
            }
            TensorType::Q8_0 => {
                by_row_blocks(rows, n, put, |block, dots| {
                    let w = &bytes[block.start * rb..block.end * rb];
                    d.dot_q8_0_multi(xs, w, self.cols, dots)
                })?;
            }
            TensorType::F32 => {
                let w: &[f32] = aligned(bytes, &self.name)?;
                for r in rows {
                    let row = &w[r * self.cols..(r + 1) * self.cols];
                    for (t, x) in xs.chunks_exact(self.cols).enumerate() {
                        put(t, r, d.dot_f32(row, x)?);
                    }
                }
            }
            // No SIMD kernel yet for BF16: dequantize a row once, then dot.
            TensorType::BF16 => {
                let mut row = vec![0f32; self.cols];
                for r in rows {
                    self.row(file, d, r, &mut row)?;
                    for (t, x) in xs.chunks_exact(self.cols).enumerate() {
                        put(t, r, d.dot_f32(&row, x)?);
                    }
                }
            }
            _ => unreachable!("checked at load"),
        }
        debug_assert_eq!(n * self.cols, xs.len());
        Ok(())
    }
}

/// Bytes per Q6_K block of 256 weights: `ql[128]`, `qh[64]`, `scales[16]`
/// (i8), f16 `d` ([`bitnet_kernels::kquant`] has the layout).
pub(crate) const Q6K_BLOCK_BYTES: usize = bitnet_kernels::kquant::Q6K_BLOCK_BYTES;

/// Bytes per Q8_0 block of 32 weights: f16 `d`, then 32 × i8.
pub(crate) const Q8_0_BLOCK_BYTES: usize = bitnet_kernels::float::Q8_0_BLOCK_BYTES;

/// ggml's Q8_0 reference quantizer (`quantize_row_q8_0_ref`): per 32 weights,
/// `d = max|x| / 127` and `q = round_half_away(x / d)`. `x.len()` must be a
/// multiple of 32 and `out` hold `x.len() / 32 · 34` bytes.
pub(crate) fn quantize_q8_0(x: &[f32], out: &mut [u8]) {
    for (x, block) in x
        .chunks_exact(32)
        .zip(out.chunks_exact_mut(Q8_0_BLOCK_BYTES))
    {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        block[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        for (q, &v) in block[2..].iter_mut().zip(x) {
            *q = round_half_away(v * id) as i8 as u8;
        }
    }
}

/// `x.round() as i32` for `|x| < 2²³` (NaN gives 0), without the libm call
/// `f32::round` is on baseline x86-64 (it was most of re-quantizing a 2B
/// head): truncation is one instruction and `x − trunc(x)` is exact.
fn round_half_away(x: f32) -> i32 {
    let t = x as i32;
    let frac = x - t as f32;
    t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)
}

/// ggml's `nearest_int`: round half to even, by letting the float adder
/// round `x + 1.5·2²³` to an integer (two instructions, where
/// `f32::round_ties_even` is a libm call on baseline x86-64). Exact for
/// `|x| < 2²²`; larger inputs saturate there.
pub(crate) fn nearest_int(x: f32) -> i32 {
    let shifted = x.clamp(-4_194_303.0, 4_194_303.0) + 12_582_912.0;
    (shifted.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// ggml's `make_qx_quants` with `rmse_type = 1` and no importance weights:
/// a scale for `x` and its levels `L ∈ [0, 2·nmax)`, chosen among 19 candidate
/// scales to minimise the x²-weighted squared error. Bit for bit ggml's
/// result: each candidate's sums run over `x` in order, as there; the 19
/// candidates run side by side rather than one after another, which lets
/// them vectorize (the Q6_K re-quantization of a 2B head spends nearly all
/// its time here).
fn make_qx_quants(nmax: i32, x: &[f32], levels: &mut [i8]) -> f32 {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < 1e-15 {
        levels.fill(0);
        return 0.0;
    }
    let quantize = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    // ggml's order: `-nmax / max` first, then `-(nmax + 0.1·is) / max` for
    // `is = -9 ..= 9`, `is ≠ 0`.
    // A 20th lane repeats the first, so the lanes fill whole vectors.
    let mut iscales = [-(nmax as f32) / max; 20];
    for (c, is) in (-9..=9).filter(|&is| is != 0).enumerate() {
        iscales[c + 1] = -(nmax as f32 + 0.1 * is as f32) / max;
    }
    let (mut sumlx, mut suml2) = ([0f32; 20], [0f32; 20]);
    for &v in x {
        let w = v * v;
        for ((lx, l2), &iscale) in sumlx.iter_mut().zip(&mut suml2).zip(&iscales) {
            let l = quantize(iscale, v) as f32;
            *lx += w * v * l;
            *l2 += w * l * l;
        }
    }
    let mut scale = if suml2[0] != 0.0 {
        sumlx[0] / suml2[0]
    } else {
        0.0
    };
    let (mut best, mut chosen) = (scale * sumlx[0], 0);
    for c in 1..19 {
        if suml2[c] > 0.0 && sumlx[c] * sumlx[c] > best * suml2[c] {
            scale = sumlx[c] / suml2[c];
            best = scale * sumlx[c];
            chosen = c;
        }
    }
    for (l, &v) in levels.iter_mut().zip(x) {
        *l = (quantize(iscales[chosen], v) + nmax) as i8;
    }
    scale
}

/// ggml's Q6_K reference quantizer (`quantize_row_q6_K_ref`), the inverse
/// of [`bitnet_kernels::kquant::dequantize_row_q6k`]: per 16 weights a
/// scale from [`make_qx_quants`], the 16 scales quantized to i8 against one
/// f16 `d` per 256 weights, then 6-bit levels against `d · scale`.
/// `x.len()` must be a multiple of 256 and `out` hold `x.len() / 256 · 210`
/// bytes.
pub(crate) fn quantize_q6_k(x: &[f32], out: &mut [u8]) {
    for (x, block) in x
        .chunks_exact(256)
        .zip(out.chunks_exact_mut(Q6K_BLOCK_BYTES))
    {
        let mut levels = [0i8; 256];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
        for ((xs, ls), s) in x
            .chunks_exact(16)
            .zip(levels.chunks_exact_mut(16))
            .zip(scales.iter_mut())
        {
            *s = make_qx_quants(32, xs, ls);
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = *s;
            }
        }
        block.fill(0);
        if max_abs_scale < 1e-15 {
            continue;
        }
        let iscale = -128.0 / max_scale;
        let d = f32_to_f16(1.0 / iscale);
        block[208..].copy_from_slice(&d.to_le_bytes());
        let d = f16_to_f32(d);
        for j in 0..16 {
            let sc = nearest_int(iscale * scales[j]).min(127) as i8;
            block[192 + j] = sc as u8;
            let dl = d * sc as f32;
            if dl == 0.0 {
                continue;
            }
            for i in 16 * j..16 * (j + 1) {
                levels[i] = (nearest_int(x[i] / dl).clamp(-32, 31) + 32) as i8;
            }
        }
        let (ql, rest) = block.split_at_mut(128);
        let qh = &mut rest[..64];
        for half in 0..2 {
            let l6 = &levels[128 * half..];
            let (ql, qh) = (&mut ql[64 * half..], &mut qh[32 * half..]);
            for l in 0..32 {
                let q = |g: usize| l6[l + 32 * g] as u8;
                ql[l] = (q(0) & 0xf) | ((q(2) & 0xf) << 4);
                ql[l + 32] = (q(1) & 0xf) | ((q(3) & 0xf) << 4);
                qh[l] = (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
            }
        }
    }
}

fn aligned<'a, T: bytemuck::Pod>(bytes: &'a [u8], name: &str) -> Result<&'a [T], ModelError> {
    bytemuck::try_cast_slice(bytes)
        .map_err(|e| tensor_error(name, format!("cannot be read in place: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q6_k_follows_the_documented_layout() {
        // Pack q(i) = (i·7) mod 64 and scale s(j) = j − 8 by the layout, then decode.
        let mut block = vec![0u8; Q6K_BLOCK_BYTES];
        let q = |i: usize| ((i * 7) % 64) as u8;
        for i in 0..256 {
            let (half, within) = (i / 128, i % 128);
            let (g, l) = (within / 32, within % 32);
            let ql_at = 64 * half + l + if g % 2 == 1 { 32 } else { 0 };
            let nibble_shift = if g >= 2 { 4 } else { 0 };
            block[ql_at] |= (q(i) & 0xf) << nibble_shift;
            block[128 + 32 * half + l] |= (q(i) >> 4) << (2 * g);
        }
        for j in 0..16 {
            block[192 + j] = (j as i8 - 8) as u8;
        }
        block[208..].copy_from_slice(&bitnet_kernels::format::f32_to_f16(0.5).to_le_bytes());
        let mut out = vec![0f32; 256];
        dequantize_row_q6k(&block, &mut out).unwrap();
        for i in 0..256 {
            let scale = (i / 16) as f32 - 8.0;
            assert_eq!(out[i], 0.5 * scale * (q(i) as f32 - 32.0), "weight {i}");
        }
    }

    /// Smooth-ish values with a few outliers and an all-zero stretch.
    fn sample(n: usize) -> Vec<f32> {
        let mut rng = crate::synthetic::Rng::new(3);
        (0..n)
            .map(|i| match i % 97 {
                0 => rng.next_f32() * 4.0,
                _ if (512..528).contains(&i) => 0.0,
                _ => rng.next_f32() * 0.05,
            })
            .collect()
    }

    #[test]
    fn q8_0_round_trips_within_half_a_step() {
        let x = sample(1024);
        let mut q = vec![0u8; 1024 / 32 * Q8_0_BLOCK_BYTES];
        quantize_q8_0(&x, &mut q);
        for (xb, qb) in x.chunks_exact(32).zip(q.chunks_exact(Q8_0_BLOCK_BYTES)) {
            let d = f16_to_f32(u16::from_le_bytes([qb[0], qb[1]]));
            let exact = xb.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            assert!((d - exact).abs() <= exact / 2048.0, "d {d} for {exact}");
            // Half a step, plus what storing d in f16 moves the largest level by.
            let bound = 0.5 * exact + 127.0 * (d - exact).abs() + 1e-7;
            for (&v, &c) in xb.iter().zip(&qb[2..]) {
                assert!((c as i8 as f32 * d - v).abs() <= bound, "{v}");
            }
        }
    }

    #[test]
    fn q6_k_round_trips_through_the_dequantizer() {
        let x = sample(1024);
        let mut q = vec![0u8; 1024 / 256 * Q6K_BLOCK_BYTES];
        quantize_q6_k(&x, &mut q);
        let mut y = vec![0f32; 1024];
        dequantize_row_q6k(&q, &mut y).unwrap();
        for ((xb, yb), qb) in x
            .chunks_exact(256)
            .zip(y.chunks_exact(256))
            .zip(q.chunks_exact(Q6K_BLOCK_BYTES))
        {
            let d = f16_to_f32(u16::from_le_bytes([qb[208], qb[209]]));
            let block_max = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (i, (&a, &b)) in xb.iter().zip(yb).enumerate() {
                // Each weight decodes to its nearest level of its group's
                // step, unless it lies beyond the 6-bit range of that step.
                let step = d * qb[192 + i / 16] as i8 as f32;
                if step != 0.0 && (a / step).abs() <= 31.0 {
                    assert!(
                        (a - b).abs() <= 0.5 * step.abs() * 1.0001,
                        "{i}: {a} vs {b}"
                    );
                }
                assert!((a - b).abs() <= block_max / 32.0, "{i}: {a} vs {b}");
            }
        }
        assert!(y[512..528].iter().all(|&v| v == 0.0));
        // An all-zero block encodes as zeros.
        let mut q = vec![0xffu8; Q6K_BLOCK_BYTES];
        quantize_q6_k(&[0.0; 256], &mut q);
        assert!(q.iter().all(|&b| b == 0));
    }

    #[test]
    fn make_qx_quants_equals_the_one_by_one_search() {
        let mut rng = crate::synthetic::Rng::new(11);
        for case in 0..4000 {
            let spread = [1e-3f32, 0.05, 1.0, 300.0][case % 4];
            let mut x: Vec<f32> = (0..16).map(|_| rng.next_f32() * spread).collect();
            if case % 7 == 0 {
                x[case % 16] *= 40.0;
            }
            if case % 11 == 0 {
                x[..8].fill(0.0);
            }
            let (mut a, mut b) = ([0i8; 16], [0i8; 16]);
            let (sa, sb) = (
                make_qx_quants(32, &x, &mut a),
                make_qx_quants_one_by_one(32, &x, &mut b),
            );
            assert_eq!(sa.to_bits(), sb.to_bits(), "case {case}");
            assert_eq!(a, b, "case {case}");
        }
    }

    /// `make_qx_quants` as ggml writes it: the candidates one after another.
    fn make_qx_quants_one_by_one(nmax: i32, x: &[f32], levels: &mut [i8]) -> f32 {
        let (mut max, mut amax) = (0f32, 0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax < 1e-15 {
            levels.fill(0);
            return 0.0;
        }
        let quantize = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        let sums = |iscale: f32| {
            let (mut sumlx, mut suml2) = (0f32, 0f32);
            for &v in x {
                let l = quantize(iscale, v) as f32;
                let w = v * v;
                sumlx += w * v * l;
                suml2 += w * l * l;
            }
            (sumlx, suml2)
        };
        let mut iscale = -(nmax as f32) / max;
        for (l, &v) in levels.iter_mut().zip(x) {
            *l = (quantize(iscale, v) + nmax) as i8;
        }
        let (sumlx, suml2) = sums(iscale);
        let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
        let mut best = scale * sumlx;
        for is in (-9..=9).filter(|&is| is != 0) {
            iscale = -(nmax as f32 + 0.1 * is as f32) / max;
            let (sumlx, suml2) = sums(iscale);
            if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
                for (l, &v) in levels.iter_mut().zip(x) {
                    *l = (quantize(iscale, v) + nmax) as i8;
                }
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        scale
    }

    #[test]
    fn round_half_away_is_round() {
        let mut rng = crate::synthetic::Rng::new(9);
        let halves = (-300..300).map(|i| i as f32 * 0.5);
        let near = [
            0.49999997f32,
            -0.49999997,
            126.5,
            -126.5,
            127.0,
            8_388_607.0,
        ];
        let random = (0..100_000).map(|_| (rng.next_f32() - 0.5) * 300.0);
        for x in halves.chain(near).chain(random) {
            assert_eq!(round_half_away(x), x.round() as i32, "{x}");
            assert_eq!(round_half_away(x.next_up()), x.next_up().round() as i32);
            assert_eq!(round_half_away(x.next_down()), x.next_down().round() as i32);
        }
        assert_eq!(round_half_away(f32::NAN), 0);
    }

    #[test]
    fn nearest_int_rounds_half_to_even() {
        for (x, want) in [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.4999998, -2),
            (31.49, 31),
            (-32.7, -33),
            (1e9, 4_194_303),
            (-1e9, -4_194_303),
        ] {
            assert_eq!(nearest_int(x), want, "{x}");
        }
        let mut rng = crate::synthetic::Rng::new(9);
        for _ in 0..100_000 {
            let x = rng.next_f32() * 1000.0;
            assert_eq!(nearest_int(x), x.round_ties_even() as i32, "{x}");
        }
    }
}
