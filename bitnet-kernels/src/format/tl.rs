//! PLACEHOLDER — the lookup-table layout is being written; for now the
//! "packed" bytes are the I2_S codes, so the crate builds and tests run.
use super::i2s::{I2sMatrix, WeightScale};
use crate::error::{check_len, Error};

/// Rows per interleaved tile of the lookup-table layout.
pub const TL_ROW_TILE: usize = 32;

/// `M × K` ternary matrix in the lookup-table kernels' layout, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct TlMatrix<'a> {
    inner: I2sMatrix<'a>,
}

impl<'a> TlMatrix<'a> {
    /// Bytes [`TlMatrix::pack`] writes for an `m × k` matrix.
    pub fn packed_len(m: usize, k: usize) -> usize {
        m * k / 4
    }

    /// Repacks a tensor-scaled I2_S matrix into `out` (exactly
    /// [`TlMatrix::packed_len`] bytes) and returns the view.
    pub fn pack(w: &I2sMatrix<'_>, out: &'a mut [u8]) -> Result<TlMatrix<'a>, Error> {
        let WeightScale::Tensor(scale) = w.scale() else {
            return Err(Error::BadScale {
                what: "lookup-table kernels need a per-tensor scale",
                bits: 0,
            });
        };
        check_len("TL packed bytes", Self::packed_len(w.m(), w.k()), out.len())?;
        out.copy_from_slice(w.codes());
        Self::from_packed(out, w.m(), w.k(), scale)
    }

    /// Views bytes written by [`TlMatrix::pack`].
    pub fn from_packed(
        bytes: &'a [u8],
        m: usize,
        k: usize,
        scale: f32,
    ) -> Result<TlMatrix<'a>, Error> {
        Ok(TlMatrix {
            inner: I2sMatrix::new(bytes, m, k, WeightScale::Tensor(scale))?,
        })
    }

    /// Writes the matrix back as I2_S codes (`M·K/4` bytes): lossless.
    pub fn unpack_i2s(&self, codes: &mut [u8]) -> Result<(), Error> {
        check_len("I2_S code bytes", self.inner.codes().len(), codes.len())?;
        codes.copy_from_slice(self.inner.codes());
        Ok(())
    }

    /// Output rows.
    pub fn m(&self) -> usize {
        self.inner.m()
    }
    /// Inputs per row.
    pub fn k(&self) -> usize {
        self.inner.k()
    }
    /// The per-tensor weight scale.
    pub fn scale(&self) -> f32 {
        match self.inner.scale() {
            WeightScale::Tensor(s) => s,
            WeightScale::Blocks256(_) => unreachable!(),
        }
    }
    pub(crate) fn inner(&self) -> &I2sMatrix<'a> {
        &self.inner
    }
}
