//! Every ternary matmul path against the scalar reference, bit for bit, and
//! the scalar reference against a from-the-definition integer dot.

mod common;

use bitnet_kernels::format::TlMatrix;
use bitnet_kernels::{dequantize_dot, Error, QuantizedActs};
use common::*;
use proptest::prelude::*;

struct Case {
    m: usize,
    k: usize,
    n: usize,
    w: Vec<i8>,
    codes: Vec<u8>,
    q: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
    w_scale: f32,
}

fn case(m: usize, k: usize, n: usize, seed: u64, wfill: Fill, afill: Fill) -> Case {
    let mut rng = TestRng::new(seed);
    let w = trits(&mut rng, m, k, wfill);
    let codes = i2s_codes(&w, m, k);
    let q = acts(&mut rng, n, k, afill);
    let scales = (0..n).map(|_| 0.5 + rng.f32().abs() * 100.0).collect();
    let sums = q
        .chunks_exact(k)
        .map(|row| row.iter().map(|&v| v as i32).sum())
        .collect();
    let w_scale = 0.01 + rng.f32().abs();
    Case {
        m,
        k,
        n,
        w,
        codes,
        q,
        scales,
        sums,
        w_scale,
    }
}

/// The output every path must produce, from the definition.
fn expected(c: &Case, rows: std::ops::Range<usize>) -> Vec<f32> {
    let mut y = vec![f32::NAN; c.n * c.m];
    for t in 0..c.n {
        for r in rows.clone() {
            let dot = trit_dot(&c.w[r * c.k..(r + 1) * c.k], &c.q[t * c.k..(t + 1) * c.k]);
            y[t * c.m + r] = dequantize_dot(dot, c.scales[t], c.w_scale);
        }
    }
    y
}

fn check_all_paths(c: &Case, rows: std::ops::Range<usize>) -> Result<(), TestCaseError> {
    let want = expected(c, rows.clone());
    let codes = Unaligned::new(&c.codes);
    let q = Unaligned::new(&c.q);
    let w = i2s(codes.get(), c.m, c.k, c.w_scale);
    let x = QuantizedActs::new(q.get(), &c.scales, &c.sums, c.k).unwrap();
    let tl_buf = TlMatrix::packed_len(c.m, c.k);
    let mut tl_bytes = Unaligned::new(&vec![0u8; tl_buf]);
    let tl = TlMatrix::pack(&w, tl_bytes.get_mut()).unwrap();
    for d in paths() {
        for (family, y) in [
            ("mad", {
                let mut y = vec![f32::NAN; c.n * c.m];
                d.gemm_i2s(&w, &x, rows.clone(), &mut y).unwrap();
                y
            }),
            ("lut", {
                let mut y = vec![f32::NAN; c.n * c.m];
                d.gemm_tl(&tl, &x, rows.clone(), &mut y).unwrap();
                y
            }),
        ] {
            for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                prop_assert!(
                    a.to_bits() == b.to_bits(),
                    "{} {family}: y[{}] (token {}, row {}) = {a}, want {b}; m={} k={} n={} rows={rows:?}",
                    d.isa(), i, i / c.m, i % c.m, c.m, c.k, c.n
                );
            }
        }
    }
    Ok(())
}

fn fill() -> impl Strategy<Value = Fill> {
    prop_oneof![
        4 => Just(Fill::Random),
        1 => Just(Fill::Zero),
        2 => Just(Fill::Extreme),
        3 => Just(Fill::Mixed),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 2 } else { 96 }, ..ProptestConfig::default() })]

    #[test]
    fn gemm_matches_reference(
        m in 1usize..if cfg!(miri) { 9 } else { 80 },
        kb in 1usize..if cfg!(miri) { 2 } else { 12 },
        n in 1usize..=if cfg!(miri) { 3 } else { 17 },
        seed in any::<u64>(),
        wfill in fill(),
        afill in fill(),
        split in any::<(u16, u16)>(),
    ) {
        let k = kb * 128;
        let c = case(m, k, n, seed, wfill, afill);
        check_all_paths(&c, 0..m)?;
        // An arbitrary sub-range, as a thread would get.
        let (a, b) = (split.0 as usize % (m + 1), split.1 as usize % (m + 1));
        check_all_paths(&c, a.min(b)..a.max(b))?;
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "large shapes: too slow under Miri, where the small-shape tests run"
)]
fn gemm_model_shapes() {
    // The 2B-4T projection shapes at a small M, the widest K, and enough
    // rows of K = 2560 for several 256 KiB panels (each pass over a panel
    // prefetches the next), in prefetching tiles (12 tokens) and the widest.
    for (m, k, n) in [
        (67, 2560, 1),
        (33, 6912, 3),
        (130, 2560, 16),
        (8, 1 << 14, 2),
        (1001, 2560, 12),
        (1001, 2560, 19),
    ] {
        check_all_paths(
            &case(m, k, n, m as u64 * 7 + k as u64, Fill::Mixed, Fill::Mixed),
            0..m,
        )
        .unwrap();
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "large shapes: too slow under Miri, where the small-shape tests run"
)]
fn gemm_worst_case_magnitudes() {
    // Every weight +1 and every activation −128 (and 127): the largest
    // possible |dot| for this K, where a 16-bit accumulator would overflow.
    for (wt, av) in [(1i8, -128i8), (1, 127), (-1, -128), (-1, 127)] {
        let (m, k, n) = (40, 8192, 5);
        let w = vec![wt; m * k];
        let q = vec![av; n * k];
        let c = Case {
            m,
            k,
            n,
            codes: i2s_codes(&w, m, k),
            w,
            sums: vec![av as i32 * k as i32; n],
            q,
            scales: vec![1.0; n],
            w_scale: 1.0,
        };
        check_all_paths(&c, 0..m).unwrap();
        assert_eq!(
            expected(&c, 0..m)[0],
            (wt as i32 * av as i32 * k as i32) as f32
        );
    }
}

#[test]
fn gemm_rejects_bad_shapes() {
    let c = case(8, 256, 2, 1, Fill::Random, Fill::Random);
    let w = i2s(&c.codes, 8, 256, 1.0);
    let x = QuantizedActs::new(&c.q, &c.scales, &c.sums, 256).unwrap();
    for d in paths() {
        let mut y = vec![0.0; 16];
        assert!(matches!(
            d.gemm_i2s(&w, &x, 0..9, &mut y),
            Err(Error::RowRange { .. })
        ));
        #[allow(clippy::reversed_empty_ranges)] // a reversed range is the bad input under test
        let reversed = 5..3;
        assert!(matches!(
            d.gemm_i2s(&w, &x, reversed, &mut y),
            Err(Error::RowRange { .. })
        ));
        let mut short = vec![0.0; 15];
        assert!(matches!(
            d.gemm_i2s(&w, &x, 0..8, &mut short),
            Err(Error::BufferLength { .. })
        ));
        let x128 = QuantizedActs::new(&c.q[..256], &c.scales, &c.sums, 128).unwrap();
        assert!(matches!(
            d.gemm_i2s(&w, &x128, 0..8, &mut y),
            Err(Error::BufferLength { .. })
        ));
        // An empty row range writes nothing and succeeds.
        let mut y = vec![7.0; 16];
        d.gemm_i2s(&w, &x, 4..4, &mut y).unwrap();
        assert!(y.iter().all(|&v| v == 7.0));
    }
    assert!(QuantizedActs::new(&[], &[], &[], 128).is_err());
}
