//! The Q6_K × Q8_K GEMV on NEON (`smull`/`smlal` of the 6-bit levels
//! against the int8 activations, pairwise widening adds, `mla` by the
//! 16-weight scales). The dotprod table uses it too.

use crate::arch::{dot_multi_with, gemv_in_streams};
use crate::kquant::{
    add_q6k_block, q6k_scale, q8k_scale, Q6K_BLOCK, Q6K_BLOCK_BYTES, Q6K_QH, Q6K_SCALES,
    Q8K_BLOCK_BYTES, Q8K_Q, Q8K_SUMS,
};
use core::arch::aarch64::*;
use core::ops::Range;

/// [`scalar::q6k_block_dot`](crate::arch::scalar::q6k_block_dot) on NEON:
/// the same wrapping `i32`. A level is at most 63, so `L·q` and the sum of
/// two fit in `i16`.
///
/// # Safety
/// `w` must be valid for reading 210 bytes and `x` for 292.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn q6k_block_neon(w: *const u8, x: *const u8) -> i32 {
    // SAFETY: every load is within the 210 bytes of `w` or the 292 of `x`
    // (the caller's contract).
    unsafe {
        let low4 = vdupq_n_u8(0x0f);
        let bits45 = vdupq_n_u8(0x30);
        let mut acc = vdupq_n_s32(0);
        for half in 0..2 {
            // 16 bytes at a time: `c` picks the first or second 16 of each 32.
            for c in 0..2 {
                let l0 = vld1q_u8(w.add(64 * half + 16 * c));
                let l1 = vld1q_u8(w.add(64 * half + 32 + 16 * c));
                let hb = vld1q_u8(w.add(Q6K_QH + 32 * half + 16 * c));
                let levels = [
                    vorrq_u8(vandq_u8(l0, low4), vandq_u8(vshlq_n_u8::<4>(hb), bits45)),
                    vorrq_u8(vandq_u8(l1, low4), vandq_u8(vshlq_n_u8::<2>(hb), bits45)),
                    vorrq_u8(vshrq_n_u8::<4>(l0), vandq_u8(hb, bits45)),
                    vorrq_u8(vshrq_n_u8::<4>(l1), vandq_u8(vshrq_n_u8::<2>(hb), bits45)),
                ];
                for (g, l) in levels.into_iter().enumerate() {
                    let at = 128 * half + 32 * g + 16 * c;
                    let q = vld1q_s8(x.add(Q8K_Q + at).cast());
                    let l = vreinterpretq_s8_u8(l);
                    let p = vmull_s8(vget_low_s8(l), vget_low_s8(q));
                    let p = vmlal_high_s8(p, l, q);
                    let scale = *w.add(Q6K_SCALES + at / 16) as i8 as i32;
                    acc = vmlaq_n_s32(acc, vpaddlq_s16(p), scale);
                }
            }
        }
        // − 32 · Σ_j scale_j · sums_j
        let scales = vld1q_s8(w.add(Q6K_SCALES).cast());
        let (s_lo, s_hi) = (vmovl_s8(vget_low_s8(scales)), vmovl_high_s8(scales));
        let sums = x.add(Q8K_SUMS).cast::<i16>();
        let (m_lo, m_hi) = (
            vreinterpretq_s16_u8(vld1q_u8(sums.cast())),
            vreinterpretq_s16_u8(vld1q_u8(sums.add(8).cast())),
        );
        let mut offset = vmull_s16(vget_low_s16(s_lo), vget_low_s16(m_lo));
        offset = vmlal_high_s16(offset, s_lo, m_lo);
        offset = vmlal_s16(offset, vget_low_s16(s_hi), vget_low_s16(m_hi));
        offset = vmlal_high_s16(offset, s_hi, m_hi);
        acc = vsubq_s32(acc, vshlq_n_s32::<5>(offset));
        vaddvq_s32(acc)
    }
}

/// `S` rows against one activation row, block by block.
#[inline]
#[target_feature(enable = "neon")]
fn dot_q6k_rows<const S: usize>(xq: &[u8], rows: [&[u8]; S]) -> [f32; S] {
    let mut acc = [0f32; S];
    for (b, xb) in xq.chunks_exact(Q8K_BLOCK_BYTES).enumerate() {
        for (a, row) in acc.iter_mut().zip(&rows) {
            let wb = &row[b * Q6K_BLOCK_BYTES..(b + 1) * Q6K_BLOCK_BYTES];
            // SAFETY: `wb` holds 210 bytes and `xb` 292.
            let isum = unsafe { q6k_block_neon(wb.as_ptr(), xb.as_ptr()) };
            *a = add_q6k_block(*a, q6k_scale(wb), q8k_scale(xb), isum);
        }
    }
    acc
}

/// Far-apart row streams as the float GEMVs (`crate::arch::GEMV_STREAMS`).
#[target_feature(enable = "neon")]
pub(crate) unsafe fn gemv_q6k_neon(
    w: &[u8],
    k: usize,
    xq: &[u8],
    rows: Range<usize>,
    y: &mut [f32],
) {
    let row_bytes = k / Q6K_BLOCK * Q6K_BLOCK_BYTES;
    gemv_in_streams(
        w,
        row_bytes,
        rows,
        y,
        |rs| dot_q6k_rows(xq, rs),
        |r| dot_q6k_rows(xq, [r])[0],
    );
}

/// See `Table::dot_q6k_multi`: the GEMV per row and vector.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_q6k_multi_neon(xqs: &[u8], w: &[u8], k: usize, out: &mut [f32]) {
    let xrow = k / Q6K_BLOCK * Q8K_BLOCK_BYTES;
    // SAFETY: forwarded from our caller.
    unsafe { dot_multi_with(gemv_q6k_neon, xqs, xrow, w, k, out) }
}
