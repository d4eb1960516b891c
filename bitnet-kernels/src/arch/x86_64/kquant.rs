//! The Q6_K × Q8_K GEMV on x86: `vpmaddubsw` of the unsigned 6-bit levels
//! against the int8 activations, then the 16-weight scales: `vpmaddwd` on
//! AVX2, `vpdpwssd` on AVX-512 (VNNI). Each ISA writes only its block kernel
//! ([`Q6kBlock`]); the GEMV, the batched tiles and their row order are
//! written once over it.

use super::float::row_ptrs;
use super::{prefetch_ahead, prefetch_line, tiles};
use crate::arch::{gemv_in_streams, multi_in_streams};
use crate::kquant::{
    add_q6k_block, q8k_scale, Q6K_BLOCK, Q6K_BLOCK_BYTES, Q6K_D, Q6K_QH, Q6K_SCALES,
    Q8K_BLOCK_BYTES, Q8K_Q, Q8K_SUMS,
};
use core::arch::x86_64::*;
use core::ops::Range;

/// [`scalar::q6k_block_dot`](crate::arch::scalar::q6k_block_dot) of one
/// Q6_K block against `T` Q8_K blocks, on AVX2 (the same wrapping `i32`):
/// the block's levels and scales are unpacked once for all `T`.
/// `maddubs` cannot saturate: a pair is at most `2 · 63 · 128`.
///
/// # Safety
/// `w` must be valid for reading 210 bytes and every `xs[t]` for 292.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q6k_block_avx2<const T: usize>(w: *const u8, xs: [*const u8; T]) -> [i32; T] {
    // SAFETY: every load is within the 210 bytes of `w` or the 292 of an
    // `xs[t]` (the caller's contract), unaligned.
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
        let mut acc = [_mm256_setzero_si256(); T];
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
                let s = _mm256_permutevar8x32_epi32(scales, _mm256_set1_epi32(j as i32));
                let s = _mm256_shuffle_epi8(s, spread);
                for (a, x) in acc.iter_mut().zip(&xs) {
                    let pairs = _mm256_maddubs_epi16(l, ld(x.add(Q8K_Q + 32 * j)));
                    *a = _mm256_add_epi32(*a, _mm256_madd_epi16(pairs, s));
                }
            }
        }
        let mut out = [0i32; T];
        for ((o, a), x) in out.iter_mut().zip(acc).zip(&xs) {
            // − 32 · Σ_j scale_j · sums_j
            let offset = _mm256_madd_epi16(scales, ld(x.add(Q8K_SUMS)));
            let a = _mm256_sub_epi32(a, _mm256_slli_epi32::<5>(offset));
            let s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
            *o = _mm_cvtsi128_si32(s);
        }
        out
    }
}

/// For [`q6k_block_avx512`]: lane `i` of entry `2·half + g` is the index of
/// the scale of i16 pair `i` of weights `128·half + 64·g ..`, i.e. of
/// weights `128·half + 64·g + 2i, +1`, whose 16-weight group is
/// `8·half + 4·g + i/8`.
static Q6K_SCALE_LANES: [[i16; 32]; 4] = {
    let mut idx = [[0i16; 32]; 4];
    let mut e = 0;
    while e < 4 {
        let mut i = 0;
        while i < 32 {
            idx[e][i] = (4 * e + i / 8) as i16;
            i += 1;
        }
        e += 1;
    }
    idx
};

/// [`q6k_block_avx2`] on AVX-512: 64 weights per step (the two 32-byte
/// halves of a step's `ql` load unpack with per-half shift counts), and
/// `vpdpwssd` multiplies the i16 pairs by their scales and accumulates in
/// one instruction. The same wrapping `i32`, so the same result bit for bit.
///
/// # Safety
/// As [`q6k_block_avx2`], and AVX-512 (F, BW, VNNI) must be present.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,f16c")]
unsafe fn q6k_block_avx512<const T: usize>(w: *const u8, xs: [*const u8; T]) -> [i32; T] {
    // SAFETY: every load is within the 210 bytes of `w` or the 292 of an
    // `xs[t]` (the caller's contract), or of `Q6K_SCALE_LANES`; unaligned.
    unsafe {
        let ld = |p: *const u8| _mm512_loadu_si512(p.cast());
        let low4 = _mm512_set1_epi8(0x0f);
        let bits45 = _mm512_set1_epi8(0x30);
        // `ql[64·half ..]` holds weights `+0 .. 32` (low 256 bits) and
        // `+32 .. 64` (high) in its low nibbles, `+64 .. 96` and `+96 .. 128`
        // in its high ones; their bits 4–5 are `qh` bit pairs 0, 1, 2, 3,
        // brought to bits 4–5 by these 16-bit shifts (the masks drop what
        // crosses a byte).
        let per_half = |lo: i16, hi: i16| {
            _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi16(lo), _mm512_set1_epi16(hi))
        };
        let (shl_lo, shr_hi) = (per_half(4, 2), per_half(0, 2));
        let scales = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128(
            w.add(Q6K_SCALES).cast(),
        )));
        let mut acc = [_mm512_setzero_si512(); T];
        for half in 0..2 {
            let l = ld(w.add(64 * half));
            let hb = _mm512_broadcast_i64x4(_mm256_loadu_si256(w.add(Q6K_QH + 32 * half).cast()));
            let levels = [
                _mm512_or_si512(
                    _mm512_and_si512(l, low4),
                    _mm512_and_si512(_mm512_sllv_epi16(hb, shl_lo), bits45),
                ),
                _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(l), low4),
                    _mm512_and_si512(_mm512_srlv_epi16(hb, shr_hi), bits45),
                ),
            ];
            for (g, lv) in levels.into_iter().enumerate() {
                let e = 2 * half + g;
                let s = _mm512_permutexvar_epi16(ld(Q6K_SCALE_LANES[e].as_ptr().cast()), scales);
                for (a, x) in acc.iter_mut().zip(&xs) {
                    let pairs = _mm512_maddubs_epi16(lv, ld(x.add(Q8K_Q + 64 * e)));
                    *a = _mm512_dpwssd_epi32(*a, pairs, s);
                }
            }
        }
        let mut out = [0i32; T];
        for ((o, a), x) in out.iter_mut().zip(acc).zip(&xs) {
            // − 32 · Σ_j scale_j · sums_j
            let sums = _mm256_loadu_si256(x.add(Q8K_SUMS).cast());
            let offset = _mm256_madd_epi16(_mm512_castsi512_si256(scales), sums);
            let offset = _mm512_slli_epi32::<5>(_mm512_zextsi256_si512(offset));
            *o = _mm512_reduce_add_epi32(_mm512_sub_epi32(a, offset));
        }
        out
    }
}

/// An ISA's Q6_K block kernel, what the GEMV and the batched tiles below
/// are written over: `dot::<T>(w, xs)` is [`q6k_block_avx2`]'s contract.
trait Q6kBlock {
    /// # Safety
    /// The ISA is present; as [`q6k_block_avx2`].
    unsafe fn dot<const T: usize>(w: *const u8, xs: [*const u8; T]) -> [i32; T];
}

struct Avx2;
impl Q6kBlock for Avx2 {
    #[inline(always)]
    unsafe fn dot<const T: usize>(w: *const u8, xs: [*const u8; T]) -> [i32; T] {
        // SAFETY: forwarded contract.
        unsafe { q6k_block_avx2(w, xs) }
    }
}

struct Avx512;
impl Q6kBlock for Avx512 {
    #[inline(always)]
    unsafe fn dot<const T: usize>(w: *const u8, xs: [*const u8; T]) -> [i32; T] {
        // SAFETY: forwarded contract.
        unsafe { q6k_block_avx512(w, xs) }
    }
}

/// `d` of the Q6_K block at `w` (F16C, exact like `math::f16_to_f32`).
///
/// # Safety
/// `w` must be valid for reading 210 bytes.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn q6k_d_avx2(w: *const u8) -> f32 {
    // SAFETY: `d` is at bytes 208..210 of the block (the caller's contract).
    let d = unsafe { w.add(Q6K_D).cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(d as i32)))
}

/// `S` rows against one activation row, block by block: the activation
/// block is read once from L1 per row while the rows stream from memory.
///
/// # Safety
/// `K`'s ISA is present (this is inlined into its `#[target_feature]` entry).
#[inline(always)]
unsafe fn dot_q6k_rows<K: Q6kBlock, const S: usize>(xq: &[u8], rows: [&[u8]; S]) -> [f32; S] {
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
            // checked the length) holds 210 bytes; `xb` holds 292; the ISA
            // is present (our contract).
            let (isum, dw) = unsafe { (K::dot(wb, [xb.as_ptr()])[0], q6k_d_avx2(wb)) };
            *a = add_q6k_block(*a, dw, dx, isum);
        }
    }
    acc
}

/// One Q6_K row (`nb` blocks) against `T` Q8_K rows `xs[t·nb·292 ..]`,
/// block by block, each block's levels unpacked once for all `T`; `out[t]`
/// equals [`dot_q6k_rows`] of the row and vector `t` bit for bit.
/// Prefetches the same place in the next row (`nb·210` bytes on).
///
/// # Safety
/// As [`dot_q6k_rows`].
#[inline(always)]
unsafe fn dot_q6k_tile<K: Q6kBlock, const T: usize>(xs: &[u8], row: &[u8], nb: usize) -> [f32; T] {
    let xrow = nb * Q8K_BLOCK_BYTES;
    let xs = &xs[..T * xrow];
    let row = &row[..nb * Q6K_BLOCK_BYTES];
    // Raw pointers, not `T` slices: a slice per vector and block spilled
    // every accumulator to the stack.
    let mut xp = [xs.as_ptr(); T];
    for (t, p) in xp.iter_mut().enumerate() {
        *p = p.wrapping_add(t * xrow);
    }
    let mut acc = [0f32; T];
    for (b, wb) in row.chunks_exact(Q6K_BLOCK_BYTES).enumerate() {
        let next = wb.as_ptr().wrapping_add(row.len());
        for off in (0..Q6K_BLOCK_BYTES).step_by(32) {
            prefetch_line(next.wrapping_add(off));
        }
        let xb = xp.map(|p| p.wrapping_add(b * Q8K_BLOCK_BYTES));
        // SAFETY: `wb` holds 210 bytes; each `xb[t]` starts block `b < nb`
        // (292 bytes) of vector `t < T`, inside `xs`; the ISA is present.
        let (isum, dw) = unsafe { (K::dot(wb.as_ptr(), xb), q6k_d_avx2(wb.as_ptr())) };
        for ((a, x), isum) in acc.iter_mut().zip(xb).zip(isum) {
            // SAFETY: as above; `d` is the block's first 4 bytes.
            let dx = f32::from_le_bytes(unsafe { x.cast::<[u8; 4]>().read_unaligned() });
            *a = add_q6k_block(*a, dw, dx, isum);
        }
    }
    acc
}

/// One Q6_K row (`nb` blocks) against every Q8_K vector of `xqs`, in
/// [`dot_q6k_tile`]s of up to 6 vectors; `out[t]` for vector `t`.
///
/// # Safety
/// As [`dot_q6k_rows`].
#[inline(always)]
unsafe fn dot_q6k_row_multi<K: Q6kBlock>(xqs: &[u8], row: &[u8], nb: usize, out: &mut [f32]) {
    let xrow = nb * Q8K_BLOCK_BYTES;
    tiles!(out.len(), [1, 2, 3, 4, 5; 6], |t0, T| {
        // SAFETY: forwarded from our caller.
        let tile = unsafe { dot_q6k_tile::<K, T>(&xqs[t0 * xrow..], row, nb) };
        out[t0..t0 + T].copy_from_slice(&tile);
    });
}

/// See `Table::dot_q6k_multi`: `row_multi` ([`dot_q6k_row_multi`] compiled
/// for the ISA, so that its block kernel inlines; a closure here would not
/// have the ISA's features and called the kernel once per block) for each
/// row. A row `j` is followed by row `j + m/2`, so the rows arrive as two
/// streams half the matrix apart, as in the F16 batched head. On the AVX2 VM
/// (2026-11-30; a random 2B-shaped Q6_K head, 6 vectors, one thread) this
/// took 51–78 ms per pass against 117–162 for the GEMV per row and vector,
/// alternated in one process (1 × 4 tiles: 66–84).
///
/// # Safety
/// As [`dot_q6k_rows`], and the table's `dot_q6k_multi` contract.
#[inline(always)]
unsafe fn dot_q6k_multi(
    xqs: &[u8],
    w: &[u8],
    k: usize,
    out: &mut [f32],
    row_multi: unsafe fn(&[u8], &[u8], usize, &mut [f32]),
) {
    let nb = k / Q6K_BLOCK;
    let (wrow, xrow) = (nb * Q6K_BLOCK_BYTES, nb * Q8K_BLOCK_BYTES);
    let n = xqs.len() / xrow;
    // Rows 0, h, 1, h + 1, … (h = m/2), then the last one when `m` is odd.
    multi_in_streams::<_, 2>(
        w,
        wrow,
        n,
        out,
        |rs, outs| {
            for (r, o) in rs.into_iter().zip(outs) {
                // SAFETY: forwarded from our caller.
                unsafe { row_multi(xqs, r, nb, o) };
            }
        },
        // SAFETY: as above.
        |r, o| unsafe { row_multi(xqs, r, nb, o) },
    );
}

/// Far-apart row streams as the float GEMVs (`crate::arch::GEMV_STREAMS`).
///
/// # Safety
/// As [`dot_q6k_rows`], and the table's `gemv_q6k` contract.
#[inline(always)]
unsafe fn gemv_q6k<K: Q6kBlock>(w: &[u8], k: usize, xq: &[u8], rows: Range<usize>, y: &mut [f32]) {
    let row_bytes = k / Q6K_BLOCK * Q6K_BLOCK_BYTES;
    gemv_in_streams(
        w,
        row_bytes,
        rows,
        y,
        // SAFETY: forwarded from our caller.
        |rs| unsafe { dot_q6k_rows::<K, _>(xq, rs) },
        // SAFETY: as above.
        |r| unsafe { dot_q6k_rows::<K, 1>(xq, [r])[0] },
    );
}

/// The table entries: [`gemv_q6k`] and [`dot_q6k_multi`] over each ISA's block.
macro_rules! q6k_entries {
    ($isa:ty, $features:literal, $gemv:ident, $multi:ident) => {
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $gemv(
            w: &[u8],
            k: usize,
            xq: &[u8],
            rows: Range<usize>,
            y: &mut [f32],
        ) {
            // SAFETY: the table's contract, and the ISA is present.
            unsafe { gemv_q6k::<$isa>(w, k, xq, rows, y) }
        }

        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $multi(xqs: &[u8], w: &[u8], k: usize, out: &mut [f32]) {
            #[target_feature(enable = $features)]
            unsafe fn row_multi(xqs: &[u8], row: &[u8], nb: usize, out: &mut [f32]) {
                // SAFETY: forwarded from `dot_q6k_multi`.
                unsafe { dot_q6k_row_multi::<$isa>(xqs, row, nb, out) }
            }
            // SAFETY: as above.
            unsafe { dot_q6k_multi(xqs, w, k, out, row_multi) }
        }
    };
}

q6k_entries!(Avx2, "avx2,f16c", gemv_q6k_avx2, dot_q6k_multi_avx2);
q6k_entries!(
    Avx512,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,f16c",
    gemv_q6k_avx512,
    dot_q6k_multi_avx512
);
