//! The tied LM head of 2B-4T (128256 × 2560): F16 (the file's exact weights)
//! and the re-quantized Q8_0 and Q6_K GEMVs per path, as weight GB/s against
//! the measured read bandwidth.

use bitnet_benches::*;
use bitnet_kernels::float::{Q8_0_BLOCK, Q8_0_BLOCK_BYTES};
use bitnet_kernels::kquant::{quantize_row_q8k, Q6K_BLOCK, Q6K_BLOCK_BYTES, Q8K_BLOCK_BYTES};
use bitnet_model::synthetic::Rng;
use criterion::{BenchmarkId, Throughput};
use std::time::Instant;

fn main() {
    let mut c = criterion();
    let roofline = Roofline::default();
    let read_gbs = bitnet_model::hw::read_bandwidth(POOL_BYTES, 1, 5);
    let (m, k) = (LM_HEAD.m, LM_HEAD.k);
    let mut rng = Rng::new(88172645463325252);
    // Halves in ±[2^-8, 2^-1): ordinary embedding magnitudes.
    let f16: Vec<u16> = (0..m * k)
        .map(|_| (0x1c00 + rng.next_u64() % 0x1800) as u16 | ((rng.next_u64() as u16) & 0x8000))
        .collect();
    let q8: Vec<u8> = (0..m * k / Q8_0_BLOCK * Q8_0_BLOCK_BYTES)
        .map(|i| {
            if i % Q8_0_BLOCK_BYTES < 2 {
                [0x00, 0x20][i % 2]
            } else {
                rng.next_u64() as u8
            }
        })
        .collect();
    // Random levels and scales; d = 2^-10.
    let q6: Vec<u8> = (0..m * k / Q6K_BLOCK * Q6K_BLOCK_BYTES)
        .map(|i| match i % Q6K_BLOCK_BYTES {
            208 => 0x00,
            209 => 0x14,
            _ => rng.next_u64() as u8,
        })
        .collect();
    let x: Vec<f32> = (0..k)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    let mut xq = vec![0u8; k / Q6K_BLOCK * Q8K_BLOCK_BYTES];
    quantize_row_q8k(&x, &mut xq).unwrap();
    let mut y = vec![0f32; m];

    let mut g = c.benchmark_group(format!("lm_head_bytes/{}", LM_HEAD.id()));
    for d in paths() {
        for (fmt, bytes) in [
            ("f16", f16.len() * 2),
            ("q8_0", q8.len()),
            ("q6_k", q6.len()),
        ] {
            let id = format!("{}-{fmt}", d.isa().name());
            g.throughput(Throughput::Bytes(bytes as u64));
            g.bench_function(BenchmarkId::from_parameter(&id), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        match fmt {
                            "f16" => d.gemv_f16(&f16, k, &x, 0..m, &mut y).unwrap(),
                            "q8_0" => d.gemv_q8_0(&q8, k, &x, 0..m, &mut y).unwrap(),
                            _ => d.gemv_q6k(&q6, k, &xq, 0..m, &mut y).unwrap(),
                        }
                    }
                    let t = start.elapsed();
                    roofline.record(
                        &format!("lm_head {id}"),
                        bytes,
                        iters,
                        t.as_secs_f64() / iters as f64,
                    );
                    t
                })
            });
        }
    }
    g.finish();
    c.final_summary();
    roofline.print(read_gbs);
}
