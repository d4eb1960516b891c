//! NEON kernels: int8 activation quantization and the multiply-add ternary
//! GEMM over I2_S codes, without (`smlal`) and with (`sdot`) FEAT_DotProd.
//!
//! Both GEMMs compute `Σ code·q` exactly in `i32` and subtract the row sum
//! of `q` (codes are `trit + 1`), then apply the shared epilogue, so their
//! outputs are bitwise equal to `scalar::gemm_i2s`.

use super::float::ld;
use crate::arch::scalar;
use crate::dispatch::{Isa, Table};
use crate::format::{I2sMatrix, WeightScale, I2S_BLOCK};
use crate::math;
use crate::matmul::dequantize_dot;
use crate::quant::{QuantizedActs, RowScale};
use core::arch::aarch64::*;
use core::ops::Range;

pub(crate) static TABLE: Table = Table {
    isa: Isa::Neon,
    quantize_row_i8,
    gemm_i2s: gemm_i2s_neon,
    gemm_tl: super::lut::gemm_tl_neon,
    f16_to_f32: super::float::f16_to_f32_neon,
    f32_to_f16: super::float::f32_to_f16_neon,
    rms_norm: super::float::rms_norm_neon,
    softmax: super::float::softmax_neon,
    softmax_f64acc: super::float::softmax_f64acc_neon::<false>,
    softmax_f32exp: super::float::softmax_f64acc_neon::<true>,
    rope_neox: super::float::rope_neox_neon,
    rope_interleaved: super::float::rope_interleaved_neon,
    dot_f32: super::float::dot_f32_neon,
    dot_f16: super::float::dot_f16_neon,
    dot_f16_multi: super::float::dot_f16_multi_neon,
    axpy_f32: super::float::axpy_f32_neon,
    axpy_f16: super::float::axpy_f16_neon,
    dot_f64acc: super::float::dot_f64acc_neon::<f32>,
    axpy_f64acc: super::float::axpy_f64acc_neon::<f32>,
    dot_f64acc_rows: super::float::dot_f64acc_rows_neon::<f32>,
    weighted_sum_f64acc: super::float::weighted_sum_f64acc_neon::<f32>,
    dot_f64acc_queries: super::float::dot_f64acc_queries_neon::<f32>,
    weighted_sum_f64acc_queries: super::float::weighted_sum_f64acc_queries_neon::<f32>,
    dot_f32acc_queries_f16: super::float::dot_f32acc_queries_neon::<u16>,
    weighted_sum_f32acc_queries_f16: super::float::weighted_sum_f32acc_queries_neon::<u16>,
    dot_f32acc_queries: super::float::dot_f32acc_queries_neon::<f32>,
    weighted_sum_f32acc_queries: super::float::weighted_sum_f32acc_queries_neon::<f32>,
    gemv_f16: super::float::gemv_f16_neon,
    gemv_q8_0: super::float::gemv_q8_0_neon,
    dot_q8_0_multi: super::float::dot_q8_0_multi_neon,
    gemv_q6k: super::kquant::gemv_q6k_neon,
    dot_q6k_multi: super::kquant::dot_q6k_multi_neon,
};

pub(crate) static TABLE_DOTPROD: Table = Table {
    isa: Isa::NeonDotprod,
    gemm_i2s: gemm_i2s_dotprod,
    gemm_tl: super::lut::gemm_tl_neon,
    ..TABLE
};

/// Bit-identical to `scalar::quantize_row_i8` for finite input: the same
/// scale (`scalar::act_scale` of an exact max), the same product `x·scale`,
/// and `fcvtns` rounds ties to even exactly like the scalar 1.5·2^23 trick
/// for these magnitudes (`|x·scale| ≤ 127·(1 + ε)`). Saturating narrows do
/// the clamp to `[-128, 127]`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn quantize_row_i8(x: &[f32], q: &mut [i8]) -> RowScale {
    debug_assert_eq!(x.len(), q.len());
    // `maxnm` skips NaN like `f32::max` in `scalar::abs_max`; max is exact,
    // so lane order does not matter.
    let mut m = [vdupq_n_f32(0.0); 4];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (i, mi) in m.iter_mut().enumerate() {
            *mi = vmaxnmq_f32(*mi, vabsq_f32(ld(&c[4 * i..])));
        }
    }
    let mut amax = vmaxnmvq_f32(vmaxnmq_f32(
        vmaxnmq_f32(m[0], m[1]),
        vmaxnmq_f32(m[2], m[3]),
    ));
    for &v in chunks.remainder() {
        amax = amax.max(math::abs(v));
    }
    let scale = scalar::act_scale(amax);

    let vs = vdupq_n_f32(scale);
    let mut sum = vdupq_n_s32(0);
    let main = x.len() - x.len() % 16;
    for (c, o) in x[..main]
        .chunks_exact(16)
        .zip(q[..main].chunks_exact_mut(16))
    {
        let r = |i: usize| vcvtnq_s32_f32(vmulq_f32(ld(&c[4 * i..]), vs));
        let lo = vcombine_s16(vqmovn_s32(r(0)), vqmovn_s32(r(1)));
        let hi = vcombine_s16(vqmovn_s32(r(2)), vqmovn_s32(r(3)));
        let v = vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi));
        // Pairs of i8 fit i16 and 16 values per step are far from i32 limits.
        sum = vpadalq_s16(sum, vpaddlq_s8(v));
        let o = &mut o[..16];
        // SAFETY: `o` has 16 writable bytes; NEON is baseline on AArch64.
        unsafe { vst1q_s8(o.as_mut_ptr(), v) };
    }
    let mut sum = vaddvq_s32(sum);
    for (o, &v) in q[main..].iter_mut().zip(&x[main..]) {
        let r = math::round_ties_even(v * scale).clamp(-128.0, 127.0);
        *o = r as i8;
        sum += r as i32;
    }
    RowScale { scale, sum }
}

// ---------------------------------------------------------------------------
// Ternary GEMM.
//
// Per 128-weight block, byte `j` of the 32 code bytes holds weights `j`,
// `j+32`, `j+64`, `j+96` in bits 7:6, 5:4, 3:2, 1:0. Shifting the two
// 16-byte halves right by `6 - 2g` and masking with 3 gives the codes of
// weights `32g .. 32g+32` in order, which line up with 32 contiguous
// activations: no shuffles are needed.
//
// Register blocking: a tile of `R` weight rows × `T` tokens keeps `R·T`
// accumulators; activations are loaded once per tile and unpacked codes are
// used for all `T` tokens. Two loop orders inside a block, chosen by what
// fits in the 32 vector registers:
// * one token (decode): the block's 128 activations stay in 8 registers
//   while each row's 32 code bytes are loaded once and unpacked 4 ways;
// * several tokens: group by group (32 weights), so only 2 activation
//   vectors per token are live; the compiler keeps each row's 2 raw code
//   vectors across the groups.
// ---------------------------------------------------------------------------

/// Codes of group `G` (weights `32G .. 32G+32` of a block) from one
/// 16-byte half of its code bytes. The top field needs no mask, the bottom
/// one no shift.
#[target_feature(enable = "neon")]
#[inline]
fn unpack<const G: usize>(raw: uint8x16_t) -> int8x16_t {
    let mask = vdupq_n_u8(3);
    vreinterpretq_s8_u8(match G {
        0 => vshrq_n_u8::<6>(raw),
        1 => vandq_u8(vshrq_n_u8::<4>(raw), mask),
        2 => vandq_u8(vshrq_n_u8::<2>(raw), mask),
        _ => vandq_u8(raw, mask),
    })
}

/// The 32 activations of group `G` of block `b` for `T` tokens.
///
/// # Safety
/// For `j < T`, `a + j·a_stride` points at more than `b·128` readable bytes
/// (whole blocks).
#[target_feature(enable = "neon")]
#[inline]
unsafe fn acts<const T: usize, const G: usize>(
    a: *const i8,
    a_stride: usize,
    b: usize,
) -> [[int8x16_t; 2]; T] {
    core::array::from_fn(|t| {
        // SAFETY: group `G` of block `b` lies inside token `t`'s row.
        unsafe {
            let p = a.add(t * a_stride + b * I2S_BLOCK + G * 32);
            [vld1q_s8(p), vld1q_s8(p.add(16))]
        }
    })
}

/// The 32 code bytes of block `b` of one row.
///
/// # Safety
/// `w` points at more than `b·32` readable bytes (whole blocks).
#[target_feature(enable = "neon")]
#[inline]
unsafe fn raw_codes(w: *const u8, b: usize) -> [uint8x16_t; 2] {
    // SAFETY: block `b`'s 32 code bytes lie inside the row.
    unsafe {
        let p = w.add(b * 32);
        [vld1q_u8(p), vld1q_u8(p.add(16))]
    }
}

/// Group `G`'s codes from a block's raw bytes.
#[target_feature(enable = "neon")]
#[inline]
fn group_codes<const G: usize>(raw: [uint8x16_t; 2]) -> [int8x16_t; 2] {
    [unpack::<G>(raw[0]), unpack::<G>(raw[1])]
}

/// All four groups' codes from a block's raw bytes.
#[target_feature(enable = "neon")]
#[inline]
fn block_codes(raw: [uint8x16_t; 2]) -> [[int8x16_t; 2]; 4] {
    [
        group_codes::<0>(raw),
        group_codes::<1>(raw),
        group_codes::<2>(raw),
        group_codes::<3>(raw),
    ]
}

/// `s +` both halves' products of 16 codes and 16 activations: two per lane.
#[target_feature(enable = "neon")]
#[inline]
fn mlal(s: int16x8_t, c: int8x16_t, a: int8x16_t) -> int16x8_t {
    vmlal_high_s8(vmlal_s8(s, vget_low_s8(c), vget_low_s8(a)), c, a)
}

/// `acc + Σ` of each lane's four byte products. `vdotq_s32` is still
/// unstable in Rust (`stdarch_neon_dotprod`), so this is the instruction.
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: `sdot` only reads `a`, `b` and updates `acc` (no memory, stack
    // or flags); this function's `dotprod` feature means the CPU has it.
    unsafe {
        core::arch::asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// Generates a tile function: `Σ code·q` for `R` weight rows × `T` tokens.
/// Per block, `$init(state)` gives the accumulators (`$acc`, with `$zero`
/// and `$add`), `$mac(s, c, a)` adds the products of 16 codes and 16
/// activations, and `$end(state, acc)` folds them back into the i32 state.
macro_rules! tile_fn {
    (
        $(#[$meta:meta])*
        fn $name:ident, feature = $feat:literal, acc = $acc:ty, zero = $zero:expr,
        mac = $mac:ident, add = $add:ident,
        init = |$is:pat_param| $init:expr,
        end = |$es:pat_param, $ea:ident| $end:expr
    ) => {
        $(#[$meta])*
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn $name<const R: usize, const T: usize>(
            w: *const u8,
            w_stride: usize,
            a: *const i8,
            a_stride: usize,
            blocks: usize,
        ) -> [[i32; T]; R] {
            /// Group `G` of block `b` for every row and token.
            ///
            /// # Safety
            /// As for the tile, with `b < blocks`.
            #[target_feature(enable = $feat)]
            #[inline]
            unsafe fn group<const R: usize, const T: usize, const G: usize>(
                acc: &mut [[$acc; T]; R],
                raw: &[[uint8x16_t; 2]; R],
                a: *const i8,
                a_stride: usize,
                b: usize,
            ) {
                // SAFETY: whole blocks up to `b` of every token, as promised.
                let av = unsafe { acts::<T, G>(a, a_stride, b) };
                for (s, &raw) in acc.iter_mut().zip(raw) {
                    let c = group_codes::<G>(raw);
                    for (s, at) in s.iter_mut().zip(&av) {
                        *s = $mac($mac(*s, c[0], at[0]), c[1], at[1]);
                    }
                }
            }

            let mut state = [[vdupq_n_s32(0); T]; R];
            for b in 0..blocks {
                let mut acc: [[$acc; T]; R] = state.map(|r| r.map(|$is| $init));
                // SAFETY: `b < blocks`; the caller's pointers cover `blocks`
                // whole blocks of `R` rows and `T` tokens.
                unsafe {
                    if T == 1 {
                        let av = [
                            acts::<1, 0>(a, 0, b)[0],
                            acts::<1, 1>(a, 0, b)[0],
                            acts::<1, 2>(a, 0, b)[0],
                            acts::<1, 3>(a, 0, b)[0],
                        ];
                        for (r, s) in acc.iter_mut().enumerate() {
                            let c = block_codes(raw_codes(w.add(r * w_stride), b));
                            // Two chains per row: half the latency between blocks.
                            let mut lo = s[0];
                            let mut hi = $zero;
                            for h in 0..2 {
                                lo = $mac(lo, c[0][h], av[0][h]);
                                hi = $mac(hi, c[2][h], av[2][h]);
                                lo = $mac(lo, c[1][h], av[1][h]);
                                hi = $mac(hi, c[3][h], av[3][h]);
                            }
                            s[0] = $add(lo, hi);
                        }
                    } else {
                        let raw = core::array::from_fn(|r| raw_codes(w.add(r * w_stride), b));
                        group::<R, T, 0>(&mut acc, &raw, a, a_stride, b);
                        group::<R, T, 1>(&mut acc, &raw, a, a_stride, b);
                        group::<R, T, 2>(&mut acc, &raw, a, a_stride, b);
                        group::<R, T, 3>(&mut acc, &raw, a, a_stride, b);
                    }
                }
                for (sr, ar) in state.iter_mut().zip(&acc) {
                    for (s, &$ea) in sr.iter_mut().zip(ar) {
                        let $es = *s;
                        *s = $end;
                    }
                }
            }
            state.map(|row| row.map(|v| vaddvq_s32(v)))
        }
    };
}

tile_fn! {
    /// `Σ code·q` with widening multiplies (`smull`/`smlal`) into i16 lanes.
    ///
    /// Overflow bound: a 128-weight block gives every i16 lane 16 products
    /// (8 code vectors × 2 halves, one product per lane per `smlal`). A
    /// product is `code·q` with `code ∈ [0, 3]` (3 is unused but tolerated)
    /// and `q ∈ [−128, 127]`, so within `[−384, 381]`; 16 of them stay within
    /// `[−6144, 6096]`, far inside i16. After every block the i16 lanes are
    /// widened pairwise into i32 (`sadalp`); with `K ≤ MAX_K = 2^20` an i32
    /// lane sums at most `2^20 / 4` products, `|·| ≤ 2^18 · 384 < 2^27`.
    ///
    /// # Safety
    /// For `i < R`, `w + i·w_stride` must point at `blocks·32` readable bytes;
    /// for `j < T`, `a + j·a_stride` at `blocks·128`.
    fn tile_mlal, feature = "neon", acc = int16x8_t, zero = vdupq_n_s16(0),
    mac = mlal, add = vaddq_s16,
    init = |_| vdupq_n_s16(0),
    end = |s, a| vpadalq_s16(s, a)
}

tile_fn! {
    /// `Σ code·q` with `sdot`: four products straight into each i32 lane
    /// (at most `2^20 · 384 < 2^29` in total).
    ///
    /// # Safety
    /// As for [`tile_mlal`], and the CPU has FEAT_DotProd.
    fn tile_sdot, feature = "neon,dotprod", acc = int32x4_t, zero = vdupq_n_s32(0),
    mac = sdot, add = vaddq_s32,
    init = |s| s, end = |_, a| a
}

/// What a tile needs to find its inputs and write its outputs.
struct Gemm<'a> {
    codes: *const u8,
    row_bytes: usize,
    acts: *const i8,
    k: usize,
    blocks: usize,
    x: &'a QuantizedActs<'a>,
    w_scale: f32,
    y: *mut f32,
    y_stride: usize,
    rows_end: usize,
}

impl Gemm<'_> {
    /// Writes a tile's results at rows `r..r+R`, tokens `t..t+T`.
    ///
    /// # Safety
    /// `y[(t+j)·y_stride + r+i]` is writable for the tile (the entry's contract).
    #[inline(always)]
    unsafe fn store<const R: usize, const T: usize>(
        &self,
        r: usize,
        t: usize,
        dots: [[i32; T]; R],
    ) {
        for (i, row) in dots.iter().enumerate() {
            for (j, &d) in row.iter().enumerate() {
                let v = dequantize_dot(
                    d.wrapping_sub(self.x.sum(t + j)),
                    self.x.scale(t + j),
                    self.w_scale,
                );
                // SAFETY: inside the caller's rows × tokens, as promised above.
                unsafe { self.y.add((t + j) * self.y_stride + r + i).write(v) };
            }
        }
    }
}

/// Tokens per pass over the weights in a batched GEMM: their activations
/// (32·K bytes, ≤ 224 KiB at K = 6912) stay in L2 while every row tile of
/// the range streams past once, and each row tile's codes stay in L1 across
/// the chunk's tokens.
const TOKEN_CHUNK: usize = 32;

/// Generates a `Table::gemm_i2s` entry from a tile function: `$rg` rows per
/// tile for a lone token (decode), `$rb × $tb` rows × tokens otherwise;
/// leftover tokens take a 2-wide tile then 1-wide ones (within the row tile,
/// whose codes are still in L1), leftover rows 1-row tiles.
macro_rules! gemm_i2s_entry {
    (
        #[target_feature(enable = $feat:literal)]
        fn $name:ident, tile = $tile:ident,
        gemv_rows = $rg:literal, rows = $rb:literal, tokens = $tb:literal
    ) => {
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn $name(
            w: &I2sMatrix<'_>,
            x: &QuantizedActs<'_>,
            rows: Range<usize>,
            y: *mut f32,
            y_stride: usize,
        ) {
            let WeightScale::Tensor(w_scale) = w.scale() else {
                unreachable!("block-scaled matrices take gemm_i2s_block_scaled")
            };

            /// One tile at rows `r..r+R`, tokens `t..t+T`.
            ///
            /// # Safety
            /// The tile lies inside the matrix, the tokens and the caller's rows.
            #[target_feature(enable = $feat)]
            #[inline]
            unsafe fn tile<const R: usize, const T: usize>(g: &Gemm<'_>, r: usize, t: usize) {
                debug_assert!(r + R <= g.rows_end && t + T <= g.x.n());
                // SAFETY: rows `r..r+R` and tokens `t..t+T` exist, so each
                // pointer below starts a full row of `blocks` blocks.
                unsafe {
                    let dots = $tile::<R, T>(
                        g.codes.add(r * g.row_bytes),
                        g.row_bytes,
                        g.acts.add(t * g.k),
                        g.k,
                        g.blocks,
                    );
                    g.store::<R, T>(r, t, dots);
                }
            }

            /// Rows `r..r+R` against tokens `t0..t1`.
            ///
            /// # Safety
            /// Rows `r..r+R` are in the matrix and the caller's range; `t1 ≤ N`.
            #[target_feature(enable = $feat)]
            #[inline]
            unsafe fn span<const R: usize>(g: &Gemm<'_>, r: usize, t0: usize, t1: usize) {
                let mut t = t0;
                // SAFETY: every tile's tokens are below `t1 ≤ N`; rows as promised.
                unsafe {
                    while t1 - t >= $tb {
                        tile::<R, $tb>(g, r, t);
                        t += $tb;
                    }
                    if t1 - t >= 2 {
                        tile::<R, 2>(g, r, t);
                        t += 2;
                    }
                    while t < t1 {
                        tile::<R, 1>(g, r, t);
                        t += 1;
                    }
                }
            }

            let k = w.k();
            debug_assert!(x.k() == k && rows.end <= w.m() && rows.end <= y_stride);
            let g = Gemm {
                codes: w.codes().as_ptr(),
                row_bytes: k / 4,
                acts: x.values().as_ptr(),
                k,
                blocks: k / I2S_BLOCK,
                x,
                w_scale,
                y,
                y_stride,
                rows_end: rows.end,
            };
            let n = x.n();
            let mut t0 = 0;
            while t0 < n {
                let t1 = n.min(t0 + TOKEN_CHUNK);
                let mut r = rows.start;
                // SAFETY: the safe wrapper checked the shapes (rows inside the
                // matrix, `x.k() == K`, `K % 128 == 0`) and the caller vouches
                // for `y` over these rows × tokens; each tile stays in `rows`
                // and `t0..t1`.
                unsafe {
                    if t1 - t0 == 1 {
                        while rows.end - r >= $rg {
                            tile::<$rg, 1>(&g, r, t0);
                            r += $rg;
                        }
                    }
                    while rows.end - r >= $rb {
                        span::<$rb>(&g, r, t0, t1);
                        r += $rb;
                    }
                    while r < rows.end {
                        span::<1>(&g, r, t0, t1);
                        r += 1;
                    }
                }
                t0 = t1;
            }
        }
    };
}

// Register budgets (32 vector registers). Without dotprod a tile needs i32
// sums and i16 partials: 4 rows of a lone token take 4 sums, 8 partials (two
// chains per row), 8 activation vectors and a row's codes; 2 rows × 4 tokens
// take 8 sums, 8 partials, 4 raw code vectors and 8 activation vectors.
// Either way 8 independent `smlal` chains hide their latency on big cores.
// (With 8 rows of a lone token the body gets too big for LLVM to unroll the
// rows, and it then keeps the accumulators in memory.)
gemm_i2s_entry! {
    #[target_feature(enable = "neon")]
    fn gemm_i2s_neon, tile = tile_mlal,
    gemv_rows = 4, rows = 2, tokens = 4
}

// With dotprod, 2 × 4 needs only 8 sums; the unpacking (1.5 ops per 16
// codes) is shared by 4 tokens, and the activations by both rows. 4 × 4
// (16 sums, 8 raw code vectors, 8 activation vectors, temporaries) spills.
gemm_i2s_entry! {
    #[target_feature(enable = "neon,dotprod")]
    fn gemm_i2s_dotprod, tile = tile_sdot,
    gemv_rows = 4, rows = 2, tokens = 4
}

#[cfg(test)]
mod tests {
    //! Shapes the shared matmul tests do not reach: batches longer than
    //! `TOKEN_CHUNK`, including a chunk holding a lone token (which takes
    //! the decode tiles inside a batched call).
    extern crate std;
    use super::*;
    use crate::format::encode_i2s_row;
    use std::vec::Vec;

    #[test]
    fn long_batches_match_scalar() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (m, k, n) in [(11, 256, 2 * TOKEN_CHUNK + 1), (9, 384, 70), (6, 128, 33)] {
            let trits: Vec<i8> = (0..m * k).map(|_| (next() % 3) as i8 - 1).collect();
            let mut codes = std::vec![0u8; m * k / 4];
            for (t, c) in trits.chunks_exact(k).zip(codes.chunks_exact_mut(k / 4)) {
                encode_i2s_row(t, c).unwrap();
            }
            let w = I2sMatrix::new(&codes, m, k, WeightScale::Tensor(0.37)).unwrap();
            let q: Vec<i8> = (0..n * k).map(|_| next() as i8).collect();
            let sums: Vec<i32> = q
                .chunks_exact(k)
                .map(|r| r.iter().map(|&v| v as i32).sum())
                .collect();
            let scales: Vec<f32> = (0..n).map(|t| 1.0 + t as f32 * 0.25).collect();
            let x = QuantizedActs::new(&q, &scales, &sums, k).unwrap();
            let mut entries: Vec<(&str, unsafe fn(_, _, _, _, _))> =
                std::vec![("neon", gemm_i2s_neon as unsafe fn(_, _, _, _, _))];
            if super::super::has_dotprod() {
                entries.push(("neon-dotprod", gemm_i2s_dotprod));
            }
            for rows in [0..m, 1..m - 2] {
                let mut want = std::vec![f32::NAN; n * m];
                // SAFETY: `want` is N × M and `rows` lies inside M.
                unsafe { scalar::gemm_i2s(&w, &x, rows.clone(), want.as_mut_ptr(), m) };
                for (name, f) in &entries {
                    let mut got = std::vec![f32::NAN; n * m];
                    // SAFETY: as above; the ISA was checked.
                    unsafe { f(&w, &x, rows.clone(), got.as_mut_ptr(), m) };
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(g.to_bits(), w.to_bits(), "{name} m={m} k={k} n={n} y[{i}]");
                    }
                }
            }
        }
    }
}
