//! AVX-512 kernels: activation quantization and the multiply-add ternary GEMM
//! (VNNI `vpdpbusd` on the 2-bit I2_S codes, exact in i32). Everything else
//! is shared code.
use super::mad::{mad_isa, prefetch_rows, Gemm};
use crate::arch::scalar;
use crate::dispatch::{Isa, Table};
use crate::format::{I2sMatrix, I2S_BLOCK};
use crate::quant::{QuantizedActs, RowScale};
use core::arch::x86_64::*;
use core::ops::Range;

pub(crate) static TABLE: Table = Table {
    isa: Isa::Avx512,
    quantize_row_i8,
    gemm_i2s,
    gemm_tl: super::lut::gemm_tl_avx512,
    f16_to_f32: super::float::f16_to_f32_avx512,
    f32_to_f16: super::float::f32_to_f16_avx512,
    rms_norm: super::float::rms_norm_avx512,
    softmax: super::float::softmax_avx512,
    softmax_f64acc: super::float::softmax_f64acc_avx512::<false>,
    softmax_f32exp: super::float::softmax_f64acc_avx512::<true>,
    rope_neox: super::float::rope_neox_avx512,
    rope_interleaved: super::float::rope_interleaved_avx512,
    dot_f32: super::float::dot_f32_avx512,
    dot_f16: super::float::dot_f16_avx512,
    dot_f16_multi: super::float::dot_f16_multi_avx512,
    axpy_f32: super::float::axpy_f32_avx512,
    axpy_f16: super::float::axpy_f16_avx512,
    dot_f64acc: super::float::dot_f64acc_avx512,
    axpy_f64acc: super::float::axpy_f64acc_avx512,
    dot_f64acc_rows: super::float::dot_f64acc_rows_avx512,
    weighted_sum_f64acc: super::float::weighted_sum_f64acc_avx512,
    dot_f64acc_queries: super::float::dot_f64acc_queries_avx512::<f32>,
    weighted_sum_f64acc_queries: super::float::weighted_sum_f64acc_queries_avx512::<f32>,
    dot_f32acc_queries_f16: super::float::dot_f32acc_queries_avx512::<u16>,
    weighted_sum_f32acc_queries_f16: super::float::weighted_sum_f32acc_queries_avx512::<u16>,
    dot_f32acc_queries: super::float::dot_f32acc_queries_avx512::<f32>,
    weighted_sum_f32acc_queries: super::float::weighted_sum_f32acc_queries_avx512::<f32>,
    gemv_f16: super::float::gemv_f16_avx512,
    gemv_q8_0: super::float::gemv_q8_0_avx512,
    dot_q8_0_multi: super::float::dot_q8_0_multi_avx512,
    gemv_q6k: super::kquant::gemv_q6k_avx512,
    dot_q6k_multi: super::kquant::dot_q6k_multi_avx512,
};

// ---------------------------------------------------------------------------
// Activation quantization
// ---------------------------------------------------------------------------

/// Lane mask selecting the first `n < 16` lanes.
#[inline(always)]
fn tail_mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// `max|x|`; equals [`scalar::abs_max`] for NaN-free input because `max` is
/// exact whatever the order. The tail is a zero-filled masked load, and
/// `|0|` never raises the maximum.
#[target_feature(enable = "avx512f")]
fn abs_max(x: &[f32]) -> f32 {
    let mut m = [_mm512_setzero_ps(); 4];
    let mut chunks = x.chunks_exact(64);
    for c in &mut chunks {
        for (j, mj) in m.iter_mut().enumerate() {
            // SAFETY: `c` has 64 elements, so `16·j .. 16·j + 16` is in bounds.
            let v = unsafe { _mm512_loadu_ps(c.as_ptr().add(16 * j)) };
            *mj = _mm512_max_ps(*mj, _mm512_abs_ps(v));
        }
    }
    let mut m = _mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3]));
    let mut rest = chunks.remainder().chunks(16);
    for c in &mut rest {
        // SAFETY: the mask covers exactly the `c.len() ≤ 16` valid elements;
        // masked-off lanes are not accessed.
        let v = unsafe { _mm512_maskz_loadu_ps(tail_mask16(c.len()), c.as_ptr()) };
        m = _mm512_max_ps(m, _mm512_abs_ps(v));
    }
    _mm512_reduce_max_ps(m)
}

/// Like [`tail_mask`] but `n == 16` selects every lane.
#[inline(always)]
fn tail_mask16(n: usize) -> __mmask16 {
    if n >= 16 {
        !0
    } else {
        tail_mask(n)
    }
}

/// `q = round_ties_even(x · scale)` clamped to `[-128, 127]`, `Σ q`; see
/// [`Table::quantize_row_i8`]. `cvtps2dq` rounds ties-to-even under the
/// default MXCSR, which is exactly the scalar magic-number rounding for the
/// `|x · scale| ≤ 127.0…` that a finite row produces.
///
/// # Safety
/// AVX-512F/BW must be available; `q.len() == x.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
pub(crate) unsafe fn quantize_row_i8(x: &[f32], q: &mut [i8]) -> RowScale {
    debug_assert_eq!(x.len(), q.len());
    let scale = scalar::act_scale(abs_max(x));
    let vs = _mm512_set1_ps(scale);
    let (lo, hi) = (_mm512_set1_epi32(-128), _mm512_set1_epi32(127));
    let mut vsum = _mm512_setzero_si512();
    let quant = |f: __m512| {
        let v = _mm512_cvtps_epi32(_mm512_mul_ps(f, vs));
        _mm512_max_epi32(_mm512_min_epi32(v, hi), lo)
    };
    // Packing works within 128-bit lanes: dword `4L + j` of the packed bytes
    // is lane L of vector j; this gathers them back into row order.
    let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let mut xs = x.chunks_exact(64);
    let mut qs = q.chunks_exact_mut(64);
    for (xc, qc) in (&mut xs).zip(&mut qs) {
        let mut v = [_mm512_setzero_si512(); 4];
        for (j, vj) in v.iter_mut().enumerate() {
            // SAFETY: `xc` has 64 elements.
            *vj = quant(unsafe { _mm512_loadu_ps(xc.as_ptr().add(16 * j)) });
            vsum = _mm512_add_epi32(vsum, *vj);
        }
        let w01 = _mm512_packs_epi32(v[0], v[1]);
        let w23 = _mm512_packs_epi32(v[2], v[3]);
        let b = _mm512_permutexvar_epi32(order, _mm512_packs_epi16(w01, w23));
        // SAFETY: `qc` has 64 bytes; unaligned store.
        unsafe { _mm512_storeu_si512(qc.as_mut_ptr().cast(), b) };
    }
    // Tail: masked loads and narrowing stores, 16 at a time.
    let (xt, qt) = (xs.remainder(), qs.into_remainder());
    let len = xt.len().min(qt.len());
    let mut i = 0;
    while i < len {
        let mask = tail_mask16(len - i);
        // SAFETY: lanes `i .. i + popcount(mask)` are inside both tails;
        // masked-off lanes are neither read nor written (zero-filled).
        let v = quant(unsafe { _mm512_maskz_loadu_ps(mask, xt.as_ptr().add(i)) });
        // Zero-filled lanes quantize to 0 and leave the sum unchanged.
        vsum = _mm512_add_epi32(vsum, v);
        // SAFETY: as above.
        unsafe { _mm512_mask_cvtepi32_storeu_epi8(qt.as_mut_ptr().add(i).cast(), mask, v) };
        i += 16;
    }
    RowScale {
        scale,
        sum: _mm512_reduce_add_epi32(vsum),
    }
}

// ---------------------------------------------------------------------------
// Multiply-add GEMM
// ---------------------------------------------------------------------------
//
// Unpacking without per-lane shifts. One 32-byte I2_S block is broadcast to
// both 256-bit halves of a zmm (`vbroadcasti64x4` from memory, a pure load).
// With `M` = 0x0C in the low half's bytes and 0x03 in the high half's:
//   * `(p >> 4) & M` holds the codes of weights 0..32 (bits 7:6) times 4 in
//     the low half and of weights 32..64 (bits 5:4) times 1 in the high half;
//   * `p & M` holds weights 64..96 (bits 3:2) times 4 and 96..128 (1:0) times 1.
// Both line up with plain 64-byte activation loads, so any number of blocks
// (odd included) works, and every dword lane of an accumulator carries one
// fixed scale: 4 in lanes 0..8, 1 in lanes 8..16. `descale` divides it out
// exactly before the horizontal sum. (The `vpsrlq` moves bits across bytes,
// but the mask keeps only bits that came from the same byte.)
//
// Range: a lane adds 4 products per `vpdpbusd`, each at most 4·3·128 = 1536
// in magnitude (code 3 is unused but possible), and 2 `vpdpbusd` per block,
// so at most 12 288·K/128 = 96·K ≤ 96·2^20 < 2^31 for K ≤ MAX_K: exact in i32.
//
// Decode (`N = 1`) skips even the shift: `p & M'` with M' = 0xC0 / 0x30 gives
// weights 0..64 at scales 64 / 16, kept in a second accumulator per row
// (lanes bounded by 4·64·3·128·K/128 = 768·K < 2^31).

/// Weight rows × tokens per register tile when `N > 1`: 24 accumulators,
/// 4 unpacked weight vectors and one activation in 32 zmm (LLVM spills one or
/// two broadcast blocks, which reload from L1). 4×6, 5×4, 4×4 and 2×8 all
/// reach ~85% of the `vpdpbusd` peak; 3×8 and 4×5 are a little slower.
const GEMM_R: usize = 4;
const GEMM_T: usize = 6;
/// The widest tile that prefetches its weight rows (`MadTiles::STREAM_T`).
/// On the Zen 5 VM (2026-11-30, 2B shape, one thread) the ternary matmuls
/// of a decode batch of 4 took 5.3–5.6 ms per token this way against 6.9
/// unprefetched, and of 6 (now 3 + 3) 5.4 against 7.1–7.2; a 6-token tile
/// that prefetched took 10 (its 24 accumulators leave no registers).
const STREAM_T: usize = 4;
/// Rows per decode tile; they share each activation load.
const GEMV_R: usize = 4;
/// Rows per panel: the weights of one panel stay in L2 while every token
/// chunk passes over them.
const PANEL_BYTES: usize = 256 * 1024;

/// The byte mask `M` of the unpacking scheme, shifted left by `2·shift`.
#[inline]
#[target_feature(enable = "avx512f")]
fn lane_mask(shift: u32) -> __m512i {
    let lo = _mm512_set1_epi8((0x0Cu8 << (2 * shift)) as i8);
    let hi = _mm512_set1_epi8((0x03u8 << (2 * shift)) as i8);
    _mm512_mask_blend_epi64(0xF0, lo, hi)
}

/// Divides out the per-lane scale: lanes 0..8 by `4^(shift+1)`, 8..16 by `4^shift`.
/// Exact: every lane is a multiple of its scale.
#[inline]
#[target_feature(enable = "avx512f")]
fn descale(v: __m512i, shift: u32) -> __m512i {
    let lo = _mm512_set1_epi32(2 * shift as i32 + 2);
    let hi = _mm512_set1_epi32(2 * shift as i32);
    _mm512_srav_epi32(v, _mm512_mask_blend_epi32(0xFF00, lo, hi))
}

/// Horizontal sums of four vectors: lane `i` of the result is `Σ vᵢ`.
#[inline]
#[target_feature(enable = "avx512f,avx512vl,avx2")]
fn reduce4(a: __m512i, b: __m512i, c: __m512i, d: __m512i) -> __m128i {
    let ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    let cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    let abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    let s = _mm256_add_epi32(
        _mm512_castsi512_si256(abcd),
        _mm512_extracti64x4_epi64::<1>(abcd),
    );
    _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s))
}

/// `Σ code·q` for rows `r0 + j·rs` (`j < R`) × tokens `t0 .. t0 + T`, then
/// the epilogue into `y`.
///
/// # Safety
/// AVX-512 (VNNI); the rows and tokens exist; `y[t·y_stride + r]` is
/// writable for them.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn tile<const R: usize, const T: usize>(g: &Gemm<'_>, r0: usize, rs: usize, t0: usize) {
    let mask = lane_mask(0);
    // SAFETY: the caller guarantees row r0 exists.
    let w = unsafe { g.codes.add(r0 * g.row_bytes) };
    // SAFETY: the caller guarantees token t0 exists.
    let a = unsafe { g.acts.add(t0 * g.k) };
    let rstep = rs * g.row_bytes;
    let blocks = g.k / I2S_BLOCK;
    let mut acc = [[_mm512_setzero_si512(); T]; R];
    for b in 0..blocks {
        if T <= STREAM_T && g.stream {
            prefetch_rows::<R>(w, rstep, b);
        }
        let mut packed = [_mm512_setzero_si512(); R];
        for (r, p) in packed.iter_mut().enumerate() {
            // SAFETY: block `b < K/128` of row `r0 + r·rs`: 32 bytes inside the matrix.
            let v = unsafe { _mm256_loadu_si256(w.add(r * rstep + b * 32).cast()) };
            *p = _mm512_broadcast_i64x4(v);
        }
        for h in 0..2 {
            let mut wv = [_mm512_setzero_si512(); R];
            for r in 0..R {
                let p = if h == 0 {
                    _mm512_srli_epi64::<4>(packed[r])
                } else {
                    packed[r]
                };
                wv[r] = _mm512_and_si512(p, mask);
            }
            for t in 0..T {
                // SAFETY: activations `b·128 + 64·h .. +64` of token `t0 + t`, in bounds.
                let av =
                    unsafe { _mm512_loadu_si512(a.add(t * g.k + b * I2S_BLOCK + h * 64).cast()) };
                for r in 0..R {
                    acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], wv[r], av);
                }
            }
        }
    }

    let zero = _mm512_setzero_si512();
    let at = |i: usize| {
        if i < R * T {
            descale(acc[i / T][i % T], 0)
        } else {
            zero
        }
    };
    let mut i = 0;
    while i < R * T {
        let mut s = [0i32; 4];
        let v = reduce4(at(i), at(i + 1), at(i + 2), at(i + 3));
        // SAFETY: `s` is 16 bytes.
        unsafe { _mm_storeu_si128(s.as_mut_ptr().cast(), v) };
        for (j, &dot) in s.iter().enumerate().take(R * T - i) {
            // SAFETY: forwarded from our caller.
            unsafe { g.store(r0 + (i + j) / T * rs, t0 + (i + j) % T, dot) };
        }
        i += 4;
    }
}

/// Decode (`N = 1`): rows `r0 + j·rs` (`j < R`) × token 0. The activation
/// loads are shared by the R rows, and the two accumulators per row (one per
/// 64-weight half, at different scales) keep 2R `vpdpbusd` chains in flight.
///
/// # Safety
/// AVX-512 (VNNI); the rows exist; `y[r]` is writable for them.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn gemv_tile<const R: usize>(g: &Gemm<'_>, r0: usize, rs: usize) {
    let (m0, m1) = (lane_mask(2), lane_mask(0));
    // SAFETY: the caller guarantees row r0 exists.
    let w = unsafe { g.codes.add(r0 * g.row_bytes) };
    let rstep = rs * g.row_bytes;
    let blocks = g.k / I2S_BLOCK;
    let mut acc = [[_mm512_setzero_si512(); 2]; R];
    for b in 0..blocks {
        prefetch_rows::<R>(w, rstep, b);
        // SAFETY: activations `b·128 .. b·128 + 128` of token 0, in bounds.
        let (a0, a1) = unsafe {
            let a = g.acts.add(b * I2S_BLOCK);
            (
                _mm512_loadu_si512(a.cast()),
                _mm512_loadu_si512(a.add(64).cast()),
            )
        };
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: block `b < K/128` of row `r0 + r·rs`: 32 bytes inside the matrix.
            let p = unsafe { _mm256_loadu_si256(w.add(r * rstep + b * 32).cast()) };
            let p = _mm512_broadcast_i64x4(p);
            acc[0] = _mm512_dpbusd_epi32(acc[0], _mm512_and_si512(p, m0), a0);
            acc[1] = _mm512_dpbusd_epi32(acc[1], _mm512_and_si512(p, m1), a1);
        }
    }
    let zero = _mm512_setzero_si512();
    let at = |i: usize| {
        if i < R {
            _mm512_add_epi32(descale(acc[i][0], 2), descale(acc[i][1], 0))
        } else {
            zero
        }
    };
    let mut i = 0;
    while i < R {
        let mut s = [0i32; 4];
        let v = reduce4(at(i), at(i + 1), at(i + 2), at(i + 3));
        // SAFETY: `s` is 16 bytes.
        unsafe { _mm_storeu_si128(s.as_mut_ptr().cast(), v) };
        for (j, &dot) in s.iter().enumerate().take(R - i) {
            // SAFETY: forwarded from our caller.
            unsafe { g.store(r0 + (i + j) * rs, 0, dot) };
        }
        i += 4;
    }
}

mad_isa!(
    Avx512,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma",
    [6, 5, 4, 3, 2, 1]
);
