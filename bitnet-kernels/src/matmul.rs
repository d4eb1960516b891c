//! Safe ternary matmul entry points: `Y[N×M] = X[N×K] · Wᵀ`.

use crate::arch::scalar;
use crate::dispatch::Dispatch;
use crate::error::{check_len, Error};
use crate::format::{I2sMatrix, TlMatrix, WeightScale};
use crate::quant::{check_quantize_buffers, QuantizedActs, RowScale};
use core::ops::Range;

/// The largest `K` the kernels accept: it keeps every integer dot, even with
/// the unused code 3 and activations of −128, far inside `i32`.
pub const MAX_K: usize = 1 << 20;

/// The shared epilogue: a row's signed integer dot `Σ trit·q` to f32, as
/// `dot / (act_scale · (1 / weight_scale))`.
///
/// That is transformers' BitLinear order (it stores the reciprocal of the
/// GGUF scale and divides by `input_scale · weight_scale`); with the
/// reciprocal rounded to f32 it reproduces the reference bit for bit, which
/// keeps downstream int8 roundings where the reference puts them. Every path
/// computes exactly this, so outputs are bitwise equal across paths.
#[inline(always)]
pub fn dequantize_dot(dot: i32, act_scale: f32, weight_scale: f32) -> f32 {
    dot as f32 / (act_scale * (1.0 / weight_scale))
}

impl Dispatch {
    /// Quantizes one row; see [`RowScale`]. `q.len()` must equal `x.len()`.
    pub fn quantize_row_i8(&self, x: &[f32], q: &mut [i8]) -> Result<RowScale, Error> {
        check_len("quantized row", x.len(), q.len())?;
        // SAFETY: the table's ISA is supported (Dispatch invariant); lengths checked.
        Ok(unsafe { (self.table.quantize_row_i8)(x, q) })
    }

    /// Quantizes `N = x.len() / k` rows into caller buffers and returns the
    /// view the matmuls take.
    pub fn quantize<'a>(
        &self,
        x: &[f32],
        k: usize,
        q: &'a mut [i8],
        scales: &'a mut [f32],
        sums: &'a mut [i32],
    ) -> Result<QuantizedActs<'a>, Error> {
        check_quantize_buffers(x, k, q, scales, sums)?;
        for (((row, qrow), s), sum) in x
            .chunks_exact(k)
            .zip(q.chunks_exact_mut(k))
            .zip(scales.iter_mut())
            .zip(sums.iter_mut())
        {
            // SAFETY: as above; chunk lengths are equal.
            let r = unsafe { (self.table.quantize_row_i8)(row, qrow) };
            *s = r.scale;
            *sum = r.sum;
        }
        QuantizedActs::new(q, scales, sums, k)
    }

    /// Multiply-add family: writes `y[t·M + r]` for every token `t` and every
    /// row `r` in `rows`; `y` is the whole `N × M` output.
    pub fn gemm_i2s(
        &self,
        w: &I2sMatrix<'_>,
        x: &QuantizedActs<'_>,
        rows: Range<usize>,
        y: &mut [f32],
    ) -> Result<(), Error> {
        check_shapes(w.m(), w.k(), x, &rows)?;
        check_len("output (N × M)", x.n() * w.m(), y.len())?;
        // SAFETY: shapes checked; `y` covers N rows of stride M.
        unsafe { self.gemm_i2s_strided(w, x, rows, y.as_mut_ptr(), w.m()) }
    }

    /// [`Dispatch::gemm_i2s`] over a raw output, for thread pools that split
    /// one output buffer by rows: writes exactly `y[t·y_stride + r]` for
    /// `t < N`, `r ∈ rows`.
    ///
    /// # Safety
    /// Those elements must be valid for writes and not accessed by anyone
    /// else during the call; `y_stride ≥ rows.end`.
    pub unsafe fn gemm_i2s_strided(
        &self,
        w: &I2sMatrix<'_>,
        x: &QuantizedActs<'_>,
        rows: Range<usize>,
        y: *mut f32,
        y_stride: usize,
    ) -> Result<(), Error> {
        check_shapes(w.m(), w.k(), x, &rows)?;
        if y_stride < rows.end {
            return Err(Error::RowRange {
                start: rows.start,
                end: rows.end,
                m: y_stride,
            });
        }
        match w.scale() {
            // SAFETY: ISA supported (Dispatch invariant); shapes checked; the
            // caller vouches for `y`.
            WeightScale::Tensor(_) => unsafe { (self.table.gemm_i2s)(w, x, rows, y, y_stride) },
            // SAFETY: as above.
            WeightScale::Blocks256(_) => unsafe {
                scalar::gemm_i2s_block_scaled(w, x, rows, y, y_stride)
            },
        }
        Ok(())
    }

    /// Lookup family: same contract as [`Dispatch::gemm_i2s`] over a
    /// [`TlMatrix`].
    pub fn gemm_tl(
        &self,
        w: &TlMatrix<'_>,
        x: &QuantizedActs<'_>,
        rows: Range<usize>,
        y: &mut [f32],
    ) -> Result<(), Error> {
        check_shapes(w.m(), w.k(), x, &rows)?;
        check_len("output (N × M)", x.n() * w.m(), y.len())?;
        // SAFETY: shapes checked; `y` covers N rows of stride M.
        unsafe { self.gemm_tl_strided(w, x, rows, y.as_mut_ptr(), w.m()) }
    }

    /// [`Dispatch::gemm_tl`] over a raw output.
    ///
    /// # Safety
    /// As for [`Dispatch::gemm_i2s_strided`].
    pub unsafe fn gemm_tl_strided(
        &self,
        w: &TlMatrix<'_>,
        x: &QuantizedActs<'_>,
        rows: Range<usize>,
        y: *mut f32,
        y_stride: usize,
    ) -> Result<(), Error> {
        check_shapes(w.m(), w.k(), x, &rows)?;
        if y_stride < rows.end {
            return Err(Error::RowRange {
                start: rows.start,
                end: rows.end,
                m: y_stride,
            });
        }
        // SAFETY: ISA supported; shapes checked; the caller vouches for `y`.
        unsafe { (self.table.gemm_tl)(w, x, rows, y, y_stride) };
        Ok(())
    }
}

fn check_shapes(
    m: usize,
    k: usize,
    x: &QuantizedActs<'_>,
    rows: &Range<usize>,
) -> Result<(), Error> {
    if x.k() != k {
        return Err(Error::BufferLength {
            what: "activation row length (K)",
            expected: k,
            actual: x.k(),
        });
    }
    if k > MAX_K {
        return Err(Error::BufferLength {
            what: "K (at most MAX_K)",
            expected: MAX_K,
            actual: k,
        });
    }
    if rows.start > rows.end || rows.end > m {
        return Err(Error::RowRange {
            start: rows.start,
            end: rows.end,
            m,
        });
    }
    Ok(())
}
