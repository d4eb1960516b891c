//! x86 float helpers: AVX2 (+FMA, F16C) and AVX-512.
//!
//! Same algorithms as `arch::scalar`, but with FMA and several independent
//! accumulators, so reductions differ from the sequential scalar order by
//! rounding only (bounded in `tests/float.rs`); `axpy` differs by the FMA's
//! single rounding. RoPE, `rms_norm`'s output scaling and the `*_f64acc`
//! attention kernels (fixed lane order, exact products, `exp_f64` without
//! FMA) round like the scalar code and match it exactly. The f16 conversions are the
//! exact F16C instructions and agree with the scalar code bit for bit, with
//! one exception: `vcvtph2ps` quiets signalling-NaN halves (sets the f32
//! quiet bit) where the scalar code copies the payload unchanged. Both stay
//! NaN with their sign, which is all the contract asks.
//!
//! Every entry point tolerates mismatched slice lengths (it works on the
//! common prefix or panics through a bounds check, as the scalar zips do), so
//! the raw-pointer loads below stay in bounds even if a caller breaks the
//! table contract; the shape checks themselves live in `crate::float`.
//!
//! The entry points are `unsafe fn` because the dispatch table stores
//! `unsafe fn` pointers; the helpers are safe `#[target_feature]` functions,
//! callable without `unsafe` from code that enables the same features, so
//! only the pointer loads and stores need `unsafe` (a loop body's block also
//! holds the arithmetic between them).
//!
//! Toolchain: safe `#[target_feature]` functions need Rust 1.86, calling
//! value-only intrinsics without `unsafe` 1.87, the AVX-512 intrinsics 1.89
//! (the workspace's `rust-version`).

use super::{prefetch_line, prefetch_lone_stream, tiles};
use crate::arch::{gemv_in_streams, multi_in_streams, rows_at, scalar, KvElem};
use crate::math::{self, exp_consts};
use core::arch::x86_64::*;
use core::ops::Range;

/// Defines `$name::<R>(xs, rows, k, outs)`: an ISA's f16 tile `$tile::<R, T>`
/// over every vector of `xs`, in tiles of up to 6 vectors (`tiles!`);
/// `outs[j][t]` for row `j < R`, vector `t < n`. Each tile prefetches the
/// same place in the row after each of ours (`k` halves on), which the next
/// tile reads from DRAM: `prefetch_ahead`'s lead is too short for
/// rows that every vector passes over. On the AVX2 VM (2026-11-30; the 2B
/// head from DRAM, 6 vectors, one thread) 21 GMAC/s this way, 17 with 4 KiB.
macro_rules! f16_rows_multi {
    ($(#[$doc:meta])* $name:ident, $tile:ident, $features:literal) => {
        $(#[$doc])*
        #[inline]
        #[target_feature(enable = $features)]
        fn $name<const R: usize>(
            xs: &[f32],
            rows: [&[u16]; R],
            k: usize,
            mut outs: [&mut [f32]; R],
        ) {
            tiles!(outs[0].len(), [1, 2, 3, 4, 5; 6], |t0, T| {
                let mut o = [[0f32; T]; R];
                $tile::<R, T>(&xs[t0 * k..], rows, k, k, &mut o);
                for (out, o) in outs.iter_mut().zip(&o) {
                    out[t0..t0 + T].copy_from_slice(o);
                }
            });
        }
    };
}

/// Defines `$name(xs, w, k, out)`: a `Table::dot_*_multi` entry span by
/// span, for more than two vectors. `$span_rows` rows of `w` (each
/// `$row_len(k)` elements of `$elem`), in tiles of `$g`, take one [`SPAN`]
/// of their weights at a time against up to `$widths` vectors (`tiles!`),
/// the tiles' chains (`$zero()` each, advanced by `$steps`) kept on the
/// stack between spans and finished (`$finish`) after the last; each row
/// prefetches the same place in the row `$lead_rows` rows on. Rows past the last
/// whole tile go one by one through `$rows_multi`. Every pair makes the
/// steps of the ISA's one-vector kernel in the same order, so it has the
/// same bits.
macro_rules! multi_in_spans {
    ($(#[$doc:meta])* $name:ident, $elem:ty, $row_len:path, $span_rows:expr, $lead_rows:expr,
     $steps:ident, $finish:ident, $zero:ident, $g:literal, [$($w:literal),*; $last:literal],
     $features:literal, $rows_multi:ident) => {
        $(#[$doc])*
        #[target_feature(enable = $features)]
        fn $name(xs: &[f32], w: &[$elem], k: usize, out: &mut [f32]) {
            const G: usize = $g;
            const GROUPS: usize = $span_rows / G;
            let (n, row_len) = (xs.len() / k, $row_len(k));
            let m = w.len() / row_len;
            let row = |r: usize| &w[r * row_len..(r + 1) * row_len];
            let mut r0 = 0;
            while r0 + G <= m {
                let groups = ((m - r0) / G).min(GROUPS);
                tiles!(n, [$($w),*; $last], |t0, T| {
                    let xs = &xs[t0 * k..(t0 + T) * k];
                    let mut acc = [[[$zero(); T]; G]; GROUPS];
                    let mut c = 0;
                    while c < k {
                        let span = c..(c + SPAN).min(k);
                        for (g, acc) in acc[..groups].iter_mut().enumerate() {
                            let rows: [&[$elem]; G] = rows_at(|j| row(r0 + g * G + j));
                            // SAFETY: `xs` holds `T` vectors of `k` and every
                            // row `k` weights; spans start at multiples of
                            // SPAN, itself a multiple of 64.
                            unsafe {
                                $steps(
                                    xs.as_ptr(),
                                    k,
                                    row_ptrs(&rows, row_len),
                                    span.clone(),
                                    $lead_rows * row_len,
                                    acc,
                                )
                            };
                        }
                        c = span.end;
                    }
                    for (g, acc) in acc[..groups].iter().enumerate() {
                        for (j, acc) in acc.iter().enumerate() {
                            let r = r0 + g * G + j;
                            for (t, a) in acc.iter().enumerate() {
                                out[r * n + t0 + t] = $finish(*a, &xs[t * k..(t + 1) * k], row(r));
                            }
                        }
                    }
                });
                r0 += groups * G;
            }
            for r in r0..m {
                $rows_multi(xs, [row(r)], k, [&mut out[r * n..(r + 1) * n]]);
            }
        }
    };
}

/// Weights of each row that the span-by-span kernels ([`multi_in_spans`])
/// take at a time: six vectors' 512 floats (12 KiB) stay in L1 while every
/// row of a block passes, where whole rows of six 2560-wide vectors (60
/// KiB) overflow a 48 KiB L1 and evict the rows' prefetched lines.
const SPAN: usize = 512;

/// Rows that the span-by-span F16 kernels take through each span together:
/// the model's blocks of the LM head.
const F16_SPAN_ROWS: usize = 64;

/// How many rows on the span-by-span F16 kernels prefetch. On the Zen 5 VM
/// (2026-12-01; 2B head, one thread) a decode batch of 3 took 7.8–8.1 ms
/// of LM head per token with 32 against 8.2–9.6 with 64 (alternated four
/// times), and batches of 6 and 12 the same; 128 was slower (batch 6:
/// 4.8–4.9 against 4.3–4.5). The AVX2 kernels there: batch 3 9.1 against
/// 9.4–9.5, batch 6 6.4–6.5 against 6.8–7.0.
const F16_LEAD_ROWS: usize = 32;

/// Elements of an F16 row of `k` weights.
const fn f16_row_len(k: usize) -> usize {
    k
}

/// Rows that the span-by-span Q8_0 kernels take through each span
/// together: each (row, vector) pair keeps two chains. On the Zen 5 VM
/// (2026-12-01, 6 vectors) 27.5–28.0 ms per pass with 32 rows, 28.4–29.3
/// with 64.
const Q8_0_SPAN_ROWS: usize = 32;

/// Bytes of a Q8_0 row of `k` weights.
const fn q8_0_row_len(k: usize) -> usize {
    k / crate::float::Q8_0_BLOCK * crate::float::Q8_0_BLOCK_BYTES
}

/// Defines `$name::<G, T>(xp, k, wp, span, lead, accs)`: the two chains
/// per pair of `G` Q8_0 rows × `T` vectors over the weights `span` (whole
/// blocks), each block's weights `d·q` made once (`$weights`, `$wn`
/// vectors) for all `T` vectors and added by `$fma`; every pair has its two
/// chains whatever `G` and `T`, so a pair's dot depends neither on its tile
/// nor on how the row was split into spans. Each row prefetches `lead`
/// bytes ahead.
///
/// Safety of the defined function: `xp` is valid for reading `T·k` floats
/// and every `wp` for a row of `k` weights; `span` lies in `0..k` and
/// starts at a multiple of 32.
macro_rules! q8_0_steps {
    ($(#[$doc:meta])* $name:ident, $vec:ty, $wn:literal, $weights:ident, $fma:ident,
     $features:literal) => {
        $(#[$doc])*
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn $name<const G: usize, const T: usize>(
            xp: *const f32,
            k: usize,
            wp: [*const u8; G],
            span: Range<usize>,
            lead: usize,
            accs: &mut [[[$vec; 2]; T]; G],
        ) {
            use crate::float::{Q8_0_BLOCK, Q8_0_BLOCK_BYTES};
            // A local copy: the chains stay in registers between the blocks.
            let mut acc = *accs;
            for b in span.start / Q8_0_BLOCK..span.end / Q8_0_BLOCK {
                for (a, w) in acc.iter_mut().zip(&wp) {
                    prefetch_line(w.wrapping_add(lead + b * Q8_0_BLOCK_BYTES));
                    // SAFETY: block b < k/32 is bytes 34b .. 34b + 34 of the
                    // row; floats t·k + 32b .. + 32 lie in vector t < T
                    // (caller).
                    unsafe {
                        let wv: [$vec; $wn] = $weights(w.add(b * Q8_0_BLOCK_BYTES));
                        for (t, a) in a.iter_mut().enumerate() {
                            $fma(a, &wv, xp.add(t * k + Q8_0_BLOCK * b));
                        }
                    }
                }
            }
            *accs = acc;
        }
    };
}

/// Defines an ISA's Q8_0 table entries over its `$steps` (the two chains
/// per pair of `G` rows × `T` vectors over a span of whole blocks),
/// `$finish` and `$zero`: `$gemv` (`gemv_q8_0`: the rows in far-apart
/// streams as the F16 GEMV reads them, `$steps` with one vector) and
/// `$multi` (`dot_q8_0_multi`: bit for bit `$gemv` per pair). More than two
/// vectors go span by span ([`multi_in_spans`], tiles of `$g` rows); fewer
/// take each row through `$steps` against `$widths` vectors at a time, the
/// rows in four far-apart streams ([`multi_in_streams`]), each prefetching
/// the next of its stream.
macro_rules! q8_0_entries {
    ($features:literal, $steps:ident, $finish:ident, $zero:ident, $g:literal,
     [$($w:literal),*; $last:literal], $gemv:ident, $multi:ident) => {
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $gemv(
            w: &[u8],
            k: usize,
            x: &[f32],
            rows: Range<usize>,
            y: &mut [f32],
        ) {
            /// `x` against `S` rows at once: each block of `x` is read
            /// once for all of them.
            #[inline]
            #[target_feature(enable = $features)]
            fn dot_rows<const S: usize>(x: &[f32], rows: [&[u8]; S]) -> [f32; S] {
                let k = x.len();
                let wp = row_ptrs(&rows, q8_0_row_len(k));
                let mut acc = [[$zero(); 1]; S];
                // SAFETY: `x` holds `k` floats and every row `k` weights.
                unsafe { $steps(x.as_ptr(), k, wp, 0..k, super::PREFETCH_BYTES, &mut acc) };
                let mut out = [0f32; S];
                for (o, a) in out.iter_mut().zip(&acc) {
                    *o = $finish(a[0], x, &[]);
                }
                out
            }
            let x = &x[..k];
            gemv_in_streams(
                w,
                q8_0_row_len(k),
                rows,
                y,
                |rs| dot_rows(x, rs),
                |r| dot_rows(x, [r])[0],
            );
        }

        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $multi(xs: &[f32], w: &[u8], k: usize, out: &mut [f32]) {
            /// One row against every vector of `xs`, `$widths` at a time;
            /// the row prefetches the next of its stream.
            #[inline]
            #[target_feature(enable = $features)]
            fn row_multi(xs: &[f32], [row]: [&[u8]; 1], k: usize, [out]: [&mut [f32]; 1]) {
                tiles!(out.len(), [$($w),*; $last], |t0, T| {
                    let xs = &xs[t0 * k..(t0 + T) * k];
                    let mut acc = [[$zero(); T]];
                    // SAFETY: `xs` holds `T` vectors and `row` a row, `k`
                    // weights each.
                    unsafe { $steps(xs.as_ptr(), k, [row.as_ptr()], 0..k, row.len(), &mut acc) };
                    for (o, a) in out[t0..t0 + T].iter_mut().zip(&acc[0]) {
                        *o = $finish(*a, xs, row);
                    }
                });
            }
            multi_in_spans!(
                spans,
                u8,
                q8_0_row_len,
                Q8_0_SPAN_ROWS,
                Q8_0_SPAN_ROWS,
                $steps,
                $finish,
                $zero,
                $g,
                [$($w),*; $last],
                $features,
                row_multi
            );
            let n = xs.len() / k;
            if n > 2 {
                return spans(xs, w, k, out);
            }
            multi_in_streams::<_, 4>(
                w,
                q8_0_row_len(k),
                n,
                out,
                |rs, outs| {
                    for (r, o) in rs.into_iter().zip(outs) {
                        row_multi(xs, [r], k, [o]);
                    }
                },
                |r, o| row_multi(xs, [r], k, [o]),
            );
        }
    };
}

// ---------------------------------------------------------------------------
// AVX2
// ---------------------------------------------------------------------------

/// `Σ` of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_avx2(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// The first element of each row, after checking every row holds `len`
/// elements (so kernels may read `0..len` of each through the pointer).
/// A loop, not `array::map`: that is not always inlined into the
/// `#[target_feature]` kernels, and these run once per few hundred bytes.
#[inline(always)]
pub(super) fn row_ptrs<T, const S: usize>(rows: &[&[T]; S], len: usize) -> [*const T; S] {
    let mut p = [core::ptr::null(); S];
    for (p, r) in p.iter_mut().zip(rows) {
        *p = r[..len].as_ptr();
    }
    p
}

/// `max` of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hmax_avx2(v: __m256) -> f32 {
    let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)))
}

/// `math::exp` lane-wise, bit for bit: the same clamp (a NaN stays NaN),
/// reduction and polynomial, each step a separate IEEE operation.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn exp_avx2(x: __m256) -> __m256 {
    use exp_consts::*;
    // `maxps`/`minps` return their second operand when either is NaN.
    let x = _mm256_min_ps(_mm256_set1_ps(HI), _mm256_max_ps(_mm256_set1_ps(LO), x));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(LOG2E),
    ));
    let r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(LN2_HI)));
    let r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(LN2_LO)));
    let mut p = _mm256_set1_ps(P[0]);
    for &c in &P[1..] {
        p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(c));
    }
    let y = _mm256_add_ps(
        _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p, r), r), r),
        _mm256_set1_ps(1.0),
    );
    // n ∈ [-126, 127] after the clamp, so the biased exponent is normal.
    let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    _mm256_mul_ps(y, _mm256_castsi256_ps(e))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16_to_f32_avx2(src: &[u16], dst: &mut [f32]) {
    let n = src.len().min(dst.len());
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    let mut i = 0;
    while i + 8 <= n {
        // The f16 KV cache is widened block by block from DRAM late in a
        // long context; the next block of the head follows this one.
        if i % 16 == 0 {
            prefetch_lone_stream(s.wrapping_add(i).cast());
        }
        // SAFETY: i + 8 <= n, so both ranges lie inside their slices;
        // loadu/storeu need no alignment.
        unsafe { _mm256_storeu_ps(d.add(i), _mm256_cvtph_ps(_mm_loadu_si128(s.add(i).cast()))) };
        i += 8;
    }
    for j in i..n {
        dst[j] = math::f16_to_f32(src[j]);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f32_to_f16_avx2(src: &[f32], dst: &mut [u16]) {
    let n = src.len().min(dst.len());
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, so both ranges lie inside their slices.
        unsafe {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(s.add(i)));
            _mm_storeu_si128(d.add(i).cast(), h);
        }
        i += 8;
    }
    for j in i..n {
        dst[j] = math::f32_to_f16(src[j]);
    }
}

/// `Σ x²` with four accumulators (latency-bound otherwise).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn sum_sq_avx2(x: &[f32]) -> f32 {
    let (n, p) = (x.len(), x.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: i + 32 <= n = x.len().
        unsafe {
            for (u, a) in acc.iter_mut().enumerate() {
                let v = _mm256_loadu_ps(p.add(i + 8 * u));
                *a = _mm256_fmadd_ps(v, v, *a);
            }
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n = x.len().
        let v = unsafe { _mm256_loadu_ps(p.add(i)) };
        acc[0] = _mm256_fmadd_ps(v, v, acc[0]);
        i += 8;
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum_avx2(v);
    for &v in &x[i..] {
        s += v * v;
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn rms_norm_avx2(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let inv = 1.0 / math::sqrt(sum_sq_avx2(x) / x.len() as f32 + eps);
    let n = x.len().min(w.len()).min(out.len());
    let (xp, wp, op) = (x.as_ptr(), w.as_ptr(), out.as_mut_ptr());
    let vinv = _mm256_set1_ps(inv);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, within all three slices.
        unsafe {
            let v = _mm256_mul_ps(_mm256_loadu_ps(xp.add(i)), vinv);
            _mm256_storeu_ps(op.add(i), _mm256_mul_ps(v, _mm256_loadu_ps(wp.add(i))));
        }
        i += 8;
    }
    for j in i..n {
        out[j] = x[j] * inv * w[j];
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn softmax_avx2(x: &mut [f32]) {
    let (n, p) = (x.len(), x.as_mut_ptr());
    let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n = x.len().
        vmax = _mm256_max_ps(vmax, unsafe { _mm256_loadu_ps(p.add(i)) });
        i += 8;
    }
    let mut max = hmax_avx2(vmax);
    for j in i..n {
        max = max.max(x[j]);
    }

    let vm = _mm256_set1_ps(max);
    let mut vsum = [_mm256_setzero_ps(); 2];
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n = x.len().
        unsafe {
            for (u, s) in vsum.iter_mut().enumerate() {
                let q = p.add(i + 8 * u);
                let e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(q), vm));
                _mm256_storeu_ps(q, e);
                *s = _mm256_add_ps(*s, e);
            }
        }
        i += 16;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n = x.len().
        unsafe {
            let q = p.add(i);
            let e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(q), vm));
            _mm256_storeu_ps(q, e);
            vsum[0] = _mm256_add_ps(vsum[0], e);
        }
        i += 8;
    }
    let mut sum = hsum_avx2(_mm256_add_ps(vsum[0], vsum[1]));
    for v in &mut x[i..] {
        *v = math::exp(*v - max);
        sum += *v;
    }

    let inv = 1.0 / sum;
    let p = x.as_mut_ptr();
    let vinv = _mm256_set1_ps(inv);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n = x.len().
        unsafe { _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), vinv)) };
        i += 8;
    }
    for v in &mut x[i..] {
        *v *= inv;
    }
}

/// `math::exp_f64` on four lanes: the same operations in the same order, no
/// FMA, so the same bits.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn exp_f64_avx2(x: __m256d) -> __m256d {
    use math::exp_f64_consts::*;
    // `maxpd` returns its second operand when either is NaN.
    let x = _mm256_max_pd(_mm256_set1_pd(LO), x);
    let t = _mm256_add_pd(
        _mm256_mul_pd(x, _mm256_set1_pd(LOG2E)),
        _mm256_set1_pd(SHIFT),
    );
    let n = _mm256_sub_pd(t, _mm256_set1_pd(SHIFT));
    let r = _mm256_sub_pd(
        _mm256_sub_pd(x, _mm256_mul_pd(n, _mm256_set1_pd(LN2_HI))),
        _mm256_mul_pd(n, _mm256_set1_pd(LN2_LO)),
    );
    let mut p = _mm256_set1_pd(P[0]);
    for &c in &P[1..] {
        p = _mm256_add_pd(_mm256_mul_pd(p, r), _mm256_set1_pd(c));
    }
    let two_n = _mm256_add_epi64(
        _mm256_slli_epi64::<52>(_mm256_castpd_si256(t)),
        _mm256_set1_epi64x(1023 << 52),
    );
    _mm256_mul_pd(p, _mm256_castsi256_pd(two_n))
}

/// Lane `j` of `acc[0]`/`acc[1]` is `math::reduce_f64_lanes`' lane `j`/`j + 4`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn softmax_f64acc_avx2<const F32_EXP: bool>(x: &mut [f32], scale: f32) {
    let (n, p) = (x.len(), x.as_mut_ptr());
    let main = n - n % 8;
    let vscale = _mm256_set1_ps(scale);
    let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut i = 0;
    while i < main {
        // SAFETY: i + 8 <= main <= n = x.len().
        unsafe {
            let y = _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), vscale);
            _mm256_storeu_ps(p.add(i), y);
            // NaN lanes of `y` leave `vmax` alone, as `f32::max` does.
            vmax = _mm256_max_ps(y, vmax);
        }
        i += 8;
    }
    let mut max = hmax_avx2(vmax);
    for v in &mut x[main..] {
        *v *= scale;
        max = max.max(*v);
    }

    let (p, vm) = (x.as_mut_ptr(), _mm256_set1_ps(max));
    let mut acc = [_mm256_setzero_pd(); 2];
    let mut i = 0;
    // Unlike AVX-512's, more exponentials per step do not help here: four
    // lanes at a time, the FPU's throughput is the limit.
    while i < main {
        // SAFETY: i + 8 <= main <= n = x.len().
        unsafe {
            let q = p.add(i);
            let d = _mm256_sub_ps(_mm256_loadu_ps(q), vm);
            for (h, (a, d)) in acc
                .iter_mut()
                .zip([_mm256_castps256_ps128(d), _mm256_extractf128_ps::<1>(d)])
                .enumerate()
            {
                let e = if F32_EXP {
                    _mm256_castps256_ps128(exp_avx2(_mm256_castps128_ps256(d)))
                } else {
                    _mm256_cvtpd_ps(exp_f64_avx2(_mm256_cvtps_pd(d)))
                };
                _mm_storeu_ps(q.add(4 * h), e);
                *a = _mm256_add_pd(*a, _mm256_cvtps_pd(e));
            }
        }
        i += 8;
    }
    let sum = sum_f64x4(_mm256_add_pd(acc[0], acc[1]));
    let sum = scalar::softmax_f64acc_tail::<F32_EXP>(&mut x[main..], max, sum);

    let (p, vs) = (x.as_mut_ptr(), _mm256_set1_ps(sum));
    let mut i = 0;
    while i < main {
        // SAFETY: i + 8 <= main <= n = x.len().
        unsafe { _mm256_storeu_ps(p.add(i), _mm256_div_ps(_mm256_loadu_ps(p.add(i)), vs)) };
        i += 8;
    }
    for v in &mut x[main..] {
        *v /= sum;
    }
}

/// Separate multiplies and adds, no FMA: RoPE is a few hundred flops per
/// token, and rounding each product like the scalar code makes every x86
/// path reproduce it bit for bit. (FMA would only help accuracy where
/// `a·c ≈ b·s` cancel, and make results depend on the ISA.)
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn rope_neox_avx2(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    // Vector part limited to what cos/sin really hold; the scalar tail below
    // bounds-checks the rest.
    let m = half.min(cos.len()).min(sin.len());
    for head in x.chunks_exact_mut(head_dim) {
        let (lo, hi) = head.split_at_mut(half);
        let (lp, hp) = (lo.as_mut_ptr(), hi.as_mut_ptr());
        let mut i = 0;
        while i + 8 <= m {
            // SAFETY: i + 8 <= m <= half = lo.len() = hi.len(), and m is at
            // most the cos/sin lengths.
            unsafe {
                let a = _mm256_loadu_ps(lp.add(i));
                let b = _mm256_loadu_ps(hp.add(i));
                let c = _mm256_loadu_ps(cos.as_ptr().add(i));
                let s = _mm256_loadu_ps(sin.as_ptr().add(i));
                _mm256_storeu_ps(
                    lp.add(i),
                    _mm256_sub_ps(_mm256_mul_ps(a, c), _mm256_mul_ps(b, s)),
                );
                _mm256_storeu_ps(
                    hp.add(i),
                    _mm256_add_ps(_mm256_mul_ps(a, s), _mm256_mul_ps(b, c)),
                );
            }
            i += 8;
        }
        for j in i..half {
            let (a, b) = (lo[j], hi[j]);
            lo[j] = a * cos[j] - b * sin[j];
            hi[j] = a * sin[j] + b * cos[j];
        }
    }
}

/// No FMA, as in [`rope_neox_avx2`]: equal to the scalar code bit for bit.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn rope_interleaved_avx2(
    x: &mut [f32],
    head_dim: usize,
    cos: &[f32],
    sin: &[f32],
) {
    let half = head_dim / 2;
    let m = half.min(cos.len()).min(sin.len());
    for head in x.chunks_exact_mut(head_dim) {
        let hp = head.as_mut_ptr();
        let mut i = 0; // pair index
        while i + 4 <= m {
            // SAFETY: pairs i..i+4 are floats 2i..2i+8 <= 2m <= head_dim;
            // cos/sin i..i+4 are within m.
            unsafe {
                let v = _mm256_loadu_ps(hp.add(2 * i));
                let c = _mm_loadu_ps(cos.as_ptr().add(i));
                let s = _mm_loadu_ps(sin.as_ptr().add(i));
                // [c0 c0 c1 c1 | c2 c2 c3 c3], matching [a0 b0 a1 b1 | ...].
                let cc = _mm256_set_m128(_mm_unpackhi_ps(c, c), _mm_unpacklo_ps(c, c));
                let ss = _mm256_set_m128(_mm_unpackhi_ps(s, s), _mm_unpacklo_ps(s, s));
                // [b0 a0 b1 a1 ...]; then even lanes get a·c − b·s and odd
                // lanes b·c + a·s from one addsub.
                let swapped = _mm256_permute_ps::<0b1011_0001>(v);
                let r = _mm256_addsub_ps(_mm256_mul_ps(v, cc), _mm256_mul_ps(swapped, ss));
                _mm256_storeu_ps(hp.add(2 * i), r);
            }
            i += 4;
        }
        for j in i..half {
            let (a, b) = (head[2 * j], head[2 * j + 1]);
            head[2 * j] = a * cos[j] - b * sin[j];
            head[2 * j + 1] = a * sin[j] + b * cos[j];
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_f32_avx2(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: i + 32 <= n, within both slices.
        unsafe {
            for (u, s) in acc.iter_mut().enumerate() {
                let o = i + 8 * u;
                *s = _mm256_fmadd_ps(_mm256_loadu_ps(ap.add(o)), _mm256_loadu_ps(bp.add(o)), *s);
            }
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, within both slices.
        unsafe {
            acc[0] = _mm256_fmadd_ps(
                _mm256_loadu_ps(ap.add(i)),
                _mm256_loadu_ps(bp.add(i)),
                acc[0],
            );
        }
        i += 8;
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum_avx2(v);
    for j in i..n {
        s += a[j] * b[j];
    }
    s
}

/// `Σ a[i]·f32(b[i])` over the common prefix.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f16_impl_avx2(a: &[f32], b: &[u16]) -> f32 {
    let n = a.len().min(b.len());
    dot_f16_rows_avx2(&a[..n], [&b[..n]])[0]
}

/// [`dot_f16_impl_avx2`] of `x` against `S` rows at once (the decode GEMV's
/// streams): [`dot_f16_tile_avx2`] with one vector, each row prefetched
/// [`PREFETCH_BYTES`](super::PREFETCH_BYTES) ahead.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f16_rows_avx2<const S: usize>(x: &[f32], rows: [&[u16]; S]) -> [f32; S] {
    let mut out = [[0f32; 1]; S];
    dot_f16_tile_avx2::<S, 1>(x, rows, x.len(), super::PREFETCH_BYTES / 2, &mut out);
    out.map(|[v]| v)
}

/// The scalar tail every AVX2 f16 dot ends with: `s + Σ x·f32(h)` in order.
#[inline(always)]
fn f16_dot_tail(mut s: f32, x: &[f32], h: &[u16]) -> f32 {
    for (&xv, &h) in x.iter().zip(h) {
        s += xv * math::f16_to_f32(h);
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_f16_avx2(a: &[f32], b: &[u16]) -> f32 {
    dot_f16_impl_avx2(a, b)
}

/// `Σ_i xs[t·k + i]·f32(rows[r][i])` for `T` vectors against `R` rows, the
/// one f16 dot of AVX2: each (row, vector) pair sums its 8-wide steps in
/// order into one FMA chain, then sums the lanes and adds the scalar tail,
/// so a pair's result does not depend on the tile it is computed in. One
/// chain per pair: the rows (four streams in the decode GEMV) and vectors
/// give the FMA units their parallelism, and 2 rows × 6 vectors of
/// accumulators fit in 16 registers. Each 8 floats of a vector are loaded
/// once for all rows; each row prefetches `lead` halves ahead, two requests
/// per 64-byte line (on the AVX2 VM, 2026-11-30, 7–10 % faster than one).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f16_tile_avx2<const R: usize, const T: usize>(
    xs: &[f32],
    rows: [&[u16]; R],
    k: usize,
    lead: usize,
    out: &mut [[f32; T]; R],
) {
    let xs = &xs[..T * k];
    let wp = row_ptrs(&rows, k);
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    // SAFETY: `xs` holds `T` vectors and every `wp` a row, `k` elements each.
    unsafe { f16_steps_avx2(xs.as_ptr(), k, wp, 0..k, lead, &mut acc) };
    for (o, (a, row)) in out.iter_mut().zip(acc.iter().zip(&rows)) {
        for (t, (o, a)) in o.iter_mut().zip(a).enumerate() {
            *o = f16_finish_avx2(*a, &xs[t * k..(t + 1) * k], row);
        }
    }
}

/// A pair's dot from its chain: the lanes' sum, then the scalar tail past
/// the last whole 8-wide step.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16_finish_avx2(acc: __m256, x: &[f32], row: &[u16]) -> f32 {
    let i = x.len() / 8 * 8;
    f16_dot_tail(hsum_avx2(acc), &x[i..], &row[i..x.len()])
}

/// The FMA chains of [`dot_f16_tile_avx2`] over the halves `span` only:
/// `acc[r][t]` gains the whole 8-wide steps of row `r` against vector `t`
/// that start in `span`, in order ([`f16_finish_avx2`] adds the tail). A
/// dot summed span after span, each starting at a multiple of 32, makes the
/// same steps in the same order as one span over `0..k`.
///
/// # Safety
/// `xp` is valid for reading `T·k` floats and every `wp` for `k` halves;
/// `span` lies in `0..k` and starts at a multiple of 32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_steps_avx2<const R: usize, const T: usize>(
    xp: *const f32,
    k: usize,
    wp: [*const u16; R],
    span: Range<usize>,
    lead: usize,
    accs: &mut [[__m256; T]; R],
) {
    // A local copy: the chains stay in registers between the steps.
    let mut acc = *accs;
    // One 8-wide step, all rows and vectors: a macro, not a closure over
    // `acc`, so nothing forces the accumulators out of registers.
    macro_rules! step {
        ($i:expr) => {
            // SAFETY: $i + 8 <= span.end <= k (our caller's contract), so
            // halves $i..$i + 8 lie in every row and floats
            // t·k + $i .. t·k + $i + 8 in vector t < T.
            unsafe {
                let mut h = [_mm256_setzero_ps(); R];
                for (h, w) in h.iter_mut().zip(&wp) {
                    *h = _mm256_cvtph_ps(_mm_loadu_si128(w.add($i).cast()));
                }
                for t in 0..T {
                    let xv = _mm256_loadu_ps(xp.add(t * k + $i));
                    for (a, h) in acc.iter_mut().zip(&h) {
                        a[t] = _mm256_fmadd_ps(xv, *h, a[t]);
                    }
                }
            }
        };
    }
    let mut i = span.start;
    while i + 16 <= span.end {
        if i.is_multiple_of(32) {
            for w in &wp {
                let ahead = w.wrapping_add(lead + i).cast::<u8>();
                prefetch_line(ahead);
                prefetch_line(ahead.wrapping_add(32));
            }
        }
        step!(i);
        step!(i + 8);
        i += 16;
    }
    if i + 8 <= span.end {
        step!(i);
    }
    *accs = acc;
}

f16_rows_multi!(
    /// [`dot_f16_tile_avx2`] over every vector of `xs`, 6 at a time: 2 rows
    /// × 6 vectors of accumulators, two converted rows and one vector load
    /// are 15 of the 16 ymm registers; each converted row feeds six FMAs and
    /// each vector load two. On the AVX2 VM (2026-11-30; the 2B head from
    /// DRAM, 6 vectors, one thread) the whole crate's batched head ran at
    /// 19.5–23.2 GMAC/s this way against 17.0–19.1 for 2 rows × 3 vectors ×
    /// 2 chains (alternated in one process).
    dot_f16_rows_multi_avx2,
    dot_f16_tile_avx2,
    "avx2,fma,f16c"
);

multi_in_spans!(
    /// `dot_f16_multi` span by span ([`multi_in_spans`]), in tiles of 2 rows.
    dot_f16_spans_avx2,
    u16,
    f16_row_len,
    F16_SPAN_ROWS,
    F16_LEAD_ROWS,
    f16_steps_avx2,
    f16_finish_avx2,
    _mm256_setzero_ps,
    2,
    [1, 2, 3, 4, 5; 6],
    "avx2,fma,f16c",
    dot_f16_rows_multi_avx2
);

/// See `Table::dot_f16_multi`. More than two vectors go span by span
/// ([`dot_f16_spans_avx2`]): on the Zen 5 VM (2026-12-01; the 2B head from
/// DRAM in the model's 64-row blocks, 6 vectors, AVX2 kernels) a pass took
/// 31.2–32.0 ms against 33.1–35.1 whole row by whole row on one thread,
/// 16.5–17.2 against 17.2–20.1 on two. Fewer pair row `j` with row
/// `j + m/2` in a tile, so the rows arrive as two streams half the matrix
/// apart, as the decode GEMV's do
/// ([`GEMV_STREAMS`](crate::arch::GEMV_STREAMS)): on the AVX2 VM
/// (2026-11-30; 6 vectors, one thread) 25.0–27.2 GMAC/s against 16.5–22.4
/// for adjacent rows, alternated in one process.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_f16_multi_avx2(xs: &[f32], w: &[u16], k: usize, out: &mut [f32]) {
    let n = xs.len() / k;
    if n > 2 {
        return dot_f16_spans_avx2(xs, w, k, out);
    }
    multi_in_streams::<_, 2>(
        w,
        k,
        n,
        out,
        |rs, outs| dot_f16_rows_multi_avx2(xs, rs, k, outs),
        |r, o| dot_f16_rows_multi_avx2(xs, [r], k, [o]),
    );
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn axpy_f32_avx2(alpha: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
    let va = _mm256_set1_ps(alpha);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, within both slices.
        unsafe {
            let r = _mm256_fmadd_ps(va, _mm256_loadu_ps(xp.add(i)), _mm256_loadu_ps(yp.add(i)));
            _mm256_storeu_ps(yp.add(i), r);
        }
        i += 8;
    }
    for j in i..n {
        y[j] += alpha * x[j];
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn axpy_f16_avx2(alpha: f32, x: &[u16], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
    let va = _mm256_set1_ps(alpha);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, within both slices.
        unsafe {
            let h = _mm256_cvtph_ps(_mm_loadu_si128(xp.add(i).cast()));
            _mm256_storeu_ps(
                yp.add(i),
                _mm256_fmadd_ps(va, h, _mm256_loadu_ps(yp.add(i))),
            );
        }
        i += 8;
    }
    for j in i..n {
        y[j] += alpha * math::f16_to_f32(x[j]);
    }
}

/// Rows in [`GEMV_STREAMS`](crate::arch::GEMV_STREAMS) far-apart streams
/// (see there for why), each row as [`dot_f16_impl_avx2`] computes it.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn gemv_f16_avx2(
    w: &[u16],
    k: usize,
    x: &[f32],
    rows: Range<usize>,
    y: &mut [f32],
) {
    let x = &x[..k];
    gemv_in_streams(
        w,
        k,
        rows,
        y,
        |rs| dot_f16_rows_avx2(x, rs),
        |r| dot_f16_rows_avx2(x, [r])[0],
    );
}

/// One Q8_0 block's weights `d·q` as f32 lanes (f16 scale `d`, 32 × i8
/// `q`): weights 0..8, 8..16, 16..24 and 24..32. Exact: an int8 times an
/// f16 has at most 19 significant bits, so a term of a Q8_0 dot is rounded
/// only by its FMA.
///
/// # Safety
/// `q` must be valid for reading 34 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_weights_avx2(q: *const u8) -> [__m256; 4] {
    // SAFETY: the caller guarantees 34 readable bytes: the scale at 0..2, the
    // weights at 2..34, read 8 at a time; no alignment needed.
    unsafe {
        let h = u16::from_le(q.cast::<u16>().read_unaligned());
        let d = _mm256_cvtph_ps(_mm_set1_epi16(h as i16));
        let w = |u: usize| {
            let b = _mm_loadl_epi64(q.add(2 + 8 * u).cast());
            _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)))
        };
        [w(0), w(1), w(2), w(3)]
    }
}

/// A pair's two chains after one more block: weights 0..8 and 16..24 into
/// the first, 8..16 and 24..32 into the second; `x` points at the block's
/// 32 activations.
///
/// # Safety
/// `x` must be valid for reading 32 floats.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_fma_avx2(acc: &mut [__m256; 2], w: &[__m256; 4], x: *const f32) {
    for (u, w) in w.iter().enumerate() {
        // SAFETY: floats 8u .. 8u + 8 < 32 (caller).
        let xv = unsafe { _mm256_loadu_ps(x.add(8 * u)) };
        acc[u % 2] = _mm256_fmadd_ps(*w, xv, acc[u % 2]);
    }
}

q8_0_steps!(
    /// The chains of `G` Q8_0 rows against `T` vectors over the weights
    /// `span` (whole blocks) for AVX2 ([`q8_fma_avx2`]).
    q8_0_steps_avx2,
    __m256,
    4,
    q8_weights_avx2,
    q8_fma_avx2,
    "avx2,fma,f16c"
);

/// A pair's dot from its two chains.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q8_0_finish_avx2(acc: [__m256; 2], _x: &[f32], _row: &[u8]) -> f32 {
    hsum_avx2(_mm256_add_ps(acc[0], acc[1]))
}

/// A pair's two empty chains.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q8_0_zero_avx2() -> [__m256; 2] {
    [_mm256_setzero_ps(); 2]
}

q8_0_entries!(
    "avx2,fma,f16c",
    q8_0_steps_avx2,
    q8_0_finish_avx2,
    q8_0_zero_avx2,
    1,
    [1, 2, 3; 4],
    gemv_q8_0_avx2,
    dot_q8_0_multi_avx2
);

// ---------------------------------------------------------------------------
// AVX-512: 16 lanes, and masked loads/stores turn every tail into one more
// vector step instead of a scalar loop.
// ---------------------------------------------------------------------------

/// Mask of the first `n` (< 16) lanes.
#[inline(always)]
fn tail_mask(n: usize) -> __mmask16 {
    debug_assert!(n < 16);
    (1u32 << n) as u16 - 1
}

/// `math::exp` on 16 lanes, bit for bit, as [`exp_avx2`] on 8.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
fn exp_avx512(x: __m512) -> __m512 {
    use exp_consts::*;
    let x = _mm512_min_ps(_mm512_set1_ps(HI), _mm512_max_ps(_mm512_set1_ps(LO), x));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
    );
    let r = _mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(LN2_HI)));
    let r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(LN2_LO)));
    let mut p = _mm512_set1_ps(P[0]);
    for &c in &P[1..] {
        p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(c));
    }
    let y = _mm512_add_ps(
        _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(p, r), r), r),
        _mm512_set1_ps(1.0),
    );
    let e = _mm512_slli_epi32::<23>(_mm512_add_epi32(
        _mm512_cvtps_epi32(n),
        _mm512_set1_epi32(127),
    ));
    _mm512_mul_ps(y, _mm512_castsi512_ps(e))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn f16_to_f32_avx512(src: &[u16], dst: &mut [f32]) {
    let n = src.len().min(dst.len());
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    let mut i = 0;
    while i + 16 <= n {
        // The KV cache, as in `f16_to_f32_avx2`; one request per line.
        if i % 32 == 0 {
            prefetch_lone_stream(s.wrapping_add(i).cast());
        }
        // SAFETY: i + 16 <= n, within both slices.
        unsafe {
            _mm512_storeu_ps(
                d.add(i),
                _mm512_cvtph_ps(_mm256_loadu_si256(s.add(i).cast())),
            )
        };
        i += 16;
    }
    if i < n {
        let m = tail_mask(n - i);
        // SAFETY: masked-off lanes are neither read nor written (no faults),
        // the enabled ones are i .. n.
        unsafe {
            let h = _mm256_maskz_loadu_epi16(m, s.add(i).cast());
            _mm512_mask_storeu_ps(d.add(i), m, _mm512_cvtph_ps(h));
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn f32_to_f16_avx512(src: &[f32], dst: &mut [u16]) {
    let n = src.len().min(dst.len());
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n, within both slices.
        unsafe {
            let h = _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm512_loadu_ps(s.add(i)));
            _mm256_storeu_si256(d.add(i).cast(), h);
        }
        i += 16;
    }
    if i < n {
        let m = tail_mask(n - i);
        // SAFETY: masked lanes only, i .. n.
        unsafe {
            let h =
                _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm512_maskz_loadu_ps(m, s.add(i)));
            _mm256_mask_storeu_epi16(d.add(i).cast(), m, h);
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn rms_norm_avx512(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let (n, xp) = (x.len(), x.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: i + 64 <= n = x.len().
        unsafe {
            for (u, a) in acc.iter_mut().enumerate() {
                let v = _mm512_loadu_ps(xp.add(i + 16 * u));
                *a = _mm512_fmadd_ps(v, v, *a);
            }
        }
        i += 64;
    }
    while i < n {
        let m = if i + 16 <= n {
            0xffff
        } else {
            tail_mask(n - i)
        };
        // SAFETY: only lanes i .. min(i + 16, n) are read.
        let v = unsafe { _mm512_maskz_loadu_ps(m, xp.add(i)) };
        acc[0] = _mm512_fmadd_ps(v, v, acc[0]);
        i += 16;
    }
    let v = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let inv = 1.0 / math::sqrt(_mm512_reduce_add_ps(v) / n as f32 + eps);

    let n = n.min(w.len()).min(out.len());
    let (wp, op) = (w.as_ptr(), out.as_mut_ptr());
    let vinv = _mm512_set1_ps(inv);
    let mut i = 0;
    while i < n {
        let m = if i + 16 <= n {
            0xffff
        } else {
            tail_mask(n - i)
        };
        // SAFETY: only lanes i .. min(i + 16, n) are touched, within all three slices.
        unsafe {
            let v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xp.add(i)), vinv);
            let g = _mm512_maskz_loadu_ps(m, wp.add(i));
            _mm512_mask_storeu_ps(op.add(i), m, _mm512_mul_ps(v, g));
        }
        i += 16;
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn softmax_avx512(x: &mut [f32]) {
    let (n, p) = (x.len(), x.as_mut_ptr());
    let mut vmax = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut i = 0;
    while i < n {
        let m = if i + 16 <= n {
            0xffff
        } else {
            tail_mask(n - i)
        };
        // SAFETY: only lanes i .. min(i + 16, n) are read; the others keep -inf.
        vmax = unsafe { _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, p.add(i))) };
        i += 16;
    }
    let vm = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));

    let mut vsum = [_mm512_setzero_ps(); 2];
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: i + 32 <= n = x.len().
        unsafe {
            for (u, s) in vsum.iter_mut().enumerate() {
                let q = p.add(i + 16 * u);
                let e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(q), vm));
                _mm512_storeu_ps(q, e);
                *s = _mm512_add_ps(*s, e);
            }
        }
        i += 32;
    }
    while i < n {
        let m = if i + 16 <= n {
            0xffff
        } else {
            tail_mask(n - i)
        };
        // SAFETY: only lanes i .. min(i + 16, n) are touched; masked-off lanes
        // add 0 to the sum.
        unsafe {
            let q = p.add(i);
            let e = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, q), vm));
            _mm512_mask_storeu_ps(q, m, e);
            vsum[0] = _mm512_mask_add_ps(vsum[0], m, vsum[0], e);
        }
        i += 16;
    }
    let sum = _mm512_reduce_add_ps(_mm512_add_ps(vsum[0], vsum[1]));

    let vinv = _mm512_set1_ps(1.0 / sum);
    let mut i = 0;
    while i < n {
        let m = if i + 16 <= n {
            0xffff
        } else {
            tail_mask(n - i)
        };
        // SAFETY: only lanes i .. min(i + 16, n) are touched.
        unsafe {
            let q = p.add(i);
            _mm512_mask_storeu_ps(q, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, q), vinv));
        }
        i += 16;
    }
}

/// `math::exp_f64` on eight lanes, as [`exp_f64_avx2`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
fn exp_f64_avx512(x: __m512d) -> __m512d {
    use math::exp_f64_consts::*;
    let x = _mm512_max_pd(_mm512_set1_pd(LO), x);
    let t = _mm512_add_pd(
        _mm512_mul_pd(x, _mm512_set1_pd(LOG2E)),
        _mm512_set1_pd(SHIFT),
    );
    let n = _mm512_sub_pd(t, _mm512_set1_pd(SHIFT));
    let r = _mm512_sub_pd(
        _mm512_sub_pd(x, _mm512_mul_pd(n, _mm512_set1_pd(LN2_HI))),
        _mm512_mul_pd(n, _mm512_set1_pd(LN2_LO)),
    );
    let mut p = _mm512_set1_pd(P[0]);
    for &c in &P[1..] {
        p = _mm512_add_pd(_mm512_mul_pd(p, r), _mm512_set1_pd(c));
    }
    let two_n = _mm512_add_epi64(
        _mm512_slli_epi64::<52>(_mm512_castpd_si512(t)),
        _mm512_set1_epi64(1023 << 52),
    );
    _mm512_mul_pd(p, _mm512_castsi512_pd(two_n))
}

/// One zmm holds the 8 lanes of `math::reduce_f64_lanes`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn softmax_f64acc_avx512<const F32_EXP: bool>(x: &mut [f32], scale: f32) {
    let (n, p) = (x.len(), x.as_mut_ptr());
    let vscale = _mm512_set1_ps(scale);
    let mut vmax = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut i = 0;
    while i < n {
        let m = if i + 16 <= n {
            0xffff
        } else {
            tail_mask(n - i)
        };
        // SAFETY: only lanes i .. min(i + 16, n) are touched.
        unsafe {
            let y = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p.add(i)), vscale);
            _mm512_mask_storeu_ps(p.add(i), m, y);
            // NaN lanes of `y` leave `vmax` alone, as `f32::max` does.
            vmax = _mm512_mask_max_ps(vmax, m, y, vmax);
        }
        i += 16;
    }
    let max = _mm512_reduce_max_ps(vmax);

    let (main, vm) = (n - n % 8, _mm256_set1_ps(max));
    let mut acc = _mm512_setzero_pd();
    let mut i = 0;
    // Four independent exponentials per step: one alone is a chain of 30
    // dependent operations, which leaves most of the FPU idle.
    while F32_EXP && i + 16 <= main {
        // SAFETY: i + 16 <= main <= n = x.len().
        unsafe {
            let q = p.add(i);
            let e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(q), _mm512_set1_ps(max)));
            _mm512_storeu_ps(q, e);
            // Elements i .. i + 8, then i + 8 .. i + 16, as 8 at a time.
            acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
            acc = _mm512_add_pd(
                acc,
                _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                    _mm512_castps_pd(e),
                ))),
            );
        }
        i += 16;
    }
    while !F32_EXP && i + 32 <= main {
        // SAFETY: i + 32 <= main <= n = x.len().
        unsafe {
            let q = p.add(i);
            let e: [__m256; 4] = core::array::from_fn(|u| {
                let d = _mm512_cvtps_pd(_mm256_sub_ps(_mm256_loadu_ps(q.add(8 * u)), vm));
                _mm512_cvtpd_ps(exp_f64_avx512(d))
            });
            for (u, e) in e.into_iter().enumerate() {
                _mm256_storeu_ps(q.add(8 * u), e);
                acc = _mm512_add_pd(acc, _mm512_cvtps_pd(e));
            }
        }
        i += 32;
    }
    while i < main {
        // SAFETY: i + 8 <= main <= n = x.len().
        unsafe {
            let q = p.add(i);
            let d = _mm256_sub_ps(_mm256_loadu_ps(q), vm);
            let e = if F32_EXP {
                exp_avx2(d)
            } else {
                _mm512_cvtpd_ps(exp_f64_avx512(_mm512_cvtps_pd(d)))
            };
            _mm256_storeu_ps(q, e);
            acc = _mm512_add_pd(acc, _mm512_cvtps_pd(e));
        }
        i += 8;
    }
    let lanes = _mm256_add_pd(
        _mm512_castpd512_pd256(acc),
        _mm512_extractf64x4_pd::<1>(acc),
    );
    let sum = scalar::softmax_f64acc_tail::<F32_EXP>(&mut x[main..], max, sum_f64x4(lanes));

    let (p, vs) = (x.as_mut_ptr(), _mm512_set1_ps(sum));
    let mut i = 0;
    while i < n {
        let m = if i + 16 <= n {
            0xffff
        } else {
            tail_mask(n - i)
        };
        // SAFETY: only lanes i .. min(i + 16, n) are touched.
        unsafe {
            let y = _mm512_div_ps(_mm512_maskz_loadu_ps(m, p.add(i)), vs);
            _mm512_mask_storeu_ps(p.add(i), m, y);
        }
        i += 16;
    }
}

/// No FMA, as in [`rope_neox_avx2`]: equal to the scalar code bit for bit.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn rope_neox_avx512(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    let m = half.min(cos.len()).min(sin.len());
    for head in x.chunks_exact_mut(head_dim) {
        let (lo, hi) = head.split_at_mut(half);
        let (lp, hp) = (lo.as_mut_ptr(), hi.as_mut_ptr());
        let mut i = 0;
        while i < m {
            let k = if i + 16 <= m {
                0xffff
            } else {
                tail_mask(m - i)
            };
            // SAFETY: only lanes i .. min(i + 16, m) are touched; m <= half =
            // lo.len() = hi.len() and m <= cos/sin lengths.
            unsafe {
                let a = _mm512_maskz_loadu_ps(k, lp.add(i));
                let b = _mm512_maskz_loadu_ps(k, hp.add(i));
                let c = _mm512_maskz_loadu_ps(k, cos.as_ptr().add(i));
                let s = _mm512_maskz_loadu_ps(k, sin.as_ptr().add(i));
                let lo = _mm512_sub_ps(_mm512_mul_ps(a, c), _mm512_mul_ps(b, s));
                let hi = _mm512_add_ps(_mm512_mul_ps(a, s), _mm512_mul_ps(b, c));
                _mm512_mask_storeu_ps(lp.add(i), k, lo);
                _mm512_mask_storeu_ps(hp.add(i), k, hi);
            }
            i += 16;
        }
        // Only reached if cos/sin are shorter than the contract says: panics.
        for j in m..half {
            let (a, b) = (lo[j], hi[j]);
            lo[j] = a * cos[j] - b * sin[j];
            hi[j] = a * sin[j] + b * cos[j];
        }
    }
}

/// No FMA, as in [`rope_neox_avx2`]: equal to the scalar code bit for bit.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn rope_interleaved_avx512(
    x: &mut [f32],
    head_dim: usize,
    cos: &[f32],
    sin: &[f32],
) {
    let half = head_dim / 2;
    let m = half.min(cos.len()).min(sin.len());
    // Lane 2j and 2j + 1 both take cos/sin[j].
    let dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    for head in x.chunks_exact_mut(head_dim) {
        let hp = head.as_mut_ptr();
        let mut i = 0; // pair index
        while i < m {
            let pairs = (m - i).min(8);
            let k8 = ((1u32 << pairs) - 1) as __mmask8;
            let k16 = ((1u32 << (2 * pairs)) - 1) as __mmask16;
            // SAFETY: reads/writes floats 2i .. 2(i + pairs) <= 2m <= head_dim
            // and cos/sin i .. i + pairs <= m, all through masks.
            unsafe {
                let v = _mm512_maskz_loadu_ps(k16, hp.add(2 * i));
                let c = _mm256_maskz_loadu_ps(k8, cos.as_ptr().add(i));
                let s = _mm256_maskz_loadu_ps(k8, sin.as_ptr().add(i));
                let cc = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(c));
                let ss = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(s));
                let swapped = _mm512_permute_ps::<0b1011_0001>(v);
                let (p, q) = (_mm512_mul_ps(v, cc), _mm512_mul_ps(swapped, ss));
                // AVX-512 has no addsub: add everywhere, subtract in even lanes.
                let r = _mm512_mask_sub_ps(_mm512_add_ps(p, q), 0x5555, p, q);
                _mm512_mask_storeu_ps(hp.add(2 * i), k16, r);
            }
            i += 8;
        }
        for j in m..half {
            let (a, b) = (head[2 * j], head[2 * j + 1]);
            head[2 * j] = a * cos[j] - b * sin[j];
            head[2 * j + 1] = a * sin[j] + b * cos[j];
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn dot_f32_avx512(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: i + 64 <= n, within both slices.
        unsafe {
            for (u, s) in acc.iter_mut().enumerate() {
                let o = i + 16 * u;
                *s = _mm512_fmadd_ps(_mm512_loadu_ps(ap.add(o)), _mm512_loadu_ps(bp.add(o)), *s);
            }
        }
        i += 64;
    }
    while i < n {
        let m = if i + 16 <= n {
            0xffff
        } else {
            tail_mask(n - i)
        };
        // SAFETY: only lanes i .. min(i + 16, n) are read.
        unsafe {
            let va = _mm512_maskz_loadu_ps(m, ap.add(i));
            acc[0] = _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, bp.add(i)), acc[0]);
        }
        i += 16;
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ))
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
fn dot_f16_impl_avx512(a: &[f32], b: &[u16]) -> f32 {
    let n = a.len().min(b.len());
    dot_f16_rows_avx512(&a[..n], [&b[..n]])[0]
}

/// [`dot_f16_impl_avx512`] of `x` against `S` rows at once (the decode
/// GEMV's streams): [`dot_f16_tile_avx512`] with one vector, each row
/// prefetched [`PREFETCH_BYTES`](super::PREFETCH_BYTES) ahead.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
fn dot_f16_rows_avx512<const S: usize>(x: &[f32], rows: [&[u16]; S]) -> [f32; S] {
    let mut out = [[0f32; 1]; S];
    dot_f16_tile_avx512::<S, 1>(x, rows, x.len(), super::PREFETCH_BYTES / 2, &mut out);
    out.map(|[v]| v)
}

/// `Σ_i xs[t·k + i]·f32(rows[r][i])` for `T` vectors against `R` rows, the
/// one f16 dot of AVX-512, as [`dot_f16_tile_avx2`] is for AVX2: each (row,
/// vector) pair sums its 16-wide steps in order into one FMA chain, the last
/// step masked and zero-filled, then sums the lanes, so a pair's result does
/// not depend on the tile it is computed in. 4 rows × 6 vectors of
/// accumulators, four converted rows and one vector load are 29 of the 32
/// zmm registers; each converted row feeds six FMAs and each vector load
/// four. Each row prefetches `lead` halves ahead, once per 64-byte line.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
fn dot_f16_tile_avx512<const R: usize, const T: usize>(
    xs: &[f32],
    rows: [&[u16]; R],
    k: usize,
    lead: usize,
    out: &mut [[f32; T]; R],
) {
    let xp = xs[..T * k].as_ptr();
    let wp = row_ptrs(&rows, k);
    let mut acc = [[_mm512_setzero_ps(); T]; R];
    // SAFETY: `xp` holds `T` vectors and every `wp` a row, `k` elements each.
    unsafe { f16_steps_avx512(xp, k, wp, 0..k, lead, &mut acc) };
    for (o, a) in out.iter_mut().zip(&acc) {
        for (o, a) in o.iter_mut().zip(a) {
            *o = _mm512_reduce_add_ps(*a);
        }
    }
}

/// The FMA chains of [`dot_f16_tile_avx512`] over the halves `span` only:
/// `acc[r][t]` gains the 16-wide steps of row `r` against vector `t` that
/// start in `span`, in order, the step at `k`'s end masked. A dot summed
/// span after span, each starting at a multiple of 32, makes the same steps
/// in the same order as one span over `0..k`, so it has the same bits.
///
/// # Safety
/// `xp` is valid for reading `T·k` floats and every `wp` for `k` halves;
/// `span` lies in `0..k` and starts at a multiple of 32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
unsafe fn f16_steps_avx512<const R: usize, const T: usize>(
    xp: *const f32,
    k: usize,
    wp: [*const u16; R],
    span: Range<usize>,
    lead: usize,
    accs: &mut [[__m512; T]; R],
) {
    // A local copy: the chains stay in registers between the steps.
    let mut acc = *accs;
    // One 16-wide step over lanes `$i .. $i + 16` that `$m` selects, all
    // rows and vectors: a macro, not a closure over `acc`, so nothing forces
    // the accumulators out of registers. The full steps pass no mask (plain
    // loads); the tail's masked-off lanes are zero-filled and never read.
    macro_rules! step {
        ($i:expr) => {
            step!($i, _mm256_loadu_si256, _mm512_loadu_ps, )
        };
        ($i:expr, $m:expr) => {
            step!($i, _mm256_maskz_loadu_epi16, _mm512_maskz_loadu_ps, $m)
        };
        ($i:expr, $loadh:ident, $loadx:ident, $($m:expr)?) => {
            // SAFETY: the selected lanes lie in `span`, below k (our
            // caller's contract), so halves $i.. lie in every row and
            // floats t·k + $i.. in vector t < T.
            unsafe {
                let mut h = [_mm512_setzero_ps(); R];
                for (h, w) in h.iter_mut().zip(&wp) {
                    *h = _mm512_cvtph_ps($loadh($($m,)? w.add($i).cast()));
                }
                for t in 0..T {
                    let xv = $loadx($($m,)? xp.add(t * k + $i));
                    for (a, h) in acc.iter_mut().zip(&h) {
                        a[t] = _mm512_fmadd_ps(xv, *h, a[t]);
                    }
                }
            }
        };
    }
    let mut i = span.start;
    while i + 32 <= span.end {
        for w in &wp {
            prefetch_line(w.wrapping_add(lead + i).cast());
        }
        step!(i);
        step!(i + 16);
        i += 32;
    }
    if i + 16 <= span.end {
        step!(i);
        i += 16;
    }
    if i < span.end {
        step!(i, tail_mask(span.end - i));
    }
    *accs = acc;
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn dot_f16_avx512(a: &[f32], b: &[u16]) -> f32 {
    dot_f16_impl_avx512(a, b)
}

f16_rows_multi!(
    /// [`dot_f16_tile_avx512`] over every vector of `xs`, 6 at a time (see
    /// there for the registers).
    dot_f16_rows_multi_avx512,
    dot_f16_tile_avx512,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c"
);

/// A pair's dot from its chain: the lanes' sum (the last step was masked).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
fn f16_finish_avx512(acc: __m512, _x: &[f32], _row: &[u16]) -> f32 {
    _mm512_reduce_add_ps(acc)
}

multi_in_spans!(
    /// `dot_f16_multi` span by span ([`multi_in_spans`]), in tiles of 4 rows.
    dot_f16_spans_avx512,
    u16,
    f16_row_len,
    F16_SPAN_ROWS,
    F16_LEAD_ROWS,
    f16_steps_avx512,
    f16_finish_avx512,
    _mm512_setzero_ps,
    4,
    [1, 2, 3, 4, 5; 6],
    "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c",
    dot_f16_rows_multi_avx512
);

/// See `Table::dot_f16_multi`. Two vectors or fewer read their rows in
/// four far-apart streams ([`multi_in_streams`]), as the decode GEMV does;
/// more go span by span ([`dot_f16_spans_avx512`]). On the Zen 5 VM
/// (2026-12-01; the 2B head from DRAM in the model's 64-row blocks, 6
/// vectors) a pass took 19.4–21.7 ms span by span against 30.2–30.8 whole
/// row by whole row on one thread, 15.8–16.1 against 16.5–18.8 on two.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn dot_f16_multi_avx512(xs: &[f32], w: &[u16], k: usize, out: &mut [f32]) {
    const G: usize = 4;
    let n = xs.len() / k;
    if n > 2 {
        return dot_f16_spans_avx512(xs, w, k, out);
    }
    multi_in_streams::<_, G>(
        w,
        k,
        n,
        out,
        |rs, outs| dot_f16_rows_multi_avx512(xs, rs, k, outs),
        |r, o| dot_f16_rows_multi_avx512(xs, [r], k, [o]),
    );
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn axpy_f32_avx512(alpha: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
    let va = _mm512_set1_ps(alpha);
    let mut i = 0;
    while i < n {
        let m = if i + 16 <= n {
            0xffff
        } else {
            tail_mask(n - i)
        };
        // SAFETY: only lanes i .. min(i + 16, n) are touched.
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, xp.add(i));
            let r = _mm512_fmadd_ps(va, v, _mm512_maskz_loadu_ps(m, yp.add(i)));
            _mm512_mask_storeu_ps(yp.add(i), m, r);
        }
        i += 16;
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn axpy_f16_avx512(alpha: f32, x: &[u16], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
    let va = _mm512_set1_ps(alpha);
    let mut i = 0;
    while i < n {
        let m = if i + 16 <= n {
            0xffff
        } else {
            tail_mask(n - i)
        };
        // SAFETY: only lanes i .. min(i + 16, n) are touched.
        unsafe {
            let h = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, xp.add(i).cast()));
            let r = _mm512_fmadd_ps(va, h, _mm512_maskz_loadu_ps(m, yp.add(i)));
            _mm512_mask_storeu_ps(yp.add(i), m, r);
        }
        i += 16;
    }
}

/// As [`gemv_f16_avx2`]: far-apart row streams, each row as
/// [`dot_f16_impl_avx512`] computes it.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn gemv_f16_avx512(
    w: &[u16],
    k: usize,
    x: &[f32],
    rows: Range<usize>,
    y: &mut [f32],
) {
    let x = &x[..k];
    gemv_in_streams(
        w,
        k,
        rows,
        y,
        |rs| dot_f16_rows_avx512(x, rs),
        |r| dot_f16_rows_avx512(x, [r])[0],
    );
}

/// As [`q8_weights_avx2`], 16 lanes: weights 0..16 and 16..32.
///
/// # Safety
/// `q` must be valid for reading 34 bytes (one Q8_0 block).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
unsafe fn q8_weights_avx512(q: *const u8) -> [__m512; 2] {
    // SAFETY: bytes 0..2 (scale) and 2..34 (weights) are readable (caller).
    unsafe {
        let h = u16::from_le(q.cast::<u16>().read_unaligned());
        let d = _mm512_cvtph_ps(_mm256_set1_epi16(h as i16));
        let w = |at: usize| {
            let q = _mm512_cvtepi8_epi32(_mm_loadu_si128(q.add(at).cast()));
            _mm512_mul_ps(d, _mm512_cvtepi32_ps(q))
        };
        [w(2), w(18)]
    }
}

/// A pair's two chains after one more block: weights 0..16 into the
/// first, 16..32 into the second; `x` points at the block's 32 activations.
///
/// # Safety
/// `x` must be valid for reading 32 floats.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
unsafe fn q8_fma_avx512(acc: &mut [__m512; 2], w: &[__m512; 2], x: *const f32) {
    for (u, (a, w)) in acc.iter_mut().zip(w).enumerate() {
        // SAFETY: floats 16u .. 16u + 16 < 32 (caller).
        *a = _mm512_fmadd_ps(*w, unsafe { _mm512_loadu_ps(x.add(16 * u)) }, *a);
    }
}

q8_0_steps!(
    /// [`q8_0_steps_avx2`] for AVX-512 ([`q8_fma_avx512`]).
    q8_0_steps_avx512,
    __m512,
    2,
    q8_weights_avx512,
    q8_fma_avx512,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c"
);

/// A pair's dot from its two chains.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
fn q8_0_finish_avx512(acc: [__m512; 2], _x: &[f32], _row: &[u8]) -> f32 {
    _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
}

/// A pair's two empty chains.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
fn q8_0_zero_avx512() -> [__m512; 2] {
    [_mm512_setzero_ps(); 2]
}

q8_0_entries!(
    "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c",
    q8_0_steps_avx512,
    q8_0_finish_avx512,
    q8_0_zero_avx512,
    // 4 rows × 3 vectors × 2 chains per tile, so that each activation load
    // serves 4 rows. On the Zen 5 VM (2026-12-01; a 2B-shaped Q8_0 head,
    // 64-row blocks, 6 vectors, one thread) 27.8–27.9 ms per pass this way,
    // 28.4–29.4 with 2 rows × 6 vectors and 38.9 with 1 × 6 (two 64-byte
    // activation loads per block and vector: the loads were the limit).
    4,
    [1, 2; 3],
    gemv_q8_0_avx512,
    dot_q8_0_multi_avx512
);

// ---------------------------------------------------------------------------
// f64-accumulated dot and axpy (attention): f32 × f32 is exact in f64, so
// FMA equals multiply-then-add and only the dot's summation order differs.
// ---------------------------------------------------------------------------

/// The attention kernels' loads of a key or value row ([`KvElem`]) as f32
/// vectors, for AVX2 and AVX-512 alike.
pub(crate) trait KvLoad: KvElem {
    /// The element whose widening is +0.
    const ZERO: Self;
    /// The 8 elements at `p`, widened exactly to f32.
    ///
    /// # Safety
    /// 8 elements are readable at `p`; AVX2 and F16C are present.
    unsafe fn load8(p: *const Self) -> __m256;
    /// The 4 elements at `p`, widened exactly to f32.
    ///
    /// # Safety
    /// 4 elements are readable at `p`; AVX2 and F16C are present.
    unsafe fn load4(p: *const Self) -> __m128;
    /// The elements of `mask`'s set bits among the 16 at `p`, widened
    /// exactly to f32, and zeros in the other lanes.
    ///
    /// # Safety
    /// Those elements are readable; AVX-512 F/BW/VL is present.
    unsafe fn load16(p: *const Self, mask: __mmask16) -> __m512;
    /// Prefetches the line a lone stream's lead past `p`: f16 rows come
    /// straight from the KV cache in DRAM; f32 rows were widened into L1
    /// (or are an f32 cache, which has never prefetched) and do nothing.
    fn prefetch(p: *const Self);

    /// The first `len ≤ 8` of the elements at `p`, then zeros (nothing is
    /// read for `len = 0`).
    ///
    /// # Safety
    /// `len` elements are readable at `p`; AVX2 and F16C are present.
    #[inline(always)]
    unsafe fn load8_first(p: *const Self, len: usize) -> __m256 {
        if len == 0 {
            // SAFETY: AVX is present (caller).
            return unsafe { _mm256_setzero_ps() };
        }
        if len == 8 {
            // SAFETY: 8 elements readable (caller).
            return unsafe { Self::load8(p) };
        }
        let mut buf = [Self::ZERO; 8];
        // SAFETY: `len ≤ 8` elements readable at `p` (caller) fit `buf`.
        unsafe {
            core::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), len);
            Self::load8(buf.as_ptr())
        }
    }
}

impl KvLoad for f32 {
    const ZERO: f32 = 0.0;
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> __m256 {
        // SAFETY: 8 floats readable at `p`, AVX present (caller).
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load4(p: *const f32) -> __m128 {
        // SAFETY: 4 floats readable at `p` (caller).
        unsafe { _mm_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load16(p: *const f32, mask: __mmask16) -> __m512 {
        // SAFETY: the masked floats are readable, AVX-512 present (caller).
        unsafe { _mm512_maskz_loadu_ps(mask, p) }
    }
    #[inline(always)]
    fn prefetch(_: *const f32) {}
}

impl KvLoad for u16 {
    const ZERO: u16 = 0;
    #[inline(always)]
    unsafe fn load8(p: *const u16) -> __m256 {
        // SAFETY: 8 halves readable at `p`, F16C present (caller).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    unsafe fn load4(p: *const u16) -> __m128 {
        // SAFETY: 4 halves readable at `p`, F16C present (caller).
        unsafe { _mm_cvtph_ps(_mm_loadl_epi64(p.cast())) }
    }
    #[inline(always)]
    unsafe fn load16(p: *const u16, mask: __mmask16) -> __m512 {
        // SAFETY: the masked halves are readable, AVX-512 present (caller).
        unsafe { _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p.cast())) }
    }
    #[inline(always)]
    fn prefetch(p: *const u16) {
        prefetch_lone_stream(p.cast());
    }
}

/// `(v0 + v2) + (v1 + v3)`: the last two levels of
/// `math::reduce_f64_lanes` once `v_k = l_k + l_{k+4}`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn sum_f64x4(v: __m256d) -> f64 {
    let pair = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
    _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)))
}

/// The end of every f64-accumulated dot: the vector part's sum `s` plus
/// the scalar tail's exact products in order, rounded once to f32.
#[inline(always)]
fn f64acc_tail<E: KvElem>(mut s: f64, q: &[f32], key: &[E]) -> f32 {
    for (&a, &b) in q.iter().zip(key) {
        s += a as f64 * b.to_f32() as f64;
    }
    s as f32
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_f64acc_avx2(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    dot_f64acc_keys_avx2(&a[..n], [&b[..n]])[0]
}

/// `dot_f64acc(q, key)` for `R` keys at once, each bit for bit: every key
/// keeps the two accumulators (lanes 0..4 and 4..8 of
/// `math::reduce_f64_lanes`), the reduction and the scalar tail; each 8
/// floats of `q` are loaded and widened once for all keys.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f64acc_keys_avx2<E: KvLoad, const R: usize>(q: &[f32], keys: [&[E]; R]) -> [f32; R] {
    let n = q.len();
    let qp = q.as_ptr();
    let kp = row_ptrs(&keys, n);
    let mut acc = [[_mm256_setzero_pd(); 2]; R];
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, and `q` and every key hold n elements.
        unsafe {
            let x = _mm256_loadu_ps(qp.add(i));
            let xl = _mm256_cvtps_pd(_mm256_castps256_ps128(x));
            let xh = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x));
            for (a, k) in acc.iter_mut().zip(&kp) {
                if i % 32 == 0 {
                    E::prefetch(k.wrapping_add(i));
                }
                let y = E::load8(k.add(i));
                a[0] = _mm256_fmadd_pd(xl, _mm256_cvtps_pd(_mm256_castps256_ps128(y)), a[0]);
                a[1] = _mm256_fmadd_pd(xh, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(y)), a[1]);
            }
        }
        i += 8;
    }
    let mut out = [0f32; R];
    for ((o, a), key) in out.iter_mut().zip(&acc).zip(&keys) {
        *o = f64acc_tail(sum_f64x4(_mm256_add_pd(a[0], a[1])), &q[i..], &key[i..n]);
    }
    out
}

/// Keys per pass of [`dot_f64acc_rows_avx2`]: 8 accumulators, the widened
/// query and one key fit the 16 ymm registers.
const F64ACC_KEYS: usize = 4;

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_f64acc_rows_avx2<E: KvLoad>(q: &[f32], keys: &[E], out: &mut [f32]) {
    f64acc_rows_with(
        q,
        keys,
        out,
        |rows: [&[E]; F64ACC_KEYS]| dot_f64acc_keys_avx2(q, rows),
        |row| dot_f64acc_keys_avx2(q, [row])[0],
    );
}

/// `out[j] = dot(keys row j)` for every key row (`K = q.len()` floats),
/// `R` rows per call of `dots`, the rest one by one.
#[inline(always)]
fn f64acc_rows_with<E, const R: usize>(
    q: &[f32],
    keys: &[E],
    out: &mut [f32],
    mut dots: impl FnMut([&[E]; R]) -> [f32; R],
    mut dot: impl FnMut(&[E]) -> f32,
) {
    let k = q.len();
    let key = |j: usize| &keys[j * k..(j + 1) * k];
    let mut outs = out.chunks_exact_mut(R);
    let mut j = 0;
    for o in &mut outs {
        let mut rows = [&keys[..0]; R];
        for (r, row) in rows.iter_mut().enumerate() {
            *row = key(j + r);
        }
        o.copy_from_slice(&dots(rows));
        j += R;
    }
    for o in outs.into_remainder() {
        *o = dot(key(j));
        j += 1;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn axpy_f64acc_avx2(alpha: f32, x: &[f32], acc: &mut [f64]) {
    let n = x.len().min(acc.len());
    let (xp, yp) = (x.as_ptr(), acc.as_mut_ptr());
    let va = _mm256_set1_pd(alpha as f64);
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: i + 4 <= n, within both slices.
        unsafe {
            let v = _mm256_cvtps_pd(_mm_loadu_ps(xp.add(i)));
            _mm256_storeu_pd(
                yp.add(i),
                _mm256_fmadd_pd(va, v, _mm256_loadu_pd(yp.add(i))),
            );
        }
        i += 4;
    }
    for j in i..n {
        acc[j] += alpha as f64 * x[j] as f64;
    }
}

/// `C` f64 vectors (`4·C` accumulators from `c`) of
/// [`weighted_sum_f64acc_avx2`], held in registers over every row: each
/// accumulator takes the rows in order, exactly as `axpy_f64acc` row by row
/// does.
///
/// # Safety
/// `c + 4·C <= K` with `K = acc.len()`, and `values` holds `p.len()` rows.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn weighted_sum_cols_avx2<E: KvLoad, const C: usize>(
    p: &[f32],
    values: &[E],
    c: usize,
    acc: &mut [f64],
) {
    let (k, vp, ap) = (acc.len(), values.as_ptr(), acc.as_mut_ptr());
    let mut s = [_mm256_setzero_pd(); C];
    for (u, s) in s.iter_mut().enumerate() {
        // SAFETY: c + 4u + 4 <= K (caller).
        *s = unsafe { _mm256_loadu_pd(ap.add(c + 4 * u)) };
    }
    for (j, &pj) in p.iter().enumerate() {
        let a = _mm256_set1_pd(pj as f64);
        E::prefetch(vp.wrapping_add(j * k + c));
        for (u, s) in s.iter_mut().enumerate() {
            // SAFETY: elements j·K + c + 4u .. + 4 lie in row j (caller).
            let v = unsafe { _mm256_cvtps_pd(E::load4(vp.add(j * k + c + 4 * u))) };
            *s = _mm256_fmadd_pd(a, v, *s);
        }
    }
    for (u, s) in s.iter().enumerate() {
        // SAFETY: as above.
        unsafe { _mm256_storeu_pd(ap.add(c + 4 * u), *s) };
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn weighted_sum_f64acc_avx2<E: KvLoad>(p: &[f32], values: &[E], acc: &mut [f64]) {
    let k = acc.len();
    let mut c = 0;
    while c + 32 <= k {
        // SAFETY: c + 32 <= K; `values` holds p.len() rows (our contract).
        unsafe { weighted_sum_cols_avx2::<E, 8>(p, values, c, acc) };
        c += 32;
    }
    while c + 4 <= k {
        // SAFETY: as above.
        unsafe { weighted_sum_cols_avx2::<E, 1>(p, values, c, acc) };
        c += 4;
    }
    weighted_sum_tail(p, values, c, acc);
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_f64acc_queries_avx2<E: KvLoad>(
    qs: &[f32],
    keys: &[E],
    k: usize,
    out: &mut [f32],
) {
    // SAFETY: same contract as ours; AVX2 is present.
    unsafe { crate::arch::dot_f64acc_queries_with(dot_f64acc_rows_avx2::<E>, qs, keys, k, out) }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn weighted_sum_f64acc_queries_avx2<E: KvLoad>(
    ps: &[f32],
    values: &[E],
    k: usize,
    accs: &mut [f64],
) {
    // SAFETY: same contract as ours; AVX2 is present.
    unsafe {
        crate::arch::weighted_sum_f64acc_queries_with(
            weighted_sum_f64acc_avx2::<E>,
            ps,
            values,
            k,
            accs,
        )
    }
}

/// Columns `c ..` of `weighted_sum_f64acc`, one by one.
#[inline(always)]
fn weighted_sum_tail<E: KvElem>(p: &[f32], values: &[E], c: usize, acc: &mut [f64]) {
    let k = acc.len();
    for (i, a) in acc.iter_mut().enumerate().skip(c) {
        for (j, &pj) in p.iter().enumerate() {
            *a += pj as f64 * values[j * k + i].to_f32() as f64;
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn dot_f64acc_avx512(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    dot_f64acc_tile_avx512([&a[..n]], [&b[..n]])[0][0]
}

/// `dot_f64acc(qs[g], keys[r])` for `G` queries × `R` keys at once, each bit
/// for bit: one register per pair holds the 8 lanes of
/// `math::reduce_f64_lanes`, whose halves then reduce as AVX2's two
/// accumulators do, then the scalar tail. Each 8 floats of a query or key
/// are loaded and widened once for the whole tile: against one query the
/// widening, not the FMA, is what limits the scores.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
fn dot_f64acc_tile_avx512<E: KvLoad, const G: usize, const R: usize>(
    qs: [&[f32]; G],
    keys: [&[E]; R],
) -> [[f32; R]; G] {
    let n = qs[0].len();
    let qp = row_ptrs(&qs, n);
    let kp = row_ptrs(&keys, n);
    let mut acc = [[_mm512_setzero_pd(); R]; G];
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, and every query and key holds n elements.
        unsafe {
            let mut kv = [_mm512_setzero_pd(); R];
            for (v, k) in kv.iter_mut().zip(&kp) {
                if i % 32 == 0 {
                    E::prefetch(k.wrapping_add(i));
                }
                *v = _mm512_cvtps_pd(E::load8(k.add(i)));
            }
            for (a, q) in acc.iter_mut().zip(&qp) {
                let x = _mm512_cvtps_pd(_mm256_loadu_ps(q.add(i)));
                for (a, v) in a.iter_mut().zip(&kv) {
                    *a = _mm512_fmadd_pd(x, *v, *a);
                }
            }
        }
        i += 8;
    }
    let mut out = [[0f32; R]; G];
    for ((o, a), q) in out.iter_mut().zip(&acc).zip(&qs) {
        for ((o, a), key) in o.iter_mut().zip(a).zip(&keys) {
            let v = _mm256_add_pd(_mm512_castpd512_pd256(*a), _mm512_extractf64x4_pd::<1>(*a));
            *o = f64acc_tail(sum_f64x4(v), &q[i..n], &key[i..n]);
        }
    }
    out
}

/// Keys per pass of [`dot_f64acc_rows_avx512`]: 8 accumulators, the widened
/// query and 8 widened keys.
const F64ACC_KEYS_AVX512: usize = 8;

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn dot_f64acc_rows_avx512(q: &[f32], keys: &[f32], out: &mut [f32]) {
    f64acc_rows_with(
        q,
        keys,
        out,
        |rows: [&[f32]; F64ACC_KEYS_AVX512]| dot_f64acc_tile_avx512([q], rows)[0],
        |row| dot_f64acc_tile_avx512([q], [row])[0][0],
    );
}

/// The scores of `G` queries against every key, 4 keys per tile: `out` is
/// G rows of one score per key.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
fn dot_f64acc_group_avx512<E: KvLoad, const G: usize>(
    qs: [&[f32]; G],
    keys: &[E],
    k: usize,
    out: &mut [f32],
) {
    let key = |j: usize| &keys[j * k..(j + 1) * k];
    let n = out.len() / G;
    let mut j = 0;
    while j + 4 <= n {
        let t = dot_f64acc_tile_avx512(qs, [key(j), key(j + 1), key(j + 2), key(j + 3)]);
        for (o, t) in out.chunks_exact_mut(n).zip(&t) {
            o[j..j + 4].copy_from_slice(t);
        }
        j += 4;
    }
    for j in j..n {
        let t = dot_f64acc_tile_avx512(qs, [key(j)]);
        for (o, t) in out.chunks_exact_mut(n).zip(&t) {
            o[j] = t[0];
        }
    }
}

/// See `Table::dot_f64acc_queries`: tiles of up to 4 queries × 4 keys, 16
/// accumulators, 4 widened keys and a widened query in 21 of the 32
/// registers; a KV head's group in BitNet-b1.58-2B-4T is 4 query heads.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn dot_f64acc_queries_avx512<E: KvLoad>(
    qs: &[f32],
    keys: &[E],
    k: usize,
    out: &mut [f32],
) {
    let (queries, n) = (qs.len() / k, keys.len() / k);
    if n == 0 {
        return;
    }
    let query = |g: usize| &qs[g * k..(g + 1) * k];
    tiles!(queries, [1, 2, 3; 4], |g, G| {
        let out = &mut out[g * n..(g + G) * n];
        dot_f64acc_group_avx512::<E, G>(rows_at(|i| query(g + i)), keys, k, out);
    });
}

/// `accs[g][c + 8u ..][..8] += Σ_j ps[g][j]·values[j·k + c + 8u ..][..8]`
/// for `G` queries × `C` vectors of 8 columns, held in registers over every
/// row: each accumulator takes the rows in order, exactly as `axpy_f64acc`
/// row by row does, and each 8 floats of a value row are widened once for
/// all `G` queries.
///
/// # Safety
/// `c + 8·C <= k`; `values` holds `ps[0].len()` rows of `k` floats and every
/// `ps[g]` as many weights; every `accs[g]` is valid for `k` f64.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
unsafe fn weighted_sum_tile_avx512<E: KvLoad, const G: usize, const C: usize>(
    ps: [&[f32]; G],
    values: &[E],
    k: usize,
    c: usize,
    accs: [*mut f64; G],
) {
    let n = ps[0].len();
    let ps: [_; G] = rows_at(|g| &ps[g][..n]);
    let vp = values[..n * k].as_ptr();
    let mut s = [[_mm512_setzero_pd(); C]; G];
    for (s, a) in s.iter_mut().zip(&accs) {
        for (u, s) in s.iter_mut().enumerate() {
            // SAFETY: c + 8u + 8 <= k (caller).
            *s = unsafe { _mm512_loadu_pd(a.add(c + 8 * u)) };
        }
    }
    for j in 0..n {
        let mut v = [_mm512_setzero_pd(); C];
        E::prefetch(vp.wrapping_add(j * k + c));
        for (u, v) in v.iter_mut().enumerate() {
            // SAFETY: elements j·k + c + 8u .. + 8 lie in row j < n.
            *v = unsafe { _mm512_cvtps_pd(E::load8(vp.add(j * k + c + 8 * u))) };
        }
        for (s, p) in s.iter_mut().zip(&ps) {
            let a = _mm512_set1_pd(p[j] as f64);
            for (s, v) in s.iter_mut().zip(&v) {
                *s = _mm512_fmadd_pd(a, *v, *s);
            }
        }
    }
    for (s, a) in s.iter().zip(&accs) {
        for (u, s) in s.iter().enumerate() {
            // SAFETY: as for the loads.
            unsafe { _mm512_storeu_pd(a.add(c + 8 * u), *s) };
        }
    }
}

/// `weighted_sum_f64acc` of `G` queries into `accs`, G rows of `k`: `C`
/// vectors of 8 columns per pass, then 8 columns at a time, then the scalar
/// tail.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
fn weighted_sum_group_avx512<E: KvLoad, const G: usize, const C: usize>(
    ps: [&[f32]; G],
    values: &[E],
    k: usize,
    accs: &mut [f64],
) {
    if k == 0 {
        return;
    }
    let accs = &mut accs[..G * k];
    let mut ptrs = [accs.as_mut_ptr(); G];
    for (g, p) in ptrs.iter_mut().enumerate() {
        *p = p.wrapping_add(g * k);
    }
    let mut c = 0;
    while c + 8 * C <= k {
        // SAFETY: c + 8·C <= k; every acc holds k (checked above), and the
        // tile checks `values` and `ps` against the row count.
        unsafe { weighted_sum_tile_avx512::<E, G, C>(ps, values, k, c, ptrs) };
        c += 8 * C;
    }
    while c + 8 <= k {
        // SAFETY: as above.
        unsafe { weighted_sum_tile_avx512::<E, G, 1>(ps, values, k, c, ptrs) };
        c += 8;
    }
    for (p, a) in ps.iter().zip(accs.chunks_exact_mut(k)) {
        weighted_sum_tail(p, values, c, a);
    }
}

/// 128 columns (a 2B-4T head) per pass: 16 accumulators.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn weighted_sum_f64acc_avx512(p: &[f32], values: &[f32], acc: &mut [f64]) {
    weighted_sum_group_avx512::<f32, 1, 16>([p], values, acc.len(), acc);
}

/// See `Table::weighted_sum_f64acc_queries`: up to 4 queries × 4 vectors
/// of 8 columns per pass (16 accumulators, 4 widened value vectors).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn weighted_sum_f64acc_queries_avx512<E: KvLoad>(
    ps: &[f32],
    values: &[E],
    k: usize,
    accs: &mut [f64],
) {
    let (queries, n) = (accs.len() / k, values.len() / k);
    tiles!(queries, [1, 2, 3; 4], |g, G| {
        let p = rows_at(|i| &ps[(g + i) * n..(g + i + 1) * n]);
        weighted_sum_group_avx512::<E, G, 4>(p, values, k, &mut accs[g * k..(g + G) * k]);
    });
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn axpy_f64acc_avx512(alpha: f32, x: &[f32], acc: &mut [f64]) {
    let n = x.len().min(acc.len());
    let (xp, yp) = (x.as_ptr(), acc.as_mut_ptr());
    let va = _mm512_set1_pd(alpha as f64);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, within both slices.
        unsafe {
            let v = _mm512_cvtps_pd(_mm256_loadu_ps(xp.add(i)));
            _mm512_storeu_pd(
                yp.add(i),
                _mm512_fmadd_pd(va, v, _mm512_loadu_pd(yp.add(i))),
            );
        }
        i += 8;
    }
    for j in i..n {
        acc[j] += alpha as f64 * x[j] as f64;
    }
}

// ---------------------------------------------------------------------------
// Attention over an f16 KV cache: f32 FMA chains in the order that
// `Table::dot_f32acc_queries_f16` and `Table::weighted_sum_f32acc_queries_f16`
// define, so every path gives the scalar bits.
// ---------------------------------------------------------------------------

/// One pair's 16 lanes, held as lanes 0–7 and 8–15, joined as
/// `math::reduce_f32_lanes` joins them.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn join_lanes_avx2(lo: __m256, hi: __m256) -> f32 {
    let v = _mm256_add_ps(lo, hi);
    let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)))
}

/// One 16-element chunk of [`dot_f32acc_tile_avx2`]'s chains: `lo` and
/// `hi` elements at `i` and `i + 8` of every row, zeros past them (constant
/// 8 and 8 in the main loop, where the tail handling folds away).
///
/// # Safety
/// Those elements are readable in every query and key.
#[inline(always)]
unsafe fn dot_f32acc_step_avx2<E: KvLoad, const G: usize, const R: usize>(
    acc: &mut [[[__m256; 2]; R]; G],
    qp: [*const f32; G],
    kp: [*const E; R],
    i: usize,
    lo: usize,
    hi: usize,
) {
    // SAFETY: AVX2, FMA and F16C are present: every caller is a kernel
    // compiled for them.
    unsafe {
        let mut kv = [[_mm256_setzero_ps(); 2]; R];
        for (v, p) in kv.iter_mut().zip(&kp) {
            if i.is_multiple_of(32) {
                E::prefetch(p.wrapping_add(i));
            }
            // `wrapping_add`: with `hi = 0`, i + 8 may lie past the row,
            // and nothing is read there.
            *v = [
                E::load8_first(p.add(i), lo),
                E::load8_first(p.wrapping_add(i + 8), hi),
            ];
        }
        for (a, q) in acc.iter_mut().zip(&qp) {
            let x = [
                f32::load8_first(q.add(i), lo),
                f32::load8_first(q.wrapping_add(i + 8), hi),
            ];
            for (a, v) in a.iter_mut().zip(&kv) {
                a[0] = _mm256_fmadd_ps(x[0], v[0], a[0]);
                a[1] = _mm256_fmadd_ps(x[1], v[1], a[1]);
            }
        }
    }
}

/// The attention dots of `G` queries × `R` keys (each at most 2), each
/// pair's 16 lanes in two ymm chains: `out[g][r]`. Each 16 elements of a
/// key are widened once for all queries.
///
/// # Safety
/// Every query and key holds `k` readable elements.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f32acc_tile_avx2<E: KvLoad, const G: usize, const R: usize>(
    qp: [*const f32; G],
    kp: [*const E; R],
    k: usize,
) -> [[f32; 2]; 2] {
    let mut acc = [[[_mm256_setzero_ps(); 2]; R]; G];
    let mut i = 0;
    while i + 16 <= k {
        // SAFETY: 16 elements of every row at i (caller).
        unsafe { dot_f32acc_step_avx2(&mut acc, qp, kp, i, 8, 8) };
        i += 16;
    }
    if i < k {
        // The last chunk, zero-padded: 8 and 8 elements, or fewer.
        let (lo, hi) = ((k - i).min(8), (k - i).saturating_sub(8));
        // SAFETY: `lo` and `hi` elements of every row at i and i + 8.
        unsafe { dot_f32acc_step_avx2(&mut acc, qp, kp, i, lo, hi) };
    }
    let mut out = [[0f32; 2]; 2];
    for (o, a) in out.iter_mut().zip(&acc) {
        for (o, a) in o.iter_mut().zip(a) {
            *o = join_lanes_avx2(a[0], a[1]);
        }
    }
    out
}

/// See `Table::dot_f32acc_queries_f16`: tiles of up to 2 queries × 2 keys (8 ymm
/// chains, 4 widened key vectors and 2 query vectors in 16 registers).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_f32acc_queries_avx2<E: KvLoad>(
    qs: &[f32],
    keys: &[E],
    k: usize,
    out: &mut [f32],
) {
    let (queries, n) = (qs.len() / k, keys.len() / k);
    if n == 0 {
        return;
    }
    tiles!(queries, [1; 2], |g, G| {
        tiles!(n, [1; 2], |j, R| {
            let qp: [_; G] = core::array::from_fn(|i| qs[(g + i) * k..].as_ptr());
            let kp: [_; R] = core::array::from_fn(|r| keys[(j + r) * k..].as_ptr());
            // SAFETY: queries g.. g + G and keys j .. j + R exist, k elements each.
            let t = unsafe { dot_f32acc_tile_avx2::<E, G, R>(qp, kp, k) };
            for (i, t) in t.iter().enumerate().take(G) {
                out[(g + i) * n + j..][..R].copy_from_slice(&t[..R]);
            }
        });
    });
}

/// `accs[g][c ..][..8·C] = fma(ps[g][j], values[j][c ..], ·)` over the rows
/// `j` in order, for `G` queries × `C` vectors of 8 columns held in
/// registers over every row; each 8 floats of a value row are widened once
/// for all queries.
///
/// # Safety
/// `c + 8·C <= k`; `values` holds `n` rows of `k` and every `ps[g]` `n`
/// weights; every `accs[g]` is valid for `k` floats.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn weighted_sum_f32acc_tile_avx2<E: KvLoad, const G: usize, const C: usize>(
    ps: [*const f32; G],
    values: *const E,
    n: usize,
    k: usize,
    c: usize,
    accs: [*mut f32; G],
) {
    let mut s = [[_mm256_setzero_ps(); C]; G];
    for (s, a) in s.iter_mut().zip(&accs) {
        for (u, s) in s.iter_mut().enumerate() {
            // SAFETY: c + 8u + 8 <= k (caller).
            *s = unsafe { _mm256_loadu_ps(a.add(c + 8 * u)) };
        }
    }
    for j in 0..n {
        let row = values.wrapping_add(j * k + c);
        let mut v = [_mm256_setzero_ps(); C];
        for (u, v) in v.iter_mut().enumerate() {
            if (c + 8 * u).is_multiple_of(32) {
                E::prefetch(row.wrapping_add(8 * u));
            }
            // SAFETY: elements j·k + c + 8u .. + 8 lie in row j < n.
            *v = unsafe { E::load8(row.add(8 * u)) };
        }
        for (s, p) in s.iter_mut().zip(&ps) {
            // SAFETY: weight j < n of this query.
            let a = _mm256_set1_ps(unsafe { *p.add(j) });
            for (s, v) in s.iter_mut().zip(&v) {
                *s = _mm256_fmadd_ps(a, *v, *s);
            }
        }
    }
    for (s, a) in s.iter().zip(&accs) {
        for (u, s) in s.iter().enumerate() {
            // SAFETY: as for the loads.
            unsafe { _mm256_storeu_ps(a.add(c + 8 * u), *s) };
        }
    }
}

/// See `Table::weighted_sum_f32acc_queries_f16`: tiles of up to 4 queries × 2 vectors
/// of 8 columns (8 chains), then the columns past the last whole vector
/// one by one.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn weighted_sum_f32acc_queries_avx2<E: KvLoad>(
    ps: &[f32],
    values: &[E],
    k: usize,
    accs: &mut [f32],
) {
    let (queries, n) = (accs.len() / k, values.len() / k);
    tiles!(queries, [1, 2, 3; 4], |g, G| {
        let pp: [_; G] = core::array::from_fn(|i| ps[(g + i) * n..].as_ptr());
        let ap: [_; G] = core::array::from_fn(|i| accs[(g + i) * k..].as_mut_ptr());
        let mut c = 0;
        while c + 16 <= k {
            // SAFETY: c + 16 <= k; shapes as `Table::weighted_sum_f32acc_queries_f16` says.
            unsafe { weighted_sum_f32acc_tile_avx2::<E, G, 2>(pp, values.as_ptr(), n, k, c, ap) };
            c += 16;
        }
        if c + 8 <= k {
            // SAFETY: as above.
            unsafe { weighted_sum_f32acc_tile_avx2::<E, G, 1>(pp, values.as_ptr(), n, k, c, ap) };
            c += 8;
        }
        if c < k {
            for i in 0..G {
                let acc = &mut accs[(g + i) * k..(g + i + 1) * k];
                for (&p, row) in ps[(g + i) * n..][..n].iter().zip(values.chunks_exact(k)) {
                    scalar::weighted_row(p, &row[c..], &mut acc[c..]);
                }
            }
        }
    });
}

/// Joins 16 pairs' chains, each as `math::reduce_f32_lanes` does: lane
/// `4c + i` of the result is chain `4i + c`'s sum. Each level halves every
/// chain and packs two chains' halves into one register, so 16 chains take
/// 15 additions and 30 shuffles, not 64 additions.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
fn join_lanes_avx512(a: [__m512; 16]) -> __m512 {
    // Lane j + lane j + 8: two chains' 8 lanes per register.
    let mut h8 = [_mm512_setzero_ps(); 8];
    for (m, h) in h8.iter_mut().enumerate() {
        let (x, y) = (a[2 * m], a[2 * m + 1]);
        *h = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(x, y),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(x, y),
        );
    }
    // + lane j + 4: four chains' 4 lanes, chain 4i + c in 128-bit block c.
    let mut h4 = [_mm512_setzero_ps(); 4];
    for (i, h) in h4.iter_mut().enumerate() {
        let (x, y) = (h8[2 * i], h8[2 * i + 1]);
        *h = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y),
        );
    }
    // + lane j + 2, then + lane j + 1.
    let mut h2 = [_mm512_setzero_ps(); 2];
    for (i, h) in h2.iter_mut().enumerate() {
        let (x, y) = (_mm512_castps_pd(h4[2 * i]), _mm512_castps_pd(h4[2 * i + 1]));
        *h = _mm512_add_ps(
            _mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)),
        );
    }
    _mm512_add_ps(
        _mm512_shuffle_ps::<0b10_00_10_00>(h2[0], h2[1]),
        _mm512_shuffle_ps::<0b11_01_11_01>(h2[0], h2[1]),
    )
}

/// The attention dots of `G` queries × `R` keys (each at most 4), one zmm
/// chain per pair: `out[g][r]`. Each 16 elements of a key are widened once
/// for all queries; the last chunk is loaded under a mask (zero-padded).
///
/// # Safety
/// Every query and key holds `k` readable elements.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
unsafe fn dot_f32acc_tile_avx512<E: KvLoad, const G: usize, const R: usize>(
    qp: [*const f32; G],
    kp: [*const E; R],
    k: usize,
) -> [[f32; 4]; 4] {
    let mut acc = [[_mm512_setzero_ps(); R]; G];
    let mut i = 0;
    while i < k {
        let mask = if k - i >= 16 {
            0xffff
        } else {
            (1u16 << (k - i)) - 1
        };
        let mut kv = [_mm512_setzero_ps(); R];
        for (v, p) in kv.iter_mut().zip(&kp) {
            if i % 32 == 0 {
                E::prefetch(p.wrapping_add(i));
            }
            // SAFETY: the masked elements i .. k of the key.
            *v = unsafe { E::load16(p.add(i), mask) };
        }
        for (a, q) in acc.iter_mut().zip(&qp) {
            // SAFETY: as for the keys.
            let x = unsafe { _mm512_maskz_loadu_ps(mask, q.add(i)) };
            for (a, v) in a.iter_mut().zip(&kv) {
                *a = _mm512_fmadd_ps(x, *v, *a);
            }
        }
        i += 16;
    }
    // Chain 4r + g, so that the joined lane 4g + r is pair (g, r).
    let mut chains = [_mm512_setzero_ps(); 16];
    for (g, a) in acc.iter().enumerate() {
        for (r, a) in a.iter().enumerate() {
            chains[4 * r + g] = *a;
        }
    }
    let mut sums = [0f32; 16];
    // SAFETY: `sums` holds 16 floats.
    unsafe { _mm512_storeu_ps(sums.as_mut_ptr(), join_lanes_avx512(chains)) };
    let mut out = [[0f32; 4]; 4];
    for (g, o) in out.iter_mut().enumerate() {
        o.copy_from_slice(&sums[4 * g..4 * g + 4]);
    }
    out
}

/// See `Table::dot_f32acc_queries_f16`: tiles of up to 4 queries × 4 keys, 16 chains,
/// 4 widened keys and a query in 21 of the 32 registers; a KV head's group
/// in BitNet-b1.58-2B-4T is 4 query heads.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn dot_f32acc_queries_avx512<E: KvLoad>(
    qs: &[f32],
    keys: &[E],
    k: usize,
    out: &mut [f32],
) {
    let (queries, n) = (qs.len() / k, keys.len() / k);
    if n == 0 {
        return;
    }
    tiles!(queries, [1, 2, 3; 4], |g, G| {
        tiles!(n, [1, 2, 3; 4], |j, R| {
            let qp: [_; G] = core::array::from_fn(|i| qs[(g + i) * k..].as_ptr());
            let kp: [_; R] = core::array::from_fn(|r| keys[(j + r) * k..].as_ptr());
            // SAFETY: queries g.. g + G and keys j .. j + R exist, k elements each.
            let t = unsafe { dot_f32acc_tile_avx512::<E, G, R>(qp, kp, k) };
            for (i, t) in t.iter().enumerate().take(G) {
                out[(g + i) * n + j..][..R].copy_from_slice(&t[..R]);
            }
        });
    });
}

/// `accs[g][c ..][..16·C] = fma(ps[g][j], values[j][c ..], ·)` over the
/// rows `j` in order, for `G` queries × `C` vectors of 16 columns held in
/// registers over every row, the last vector under `last` (zeros are
/// loaded and nothing is stored in its other lanes); each 16 floats of a
/// value row are widened once for all queries.
///
/// # Safety
/// The columns `c .. c + 16·(C − 1)` and `last`'s of the next 16 lie in
/// `0..k`; `values` holds `n` rows of `k` and every `ps[g]` `n` weights;
/// every `accs[g]` is valid for `k` floats.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
unsafe fn weighted_sum_f32acc_tile_avx512<E: KvLoad, const G: usize, const C: usize>(
    ps: [*const f32; G],
    values: *const E,
    (n, k, c): (usize, usize, usize),
    last: __mmask16,
    accs: [*mut f32; G],
) {
    let mask = |u: usize| if u + 1 == C { last } else { 0xffff };
    let mut s = [[_mm512_setzero_ps(); C]; G];
    for (s, a) in s.iter_mut().zip(&accs) {
        for (u, s) in s.iter_mut().enumerate() {
            // SAFETY: the masked columns of this vector lie in 0..k (caller).
            *s = unsafe { _mm512_maskz_loadu_ps(mask(u), a.add(c + 16 * u)) };
        }
    }
    for j in 0..n {
        let row = values.wrapping_add(j * k + c);
        let mut v = [_mm512_setzero_ps(); C];
        for (u, v) in v.iter_mut().enumerate() {
            if (c + 16 * u).is_multiple_of(32) {
                E::prefetch(row.wrapping_add(16 * u));
            }
            // SAFETY: the masked columns of row j < n.
            *v = unsafe { E::load16(row.add(16 * u), mask(u)) };
        }
        for (s, p) in s.iter_mut().zip(&ps) {
            // SAFETY: weight j < n of this query.
            let a = _mm512_set1_ps(unsafe { *p.add(j) });
            for (s, v) in s.iter_mut().zip(&v) {
                *s = _mm512_fmadd_ps(a, *v, *s);
            }
        }
    }
    for (s, a) in s.iter().zip(&accs) {
        for (u, s) in s.iter().enumerate() {
            // SAFETY: as for the loads.
            unsafe { _mm512_mask_storeu_ps(a.add(c + 16 * u), mask(u), *s) };
        }
    }
}

/// See `Table::weighted_sum_f32acc_queries_f16`: tiles of up to 4 queries × 4 vectors
/// of 16 columns (16 chains, 4 widened value vectors), the columns past the
/// last whole vector under a mask.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
pub(crate) unsafe fn weighted_sum_f32acc_queries_avx512<E: KvLoad>(
    ps: &[f32],
    values: &[E],
    k: usize,
    accs: &mut [f32],
) {
    let (queries, n) = (accs.len() / k, values.len() / k);
    let vp = values.as_ptr();
    tiles!(queries, [1, 2, 3; 4], |g, G| {
        let pp: [_; G] = core::array::from_fn(|i| ps[(g + i) * n..].as_ptr());
        let ap: [_; G] = core::array::from_fn(|i| accs[(g + i) * k..].as_mut_ptr());
        let mut c = 0;
        while c < k {
            let vectors = (k - c).div_ceil(16).min(4);
            let end = (c + 16 * vectors).min(k);
            let last = (1u32 << (16 - (c + 16 * vectors - end))) - 1;
            let shape = (n, k, c);
            // SAFETY: columns c .. end lie in 0..k; shapes as
            // `Table::weighted_sum_f32acc_queries_f16` says.
            unsafe {
                match vectors {
                    1 => weighted_sum_f32acc_tile_avx512::<E, G, 1>(pp, vp, shape, last as u16, ap),
                    2 => weighted_sum_f32acc_tile_avx512::<E, G, 2>(pp, vp, shape, last as u16, ap),
                    3 => weighted_sum_f32acc_tile_avx512::<E, G, 3>(pp, vp, shape, last as u16, ap),
                    _ => weighted_sum_f32acc_tile_avx512::<E, G, 4>(pp, vp, shape, last as u16, ap),
                }
            }
            c = end;
        }
    });
}

#[cfg(test)]
mod tests {
    //! The vector `exp_f64`s against the scalar one, bit for bit: the
    //! softmax tests only see them rounded to f32, which hides a changed
    //! last f64 bit (an FMA, say) almost always.
    use super::*;
    use crate::arch::x86_64::{has_avx2, has_avx512};
    #[test]
    fn exp_f64_avx2_is_the_scalar_bits() {
        if !has_avx2() {
            return;
        }
        for c in math::tests::exp_f64_probes().chunks_exact(4) {
            let mut got = [0f64; 4];
            // SAFETY: AVX2 is present; `c` and `got` hold 4 values each.
            unsafe {
                _mm256_storeu_pd(got.as_mut_ptr(), exp_f64_avx2(_mm256_loadu_pd(c.as_ptr())))
            };
            math::tests::check_exp_f64(c, &got);
        }
    }

    #[test]
    fn exp_avx2_and_avx512_are_the_scalar_bits() {
        if !has_avx2() {
            return;
        }
        let xs = math::tests::exp_probes();
        {
            let mut got = std::vec![0f32; xs.len()];
            for (c, g) in xs.chunks_exact(8).zip(got.chunks_exact_mut(8)) {
                // SAFETY: AVX2 is present; `c` and `g` hold 8 values each.
                unsafe { _mm256_storeu_ps(g.as_mut_ptr(), exp_avx2(_mm256_loadu_ps(c.as_ptr()))) };
            }
            math::tests::check_exp(&xs, &got);
        }
        if has_avx512() {
            let mut got = std::vec![0f32; xs.len()];
            for (c, g) in xs.chunks_exact(16).zip(got.chunks_exact_mut(16)) {
                // SAFETY: AVX-512 is present; `c` and `g` hold 16 values each.
                unsafe {
                    _mm512_storeu_ps(g.as_mut_ptr(), exp_avx512(_mm512_loadu_ps(c.as_ptr())))
                };
            }
            math::tests::check_exp(&xs, &got);
        }
    }

    #[test]
    fn exp_f64_avx512_is_the_scalar_bits() {
        if !has_avx512() {
            return;
        }
        for c in math::tests::exp_f64_probes().chunks_exact(8) {
            let mut got = [0f64; 8];
            // SAFETY: AVX-512 is present; `c` and `got` hold 8 values each.
            unsafe {
                _mm512_storeu_pd(
                    got.as_mut_ptr(),
                    exp_f64_avx512(_mm512_loadu_pd(c.as_ptr())),
                )
            };
            math::tests::check_exp_f64(c, &got);
        }
    }
}
