//! PLACEHOLDER scalar lookup-table reference (delegates to the multiply-add reference).
use crate::format::TlMatrix;
use crate::quant::QuantizedActs;
use core::ops::Range;

pub(crate) unsafe fn gemm_tl(
    w: &TlMatrix<'_>,
    x: &QuantizedActs<'_>,
    rows: Range<usize>,
    y: *mut f32,
    y_stride: usize,
) {
    // SAFETY: same contract.
    unsafe { super::scalar::gemm_i2s(w.inner(), x, rows, y, y_stride) }
}
