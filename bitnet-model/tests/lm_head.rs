//! The opt-in re-quantized LM head: fewer bytes per token, logits close to
//! the exact head's, the embedding lookups untouched.

mod common;

use bitnet_model::gguf::TensorType;
use bitnet_model::{KvCache, KvType, Logits, Model, Sampler, SamplerConfig, Session};
use common::{argmax, cases, fixtures};

fn logits(model: &Model, ids: &[u32]) -> Vec<f32> {
    logits_of(model, ids, Logits::All)
}

fn logits_of(model: &Model, ids: &[u32], which: Logits) -> Vec<f32> {
    let mut cache = KvCache::new(&model.config, ids.len(), KvType::F32).unwrap();
    let mut out = Vec::new();
    model.forward(ids, &mut cache, which, &mut out).unwrap();
    out
}

#[test]
fn requantized_heads_stay_close_and_read_fewer_bytes() {
    let path = fixtures().join("tiny-b158/model-i2s.gguf");
    let exact = Model::load(&path).unwrap();
    let (_, cases) = cases("tiny-b158");
    let (vocab, hidden) = (exact.config.vocab, exact.config.hidden);
    assert_eq!(exact.lm_head_type(), TensorType::F16);
    for (ty, row_bytes, max_err) in [
        (TensorType::Q8_0, hidden / 32 * 34, 0.05f32),
        (TensorType::Q6K, hidden / 256 * 210, 0.1),
    ] {
        let model = Model::load(&path).unwrap().with_lm_head(ty, 2).unwrap();
        assert_eq!(model.lm_head_type(), ty);
        assert_eq!(model.owned_weight_bytes(), vocab * row_bytes);
        assert_eq!(
            exact.bytes_per_token() - model.bytes_per_token(),
            vocab * (hidden * 2 - row_bytes)
        );
        let (mut agree, mut total) = (0, 0);
        for case in &cases {
            let (want, got) = (logits(&exact, &case.ids), logits(&model, &case.ids));
            for (w, g) in want.chunks_exact(vocab).zip(got.chunks_exact(vocab)) {
                let err = w
                    .iter()
                    .zip(g)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(err < max_err, "{ty:?}: max |Δlogit| {err}");
                agree += usize::from(argmax(w) == argmax(g));
                total += 1;
            }
            // The last token alone takes the one-token GEMV; inside the
            // batch it took the per-row path: the same logits, bit for bit.
            let last = logits_of(&model, &case.ids, Logits::Last);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&last), bits(&got[got.len() - vocab..]), "{ty:?}");
        }
        assert!(
            agree * 100 >= total * 95,
            "{ty:?}: top-1 agrees at {agree}/{total}"
        );
    }
}

#[test]
fn requantizing_needs_a_block_format_and_no_instances() {
    let path = fixtures().join("tiny-b158/model-i2s.gguf");
    let model = Model::load(&path).unwrap();
    let _other = model.instance();
    let err = model.with_lm_head(TensorType::Q8_0, 1).unwrap_err();
    assert!(err.to_string().contains("before making instances"), "{err}");
    let err = Model::load(&path)
        .unwrap()
        .with_lm_head(TensorType::F32, 1)
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot re-quantize to F32"),
        "{err}"
    );
}

/// The logits a sampler reads under `config` after `history`: the penalized
/// values of its top-k (best first, ids breaking ties) and of the penalized
/// ids, as (id, bits).
fn read_by(config: &SamplerConfig, logits: &[f32], history: &[u32]) -> Vec<(u32, u32)> {
    let window = &history[history.len().saturating_sub(config.repeat_last_n)..];
    let penalized = |id: u32| config.repeat_penalty != 1.0 && window.contains(&id);
    let mut order: Vec<(f32, u32)> = logits
        .iter()
        .enumerate()
        .map(|(id, &v)| {
            let v = match penalized(id as u32) {
                true if v > 0.0 => v / config.repeat_penalty,
                true => v * config.repeat_penalty,
                false => v,
            };
            (v, id as u32)
        })
        .collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let k = if config.temperature == 0.0 {
        1
    } else {
        config.top_k
    };
    let mut read: Vec<u32> = order[..k].iter().map(|&(_, id)| id).collect();
    read.extend(window.iter().filter(|&&id| penalized(id)));
    read.sort_unstable();
    read.dedup();
    read.iter()
        .map(|&id| (id, logits[id as usize].to_bits()))
        .collect()
}

#[test]
fn a_screened_head_gives_the_sampler_the_file_heads_logits() {
    let configs = [
        SamplerConfig::greedy(),
        SamplerConfig {
            repeat_penalty: 1.3,
            ..SamplerConfig::greedy()
        },
        SamplerConfig::default(),
        SamplerConfig {
            temperature: 1.5,
            top_k: 5,
            repeat_penalty: 0.7,
            repeat_last_n: 8,
            seed: 7,
            ..SamplerConfig::default()
        },
    ];
    let mut screened_steps = 0;
    for dir in ["tiny-b158", "tiny-llama"] {
        let path = fixtures().join(dir).join("model-i2s.gguf");
        let exact = Model::load(&path).unwrap();
        let screened = Model::load(&path)
            .unwrap()
            .with_screened_lm_head(2)
            .unwrap();
        assert!(screened.lm_head_screened() && !exact.lm_head_screened());
        let vocab = exact.config.vocab;
        let row_bytes = exact.config.hidden / 32 * 34;
        assert_eq!(screened.owned_weight_bytes(), vocab * (row_bytes + 4));
        assert!(screened.bytes_per_token() < exact.bytes_per_token());
        assert_eq!(screened.bytes_per_step(false), exact.bytes_per_token());
        let (_, cases) = cases(dir);
        for (case, config) in cases.iter().zip(configs.iter().cycle()) {
            let mut a = Session::new(&exact, 64, KvType::F16).unwrap();
            let mut b = Session::new(&screened, 64, KvType::F16).unwrap();
            let (mut sa, mut sb) = (Sampler::new(config.clone()), Sampler::new(config.clone()));
            let prompt = &case.ids[..case.ids.len().min(16)];
            a.prefill(prompt).unwrap();
            b.prefill(prompt).unwrap();
            for step in 0..24 {
                let (want, got) = (a.logits(), b.logits());
                // Lower bounds everywhere, the exact values where the
                // sampler reads.
                assert!(
                    want.iter().zip(got).all(|(w, g)| g <= w),
                    "{dir} step {step}"
                );
                let history = a.tokens();
                assert_eq!(
                    read_by(config, want, history),
                    read_by(config, got, history)
                );
                screened_steps += usize::from(want != got);
                let (ta, tb) = (a.sample(&mut sa), b.sample(&mut sb));
                assert_eq!(ta, tb, "{dir} step {step} {config:?}");
                a.push(ta).unwrap();
                b.push_for(tb, &mut sb).unwrap();
            }
        }
    }
    assert!(screened_steps > 50, "screened {screened_steps} steps");
}

#[test]
fn a_screened_head_falls_back_to_the_file_head() {
    let path = fixtures().join("tiny-b158/model-i2s.gguf");
    let exact = Model::load(&path).unwrap();
    let screened = Model::load(&path)
        .unwrap()
        .with_screened_lm_head(1)
        .unwrap();
    let ids = [1, 20, 300, 4, 5];
    let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let want = bits(logits_of(&exact, &ids, Logits::Last));
    // Every row read, unordered or out-of-range exact ids, a k past 256 or
    // of 0: the full head. Without a screen, `Top` is `Last`.
    for which in [
        Logits::Last,
        Logits::Top { k: 0, exact: &[] },
        Logits::Top { k: 257, exact: &[] },
        Logits::Top {
            k: 1,
            exact: &[5, 3],
        },
        Logits::Top {
            k: 1,
            exact: &[3, 3],
        },
        Logits::Top {
            k: 1,
            exact: &[1 << 20],
        },
    ] {
        assert_eq!(bits(logits_of(&screened, &ids, which)), want, "{which:?}");
    }
    let top = Logits::Top { k: 3, exact: &[] };
    assert_eq!(bits(logits_of(&exact, &ids, top)), want);
    // Several tokens' logits take the full head too.
    let all = bits(logits_of(&exact, &ids, Logits::All));
    assert_eq!(bits(logits_of(&screened, &ids, Logits::All)), all);
}

#[test]
fn only_the_files_head_can_be_screened() {
    let path = fixtures().join("tiny-b158/model-i2s.gguf");
    let err = Model::load(&path)
        .unwrap()
        .with_lm_head(TensorType::Q8_0, 1)
        .unwrap()
        .with_screened_lm_head(1)
        .unwrap_err();
    assert!(err.to_string().contains("cannot be screened"), "{err}");
    let model = Model::load(&path).unwrap();
    let _other = model.instance();
    let err = model.with_screened_lm_head(1).unwrap_err();
    assert!(err.to_string().contains("before making instances"), "{err}");
    // Re-quantizing drops the screen (it would screen the old head).
    let model = Model::load(&path)
        .unwrap()
        .with_screened_lm_head(1)
        .unwrap()
        .with_lm_head(TensorType::Q8_0, 1)
        .unwrap();
    assert!(!model.lm_head_screened());
}
