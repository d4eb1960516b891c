//! NEON float helpers. Same contracts as the scalar reference; sums are
//! reassociated across lanes and use FMA, so results agree to a tolerance,
//! except RoPE and the `*_f64acc` attention kernels, which match bit for bit.
//!
//! The f16 conversions use `fcvtl`/`fcvtn` through `asm!`: their intrinsics
//! (`vcvt_f32_f16`, …) need Rust's unstable `f16` type, but the instructions
//! are baseline AArch64 SIMD (FEAT_FP16 is only needed for f16 arithmetic).
//! One instruction per four values instead of about ten for a bit-level
//! conversion matters for the f16 LM head. They are exact and match
//! `math::f16_to_f32` / `math::f32_to_f16` bit for bit, except that `fcvtl`
//! quiets signalling NaNs (as F16C does); the tests below check every half.

use crate::arch::{dot_f16_multi_rows_with, dot_multi_with, gemv_in_streams, scalar, KvElem};
use crate::float::{Q8_0_BLOCK, Q8_0_BLOCK_BYTES};
use crate::math::{self, exp_consts};
use core::arch::aarch64::*;
use core::ops::Range;

#[target_feature(enable = "neon")]
#[inline]
pub(super) fn ld(s: &[f32]) -> float32x4_t {
    let s = &s[..4];
    // SAFETY: `s` has 4 readable floats; NEON is baseline on AArch64.
    unsafe { vld1q_f32(s.as_ptr()) }
}

#[target_feature(enable = "neon")]
#[inline]
fn st(d: &mut [f32], v: float32x4_t) {
    let d = &mut d[..4];
    // SAFETY: `d` has 4 writable floats; NEON is baseline on AArch64.
    unsafe { vst1q_f32(d.as_mut_ptr(), v) }
}

#[target_feature(enable = "neon")]
#[inline]
fn ld_h(s: &[u16]) -> uint16x8_t {
    let s = &s[..8];
    // SAFETY: `s` has 8 readable halves; NEON is baseline on AArch64.
    unsafe { vld1q_u16(s.as_ptr()) }
}

#[target_feature(enable = "neon")]
#[inline]
fn hsum(v: [float32x4_t; 4]) -> f32 {
    vaddvq_f32(vaddq_f32(vaddq_f32(v[0], v[1]), vaddq_f32(v[2], v[3])))
}

/// Eight halves to f32, exactly (`fcvtl`, `fcvtl2`). Relies on the AArch64
/// Linux defaults FPCR.AHP = 0 (IEEE halves) and FPCR.FZ = 0, which Rust
/// code never changes.
#[target_feature(enable = "neon")]
#[inline]
fn h8_to_f32(h: uint16x8_t) -> [float32x4_t; 2] {
    let (lo, hi): (float32x4_t, float32x4_t);
    // SAFETY: two baseline AArch64 SIMD conversions on registers only.
    unsafe {
        core::arch::asm!(
            "fcvtl {lo:v}.4s, {h:v}.4h",
            "fcvtl2 {hi:v}.4s, {h:v}.8h",
            h = in(vreg) h,
            lo = out(vreg) lo,
            hi = out(vreg) hi,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    [lo, hi]
}

/// Eight f32 to f16 bits (`fcvtn`, `fcvtn2`): round to nearest even (FPCR's
/// default mode), overflow to inf, NaNs quieted with their top payload bits,
/// exactly as `math::f32_to_f16`.
#[target_feature(enable = "neon")]
#[inline]
fn f32x8_to_h(lo: float32x4_t, hi: float32x4_t) -> uint16x8_t {
    let h: uint16x8_t;
    // SAFETY: two baseline AArch64 SIMD conversions on registers only; `h`
    // is an early-clobber output, so it cannot share a register with `hi`.
    unsafe {
        core::arch::asm!(
            "fcvtn {h:v}.4h, {lo:v}.4s",
            "fcvtn2 {h:v}.8h, {hi:v}.4s",
            lo = in(vreg) lo,
            hi = in(vreg) hi,
            h = out(vreg) h,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    h
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn f16_to_f32_neon(src: &[u16], dst: &mut [f32]) {
    let mut s = src.chunks_exact(8);
    let mut d = dst.chunks_exact_mut(8);
    for (s, d) in (&mut s).zip(&mut d) {
        let [lo, hi] = h8_to_f32(ld_h(s));
        st(&mut d[..4], lo);
        st(&mut d[4..], hi);
    }
    for (d, &s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = math::f16_to_f32(s);
    }
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn f32_to_f16_neon(src: &[f32], dst: &mut [u16]) {
    let mut s = src.chunks_exact(8);
    let mut d = dst.chunks_exact_mut(8);
    for (s, d) in (&mut s).zip(&mut d) {
        let h = f32x8_to_h(ld(&s[..4]), ld(&s[4..]));
        let d = &mut d[..8];
        // SAFETY: `d` has 8 writable halves; NEON is baseline on AArch64.
        unsafe { vst1q_u16(d.as_mut_ptr(), h) };
    }
    for (d, &s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = math::f32_to_f16(s);
    }
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn rms_norm_neon(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (i, a) in acc.iter_mut().enumerate() {
            let v = ld(&c[4 * i..]);
            *a = vfmaq_f32(*a, v, v);
        }
    }
    let mut ss = hsum(acc);
    for &v in chunks.remainder() {
        ss += v * v;
    }
    let inv = 1.0 / math::sqrt(ss / x.len() as f32 + eps);
    let vinv = vdupq_n_f32(inv);
    let mut o = out.chunks_exact_mut(4);
    let mut xs = x.chunks_exact(4);
    let mut ws = w.chunks_exact(4);
    for ((o, x), w) in (&mut o).zip(&mut xs).zip(&mut ws) {
        st(o, vmulq_f32(vmulq_f32(ld(x), vinv), ld(w)));
    }
    for ((o, &v), &g) in o
        .into_remainder()
        .iter_mut()
        .zip(xs.remainder())
        .zip(ws.remainder())
    {
        *o = v * inv * g;
    }
}

/// `math::exp` on four lanes, bit for bit: the same clamp (a NaN stays
/// NaN), reduction and polynomial, each step a separate IEEE operation.
#[target_feature(enable = "neon")]
#[inline]
fn exp4(x: float32x4_t) -> float32x4_t {
    use exp_consts::*;
    let x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(LO)), vdupq_n_f32(HI));
    let n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(LOG2E)));
    let r = vsubq_f32(x, vmulq_f32(n, vdupq_n_f32(LN2_HI)));
    let r = vsubq_f32(r, vmulq_f32(n, vdupq_n_f32(LN2_LO)));
    let mut p = vdupq_n_f32(P[0]);
    for &c in &P[1..] {
        p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(c));
    }
    let y = vaddq_f32(
        vaddq_f32(vmulq_f32(vmulq_f32(p, r), r), r),
        vdupq_n_f32(1.0),
    );
    let pow2 = vshlq_n_s32::<23>(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)));
    vmulq_f32(y, vreinterpretq_f32_s32(pow2))
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn softmax_neon(x: &mut [f32]) {
    // `maxnm` skips NaN like the scalar `f32::max` fold.
    let mut m = vdupq_n_f32(f32::NEG_INFINITY);
    let mut chunks = x.chunks_exact(4);
    for c in &mut chunks {
        m = vmaxnmq_f32(m, ld(c));
    }
    let mut max = vmaxnmvq_f32(m);
    for &v in chunks.remainder() {
        max = max.max(v);
    }
    let vmax = vdupq_n_f32(max);
    let mut sum = vdupq_n_f32(0.0);
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        let e = exp4(vsubq_f32(ld(c), vmax));
        st(c, e);
        sum = vaddq_f32(sum, e);
    }
    let mut s = vaddvq_f32(sum);
    for v in chunks.into_remainder() {
        *v = math::exp(*v - max);
        s += *v;
    }
    let inv = 1.0 / s;
    let vinv = vdupq_n_f32(inv);
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        st(c, vmulq_f32(ld(c), vinv));
    }
    for v in chunks.into_remainder() {
        *v *= inv;
    }
}

/// `math::exp_f64` on two lanes: the same operations in the same order, no
/// FMA, so the same bits.
#[target_feature(enable = "neon")]
#[inline]
fn exp_f64x2(x: float64x2_t) -> float64x2_t {
    use math::exp_f64_consts::*;
    // `fmax` keeps a NaN, as the scalar clamp does.
    let x = vmaxq_f64(vdupq_n_f64(LO), x);
    let t = vaddq_f64(vmulq_f64(x, vdupq_n_f64(LOG2E)), vdupq_n_f64(SHIFT));
    let n = vsubq_f64(t, vdupq_n_f64(SHIFT));
    let r = vsubq_f64(
        vsubq_f64(x, vmulq_f64(n, vdupq_n_f64(LN2_HI))),
        vmulq_f64(n, vdupq_n_f64(LN2_LO)),
    );
    let mut p = vdupq_n_f64(P[0]);
    for &c in &P[1..] {
        p = vaddq_f64(vmulq_f64(p, r), vdupq_n_f64(c));
    }
    let two_n = vaddq_u64(
        vshlq_n_u64::<52>(vreinterpretq_u64_f64(t)),
        vdupq_n_u64(1023 << 52),
    );
    vmulq_f64(p, vreinterpretq_f64_u64(two_n))
}

/// `acc[k]` holds lanes `2k, 2k + 1` of `math::reduce_f64_lanes`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn softmax_f64acc_neon<const F32_EXP: bool>(x: &mut [f32], scale: f32) {
    // `maxnm` skips NaN like the scalar `f32::max` fold.
    let (vscale, mut m) = (vdupq_n_f32(scale), vdupq_n_f32(f32::NEG_INFINITY));
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        let y = vmulq_f32(ld(c), vscale);
        st(c, y);
        m = vmaxnmq_f32(m, y);
    }
    let mut max = vmaxnmvq_f32(m);
    for v in chunks.into_remainder() {
        *v *= scale;
        max = max.max(*v);
    }

    let vmax = vdupq_n_f32(max);
    let mut acc = [vdupq_n_f64(0.0); 4];
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        for (h, acc) in acc.chunks_exact_mut(2).enumerate() {
            let d = vsubq_f32(ld(&c[4 * h..]), vmax);
            let e = if F32_EXP {
                exp4(d)
            } else {
                let lo = vcvt_f32_f64(exp_f64x2(vcvt_f64_f32(vget_low_f32(d))));
                vcvt_high_f32_f64(lo, exp_f64x2(vcvt_high_f64_f32(d)))
            };
            st(&mut c[4 * h..], e);
            acc[0] = vaddq_f64(acc[0], vcvt_f64_f32(vget_low_f32(e)));
            acc[1] = vaddq_f64(acc[1], vcvt_high_f64_f32(e));
        }
    }
    // (l0 + l4, l1 + l5) + (l2 + l6, l3 + l7), then the two lanes.
    let lanes = vaddvq_f64(vaddq_f64(
        vaddq_f64(acc[0], acc[2]),
        vaddq_f64(acc[1], acc[3]),
    ));
    let sum = scalar::softmax_f64acc_tail::<F32_EXP>(chunks.into_remainder(), max, lanes);

    let vsum = vdupq_n_f32(sum);
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        st(c, vdivq_f32(ld(c), vsum));
    }
    for v in chunks.into_remainder() {
        *v /= sum;
    }
}

/// `(a, b) → (a·c − b·s, a·s + b·c)` on four pairs, each product rounded
/// before the sum (no fused multiply-add), as the scalar path does: RoPE is
/// then bitwise equal on every path.
#[target_feature(enable = "neon")]
#[inline]
fn rotate(a: float32x4_t, b: float32x4_t, c: float32x4_t, s: float32x4_t) -> [float32x4_t; 2] {
    [
        vsubq_f32(vmulq_f32(a, c), vmulq_f32(b, s)),
        vaddq_f32(vmulq_f32(a, s), vmulq_f32(b, c)),
    ]
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn rope_neox_neon(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    let main = half - half % 4;
    for head in x.chunks_exact_mut(head_dim) {
        let (lo, hi) = head.split_at_mut(half);
        for i in (0..main).step_by(4) {
            let [l, h] = rotate(ld(&lo[i..]), ld(&hi[i..]), ld(&cos[i..]), ld(&sin[i..]));
            st(&mut lo[i..], l);
            st(&mut hi[i..], h);
        }
        for i in main..half {
            let (a, b) = (lo[i], hi[i]);
            lo[i] = a * cos[i] - b * sin[i];
            hi[i] = a * sin[i] + b * cos[i];
        }
    }
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn rope_interleaved_neon(
    x: &mut [f32],
    head_dim: usize,
    cos: &[f32],
    sin: &[f32],
) {
    let half = head_dim / 2;
    let main = half - half % 4;
    for head in x.chunks_exact_mut(head_dim) {
        for i in (0..main).step_by(4) {
            let p = &mut head[2 * i..2 * i + 8];
            // SAFETY: `p` has 8 readable floats; NEON is baseline on AArch64.
            let v = unsafe { vld2q_f32(p.as_ptr()) };
            let [a, b] = rotate(v.0, v.1, ld(&cos[i..]), ld(&sin[i..]));
            // SAFETY: `p` has 8 writable floats.
            unsafe { vst2q_f32(p.as_mut_ptr(), float32x4x2_t(a, b)) };
        }
        for i in main..half {
            let (a, b) = (head[2 * i], head[2 * i + 1]);
            head[2 * i] = a * cos[i] - b * sin[i];
            head[2 * i + 1] = a * sin[i] + b * cos[i];
        }
    }
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_f32_neon(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut ac = a.chunks_exact(16);
    let mut bc = b.chunks_exact(16);
    for (a, b) in (&mut ac).zip(&mut bc) {
        for (i, s) in acc.iter_mut().enumerate() {
            *s = vfmaq_f32(*s, ld(&a[4 * i..]), ld(&b[4 * i..]));
        }
    }
    let mut sum = hsum(acc);
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        sum += x * y;
    }
    sum
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_f16_neon(a: &[f32], b: &[u16]) -> f32 {
    let n = a.len().min(b.len());
    dot_f16_rows(&a[..n], [&b[..n]])[0]
}

/// [`dot_f16_neon`] of `x` against `S` rows at once, bit for bit (same four
/// chains, `hsum` and scalar tail per row); each 16 floats of `x` are loaded
/// once for all rows.
#[target_feature(enable = "neon")]
#[inline]
fn dot_f16_rows<const S: usize>(x: &[f32], rows: [&[u16]; S]) -> [f32; S] {
    let k = x.len();
    let main = k - k % 16;
    let mut acc = [[vdupq_n_f32(0.0); 4]; S];
    for j in (0..main).step_by(16) {
        let xv = [
            ld(&x[j..]),
            ld(&x[j + 4..]),
            ld(&x[j + 8..]),
            ld(&x[j + 12..]),
        ];
        for (a, r) in acc.iter_mut().zip(&rows) {
            let [b0, b1] = h8_to_f32(ld_h(&r[j..]));
            let [b2, b3] = h8_to_f32(ld_h(&r[j + 8..]));
            for (c, bc) in [b0, b1, b2, b3].into_iter().enumerate() {
                a[c] = vfmaq_f32(a[c], xv[c], bc);
            }
        }
    }
    // Loops, not `array::map`/`from_fn`, which are not always inlined here.
    let mut out = [0f32; S];
    for ((o, a), r) in out.iter_mut().zip(&acc).zip(&rows) {
        let mut sum = hsum(*a);
        for (x, &y) in x[main..].iter().zip(&r[main..k]) {
            sum += x * math::f16_to_f32(y);
        }
        *o = sum;
    }
    out
}

/// Vectors per group of [`dot_f16_row_multi_neon`]: 4·G accumulators and the
/// four converted halves fit the 32 vector registers.
const F16_MULTI_NEON: usize = 4;

/// [`dot_f16_neon`] of the `G` vectors `xs[t·K ..]` against one row `b`
/// (`K = b.len()`): each 16 halves are converted once for all of them, and
/// every vector keeps the single-vector accumulators, FMA sequence, `hsum`
/// and scalar tail, so `out[t]` equals `dot_f16_neon` of it bit for bit.
#[target_feature(enable = "neon")]
#[inline]
fn dot_f16_group_neon<const G: usize>(xs: &[f32], b: &[u16], out: &mut [f32]) {
    let k = b.len();
    let (xs, out) = (&xs[..G * k], &mut out[..G]);
    let main = k - k % 16;
    let mut acc = [[vdupq_n_f32(0.0); 4]; G];
    for j in (0..main).step_by(16) {
        let [b0, b1] = h8_to_f32(ld_h(&b[j..]));
        let [b2, b3] = h8_to_f32(ld_h(&b[j + 8..]));
        for (t, a) in acc.iter_mut().enumerate() {
            let x = &xs[t * k + j..];
            a[0] = vfmaq_f32(a[0], ld(x), b0);
            a[1] = vfmaq_f32(a[1], ld(&x[4..]), b1);
            a[2] = vfmaq_f32(a[2], ld(&x[8..]), b2);
            a[3] = vfmaq_f32(a[3], ld(&x[12..]), b3);
        }
    }
    for (t, (a, o)) in acc.iter().zip(out.iter_mut()).enumerate() {
        let mut sum = hsum(*a);
        for (x, &y) in xs[t * k + main..(t + 1) * k].iter().zip(&b[main..]) {
            sum += x * math::f16_to_f32(y);
        }
        *o = sum;
    }
}

/// See `Table::dot_f16_multi`: row by row.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_f16_multi_neon(xs: &[f32], w: &[u16], k: usize, out: &mut [f32]) {
    // SAFETY: forwarded from our caller; NEON is baseline on AArch64.
    unsafe { dot_f16_multi_rows_with(dot_f16_row_multi_neon, xs, w, k, out) }
}

/// One row against every vector, in groups of [`F16_MULTI_NEON`].
#[target_feature(enable = "neon")]
unsafe fn dot_f16_row_multi_neon(xs: &[f32], b: &[u16], out: &mut [f32]) {
    const G: usize = F16_MULTI_NEON;
    let (k, n) = (b.len(), out.len());
    let mut t = 0;
    while n - t >= G {
        dot_f16_group_neon::<G>(&xs[t * k..], b, &mut out[t..]);
        t += G;
    }
    let (x, o) = (&xs[t * k..], &mut out[t..]);
    match n - t {
        0 => {}
        1 => dot_f16_group_neon::<1>(x, b, o),
        2 => dot_f16_group_neon::<2>(x, b, o),
        _ => dot_f16_group_neon::<3>(x, b, o),
    }
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn axpy_f32_neon(alpha: f32, x: &[f32], y: &mut [f32]) {
    let va = vdupq_n_f32(alpha);
    let mut xs = x.chunks_exact(4);
    let mut ys = y.chunks_exact_mut(4);
    for (x, y) in (&mut xs).zip(&mut ys) {
        st(y, vfmaq_f32(ld(y), ld(x), va));
    }
    for (o, &v) in ys.into_remainder().iter_mut().zip(xs.remainder()) {
        *o += alpha * v;
    }
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn axpy_f16_neon(alpha: f32, x: &[u16], y: &mut [f32]) {
    let va = vdupq_n_f32(alpha);
    let mut xs = x.chunks_exact(8);
    let mut ys = y.chunks_exact_mut(8);
    for (x, y) in (&mut xs).zip(&mut ys) {
        let [lo, hi] = h8_to_f32(ld_h(x));
        st(y, vfmaq_f32(ld(y), lo, va));
        let y_hi = vfmaq_f32(ld(&y[4..]), hi, va);
        st(&mut y[4..], y_hi);
    }
    for (o, &v) in ys.into_remainder().iter_mut().zip(xs.remainder()) {
        *o += alpha * math::f16_to_f32(v);
    }
}

/// Rows in [`GEMV_STREAMS`](crate::arch::GEMV_STREAMS) far-apart streams
/// (see there for why), each row as [`dot_f16_neon`] computes it.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn gemv_f16_neon(
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
        |rs| dot_f16_rows(x, rs),
        |r| dot_f16_rows(x, [r])[0],
    );
}

/// A row's two chains after one more Q8_0 block (`block`: the f16 scale
/// `d`, then 32 × i8 `q`; `x`: its 32 activations): the weights `d·q`,
/// exact in f32 (at most 19 significant bits), go four at a time into the
/// chains in turn.
#[target_feature(enable = "neon")]
#[inline]
fn q8_fma(acc: &mut [float32x4_t; 2], block: &[u8], x: &[f32]) {
    let d = math::f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
    let q = &block[2..2 + Q8_0_BLOCK];
    let x = &x[..Q8_0_BLOCK];
    // SAFETY: `q` has 32 readable bytes; NEON is baseline on AArch64.
    let (q0, q1) = unsafe {
        let p = q.as_ptr() as *const i8;
        (vld1q_s8(p), vld1q_s8(p.add(16)))
    };
    for (h, v) in [q0, q1].into_iter().enumerate() {
        for (j, w) in [vmovl_s8(vget_low_s8(v)), vmovl_high_s8(v)]
            .into_iter()
            .enumerate()
        {
            let base = 16 * h + 8 * j;
            let lo = vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(w))), d);
            let hi = vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(w)), d);
            acc[0] = vfmaq_f32(acc[0], lo, ld(&x[base..]));
            acc[1] = vfmaq_f32(acc[1], hi, ld(&x[base + 4..]));
        }
    }
}

/// `Σ_blocks Σ (d·q)·x` of `x` against `S` Q8_0 rows, one block of every
/// row in turn, two chains per row ([`q8_fma`]).
#[target_feature(enable = "neon")]
#[inline]
fn dot_q8_0_rows<const S: usize>(x: &[f32], rows: [&[u8]; S]) -> [f32; S] {
    let mut acc = [[vdupq_n_f32(0.0); 2]; S];
    for (i, xs) in x.chunks_exact(Q8_0_BLOCK).enumerate() {
        for (a, r) in acc.iter_mut().zip(&rows) {
            q8_fma(a, &r[i * Q8_0_BLOCK_BYTES..(i + 1) * Q8_0_BLOCK_BYTES], xs);
        }
    }
    let mut out = [0f32; S];
    for (o, a) in out.iter_mut().zip(&acc) {
        *o = vaddvq_f32(vaddq_f32(a[0], a[1]));
    }
    out
}

/// Far-apart row streams as in [`gemv_f16_neon`].
#[target_feature(enable = "neon")]
pub(crate) unsafe fn gemv_q8_0_neon(
    w: &[u8],
    k: usize,
    x: &[f32],
    rows: Range<usize>,
    y: &mut [f32],
) {
    let row_bytes = k / Q8_0_BLOCK * Q8_0_BLOCK_BYTES;
    let x = &x[..k / Q8_0_BLOCK * Q8_0_BLOCK];
    gemv_in_streams(
        w,
        row_bytes,
        rows,
        y,
        |rs| dot_q8_0_rows(x, rs),
        |r| dot_q8_0_rows(x, [r])[0],
    );
}

/// See `Table::dot_q8_0_multi`: the GEMV per row and vector.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_q8_0_multi_neon(xs: &[f32], w: &[u8], k: usize, out: &mut [f32]) {
    // SAFETY: forwarded from our caller.
    unsafe { dot_multi_with(gemv_q8_0_neon, xs, k, w, k, out) }
}

// f64-accumulated dot and axpy (attention): f32 × f32 is exact in f64, so
// FMA equals multiply-then-add and only the dot's summation order differs.

/// The attention kernels' loads of a key or value row ([`KvElem`]): 8
/// elements as two f32 vectors.
pub(crate) trait KvLoad: KvElem {
    /// The element whose widening is +0.
    const ZERO: Self;
    fn load8(row: &[Self]) -> [float32x4_t; 2];
}

impl KvLoad for f32 {
    const ZERO: f32 = 0.0;
    #[inline(always)]
    fn load8(row: &[f32]) -> [float32x4_t; 2] {
        // SAFETY: NEON is baseline on AArch64.
        unsafe { [ld(row), ld(&row[4..8])] }
    }
}

impl KvLoad for u16 {
    const ZERO: u16 = 0;
    #[inline(always)]
    fn load8(row: &[u16]) -> [float32x4_t; 2] {
        // SAFETY: NEON is baseline on AArch64.
        unsafe { h8_to_f32(ld_h(row)) }
    }
}

/// Four pairs of lanes, joined in `math::reduce_f64_lanes`' order.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_f64acc_neon<E: KvLoad>(a: &[f32], b: &[E]) -> f32 {
    let n = a.len().min(b.len());
    let mut acc = [vdupq_n_f64(0.0); 4];
    let main = n - n % 8;
    for (x, y) in a[..main].chunks_exact(8).zip(b[..main].chunks_exact(8)) {
        let y = E::load8(y);
        for (half, (x, y)) in [(ld(x), y[0]), (ld(&x[4..]), y[1])].into_iter().enumerate() {
            let lo = vfmaq_f64(
                acc[2 * half],
                vcvt_f64_f32(vget_low_f32(x)),
                vcvt_f64_f32(vget_low_f32(y)),
            );
            acc[2 * half] = lo;
            acc[2 * half + 1] = vfmaq_f64(
                acc[2 * half + 1],
                vcvt_high_f64_f32(x),
                vcvt_high_f64_f32(y),
            );
        }
    }
    // (l0 + l4, l1 + l5) + (l2 + l6, l3 + l7), then the two lanes.
    let mut s = vaddvq_f64(vaddq_f64(
        vaddq_f64(acc[0], acc[2]),
        vaddq_f64(acc[1], acc[3]),
    ));
    for j in main..n {
        s += a[j] as f64 * b[j].to_f32() as f64;
    }
    s as f32
}

/// 8 elements per step, then one by one: each accumulator takes one exact
/// product, so the step width does not change a bit.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn axpy_f64acc_neon<E: KvLoad>(alpha: f32, x: &[E], acc: &mut [f64]) {
    let n = x.len().min(acc.len());
    let va = vdupq_n_f64(alpha as f64);
    let main = n - n % 8;
    for (v, o) in x[..main]
        .chunks_exact(8)
        .zip(acc[..main].chunks_exact_mut(8))
    {
        for (w, o) in E::load8(v).into_iter().zip(o.chunks_exact_mut(4)) {
            let halves = [vcvt_f64_f32(vget_low_f32(w)), vcvt_high_f64_f32(w)];
            for (w, o) in halves.into_iter().zip(o.chunks_exact_mut(2)) {
                // SAFETY: `o` holds exactly 2 elements.
                unsafe { vst1q_f64(o.as_mut_ptr(), vfmaq_f64(vld1q_f64(o.as_ptr()), va, w)) };
            }
        }
    }
    for j in main..n {
        acc[j] += alpha as f64 * x[j].to_f32() as f64;
    }
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_f64acc_rows_neon<E: KvLoad>(q: &[f32], keys: &[E], out: &mut [f32]) {
    // SAFETY: same contract as ours; NEON is present.
    unsafe { crate::arch::dot_f64acc_rows_with(dot_f64acc_neon::<E>, q, keys, out) }
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn weighted_sum_f64acc_neon<E: KvLoad>(p: &[f32], values: &[E], acc: &mut [f64]) {
    // SAFETY: same contract as ours; NEON is present.
    unsafe { crate::arch::weighted_sum_f64acc_with(axpy_f64acc_neon::<E>, p, values, acc) }
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_f64acc_queries_neon<E: KvLoad>(
    qs: &[f32],
    keys: &[E],
    k: usize,
    out: &mut [f32],
) {
    // SAFETY: same contract as ours; NEON is present.
    unsafe { crate::arch::dot_f64acc_queries_with(dot_f64acc_rows_neon::<E>, qs, keys, k, out) }
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn weighted_sum_f64acc_queries_neon<E: KvLoad>(
    ps: &[f32],
    values: &[E],
    k: usize,
    accs: &mut [f64],
) {
    // SAFETY: same contract as ours; NEON is present.
    unsafe {
        crate::arch::weighted_sum_f64acc_queries_with(
            weighted_sum_f64acc_neon::<E>,
            ps,
            values,
            k,
            accs,
        )
    }
}

// Attention over an f16 KV cache: f32 FMA chains in the order that
// `Table::dot_f32acc_queries_f16` and `Table::weighted_sum_f32acc_queries_f16`
// define, so every path gives the scalar bits.

/// The 16 elements of `row` (at most 16; zeros past its end) as four vectors.
#[inline(always)]
fn load16<E: KvLoad>(row: &[E]) -> [float32x4_t; 4] {
    let mut buf = [E::ZERO; 16];
    let row = if row.len() == 16 {
        row
    } else {
        buf[..row.len()].copy_from_slice(row);
        &buf
    };
    let (a, b) = (E::load8(&row[..8]), E::load8(&row[8..]));
    [a[0], a[1], b[0], b[1]]
}

/// One pair's 16 lanes (four vectors of 4) joined as
/// `math::reduce_f32_lanes` joins them.
#[target_feature(enable = "neon")]
#[inline]
fn join_lanes_neon(a: [float32x4_t; 4]) -> f32 {
    let v = vaddq_f32(vaddq_f32(a[0], a[2]), vaddq_f32(a[1], a[3]));
    vpadds_f32(vadd_f32(vget_low_f32(v), vget_high_f32(v)))
}

/// One chunk (`span`, at most 16 elements, zeros after) of
/// [`dot_f32acc_tile_neon`]'s chains.
#[target_feature(enable = "neon")]
#[inline]
fn dot_f32acc_step_neon<E: KvLoad, const G: usize, const R: usize>(
    acc: &mut [[[float32x4_t; 4]; R]; G],
    qs: [&[f32]; G],
    keys: [&[E]; R],
    span: Range<usize>,
) {
    let mut kv = [[vdupq_n_f32(0.0); 4]; R];
    for (v, key) in kv.iter_mut().zip(&keys) {
        *v = load16(&key[span.clone()]);
    }
    for (a, q) in acc.iter_mut().zip(&qs) {
        let x = load16(&q[span.clone()]);
        for (a, v) in a.iter_mut().zip(&kv) {
            for l in 0..4 {
                a[l] = vfmaq_f32(a[l], x[l], v[l]);
            }
        }
    }
}

/// The attention dots of `G` queries × `R` keys (each at most 2, the rows
/// `k` long), four chains per pair: `out[g][r]`. Each 16 elements of a key
/// are widened once for all queries.
#[target_feature(enable = "neon")]
#[inline]
fn dot_f32acc_tile_neon<E: KvLoad, const G: usize, const R: usize>(
    qs: [&[f32]; G],
    keys: [&[E]; R],
    k: usize,
) -> [[f32; 2]; 2] {
    let mut acc = [[[vdupq_n_f32(0.0); 4]; R]; G];
    // Whole chunks (their slices are 16 long, so `load16` copies nothing),
    // then the zero-padded tail once.
    let mut i = 0;
    while i + 16 <= k {
        dot_f32acc_step_neon(&mut acc, qs, keys, i..i + 16);
        i += 16;
    }
    if i < k {
        dot_f32acc_step_neon(&mut acc, qs, keys, i..k);
    }
    let mut out = [[0f32; 2]; 2];
    for (o, a) in out.iter_mut().zip(&acc) {
        for (o, a) in o.iter_mut().zip(a) {
            *o = join_lanes_neon(*a);
        }
    }
    out
}

/// The dots of `G` queries against every key: `out` holds G rows of one
/// score per key.
#[target_feature(enable = "neon")]
#[inline]
fn dot_f32acc_group_neon<E: KvLoad, const G: usize>(
    qs: [&[f32]; G],
    keys: &[E],
    k: usize,
    out: &mut [f32],
) {
    let n = keys.len() / k;
    let key = |j: usize| &keys[j * k..(j + 1) * k];
    let mut j = 0;
    while j < n {
        let (t, r) = if j + 2 <= n {
            (dot_f32acc_tile_neon(qs, [key(j), key(j + 1)], k), 2)
        } else {
            (dot_f32acc_tile_neon(qs, [key(j)], k), 1)
        };
        for (o, t) in out.chunks_exact_mut(n).zip(&t) {
            o[j..j + r].copy_from_slice(&t[..r]);
        }
        j += r;
    }
}

/// See `Table::dot_f32acc_queries_f16`: tiles of up to 2 queries × 2 keys, 16 chains.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_f32acc_queries_neon<E: KvLoad>(
    qs: &[f32],
    keys: &[E],
    k: usize,
    out: &mut [f32],
) {
    let n = keys.len() / k;
    if n == 0 {
        return;
    }
    let q = |g: usize| &qs[g * k..(g + 1) * k];
    let queries = qs.len() / k;
    let mut g = 0;
    while g + 2 <= queries {
        dot_f32acc_group_neon([q(g), q(g + 1)], keys, k, &mut out[g * n..(g + 2) * n]);
        g += 2;
    }
    if g < queries {
        dot_f32acc_group_neon([q(g)], keys, k, &mut out[g * n..(g + 1) * n]);
    }
}

/// `accs[g·k + c ..][..4·C] = fma(ps[g][j], values[j][c ..], ·)` over the
/// rows `j` in order, for `G` queries × `C` vectors of 4 columns (`C` even,
/// `c + 4·C ≤ k`) held in registers over every row; each 8 elements of a
/// value row are widened once for all queries.
#[target_feature(enable = "neon")]
#[inline]
fn weighted_sum_f32acc_tile_neon<E: KvLoad, const G: usize, const C: usize>(
    ps: [&[f32]; G],
    values: &[E],
    k: usize,
    c: usize,
    accs: &mut [f32],
) {
    let mut s = [[vdupq_n_f32(0.0); C]; G];
    for (g, s) in s.iter_mut().enumerate() {
        for (u, s) in s.iter_mut().enumerate() {
            *s = ld(&accs[g * k + c + 4 * u..]);
        }
    }
    for (j, row) in values.chunks_exact(k).enumerate() {
        let mut v = [vdupq_n_f32(0.0); C];
        for (h, v) in v.chunks_exact_mut(2).enumerate() {
            let w = E::load8(&row[c + 8 * h..c + 8 * h + 8]);
            v.copy_from_slice(&w);
        }
        for (s, p) in s.iter_mut().zip(&ps) {
            let a = vdupq_n_f32(p[j]);
            for (s, v) in s.iter_mut().zip(&v) {
                *s = vfmaq_f32(*s, a, *v);
            }
        }
    }
    for (g, s) in s.iter().enumerate() {
        for (u, s) in s.iter().enumerate() {
            st(&mut accs[g * k + c + 4 * u..], *s);
        }
    }
}

/// `weighted_sum_f32acc_queries_f16` of `G` queries into `accs` (G rows of `k`): 16
/// columns per pass, then 8, then the rest one by one.
#[target_feature(enable = "neon")]
#[inline]
fn weighted_sum_f32acc_group_neon<E: KvLoad, const G: usize>(
    ps: [&[f32]; G],
    values: &[E],
    k: usize,
    accs: &mut [f32],
) {
    let mut c = 0;
    while c + 16 <= k {
        weighted_sum_f32acc_tile_neon::<E, G, 4>(ps, values, k, c, accs);
        c += 16;
    }
    if c + 8 <= k {
        weighted_sum_f32acc_tile_neon::<E, G, 2>(ps, values, k, c, accs);
        c += 8;
    }
    if c < k {
        for (p, acc) in ps.iter().zip(accs.chunks_exact_mut(k)) {
            for (&p, row) in p.iter().zip(values.chunks_exact(k)) {
                scalar::weighted_row(p, &row[c..], &mut acc[c..]);
            }
        }
    }
}

/// See `Table::weighted_sum_f32acc_queries_f16`: tiles of up to 4 queries × 16
/// columns (16 chains, 4 widened value vectors).
#[target_feature(enable = "neon")]
pub(crate) unsafe fn weighted_sum_f32acc_queries_neon<E: KvLoad>(
    ps: &[f32],
    values: &[E],
    k: usize,
    accs: &mut [f32],
) {
    let (queries, n) = (accs.len() / k, values.len() / k);
    let p = |g: usize| &ps[g * n..(g + 1) * n];
    let mut g = 0;
    while g < queries {
        let accs = &mut accs[g * k..];
        let step = match queries - g {
            1 => {
                weighted_sum_f32acc_group_neon([p(g)], values, k, &mut accs[..k]);
                1
            }
            2 => {
                weighted_sum_f32acc_group_neon([p(g), p(g + 1)], values, k, &mut accs[..2 * k]);
                2
            }
            3 => {
                let ps = [p(g), p(g + 1), p(g + 2)];
                weighted_sum_f32acc_group_neon(ps, values, k, &mut accs[..3 * k]);
                3
            }
            _ => {
                let ps = [p(g), p(g + 1), p(g + 2), p(g + 3)];
                weighted_sum_f32acc_group_neon(ps, values, k, &mut accs[..4 * k]);
                4
            }
        };
        g += step;
    }
}

#[cfg(test)]
mod tests {
    //! NEON against the scalar reference (bit for bit for the conversions,
    //! to a tolerance elsewhere). Run under qemu by `.ci/test-aarch64`.
    extern crate std;
    use super::*;
    use crate::arch::scalar;
    use std::vec::Vec;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn f32(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
        fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
            (0..n).map(|_| self.f32() * scale).collect()
        }
        fn halves(&mut self, n: usize) -> Vec<u16> {
            (0..n).map(|_| math::f32_to_f16(self.f32() * 4.0)).collect()
        }
    }

    #[test]
    fn exp4_is_the_scalar_bits() {
        let xs = math::tests::exp_probes();
        let mut got = std::vec![0f32; xs.len()];
        for (c, g) in xs.chunks_exact(4).zip(got.chunks_exact_mut(4)) {
            // SAFETY: NEON is baseline; `c` and `g` hold 4 values each.
            unsafe { vst1q_f32(g.as_mut_ptr(), exp4(vld1q_f32(c.as_ptr()))) };
        }
        math::tests::check_exp(&xs, &got);
    }

    #[test]
    fn exp_f64x2_is_the_scalar_bits() {
        for c in math::tests::exp_f64_probes().chunks_exact(2) {
            let mut got = [0f64; 2];
            // SAFETY: `c` and `got` hold 2 values each; NEON is baseline.
            unsafe { vst1q_f64(got.as_mut_ptr(), exp_f64x2(vld1q_f64(c.as_ptr()))) };
            math::tests::check_exp_f64(c, &got);
        }
    }

    fn close(got: f32, want: f32, tol: f32, what: &str) {
        assert!(
            (got - want).abs() <= tol * (1.0 + want.abs()),
            "{what}: got {got}, want {want}"
        );
    }

    fn close_all(got: &[f32], want: &[f32], tol: f32, what: &str) {
        assert_eq!(got.len(), want.len());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            close(g, w, tol, &std::format!("{what}[{i}]"));
        }
    }

    const LENS: [usize; 9] = [1, 3, 7, 8, 15, 16, 33, 100, 1027];

    #[test]
    fn f16_to_f32_every_half() {
        let src: Vec<u16> = (0..=u16::MAX).collect();
        let mut got = std::vec![0.0f32; src.len()];
        // SAFETY: NEON is baseline; lengths match.
        unsafe { f16_to_f32_neon(&src, &mut got) };
        for (&h, g) in src.iter().zip(&got) {
            let want = math::f16_to_f32(h);
            if want.is_nan() {
                // Signalling NaNs come out quiet; sign and payload stay.
                assert_eq!(g.to_bits(), want.to_bits() | 0x0040_0000, "h = {h:#06x}");
            } else {
                assert_eq!(g.to_bits(), want.to_bits(), "h = {h:#06x}");
            }
        }
    }

    #[test]
    fn f32_to_f16_matches_scalar() {
        let mut bits: Vec<u32> = (0..=u32::MAX).step_by(4099).collect();
        // Every rounding boundary of every half: the midpoint and its neighbours.
        for h in 0..0x7bffu32 {
            let mid =
                (math::f16_to_f32(h as u16) as f64 + math::f16_to_f32(h as u16 + 1) as f64) / 2.0;
            let m = (mid as f32).to_bits();
            for b in [m - 1, m, m + 1] {
                bits.extend([b, b | 0x8000_0000]);
            }
        }
        bits.extend([
            0x7f80_0000,
            0xff80_0000,
            0x7fc0_0000,
            0x7f80_0001,
            0xffff_ffff,
            0x477f_f000,
        ]);
        let src: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let mut got = std::vec![0u16; src.len()];
        // SAFETY: NEON is baseline; lengths match.
        unsafe { f32_to_f16_neon(&src, &mut got) };
        for (&x, &g) in src.iter().zip(&got) {
            assert_eq!(g, math::f32_to_f16(x), "x = {x:e} ({:#010x})", x.to_bits());
        }
    }

    #[test]
    fn reductions_and_maps_match_scalar() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for n in LENS {
            let (a, b) = (rng.vec(n, 3.0), rng.vec(n, 3.0));
            let h = rng.halves(n);
            // SAFETY: NEON is baseline; lengths match (all calls below).
            unsafe {
                close(
                    dot_f32_neon(&a, &b),
                    scalar::dot_f32(&a, &b),
                    1e-5,
                    "dot_f32",
                );
                close(
                    dot_f16_neon(&a, &h),
                    scalar::dot_f16(&a, &h),
                    1e-5,
                    "dot_f16",
                );

                let (mut y1, mut y2) = (b.clone(), b.clone());
                axpy_f32_neon(0.7, &a, &mut y1);
                scalar::axpy_f32(0.7, &a, &mut y2);
                close_all(&y1, &y2, 1e-6, "axpy_f32");
                let (mut y1, mut y2) = (b.clone(), b.clone());
                axpy_f16_neon(-1.3, &h, &mut y1);
                scalar::axpy_f16(-1.3, &h, &mut y2);
                close_all(&y1, &y2, 1e-6, "axpy_f16");

                let (mut o1, mut o2) = (std::vec![0.0; n], std::vec![0.0; n]);
                rms_norm_neon(&a, &b, 1e-6, &mut o1);
                scalar::rms_norm(&a, &b, 1e-6, &mut o2);
                close_all(&o1, &o2, 1e-5, "rms_norm");

                let logits: Vec<f32> = a.iter().map(|v| v * 30.0).collect();
                let (mut s1, mut s2) = (logits.clone(), logits.clone());
                softmax_neon(&mut s1);
                scalar::softmax(&mut s2);
                close_all(&s1, &s2, 1e-6, "softmax");
                close(s1.iter().sum(), 1.0, 1e-5, "softmax sum");
            }
        }
    }

    #[test]
    fn exp_matches_scalar() {
        let mut x = -100.0f32;
        while x < 89.0 {
            let v: [f32; 4] = [x, x + 0.01, x + 0.02, x + 0.03];
            let mut e = [0.0f32; 4];
            // SAFETY: NEON is baseline on AArch64.
            unsafe { st(&mut e, exp4(ld(&v))) };
            for (g, &x) in e.iter().zip(&v) {
                let want = math::exp(x);
                assert!(
                    (g - want).abs() <= 2.0 * f32::EPSILON * want,
                    "exp({x}) = {g}, want {want}"
                );
            }
            x += 0.137;
        }
    }

    #[test]
    fn rope_matches_scalar() {
        let mut rng = Rng(77);
        for head_dim in [2usize, 6, 8, 16, 64, 128, 130] {
            let half = head_dim / 2;
            let x = rng.vec(head_dim * 3, 2.0);
            let ang = rng.vec(half, 3.0);
            let cos: Vec<f32> = ang.iter().map(|a| a.cos()).collect();
            let sin: Vec<f32> = ang.iter().map(|a| a.sin()).collect();
            // SAFETY: NEON is baseline; shapes are valid.
            unsafe {
                let (mut a, mut b) = (x.clone(), x.clone());
                rope_neox_neon(&mut a, head_dim, &cos, &sin);
                scalar::rope_neox(&mut b, head_dim, &cos, &sin);
                close_all(&a, &b, 1e-6, "rope_neox");
                let (mut a, mut b) = (x.clone(), x.clone());
                rope_interleaved_neon(&mut a, head_dim, &cos, &sin);
                scalar::rope_interleaved(&mut b, head_dim, &cos, &sin);
                close_all(&a, &b, 1e-6, "rope_interleaved");
            }
        }
    }

    #[test]
    fn gemv_matches_scalar() {
        let mut rng = Rng(99);
        for (m, k) in [
            (1usize, 1usize),
            (5, 7),
            (9, 64),
            (13, 96),
            (4, 1000),
            (11, 2048),
        ] {
            let x = rng.vec(k, 1.0);
            let w = rng.halves(m * k);
            for rows in [0..m, m / 3..m, 1.min(m)..m / 2 + 1] {
                let (mut a, mut b) = (std::vec![0.0; rows.len()], std::vec![0.0; rows.len()]);
                // SAFETY: NEON is baseline; shapes are valid.
                unsafe {
                    gemv_f16_neon(&w, k, &x, rows.clone(), &mut a);
                    scalar::gemv_f16(&w, k, &x, rows.clone(), &mut b);
                }
                close_all(&a, &b, 1e-5, "gemv_f16");
            }
            if k % Q8_0_BLOCK != 0 {
                continue;
            }
            let mut q8 = Vec::new();
            for _ in 0..m * k / Q8_0_BLOCK {
                q8.extend(math::f32_to_f16(rng.f32() * 0.1).to_le_bytes());
                q8.extend((0..Q8_0_BLOCK).map(|_| rng.next() as u8));
            }
            let (mut a, mut b) = (std::vec![0.0; m], std::vec![0.0; m]);
            // SAFETY: NEON is baseline; shapes are valid.
            unsafe {
                gemv_q8_0_neon(&q8, k, &x, 0..m, &mut a);
                scalar::gemv_q8_0(&q8, k, &x, 0..m, &mut b);
            }
            close_all(&a, &b, 1e-4, "gemv_q8_0");
        }
    }
}
