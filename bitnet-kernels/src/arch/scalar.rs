//! The portable reference. Plain loops, written for clarity: every SIMD
//! path is tested against these functions.

use super::KvElem;
use crate::dispatch::{Isa, Table};
use crate::format::{I2sMatrix, WeightScale, I2S_BLOCK, TQ_BLOCK};
use crate::kquant::{
    add_q6k_block, q6k_level, q6k_scale, q8k_scale, Q6K_BLOCK, Q6K_BLOCK_BYTES, Q6K_SCALES,
    Q8K_BLOCK_BYTES, Q8K_Q, Q8K_SUMS,
};
use crate::math;
use crate::matmul::dequantize_dot;
use crate::quant::{QuantizedActs, RowScale, ACT_MAX_FLOOR};
use core::ops::Range;

pub(crate) static TABLE: Table = Table {
    isa: Isa::Scalar,
    quantize_row_i8,
    gemm_i2s,
    gemm_tl: super::lut::gemm_tl,
    f16_to_f32,
    f32_to_f16,
    rms_norm,
    softmax,
    softmax_f64acc: softmax_f64acc::<false>,
    softmax_f32exp: softmax_f64acc::<true>,
    rope_neox,
    rope_interleaved,
    dot_f32,
    dot_f16,
    dot_f16_multi,
    axpy_f32,
    axpy_f16,
    dot_f64acc: dot_f64acc::<f32>,
    axpy_f64acc: axpy_f64acc::<f32>,
    dot_f64acc_rows: dot_f64acc_rows::<f32>,
    weighted_sum_f64acc: weighted_sum_f64acc::<f32>,
    dot_f64acc_queries: dot_f64acc_queries::<f32>,
    weighted_sum_f64acc_queries: weighted_sum_f64acc_queries::<f32>,
    dot_f32acc_queries_f16: dot_f32acc_queries::<u16>,
    weighted_sum_f32acc_queries_f16: weighted_sum_f32acc_queries::<u16>,
    dot_f32acc_queries: dot_f32acc_queries::<f32>,
    weighted_sum_f32acc_queries: weighted_sum_f32acc_queries::<f32>,
    gemv_f16,
    gemv_q8_0,
    dot_q8_0_multi,
    gemv_q6k,
    dot_q6k_multi,
};

/// `max|x|` ignoring NaN (SIMD paths match for finite input).
pub(crate) fn abs_max(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, &v| m.max(math::abs(v)))
}

/// The scale for a row whose `max|x|` is `amax`.
#[inline(always)]
pub(crate) fn act_scale(amax: f32) -> f32 {
    127.0 / amax.max(ACT_MAX_FLOOR)
}

pub(crate) unsafe fn quantize_row_i8(x: &[f32], q: &mut [i8]) -> RowScale {
    let scale = act_scale(abs_max(x));
    let mut sum = 0i32;
    for (o, &v) in q.iter_mut().zip(x) {
        let r = math::round_ties_even(v * scale).clamp(-128.0, 127.0);
        *o = r as i8;
        sum += r as i32;
    }
    RowScale { scale, sum }
}

/// `Σ code·q` over one I2_S row (codes are `trit + 1`).
#[inline]
pub(crate) fn dot_codes(codes: &[u8], act: &[i8]) -> i32 {
    let mut acc = 0i32;
    for (block, a) in codes.chunks_exact(32).zip(act.chunks_exact(I2S_BLOCK)) {
        for j in 0..32 {
            for g in 0..4 {
                let code = (block[j] >> (6 - 2 * g)) & 3;
                acc += code as i32 * a[j + 32 * g] as i32;
            }
        }
    }
    acc
}

pub(crate) unsafe fn gemm_i2s(
    w: &I2sMatrix<'_>,
    x: &QuantizedActs<'_>,
    rows: Range<usize>,
    y: *mut f32,
    y_stride: usize,
) {
    let WeightScale::Tensor(ws) = w.scale() else {
        unreachable!("block-scaled matrices take gemm_i2s_block_scaled")
    };
    for t in 0..x.n() {
        let act = x.row(t);
        for r in rows.clone() {
            let dot = dot_codes(w.row(r), act).wrapping_sub(x.sum(t));
            // SAFETY: the caller guarantees y[t·y_stride + r] is writable.
            unsafe {
                y.add(t * y_stride + r)
                    .write(dequantize_dot(dot, x.scale(t), ws))
            };
        }
    }
}

/// Matrices whose 256-weight blocks carry different scales (TQ files of
/// non-BitNet models): `y = Σ_b dot_b·s_b / act_scale`. Portable only.
pub(crate) unsafe fn gemm_i2s_block_scaled(
    w: &I2sMatrix<'_>,
    x: &QuantizedActs<'_>,
    rows: Range<usize>,
    y: *mut f32,
    y_stride: usize,
) {
    let WeightScale::Blocks256(scales) = w.scale() else {
        unreachable!("tensor-scaled matrices take gemm_i2s")
    };
    let blocks = w.k() / TQ_BLOCK;
    for t in 0..x.n() {
        let act = x.row(t);
        for r in rows.clone() {
            let codes = w.row(r);
            let mut acc = 0.0f32;
            for b in 0..blocks {
                let a = &act[b * TQ_BLOCK..(b + 1) * TQ_BLOCK];
                let sum: i32 = a.iter().map(|&v| v as i32).sum();
                let dot = dot_codes(&codes[b * 64..(b + 1) * 64], a) - sum;
                acc += dot as f32 * scales[r * blocks + b];
            }
            // SAFETY: the caller guarantees y[t·y_stride + r] is writable.
            unsafe { y.add(t * y_stride + r).write(acc / x.scale(t)) };
        }
    }
}

pub(crate) unsafe fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = math::f16_to_f32(s);
    }
}

pub(crate) unsafe fn f32_to_f16(src: &[f32], dst: &mut [u16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = math::f32_to_f16(s);
    }
}

pub(crate) unsafe fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let ss: f32 = x.iter().map(|v| v * v).sum();
    let inv = 1.0 / math::sqrt(ss / x.len() as f32 + eps);
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * inv * g;
    }
}

pub(crate) unsafe fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = math::exp(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `softmax_f64acc` (`F32_EXP = false`, exponentials by `math::exp_f64`
/// rounded to f32) or `softmax_f32exp` (`true`, by `math::exp`): the same
/// scaling, maximum, f64 sum and division either way.
pub(crate) unsafe fn softmax_f64acc<const F32_EXP: bool>(x: &mut [f32], scale: f32) {
    use math::{reduce_f64_lanes, F64_LANES};
    let mut max = f32::NEG_INFINITY;
    for v in x.iter_mut() {
        *v *= scale;
        max = max.max(*v);
    }
    let main = x.len() - x.len() % F64_LANES;
    let mut lanes = [0f64; F64_LANES];
    for chunk in x[..main].chunks_exact_mut(F64_LANES) {
        for (l, v) in lanes.iter_mut().zip(chunk) {
            *v = softmax_exp::<F32_EXP>(*v - max);
            *l += *v as f64;
        }
    }
    let sum = softmax_f64acc_tail::<F32_EXP>(&mut x[main..], max, reduce_f64_lanes(lanes));
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// `e^d` as the two attention softmaxes take it.
#[inline(always)]
fn softmax_exp<const F32_EXP: bool>(d: f32) -> f32 {
    if F32_EXP {
        math::exp(d)
    } else {
        math::exp_f64(d as f64) as f32
    }
}

/// The part of `softmax_f64acc` past the last full 8 lanes, shared by every
/// path: each `e^(v − max)` in order, added to the lanes' `sum`; returns
/// the whole row's sum rounded to f32.
#[inline(always)]
pub(crate) fn softmax_f64acc_tail<const F32_EXP: bool>(
    tail: &mut [f32],
    max: f32,
    mut sum: f64,
) -> f32 {
    for v in tail {
        *v = softmax_exp::<F32_EXP>(*v - max);
        sum += *v as f64;
    }
    sum as f32
}

pub(crate) unsafe fn rope_neox(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    for head in x.chunks_exact_mut(head_dim) {
        let (lo, hi) = head.split_at_mut(half);
        for i in 0..half {
            let (a, b) = (lo[i], hi[i]);
            lo[i] = a * cos[i] - b * sin[i];
            hi[i] = a * sin[i] + b * cos[i];
        }
    }
}

pub(crate) unsafe fn rope_interleaved(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    for head in x.chunks_exact_mut(head_dim) {
        for (i, pair) in head.chunks_exact_mut(2).enumerate() {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * cos[i] - b * sin[i];
            pair[1] = a * sin[i] + b * cos[i];
        }
    }
}

pub(crate) unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub(crate) unsafe fn dot_f16(a: &[f32], b: &[u16]) -> f32 {
    a.iter().zip(b).map(|(x, &y)| x * math::f16_to_f32(y)).sum()
}

pub(crate) unsafe fn dot_f16_multi(xs: &[f32], w: &[u16], k: usize, out: &mut [f32]) {
    // SAFETY: same contract as ours.
    unsafe { super::dot_f16_multi_rows_with(dot_f16_row_multi, xs, w, k, out) }
}

unsafe fn dot_f16_row_multi(xs: &[f32], b: &[u16], out: &mut [f32]) {
    let k = b.len();
    for (t, o) in out.iter_mut().enumerate() {
        // SAFETY: same contract as ours.
        *o = unsafe { dot_f16(&xs[t * k..(t + 1) * k], b) };
    }
}

pub(crate) unsafe fn axpy_f32(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += alpha * v;
    }
}

pub(crate) unsafe fn axpy_f16(alpha: f32, x: &[u16], y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += alpha * math::f16_to_f32(v);
    }
}

pub(crate) unsafe fn dot_f64acc<E: KvElem>(a: &[f32], b: &[E]) -> f32 {
    use math::{reduce_f64_lanes, F64_LANES};
    let n = a.len().min(b.len());
    let main = n - n % F64_LANES;
    let mut lanes = [0f64; F64_LANES];
    for (x, y) in a[..main]
        .chunks_exact(F64_LANES)
        .zip(b[..main].chunks_exact(F64_LANES))
    {
        for (l, (&x, &y)) in lanes.iter_mut().zip(x.iter().zip(y)) {
            *l += x as f64 * y.to_f32() as f64;
        }
    }
    let mut s = reduce_f64_lanes(lanes);
    for j in main..n {
        s += a[j] as f64 * b[j].to_f32() as f64;
    }
    s as f32
}

pub(crate) unsafe fn axpy_f64acc<E: KvElem>(alpha: f32, x: &[E], acc: &mut [f64]) {
    let a = alpha as f64;
    for (o, &v) in acc.iter_mut().zip(x) {
        *o += a * v.to_f32() as f64;
    }
}

pub(crate) unsafe fn dot_f64acc_rows<E: KvElem>(q: &[f32], keys: &[E], out: &mut [f32]) {
    // SAFETY: same contract as ours.
    unsafe { super::dot_f64acc_rows_with(dot_f64acc::<E>, q, keys, out) }
}

pub(crate) unsafe fn dot_f64acc_queries<E: KvElem>(
    qs: &[f32],
    keys: &[E],
    k: usize,
    out: &mut [f32],
) {
    // SAFETY: forwarded from our caller.
    unsafe { super::dot_f64acc_queries_with(dot_f64acc_rows::<E>, qs, keys, k, out) }
}

pub(crate) unsafe fn weighted_sum_f64acc_queries<E: KvElem>(
    ps: &[f32],
    values: &[E],
    k: usize,
    accs: &mut [f64],
) {
    // SAFETY: forwarded from our caller.
    unsafe {
        super::weighted_sum_f64acc_queries_with(weighted_sum_f64acc::<E>, ps, values, k, accs)
    }
}

pub(crate) unsafe fn weighted_sum_f64acc<E: KvElem>(p: &[f32], values: &[E], acc: &mut [f64]) {
    // SAFETY: same contract as ours.
    unsafe { super::weighted_sum_f64acc_with(axpy_f64acc::<E>, p, values, acc) }
}

/// The attention dot of one query and one key, as `Table::dot_f32acc_queries_f16`
/// defines it: the lanes of `math::F32_LANES`, FMA by FMA, the last chunk's
/// missing elements zeros (`fma(0, 0, l)` is `l + 0`), then
/// `math::reduce_f32_lanes`.
pub(crate) fn dot_in_lanes<E: KvElem>(q: &[f32], key: &[E]) -> f32 {
    use math::{fma_f32, reduce_f32_lanes, F32_LANES};
    let mut lanes = [0f32; F32_LANES];
    for (i, (&x, &y)) in q.iter().zip(key).enumerate() {
        let l = &mut lanes[i % F32_LANES];
        *l = fma_f32(x, y.to_f32(), *l);
    }
    let rem = q.len() % F32_LANES;
    if rem != 0 {
        for l in &mut lanes[rem..] {
            *l += 0.0;
        }
    }
    reduce_f32_lanes(lanes)
}

pub(crate) unsafe fn dot_f32acc_queries<E: KvElem>(
    qs: &[f32],
    keys: &[E],
    k: usize,
    out: &mut [f32],
) {
    let n = keys.len() / k;
    if n == 0 {
        return;
    }
    for (q, o) in qs.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
        for (o, key) in o.iter_mut().zip(keys.chunks_exact(k)) {
            *o = dot_in_lanes(q, key);
        }
    }
}

pub(crate) unsafe fn weighted_sum_f32acc_queries<E: KvElem>(
    ps: &[f32],
    values: &[E],
    k: usize,
    accs: &mut [f32],
) {
    let n = values.len() / k;
    for (p, acc) in ps.chunks_exact(n.max(1)).zip(accs.chunks_exact_mut(k)) {
        for (&p, row) in p.iter().zip(values.chunks_exact(k)) {
            weighted_row(p, row, acc);
        }
    }
}

/// `acc[i] = fma(p, row[i], acc[i])`: one position of a weighted sum, and
/// the columns past the SIMD paths' last whole vector.
#[inline]
pub(crate) fn weighted_row<E: KvElem>(p: f32, row: &[E], acc: &mut [f32]) {
    for (a, &v) in acc.iter_mut().zip(row) {
        *a = math::fma_f32(p, v.to_f32(), *a);
    }
}

pub(crate) unsafe fn gemv_f16(w: &[u16], k: usize, x: &[f32], rows: Range<usize>, y: &mut [f32]) {
    for (o, r) in y.iter_mut().zip(rows) {
        // SAFETY: same contract as ours.
        *o = unsafe { dot_f16(x, &w[r * k..(r + 1) * k]) };
    }
}

pub(crate) unsafe fn gemv_q8_0(w: &[u8], k: usize, x: &[f32], rows: Range<usize>, y: &mut [f32]) {
    use crate::float::{Q8_0_BLOCK, Q8_0_BLOCK_BYTES};
    let row_bytes = k / Q8_0_BLOCK * Q8_0_BLOCK_BYTES;
    for (o, r) in y.iter_mut().zip(rows) {
        let row = &w[r * row_bytes..(r + 1) * row_bytes];
        let mut acc = 0.0f32;
        for (block, xs) in row
            .chunks_exact(Q8_0_BLOCK_BYTES)
            .zip(x.chunks_exact(Q8_0_BLOCK))
        {
            let d = math::f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
            // `d·q` is exact (an int8 times an f16: at most 19 significant
            // bits), so each term is rounded by its product and its sum.
            for (&q, &v) in block[2..].iter().zip(xs) {
                acc += d * q as i8 as f32 * v;
            }
        }
        *o = acc;
    }
}

/// `Σ_j scale_j · Σ_{i ∈ 16j..16j + 16} (L_i − 32)·q_i` of one Q6_K block
/// against one Q8_K block, with `Σ (L − 32)·q = Σ L·q − 32·sums[j]`. Exact
/// for activations from `quantize_row_q8k`; wrapping in general, which
/// every path shares because `i32` addition and products wrap alike.
pub(crate) fn q6k_block_dot(w: &[u8], x: &[u8]) -> i32 {
    let mut isum = 0i32;
    for j in 0..16 {
        let sc = w[Q6K_SCALES + j] as i8 as i32;
        let lq: i32 = (16 * j..16 * (j + 1))
            .map(|i| q6k_level(w, i) as i32 * x[Q8K_Q + i] as i8 as i32)
            .sum();
        let s = i16::from_le_bytes([x[Q8K_SUMS + 2 * j], x[Q8K_SUMS + 2 * j + 1]]) as i32;
        isum = isum.wrapping_add(sc * (lq - 32 * s));
    }
    isum
}

pub(crate) unsafe fn gemv_q6k(w: &[u8], k: usize, xq: &[u8], rows: Range<usize>, y: &mut [f32]) {
    let row_bytes = k / Q6K_BLOCK * Q6K_BLOCK_BYTES;
    for (o, r) in y.iter_mut().zip(rows) {
        let row = &w[r * row_bytes..(r + 1) * row_bytes];
        *o = row
            .chunks_exact(Q6K_BLOCK_BYTES)
            .zip(xq.chunks_exact(Q8K_BLOCK_BYTES))
            .fold(0.0, |acc, (wb, xb)| {
                add_q6k_block(acc, q6k_scale(wb), q8k_scale(xb), q6k_block_dot(wb, xb))
            });
    }
}

pub(crate) unsafe fn dot_q6k_multi(xqs: &[u8], w: &[u8], k: usize, out: &mut [f32]) {
    let xrow = k / Q6K_BLOCK * Q8K_BLOCK_BYTES;
    // SAFETY: forwarded from our caller.
    unsafe { super::dot_multi_with(gemv_q6k, xqs, xrow, w, k, out) }
}

pub(crate) unsafe fn dot_q8_0_multi(xs: &[f32], w: &[u8], k: usize, out: &mut [f32]) {
    // SAFETY: forwarded from our caller.
    unsafe { super::dot_multi_with(gemv_q8_0, xs, k, w, k, out) }
}
