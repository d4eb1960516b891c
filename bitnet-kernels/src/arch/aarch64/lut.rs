//! NEON lookup-table kernel: what differs from the scalar [`Lut`] kernel.
//!
//! As on AVX2, each `i16` entry `T` is split into byte planes `T & 127` and
//! `T >> 7 ∈ [−4, 3]` so that `vqtbl1q_u8` looks up 16 rows at a time and
//! the two lookups of a step add in bytes without overflow: `L` pairs
//! (≤ 254) then widen-add into `u16` (`uaddw`), `H` adds in `i8` for 16
//! steps (32 lookups, ≥ −128) and then joins them as `128·H`. Those 16-bit
//! sums wrap, but the exact block sum `ΣL + 128·ΣH` fits `i16` (see
//! `arch::lut`), so it is what they hold at the end of a block.

use crate::arch::lut::{code_weight, gemm, Lut, BLOCK};
use crate::format::{TlMatrix, TL_ROW_TILE};
use crate::quant::QuantizedActs;
use core::arch::aarch64::*;
use core::ops::Range;

/// Bytes of codes per 128-activation block of one tile.
const BLOCK_CODES: usize = BLOCK / 4 * TL_ROW_TILE;
/// Bytes of plane tables per pair.
const PAIR_TABLE_BYTES: usize = 32;
/// Bytes of plane tables per 128-activation block.
const BLOCK_TABLES: usize = BLOCK / 2 * PAIR_TABLE_BYTES;

pub(crate) struct Neon;

impl Lut for Neon {
    const PAIR_BYTES: usize = PAIR_TABLE_BYTES;

    #[inline(always)]
    unsafe fn build(acts: &[i8], table: &mut [u8]) {
        // SAFETY: NEON is baseline on AArch64.
        unsafe { build_planes_neon(acts, table) }
    }

    #[inline(always)]
    unsafe fn tile(table: &[u8], codes: &[u8], acc: &mut [i32; TL_ROW_TILE]) {
        // SAFETY: NEON is baseline on AArch64.
        unsafe { tile_neon(table, codes, acc) }
    }
}

/// Plane tables, as on AVX2: pair `p` is, at `32p`, the 16 bytes `T & 127`
/// then the 16 bytes `T >> 7` (in `[−4, 3]`) of its entries `T`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn build_planes_neon(acts: &[i8], table: &mut [u8]) {
    assert!(acts.len().is_multiple_of(2) && table.len() == acts.len() * 16);
    let weights = |first: bool, from: usize| -> [i16; 8] {
        core::array::from_fn(|i| {
            let e = from + i;
            code_weight(if first { e >> 2 } else { e & 3 })
        })
    };
    let (w0a, w0b, w1a, w1b) = (
        weights(true, 0),
        weights(true, 8),
        weights(false, 0),
        weights(false, 8),
    );
    // SAFETY: the constants are 8 lanes each; each pair writes its own 32
    // bytes of `table`, whose length was checked above.
    unsafe {
        let (w0a, w0b) = (vld1q_s16(w0a.as_ptr()), vld1q_s16(w0b.as_ptr()));
        let (w1a, w1b) = (vld1q_s16(w1a.as_ptr()), vld1q_s16(w1b.as_ptr()));
        let low7 = vdupq_n_s16(0x7f);
        for (pair, out) in acts
            .chunks_exact(2)
            .zip(table.chunks_exact_mut(PAIR_TABLE_BYTES))
        {
            let a0 = vdupq_n_s16(pair[0] as i16);
            let a1 = vdupq_n_s16(pair[1] as i16);
            // Entries 0..8 and 8..16.
            let t = [
                vmlaq_s16(vmulq_s16(a0, w0a), a1, w1a),
                vmlaq_s16(vmulq_s16(a0, w0b), a1, w1b),
            ];
            let low = t.map(|t| vreinterpretq_u8_s16(vandq_s16(t, low7)));
            let high = t.map(|t| vreinterpretq_u8_s16(vshrq_n_s16::<7>(t)));
            // Little-endian: the even bytes are each word's low byte.
            vst1q_u8(out.as_mut_ptr(), vuzp1q_u8(low[0], low[1]));
            vst1q_u8(out.as_mut_ptr().add(16), vuzp1q_u8(high[0], high[1]));
        }
    }
}

#[target_feature(enable = "neon")]
#[inline]
unsafe fn tile_neon(table: &[u8], codes: &[u8], acc: &mut [i32; TL_ROW_TILE]) {
    const QUARTERS: usize = TL_ROW_TILE / 16;
    let blocks = codes.len() / BLOCK_CODES;
    assert!(codes.len().is_multiple_of(BLOCK_CODES) && table.len() == blocks * BLOCK_TABLES);
    // SAFETY: block `b` reads codes `[b·2048, (b+1)·2048)` and tables
    // `[b·2048, (b+1)·2048)`, within the lengths checked above; `acc` is 64 i32.
    unsafe {
        let nib = vdupq_n_u8(0x0f);
        let acc_ptr = acc.as_mut_ptr();
        for b in 0..blocks {
            let c = codes.as_ptr().add(b * BLOCK_CODES);
            let t = table.as_ptr().add(b * BLOCK_TABLES);
            // Per 16-row quarter, rows 0..8 and 8..16, as wrapping 16-bit sums.
            let mut sums = [[vdupq_n_u16(0); 2]; QUARTERS];
            for part in 0..2 {
                let mut high = [vdupq_n_s8(0); QUARTERS];
                for s in 16 * part..16 * part + 16 {
                    let p = t.add(2 * s * PAIR_TABLE_BYTES);
                    let (l0, h0) = (vld1q_u8(p), vld1q_u8(p.add(16)));
                    let (l1, h1) = (vld1q_u8(p.add(32)), vld1q_u8(p.add(48)));
                    for q in 0..QUARTERS {
                        let w = vld1q_u8(c.add(s * TL_ROW_TILE + 16 * q));
                        let (i0, i1) = (vshrq_n_u8::<4>(w), vandq_u8(w, nib));
                        let l = vaddq_u8(vqtbl1q_u8(l0, i0), vqtbl1q_u8(l1, i1));
                        let h = vaddq_u8(vqtbl1q_u8(h0, i0), vqtbl1q_u8(h1, i1));
                        high[q] = vaddq_s8(high[q], vreinterpretq_s8_u8(h));
                        sums[q][0] = vaddw_u8(sums[q][0], vget_low_u8(l));
                        sums[q][1] = vaddw_high_u8(sums[q][1], l);
                    }
                }
                for q in 0..QUARTERS {
                    let h = [
                        vshll_n_s8::<7>(vget_low_s8(high[q])),
                        vshll_high_n_s8::<7>(high[q]),
                    ];
                    for e in 0..2 {
                        sums[q][e] = vaddq_u16(sums[q][e], vreinterpretq_u16_s16(h[e]));
                    }
                }
            }
            for q in 0..QUARTERS {
                for e in 0..2 {
                    let v = vreinterpretq_s16_u16(sums[q][e]);
                    let rows = [vmovl_s16(vget_low_s16(v)), vmovl_high_s16(v)];
                    for (r, v) in rows.into_iter().enumerate() {
                        let a = acc_ptr.add(16 * q + 8 * e + 4 * r);
                        vst1q_s32(a, vaddq_s32(vld1q_s32(a), v));
                    }
                }
            }
        }
    }
}

/// NEON entry (`Table::gemm_tl`), shared by the plain and dotprod tables.
///
/// # Safety
/// As [`gemm`] (NEON is baseline on AArch64).
#[target_feature(enable = "neon")]
pub(crate) unsafe fn gemm_tl_neon(
    w: &TlMatrix<'_>,
    x: &QuantizedActs<'_>,
    rows: Range<usize>,
    y: *mut f32,
    y_stride: usize,
) {
    // SAFETY: same contract; NEON is enabled here.
    unsafe { gemm::<Neon>(w, x, rows, y, y_stride) }
}
