//! Writes GGUF v3 files: metadata, a tensor table, then aligned tensor data
//! streamed by the caller (so a multi-gigabyte model never sits in memory).

use super::TensorType;
use bitnet_kernels::format::{
    encode_i2s_row, encode_tq1_row, encode_tq2_row, I2S_TAIL_BYTES, TQ1_BLOCK_BYTES,
    TQ2_BLOCK_BYTES, TQ_BLOCK,
};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A metadata value to write.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    StrArray(Vec<String>),
    I32Array(Vec<i32>),
}

/// Collects metadata and tensor declarations, then writes the file.
#[derive(Debug, Default)]
pub struct GgufWriter {
    kv: Vec<(String, MetaValue)>,
    tensors: Vec<(String, Vec<u64>, TensorType, u64)>,
}

const ALIGNMENT: u64 = 32;

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn meta(&mut self, key: &str, value: MetaValue) -> &mut Self {
        self.kv.push((key.into(), value));
        self
    }

    /// Declares a tensor (`dims` in ggml order, row length first); its
    /// data must later be written in declaration order, exactly
    /// [`TensorType::byte_size`] bytes.
    ///
    /// # Panics
    /// If `dims` is not a shape `ty` can hold (see [`TensorType::byte_size`]).
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: TensorType) -> &mut Self {
        let size = ty.byte_size(dims).expect("a shape the type can hold");
        self.tensors.push((name.into(), dims.to_vec(), ty, size));
        self
    }

    /// Writes header and tensor table, then calls `data(index, out)` for each
    /// tensor in order; padding between tensors is written here.
    pub fn write<W: Write>(
        &self,
        out: &mut W,
        mut data: impl FnMut(usize, &mut CountingWriter<'_, W>) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut w = CountingWriter {
            inner: out,
            written: 0,
        };
        w.write_all(b"GGUF")?;
        w.write_all(&3u32.to_le_bytes())?;
        w.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
        w.write_all(&(self.kv.len() as u64).to_le_bytes())?;
        for (k, v) in &self.kv {
            write_str(&mut w, k)?;
            write_value(&mut w, v)?;
        }
        let mut offset = 0u64;
        for (name, dims, ty, size) in &self.tensors {
            write_str(&mut w, name)?;
            w.write_all(&(dims.len() as u32).to_le_bytes())?;
            for d in dims {
                w.write_all(&d.to_le_bytes())?;
            }
            w.write_all(&ty.id().to_le_bytes())?;
            w.write_all(&offset.to_le_bytes())?;
            offset = (offset + size).div_ceil(ALIGNMENT) * ALIGNMENT;
        }
        for (i, (name, _, _, size)) in self.tensors.iter().enumerate() {
            w.pad(ALIGNMENT)?;
            let start = w.written;
            data(i, &mut w)?;
            if w.written - start != *size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "tensor {name:?}: wrote {} bytes, declared {size}",
                        w.written - start
                    ),
                ));
            }
        }
        w.flush()
    }

    /// [`GgufWriter::write`] into `path`, through `path` + `.partial` in the
    /// same directory that is renamed over `path` only once everything is
    /// written and synced: a failure (an error from `data` included) leaves
    /// no partial model behind, and never clobbers an existing `path`.
    pub fn write_file(
        &self,
        path: &Path,
        data: impl FnMut(usize, &mut CountingWriter<'_, BufWriter<File>>) -> io::Result<()>,
    ) -> io::Result<()> {
        let tmp = partial_path(path);
        let result = (|| {
            let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
            self.write(&mut out, data)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()
        })();
        match result.and_then(|()| std::fs::rename(&tmp, path)) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

/// Where [`GgufWriter::write_file`] writes before renaming: `path` + `.partial`.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// The ternary tensor formats this crate writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TernaryFormat {
    /// bitnet.cpp I2_S: 2 bits per weight, one f32 scale per tensor.
    I2s,
    /// llama.cpp TQ2_0: 2.06 bits per weight, one f16 scale per 256 weights.
    Tq2,
    /// llama.cpp TQ1_0: 1.69 bits per weight, one f16 scale per 256 weights.
    Tq1,
}

impl TernaryFormat {
    pub fn tensor_type(self) -> TensorType {
        match self {
            TernaryFormat::I2s => TensorType::I2S,
            TernaryFormat::Tq2 => TensorType::Tq2_0,
            TernaryFormat::Tq1 => TensorType::Tq1_0,
        }
    }

    /// `general.file_type`: bitnet.cpp's I2_S = 40; llama.cpp's TQ1_0 = 36, TQ2_0 = 37.
    pub fn file_type(self) -> u32 {
        match self {
            TernaryFormat::I2s => 40,
            TernaryFormat::Tq1 => 36,
            TernaryFormat::Tq2 => 37,
        }
    }

    /// Weights per row must be a multiple of this (128 for I2_S, 256 for TQ).
    pub fn block(self) -> usize {
        match self {
            TernaryFormat::I2s => bitnet_kernels::format::I2S_BLOCK,
            TernaryFormat::Tq2 | TernaryFormat::Tq1 => TQ_BLOCK,
        }
    }
}

/// Writes an `m × k` ternary matrix in `format` with one `scale` for every
/// weight (TQ formats round it to f16 per block): `fill(r, trits)` supplies
/// output row `r` as `k` values in `{-1, 0, 1}`. Exactly the bytes
/// [`GgufWriter::tensor`] declares for `[k, m]`, I2_S's scale tail included.
pub fn write_ternary<W: Write>(
    out: &mut W,
    format: TernaryFormat,
    k: usize,
    m: usize,
    scale: f32,
    mut fill: impl FnMut(usize, &mut [i8]) -> io::Result<()>,
) -> io::Result<()> {
    let invalid =
        |e: bitnet_kernels::Error| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
    let mut trits = vec![0i8; k];
    let scales = vec![scale; k / TQ_BLOCK];
    let row_bytes = match format {
        TernaryFormat::I2s => k / 4,
        TernaryFormat::Tq2 => k / TQ_BLOCK * TQ2_BLOCK_BYTES,
        TernaryFormat::Tq1 => k / TQ_BLOCK * TQ1_BLOCK_BYTES,
    };
    let mut row = vec![0u8; row_bytes];
    for r in 0..m {
        fill(r, &mut trits)?;
        match format {
            TernaryFormat::I2s => encode_i2s_row(&trits, &mut row),
            TernaryFormat::Tq2 => encode_tq2_row(&trits, &scales, &mut row),
            TernaryFormat::Tq1 => encode_tq1_row(&trits, &scales, &mut row),
        }
        .map_err(invalid)?;
        out.write_all(&row)?;
    }
    if format == TernaryFormat::I2s {
        let mut tail = [0u8; I2S_TAIL_BYTES];
        tail[..4].copy_from_slice(&scale.to_le_bytes());
        out.write_all(&tail)?;
    }
    Ok(())
}

/// A writer that knows how many bytes went through it.
#[derive(Debug)]
pub struct CountingWriter<'a, W> {
    inner: &'a mut W,
    written: u64,
}

impl<W: Write> CountingWriter<'_, W> {
    fn pad(&mut self, alignment: u64) -> io::Result<()> {
        let pad = self.written.div_ceil(alignment) * alignment - self.written;
        self.write_all(&vec![0u8; pad as usize])
    }
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_value(w: &mut impl Write, v: &MetaValue) -> io::Result<()> {
    match v {
        MetaValue::U32(x) => {
            w.write_all(&4u32.to_le_bytes())?;
            w.write_all(&x.to_le_bytes())
        }
        MetaValue::I32(x) => {
            w.write_all(&5u32.to_le_bytes())?;
            w.write_all(&x.to_le_bytes())
        }
        MetaValue::F32(x) => {
            w.write_all(&6u32.to_le_bytes())?;
            w.write_all(&x.to_le_bytes())
        }
        MetaValue::Bool(x) => {
            w.write_all(&7u32.to_le_bytes())?;
            w.write_all(&[*x as u8])
        }
        MetaValue::Str(s) => {
            w.write_all(&8u32.to_le_bytes())?;
            write_str(w, s)
        }
        MetaValue::StrArray(v) => {
            w.write_all(&9u32.to_le_bytes())?;
            w.write_all(&8u32.to_le_bytes())?;
            w.write_all(&(v.len() as u64).to_le_bytes())?;
            v.iter().try_for_each(|s| write_str(w, s))
        }
        MetaValue::I32Array(v) => {
            w.write_all(&9u32.to_le_bytes())?;
            w.write_all(&5u32.to_le_bytes())?;
            w.write_all(&(v.len() as u64).to_le_bytes())?;
            v.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))
        }
    }
}
