//! Shapes, trits and activations from the fuzzer through every path this CPU
//! has and both matmul families; any difference from the scalar reference
//! (or any panic) is a crash.
#![no_main]

use bitnet_kernels::format::{encode_i2s_row, I2sMatrix, TlMatrix, WeightScale};
use bitnet_kernels::{Dispatch, Isa, QuantizedActs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [m, kb, n, rest @ ..] = data else { return };
    let (m, k, n) = (
        *m as usize % 48 + 1,
        (*kb as usize % 6 + 1) * 128,
        *n as usize % 9 + 1,
    );
    let byte = |i: usize| rest.get(i % rest.len().max(1)).copied().unwrap_or(0);
    let trits: Vec<i8> = (0..m * k).map(|i| (byte(i) % 3) as i8 - 1).collect();
    let mut codes = vec![0u8; m * k / 4];
    for r in 0..m {
        encode_i2s_row(
            &trits[r * k..(r + 1) * k],
            &mut codes[r * k / 4..(r + 1) * k / 4],
        )
        .unwrap();
    }
    let x: Vec<f32> = (0..n * k)
        .map(|i| (byte(i * 7 + 3) as i8) as f32 * 0.37)
        .collect();
    let scalar = Dispatch::for_isa(Isa::Scalar).unwrap();
    let (mut q, mut s, mut sums) = (vec![0i8; n * k], vec![0f32; n], vec![0i32; n]);
    let acts = scalar.quantize(&x, k, &mut q, &mut s, &mut sums).unwrap();
    let w = I2sMatrix::new(&codes, m, k, WeightScale::Tensor(0.5)).unwrap();
    let mut tl_buf = vec![0u8; TlMatrix::packed_len(m, k)];
    let tl = TlMatrix::pack(&w, &mut tl_buf).unwrap();
    let mut want = vec![0f32; n * m];
    scalar.gemm_i2s(&w, &acts, 0..m, &mut want).unwrap();
    for isa in Isa::supported() {
        let d = Dispatch::for_isa(isa).unwrap();
        let (mut q2, mut s2, mut sums2) = (vec![0i8; n * k], vec![0f32; n], vec![0i32; n]);
        let acts2: QuantizedActs<'_> = d.quantize(&x, k, &mut q2, &mut s2, &mut sums2).unwrap();
        assert_eq!(acts2.values(), acts.values(), "{isa}: quantization");
        for family in 0..2 {
            let mut y = vec![f32::NAN; n * m];
            if family == 0 {
                d.gemm_i2s(&w, &acts, 0..m, &mut y).unwrap();
            } else {
                d.gemm_tl(&tl, &acts, 0..m, &mut y).unwrap();
            }
            let same = y.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{isa} family {family}: m={m} k={k} n={n}");
        }
    }
});
