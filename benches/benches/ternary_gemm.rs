//! Prefill / batched-decode GEMM (N > 1) on the 2B-4T shapes: GMAC/s
//! (criterion's elem/s, one element = one ternary multiply-accumulate).

use bitnet_benches::*;
use bitnet_kernels::Isa;
use criterion::{BenchmarkId, Throughput};

fn main() {
    let mut c = criterion();
    for shape in SHAPES {
        // Prefill reuses each weight N times, so one copy is the honest case.
        let pool = WeightPool::new(shape, 0);
        let mut g = c.benchmark_group(format!("gemm_macs/{}", shape.id()));
        for n in TOKENS.into_iter().filter(|&n| n > 1) {
            let x = Acts::new(n, shape.k);
            let mut y = vec![0f32; n * shape.m];
            g.throughput(Throughput::Elements((shape.m * shape.k * n) as u64));
            for d in paths() {
                // The scalar reference is a baseline, not a contender: one small N.
                if d.isa() == Isa::Scalar && n > 4 {
                    continue;
                }
                for family in FAMILIES {
                    let id = format!("{}/n{n:03}", path_id(d, family));
                    g.bench_function(BenchmarkId::from_parameter(id), |b| {
                        b.iter(|| run(d, family, &pool, 0, &x.view(), &mut y))
                    });
                }
            }
        }
        g.finish();
    }
    c.final_summary();
}
