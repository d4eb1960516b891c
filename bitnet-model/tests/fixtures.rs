//! The model against Hugging Face transformers' logits on the shared
//! fixtures (see ../shared/fixtures/README.md for the tolerances):
//! every position, every weight format, every kernel path, both KV types.

mod common;

use bitnet_model::{Dispatch, Isa, KvCache, KvType, Logits, Model, Sequence};
use common::{argmax, cases, check_case, fixtures};

fn check_dir(dir: &str, paths: &[Dispatch], kv_types: &[KvType]) {
    let (json, cases) = cases(dir);
    for (fmt, file) in json["models"].as_object().unwrap() {
        let path = fixtures().join(dir).join(file.as_str().unwrap());
        for &d in paths {
            let model = Model::load(&path).unwrap().with_dispatch(d);
            assert_eq!(model.config.arch_name, json["arch"].as_str().unwrap());
            for &kv in kv_types {
                for (ci, case) in cases.iter().enumerate() {
                    check_case(
                        &format!("{dir} {fmt} {} {kv:?} case {ci}", d.isa()),
                        &model,
                        kv,
                        case,
                    );
                }
            }
        }
    }
}

fn every_path() -> Vec<Dispatch> {
    Isa::supported()
        .map(|i| Dispatch::for_isa(i).unwrap())
        .collect()
}

// The README's rule is met with an f32 KV cache (transformers keeps K and V
// in f32). An f16 cache rounds them to 11 bits, which moves many activations
// across int8 rounding boundaries: it is a lossy option, checked below by
// greedy agreement only.
#[test]
fn tiny_b158_matches_transformers() {
    check_dir("tiny-b158", &every_path(), &[KvType::F32]);
}

#[test]
fn tiny_llama_matches_transformers() {
    check_dir("tiny-llama", &every_path(), &[KvType::F32]);
}

#[test]
fn f16_kv_cache_keeps_greedy_text() {
    for dir in ["tiny-b158", "tiny-llama"] {
        let (_, cases) = cases(dir);
        let model = Model::load(fixtures().join(dir).join("model-i2s.gguf")).unwrap();
        for (ci, case) in cases.iter().enumerate() {
            let mut cache = KvCache::new(&model.config, 128, KvType::F16).unwrap();
            let mut logits = Vec::new();
            model
                .forward(&case.ids, &mut cache, Logits::Last, &mut logits)
                .unwrap();
            let mut worst = 0f32;
            let mut next = argmax(&logits);
            for (step, (&want, &margin)) in case.greedy.iter().zip(&case.margins).enumerate() {
                if margin < 0.05 {
                    break;
                }
                assert_eq!(
                    next, want,
                    "{dir} case {ci}: greedy step {step} with an f16 KV cache"
                );
                model
                    .forward(&[next], &mut cache, Logits::Last, &mut logits)
                    .unwrap();
                next = argmax(&logits);
                worst = worst.max(margin);
            }
        }
    }
}

#[test]
fn bad_requests_are_errors() {
    let model = Model::load(fixtures().join("tiny-b158/model-i2s.gguf")).unwrap();
    let mut cache = KvCache::new(&model.config, 4, KvType::F16).unwrap();
    let mut logits = Vec::new();
    let e = model
        .forward(&[1, 2, 3, 4, 5], &mut cache, Logits::Last, &mut logits)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("5 tokens do not fit the context of 4"),
        "{e}"
    );
    let e = model
        .forward(&[5000], &mut cache, Logits::Last, &mut logits)
        .unwrap_err();
    assert!(e.to_string().contains("token id 5000"), "{e}");
    assert_eq!(
        cache.len(),
        0,
        "a failed forward must not advance the cache"
    );
    assert!(KvCache::new(&model.config, 0, KvType::F16).is_err());
    assert!(KvCache::new(&model.config, model.config.ctx + 1, KvType::F16).is_err());
}

#[test]
fn thread_count_does_not_change_a_single_bit() {
    for dir in ["tiny-b158", "tiny-llama"] {
        let (_, cases) = cases(dir);
        let path = fixtures().join(dir).join("model-i2s.gguf");
        let run = |threads: usize| {
            let model = Model::load(&path).unwrap().with_threads(threads, false);
            let mut cache = KvCache::new(&model.config, 128, KvType::F16).unwrap();
            let mut logits = Vec::new();
            model
                .forward(&cases[4].ids, &mut cache, Logits::All, &mut logits)
                .unwrap();
            model
                .forward(&[7], &mut cache, Logits::Last, &mut logits)
                .unwrap();
            logits
        };
        let one = run(1);
        for threads in [2, 3] {
            assert!(
                run(threads) == one,
                "{dir}: {threads} threads differ from 1"
            );
        }
    }
}

#[test]
fn batched_sequences_equal_separate_runs_bit_for_bit() {
    let (_, cases) = cases("tiny-b158");
    let model = Model::load(fixtures().join("tiny-b158/model-i2s.gguf"))
        .unwrap()
        .with_threads(2, false);
    let prompts: Vec<&[u32]> = cases.iter().take(3).map(|c| c.ids.as_slice()).collect();
    let new_cache = || KvCache::new(&model.config, 128, KvType::F16).unwrap();

    // Separately: prefill, then one decode step with token 5.
    let mut alone = Vec::new();
    for p in &prompts {
        let mut cache = new_cache();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        model.forward(p, &mut cache, Logits::Last, &mut a).unwrap();
        model
            .forward(&[5], &mut cache, Logits::Last, &mut b)
            .unwrap();
        alone.push((a, b));
    }
    // Together.
    let mut caches: Vec<KvCache> = prompts.iter().map(|_| new_cache()).collect();
    let mut logits = Vec::new();
    let mut seqs: Vec<Sequence> = prompts
        .iter()
        .zip(caches.iter_mut())
        .map(|(p, c)| Sequence {
            tokens: p,
            cache: c,
        })
        .collect();
    model
        .forward_batch(&mut seqs, Logits::Last, &mut logits)
        .unwrap();
    let vocab = model.config.vocab;
    for (i, (a, _)) in alone.iter().enumerate() {
        assert!(
            &logits[i * vocab..(i + 1) * vocab] == a.as_slice(),
            "prefill of sequence {i}"
        );
    }
    let step = [5u32];
    let mut seqs: Vec<Sequence> = caches
        .iter_mut()
        .map(|c| Sequence {
            tokens: &step,
            cache: c,
        })
        .collect();
    model
        .forward_batch(&mut seqs, Logits::Last, &mut logits)
        .unwrap();
    for (i, (_, b)) in alone.iter().enumerate() {
        assert!(
            &logits[i * vocab..(i + 1) * vocab] == b.as_slice(),
            "decode step of sequence {i}"
        );
    }
    for (c, p) in caches.iter().zip(&prompts) {
        assert_eq!(c.len(), p.len() + 1);
    }
}
