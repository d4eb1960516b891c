//! Scalar float primitives that `core` lacks, written once so every path
//! (and every build, with or without `std`) agrees on them.

/// `|x|` without libm.
#[inline(always)]
pub(crate) fn abs(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0x7fff_ffff)
}

/// Rounds to the nearest integer, ties to even, for `|x| < 2^22`: adding and
/// subtracting 1.5·2^23 leaves the rounding to the FPU's default mode, which
/// is what `cvtps2dq` and `fcvtns` do.
#[inline(always)]
pub(crate) fn round_ties_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC) - MAGIC
}

/// Correctly rounded square root.
#[inline(always)]
pub(crate) fn sqrt(x: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        x.sqrt()
    }
    #[cfg(all(not(feature = "std"), target_arch = "x86_64"))]
    {
        use core::arch::x86_64::{_mm_cvtss_f32, _mm_set_ss, _mm_sqrt_ss};
        // SAFETY: SSE is part of the x86-64 baseline.
        unsafe { _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(x))) }
    }
    #[cfg(all(not(feature = "std"), target_arch = "aarch64"))]
    {
        use core::arch::aarch64::{vdup_n_f32, vget_lane_f32, vsqrt_f32};
        // SAFETY: NEON is part of the AArch64 baseline.
        unsafe { vget_lane_f32::<0>(vsqrt_f32(vdup_n_f32(x))) }
    }
    #[cfg(all(
        not(feature = "std"),
        not(any(target_arch = "x86_64", target_arch = "aarch64"))
    ))]
    {
        // Newton on f64 from a bit-level guess converges well past f32 precision.
        if x <= 0.0 || !x.is_finite() {
            return if x == 0.0 || x == f32::INFINITY {
                x
            } else {
                f32::NAN
            };
        }
        let v = x as f64;
        let mut g = f64::from_bits((v.to_bits() >> 1) + (1023u64 << 51));
        for _ in 0..6 {
            g = 0.5 * (g + v / g);
        }
        g as f32
    }
}

/// Coefficients of the `exp` approximation shared by every path
/// (Cephes `expf`: range reduction by ln 2, degree-5 polynomial, ~1 ulp).
pub(crate) mod exp_consts {
    pub const HI: f32 = 88.376_26;
    pub const LO: f32 = -87.336_55;
    pub const LOG2E: f32 = core::f32::consts::LOG2_E;
    pub const LN2_HI: f32 = 0.693_359_4;
    pub const LN2_LO: f32 = -2.121_944_4e-4;
    pub const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        // Cephes' 5.0000001201e-1 rounds to exactly 0.5 in f32.
        0.5,
    ];
}

/// `e^x`, accurate to about 2 ulp over the normal range; inputs below
/// ≈ −87.3 give ≈ 1e-38 rather than subnormals.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    use exp_consts::*;
    let x = x.clamp(LO, HI);
    let n = round_ties_even(x * LOG2E);
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = P[0];
    for c in &P[1..] {
        p = p * r + c;
    }
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Constants of [`exp_f64`], shared by every path.
pub(crate) mod exp_f64_consts {
    /// Inputs are clamped up to this: `e^-120 < 2^-173` rounds to 0 in f32,
    /// and every intermediate stays a normal f64.
    pub const LO: f64 = -120.0;
    pub const LOG2E: f64 = core::f64::consts::LOG2_E;
    /// 1.5·2^52: adding it rounds to an integer (ties to even) and leaves
    /// that integer in the low mantissa bits.
    pub const SHIFT: f64 = 6_755_399_441_055_744.0;
    /// ln 2 split so that `n · LN2_HI` is exact for `|n| < 2^21` (fdlibm's).
    pub const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    pub const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    /// Taylor coefficients `1/k!`, `k = 12 … 0`: on `|r| ≤ ln2/2` the
    /// truncation error is below `0.35^13/13! < 2^-52`.
    pub const P: [f64; 13] = [
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
}

/// `e^x` for `x ≤ 0` in f64, within a few f64 ulps, so that rounding it to
/// f32 almost always gives the correctly rounded f32 (it is what the
/// f64-accumulated softmax uses). Every step is a separate IEEE operation
/// (no FMA), so each SIMD path computes the same bits. NaN stays NaN;
/// `x > 0` is outside the contract.
#[inline(always)]
pub(crate) fn exp_f64(x: f64) -> f64 {
    use exp_f64_consts::*;
    // `LO > x` is false for NaN, which passes through, as `maxpd(LO, x)`
    // and `fmax` pass it.
    let x = if LO > x { LO } else { x };
    let t = x * LOG2E + SHIFT;
    let n = t - SHIFT;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = P[0];
    for c in &P[1..] {
        p = p * r + c;
    }
    // The low mantissa bits of `t` hold `n` (two's complement): shifted
    // into the exponent field and rebiased they make `2^n`.
    p * f64::from_bits((t.to_bits() << 52).wrapping_add(1023 << 52))
}

/// Exact IEEE binary16 → binary32 (signalling NaNs are quieted).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if man == 0 => sign,
        0 => {
            // Subnormal: man · 2^-24, exact in f32.
            let v = man as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        // NaNs come out quiet, as F16C and `fcvtl` make them.
        0x1f if man != 0 => sign | 0x7fc0_0000 | (man << 13),
        0x1f => sign | 0x7f80_0000,
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// IEEE binary32 → binary16, round to nearest even; NaNs stay NaN (quieted),
/// overflow gives ±inf — the same results as F16C `vcvtps2ph` and `fcvtn`.
pub(crate) fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        let nan = if man != 0 {
            0x200 | (man >> 13) as u16
        } else {
            0
        };
        return sign | 0x7c00 | nan;
    }
    let e = exp - 112; // rebias 127 → 15
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    let (value, shift) = if e <= 0 {
        // Subnormal (or zero) in f16: the implicit bit joins the mantissa.
        let shift = (14 - e) as u32;
        if shift > 24 {
            return sign;
        }
        (man | 0x80_0000, shift)
    } else {
        (((e as u32) << 23) | man, 13)
    };
    let q = value >> shift;
    let rem = value & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    let up = (rem > half || (rem == half && q & 1 == 1)) as u32;
    // A carry out of the mantissa correctly bumps the exponent (up to inf).
    sign | (q + up) as u16
}

/// Lanes of the f64-accumulated dot: lane `j` sums the products at indices
/// `≡ j (mod 8)` of the longest multiple-of-8 prefix, in index order; the
/// rest is added one by one after [`reduce_f64_lanes`].
pub(crate) const F64_LANES: usize = 8;

/// The fixed tree that joins the f64 dot's lanes:
/// `((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))`, the natural
/// in-register reduction of 8, 2 × 4 and 4 × 2 f64 lanes alike, so every
/// path's dot is bitwise the scalar one.
pub(crate) fn reduce_f64_lanes(l: [f64; F64_LANES]) -> f64 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// Lanes of the attention dot (`Table::dot_queries`): lane `j` chains the
/// products at indices `≡ j (mod 16)` of the row zero-padded to a multiple
/// of 16, in index order, each by one FMA; [`reduce_f32_lanes`] joins them.
/// One zmm, two ymm or four NEON registers hold the lanes of one pair.
pub(crate) const F32_LANES: usize = 16;

/// The fixed tree that joins the attention dot's lanes: `l_j + l_{j+8}`,
/// then `+ (j + 4)`, `+ (j + 2)`, `+ (j + 1)`, each level the halving that
/// a zmm, a ymm pair, an xmm and NEON's pairwise steps all do, so every
/// path's dot is bitwise the scalar one.
pub(crate) fn reduce_f32_lanes(l: [f32; F32_LANES]) -> f32 {
    let mut v = l;
    let mut width = F32_LANES;
    while width > 1 {
        width /= 2;
        for j in 0..width {
            v[j] += v[j + width];
        }
    }
    v[0]
}

/// `a·b + c` rounded once to f32 (IEEE fusedMultiplyAdd), without libm:
/// what `vfmadd` and `fmla` compute. `a·b` is exact in f64 and `a·b + c`
/// is rounded to odd there (the round-to-nearest sum, moved one f64 ulp
/// towards the exact value when it is inexact and even); an f64 with 29
/// more bits rounded to odd then rounds to nearest f32 as the exact value
/// does, subnormal results included.
#[inline]
pub(crate) fn fma_f32(a: f32, b: f32, c: f32) -> f32 {
    let (p, c) = (a as f64 * b as f64, c as f64);
    let s = p + c;
    if !s.is_finite() {
        return s as f32;
    }
    // Knuth's TwoSum: `p + c = s + e` exactly.
    let bp = s - c;
    let e = (p - bp) + (c - (s - bp));
    let bits = s.to_bits();
    if e == 0.0 || bits & 1 == 1 {
        return s as f32;
    }
    let towards_larger_magnitude = (e > 0.0) == (s > 0.0);
    let odd = if towards_larger_magnitude {
        bits + 1
    } else {
        bits - 1
    };
    f64::from_bits(odd) as f32
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// `[-125, 0]` densely, the clamp's edge, and what the clamp must pass
    /// through or stop: inputs for the vector `exp_f64`s' tests.
    pub(crate) fn exp_f64_probes() -> Vec<f64> {
        let mut x: Vec<f64> = (0..1_000_003).map(|i| -(i as f64) * 1.25e-4).collect();
        x.extend([
            -120.0,
            -119.999_999,
            -0.0,
            f64::NEG_INFINITY,
            f64::MIN,
            f64::NAN,
        ]);
        // Where `x·log2e` lies near a half-integer, so that the rounding
        // to `n` could go either way.
        x.extend((0..=346).map(|k| -(k as f64 + 0.5) * core::f64::consts::LN_2));
        x
    }

    /// Inputs for the vector `exp`s' tests: `[-100, 100]` densely, the
    /// clamps' edges, specials, and the points where `x·log2e` is near a
    /// half-integer (the reduction's rounding).
    pub(crate) fn exp_probes() -> Vec<f32> {
        let mut x: Vec<f32> = (0..2_000_000).map(|i| -100.0 + i as f32 * 1.0e-4).collect();
        x.extend([
            exp_consts::LO,
            exp_consts::HI,
            f32::from_bits(exp_consts::LO.to_bits() + 1),
            -0.0,
            0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN,
            f32::MAX,
            f32::NAN,
        ]);
        for k in -130..=130 {
            let h = (k as f32 + 0.5) * core::f32::consts::LN_2;
            x.extend([
                h,
                f32::from_bits(h.to_bits() + 1),
                f32::from_bits(h.to_bits() - 1),
            ]);
        }
        while !x.len().is_multiple_of(16) {
            x.push(-1.0);
        }
        x
    }

    /// `got[i]` is `exp(xs[i])` bit for bit (any NaN for a NaN).
    pub(crate) fn check_exp(xs: &[f32], got: &[f32]) {
        for (&x, &g) in xs.iter().zip(got) {
            let want = exp(x);
            assert!(
                g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                "exp({x:e}): {g:e}, want {want:e}"
            );
        }
    }

    /// `got[i]` is `exp_f64(xs[i])` bit for bit (any NaN for a NaN).
    pub(crate) fn check_exp_f64(xs: &[f64], got: &[f64]) {
        for (&x, &g) in xs.iter().zip(got) {
            let want = exp_f64(x);
            assert!(
                g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                "exp_f64({x:e}): got {g:e}, scalar {want:e}"
            );
        }
    }

    #[test]
    fn f16_round_trips_every_value() {
        // Every 13th half under Miri, which runs this ~1000× slower.
        for h in (0..=u16::MAX).step_by(if cfg!(miri) { 13 } else { 1 }) {
            let f = f16_to_f32(h);
            let back = f32_to_f16(f);
            if f.is_nan() {
                assert!(f16_to_f32(back).is_nan());
            } else {
                assert_eq!(back, h, "h = {h:#06x}");
            }
        }
    }

    #[test]
    fn f32_to_f16_rounds_half_to_even() {
        // Powers of two from their bits: `powi` need not be exact (Miri
        // perturbs it, and so may a libm), and these values are ties.
        let pow2 = |e: i32| f32::from_bits(((127 + e) as u32) << 23);
        // 1 + 2^-11 is halfway between 1 and the next f16: ties to 1.
        assert_eq!(f32_to_f16(1.0 + pow2(-11)), 0x3c00);
        // 1 + 3·2^-11 is halfway between odd and even: ties up.
        assert_eq!(f32_to_f16(1.0 + 3.0 * pow2(-11)), 0x3c02);
        assert_eq!(f32_to_f16(65520.0), 0x7c00);
        assert_eq!(f32_to_f16(pow2(-25)), 0);
        assert_eq!(f32_to_f16(pow2(-25) * 1.5), 1);
    }

    #[test]
    fn exp_is_close() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            assert!(
                ((got - want) / want).abs() < 3e-7,
                "x={x} got={got} want={want}"
            );
            x += 0.173;
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri perturbs libm's exp on purpose")]
    fn exp_f64_is_within_a_few_ulps() {
        let mut worst = 0f64;
        let mut x = -120.0f64;
        while x <= 0.0 {
            let want = x.exp();
            worst = worst.max(((exp_f64(x) - want) / want).abs());
            x += 0.000_731;
        }
        assert!(worst < 4.0 * f64::EPSILON, "worst relative error {worst:e}");
        assert_eq!(exp_f64(0.0), 1.0);
        assert_eq!(exp_f64(-0.0), 1.0);
        assert_eq!(exp_f64(f64::NEG_INFINITY) as f32, 0.0);
        assert!(exp_f64(f64::NAN).is_nan());
    }

    /// Products near and below f32's subnormal range, cancellations, ties
    /// and overflow: the cases where an f64 sum rounded twice goes wrong.
    #[test]
    fn fma_f32_is_the_fused_multiply_add() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let special = [
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            f32::MIN_POSITIVE,
            1.0e-45,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1.0 + f32::EPSILON,
            1.0 - f32::EPSILON / 2.0,
        ];
        let mut checked = 0;
        // A few thousand under Miri, which runs this ~1000× slower.
        let cases = if cfg!(miri) { 3_000 } else { 3_000_000u32 };
        for i in 0..cases {
            let r = next();
            let pick = |k: u32, bits: u32| match (r >> (60 - k)) & 7 {
                0 => special[(bits % special.len() as u32) as usize],
                // Near 1 (ties of a·b + c land here), or anything finite.
                1 | 2 => f32::from_bits(0x3f80_0000 ^ (bits & 0x807f_ffff)),
                3 => f32::from_bits((bits & 0x807f_ffff) | ((bits >> 28 & 1) << 23)),
                _ => f32::from_bits(bits),
            };
            let (a, b) = (pick(0, r as u32), pick(3, (r >> 32) as u32));
            let mut c = pick(6, next() as u32);
            if i % 4 == 0 {
                // c ≈ −a·b: heavy cancellation, then a tie or near-tie.
                let p = a as f64 * b as f64;
                c = -(p as f32);
                if i % 8 == 0 {
                    c = f32::from_bits(c.to_bits() ^ (next() as u32 & 3));
                }
            }
            let (want, got) = (a.mul_add(b, c), fma_f32(a, b, c));
            if want.is_nan() {
                assert!(got.is_nan(), "fma({a:e}, {b:e}, {c:e}) = {got:e}, want NaN");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "fma({a:e}, {b:e}, {c:e})");
                checked += 1;
            }
        }
        assert!(checked > cases / 3 * 2);

        // a·b = h·(1 ± 2⁻³⁶ or 2⁻²⁴), h half an ulp of c: the sum's f64
        // rounding lands on an f32 midpoint that the exact value is not on,
        // for either parity of c, either sign, normal and subnormal c.
        let (u, v) = (1.0 + 2f32.powi(-12), 1.0 - 2f32.powi(-12));
        for k in (0..4096u32).step_by(if cfg!(miri) { 97 } else { 1 }) {
            for (c0, h) in [
                (f32::from_bits(0x3f80_0000 + k), 2f32.powi(-24)),
                (f32::from_bits(0x0040_0000 + k), 2f32.powi(-150)),
            ] {
                for b0 in [v + 2f32.powi(-24), v] {
                    for sign in [1.0f32, -1.0] {
                        // h·b0 may be below f32's range: put 2⁻⁶⁰ in a.
                        let (a, b, c) = (
                            u * 2f32.powi(-60),
                            sign * b0 * (h * 2f32.powi(60)),
                            sign * c0,
                        );
                        assert_eq!(
                            fma_f32(a, b, c).to_bits(),
                            a.mul_add(b, c).to_bits(),
                            "fma({a:e}, {b:e}, {c:e})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn reduce_f32_lanes_is_the_halving_tree() {
        let l: [f32; F32_LANES] = core::array::from_fn(|j| (1u32 << j) as f32);
        assert_eq!(reduce_f32_lanes(l), 65535.0);
        // (1e8 + 1) + (−1e8 + 1) per halving, not 1e8 + −1e8 + 1 + 1.
        let mut l = [0f32; F32_LANES];
        l[0] = 1.0e8;
        l[8] = 1.0;
        l[4] = -1.0e8;
        l[12] = 1.0;
        assert_eq!(reduce_f32_lanes(l), (1.0e8f32 + 1.0) + (-1.0e8f32 + 1.0));
    }

    #[test]
    fn round_ties_even_matches_std() {
        for v in [
            0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -127.5, 3.4999, -0.0,
        ] {
            assert_eq!(round_ties_even(v), v.round_ties_even(), "{v}");
        }
    }
}
