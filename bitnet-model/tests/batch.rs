//! Continuous batching gives every sequence exactly the tokens a lone
//! session gives it, whatever joins or leaves the batch around it.

use bitnet_model::synthetic::{write_model, Preset, TernaryFormat};
use bitnet_model::{
    Batcher, Event, FinishReason, KvType, Model, ModelError, Request, Sampler, SamplerConfig,
    Session,
};
use std::collections::HashMap;

fn tiny_model(tag: &str) -> (Model, std::path::PathBuf) {
    model_of(tag, Preset::TINY)
}

fn model_of(tag: &str, preset: Preset) -> (Model, std::path::PathBuf) {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bitnet-batch-{tag}-{}.gguf", std::process::id()));
    write_model(&path, preset, TernaryFormat::I2s, 3).unwrap();
    (Model::load(&path).unwrap(), path)
}

/// What a lone session generates for `req` (the reference).
fn alone(model: &Model, ctx: usize, req: &Request) -> (Vec<u32>, FinishReason) {
    let mut session = Session::new(model, ctx, KvType::F32).unwrap();
    let mut sampler = Sampler::new(req.sampling.clone());
    session.prefill(&req.prompt).unwrap();
    let mut out = Vec::new();
    loop {
        if out.len() >= req.max_tokens {
            return (out, FinishReason::Length);
        }
        if session.remaining() == 0 {
            return (out, FinishReason::ContextFull);
        }
        let t = session.sample(&mut sampler);
        if req.stop_tokens.contains(&t) {
            return (out, FinishReason::Stop);
        }
        out.push(t);
        if out.len() < req.max_tokens {
            session.push(t).unwrap();
        }
    }
}

fn request(i: usize) -> Request {
    let len = 1 + (i * 7) % 23;
    let prompt: Vec<u32> = (0..len).map(|j| ((i * 31 + j * 17) % 250) as u32).collect();
    let sampling = if i.is_multiple_of(2) {
        SamplerConfig::greedy()
    } else {
        SamplerConfig {
            seed: i as u64,
            ..SamplerConfig::default()
        }
    };
    Request {
        prompt,
        max_tokens: [0, 1, 5, 17, 40][i % 5],
        sampling,
        // A stop token that greedy decoding of some prompts may hit.
        stop_tokens: if i.is_multiple_of(3) { vec![7] } else { vec![] },
    }
}

/// Runs `requests` through `batcher`, admitting in order whenever a slot is
/// free, and checks each against a lone session.
fn check_against_lone_sessions(mut batcher: Batcher<'_>, requests: &[Request]) {
    let (model, ctx) = (batcher.model(), batcher.ctx());
    let mut pending = requests.iter().enumerate();
    let mut got: HashMap<u64, (Vec<u32>, Option<FinishReason>)> = HashMap::new();
    let mut events = Vec::new();
    let mut finished = 0;
    while finished < requests.len() {
        while batcher.free_slots() > 0 {
            let Some((i, r)) = pending.next() else { break };
            batcher.admit(i as u64, r.clone()).unwrap();
            got.insert(i as u64, (Vec::new(), None));
        }
        events.clear();
        batcher.step(&mut events).unwrap();
        for e in &events {
            match *e {
                Event::Token { id, token } => got.get_mut(&id).unwrap().0.push(token),
                Event::Finished { id, reason, stats } => {
                    let entry = got.get_mut(&id).unwrap();
                    assert_eq!(stats.generated, entry.0.len());
                    assert_eq!(stats.prompt_tokens, requests[id as usize].prompt.len());
                    entry.1 = Some(reason);
                    finished += 1;
                }
            }
        }
    }
    assert!(batcher.is_idle());
    for (i, r) in requests.iter().enumerate() {
        let (tokens, reason) = &got[&(i as u64)];
        let (want, want_reason) = alone(model, ctx, r);
        assert_eq!(tokens, &want, "request {i}");
        assert_eq!(reason.unwrap(), want_reason, "request {i}");
    }
}

/// With a screened LM head, a step of one sequence takes the screen and a
/// step of several the full head: both give the lone sessions' tokens
/// (which read the full head).
#[test]
fn a_screened_head_gives_the_same_tokens() {
    let (model, path) = tiny_model("screen");
    let model = model.with_screened_lm_head(2).unwrap();
    let mut requests: Vec<Request> = (0..8).map(request).collect();
    for (i, r) in requests.iter_mut().enumerate() {
        r.sampling.repeat_penalty = [1.0, 1.3, 0.8][i % 3];
    }
    for slots in [1, 3] {
        let batcher = Batcher::new(&model, slots, 48, KvType::F32).unwrap();
        check_against_lone_sessions(batcher, &requests);
    }
    std::fs::remove_file(path).unwrap();
}

#[test]
fn batched_sequences_match_lone_sessions() {
    let (model, path) = tiny_model("match");
    let model = model.with_threads(2, false);
    let ctx = 48;
    let requests: Vec<Request> = (0..14).map(request).collect();
    // Few slots and small prefill budgets: sequences join and leave
    // mid-flight, prompts are cut at every kind of boundary (a budget of 1
    // feeds one prompt token per step; 5 and 7 split prompts unevenly and
    // share steps between the end of one prompt and the start of the next),
    // and a budget above every prompt feeds whole prompts together.
    for budget in [1, 5, 7, 64] {
        let batcher = Batcher::new(&model, 4, ctx, KvType::F32)
            .unwrap()
            .with_prefill_budget(budget);
        assert_eq!(batcher.prefill_budget(), budget);
        check_against_lone_sessions(batcher, &requests);
    }
    // Reserved up front (committed caches, sized buffers): the same tokens.
    let mut batcher = Batcher::new(&model, 3, ctx, KvType::F32)
        .unwrap()
        .with_prefill_budget(6);
    batcher.reserve().unwrap();
    check_against_lone_sessions(batcher, &requests);
    std::fs::remove_file(path).unwrap();
}

/// The tokens each step produced, per sequence id.
fn step_tokens(batcher: &mut Batcher<'_>) -> Vec<u64> {
    let mut events = Vec::new();
    batcher.step(&mut events).unwrap();
    events
        .iter()
        .filter_map(|e| match e {
            Event::Token { id, .. } => Some(*id),
            Event::Finished { .. } => None,
        })
        .collect()
}

#[test]
fn prompts_are_fed_first_come_within_the_budget_while_others_keep_generating() {
    let (model, path) = tiny_model("budget");
    let greedy = |prompt_len: usize, max_tokens: usize| Request {
        prompt: (0..prompt_len as u32).map(|j| 3 + j * 11 % 200).collect(),
        max_tokens,
        sampling: SamplerConfig::greedy(),
        stop_tokens: vec![],
    };
    let mut batcher = Batcher::new(&model, 4, 64, KvType::F16)
        .unwrap()
        .with_prefill_budget(8);
    let tokens_fed = |b: &Batcher<'_>| b.model().profile().snapshot().tokens;

    // A short prompt: read in one step, whose output is its first token.
    batcher.admit(1, greedy(3, 20)).unwrap();
    assert_eq!(step_tokens(&mut batcher), [1]);
    // Three prompts of 10 arrive at once. Sequence 1 generates a token every
    // step while they are read 8 tokens a step, oldest first, and each
    // emits its first token in the step that reads its last prompt token,
    // not when the last of them is read.
    for id in [2, 3, 4] {
        batcher.admit(id, greedy(10, 20)).unwrap();
    }
    let mut fed = tokens_fed(&batcher);
    let mut per_step = Vec::new();
    let mut produced = Vec::new();
    for _ in 0..5 {
        produced.push(step_tokens(&mut batcher));
        let now = tokens_fed(&batcher);
        per_step.push(now - fed);
        fed = now;
    }
    // Step by step, the prompt tokens read are 2:8 | 2:2 3:6 | 3:4 4:4 | 4:6,
    // then only decoding; each step also feeds every generating sequence.
    assert_eq!(
        produced,
        [
            vec![1],
            vec![1, 2],
            vec![1, 2, 3],
            vec![1, 2, 3, 4],
            vec![1, 2, 3, 4]
        ]
    );
    assert_eq!(per_step, [1 + 8, 1 + 2 + 6, 2 + 4 + 4, 3 + 6, 4]);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn bad_requests_are_refused_and_cancel_frees_the_slot() {
    let (model, path) = tiny_model("errors");
    let mut batcher = Batcher::new(&model, 1, 16, KvType::F16).unwrap();
    let mut r = request(1);
    r.max_tokens = 5;
    r.prompt = vec![1; 17];
    assert!(matches!(
        batcher.admit(0, r.clone()),
        Err(ModelError::ContextFull {
            needed: 17,
            ctx: 16
        })
    ));
    r.prompt = vec![];
    assert!(batcher.admit(0, r.clone()).is_err());
    r.prompt = vec![u32::MAX];
    assert!(matches!(
        batcher.admit(0, r.clone()),
        Err(ModelError::BadToken { .. })
    ));
    r.prompt = vec![1, 2, 3];
    batcher.admit(5, r.clone()).unwrap();
    assert!(batcher.admit(6, r.clone()).is_err(), "no free slot");
    let mut events = Vec::new();
    batcher.step(&mut events).unwrap();
    assert!(batcher.cancel(5).is_some());
    assert!(batcher.cancel(5).is_none());
    assert_eq!(batcher.free_slots(), 1);
    batcher.admit(6, r).unwrap();
    // A prompt that fills the context ends at once.
    let mut full = request(0);
    full.prompt = vec![2; 16];
    full.max_tokens = 4;
    let mut batcher = Batcher::new(&model, 1, 16, KvType::F16).unwrap();
    batcher.admit(9, full).unwrap();
    events.clear();
    batcher.step(&mut events).unwrap();
    assert!(matches!(
        events[..],
        [Event::Finished {
            id: 9,
            reason: FinishReason::ContextFull,
            ..
        }]
    ));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn instances_and_phase_threads_give_identical_logits() {
    use bitnet_model::{KvCache, Logits, PhaseThreads};
    let (model, path) = tiny_model("instances");
    let ids: Vec<u32> = (0..20).map(|i| (i * 13 % 250) as u32).collect();
    let run = |m: &Model| {
        let mut cache = KvCache::new(&m.config, 32, KvType::F32).unwrap();
        let (mut all, mut logits) = (Vec::new(), Vec::new());
        m.forward(&ids[..12], &mut cache, Logits::All, &mut logits)
            .unwrap();
        all.extend_from_slice(&logits);
        for &t in &ids[12..] {
            m.forward(&[t], &mut cache, Logits::Last, &mut logits)
                .unwrap();
            all.extend_from_slice(&logits);
        }
        all
    };
    let reference = run(&model);
    let mut other = model.instance();
    other.set_threads_on(3, &[], false);
    assert_eq!(run(&other), reference);
    for (prefill, decode) in [(1, 3), (3, 1), (2, 2)] {
        other.set_phase_threads(PhaseThreads { prefill, decode });
        assert_eq!(other.phase_threads(), PhaseThreads { prefill, decode });
        assert_eq!(run(&other), reference, "prefill {prefill}, decode {decode}");
    }
    let p = other.profile().snapshot();
    assert_eq!(p.steps, 4 * 9);
    assert_eq!(p.tokens, 4 * 20);
    assert!(p.get(bitnet_model::Op::TernaryMatmul) > 0);
    assert_eq!(model.profile().snapshot().steps, 9, "instances count apart");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn bytes_per_token_counts_ternary_codes_and_the_lm_head() {
    let (model, path) = tiny_model("bytes");
    let c = &model.config;
    let q = c.heads * c.head_dim;
    let per_layer = c.hidden * (2 * q + 2 * c.kv_dim() + 3 * c.ffn) / 4;
    // The synthetic model ties its LM head to the F16 embedding.
    let head = c.vocab * c.hidden * 2;
    assert_eq!(model.bytes_per_token(), c.layers * per_layer + head);
    assert_eq!(model.instance().bytes_per_token(), model.bytes_per_token());
    std::fs::remove_file(path).unwrap();
}

/// Every token's logits from one 75-token pass are bit for bit those of
/// feeding the tokens one at a time, on every kernel path this CPU has, with
/// either KV cache type and on 2 or 3 threads. 75 leaves a remainder in
/// every grouping the pass makes: the LM head's token groups, attention's
/// 16-token query chunks and its 32-position KV blocks. Decoding splits
/// the scores by positions, so a KV head's keys are split between workers,
/// and its query heads too on 3 threads. The second model's heads are 24
/// wide: every row ends in a partial vector.
#[test]
fn logits_of_a_multi_token_pass_are_bitwise_those_of_single_steps() {
    let narrow_heads = Preset {
        name: "narrow-heads",
        hidden: 384,
        layers: 2,
        heads: 16,
        kv_heads: 4,
        ctx: 128,
        ..Preset::TINY
    };
    for (tag, preset) in [
        ("multi-token", Preset::TINY),
        ("narrow-heads", narrow_heads),
    ] {
        let (model, path) = model_of(tag, preset);
        multi_token_pass_equals_single_steps(&model);
        std::fs::remove_file(path).unwrap();
    }
}

fn multi_token_pass_equals_single_steps(model: &Model) {
    use bitnet_model::{Dispatch, Isa, KvCache, Logits};
    let ids: Vec<u32> = (0..75).map(|i| (i * 37 % 250) as u32).collect();
    let (vocab, hd) = (model.config.vocab, model.config.head_dim);
    let runs = Isa::supported()
        .flat_map(|isa| [KvType::F16, KvType::F32].map(|kv| (isa, kv)))
        .flat_map(|(isa, kv)| [2, 3].map(|threads| (isa, kv, threads)));
    for (isa, kv, threads) in runs {
        let model = model
            .instance()
            .with_dispatch(Dispatch::for_isa(isa).unwrap())
            .with_threads(threads, false);
        let mut cache = KvCache::new(&model.config, ids.len(), kv).unwrap();
        let mut together = Vec::new();
        model
            .forward(&ids, &mut cache, Logits::All, &mut together)
            .unwrap();
        let mut cache = KvCache::new(&model.config, ids.len(), kv).unwrap();
        let mut one = Vec::new();
        for (t, &id) in ids.iter().enumerate() {
            model
                .forward(&[id], &mut cache, Logits::Last, &mut one)
                .unwrap();
            let row = &together[t * vocab..(t + 1) * vocab];
            let same = row
                .iter()
                .zip(&one)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "heads {hd} wide, {isa}, {kv:?} cache, {threads} threads: token {t}'s logits differ"
            );
        }
    }
}
