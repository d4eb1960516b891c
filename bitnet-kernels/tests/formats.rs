//! Weight formats: lossless round trips, repacking between formats, and the
//! shared fixtures' three files (I2_S, TQ2_0, TQ1_0) decoding to the same weights.

mod common;

use bitnet_kernels::format::*;
use bitnet_kernels::Error;
use common::gguf;
use common::*;
use proptest::prelude::*;

fn row_trits(rng: &mut TestRng, k: usize) -> Vec<i8> {
    (0..k).map(|_| rng.trit()).collect()
}

proptest! {
    #[test]
    fn i2s_round_trip(kb in 1usize..if cfg!(miri) { 4 } else { 20 }, seed in any::<u64>()) {
        let trits = row_trits(&mut TestRng::new(seed), kb * I2S_BLOCK);
        let mut codes = vec![0u8; trits.len() / 4];
        encode_i2s_row(&trits, &mut codes).unwrap();
        let mut back = vec![9i8; trits.len()];
        decode_i2s_row(&codes, &mut back).unwrap();
        prop_assert_eq!(&back, &trits);
        let m = I2sMatrix::new(&codes, 1, trits.len(), WeightScale::Tensor(1.0)).unwrap();
        for (c, &t) in trits.iter().enumerate() {
            prop_assert_eq!(m.trit(0, c), t);
        }
        m.validate_codes().unwrap();
    }

    #[test]
    fn tq_formats_round_trip_and_repack_to_i2s(
        m in 1usize..if cfg!(miri) { 3 } else { 5 },
        kb in 1usize..if cfg!(miri) { 3 } else { 6 },
        seed in any::<u64>()) {
        let k = kb * TQ_BLOCK;
        let mut rng = TestRng::new(seed);
        let trits = row_trits(&mut rng, m * k);
        // f16-representable scales, different per block.
        let scales: Vec<f32> = (0..m * kb).map(|_| f16_to_f32(f32_to_f16(rng.f32()))).collect();
        let mut tq2 = vec![0u8; m * kb * TQ2_BLOCK_BYTES];
        let mut tq1 = vec![0u8; m * kb * TQ1_BLOCK_BYTES];
        let mut i2s = vec![0u8; m * k / 4];
        for r in 0..m {
            let t = &trits[r * k..(r + 1) * k];
            let s = &scales[r * kb..(r + 1) * kb];
            encode_tq2_row(t, s, &mut tq2[r * kb * TQ2_BLOCK_BYTES..(r + 1) * kb * TQ2_BLOCK_BYTES]).unwrap();
            encode_tq1_row(t, s, &mut tq1[r * kb * TQ1_BLOCK_BYTES..(r + 1) * kb * TQ1_BLOCK_BYTES]).unwrap();
            encode_i2s_row(t, &mut i2s[r * k / 4..(r + 1) * k / 4]).unwrap();
            let (mut back, mut back_s) = (vec![0i8; k], vec![0f32; kb]);
            decode_tq2_row(&tq2[r * kb * TQ2_BLOCK_BYTES..(r + 1) * kb * TQ2_BLOCK_BYTES], &mut back, &mut back_s).unwrap();
            prop_assert_eq!(&back, t);
            prop_assert_eq!(&back_s, s);
            decode_tq1_row(&tq1[r * kb * TQ1_BLOCK_BYTES..(r + 1) * kb * TQ1_BLOCK_BYTES], &mut back, &mut back_s).unwrap();
            prop_assert_eq!(&back, t);
            prop_assert_eq!(&back_s, s);
        }
        for bytes in [
            Tq2Matrix::from_gguf(&tq2, m, k).map(|w| repack(|c, s| w.repack_i2s(c, s), m, k)).unwrap(),
            Tq1Matrix::from_gguf(&tq1, m, k).map(|w| repack(|c, s| w.repack_i2s(c, s), m, k)).unwrap(),
        ] {
            prop_assert_eq!(&bytes.0, &i2s);
            prop_assert_eq!(&bytes.1, &scales);
        }
    }
}

fn repack(
    f: impl Fn(&mut [u8], &mut [f32]) -> Result<(), Error>,
    m: usize,
    k: usize,
) -> (Vec<u8>, Vec<f32>) {
    let mut codes = vec![0u8; m * k / 4];
    let mut scales = vec![0f32; m * k / TQ_BLOCK];
    f(&mut codes, &mut scales).unwrap();
    (codes, scales)
}

#[test]
fn bad_input_is_a_typed_error() {
    assert!(matches!(
        I2sMatrix::from_gguf(&[0; 64 + 31], 2, 128),
        Err(Error::BufferLength { .. })
    ));
    assert!(matches!(
        I2sMatrix::from_gguf(&[0; 64], 1, 100),
        Err(Error::KNotMultiple { k: 100, block: 128 })
    ));
    assert!(matches!(
        I2sMatrix::from_gguf(&[], 0, 128),
        Err(Error::ZeroDim { .. })
    ));
    let mut nan = vec![0u8; 32 + 32];
    nan[32..36].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(matches!(
        I2sMatrix::from_gguf(&nan, 1, 128),
        Err(Error::BadScale { .. })
    ));
    let threes = [0xffu8; 32];
    let m = I2sMatrix::new(&threes, 1, 128, WeightScale::Tensor(1.0)).unwrap();
    assert!(matches!(
        m.validate_codes(),
        Err(Error::BadCode { index: 0 })
    ));
    assert!(matches!(
        decode_i2s_row(&threes, &mut [0; 128]),
        Err(Error::BadCode { .. })
    ));
    assert!(matches!(
        Tq2Matrix::from_gguf(&[0; 65], 1, 256),
        Err(Error::BufferLength { .. })
    ));
    assert!(matches!(
        Tq1Matrix::from_gguf(&[0; 54], 1, 128),
        Err(Error::KNotMultiple { .. })
    ));
    let mut tq1 = vec![0u8; 54];
    tq1[53] = 0xfe; // f16 NaN scale
    let w = Tq1Matrix::from_gguf(&tq1, 1, 256).unwrap();
    assert!(matches!(
        w.repack_i2s(&mut [0; 64], &mut [0.0]),
        Err(Error::BadScale { .. })
    ));
    let mut tq2 = vec![0u8; 66];
    tq2[65] = 0x7c; // f16 +inf scale
    let w = Tq2Matrix::from_gguf(&tq2, 1, 256).unwrap();
    assert!(matches!(
        w.repack_i2s(&mut [0; 64], &mut [0.0]),
        Err(Error::BadScale { .. })
    ));
    assert!(matches!(
        encode_i2s_row(&[2; 128], &mut [0; 32]),
        Err(Error::BadCode { .. })
    ));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "large shapes: too slow under Miri, where the small-shape tests run"
)]
fn fixture_files_hold_identical_weights() {
    for dir in ["tiny-b158", "tiny-llama"] {
        let i2s = gguf::tensors(&gguf::fixture(dir).join("model-i2s.gguf"));
        let tq2 = gguf::tensors(&gguf::fixture(dir).join("model-tq2.gguf"));
        let tq1 = gguf::tensors(&gguf::fixture(dir).join("model-tq1.gguf"));
        let mut checked = 0;
        for (name, t) in &i2s {
            if t.ty != 36 {
                continue;
            }
            let (k, m) = (t.dims[0], t.dims[1]);
            let a = I2sMatrix::from_gguf(&t.data[..m * k / 4 + I2S_TAIL_BYTES], m, k).unwrap();
            a.validate_codes().unwrap();
            let WeightScale::Tensor(scale) = a.scale() else {
                unreachable!()
            };
            let (t2, t1) = (&tq2[name], &tq1[name]);
            assert_eq!((t2.ty, t1.ty), (35, 34), "{dir}/{name}");
            let blocks = m * k / TQ_BLOCK;
            let b = Tq2Matrix::from_gguf(&t2.data[..blocks * TQ2_BLOCK_BYTES], m, k).unwrap();
            let c = Tq1Matrix::from_gguf(&t1.data[..blocks * TQ1_BLOCK_BYTES], m, k).unwrap();
            for (what, (codes, scales)) in [
                ("TQ2_0", repack(|x, s| b.repack_i2s(x, s), m, k)),
                ("TQ1_0", repack(|x, s| c.repack_i2s(x, s), m, k)),
            ] {
                assert!(
                    codes == a.codes(),
                    "{dir}/{name}: {what} trits differ from I2_S"
                );
                assert_eq!(
                    collapse_block_scales(&scales),
                    Some(scale),
                    "{dir}/{name}: {what} scale"
                );
            }
            // Our encoders reproduce the files byte for byte.
            let mut trits = vec![0i8; k];
            let (mut row2, mut row1) = (
                vec![0u8; k / TQ_BLOCK * TQ2_BLOCK_BYTES],
                vec![0u8; k / TQ_BLOCK * TQ1_BLOCK_BYTES],
            );
            for r in 0..m {
                decode_i2s_row(a.row(r), &mut trits).unwrap();
                let s = vec![scale; k / TQ_BLOCK];
                encode_tq2_row(&trits, &s, &mut row2).unwrap();
                encode_tq1_row(&trits, &s, &mut row1).unwrap();
                assert!(
                    row2 == t2.data[r * row2.len()..(r + 1) * row2.len()],
                    "{dir}/{name} row {r}: TQ2_0 bytes"
                );
                assert!(
                    row1 == t1.data[r * row1.len()..(r + 1) * row1.len()],
                    "{dir}/{name} row {r}: TQ1_0 bytes"
                );
            }
            checked += 1;
        }
        assert!(checked >= 7, "{dir}: only {checked} ternary tensors found");
    }
}
