//! Ternary weight formats.
//!
//! * [`I2sMatrix`]: bitnet.cpp's I2_S (GGUF type 36), viewed in place. This is
//!   also the multiply-add kernels' native layout, so I2_S files run zero-copy.
//! * [`Tq2Matrix`], [`Tq1Matrix`]: llama.cpp's TQ2_0 (35) and TQ1_0 (34),
//!   viewed in place and repacked losslessly into I2_S codes for the kernels.
//! * [`TlMatrix`]: the lookup-table kernels' row-interleaved layout, packed
//!   from I2_S codes.
//!
//! Every matrix is `M` output rows × `K` inputs (GGUF `ne0 = K`, `ne1 = M`),
//! row-major. A *trit* is a weight in `{-1, 0, 1}`; a *code* is `trit + 1`.

mod i2s;
mod tl;
mod tq1;
mod tq2;

pub use i2s::{decode_i2s_row, encode_i2s_row, I2sMatrix, WeightScale, I2S_BLOCK, I2S_TAIL_BYTES};
pub use tl::{TlMatrix, TL_ROW_TILE};
pub use tq1::{decode_tq1_row, encode_tq1_row, Tq1Matrix, TQ1_BLOCK_BYTES};
pub use tq2::{decode_tq2_row, encode_tq2_row, Tq2Matrix, TQ2_BLOCK_BYTES};

/// Weights per block of the TQ formats (and per scale of a block-scaled matrix).
pub const TQ_BLOCK: usize = 256;

/// Exact IEEE half → single conversion (no_std, no tables).
pub fn f16_to_f32(h: u16) -> f32 {
    crate::math::f16_to_f32(h)
}

/// IEEE single → half, round to nearest even (what F16C and `vcvt` do).
pub fn f32_to_f16(x: f32) -> u16 {
    crate::math::f32_to_f16(x)
}

/// Collapses per-256-block scales to one per-tensor scale when they agree
/// (every BitNet checkpoint), which lets the fast kernels run.
pub fn collapse_block_scales(scales: &[f32]) -> Option<f32> {
    let first = *scales.first()?;
    scales
        .iter()
        .all(|s| s.to_bits() == first.to_bits())
        .then_some(first)
}
