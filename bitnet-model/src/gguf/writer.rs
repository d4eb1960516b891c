//! Writes GGUF v3 files: metadata, a tensor table, then aligned tensor data
//! streamed by the caller (so a multi-gigabyte model never sits in memory).

use super::TensorType;
use std::io::{self, Write};

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
