//! The Q6_K × Q8_K GEMV on AVX2 (`vpmaddubsw` of the unsigned 6-bit levels
//! against the int8 activations, `vpmaddwd` by the 16-weight scales). The
//! AVX-512 table uses it too: no 512-bit version is written, because no
//! AVX-512 machine was at hand to test and measure one on.

use super::float::row_ptrs;
use super::prefetch_ahead;
use crate::arch::gemv_in_streams;
use crate::kquant::{
    add_q6k_block, q8k_scale, Q6K_BLOCK, Q6K_BLOCK_BYTES, Q6K_D, Q6K_QH, Q6K_SCALES,
    Q8K_BLOCK_BYTES, Q8K_Q, Q8K_SUMS,
};
use core::arch::x86_64::*;
use core::ops::Range;

/// [`scalar::q6k_block_dot`](crate::arch::scalar::q6k_block_dot) on AVX2
/// (the same wrapping `i32`) and the block's `d` (F16C, exact like
/// `math::f16_to_f32`). `maddubs` cannot saturate: a pair is at most
/// `2 · 63 · 128`.
///
/// # Safety
/// `w` must be valid for reading 210 bytes and `x` for 292.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn q6k_block_avx2(w: *const u8, x: *const u8) -> (i32, f32) {
    // SAFETY: every load is within the 210 bytes of `w` or the 292 of `x`
    // (the caller's contract), unaligned.
    unsafe {
        let ld = |p: *const u8| _mm256_loadu_si256(p.cast());
        let low4 = _mm256_set1_epi8(0x0f);
        let bits45 = _mm256_set1_epi8(0x30);
        // The 16 scales as i16; dword `j` holds those of weights
        // `32j .. 32j + 32`: `vpermd` spreads it, `pshufb` repeats its low
        // half over the low 128-bit lane and its high half over the high one.
        let scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(Q6K_SCALES).cast()));
        let spread = _mm256_setr_epi8(
            0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, //
            2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
        );
        let mut acc = _mm256_setzero_si256();
        for half in 0..2 {
            let l0 = ld(w.add(64 * half));
            let l1 = ld(w.add(64 * half + 32));
            let hb = ld(w.add(Q6K_QH + 32 * half));
            // 16-bit shifts move bits across bytes; the masks drop them.
            let levels = [
                _mm256_or_si256(
                    _mm256_and_si256(l0, low4),
                    _mm256_and_si256(_mm256_slli_epi16::<4>(hb), bits45),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(l1, low4),
                    _mm256_and_si256(_mm256_slli_epi16::<2>(hb), bits45),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(l0), low4),
                    _mm256_and_si256(hb, bits45),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(l1), low4),
                    _mm256_and_si256(_mm256_srli_epi16::<2>(hb), bits45),
                ),
            ];
            for (g, l) in levels.into_iter().enumerate() {
                let j = 4 * half + g;
                let q = ld(x.add(Q8K_Q + 32 * j));
                let s = _mm256_permutevar8x32_epi32(scales, _mm256_set1_epi32(j as i32));
                let s = _mm256_shuffle_epi8(s, spread);
                let pairs = _mm256_maddubs_epi16(l, q);
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, s));
            }
        }
        // − 32 · Σ_j scale_j · sums_j
        let offset = _mm256_madd_epi16(scales, ld(x.add(Q8K_SUMS)));
        acc = _mm256_sub_epi32(acc, _mm256_slli_epi32::<5>(offset));
        let s = _mm_add_epi32(
            _mm256_castsi256_si128(acc),
            _mm256_extracti128_si256::<1>(acc),
        );
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        let d = w.add(Q6K_D).cast::<u16>().read_unaligned();
        let d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(d as i32)));
        (_mm_cvtsi128_si32(s), d)
    }
}

/// `S` rows against one activation row, block by block: the activation
/// block is read once from L1 per row while the rows stream from memory.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn dot_q6k_rows_avx2<const S: usize>(xq: &[u8], rows: [&[u8]; S]) -> [f32; S] {
    let nb = xq.len() / Q8K_BLOCK_BYTES;
    let wp = row_ptrs(&rows, nb * Q6K_BLOCK_BYTES);
    let mut acc = [0f32; S];
    for (b, xb) in xq.chunks_exact(Q8K_BLOCK_BYTES).enumerate() {
        let dx = q8k_scale(xb);
        for (a, w) in acc.iter_mut().zip(&wp) {
            let wb = w.wrapping_add(b * Q6K_BLOCK_BYTES);
            // Two requests per 64-byte line, as the other GEMVs (see there).
            for off in (0..Q6K_BLOCK_BYTES).step_by(32) {
                prefetch_ahead(wb.wrapping_add(off));
            }
            // SAFETY: block `b < nb` of a row of `nb` blocks (`row_ptrs`
            // checked the length) holds 210 bytes; `xb` holds 292.
            let (isum, dw) = unsafe { q6k_block_avx2(wb, xb.as_ptr()) };
            *a = add_q6k_block(*a, dw, dx, isum);
        }
    }
    acc
}

/// Far-apart row streams as the float GEMVs (`crate::arch::GEMV_STREAMS`).
#[target_feature(enable = "avx2,f16c")]
pub(crate) unsafe fn gemv_q6k_avx2(
    w: &[u8],
    k: usize,
    xq: &[u8],
    rows: Range<usize>,
    y: &mut [f32],
) {
    let row_bytes = k / Q6K_BLOCK * Q6K_BLOCK_BYTES;
    let row = |r: usize| &w[r * row_bytes..(r + 1) * row_bytes];
    gemv_in_streams(
        rows,
        y,
        |rs| dot_q6k_rows_avx2(xq, rs.map(row)),
        |r| dot_q6k_rows_avx2(xq, [row(r)])[0],
    );
}
