//! The lookup-table layout: lossless round trips, the documented byte
//! layout, length validation, code-3 handling, and the kernels at extremes.

mod common;

use bitnet_kernels::format::{I2sMatrix, TlMatrix, WeightScale, TL_ROW_TILE};
use bitnet_kernels::{Error, QuantizedActs};
use common::*;
use proptest::prelude::*;

fn packed(codes: &[u8], m: usize, k: usize) -> Vec<u8> {
    let w = i2s(codes, m, k, 0.75);
    let mut out = vec![0xAA; TlMatrix::packed_len(m, k)];
    TlMatrix::pack(&w, &mut out).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 2 } else { 64 }, ..ProptestConfig::default() })]

    #[test]
    fn pack_unpack_round_trip(
        m in 1usize..if cfg!(miri) { 9 } else { 150 },
        kb in 1usize..if cfg!(miri) { 2 } else { 8 },
        seed in any::<u64>(),
        wfill in prop_oneof![Just(Fill::Random), Just(Fill::Zero), Just(Fill::Extreme), Just(Fill::Mixed)],
    ) {
        let k = kb * 128;
        let w = trits(&mut TestRng::new(seed), m, k, wfill);
        let codes = i2s_codes(&w, m, k);
        let bytes = Unaligned::new(&packed(&codes, m, k));
        let tl = TlMatrix::from_packed(bytes.get(), m, k, 0.75).unwrap();
        prop_assert_eq!((tl.m(), tl.k(), tl.scale()), (m, k, 0.75));
        let mut back = Unaligned::new(&vec![0u8; m * k / 4]);
        tl.unpack_i2s(back.get_mut()).unwrap();
        prop_assert_eq!(back.get(), &codes[..]);
    }

    #[test]
    fn layout_is_as_documented(
        m in 1usize..if cfg!(miri) { 9 } else { 140 },
        kb in 1usize..if cfg!(miri) { 2 } else { 4 },
        seed in any::<u64>()) {
        let k = kb * 128;
        let w = trits(&mut TestRng::new(seed), m, k, Fill::Random);
        let bytes = packed(&i2s_codes(&w, m, k), m, k);
        prop_assert_eq!(bytes.len(), m.div_ceil(TL_ROW_TILE) * TL_ROW_TILE * k / 4);
        for (n, &byte) in bytes.iter().enumerate() {
            let (j, within) = (n / (TL_ROW_TILE * k / 4), n % (TL_ROW_TILE * k / 4));
            let (s, i) = (within / TL_ROW_TILE, within % TL_ROW_TILE);
            let r = j * TL_ROW_TILE + i;
            let want = (0..4).fold(0u8, |b, c| {
                // Padding rows hold zero trits.
                let t = if r < m { w[r * k + 4 * s + c] } else { 0 };
                b << 2 | (t + 1) as u8
            });
            prop_assert_eq!(byte, want, "byte {} (tile {}, step {}, row {})", n, j, s, i);
        }
    }
}

#[test]
fn from_packed_validates_lengths() {
    let (m, k) = (33, 256);
    let len = TlMatrix::packed_len(m, k);
    assert_eq!(len, 33usize.div_ceil(TL_ROW_TILE) * TL_ROW_TILE * k / 4);
    let bytes = vec![0x55u8; len + 1];
    assert!(TlMatrix::from_packed(&bytes[..len], m, k, 1.0).is_ok());
    for bad in [len - 1, len + 1, m * k / 4, 0] {
        assert!(
            matches!(
                TlMatrix::from_packed(&bytes[..bad], m, k, 1.0),
                Err(Error::BufferLength { .. })
            ),
            "length {bad}"
        );
    }
    assert!(matches!(
        TlMatrix::from_packed(&bytes[..len], 0, k, 1.0),
        Err(Error::ZeroDim { .. })
    ));
    assert!(matches!(
        TlMatrix::from_packed(&[], m, 0, 1.0),
        Err(Error::ZeroDim { .. })
    ));
    assert!(matches!(
        TlMatrix::from_packed(&bytes[..TlMatrix::packed_len(m, 192)], m, 192, 1.0),
        Err(Error::KNotMultiple { .. })
    ));
    for s in [f32::NAN, f32::INFINITY] {
        assert!(matches!(
            TlMatrix::from_packed(&bytes[..len], m, k, s),
            Err(Error::BadScale { .. })
        ));
    }
    // Shapes whose byte count overflows are length errors, not panics.
    assert!(TlMatrix::from_packed(&bytes, usize::MAX / 2, 1 << 20, 1.0).is_err());

    let codes = vec![0x55u8; m * k / 4];
    let w = i2s(&codes, m, k, 1.0);
    let mut out = vec![0u8; len + 1];
    assert!(matches!(
        TlMatrix::pack(&w, &mut out),
        Err(Error::BufferLength { .. })
    ));
    let tl = TlMatrix::pack(&w, &mut out[..len]).unwrap();
    let mut short = vec![0u8; m * k / 4 - 1];
    assert!(matches!(
        tl.unpack_i2s(&mut short),
        Err(Error::BufferLength { .. })
    ));
}

#[test]
fn pack_rejects_code_3_and_block_scales() {
    let (m, k) = (5, 256);
    for index in [0, 17, m * k / 4 - 1] {
        for bits in [0b11_00_00_00u8, 0b00_00_00_11] {
            let mut codes = vec![0x55u8; m * k / 4];
            codes[index] = 0x55 & !bits | bits;
            let w = i2s(&codes, m, k, 1.0);
            let mut out = vec![0u8; TlMatrix::packed_len(m, k)];
            assert_eq!(
                TlMatrix::pack(&w, &mut out).unwrap_err(),
                Error::BadCode { index }
            );
        }
    }
    let codes = vec![0x55u8; m * k / 4];
    let scales = vec![1.0f32; m * k / 256];
    let w = I2sMatrix::new(&codes, m, k, WeightScale::Blocks256(&scales)).unwrap();
    let mut out = vec![0u8; TlMatrix::packed_len(m, k)];
    assert!(matches!(
        TlMatrix::pack(&w, &mut out),
        Err(Error::BadScale { .. })
    ));
}

/// Runs every path's LUT kernel and the scalar multiply-add reference on
/// the same codes and checks they agree bit for bit.
fn lut_equals_scalar_mad(tl: &TlMatrix<'_>, i2s_codes: &[u8], q: &[i8], scales: &[f32]) {
    let (m, k, n) = (tl.m(), tl.k(), scales.len());
    let sums: Vec<i32> = q
        .chunks_exact(k)
        .map(|r| r.iter().map(|&v| v as i32).sum())
        .collect();
    let x = QuantizedActs::new(q, scales, &sums, k).unwrap();
    let w = i2s(i2s_codes, m, k, tl.scale());
    let mut want = vec![f32::NAN; n * m];
    scalar().gemm_i2s(&w, &x, 0..m, &mut want).unwrap();
    for d in paths() {
        let mut y = vec![f32::NAN; n * m];
        d.gemm_tl(tl, &x, 0..m, &mut y).unwrap();
        for (i, (a, b)) in y.iter().zip(&want).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{} y[{i}] = {a}, want {b}",
                d.isa()
            );
        }
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "large shapes: too slow under Miri, where the small-shape tests run"
)]
fn unpacked_code_3_weighs_2_like_multiply_add() {
    // `from_packed` does not scan; code 3 must then agree with the
    // multiply-add kernels (weight 2) and survive the i16 bound at its worst.
    let (m, k, n) = (70, 1024, 3);
    let mut rng = TestRng::new(3);
    let i2s_bytes: Vec<u8> = (0..m * k / 4)
        .map(|i| if i % 5 == 0 { 0xFF } else { rng.next() as u8 })
        .collect();
    let w = trits(&mut rng, m, k, Fill::Zero);
    let mut bytes = packed(&i2s_codes(&w, m, k), m, k);
    // Rebuild the packed bytes from raw codes (including 3) by the layout.
    for r in 0..m {
        for c in 0..k {
            let code =
                (i2s_bytes[r * k / 4 + (c / 128) * 32 + c % 32] >> (6 - 2 * (c % 128 / 32))) & 3;
            let tile = TL_ROW_TILE;
            let at = (r / tile) * tile * k / 4 + (c / 4) * tile + r % tile;
            let shift = 6 - 2 * (c % 4);
            bytes[at] = bytes[at] & !(3 << shift) | code << shift;
        }
    }
    let tl = TlMatrix::from_packed(&bytes, m, k, 0.5).unwrap();
    let mut back = vec![0u8; m * k / 4];
    tl.unpack_i2s(&mut back).unwrap();
    assert_eq!(back, i2s_bytes);
    let mut q = acts(&mut rng, n, k, Fill::Random);
    q[..k].fill(-128);
    q[k..2 * k].fill(127);
    lut_equals_scalar_mad(&tl, &i2s_bytes, &q, &[1.0, 3.5, 0.25]);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "large shapes: too slow under Miri, where the small-shape tests run"
)]
fn lut_extremes_at_large_k() {
    // Every weight −1 against −128, over K = MAX_K: the largest dot (2^27),
    // several table chunks and a short row tile.
    let (m, k) = (3, bitnet_kernels::MAX_K);
    let w = vec![-1i8; m * k];
    let codes = i2s_codes(&w, m, k);
    let bytes = packed(&codes, m, k);
    let tl = TlMatrix::from_packed(&bytes, m, k, 1.0).unwrap();
    let q = vec![-128i8; k];
    lut_equals_scalar_mad(&tl, &codes, &q, &[1.0]);
    let mut y = vec![0.0; m];
    scalar()
        .gemm_tl(
            &tl,
            &QuantizedActs::new(&q, &[1.0], &[-128 * k as i32], k).unwrap(),
            0..m,
            &mut y,
        )
        .unwrap();
    assert_eq!(y, vec![(128 * k) as f32; m]);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "large shapes: too slow under Miri, where the small-shape tests run"
)]
fn lut_row_blocks_and_sub_ranges() {
    // More rows than one tile block (2048), a short last tile, and row
    // ranges that start and end inside tiles and blocks.
    let (m, k, n) = (2200, 384, 2);
    let mut rng = TestRng::new(11);
    let w = trits(&mut rng, m, k, Fill::Random);
    let codes = i2s_codes(&w, m, k);
    let bytes = packed(&codes, m, k);
    let tl = TlMatrix::from_packed(&bytes, m, k, 0.75).unwrap();
    let q = acts(&mut rng, n, k, Fill::Random);
    let sums: Vec<i32> = q
        .chunks_exact(k)
        .map(|r| r.iter().map(|&v| v as i32).sum())
        .collect();
    let scales = [0.5, 2.0];
    let x = QuantizedActs::new(&q, &scales, &sums, k).unwrap();
    let wi = i2s(&codes, m, k, 0.75);
    let mut want = vec![f32::NAN; n * m];
    scalar().gemm_i2s(&wi, &x, 0..m, &mut want).unwrap();
    for d in paths() {
        for rows in [0..m, 100..2150, 2047..2049, 63..65, 2190..2200] {
            let mut y = vec![f32::NAN; n * m];
            d.gemm_tl(&tl, &x, rows.clone(), &mut y).unwrap();
            for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                if rows.contains(&(i % m)) {
                    assert_eq!(a.to_bits(), b.to_bits(), "{} {rows:?} y[{i}]", d.isa());
                } else {
                    assert!(a.is_nan(), "{} {rows:?} wrote y[{i}]", d.isa());
                }
            }
        }
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "large shapes: too slow under Miri, where the small-shape tests run"
)]
fn code_3_block_sums_at_the_i16_limits() {
    // All code 3 (weight 2) against −128 makes every 128-activation block
    // sum exactly −32768, the i16 minimum; against 127 it is 32512. Code 0
    // (weight −1) gives 16384 and −16256.
    for byte in [0xFFu8, 0x00] {
        let (m, k) = (70, 1024);
        let bytes = vec![byte; TlMatrix::packed_len(m, k)];
        let tl = TlMatrix::from_packed(&bytes, m, k, 1.0).unwrap();
        let codes = vec![byte; m * k / 4];
        let mut q = vec![-128i8; 2 * k];
        q[k..].fill(127);
        lut_equals_scalar_mad(&tl, &codes, &q, &[1.0, 1.0]);
    }
}
