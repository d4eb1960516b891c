//! Decode-style GEMV (N = 1) on the 2B-4T shapes: effective weight GB/s for
//! every path and family, against the read bandwidth measured in this run.

use bitnet_benches::*;
use criterion::{BenchmarkId, Throughput};
use std::time::Instant;

fn main() {
    let mut c = criterion();
    let roofline = Roofline::default();
    let read_gbs = bitnet_model::hw::read_bandwidth(POOL_BYTES, 1, 5);

    for shape in SHAPES {
        let pool = WeightPool::new(shape, POOL_BYTES);
        let x = Acts::new(1, shape.k);
        let mut y = vec![0f32; shape.m];
        let mut g = c.benchmark_group(format!("gemv_bytes/{}", shape.id()));
        for d in paths() {
            for family in FAMILIES {
                let id = path_id(d, family);
                g.throughput(Throughput::Bytes(pool.bytes(family) as u64));
                g.bench_function(BenchmarkId::from_parameter(&id), |b| {
                    let mut i = 0;
                    b.iter_custom(|iters| {
                        let start = Instant::now();
                        for _ in 0..iters {
                            // A different copy each call: the weights come from DRAM.
                            run(d, family, &pool, i, &x.view(), &mut y);
                            i += 1;
                        }
                        let t = start.elapsed();
                        roofline.record(
                            &format!("gemv {} {id}", shape.id()),
                            pool.bytes(family),
                            iters,
                            t.as_secs_f64() / iters as f64,
                        );
                        t
                    })
                });
            }
        }
        g.finish();
    }
    c.final_summary();
    roofline.print(read_gbs);
}
