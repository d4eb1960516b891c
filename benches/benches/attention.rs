//! Attention of one 2B-4T KV head (head width 128, its group of 4 query
//! heads) over 2048 cached positions, per path and cache type: the scores,
//! the softmax and the weighted sum of the values, as a decoded token runs
//! them (keys and values read in place; here they stay in L2, so this is the
//! kernels' compute, not the DRAM stream of a whole model). The f16 cache
//! takes the f32-accumulated kernels, the f32 cache the f64-accumulated ones.

use bitnet_benches::*;
use bitnet_model::synthetic::Rng;
use criterion::{BenchmarkId, Throughput};

const HEAD_DIM: usize = 128;
const QUERIES: usize = 4;
const POSITIONS: usize = 2048;

fn main() {
    let mut c = criterion();
    let mut rng = Rng::new(0x5eed_a77e);
    let mut values = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    };
    let qs = values(QUERIES * HEAD_DIM);
    let keys32 = values(POSITIONS * HEAD_DIM);
    let values32 = values(POSITIONS * HEAD_DIM);
    let scalar = bitnet_kernels::Dispatch::for_isa(bitnet_kernels::Isa::Scalar).unwrap();
    let mut keys16 = vec![0u16; keys32.len()];
    let mut values16 = vec![0u16; values32.len()];
    scalar.f32_to_f16(&keys32, &mut keys16).unwrap();
    scalar.f32_to_f16(&values32, &mut values16).unwrap();
    let scale = 1.0 / (HEAD_DIM as f32).sqrt();
    let mut scores = vec![0f32; QUERIES * POSITIONS];
    let mut acc32 = vec![0f32; QUERIES * HEAD_DIM];
    let mut acc64 = vec![0f64; QUERIES * HEAD_DIM];

    let mut g = c.benchmark_group(format!("attention/{QUERIES}x{POSITIONS}x{HEAD_DIM}"));
    g.throughput(Throughput::Elements((QUERIES * POSITIONS) as u64));
    for d in paths() {
        for cache in ["f16", "f32"] {
            let id = format!("{}-{cache}", d.isa().name());
            g.bench_function(BenchmarkId::from_parameter(&id), |b| {
                b.iter(|| {
                    if cache == "f16" {
                        d.dot_f32acc_queries_f16(&qs, &keys16, HEAD_DIM, &mut scores)
                            .unwrap();
                        for row in scores.chunks_exact_mut(POSITIONS) {
                            d.softmax_f32exp(row, scale).unwrap();
                        }
                        acc32.fill(0.0);
                        d.weighted_sum_f32acc_queries_f16(&scores, &values16, HEAD_DIM, &mut acc32)
                            .unwrap();
                    } else {
                        d.dot_f64acc_queries(&qs, &keys32, HEAD_DIM, &mut scores)
                            .unwrap();
                        for row in scores.chunks_exact_mut(POSITIONS) {
                            d.softmax_f64acc(row, scale).unwrap();
                        }
                        acc64.fill(0.0);
                        d.weighted_sum_f64acc_queries(&scores, &values32, HEAD_DIM, &mut acc64)
                            .unwrap();
                    }
                })
            });
        }
    }
    g.finish();
    c.final_summary();
}
