//! The Q6_K LM head: ggml's Q6_K weights against Q8_K activations.
//!
//! A head re-quantized to Q6_K reads 6.56 bits per weight instead of F16's
//! 16. Its dot product runs on integers, as ggml's `Q6_K × Q8_K` does: the
//! activation row is quantized once per token to int8 with one f32 scale per
//! 256 values ([`quantize_row_q8k`]), each block's `Σ_j scale_j·Σ (L − 32)·q`
//! is exact in `i32`, and one shared f32 step adds `d_w·d_x·Σ` to the row's
//! sum in block order. So **every SIMD path equals the scalar reference bit
//! for bit**, like the ternary matmuls and unlike the float helpers (a NaN
//! result aside, from NaN scales: Rust leaves its payload unspecified).
//!
//! # Layouts
//! * Q6_K block, [`Q6K_BLOCK_BYTES`] per [`Q6K_BLOCK`] weights: `ql[128]`,
//!   `qh[64]`, `scales[16]` (i8), `d` (f16, little-endian). Weight `i` is
//!   `d · scales[i / 16] · (L_i − 32)` with the 6-bit level `L_i` of
//!   [`q6k_level`].
//! * Q8_K block, [`Q8K_BLOCK_BYTES`] per 256 activations: `d` (f32 LE),
//!   `q[256]` (i8), `sums[16]` (i16 LE, `sums[j] = Σ q[16j .. 16j + 16]`).
//!   Activation `i` is `d · q[i]`. The kernels trust `sums`: a buffer not
//!   made by [`quantize_row_q8k`] still gives the same (wrapping) result on
//!   every path, just not a meaningful one.

use crate::dispatch::Dispatch;
use crate::error::{check_len, Error};
use crate::float::{check_gemv, check_multi};
use crate::math;
use core::ops::Range;

/// Weights per Q6_K block, and activations per Q8_K block.
pub const Q6K_BLOCK: usize = 256;
/// Bytes per Q6_K block.
pub const Q6K_BLOCK_BYTES: usize = 210;
/// Bytes per Q8_K block.
pub const Q8K_BLOCK_BYTES: usize = 292;

/// Byte offsets inside a Q6_K block.
pub(crate) const Q6K_QH: usize = 128;
pub(crate) const Q6K_SCALES: usize = 192;
pub(crate) const Q6K_D: usize = 208;
/// Byte offsets inside a Q8_K block.
pub(crate) const Q8K_Q: usize = 4;
pub(crate) const Q8K_SUMS: usize = 260;

/// The 6-bit level `L ∈ [0, 64)` of weight `i < 256` of a Q6_K `block`.
///
/// Each half of 128 weights has 64 bytes of `ql` and 32 of `qh`; its weight
/// `32g + l` (`g < 4`, `l < 32`) takes the low (`g < 2`) or high nibble of
/// `ql[l + 32·(g mod 2)]` and bits `2g, 2g + 1` of `qh[l]`.
#[inline(always)]
pub fn q6k_level(block: &[u8], i: usize) -> u8 {
    let (half, j) = (i / 128, i % 128);
    let (g, l) = (j / 32, j % 32);
    let lo = (block[64 * half + 32 * (g % 2) + l] >> (4 * (g / 2))) & 0xf;
    let hi = (block[Q6K_QH + 32 * half + l] >> (2 * g)) & 3;
    lo | hi << 4
}

/// Dequantizes a row of Q6_K blocks: `out` gets `row.len() / 210 · 256`
/// weights, each `d · scale · (L − 32)` rounded once per product.
pub fn dequantize_row_q6k(row: &[u8], out: &mut [f32]) -> Result<(), Error> {
    check_len(
        "Q6_K dequantized row",
        row.len() / Q6K_BLOCK_BYTES * Q6K_BLOCK,
        out.len(),
    )?;
    for (block, y) in row
        .chunks_exact(Q6K_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(Q6K_BLOCK))
    {
        let d = q6k_scale(block);
        for (i, v) in y.iter_mut().enumerate() {
            let sc = block[Q6K_SCALES + i / 16] as i8 as f32;
            *v = d * sc * (q6k_level(block, i) as i32 - 32) as f32;
        }
    }
    Ok(())
}

/// Quantizes `x` (a multiple of 256 long) to Q8_K blocks in `out`
/// (`x.len() / 256 · 292` bytes): per block `d = max|x| / 127` and
/// `q = round_ties_even(x · 127 / max|x|)` in `[-127, 127]`; an all-zero
/// block gets `d = 0`. NaN quantizes to 0 and is not counted in `max|x|`.
pub fn quantize_row_q8k(x: &[f32], out: &mut [u8]) -> Result<(), Error> {
    if !x.len().is_multiple_of(Q6K_BLOCK) {
        return Err(Error::KNotMultiple {
            k: x.len(),
            block: Q6K_BLOCK,
        });
    }
    check_len(
        "Q8_K activations",
        x.len() / Q6K_BLOCK * Q8K_BLOCK_BYTES,
        out.len(),
    )?;
    for (x, block) in x
        .chunks_exact(Q6K_BLOCK)
        .zip(out.chunks_exact_mut(Q8K_BLOCK_BYTES))
    {
        let amax = x.iter().fold(0.0f32, |m, &v| m.max(math::abs(v)));
        let (d, iscale) = if amax > 0.0 {
            (amax / 127.0, 127.0 / amax)
        } else {
            (0.0, 0.0)
        };
        block[..Q8K_Q].copy_from_slice(&d.to_le_bytes());
        let (q, sums) = block[Q8K_Q..].split_at_mut(Q6K_BLOCK);
        for ((xs, qs), s) in x
            .chunks_exact(16)
            .zip(q.chunks_exact_mut(16))
            .zip(sums.chunks_exact_mut(2))
        {
            let mut sum = 0i16;
            for (o, &v) in qs.iter_mut().zip(xs) {
                // `as` saturates (±inf·0 is NaN, which becomes 0).
                let r = math::round_ties_even(v * iscale).clamp(-127.0, 127.0) as i8;
                *o = r as u8;
                sum += r as i16;
            }
            s.copy_from_slice(&sum.to_le_bytes());
        }
    }
    Ok(())
}

/// `d` of a Q6_K block.
#[inline(always)]
pub(crate) fn q6k_scale(block: &[u8]) -> f32 {
    math::f16_to_f32(u16::from_le_bytes([block[Q6K_D], block[Q6K_D + 1]]))
}

/// `d` of a Q8_K block.
#[inline(always)]
pub(crate) fn q8k_scale(block: &[u8]) -> f32 {
    f32::from_le_bytes([block[0], block[1], block[2], block[3]])
}

/// The shared epilogue: the row's running sum plus one block with scales
/// `dw`, `dx` and exact integer dot `isum`. Every path calls this, block
/// after block, so their sums round identically.
#[inline(always)]
pub(crate) fn add_q6k_block(acc: f32, dw: f32, dx: f32, isum: i32) -> f32 {
    acc + dw * dx * isum as f32
}

impl Dispatch {
    /// Q6_K GEMV: `w` is `M × K/256` Q6_K blocks, `xq` one row of `K/256`
    /// Q8_K blocks ([`quantize_row_q8k`]); `y[r - rows.start] =
    /// Σ_blocks d_w·d_x·Σ_i scale·(L_i − 32)·q_i` for `r ∈ rows`.
    pub fn gemv_q6k(
        &self,
        w: &[u8],
        k: usize,
        xq: &[u8],
        rows: Range<usize>,
        y: &mut [f32],
    ) -> Result<(), Error> {
        if !k.is_multiple_of(Q6K_BLOCK) {
            return Err(Error::KNotMultiple {
                k,
                block: Q6K_BLOCK,
            });
        }
        let blocks = k / Q6K_BLOCK;
        let xq_len = (xq.len(), blocks * Q8K_BLOCK_BYTES);
        check_gemv(w.len(), k, blocks * Q6K_BLOCK_BYTES, xq_len, &rows, y)?;
        // SAFETY: ISA supported (Dispatch invariant); shapes checked above.
        unsafe { (self.table.gemv_q6k)(w, k, xq, rows, y) };
        Ok(())
    }

    /// Q6_K rows against several Q8_K vectors (the LM head of a batched
    /// step): `w` holds `M` rows of `K/256` Q6_K blocks and `xqs` `N` rows of
    /// `K/256` Q8_K blocks, back to back; `out[r·N + t]` is
    /// [`Dispatch::gemv_q6k`] of row `r` against vector `t`, bit for bit, so
    /// `out` is `M × N`. The kernels unpack each block once for several
    /// vectors.
    pub fn dot_q6k_multi(
        &self,
        xqs: &[u8],
        w: &[u8],
        k: usize,
        out: &mut [f32],
    ) -> Result<(), Error> {
        if !k.is_multiple_of(Q6K_BLOCK) {
            return Err(Error::KNotMultiple {
                k,
                block: Q6K_BLOCK,
            });
        }
        let blocks = k / Q6K_BLOCK;
        check_multi(
            k,
            (
                "dot_q6k_multi vectors (Q8_K)",
                xqs.len(),
                blocks * Q8K_BLOCK_BYTES,
            ),
            (
                "dot_q6k_multi rows (Q6_K)",
                w.len(),
                blocks * Q6K_BLOCK_BYTES,
            ),
            ("dot_q6k_multi output (rows × vectors)", out.len()),
        )?;
        // SAFETY: ISA supported (Dispatch invariant); shapes checked above.
        unsafe { (self.table.dot_q6k_multi)(xqs, w, k, out) };
        Ok(())
    }
}
