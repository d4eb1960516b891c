//! End to end on the 2B-4T shape (synthetic I2_S weights, F16 tied
//! embedding, 1.18 GB): one batched prefill of 128 tokens and one decode
//! step at position 128, on 1 and 2 threads. The model file is written once
//! to the temp directory and reused (`BITNET_BENCH_MODEL` names another).

use bitnet_benches::criterion;
use bitnet_model::synthetic::{write_model, Preset, TernaryFormat};
use bitnet_model::{KvCache, KvType, Logits, Model};
use criterion::{BenchmarkId, Throughput};
use std::path::PathBuf;

const PROMPT: usize = 128;

fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BITNET_BENCH_MODEL") {
        return p.into();
    }
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bitnet-bench-2b4t-i2s.gguf");
    if !path.exists() {
        write_model(&path, Preset::B2_4T, TernaryFormat::I2s, 1).expect("writing the bench model");
    }
    path
}

fn prompt() -> Vec<u32> {
    (0..PROMPT as u32).map(|i| (i * 131 + 17) % 256).collect()
}

fn main() {
    let mut c = criterion();
    let mut model = Model::load(model_path()).expect("loading the bench model");
    let mut logits = Vec::new();
    for threads in [1, 2] {
        model.set_threads(threads, false);
        let mut g = c.benchmark_group("model_step_2b4t");
        g.sample_size(10);
        g.throughput(Throughput::Elements(PROMPT as u64));
        g.bench_function(BenchmarkId::new("prefill128", threads), |b| {
            let mut cache = KvCache::new(&model.config, PROMPT + 1, KvType::F16).unwrap();
            b.iter(|| {
                cache.clear();
                model
                    .forward(&prompt(), &mut cache, Logits::Last, &mut logits)
                    .unwrap();
            })
        });
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("decode_at128", threads), |b| {
            let mut cache = KvCache::new(&model.config, PROMPT + 1, KvType::F16).unwrap();
            model
                .forward(&prompt(), &mut cache, Logits::Last, &mut logits)
                .unwrap();
            b.iter(|| {
                cache.truncate(PROMPT);
                model
                    .forward(&[42], &mut cache, Logits::Last, &mut logits)
                    .unwrap();
            })
        });
        g.finish();
    }
    c.final_summary();
}
