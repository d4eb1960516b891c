//! The Q6_K × Q8_K GEMV and its several-vector form: every path bit for
//! bit against scalar (also on activation bytes no quantizer made, where the `i32` sums wrap), the
//! scalar path against the definition in `i64`/`f64`, and the Q8_K
//! quantizer against its contract.

mod common;

use bitnet_kernels::kquant::{
    dequantize_row_q6k, q6k_level, quantize_row_q8k, Q6K_BLOCK, Q6K_BLOCK_BYTES, Q8K_BLOCK_BYTES,
};
use bitnet_kernels::Error;
use common::{paths, scalar, TestRng, Unaligned};
use proptest::prelude::*;

/// How a test fills weights and activations.
#[derive(Debug, Clone, Copy)]
enum Fill {
    /// Random bytes, a random finite f16 `d`, activations from random floats.
    Random,
    /// Levels 0 or 63, scales −128 or 127, activations ±127: the largest
    /// products and sums the kernels meet from real buffers.
    Extreme,
    /// Some all-zero activation blocks (d = 0) between random ones.
    ZeroBlocks,
    /// Activation bytes straight from the RNG: `sums` unrelated to `q`, so
    /// the integer sums wrap; every path must still agree.
    RawActivations,
}

fn fills() -> impl Strategy<Value = Fill> {
    prop_oneof![
        Just(Fill::Random),
        Just(Fill::Extreme),
        Just(Fill::ZeroBlocks),
        Just(Fill::RawActivations),
    ]
}

fn finite_f16(rng: &mut TestRng) -> u16 {
    loop {
        let h = rng.next() as u16;
        if h & 0x7c00 != 0x7c00 {
            break h;
        }
    }
}

fn weights(rng: &mut TestRng, m: usize, blocks: usize, fill: Fill) -> Vec<u8> {
    let mut w = vec![0u8; m * blocks * Q6K_BLOCK_BYTES];
    for block in w.chunks_exact_mut(Q6K_BLOCK_BYTES) {
        match fill {
            Fill::Extreme => {
                // All-zero or all-one bits give levels 0 or 63 per weight.
                for b in &mut block[..192] {
                    *b = if rng.below(2) == 0 { 0 } else { 0xff };
                }
                for s in &mut block[192..208] {
                    *s = if rng.below(2) == 0 { 0x80 } else { 0x7f };
                }
            }
            _ => block.iter_mut().for_each(|b| *b = rng.next() as u8),
        }
        block[208..].copy_from_slice(&finite_f16(rng).to_le_bytes());
    }
    w
}

fn activations(rng: &mut TestRng, blocks: usize, fill: Fill) -> (Vec<f32>, Vec<u8>) {
    let k = blocks * Q6K_BLOCK;
    let mut x: Vec<f32> = (0..k)
        .map(|_| match fill {
            Fill::Extreme => {
                if rng.below(2) == 0 {
                    -1.0
                } else {
                    1.0
                }
            }
            _ => rng.f32() * (1u64 << rng.below(20)) as f32,
        })
        .collect();
    if let Fill::ZeroBlocks = fill {
        for block in x.chunks_exact_mut(Q6K_BLOCK) {
            if rng.below(2) == 0 {
                block.fill(0.0);
            }
        }
    }
    let mut xq = vec![0u8; blocks * Q8K_BLOCK_BYTES];
    if let Fill::RawActivations = fill {
        xq.iter_mut().for_each(|b| *b = rng.next() as u8);
        // Keep `d` finite so the comparison is about the integer sums.
        for block in xq.chunks_exact_mut(Q8K_BLOCK_BYTES) {
            block[..4].copy_from_slice(&(rng.f32() * 0.01).to_le_bytes());
        }
    } else {
        quantize_row_q8k(&x, &mut xq).unwrap();
    }
    (x, xq)
}

/// An f16 scale's value (the conversion itself is tested in `float.rs`).
fn f16(bits: u16) -> f64 {
    let mut v = [0f32];
    scalar().f16_to_f32(&[bits], &mut v).unwrap();
    v[0] as f64
}

/// Per block: `d_w · d_x` and `Σ_i scale_i·(L_i − 32)·q_i`, from the
/// definition (no `sums`).
fn block_terms(w: &[u8], xq: &[u8]) -> Vec<(f64, i64)> {
    w.chunks_exact(Q6K_BLOCK_BYTES)
        .zip(xq.chunks_exact(Q8K_BLOCK_BYTES))
        .map(|(wb, xb)| {
            let d = f16(u16::from_le_bytes([wb[208], wb[209]]))
                * f32::from_le_bytes(xb[..4].try_into().unwrap()) as f64;
            let isum = (0..Q6K_BLOCK)
                .map(|i| {
                    let sc = wb[192 + i / 16] as i8 as i64;
                    sc * (q6k_level(wb, i) as i64 - 32) * xb[4 + i] as i8 as i64
                })
                .sum();
            (d, isum)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 128 }))]

    #[test]
    fn gemv_q6k_every_path_equals_scalar(
        m in 1usize..=9,
        blocks in prop_oneof![1usize..=3, 1usize..=12],
        seed: u64,
        fill in fills(),
        cut in (0usize..=9, 0usize..=9),
    ) {
        let mut rng = TestRng::new(seed);
        let k = blocks * Q6K_BLOCK;
        let w = weights(&mut rng, m, blocks, fill);
        let (_, xq) = activations(&mut rng, blocks, fill);
        let (lo, hi) = (cut.0.min(m), cut.1.min(m));
        let rows = lo.min(hi)..lo.max(hi);
        let mut want = vec![f32::NAN; rows.len()];
        scalar().gemv_q6k(&w, k, &xq, rows.clone(), &mut want).unwrap();
        let (uw, ux) = (Unaligned::new(&w), Unaligned::new(&xq));
        for d in paths() {
            let mut y = Unaligned::new(&vec![f32::NAN; rows.len()]);
            d.gemv_q6k(uw.get(), k, ux.get(), rows.clone(), y.get_mut()).unwrap();
            for (i, (g, v)) in y.get().iter().zip(&want).enumerate() {
                prop_assert_eq!(g.to_bits(), v.to_bits(), "{} gemv_q6k row {}", d.isa(), rows.start + i);
            }
        }
    }

    /// 1..=5 rows against 0..=9 vectors (every tile size and remainder):
    /// each output is bit for bit scalar `gemv_q6k` of its row and vector,
    /// so the LM head gives the same logits whether a token is alone in its
    /// step or not. Outputs start as NaN so an unwritten one shows.
    #[test]
    fn dot_q6k_multi_is_gemv_q6k_per_pair(
        m in 1usize..=5,
        n in 0usize..=9,
        blocks in prop_oneof![1usize..=2, 1usize..=10],
        seed: u64,
        fill in fills(),
    ) {
        let mut rng = TestRng::new(seed);
        let k = blocks * Q6K_BLOCK;
        let w = weights(&mut rng, m, blocks, fill);
        let xqs: Vec<u8> = (0..n).flat_map(|_| activations(&mut rng, blocks, fill).1).collect();
        let xrow = blocks * Q8K_BLOCK_BYTES;
        let (uw, ux) = (Unaligned::new(&w), Unaligned::new(&xqs));
        for d in paths() {
            let mut out = Unaligned::new(&vec![f32::NAN; m * n]);
            d.dot_q6k_multi(ux.get(), uw.get(), k, out.get_mut()).unwrap();
            for (i, &got) in out.get().iter().enumerate() {
                let (r, t) = (i / n, i % n);
                let mut want = [f32::NAN];
                scalar().gemv_q6k(&w, k, &xqs[t * xrow..(t + 1) * xrow], r..r + 1, &mut want).unwrap();
                prop_assert_eq!(
                    got.to_bits(),
                    want[0].to_bits(),
                    "{} dot_q6k_multi row {} vector {} of {}: {:e} vs gemv_q6k {:e}",
                    d.isa(), r, t, n, got, want[0]
                );
            }
        }
    }

    /// With activations from the quantizer the block sums are exact, so the
    /// only roundings are the f32 epilogue's: `d_w·d_x`, `Σ` to f32, their
    /// product and the running sum, ≤ `blocks + 3` per term.
    #[test]
    fn scalar_gemv_q6k_is_the_definition(
        m in 1usize..=4,
        blocks in 1usize..=12,
        seed: u64,
        fill in prop_oneof![Just(Fill::Random), Just(Fill::Extreme), Just(Fill::ZeroBlocks)],
    ) {
        let mut rng = TestRng::new(seed);
        let k = blocks * Q6K_BLOCK;
        let w = weights(&mut rng, m, blocks, fill);
        let (_, xq) = activations(&mut rng, blocks, fill);
        let mut y = vec![f32::NAN; m];
        scalar().gemv_q6k(&w, k, &xq, 0..m, &mut y).unwrap();
        let row_bytes = blocks * Q6K_BLOCK_BYTES;
        let u = f32::EPSILON as f64 / 2.0;
        let n = (blocks + 3) as f64;
        for (r, &got) in y.iter().enumerate() {
            let terms = block_terms(&w[r * row_bytes..(r + 1) * row_bytes], &xq);
            let exact: f64 = terms.iter().map(|&(d, s)| d * s as f64).sum();
            let abs: f64 = terms.iter().map(|&(d, s)| (d * s as f64).abs()).sum();
            // `d_w·d_x` may underflow: 2⁻¹⁴⁹·|Σ| per block on top.
            let tiny: f64 = terms.iter().map(|&(_, s)| s.unsigned_abs() as f64).sum::<f64>()
                * 1.401_298_464_324_817e-45;
            let tol = n * u / (1.0 - n * u) * abs + tiny;
            prop_assert!((got as f64 - exact).abs() <= tol,
                "row {r}: {got} vs {exact} (tolerance {tol})");
        }
    }

    /// `q ∈ [−127, 127]`, `sums` exact, the block maximum maps to ±127 and
    /// `|d·q − x| ≤ d·(1/2 + 400u)`: `127/max` and `x·127/max` round once
    /// each (≤ 254u of `|q| ≤ 127` levels), `max/127` once more (127u).
    #[test]
    fn quantize_row_q8k_meets_its_contract(blocks in 1usize..=4, seed: u64, zero: bool) {
        let mut rng = TestRng::new(seed);
        let fill = if zero { Fill::ZeroBlocks } else { Fill::Random };
        let (x, xq) = activations(&mut rng, blocks, fill);
        for (xs, b) in x.chunks_exact(Q6K_BLOCK).zip(xq.chunks_exact(Q8K_BLOCK_BYTES)) {
            let d = f32::from_le_bytes(b[..4].try_into().unwrap());
            let q: Vec<i8> = b[4..260].iter().map(|&v| v as i8).collect();
            let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
            if amax == 0.0 {
                prop_assert_eq!(d, 0.0);
                prop_assert!(q.iter().all(|&v| v == 0));
            } else {
                prop_assert_eq!(d, amax / 127.0);
                prop_assert!(q.iter().any(|&v| v.unsigned_abs() == 127));
            }
            for (j, s) in b[260..].chunks_exact(2).enumerate() {
                let want: i16 = q[16 * j..16 * (j + 1)].iter().map(|&v| v as i16).sum();
                prop_assert_eq!(i16::from_le_bytes([s[0], s[1]]), want);
            }
            for (&v, &qi) in xs.iter().zip(&q) {
                prop_assert!(qi != -128);
                let err = (d as f64 * qi as f64 - v as f64).abs();
                let u = f32::EPSILON as f64 / 2.0;
                prop_assert!(err <= d as f64 * (0.5 + 400.0 * u), "{v} -> {qi} · {d}");
            }
        }
    }
}

#[test]
fn dequantize_row_q6k_follows_the_level_layout() {
    let mut rng = TestRng::new(7);
    let w = weights(&mut rng, 1, 2, Fill::Random);
    let mut out = vec![0f32; 2 * Q6K_BLOCK];
    dequantize_row_q6k(&w, &mut out).unwrap();
    for (b, block) in w.chunks_exact(Q6K_BLOCK_BYTES).enumerate() {
        let d = f16(u16::from_le_bytes([block[208], block[209]])) as f32;
        for i in 0..Q6K_BLOCK {
            let want = d * block[192 + i / 16] as i8 as f32 * (q6k_level(block, i) as f32 - 32.0);
            assert_eq!(
                out[b * Q6K_BLOCK + i].to_bits(),
                want.to_bits(),
                "weight {i}"
            );
        }
    }
    // Level bits: weight 32g + l of a half, low nibble of ql[l + 32(g % 2)]
    // (high nibble for g ≥ 2), bits 2g..2g+1 of qh[l].
    let mut block = [0u8; Q6K_BLOCK_BYTES];
    block[64 + 32 + 5] = 0xa0; // half 1, g = 3, l = 5: low 4 bits 0xa
    block[128 + 32 + 5] = 0b10_00_00_00; // high 2 bits 0b10
    assert_eq!(q6k_level(&block, 128 + 96 + 5), 0b10_1010);
    assert_eq!(q6k_level(&block, 128 + 32 + 5), 0);
}

#[test]
fn bad_shapes_are_errors() {
    let d = scalar();
    let w = vec![0u8; 2 * Q6K_BLOCK_BYTES];
    let xq = vec![0u8; Q8K_BLOCK_BYTES];
    let mut y = [0f32; 2];
    assert_eq!(
        d.gemv_q6k(&w, 100, &xq, 0..2, &mut y),
        Err(Error::KNotMultiple { k: 100, block: 256 })
    );
    assert!(matches!(
        d.gemv_q6k(&w, 256, &xq[..10], 0..2, &mut y),
        Err(Error::BufferLength { .. })
    ));
    assert_eq!(
        d.gemv_q6k(&w, 256, &xq, 1..3, &mut y[..2]),
        Err(Error::RowRange {
            start: 1,
            end: 3,
            m: 2
        })
    );
    assert!(matches!(
        d.gemv_q6k(&w[..300], 256, &xq, 0..1, &mut y[..1]),
        Err(Error::BufferLength { .. })
    ));
    assert!(matches!(
        d.gemv_q6k(&w, 0, &xq, 0..1, &mut y[..1]),
        Err(Error::ZeroDim { .. })
    ));
    let mut out = [0f32; 4];
    assert_eq!(
        d.dot_q6k_multi(&xq, &w, 100, &mut out[..2]),
        Err(Error::KNotMultiple { k: 100, block: 256 })
    );
    assert!(matches!(
        d.dot_q6k_multi(&xq, &w, 0, &mut out[..2]),
        Err(Error::ZeroDim { .. })
    ));
    for (xs, ws, outs) in [
        (&xq[..10], &w[..], 0),
        (&xq[..], &w[..300], 1),
        (&xq[..], &w[..], 3),
    ] {
        assert!(matches!(
            d.dot_q6k_multi(xs, ws, 256, &mut out[..outs]),
            Err(Error::BufferLength { .. })
        ));
    }
    assert!(d.dot_q6k_multi(&[], &w, 256, &mut []).is_ok());
    assert!(d.dot_q6k_multi(&xq, &[], 256, &mut []).is_ok());
    let mut q = vec![0u8; Q8K_BLOCK_BYTES];
    assert_eq!(
        quantize_row_q8k(&[0.0; 100], &mut q),
        Err(Error::KNotMultiple { k: 100, block: 256 })
    );
    assert!(matches!(
        quantize_row_q8k(&[0.0; 256], &mut q[..100]),
        Err(Error::BufferLength { .. })
    ));
}
