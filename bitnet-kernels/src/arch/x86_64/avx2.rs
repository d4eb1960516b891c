//! AVX2 kernels: activation quantization and the multiply-add ternary GEMM
//! (`vpmaddubsw` on the 2-bit I2_S codes). Everything else is shared code.
use super::mad::{mad_isa, prefetch_rows, Gemm};
use super::prefetch_ahead;
use crate::arch::scalar;
use crate::dispatch::{Isa, Table};
use crate::format::{I2sMatrix, I2S_BLOCK};
use crate::math;
use crate::quant::{QuantizedActs, RowScale};
use core::arch::x86_64::*;
use core::ops::Range;

pub(crate) static TABLE: Table = Table {
    isa: Isa::Avx2,
    quantize_row_i8,
    gemm_i2s,
    gemm_tl: super::lut::gemm_tl_avx2,
    f16_to_f32: super::float::f16_to_f32_avx2,
    f32_to_f16: super::float::f32_to_f16_avx2,
    rms_norm: super::float::rms_norm_avx2,
    softmax: super::float::softmax_avx2,
    softmax_f64acc: super::float::softmax_f64acc_avx2::<false>,
    softmax_f32exp: super::float::softmax_f64acc_avx2::<true>,
    rope_neox: super::float::rope_neox_avx2,
    rope_interleaved: super::float::rope_interleaved_avx2,
    dot_f32: super::float::dot_f32_avx2,
    dot_f16: super::float::dot_f16_avx2,
    dot_f16_multi: super::float::dot_f16_multi_avx2,
    axpy_f32: super::float::axpy_f32_avx2,
    axpy_f16: super::float::axpy_f16_avx2,
    dot_f64acc: super::float::dot_f64acc_avx2,
    axpy_f64acc: super::float::axpy_f64acc_avx2,
    dot_f64acc_rows: super::float::dot_f64acc_rows_avx2::<f32>,
    weighted_sum_f64acc: super::float::weighted_sum_f64acc_avx2::<f32>,
    dot_f64acc_queries: super::float::dot_f64acc_queries_avx2::<f32>,
    weighted_sum_f64acc_queries: super::float::weighted_sum_f64acc_queries_avx2::<f32>,
    dot_f32acc_queries_f16: super::float::dot_f32acc_queries_avx2::<u16>,
    weighted_sum_f32acc_queries_f16: super::float::weighted_sum_f32acc_queries_avx2::<u16>,
    dot_f32acc_queries: super::float::dot_f32acc_queries_avx2::<f32>,
    weighted_sum_f32acc_queries: super::float::weighted_sum_f32acc_queries_avx2::<f32>,
    gemv_f16: super::float::gemv_f16_avx2,
    gemv_q8_0: super::float::gemv_q8_0_avx2,
    dot_q8_0_multi: super::float::dot_q8_0_multi_avx2,
    gemv_q6k: super::kquant::gemv_q6k_avx2,
    dot_q6k_multi: super::kquant::dot_q6k_multi_avx2,
};

// ---------------------------------------------------------------------------
// Activation quantization
// ---------------------------------------------------------------------------

/// One element exactly as the scalar reference computes it (tails only).
#[inline(always)]
fn quantize_one(v: f32, scale: f32) -> i8 {
    math::round_ties_even(v * scale).clamp(-128.0, 127.0) as i8
}

/// `max|x|` over `x`; equals [`scalar::abs_max`] for NaN-free input because
/// `max` is exact whatever the order.
#[target_feature(enable = "avx2")]
fn abs_max(x: &[f32]) -> f32 {
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut m = [_mm256_setzero_ps(); 4];
    let mut chunks = x.chunks_exact(32);
    for c in &mut chunks {
        for (j, mj) in m.iter_mut().enumerate() {
            // SAFETY: `c` has 32 elements, so `8·j .. 8·j + 8` is in bounds.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * j)) };
            *mj = _mm256_max_ps(*mj, _mm256_and_ps(v, abs));
        }
    }
    let m = _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3]));
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_movehdup_ps(m));
    chunks
        .remainder()
        .iter()
        .fold(_mm_cvtss_f32(m), |a, &v| a.max(math::abs(v)))
}

/// `q = round_ties_even(x · scale)` clamped to `[-128, 127]`, `Σ q`; see
/// [`Table::quantize_row_i8`]. `cvtps2dq` rounds ties-to-even under the
/// default MXCSR, which is exactly the scalar magic-number rounding for the
/// `|x · scale| ≤ 127.0…` that a finite row produces.
///
/// # Safety
/// AVX2 must be available; `q.len() == x.len()`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn quantize_row_i8(x: &[f32], q: &mut [i8]) -> RowScale {
    debug_assert_eq!(x.len(), q.len());
    let scale = scalar::act_scale(abs_max(x));
    let vs = _mm256_set1_ps(scale);
    let (lo, hi) = (_mm256_set1_epi32(-128), _mm256_set1_epi32(127));
    // Packing interleaves 128-bit lanes; this puts the 4-byte groups back in order.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let mut vsum = _mm256_setzero_si256();
    let mut xs = x.chunks_exact(32);
    let mut qs = q.chunks_exact_mut(32);
    for (xc, qc) in (&mut xs).zip(&mut qs) {
        let mut v = [_mm256_setzero_si256(); 4];
        for (j, vj) in v.iter_mut().enumerate() {
            // SAFETY: `xc` has 32 elements.
            let f = unsafe { _mm256_loadu_ps(xc.as_ptr().add(8 * j)) };
            let i = _mm256_cvtps_epi32(_mm256_mul_ps(f, vs));
            *vj = _mm256_max_epi32(_mm256_min_epi32(i, hi), lo);
            vsum = _mm256_add_epi32(vsum, *vj);
        }
        let w01 = _mm256_packs_epi32(v[0], v[1]);
        let w23 = _mm256_packs_epi32(v[2], v[3]);
        let b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w01, w23), order);
        // SAFETY: `qc` has 32 bytes; unaligned store.
        unsafe { _mm256_storeu_si256(qc.as_mut_ptr().cast(), b) };
    }
    let mut sum = hsum_epi32(vsum);
    for (o, &v) in qs.into_remainder().iter_mut().zip(xs.remainder()) {
        *o = quantize_one(v, scale);
        sum = sum.wrapping_add(*o as i32);
    }
    RowScale { scale, sum }
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s));
    _mm_cvtsi128_si32(s)
}

// ---------------------------------------------------------------------------
// Multiply-add GEMM
// ---------------------------------------------------------------------------

/// Weight rows × tokens per register tile when `N > 1`: 8 i16 accumulators,
/// 2 unpacked weight vectors, 1 activation vector and the mask in 16 ymm (the
/// i32 accumulators are touched once per [`I16_BLOCKS`] and may live on the
/// stack). Measured best of 2×4, 2×5, 3×3, 3×4 and 4×2.
const GEMM_R: usize = 2;
const GEMM_T: usize = 4;
/// The widest tile that prefetches its weight rows (`MadTiles::STREAM_T`).
/// On the Zen 5 VM (2026-11-30, 2B shape, one thread) a decode batch of 2
/// took 14.3–14.6 ms per token in the ternary matmuls this way against
/// 15.9–16.4, of 3 12.9–13.6 against 14.3–18.6.
const STREAM_T: usize = 4;
/// Weight rows per tile when `N = 1`; they share each activation load.
const GEMV_R: usize = 4;
/// Rows per panel: the weights of one panel stay in L2 while every token
/// chunk passes over them.
const PANEL_BYTES: usize = 192 * 1024;

/// I2_S blocks summed in i16 lanes before widening to i32.
///
/// Overflow bound: one `vpmaddubsw` lane is `c₀·q₀ + c₁·q₁` with codes
/// `c ∈ [0, 3]` (3 is unused but possible in untrusted data) and
/// `q ∈ [-128, 127]`, so it lies in `[-768, 762]` and never saturates. A block
/// adds 4 of them (one per code group) to each i16 lane, so 8 blocks give at
/// most `8 · 4 · 768 = 24 576 < 32 767` in magnitude. (bitnet.cpp adds 32
/// blocks, up to `32 · 4 · 512 = 65 536` even for valid codes, and can wrap.)
const I16_BLOCKS: usize = 8;

/// The four 2-bit code groups of a 32-byte block: group `g` holds the codes
/// of weights `32g .. 32g + 32` of the block, in lane order, still unmasked.
#[inline]
#[target_feature(enable = "avx2")]
fn shift_group(packed: __m256i, g: usize) -> __m256i {
    match g {
        0 => _mm256_srli_epi16::<6>(packed),
        1 => _mm256_srli_epi16::<4>(packed),
        2 => _mm256_srli_epi16::<2>(packed),
        _ => packed,
    }
}

/// Horizontal sums of four vectors: lane `i` of the result is `Σ vᵢ`.
#[inline]
#[target_feature(enable = "avx2")]
fn reduce4(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m128i {
    let ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    let cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
    let abcd = _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
    _mm_add_epi32(
        _mm256_castsi256_si128(abcd),
        _mm256_extracti128_si256::<1>(abcd),
    )
}

/// `Σ code·q` for rows `r0 + j·rs` (`j < R`) × tokens `t0 .. t0 + T`, then
/// the epilogue into `y`.
///
/// # Safety
/// AVX2; the rows and tokens exist; `y[t·y_stride + r]` is writable for them.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize, const T: usize>(g: &Gemm<'_>, r0: usize, rs: usize, t0: usize) {
    let mask = _mm256_set1_epi8(3);
    let ones = _mm256_set1_epi16(1);
    // SAFETY: the caller guarantees row r0 exists.
    let w = unsafe { g.codes.add(r0 * g.row_bytes) };
    // SAFETY: the caller guarantees token t0 exists.
    let a = unsafe { g.acts.add(t0 * g.k) };
    let rstep = rs * g.row_bytes;
    let blocks = g.k / I2S_BLOCK;
    let mut acc32 = [[_mm256_setzero_si256(); T]; R];
    let mut b0 = 0;
    while b0 < blocks {
        let b1 = (b0 + I16_BLOCKS).min(blocks);
        let mut acc16 = [[_mm256_setzero_si256(); T]; R];
        for b in b0..b1 {
            if T <= STREAM_T && g.stream {
                prefetch_rows::<R>(w, rstep, b);
            }
            let mut packed = [_mm256_setzero_si256(); R];
            for (r, p) in packed.iter_mut().enumerate() {
                // SAFETY: block `b < K/128` of row `r0 + r·rs`: 32 bytes inside the matrix.
                *p = unsafe { _mm256_loadu_si256(w.add(r * rstep + b * 32).cast()) };
            }
            for grp in 0..4 {
                let mut wv = [_mm256_setzero_si256(); R];
                for r in 0..R {
                    wv[r] = _mm256_and_si256(shift_group(packed[r], grp), mask);
                }
                for t in 0..T {
                    // SAFETY: activations `b·128 + 32·grp ..+32` of token `t0 + t`, in bounds.
                    let av = unsafe {
                        _mm256_loadu_si256(a.add(t * g.k + b * I2S_BLOCK + grp * 32).cast())
                    };
                    for r in 0..R {
                        let p = _mm256_maddubs_epi16(wv[r], av);
                        acc16[r][t] = _mm256_add_epi16(acc16[r][t], p);
                    }
                }
            }
        }
        for r in 0..R {
            for t in 0..T {
                let wide = _mm256_madd_epi16(acc16[r][t], ones);
                acc32[r][t] = _mm256_add_epi32(acc32[r][t], wide);
            }
        }
        b0 = b1;
    }

    let zero = _mm256_setzero_si256();
    let at = |i: usize| if i < R * T { acc32[i / T][i % T] } else { zero };
    let mut i = 0;
    while i < R * T {
        let mut s = [0i32; 4];
        let v = reduce4(at(i), at(i + 1), at(i + 2), at(i + 3));
        // SAFETY: `s` is 16 bytes.
        unsafe { _mm_storeu_si128(s.as_mut_ptr().cast(), v) };
        for (j, &dot) in s.iter().enumerate().take(R * T - i) {
            // SAFETY: the caller guarantees this output is writable.
            unsafe { g.store(r0 + (i + j) / T * rs, t0 + (i + j) % T, dot) };
        }
        i += 4;
    }
}

/// I2_S blocks a decode tile sums in i16 lanes before widening; see [`gemv_tile`].
const GEMV_I16_BLOCKS: usize = 5;

/// Decode (`N = 1`): rows `r0 + j·rs` (`j < R`) × token 0, sharing each
/// activation load, with one shift per block instead of three.
///
/// With `y = p >> 4` (16-bit lanes), `y & 0x0C` and `p & 0x0C` are the codes of
/// weights 0..32 and 64..96 times 4, `y & 0x03` and `p & 0x03` those of
/// 32..64 and 96..128 (the mask keeps only bits that came from the same
/// byte). The ×4 products go to one i16 accumulator and the ×1 products to
/// another; widening multiplies the second by 4, so the i32 total is exactly
/// 4× the dot (`|4·dot| ≤ 4·3·128·MAX_K < 2^31`) and `>> 2` is exact.
///
/// i16 bound: a ×4 `vpmaddubsw` lane is at most `2·12·128 = 3072` in
/// magnitude, two per block, so 5 blocks stay within `30 720 < 32 767`; the
/// ×1 accumulator gets a quarter of that.
///
/// # Safety
/// AVX2; the rows exist; `y[r]` is writable for them.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemv_tile<const R: usize>(g: &Gemm<'_>, r0: usize, rs: usize) {
    let (m4, m1) = (_mm256_set1_epi8(0x0C), _mm256_set1_epi8(0x03));
    let (ones, fours) = (_mm256_set1_epi16(1), _mm256_set1_epi16(4));
    // SAFETY: the caller guarantees row r0 exists.
    let w = unsafe { g.codes.add(r0 * g.row_bytes) };
    let rstep = rs * g.row_bytes;
    let blocks = g.k / I2S_BLOCK;
    let mut acc32 = [_mm256_setzero_si256(); R];
    let mut b0 = 0;
    while b0 < blocks {
        let b1 = (b0 + GEMV_I16_BLOCKS).min(blocks);
        let mut s4 = [_mm256_setzero_si256(); R];
        let mut s1 = [_mm256_setzero_si256(); R];
        for b in b0..b1 {
            // Every block (32 bytes), so each line is asked for twice: on the
            // AVX2 VM (2026-11-30) one request per line read 3–9 % slower on
            // one thread and 13 % on two (some requests seem to be dropped
            // while the fill buffers are full; the second one covers them).
            for r in 0..R {
                prefetch_ahead(w.wrapping_add(r * rstep + b * 32));
            }
            let mut av = [_mm256_setzero_si256(); 4];
            for (grp, v) in av.iter_mut().enumerate() {
                // SAFETY: activations `b·128 + 32·grp .. +32` of token 0, in bounds.
                *v = unsafe { _mm256_loadu_si256(g.acts.add(b * I2S_BLOCK + grp * 32).cast()) };
            }
            for r in 0..R {
                // SAFETY: block `b < K/128` of row `r0 + r·rs`: 32 bytes inside the matrix.
                let p = unsafe { _mm256_loadu_si256(w.add(r * rstep + b * 32).cast()) };
                let y = _mm256_srli_epi16::<4>(p);
                let q0 = _mm256_maddubs_epi16(_mm256_and_si256(y, m4), av[0]);
                let q1 = _mm256_maddubs_epi16(_mm256_and_si256(y, m1), av[1]);
                let q2 = _mm256_maddubs_epi16(_mm256_and_si256(p, m4), av[2]);
                let q3 = _mm256_maddubs_epi16(_mm256_and_si256(p, m1), av[3]);
                s4[r] = _mm256_add_epi16(s4[r], _mm256_add_epi16(q0, q2));
                s1[r] = _mm256_add_epi16(s1[r], _mm256_add_epi16(q1, q3));
            }
        }
        for r in 0..R {
            let wide = _mm256_add_epi32(
                _mm256_madd_epi16(s4[r], ones),
                _mm256_madd_epi16(s1[r], fours),
            );
            acc32[r] = _mm256_add_epi32(acc32[r], wide);
        }
        b0 = b1;
    }
    let zero = _mm256_setzero_si256();
    let at = |i: usize| if i < R { acc32[i] } else { zero };
    let mut i = 0;
    while i < R {
        let mut s = [0i32; 4];
        let v = _mm_srai_epi32::<2>(reduce4(at(i), at(i + 1), at(i + 2), at(i + 3)));
        // SAFETY: `s` is 16 bytes.
        unsafe { _mm_storeu_si128(s.as_mut_ptr().cast(), v) };
        for (j, &dot) in s.iter().enumerate().take(R - i) {
            // SAFETY: the caller guarantees this output is writable.
            unsafe { g.store(r0 + (i + j) * rs, 0, dot) };
        }
        i += 4;
    }
}

mad_isa!(Avx2, "avx2,fma", [4, 3, 2, 1]);
