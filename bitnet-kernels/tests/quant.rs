//! Activation quantization: every path bit for bit against scalar, and the
//! scalar path against the definition computed with std's float ops.

mod common;

use bitnet_kernels::{Error, RowScale, ACT_MAX_FLOOR};
use common::*;
use proptest::prelude::*;

/// The contract, written with std: scale = 127 / max(max|x|, 1e-5),
/// q = round-half-even(x·scale) clamped to [-128, 127].
fn definition(x: &[f32]) -> (Vec<i8>, RowScale) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = 127.0 / amax.max(ACT_MAX_FLOOR);
    let q: Vec<i8> = x
        .iter()
        .map(|v| (v * scale).round_ties_even().clamp(-128.0, 127.0) as i8)
        .collect();
    let sum = q.iter().map(|&v| v as i32).sum();
    (q, RowScale { scale, sum })
}

#[derive(Debug, Clone, Copy)]
enum Values {
    Unit,
    Huge,
    Tiny,
    /// Multiples of 0.5 with max 127: scale is exactly 1, so ties occur.
    Ties,
    Zero,
}

fn row(seed: u64, len: usize, kind: Values) -> Vec<f32> {
    let mut rng = TestRng::new(seed);
    let mut x: Vec<f32> = (0..len)
        .map(|_| match kind {
            Values::Unit => rng.f32(),
            Values::Huge => rng.f32() * 3.0e37,
            Values::Tiny => rng.f32() * 1.0e-6,
            Values::Ties => (rng.below(509) as f32 - 254.0) * 0.5,
            Values::Zero => 0.0,
        })
        .collect();
    if let Values::Ties = kind {
        x[0] = 127.0;
    }
    x
}

fn check(x: &[f32]) -> Result<(), TestCaseError> {
    let (want_q, want) = definition(x);
    for d in paths() {
        let src = Unaligned::new(x);
        let mut q = Unaligned::new(&vec![0x55i8; x.len()]);
        let got = d.quantize_row_i8(src.get(), q.get_mut()).unwrap();
        prop_assert_eq!(
            got.scale.to_bits(),
            want.scale.to_bits(),
            "{} scale",
            d.isa()
        );
        prop_assert_eq!(got.sum, want.sum, "{} sum", d.isa());
        prop_assert!(q.get() == want_q.as_slice(), "{} values differ", d.isa());
    }
    Ok(())
}

fn values() -> impl Strategy<Value = Values> {
    prop_oneof![
        Just(Values::Unit),
        Just(Values::Huge),
        Just(Values::Tiny),
        Just(Values::Ties),
        Just(Values::Zero)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 128 }, ..ProptestConfig::default() })]

    #[test]
    fn quantize_matches_definition(len in 1usize..600, seed in any::<u64>(), kind in values()) {
        check(&row(seed, len, kind))?;
    }

    #[test]
    #[cfg_attr(miri, ignore = "large shapes: too slow under Miri, where the small-shape tests run")]
    fn quantize_long_rows(len in 2000usize..7000, seed in any::<u64>(), kind in values()) {
        check(&row(seed, len, kind))?;
    }
}

#[test]
fn quantize_edge_rows() {
    check(&[-1.0]).unwrap();
    check(&[0.0; 3]).unwrap();
    check(&[f32::MAX, -f32::MAX, 1.0]).unwrap();
    check(&[-0.0, 1e-30, -1e-30]).unwrap();
    // The largest magnitude is negative: it maps to −127, never −128.
    let (q, _) = definition(&[-3.0, 1.0]);
    assert_eq!(q, [-127, 42]);
}

#[test]
fn batched_quantize_and_errors() {
    let x = row(7, 3 * 256, Values::Unit);
    for d in paths() {
        let (mut q, mut s, mut sums) = (vec![0i8; 768], vec![0f32; 3], vec![0i32; 3]);
        let acts = d.quantize(&x, 256, &mut q, &mut s, &mut sums).unwrap();
        assert_eq!((acts.n(), acts.k()), (3, 256));
        for t in 0..3 {
            let (want_q, want) = definition(&x[t * 256..(t + 1) * 256]);
            assert_eq!(acts.row(t), want_q.as_slice());
            assert_eq!((acts.scale(t), acts.sum(t)), (want.scale, want.sum));
        }
        let err = d.quantize(&x, 255, &mut q, &mut s, &mut sums).unwrap_err();
        assert!(matches!(err, Error::BufferLength { .. }), "{err}");
        assert!(d.quantize(&x, 0, &mut q, &mut s, &mut sums).is_err());
        assert!(d.quantize(&x, 256, &mut q[1..], &mut s, &mut sums).is_err());
        assert!(d.quantize(&x, 256, &mut q, &mut s[1..], &mut sums).is_err());
        assert!(d.quantize_row_i8(&x[..10], &mut q[..9]).is_err());
    }
}
