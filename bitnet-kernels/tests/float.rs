//! Every float helper path against the scalar reference, and the scalar
//! reference against f64 math from the definitions.
//!
//! The f16 conversions must agree bit for bit (NaN only has to stay NaN with
//! its sign). Everything else may differ by rounding, because SIMD paths sum
//! in a different order and fuse multiply-adds; the tolerances are worst-case
//! error bounds, with `u = 2⁻²⁴` the f32 unit roundoff and
//! `γₙ = n·u / (1 − n·u)`:
//!
//! * sums of `n` products (`dot_*`, `gemv_*`): any evaluation order with at
//!   most `n` roundings per term lies within `γₙ·Σ|terms|` of the exact sum,
//!   so two paths lie within `2γₙ·Σ|terms|`, plus a few `2⁻¹⁴⁹` per term
//!   for products that underflow.
//! * `axpy`: `y + α·x` rounds twice (scalar) or once (FMA): `4u·(|y| + |α·x|)`.
//! * RoPE: `a·c ∓ b·s` rounds at most three times: `4u·(|a·c| + |b·s|)`.
//! * `rms_norm`: `Σx²` of `n` non-negative terms has relative error `≤ γₙ`,
//!   which the square root halves; mean, `+ eps`, sqrt, divide and the two
//!   output products add `6u`: relative `(n + 12)·u` between paths.
//! * `softmax`: both paths see the same `x − max` (exact max, one rounding);
//!   the two `exp` implementations share one polynomial and differ by at most
//!   `8u` relative (FMA vs separate roundings); the `n`-term positive sum adds
//!   `γₙ` per path and the reciprocal and product `2u`: `(2n + 12)·u`.
//!   Against f64, rounding `x − max` shifts each `exp` by `|x − max|·u`
//!   relative (≤ 88u once clamped), in the element and in the sum. Rows sum
//!   to 1 within 1e-5 (the sequential scalar sum only within `γₙ`).
//!
//! Underflowing results get an absolute slack of a few `2⁻¹⁴⁹` (one
//! `f32::MIN_POSITIVE` for softmax, whose `exp` flushes below `e^-87.3`).

mod common;

use bitnet_kernels::float::{Q8_0_BLOCK, Q8_0_BLOCK_BYTES};
use bitnet_kernels::{Dispatch, Error};
use common::{paths, scalar, TestRng, Unaligned};
use proptest::prelude::*;

/// f32 unit roundoff.
const U: f64 = f32::EPSILON as f64 / 2.0;
/// The smallest positive f32 (2⁻¹⁴⁹).
const TINY: f64 = 1.401_298_464_324_817e-45;

fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

// ---------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------

/// What a test fills an f32 buffer with.
#[derive(Debug, Clone, Copy)]
enum Vals {
    /// Uniform in [-1, 1): typical activations.
    Unit,
    /// Random sign and mantissa, exponent in [-40, 40].
    Wide,
    /// Wide values mixed with ±0, subnormals, tiny normals and 2^20..2^40.
    Special,
}

fn vals() -> impl Strategy<Value = Vals> {
    prop_oneof![Just(Vals::Unit), Just(Vals::Wide), Just(Vals::Special)]
}

/// Lengths biased towards the small and odd ones where tails live.
fn len(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![0..=40usize, 0..=max]
}

fn signed(rng: &mut TestRng, v: f32) -> f32 {
    if rng.below(2) == 0 {
        v
    } else {
        -v
    }
}

fn wide(rng: &mut TestRng, lo: i32, hi: i32) -> f32 {
    let m = 1.0 + (rng.next() >> 41) as f32 / (1u64 << 23) as f32;
    let e = lo + rng.below((hi - lo + 1) as u64) as i32;
    signed(rng, m * 2f32.powi(e))
}

fn f32_val(rng: &mut TestRng, kind: Vals) -> f32 {
    match kind {
        Vals::Unit => rng.f32(),
        Vals::Wide => wide(rng, -40, 40),
        Vals::Special => match rng.below(10) {
            0 => 0.0,
            1 => -0.0,
            2 => {
                let sub = f32::from_bits(1 + rng.below(0x7f_ffff) as u32);
                signed(rng, sub)
            }
            3 => wide(rng, -126, -100),
            4 => wide(rng, 20, 40),
            _ => wide(rng, -40, 40),
        },
    }
}

fn f32s(rng: &mut TestRng, n: usize, kind: Vals) -> Vec<f32> {
    (0..n).map(|_| f32_val(rng, kind)).collect()
}

/// Finite f16 bits: any finite half for `Wide`, with ±0, subnormals and
/// ±65504 over-represented for `Special`, rounded unit values for `Unit`.
fn half_val(rng: &mut TestRng, kind: Vals) -> u16 {
    let sign = (rng.below(2) as u16) << 15;
    match kind {
        Vals::Unit => f16_bits(rng.f32()),
        Vals::Special if rng.below(2) == 0 => {
            sign | match rng.below(4) {
                0 => 0,
                1 => 1 + rng.below(0x3ff) as u16,
                2 => 0x7bff,
                _ => 0x0400,
            }
        }
        _ => loop {
            let h = rng.next() as u16;
            if h & 0x7c00 != 0x7c00 {
                break h;
            }
        },
    }
}

/// `blocks` Q8_0 blocks: scales of `kind`, random int8 weights.
fn q8_0_rows(rng: &mut TestRng, blocks: usize, kind: Vals) -> Vec<u8> {
    let mut w = vec![0u8; blocks * Q8_0_BLOCK_BYTES];
    for block in w.chunks_exact_mut(Q8_0_BLOCK_BYTES) {
        block[..2].copy_from_slice(&half_val(rng, kind).to_le_bytes());
        for q in &mut block[2..] {
            *q = rng.next() as u8;
        }
    }
    w
}

fn halves(rng: &mut TestRng, n: usize, kind: Vals) -> Vec<u16> {
    (0..n).map(|_| half_val(rng, kind)).collect()
}

fn f16_bits(v: f32) -> u16 {
    let mut h = [0u16];
    scalar().f32_to_f16(&[v], &mut h).unwrap();
    h[0]
}

fn f16_val(h: u16) -> f32 {
    let mut v = [0f32];
    scalar().f16_to_f32(&[h], &mut v).unwrap();
    v[0]
}

/// `got` equals `want`, or both are NaN, or they differ by at most `tol`.
fn close(what: &str, i: usize, got: f32, want: f32, tol: f64) -> Result<(), TestCaseError> {
    let ok = got.to_bits() == want.to_bits()
        || (got.is_nan() && want.is_nan())
        || (got as f64 - want as f64).abs() <= tol;
    prop_assert!(
        ok,
        "{what}[{i}]: got {got:e}, want {want:e}: |diff| {:e} > tol {tol:e}",
        (got as f64 - want as f64).abs()
    );
    Ok(())
}

fn close64(what: &str, i: usize, got: f32, want: f64, tol: f64) -> Result<(), TestCaseError> {
    prop_assert!(
        (got as f64 - want).abs() <= tol,
        "{what}[{i}]: got {got:e}, f64 says {want:e}: |diff| {:e} > tol {tol:e}",
        (got as f64 - want).abs()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// f16 conversions: bit for bit
// ---------------------------------------------------------------------------

/// The value of half `h` from the IEEE 754 definition.
fn half_from_definition(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let e = ((h >> 10) & 0x1f) as i32;
    let m = (h & 0x3ff) as f64;
    sign * match e {
        0 => m * 2f64.powi(-24),
        0x1f if m == 0.0 => f64::INFINITY,
        0x1f => f64::NAN,
        _ => (1.0 + m / 1024.0) * 2f64.powi(e - 15),
    }
}

/// `x` rounded to the nearest half (ties to even) from the definition, as
/// f64; ±inf beyond the largest finite half.
fn round_to_half(x: f32) -> f64 {
    if x.is_infinite() {
        return x as f64;
    }
    // Spacing of halves around |x|: 2^(e − 10) in binade e ≥ −14, else 2^−24.
    let e = (((x.to_bits() >> 23) & 0xff) as i32 - 127).max(-14);
    let ulp = 2f64.powi(e - 10);
    let a = x.abs() as f64;
    let r = (a / ulp).round_ties_even() * ulp;
    let r = if r > 65504.0 { f64::INFINITY } else { r };
    r.copysign(x as f64)
}

fn same_half(got: u16, want: u16) -> bool {
    let nan = |h: u16| h & 0x7c00 == 0x7c00 && h & 0x3ff != 0;
    got == want || (nan(got) && nan(want) && got & 0x8000 == want & 0x8000)
}

fn same_f32(got: f32, want: f32) -> bool {
    got.to_bits() == want.to_bits()
        || (got.is_nan() && want.is_nan() && got.is_sign_negative() == want.is_sign_negative())
}

#[test]
fn f16_to_f32_every_half_every_path() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let mut want = vec![0f32; all.len()];
    scalar().f16_to_f32(&all, &mut want).unwrap();
    for (&h, &v) in all.iter().zip(&want) {
        let def = half_from_definition(h);
        assert!(
            (def.is_nan() && v.is_nan() && v.is_sign_negative() == (h & 0x8000 != 0))
                || v as f64 == def,
            "scalar {h:#06x} -> {v:e}, definition {def:e}"
        );
    }
    let src = Unaligned::new(&all);
    for d in paths() {
        let mut got = Unaligned::new(&vec![f32::NAN; all.len()]);
        d.f16_to_f32(src.get(), got.get_mut()).unwrap();
        for (i, (&g, &w)) in got.get().iter().zip(&want).enumerate() {
            assert!(
                same_f32(g, w),
                "{}: {:#06x} -> {:#010x}, scalar {:#010x}",
                d.isa(),
                all[i],
                g.to_bits(),
                w.to_bits()
            );
        }
    }
}

#[test]
fn f32_to_f16_midpoints_and_round_trips_every_path() {
    // Every finite half, and the exact midpoint above each (ties to even,
    // including the one above 65504 that rounds to inf), both signs.
    let mut src = Vec::new();
    for h in (0u16..0x7c00).chain(0x8000..0xfc00) {
        let v = f16_val(h);
        src.push(v);
        let next = if h & 0x7fff == 0x7bff {
            65536.0f32.copysign(v)
        } else {
            f16_val(h + 1)
        };
        src.push(v + (next - v) / 2.0); // exact: halves carry 11 bits
    }
    src.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN]);
    let mut want = vec![0u16; src.len()];
    scalar().f32_to_f16(&src, &mut want).unwrap();
    for (i, (&x, &h)) in src.iter().zip(&want).enumerate() {
        if x.is_nan() {
            assert!(same_half(h, 0x7e00 | ((x.is_sign_negative() as u16) << 15)));
        } else {
            let v = half_from_definition(h);
            assert_eq!(v, round_to_half(x), "scalar: [{i}] {x:e} -> {h:#06x}");
            assert_eq!(v.is_sign_negative(), x.is_sign_negative(), "{x:e}");
        }
    }
    let s = Unaligned::new(&src);
    for d in paths() {
        let mut got = Unaligned::new(&vec![0x5555u16; src.len()]);
        d.f32_to_f16(s.get(), got.get_mut()).unwrap();
        for (i, (&g, &w)) in got.get().iter().zip(&want).enumerate() {
            assert!(
                same_half(g, w),
                "{}: {:e} -> {g:#06x}, scalar {w:#06x}",
                d.isa(),
                src[i]
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// Random f32 bit patterns (NaNs, infinities, f32 subnormals included) and
    /// values around the f16 range: every path equals scalar bit for bit, and
    /// scalar equals round-to-nearest-even from the definition.
    #[test]
    fn f32_to_f16_matches_scalar(n in len(3000), seed: u64, near in any::<bool>()) {
        let mut rng = TestRng::new(seed);
        let src: Vec<f32> = (0..n)
            .map(|_| {
                let bits = rng.next() as u32;
                if near {
                    // Exponents 2^-26 .. 2^17: f16 subnormals, normals, overflow.
                    let e = 101 + rng.below(43) as u32;
                    f32::from_bits(bits & 0x807f_ffff | e << 23)
                } else {
                    f32::from_bits(bits)
                }
            })
            .collect();
        let mut want = vec![0u16; n];
        scalar().f32_to_f16(&src, &mut want).unwrap();
        for (i, (&x, &h)) in src.iter().zip(&want).enumerate() {
            if x.is_nan() {
                prop_assert!(same_half(h, 0x7e00 | ((x.is_sign_negative() as u16) << 15)));
            } else {
                let v = half_from_definition(h);
                prop_assert_eq!(v, round_to_half(x), "scalar: [{}] {:e}", i, x);
                prop_assert_eq!(v.is_sign_negative(), x.is_sign_negative());
            }
        }
        let s = Unaligned::new(&src);
        for d in paths() {
            let mut got = Unaligned::new(&vec![0x5555u16; n]);
            d.f32_to_f16(s.get(), got.get_mut()).unwrap();
            for (i, (&g, &w)) in got.get().iter().zip(&want).enumerate() {
                prop_assert!(same_half(g, w), "{}: [{}] {:e} -> {:#06x}, scalar {:#06x}",
                    d.isa(), i, src[i], g, w);
            }
        }
    }

    /// Every length through the vector body and the tail.
    #[test]
    fn f16_to_f32_matches_scalar(n in len(3000), seed: u64) {
        let mut rng = TestRng::new(seed);
        let src: Vec<u16> = (0..n).map(|_| rng.next() as u16).collect();
        let mut want = vec![0f32; n];
        scalar().f16_to_f32(&src, &mut want).unwrap();
        let s = Unaligned::new(&src);
        for d in paths() {
            let mut got = Unaligned::new(&vec![f32::NAN; n]);
            d.f16_to_f32(s.get(), got.get_mut()).unwrap();
            for (i, (&g, &w)) in got.get().iter().zip(&want).enumerate() {
                prop_assert!(same_f32(g, w), "{}: [{}] {:#06x} -> {:e}, scalar {:e}",
                    d.isa(), i, src[i], g, w);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Dot products, axpy, GEMV
// ---------------------------------------------------------------------------

/// `Σ|a·b|` and `Σ a·b` in f64 (each product exact).
fn sums(a: &[f32], b: impl Iterator<Item = f32>) -> (f64, f64) {
    a.iter().zip(b).fold((0.0, 0.0), |(abs, s), (&x, y)| {
        let p = x as f64 * y as f64;
        (abs + p.abs(), s + p)
    })
}

/// Two paths' sums of `n` products with `Σ|terms| = abs` differ by at most this.
fn dot_tol(n: usize, abs: f64) -> f64 {
    2.0 * gamma(n) * abs + 4.0 * n as f64 * TINY
}

/// The scalar sum against the f64 one (whose own error is ≤ n·2⁻⁵³·abs).
fn dot_tol_exact(n: usize, abs: f64) -> f64 {
    gamma(n) * abs + 2.0 * n as f64 * TINY + n as f64 * 2f64.powi(-52) * abs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn dot_f32_matches_scalar(n in len(3000), seed: u64, kind in vals()) {
        let mut rng = TestRng::new(seed);
        let a = f32s(&mut rng, n, kind);
        let b = f32s(&mut rng, n, kind);
        let (abs, exact) = sums(&a, b.iter().copied());
        let want = scalar().dot_f32(&a, &b).unwrap();
        close64("scalar dot_f32", 0, want, exact, dot_tol_exact(n, abs))?;
        let (ua, ub) = (Unaligned::new(&a), Unaligned::new(&b));
        for d in paths() {
            let got = d.dot_f32(ua.get(), ub.get()).unwrap();
            close(&format!("{} dot_f32", d.isa()), 0, got, want, dot_tol(n, abs))?;
        }
    }

    #[test]
    fn dot_f16_matches_scalar(n in len(3000), seed: u64, kind in vals()) {
        let mut rng = TestRng::new(seed);
        let a = f32s(&mut rng, n, kind);
        let b = halves(&mut rng, n, kind);
        let (abs, exact) = sums(&a, b.iter().map(|&h| f16_val(h)));
        let want = scalar().dot_f16(&a, &b).unwrap();
        close64("scalar dot_f16", 0, want, exact, dot_tol_exact(n, abs))?;
        let (ua, ub) = (Unaligned::new(&a), Unaligned::new(&b));
        for d in paths() {
            let got = d.dot_f16(ua.get(), ub.get()).unwrap();
            close(&format!("{} dot_f16", d.isa()), 0, got, want, dot_tol(n, abs))?;
        }
    }

    /// 1..=9 rows against 0..=13 vectors (every tile and group size and
    /// remainder of every path, up to two rows per stream of the widest
    /// row tiles), or 60..=140 rows (one to three blocks of the span by
    /// span kernels), K through every tail: each output is bit
    /// for bit the same path's `dot_f16` of its row and vector, so the LM
    /// head gives the same logits whether a token is alone in its step or
    /// not. Outputs start as NaN so an unwritten one shows.
    #[test]
    fn dot_f16_multi_is_dot_f16_per_pair(
        m in prop_oneof![1usize..=9, 60usize..=140],
        n in 0usize..=13,
        k in prop_oneof![1usize..=70, 1usize..=3000],
        seed: u64,
        kind in vals(),
    ) {
        let mut rng = TestRng::new(seed);
        let xs = f32s(&mut rng, n * k, kind);
        let w = halves(&mut rng, m * k, kind);
        let (uxs, uw) = (Unaligned::new(&xs), Unaligned::new(&w));
        for d in paths() {
            let mut out = Unaligned::new(&vec![f32::NAN; m * n]);
            d.dot_f16_multi(uxs.get(), uw.get(), k, out.get_mut()).unwrap();
            for (i, &got) in out.get().iter().enumerate() {
                let (r, t) = (i / n, i % n);
                let want = d.dot_f16(&xs[t * k..(t + 1) * k], &w[r * k..(r + 1) * k]).unwrap();
                prop_assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{} dot_f16_multi row {} vector {} of {}, K = {}: {:e} vs dot_f16 {:e}",
                    d.isa(), r, t, n, k, got, want
                );
            }
        }
    }

    #[test]
    fn axpy_matches_scalar(n in len(3000), seed: u64, kind in vals(), alpha_kind in vals()) {
        let mut rng = TestRng::new(seed);
        let alpha = f32_val(&mut rng, alpha_kind);
        let x = f32s(&mut rng, n, kind);
        let xh = halves(&mut rng, n, kind);
        let y0 = f32s(&mut rng, n, kind);
        let tol = |i: usize, xv: f32| {
            4.0 * U * (y0[i].abs() as f64 + (alpha as f64 * xv as f64).abs()) + 2.0 * TINY
        };

        let mut want = y0.clone();
        scalar().axpy_f32(alpha, &x, &mut want).unwrap();
        let mut want_h = y0.clone();
        scalar().axpy_f16(alpha, &xh, &mut want_h).unwrap();
        for i in 0..n {
            let e = y0[i] as f64 + alpha as f64 * x[i] as f64;
            close64("scalar axpy_f32", i, want[i], e, tol(i, x[i]) / 2.0)?;
            let e = y0[i] as f64 + alpha as f64 * f16_val(xh[i]) as f64;
            close64("scalar axpy_f16", i, want_h[i], e, tol(i, f16_val(xh[i])) / 2.0)?;
        }

        let (ux, uxh) = (Unaligned::new(&x), Unaligned::new(&xh));
        for d in paths() {
            let mut y = Unaligned::new(&y0);
            d.axpy_f32(alpha, ux.get(), y.get_mut()).unwrap();
            for (i, (&g, &w)) in y.get().iter().zip(&want).enumerate() {
                close(&format!("{} axpy_f32", d.isa()), i, g, w, tol(i, x[i]))?;
            }
            let mut y = Unaligned::new(&y0);
            d.axpy_f16(alpha, uxh.get(), y.get_mut()).unwrap();
            for (i, (&g, &w)) in y.get().iter().zip(&want_h).enumerate() {
                close(&format!("{} axpy_f16", d.isa()), i, g, w, tol(i, f16_val(xh[i])))?;
            }
        }
    }

    /// Row counts around the four-row passes, K through every tail, and a
    /// row sub-range; outputs start as NaN so unwritten rows show.
    #[test]
    fn gemv_f16_matches_scalar(
        m in 1usize..=13,
        k in prop_oneof![1usize..=70, 1usize..=3000],
        seed: u64,
        kind in vals(),
        cut in (0usize..=13, 0usize..=13),
    ) {
        let mut rng = TestRng::new(seed);
        let w = halves(&mut rng, m * k, kind);
        let x = f32s(&mut rng, k, kind);
        let (lo, hi) = (cut.0.min(m), cut.1.min(m));
        let rows = lo.min(hi)..lo.max(hi);
        let mut want = vec![f32::NAN; rows.len()];
        scalar().gemv_f16(&w, k, &x, rows.clone(), &mut want).unwrap();
        let row_sums: Vec<(f64, f64)> = rows
            .clone()
            .map(|r| sums(&x, w[r * k..(r + 1) * k].iter().map(|&h| f16_val(h))))
            .collect();
        for (i, (&g, &(abs, exact))) in want.iter().zip(&row_sums).enumerate() {
            close64("scalar gemv_f16", i, g, exact, dot_tol_exact(k, abs))?;
        }
        let (uw, ux) = (Unaligned::new(&w), Unaligned::new(&x));
        for d in paths() {
            let mut y = Unaligned::new(&vec![f32::NAN; rows.len()]);
            d.gemv_f16(uw.get(), k, ux.get(), rows.clone(), y.get_mut()).unwrap();
            for (i, (&g, &wv)) in y.get().iter().zip(&want).enumerate() {
                prop_assert!(!g.is_nan(), "{} gemv_f16 left row {} unwritten", d.isa(), i);
                close(&format!("{} gemv_f16", d.isa()), i, g, wv, dot_tol(k, row_sums[i].0))?;
                // The decode LM head (this GEMV) and the batched one (dot_f16_multi,
                // equal to dot_f16) must give a token the same logits.
                let r = rows.start + i;
                let lone = d.dot_f16(&x, &w[r * k..(r + 1) * k]).unwrap();
                prop_assert_eq!(g.to_bits(), lone.to_bits(), "{} gemv_f16 row {} vs dot_f16", d.isa(), r);
            }
        }
    }

    #[test]
    fn gemv_q8_0_matches_scalar(
        m in 1usize..=11,
        blocks in prop_oneof![1usize..=4, 1usize..=94],
        seed: u64,
        kind in vals(),
        cut in (0usize..=11, 0usize..=11),
    ) {
        let k = blocks * Q8_0_BLOCK;
        let mut rng = TestRng::new(seed);
        let w = q8_0_rows(&mut rng, m * blocks, kind);
        let x = f32s(&mut rng, k, kind);
        let (lo, hi) = (cut.0.min(m), cut.1.min(m));
        let rows = lo.min(hi)..lo.max(hi);
        let row_bytes = blocks * Q8_0_BLOCK_BYTES;
        // Terms d·q·x with d the block's scale.
        let row_sums: Vec<(f64, f64)> = rows
            .clone()
            .map(|r| {
                let terms = w[r * row_bytes..(r + 1) * row_bytes]
                    .chunks_exact(Q8_0_BLOCK_BYTES)
                    .flat_map(|b| {
                        let d = f16_val(u16::from_le_bytes([b[0], b[1]])) as f64;
                        b[2..].iter().map(move |&q| d * (q as i8) as f64)
                    });
                x.iter().zip(terms).fold((0.0, 0.0), |(abs, s), (&xv, t)| {
                    let p = xv as f64 * t;
                    (abs + p.abs(), s + p)
                })
            })
            .collect();
        // Each term: the q·x product, ≤ 32 in-block additions, the scale
        // product and ≤ K/32 block additions: ≤ K + 2 roundings.
        let mut want = vec![f32::NAN; rows.len()];
        scalar().gemv_q8_0(&w, k, &x, rows.clone(), &mut want).unwrap();
        for (i, (&g, &(abs, exact))) in want.iter().zip(&row_sums).enumerate() {
            close64("scalar gemv_q8_0", i, g, exact, dot_tol_exact(k + 2, abs))?;
        }
        let (uw, ux) = (Unaligned::new(&w), Unaligned::new(&x));
        for d in paths() {
            let mut y = Unaligned::new(&vec![f32::NAN; rows.len()]);
            d.gemv_q8_0(uw.get(), k, ux.get(), rows.clone(), y.get_mut()).unwrap();
            for (i, (&g, &wv)) in y.get().iter().zip(&want).enumerate() {
                prop_assert!(!g.is_nan(), "{} gemv_q8_0 left row {} unwritten", d.isa(), i);
                close(&format!("{} gemv_q8_0", d.isa()), i, g, wv,
                    dot_tol(k + 2, row_sums[i].0))?;
                // A row's result does not depend on the rows computed beside it.
                let r = rows.start + i;
                let mut lone = [f32::NAN];
                d.gemv_q8_0(&w, k, &x, r..r + 1, &mut lone).unwrap();
                prop_assert_eq!(g.to_bits(), lone[0].to_bits(), "{} gemv_q8_0 row {} alone", d.isa(), r);
            }
        }
    }

    /// 1..=11 rows (up to two per stream, and remainders) or 30..=70 (one
    /// to three blocks of the span by span kernels) against 0..=13 vectors
    /// (every tile width and remainder), 1..=94 blocks: each output
    /// is bit for bit the same path's `gemv_q8_0` of its row and vector, so
    /// a re-quantized head gives a token the same logits alone or in a
    /// batch. Outputs start as NaN so an unwritten one shows.
    #[test]
    fn dot_q8_0_multi_is_gemv_per_pair(
        m in prop_oneof![1usize..=11, 30usize..=70],
        n in 0usize..=13,
        blocks in prop_oneof![1usize..=4, 1usize..=94],
        seed: u64,
        kind in vals(),
    ) {
        let k = blocks * Q8_0_BLOCK;
        let mut rng = TestRng::new(seed);
        let w = q8_0_rows(&mut rng, m * blocks, kind);
        let xs = f32s(&mut rng, n * k, kind);
        let (uxs, uw) = (Unaligned::new(&xs), Unaligned::new(&w));
        for d in paths() {
            let mut out = Unaligned::new(&vec![f32::NAN; m * n]);
            d.dot_q8_0_multi(uxs.get(), uw.get(), k, out.get_mut()).unwrap();
            for (i, &got) in out.get().iter().enumerate() {
                let (r, t) = (i / n, i % n);
                let mut want = [f32::NAN];
                d.gemv_q8_0(&w, k, &xs[t * k..(t + 1) * k], r..r + 1, &mut want).unwrap();
                prop_assert_eq!(
                    got.to_bits(),
                    want[0].to_bits(),
                    "{} dot_q8_0_multi row {} vector {} of {}, K = {}: {:e} vs gemv_q8_0 {:e}",
                    d.isa(), r, t, n, k, got, want[0]
                );
            }
        }
    }
}

/// The BitNet-2B LM head shape's K, a few rows: the long unrolled body.
#[test]
fn gemv_f16_lm_head_width() {
    let (m, k) = (9, 2560);
    let mut rng = TestRng::new(7);
    let w = halves(&mut rng, m * k, Vals::Unit);
    let x = f32s(&mut rng, k, Vals::Unit);
    let mut want = vec![0f32; m];
    scalar().gemv_f16(&w, k, &x, 0..m, &mut want).unwrap();
    for d in paths() {
        let mut y = vec![f32::NAN; m];
        d.gemv_f16(&w, k, &x, 0..m, &mut y).unwrap();
        for r in 0..m {
            let (abs, _) = sums(&x, w[r * k..(r + 1) * k].iter().map(|&h| f16_val(h)));
            let tol = dot_tol(k, abs);
            assert!(
                (y[r] as f64 - want[r] as f64).abs() <= tol,
                "{} row {r}: {} vs {}",
                d.isa(),
                y[r],
                want[r]
            );
        }
    }
}

// ---------------------------------------------------------------------------
// RMSNorm, softmax, RoPE
// ---------------------------------------------------------------------------

/// For RoPE pair `i` of head `h`: the indices of its two elements and of its angle.
type PairAt = dyn Fn(usize, usize) -> (usize, usize, usize);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn rms_norm_matches_scalar_and_f64(
        n in prop_oneof![1usize..=40, 1usize..=3000],
        seed: u64,
        kind in vals(),
        eps in prop_oneof![Just(1e-5f32), Just(1e-6f32), 1e-8f32..1e-3],
    ) {
        let mut rng = TestRng::new(seed);
        let x = f32s(&mut rng, n, kind);
        let w: Vec<f32> = (0..n).map(|_| rng.f32() * 4.0).collect();
        let mut want = vec![0f32; n];
        scalar().rms_norm(&x, &w, eps, &mut want).unwrap();

        let ss: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
        let inv = 1.0 / (ss / n as f64 + eps as f64).sqrt();
        // `x·inv` may be subnormal before `w` scales it: absolute slack.
        let abs_slack = |i: usize| 4.0 * TINY * (1.0 + w[i].abs() as f64);
        for i in 0..n {
            let e = x[i] as f64 * inv * w[i] as f64;
            let tol = (n as f64 / 2.0 + 6.0) * U * e.abs() + abs_slack(i);
            close64("scalar rms_norm", i, want[i], e, tol)?;
        }

        let (ux, uw) = (Unaligned::new(&x), Unaligned::new(&w));
        for d in paths() {
            let mut out = Unaligned::new(&vec![f32::NAN; n]);
            d.rms_norm(ux.get(), uw.get(), eps, out.get_mut()).unwrap();
            for (i, (&g, &wv)) in out.get().iter().zip(&want).enumerate() {
                let tol = (n as f64 + 12.0) * U * wv.abs() as f64 + 2.0 * abs_slack(i);
                close(&format!("{} rms_norm", d.isa()), i, g, wv, tol)?;
            }
        }
    }

    #[test]
    fn softmax_matches_scalar_and_f64(
        n in prop_oneof![1usize..=40, 1usize..=3000],
        seed: u64,
        style in 0u8..5,
    ) {
        let x = softmax_row(&mut TestRng::new(seed), n, style);
        let mut want = x.clone();
        scalar().softmax(&mut want).unwrap();

        let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let e: Vec<f64> = x.iter().map(|&v| (v as f64 - max).exp()).collect();
        let total: f64 = e.iter().sum();
        for i in 0..n {
            let p = e[i] / total;
            let arg = (x[i] as f64 - max).abs().min(88.0);
            let tol = (arg + 88.0 + n as f64 + 16.0) * U * p + 2.0 * f32::MIN_POSITIVE as f64;
            close64("scalar softmax", i, want[i], p, tol)?;
        }

        let top = |v: &[f32]| {
            (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
        };
        let arg_in = top(&x);
        let gap = x
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != arg_in)
            .fold(f64::INFINITY, |g, (_, &v)| g.min(x[arg_in] as f64 - v as f64));

        let ux = Unaligned::new(&x);
        for d in paths() {
            let mut got = Unaligned::new(&x);
            got.get_mut().copy_from_slice(ux.get());
            d.softmax(got.get_mut()).unwrap();
            let got = got.get();
            for (i, (&g, &wv)) in got.iter().zip(&want).enumerate() {
                let tol = (2.0 * n as f64 + 12.0) * U * wv as f64 + 2.0 * f32::MIN_POSITIVE as f64;
                close(&format!("{} softmax", d.isa()), i, g, wv, tol)?;
            }
            let sum: f64 = got.iter().map(|&v| v as f64).sum();
            // The scalar reference sums sequentially, which drifts by up to
            // γₙ when many terms are equal (the roundings then share a
            // sign). Vector paths split the sum over lanes and must stay
            // within 1e-5; a path that reproduces the scalar output bit for
            // bit (scalar itself, or a path reusing its code) gets its bound.
            let sequential = got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits());
            let sum_tol = if sequential { 1e-5f64.max(gamma(n) + 4.0 * U) } else { 1e-5 };
            prop_assert!((sum - 1.0).abs() <= sum_tol, "{} softmax sums to {}", d.isa(), sum);
            if gap > 1e-2 {
                prop_assert_eq!(top(got), arg_in, "{} softmax argmax", d.isa());
            }
        }
    }

    #[test]
    fn rope_matches_scalar_and_f64(
        half in prop_oneof![Just(32usize), Just(64), 1usize..=80],
        heads in 0usize..=9,
        seed: u64,
        kind in vals(),
        pos in 0u32..5000,
        trig_random in any::<bool>(),
    ) {
        let d = 2 * half;
        let mut rng = TestRng::new(seed);
        let x = f32s(&mut rng, heads * d, kind);
        let (cos, sin): (Vec<f32>, Vec<f32>) = (0..half)
            .map(|i| {
                if trig_random {
                    (f32_val(&mut rng, kind), f32_val(&mut rng, kind))
                } else {
                    let theta = pos as f64 * 10000f64.powf(-((2 * i) as f64) / d as f64);
                    (theta.cos() as f32, theta.sin() as f32)
                }
            })
            .unzip();

        // (index of a, index of b, cos/sin index) of pair i in head h.
        let neox = move |h: usize, i: usize| (h * d + i, h * d + half + i, i);
        let inter = move |h: usize, i: usize| (h * d + 2 * i, h * d + 2 * i + 1, i);
        let styles: [(&str, &PairAt); 2] = [("rope_neox", &neox), ("rope_interleaved", &inter)];
        for (name, pair) in styles {
            let run = |dp: &Dispatch, buf: &mut [f32]| {
                if name == "rope_neox" {
                    dp.rope_neox(buf, d, &cos, &sin).unwrap();
                } else {
                    dp.rope_interleaved(buf, d, &cos, &sin).unwrap();
                }
            };
            let mut want = x.clone();
            run(&scalar(), &mut want);
            // Per output: the two products' magnitudes bound every rounding.
            let mut mag = vec![0f64; x.len()];
            for h in 0..heads {
                for i in 0..half {
                    let (ia, ib, t) = pair(h, i);
                    let (a, b, c, s) = (x[ia] as f64, x[ib] as f64, cos[t] as f64, sin[t] as f64);
                    let (ea, eb) = (a * c - b * s, a * s + b * c);
                    mag[ia] = (a * c).abs() + (b * s).abs();
                    mag[ib] = (a * s).abs() + (b * c).abs();
                    let what = format!("scalar {name}");
                    close64(&what, ia, want[ia], ea, 2.0 * U * mag[ia] + 2.0 * TINY)?;
                    close64(&what, ib, want[ib], eb, 2.0 * U * mag[ib] + 2.0 * TINY)?;
                }
            }
            // Every path rounds each product before the sum, as scalar
            // does: bitwise equal (NaNs aside, whose payloads may differ).
            for dp in paths() {
                let mut got = Unaligned::new(&x);
                run(&dp, got.get_mut());
                for (i, (&g, &wv)) in got.get().iter().zip(&want).enumerate() {
                    prop_assert!(
                        g.to_bits() == wv.to_bits() || (g.is_nan() && wv.is_nan()),
                        "{} {}[{}]: {} vs scalar {}", dp.isa(), name, i, g, wv
                    );
                }
            }
        }
    }
}

/// `Σx²` overflowing to inf makes the scale 0 on every path, not NaN.
#[test]
fn rms_norm_overflowing_sum_gives_zeros() {
    let x: Vec<f32> = (0..37)
        .map(|i| if i % 2 == 0 { 1e30 } else { -3e25 })
        .collect();
    let w = vec![0.5f32; x.len()];
    for d in paths() {
        let mut out = vec![f32::NAN; x.len()];
        d.rms_norm(&x, &w, 1e-5, &mut out).unwrap();
        assert!(out.iter().all(|&v| v == 0.0), "{}: {out:?}", d.isa());
    }
}

/// A row of `n` logits in one of five `style`s (`0..5`).
fn softmax_row(rng: &mut TestRng, n: usize, style: u8) -> Vec<f32> {
    (0..n)
        .map(|i| match style {
            // Logits of every scale.
            0 => rng.f32() * 10.0,
            1 => rng.f32() * 200.0,
            // Large offsets: x − max must be taken before exp.
            2 => 1.0e4 + rng.f32() * 50.0,
            // Causal-mask style: -inf beyond a prefix (never all of it).
            3 if i > 0 && rng.below(3) == 0 => f32::NEG_INFINITY,
            3 => rng.f32() * 30.0,
            // Ties and near-ties.
            _ => (rng.below(4) as f32) * 0.5,
        })
        .collect()
}

/// One dominant logit: the rest underflow towards 0, none becomes NaN.
#[test]
fn softmax_extremes() {
    for n in [1usize, 7, 16, 33, 100] {
        let mut x = vec![-1000.0f32; n];
        x[n / 2] = 1000.0;
        for d in paths() {
            let mut y = x.clone();
            d.softmax(&mut y).unwrap();
            assert_eq!(y[n / 2], 1.0, "{} n={n}", d.isa());
            assert!(
                y.iter().all(|&v| (0.0..=1.0).contains(&v)),
                "{}: {y:?}",
                d.isa()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Shape errors: every path rejects them before any kernel runs.
// ---------------------------------------------------------------------------

#[test]
fn bad_shapes_are_errors() {
    let buf = |n: usize| vec![0.5f32; n];
    let bits = |n: usize| vec![0x3c00u16; n];
    let is_len = |r: Result<(), Error>| matches!(r, Err(Error::BufferLength { .. }));
    for d in paths() {
        let isa = d.isa();
        assert!(is_len(d.f16_to_f32(&bits(5), &mut buf(4))), "{isa}");
        assert!(is_len(d.f32_to_f16(&buf(9), &mut bits(10))), "{isa}");

        assert!(
            is_len(d.rms_norm(&buf(8), &buf(7), 1e-5, &mut buf(8))),
            "{isa}"
        );
        assert!(
            is_len(d.rms_norm(&buf(8), &buf(8), 1e-5, &mut buf(9))),
            "{isa}"
        );
        assert!(matches!(
            d.rms_norm(&[], &[], 1e-5, &mut []),
            Err(Error::ZeroDim { .. })
        ));
        assert!(matches!(d.softmax(&mut []), Err(Error::ZeroDim { .. })));

        let (c, s) = (buf(4), buf(4));
        for rope in [Dispatch::rope_neox, Dispatch::rope_interleaved] {
            // Odd head_dim, zero head_dim, x not whole heads, short cos/sin.
            assert!(matches!(
                rope(&d, &mut buf(18), 9, &c, &s),
                Err(Error::KNotMultiple { .. })
            ));
            assert!(matches!(
                rope(&d, &mut buf(8), 0, &c, &s),
                Err(Error::KNotMultiple { .. })
            ));
            assert!(matches!(
                rope(&d, &mut buf(12), 8, &c, &s),
                Err(Error::KNotMultiple { .. })
            ));
            assert!(is_len(rope(&d, &mut buf(16), 8, &buf(3), &s)), "{isa}");
            assert!(is_len(rope(&d, &mut buf(16), 8, &c, &buf(5))), "{isa}");
        }

        assert!(matches!(
            d.dot_f32(&buf(3), &buf(4)),
            Err(Error::BufferLength { .. })
        ));
        assert!(matches!(
            d.dot_f16(&buf(4), &bits(3)),
            Err(Error::BufferLength { .. })
        ));
        assert!(
            is_len(d.dot_f16_multi(&buf(15), &bits(8), 8, &mut buf(2))),
            "{isa}"
        );
        assert!(
            is_len(d.dot_f16_multi(&buf(16), &bits(8), 8, &mut buf(3))),
            "{isa}"
        );
        assert!(
            is_len(d.dot_f16_multi(&buf(16), &bits(12), 8, &mut buf(2))),
            "{isa}"
        );
        assert!(
            is_len(d.dot_f16_multi(&buf(16), &bits(16), 8, &mut buf(2))),
            "{isa}"
        );
        // A width that is not a power of two (the check divides then).
        assert!(d.dot_f16_multi(&buf(12), &bits(18), 6, &mut buf(6)).is_ok());
        assert!(
            is_len(d.dot_f16_multi(&buf(13), &bits(18), 6, &mut buf(6))),
            "{isa}"
        );
        assert!(
            is_len(d.dot_f16_multi(&buf(12), &bits(17), 6, &mut buf(6))),
            "{isa}"
        );
        assert!(
            is_len(d.dot_f16_multi(&buf(12), &bits(18), 6, &mut buf(5))),
            "{isa}"
        );
        assert!(matches!(
            d.dot_f16_multi(&[], &[], 0, &mut buf(2)),
            Err(Error::ZeroDim { .. })
        ));
        assert!(is_len(d.axpy_f32(1.0, &buf(17), &mut buf(16))), "{isa}");
        assert!(is_len(d.axpy_f16(1.0, &bits(16), &mut buf(17))), "{isa}");

        // gemv_f16: 3 × 8 weights.
        let w = bits(24);
        assert!(
            is_len(d.gemv_f16(&w[..23], 8, &buf(8), 0..2, &mut buf(2))),
            "{isa}"
        );
        assert!(
            is_len(d.gemv_f16(&w, 8, &buf(7), 0..2, &mut buf(2))),
            "{isa}"
        );
        assert!(
            is_len(d.gemv_f16(&w, 8, &buf(8), 0..2, &mut buf(3))),
            "{isa}"
        );
        assert!(matches!(
            d.gemv_f16(&w, 8, &buf(8), 1..4, &mut buf(3)),
            Err(Error::RowRange {
                start: 1,
                end: 4,
                m: 3
            })
        ));
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 2..1;
        assert!(matches!(
            d.gemv_f16(&w, 8, &buf(8), reversed, &mut buf(0)),
            Err(Error::RowRange { .. })
        ));
        assert!(matches!(
            d.gemv_f16(&w, 0, &buf(0), 0..0, &mut buf(0)),
            Err(Error::ZeroDim { .. })
        ));

        // gemv_q8_0: 2 rows × 2 blocks.
        let wq = vec![0u8; 2 * 2 * Q8_0_BLOCK_BYTES];
        assert!(matches!(
            d.gemv_q8_0(&wq, 48, &buf(48), 0..2, &mut buf(2)),
            Err(Error::KNotMultiple { k: 48, block: 32 })
        ));
        assert!(
            is_len(d.gemv_q8_0(&wq[..wq.len() - 1], 64, &buf(64), 0..2, &mut buf(2))),
            "{isa}"
        );
        assert!(
            is_len(d.gemv_q8_0(&wq, 64, &buf(63), 0..2, &mut buf(2))),
            "{isa}"
        );
        assert!(
            is_len(d.gemv_q8_0(&wq, 64, &buf(64), 0..2, &mut buf(1))),
            "{isa}"
        );
        assert!(matches!(
            d.gemv_q8_0(&wq, 64, &buf(64), 0..3, &mut buf(3)),
            Err(Error::RowRange { .. })
        ));
        assert!(matches!(
            d.gemv_q8_0(&wq, 0, &buf(0), 0..0, &mut buf(0)),
            Err(Error::ZeroDim { .. })
        ));

        // Empty but well-formed calls are fine.
        assert_eq!(d.dot_f32(&[], &[]), Ok(0.0));
        assert!(d.dot_f16_multi(&[], &bits(8), 4, &mut []).is_ok());
        assert!(d.dot_f16_multi(&buf(8), &[], 4, &mut []).is_ok());
        assert!(d.f16_to_f32(&[], &mut []).is_ok());
        assert!(d.gemv_f16(&w, 8, &buf(8), 3..3, &mut []).is_ok());
    }
}

mod f64_accumulated {
    use super::common::{paths, scalar, TestRng, Unaligned};
    use bitnet_kernels::Dispatch;
    use proptest::prelude::*;

    fn values(rng: &mut TestRng, n: usize, spread: i32) -> Vec<f32> {
        (0..n)
            .map(|_| rng.f32() * 2f32.powi((rng.below(2 * spread as u64 + 1) as i32) - spread))
            .collect()
    }

    proptest! {
        #[test]
        fn axpy_f64acc_is_bitwise_equal(n in 0usize..300, seed in any::<u64>(), alpha in -4.0f32..4.0) {
            let mut rng = TestRng::new(seed);
            let x = values(&mut rng, n, 20);
            let start: Vec<f64> = (0..n).map(|_| rng.f32() as f64).collect();
            let mut want = start.clone();
            scalar().axpy_f64acc(alpha, &x, &mut want).unwrap();
            for d in paths() {
                let mut got = start.clone();
                d.axpy_f64acc(alpha, &x, &mut got).unwrap();
                prop_assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{}", d.isa());
            }
        }

        #[test]
        fn dot_f64acc_is_bitwise_scalar(n in 0usize..600, seed in any::<u64>(), spread in 0i32..30) {
            let mut rng = TestRng::new(seed);
            let (a, b) = (values(&mut rng, n, spread), values(&mut rng, n, spread));
            let want = scalar().dot_f64acc(&a, &b).unwrap();
            // The exact value, for the reference itself.
            let exact: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            prop_assert!((want as f64 - exact).abs() <= (exact.abs() * 2f64.powi(-23)).max(1e-300));
            // Every path sums in the same fixed order, so the model's
            // attention scores do not depend on the kernel path.
            for d in paths() {
                let got = d.dot_f64acc(&a, &b).unwrap();
                prop_assert_eq!(got.to_bits(), want.to_bits(), "{}: {} vs {}", d.isa(), got, want);
            }
        }

        /// Attention's batched forms: scores against several keys, and the
        /// probability-weighted sum of value rows, with head widths through
        /// every vector tail (including 0) and the extremes of f32.
        #[test]
        fn f64acc_rows_equal_the_single_row_kernels(
            k in prop_oneof![0usize..=40, 120usize..=136],
            rows in 0usize..=11,
            seed in any::<u64>(),
            spread in 0i32..30,
            extreme in any::<bool>(),
        ) {
            let mut rng = TestRng::new(seed);
            let q = values(&mut rng, k, spread);
            let mut keys = values(&mut rng, rows * k, spread);
            if extreme {
                for (i, v) in keys.iter_mut().enumerate().step_by(3) {
                    *v = [f32::MAX, f32::MIN, f32::MIN_POSITIVE, -0.0][i % 4];
                }
            }
            let p: Vec<f32> = (0..rows).map(|_| rng.f32().abs()).collect();
            for d in paths() {
                let mut scores = vec![f32::NAN; rows];
                d.dot_f64acc_rows(&q, &keys, &mut scores).unwrap();
                for (j, &got) in scores.iter().enumerate() {
                    let want = d.dot_f64acc(&q, &keys[j * k..(j + 1) * k]).unwrap();
                    prop_assert_eq!(got.to_bits(), want.to_bits(), "{} score {}", d.isa(), j);
                }
                // From a nonzero start, as when positions come in blocks.
                let start: Vec<f64> = (0..k).map(|_| rng.f32() as f64 / 3.0).collect();
                let mut want = start.clone();
                for (j, &pj) in p.iter().enumerate() {
                    d.axpy_f64acc(pj, &keys[j * k..(j + 1) * k], &mut want).unwrap();
                }
                let mut got = start.clone();
                d.weighted_sum_f64acc(&p, &keys, &mut got).unwrap();
                for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    prop_assert_eq!(g.to_bits(), w.to_bits(), "{} output {}", d.isa(), i);
                }
                // Two blocks of rows sum as one.
                let split = rows / 2;
                let mut blocks = start;
                d.weighted_sum_f64acc(&p[..split], &keys[..split * k], &mut blocks).unwrap();
                d.weighted_sum_f64acc(&p[split..], &keys[split * k..], &mut blocks).unwrap();
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                prop_assert_eq!(bits(&blocks), bits(&got), "{}: blocks", d.isa());
            }
        }

        /// The several-query forms (a KV head's query heads): 0..=9 queries
        /// (every tile height and remainder) against 0..=11 keys or value
        /// rows, each output bit for bit the single-query form's.
        #[test]
        fn f64acc_queries_equal_one_query_at_a_time(
            k in prop_oneof![1usize..=40, 120usize..=136],
            queries in 0usize..=9,
            rows in 0usize..=11,
            seed in any::<u64>(),
            spread in 0i32..30,
        ) {
            let mut rng = TestRng::new(seed);
            let qs = values(&mut rng, queries * k, spread);
            let keys = values(&mut rng, rows * k, spread);
            let ps: Vec<f32> = (0..queries * rows).map(|_| rng.f32().abs()).collect();
            let start: Vec<f64> = (0..queries * k).map(|_| rng.f32() as f64 / 3.0).collect();
            for d in paths() {
                let mut scores = vec![f32::NAN; queries * rows];
                d.dot_f64acc_queries(&qs, &keys, k, &mut scores).unwrap();
                let mut sums = start.clone();
                d.weighted_sum_f64acc_queries(&ps, &keys, k, &mut sums).unwrap();
                for g in 0..queries {
                    let mut want = vec![f32::NAN; rows];
                    d.dot_f64acc_rows(&qs[g * k..(g + 1) * k], &keys, &mut want).unwrap();
                    for (j, (&got, &want)) in scores[g * rows..(g + 1) * rows].iter().zip(&want).enumerate() {
                        prop_assert_eq!(got.to_bits(), want.to_bits(), "{} query {} key {}", d.isa(), g, j);
                    }
                    let mut want = start[g * k..(g + 1) * k].to_vec();
                    d.weighted_sum_f64acc(&ps[g * rows..(g + 1) * rows], &keys, &mut want).unwrap();
                    for (i, (&got, &want)) in sums[g * k..(g + 1) * k].iter().zip(&want).enumerate() {
                        prop_assert_eq!(got.to_bits(), want.to_bits(), "{} query {} column {}", d.isa(), g, i);
                    }
                }
            }
        }
    }

    #[test]
    fn f64acc_bad_lengths_are_errors() {
        for d in paths() {
            assert!(d.dot_f64acc(&[1.0], &[1.0, 2.0]).is_err());
            assert!(d.axpy_f64acc(1.0, &[1.0], &mut [0.0, 0.0]).is_err());
            assert!(d
                .dot_f64acc_rows(&[1.0, 2.0], &[1.0; 5], &mut [0.0; 2])
                .is_err());
            assert!(d
                .weighted_sum_f64acc(&[1.0; 2], &[1.0; 5], &mut [0.0; 3])
                .is_err());
            // The several-query forms: K = 0, ragged queries / keys /
            // accumulators, and outputs or weights of the wrong size.
            assert!(d.dot_f64acc_queries(&[], &[], 0, &mut []).is_err());
            assert!(d
                .dot_f64acc_queries(&[1.0; 3], &[1.0; 4], 2, &mut [0.0; 2])
                .is_err());
            assert!(d
                .dot_f64acc_queries(&[1.0; 4], &[1.0; 5], 2, &mut [0.0; 4])
                .is_err());
            assert!(d
                .dot_f64acc_queries(&[1.0; 4], &[1.0; 6], 2, &mut [0.0; 5])
                .is_err());
            assert!(d.weighted_sum_f64acc_queries(&[], &[], 0, &mut []).is_err());
            assert!(d
                .weighted_sum_f64acc_queries(&[1.0; 4], &[1.0; 5], 2, &mut [0.0; 4])
                .is_err());
            assert!(d
                .weighted_sum_f64acc_queries(&[1.0; 4], &[1.0; 4], 2, &mut [0.0; 3])
                .is_err());
            assert!(d
                .weighted_sum_f64acc_queries(&[1.0; 3], &[1.0; 4], 2, &mut [0.0; 4])
                .is_err());
            // No rows: nothing to read, nothing written, and no error.
            assert!(d.dot_f64acc_rows(&[1.0, 2.0], &[], &mut []).is_ok());
            assert!(d.dot_f64acc_queries(&[1.0; 4], &[], 2, &mut []).is_ok());
            let mut accs = [7.0f64; 4];
            d.weighted_sum_f64acc_queries(&[], &[], 2, &mut accs)
                .unwrap();
            assert_eq!(accs, [7.0; 4]);
            let mut acc = [7.0f64; 3];
            d.weighted_sum_f64acc(&[], &[], &mut acc).unwrap();
            assert_eq!(acc, [7.0; 3]);
            assert!(d.softmax_f64acc(&mut [], 1.0).is_err());
        }
    }

    proptest! {
        /// Attention's softmax: every path gives the scalar bits, and the
        /// scalar result is within its error bound of `softmax(y)` in f64 for
        /// the f32 row `y = scale·x`. `d = y − max` rounds once (`|d|·u`
        /// relative in `e^d`), `e^d` is within a few f64 ulps and rounds once
        /// (`u`); the f64 sum of those rounded terms is off by at most the
        /// largest such relative error, `(D + 1)·u` for `D` the largest `|d|`
        /// that does not underflow (≤ 104), and rounds once more, as does the
        /// division: `(|dᵢ| + D + 4)·u·p` plus an absolute `2⁻¹⁴⁸` for
        /// results near or below f32's subnormals.
        ///
        /// `softmax_f32exp` is held to the same checks with its f32
        /// exponentials' error, `2u` (at most 1.4u over 4 million points of
        /// `[-87.3, 0]`), in place of the f64 ones' `u`, so `(|dᵢ| + D + 6)·u·p`,
        /// and `e^d` of about `1.2·10⁻³⁸` below `d = −87.3`.
        #[test]
        fn softmax_f64acc_is_bitwise_scalar_and_close_to_f64(
            n in prop_oneof![1usize..=40, 1usize..=3000],
            seed in any::<u64>(),
            style in 0u8..5,
            scale in prop_oneof![Just(1.0f32), 0.01f32..2.0],
            f32_exp in any::<bool>(),
        ) {
            let softmax = |d: &Dispatch, x: &mut [f32]| {
                if f32_exp {
                    d.softmax_f32exp(x, scale).unwrap()
                } else {
                    d.softmax_f64acc(x, scale).unwrap()
                }
            };
            let x = super::softmax_row(&mut TestRng::new(seed), n, style);
            let mut want = x.clone();
            softmax(&scalar(), &mut want);

            let y: Vec<f32> = x.iter().map(|&v| v * scale).collect();
            let max = y.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
            let e: Vec<f64> = y.iter().map(|&v| (v as f64 - max).exp()).collect();
            let total: f64 = e.iter().sum();
            let dist = |v: f32| (max - v as f64).min(104.0);
            let big_d = y.iter().map(|&v| dist(v)).fold(0.0, f64::max);
            let u = f32::EPSILON as f64 / 2.0;
            for i in 0..n {
                let p = e[i] / total;
                let tol = if f32_exp {
                    (dist(y[i]) + big_d + 6.0) * u * p + 2.4e-38 / total
                } else {
                    (dist(y[i]) + big_d + 4.0) * u * p + 2.0 * 1.401_298_464e-45
                };
                prop_assert!(
                    (want[i] as f64 - p).abs() <= tol,
                    "scalar [{}]: got {:e}, f64 says {:e}, tol {:e}", i, want[i], p, tol
                );
            }

            for d in paths() {
                let mut got = Unaligned::new(&x);
                softmax(&d, got.get_mut());
                for (i, (g, w)) in got.get().iter().zip(&want).enumerate() {
                    prop_assert_eq!(g.to_bits(), w.to_bits(), "{} [{}]: {} vs {}", d.isa(), i, g, w);
                }
            }
        }
    }

    /// Rows the proptest does not draw: equal scores, one dominant score,
    /// a zero scale, and NaN or infinite scores, which make the row NaN on
    /// every path; through both attention softmaxes (`softmax_f32exp`'s
    /// `e^d` below `d = −87.3` is about `1.2·10⁻³⁸` rather than 0).
    #[test]
    fn attention_softmax_edge_rows() {
        for f32_exp in [false, true] {
            let softmax = |d: &Dispatch, x: &mut [f32], scale: f32| {
                if f32_exp {
                    d.softmax_f32exp(x, scale).unwrap()
                } else {
                    d.softmax_f64acc(x, scale).unwrap()
                }
            };
            // 0 exactly from the f64 exponentials.
            let vanishes = |v: f32| if f32_exp { v < 1.0e-37 } else { v == 0.0 };
            for n in [1usize, 7, 8, 9, 16, 17, 33, 100] {
                for d in paths() {
                    let isa = d.isa();
                    let mut x = vec![0.75f32; n];
                    softmax(&d, &mut x, 3.0);
                    assert!(x.iter().all(|&v| v == 1.0 / n as f32), "{isa} n={n}: {x:?}");

                    let mut x: Vec<f32> = (0..n).map(|i| i as f32).collect();
                    softmax(&d, &mut x, 0.0);
                    assert!(x.iter().all(|&v| v == 1.0 / n as f32), "{isa} n={n}: {x:?}");

                    let mut x = vec![-1000.0f32; n];
                    x[n / 2] = 1000.0;
                    softmax(&d, &mut x, 1.0);
                    assert_eq!(x[n / 2], 1.0, "{isa} n={n}");
                    assert!(
                        x.iter().all(|&v| vanishes(v) || v == 1.0),
                        "{isa} n={n} f32_exp={f32_exp}: {x:?}"
                    );

                    for bad in [f32::NAN, f32::INFINITY] {
                        let mut x = vec![0.5f32; n];
                        x[n - 1] = bad;
                        softmax(&d, &mut x, 1.0);
                        assert!(x.iter().all(|v| v.is_nan()), "{isa} n={n} {bad}: {x:?}");
                    }
                    let mut x = vec![0.5f32; n];
                    softmax(&d, &mut x, f32::NAN);
                    assert!(x.iter().all(|v| v.is_nan()), "{isa} n={n}: {x:?}");
                }
            }
        }
    }
}

mod f32_accumulated {
    //! Attention over an f16 KV cache (`*_f32acc_queries_f16`, and the
    //! `*_f32acc_queries` forms over its rows widened first).
    use super::common::{paths, scalar, TestRng, Unaligned};
    use bitnet_kernels::Dispatch;
    use proptest::prelude::*;

    fn values(rng: &mut TestRng, n: usize, spread: i32) -> Vec<f32> {
        (0..n)
            .map(|_| rng.f32() * 2f32.powi((rng.below(2 * spread as u64 + 1) as i32) - spread))
            .collect()
    }

    /// Finite f16 bits of every kind: random signs, mantissas and
    /// exponents, so subnormals, zeros and ±65504 all turn up; or, when
    /// `extreme`, infinities and NaNs among them.
    fn halves(rng: &mut TestRng, n: usize, extreme: bool) -> Vec<u16> {
        (0..n)
            .map(|_| {
                let h = rng.next() as u16;
                if (h >> 10) & 0x1f == 0x1f && !extreme {
                    h & !0x4000
                } else {
                    h
                }
            })
            .collect()
    }

    /// Bits, with every NaN one value: the payload of a NaN that `∞ − ∞`
    /// makes is the hardware's, not the kernels'.
    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter()
            .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
            .collect()
    }

    proptest! {
        /// Scores and weighted sums of 0..=9 queries (every tile height and
        /// remainder) against 0..=11 f16 keys or value rows, with head
        /// widths through every vector tail: every path gives the scalar
        /// bits, a pair's score is the same in any tile, and two blocks of
        /// rows sum as one call. The scalar dot is within the error bound of
        /// its order (`k/16 + 4` roundings of the products' magnitudes) of
        /// the exact dot, and each weighted sum within `n + 1` roundings.
        #[test]
        fn f32acc_queries_are_bitwise_scalar(
            k in prop_oneof![1usize..=40, 120usize..=136],
            queries in 0usize..=9,
            rows in 0usize..=11,
            seed in any::<u64>(),
            spread in 0i32..30,
            extreme in any::<bool>(),
        ) {
            let mut rng = TestRng::new(seed);
            let qs = values(&mut rng, queries * k, spread);
            let keys = Unaligned::new(&halves(&mut rng, rows * k, extreme));
            let mut widened = vec![0f32; rows * k];
            scalar().f16_to_f32(keys.get(), &mut widened).unwrap();
            let ps: Vec<f32> = (0..queries * rows).map(|_| rng.f32().abs()).collect();
            // From a nonzero start, as when positions come in blocks.
            let start: Vec<f32> = (0..queries * k).map(|_| rng.f32() / 3.0).collect();
            let run = |d: &Dispatch| {
                let mut scores = vec![f32::NAN; queries * rows];
                d.dot_f32acc_queries_f16(&qs, keys.get(), k, &mut scores).unwrap();
                let mut sums = start.clone();
                d.weighted_sum_f32acc_queries_f16(&ps, keys.get(), k, &mut sums).unwrap();
                (scores, sums)
            };
            let (want_scores, want_sums) = run(&scalar());
            if !extreme {
                let u = 2f64.powi(-24);
                for (g, q) in qs.chunks_exact(k).enumerate() {
                    for (j, key) in widened.chunks_exact(k).enumerate() {
                        let exact: f64 = q.iter().zip(key).map(|(&a, &b)| a as f64 * b as f64).sum();
                        let size: f64 = q.iter().zip(key).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
                        let bound = (k / 16 + 4) as f64 * u * size + 1e-44;
                        let got = want_scores[g * rows + j] as f64;
                        prop_assert!((got - exact).abs() <= bound, "{} vs {} ± {}", got, exact, bound);
                    }
                    for i in 0..k {
                        let terms = (0..rows).map(|j| ps[g * rows + j] as f64 * widened[j * k + i] as f64);
                        let exact = start[g * k + i] as f64 + terms.clone().sum::<f64>();
                        let size = (start[g * k + i] as f64).abs() + terms.map(f64::abs).sum::<f64>();
                        let bound = (rows + 1) as f64 * u * size + 1e-44;
                        let got = want_sums[g * k + i] as f64;
                        prop_assert!((got - exact).abs() <= bound, "{} vs {} ± {}", got, exact, bound);
                    }
                }
            }
            for d in paths() {
                let (scores, sums) = run(&d);
                prop_assert_eq!(bits(&scores), bits(&want_scores), "{}: scores", d.isa());
                prop_assert_eq!(bits(&sums), bits(&want_sums), "{}: sums", d.isa());
                // The f32 forms over the rows widened first: the same bits.
                let mut widened_scores = vec![f32::NAN; queries * rows];
                d.dot_f32acc_queries(&qs, &widened, k, &mut widened_scores).unwrap();
                prop_assert_eq!(bits(&widened_scores), bits(&scores), "{}: widened scores", d.isa());
                let mut widened_sums = start.clone();
                d.weighted_sum_f32acc_queries(&ps, &widened, k, &mut widened_sums).unwrap();
                prop_assert_eq!(bits(&widened_sums), bits(&sums), "{}: widened sums", d.isa());
                // One query and one key at a time: the same bits.
                for (g, q) in qs.chunks_exact(k).enumerate() {
                    for (j, key) in keys.get().chunks_exact(k).enumerate() {
                        let mut one = [f32::NAN];
                        d.dot_f32acc_queries_f16(q, key, k, &mut one).unwrap();
                        prop_assert_eq!(bits(&one), bits(&scores[g * rows + j..][..1]), "{} pair {} {}", d.isa(), g, j);
                    }
                }
                // Two blocks of rows, one call each.
                if rows > 0 {
                    let split = rows / 2;
                    let block_ps = |r: std::ops::Range<usize>| -> Vec<f32> {
                        ps.chunks_exact(rows).flat_map(|p| p[r.clone()].to_vec()).collect()
                    };
                    let mut blocks = start.clone();
                    let (first, second) = keys.get().split_at(split * k);
                    d.weighted_sum_f32acc_queries_f16(&block_ps(0..split), first, k, &mut blocks).unwrap();
                    d.weighted_sum_f32acc_queries_f16(&block_ps(split..rows), second, k, &mut blocks).unwrap();
                    prop_assert_eq!(bits(&blocks), bits(&sums), "{}: blocks", d.isa());
                }
            }
        }
    }

    #[test]
    fn f32acc_bad_lengths_are_errors() {
        for d in paths() {
            // K = 0, ragged queries / keys / accumulators, and outputs or
            // weights of the wrong size.
            assert!(d.dot_f32acc_queries_f16(&[], &[], 0, &mut []).is_err());
            assert!(d
                .dot_f32acc_queries_f16(&[1.0; 3], &[0; 4], 2, &mut [0.0; 2])
                .is_err());
            assert!(d
                .dot_f32acc_queries_f16(&[1.0; 4], &[0; 5], 2, &mut [0.0; 4])
                .is_err());
            assert!(d
                .dot_f32acc_queries_f16(&[1.0; 4], &[0; 6], 2, &mut [0.0; 5])
                .is_err());
            assert!(d
                .weighted_sum_f32acc_queries_f16(&[], &[], 0, &mut [])
                .is_err());
            assert!(d
                .weighted_sum_f32acc_queries_f16(&[1.0; 4], &[0; 5], 2, &mut [0.0; 4])
                .is_err());
            assert!(d
                .weighted_sum_f32acc_queries_f16(&[1.0; 4], &[0; 4], 2, &mut [0.0; 3])
                .is_err());
            assert!(d
                .weighted_sum_f32acc_queries_f16(&[1.0; 3], &[0; 4], 2, &mut [0.0; 4])
                .is_err());
            // The f32 forms check the same shapes.
            assert!(d.dot_f32acc_queries(&[], &[], 0, &mut []).is_err());
            assert!(d
                .dot_f32acc_queries(&[1.0; 4], &[1.0; 5], 2, &mut [0.0; 4])
                .is_err());
            assert!(d
                .dot_f32acc_queries(&[1.0; 4], &[1.0; 6], 2, &mut [0.0; 5])
                .is_err());
            assert!(d
                .weighted_sum_f32acc_queries(&[1.0; 4], &[1.0; 5], 2, &mut [0.0; 4])
                .is_err());
            assert!(d
                .weighted_sum_f32acc_queries(&[1.0; 3], &[1.0; 4], 2, &mut [0.0; 4])
                .is_err());
            // No rows: nothing to read, nothing written, and no error.
            assert!(d.dot_f32acc_queries_f16(&[1.0; 4], &[], 2, &mut []).is_ok());
            let mut accs = [7.0f32; 4];
            d.weighted_sum_f32acc_queries_f16(&[], &[], 2, &mut accs)
                .unwrap();
            assert_eq!(accs, [7.0; 4]);
        }
    }
}
