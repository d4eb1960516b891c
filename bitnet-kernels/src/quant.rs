//! Per-token int8 activation quantization (the "A8" of W1.58A8).

use crate::error::{check_len, Error};

/// What [`crate::Dispatch::quantize_row_i8`] returns for one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowScale {
    /// `127 / max(max|x|, 1e-5)`: `q ≈ x · scale`.
    pub scale: f32,
    /// `Σ q`, needed to undo the `+1` offset of I2_S codes.
    pub sum: i32,
}

/// The smallest `max|x|` used when computing a row's scale.
pub const ACT_MAX_FLOOR: f32 = 1e-5;

/// Quantized activations: `N` token rows of `K` int8 values, with one scale
/// and one sum per row. Borrowed from caller-owned buffers.
#[derive(Debug, Clone, Copy)]
pub struct QuantizedActs<'a> {
    q: &'a [i8],
    scales: &'a [f32],
    sums: &'a [i32],
    k: usize,
}

impl<'a> QuantizedActs<'a> {
    /// Wraps `q` (`N·K`, row-major), `scales` (`N`) and `sums` (`N`).
    /// `N` is `scales.len()`. The sums must be the rows' true sums for the
    /// multiply-add kernels to be exact; [`crate::Dispatch::quantize`] makes them.
    pub fn new(q: &'a [i8], scales: &'a [f32], sums: &'a [i32], k: usize) -> Result<Self, Error> {
        let n = scales.len();
        if n == 0 {
            return Err(Error::ZeroDim { what: "N (tokens)" });
        }
        if k == 0 {
            return Err(Error::ZeroDim {
                what: "K (columns)",
            });
        }
        check_len("activation sums", n, sums.len())?;
        check_len("quantized activations", n * k, q.len())?;
        Ok(QuantizedActs { q, scales, sums, k })
    }

    /// Token rows.
    pub fn n(&self) -> usize {
        self.scales.len()
    }

    /// Values per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Row `t`'s int8 values.
    #[inline(always)]
    pub fn row(&self, t: usize) -> &'a [i8] {
        &self.q[t * self.k..(t + 1) * self.k]
    }

    /// All values, `N × K`.
    pub fn values(&self) -> &'a [i8] {
        self.q
    }

    /// Row `t`'s scale.
    #[inline(always)]
    pub fn scale(&self, t: usize) -> f32 {
        self.scales[t]
    }

    /// Row `t`'s `Σ q`.
    #[inline(always)]
    pub fn sum(&self, t: usize) -> i32 {
        self.sums[t]
    }
}

/// Checks the buffers of a batched quantization and returns `N`.
pub(crate) fn check_quantize_buffers(
    x: &[f32],
    k: usize,
    q: &[i8],
    scales: &[f32],
    sums: &[i32],
) -> Result<usize, Error> {
    if k == 0 {
        return Err(Error::ZeroDim {
            what: "K (columns)",
        });
    }
    if x.is_empty() || !x.len().is_multiple_of(k) {
        return Err(Error::BufferLength {
            what: "activations (a positive multiple of K)",
            expected: k * (x.len() / k).max(1),
            actual: x.len(),
        });
    }
    let n = x.len() / k;
    check_len("quantized activations", x.len(), q.len())?;
    check_len("activation scales", n, scales.len())?;
    check_len("activation sums", n, sums.len())?;
    Ok(n)
}
