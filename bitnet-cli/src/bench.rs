//! `bitnet bench`: prompt processing (one batched prefill) and generation
//! (one token per step, optionally several sequences per step) in tokens
//! per second, mean ± standard deviation over repetitions. Generation rows
//! of a model too big for the caches also give the bandwidth they imply
//! (weights, and the KV cache's keys and values) and its share of the read
//! bandwidth measured in the same run at the same thread count (the best
//! probe before and after the test): how close decoding gets to the memory
//! roofline.

use crate::args::{BenchArgs, LmHeadArg, LoadArgs, Threads};
use crate::error::usage;
use crate::load::{cpus, load_with, process_env, resolve_threads};
use bitnet_model::{hw, KvCache, KvType, Logits, Model, Op, ProfileSnapshot, Sequence};
use std::time::Instant;

/// One result row; the JSON field names are part of the CLI contract.
#[derive(Debug, Clone)]
struct Row {
    test: String,
    n_prompt: usize,
    n_gen: usize,
    n_depth: usize,
    threads: usize,
    batch: usize,
    tok_s: f64,
    tok_s_sd: f64,
    /// Time per op over the measured repetitions.
    ops: ProfileSnapshot,
    /// Generation on a model that streams from memory.
    roofline: Option<Roofline>,
}

/// What a generation test read per second, against what the machine can.
#[derive(Debug, Clone, Copy)]
struct Roofline {
    /// Weights, GB/s.
    weights: f64,
    /// Keys and values of the KV cache, GB/s: at depth 2048 on
    /// BitNet-b1.58-2B-4T with an f16 cache, 157 MB per token beside the
    /// weights' 1.18 GB.
    kv_cache: f64,
    /// The read bandwidth measured at this thread count, GB/s.
    bandwidth: f64,
}

/// Below this many bytes of weights per step, decoding runs from the caches
/// and a share of the DRAM bandwidth would mean nothing.
const STREAMED_BYTES: usize = 64 << 20;

pub fn run(args: &BenchArgs) -> crate::Result<()> {
    if args.reps == 0 {
        return Err(usage("-r must be at least 1"));
    }
    if args.batch.contains(&0) {
        return Err(usage("--batch sizes must be at least 1"));
    }
    // No `-t`: one count from the environment (BITNET_THREADS, OMP_NUM_THREADS, auto).
    let flags: Vec<Option<Threads>> = if args.threads.is_empty() {
        vec![None]
    } else {
        args.threads.iter().copied().map(Some).collect()
    };
    let mut warnings = Vec::new();
    let counts = flags
        .into_iter()
        .map(|t| resolve_threads(t, &process_env, cpus(), &mut warnings))
        .collect::<crate::Result<Vec<usize>>>()?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let load_args = LoadArgs {
        model: args.model.clone(),
        threads: Some(Threads::Count(1)),
        pin: args.pin,
        kernel: None,
        lm_head: args.lm_head,
    };
    let mut l = load_with(&load_args, None, args.kv)?;
    let kv = l.kv;
    let longest = args
        .prompt
        .iter()
        .chain(&args.gen)
        .copied()
        .max()
        .unwrap_or(0)
        + 1
        + args.depth.iter().copied().max().unwrap_or(0);
    if longest > l.model.config.ctx {
        return Err(usage(format!(
            "a test needs {longest} positions but the model's context is {}",
            l.model.config.ctx
        )));
    }
    let kernel = l.model.dispatch().describe().to_string();
    // The LM head the generation tests read: the file's, re-quantized in
    // memory, or the file's behind a Q8_0 screen.
    let head = l.model.lm_head_type().name();
    let lm_head = match args.lm_head {
        Some(LmHeadArg::Screen) => format!("{head}, screened by Q8_0"),
        Some(LmHeadArg::Q8_0 | LmHeadArg::Q6K) => format!("{head}, re-quantized"),
        None => head.to_string(),
    };
    let step_bytes = l.model.bytes_per_token();
    let streamed = step_bytes >= STREAMED_BYTES && args.gen.iter().any(|&n| n > 0);
    let mut rows = Vec::new();
    for threads in counts {
        l.model.set_threads(threads, l.pin);
        // 256 MiB in all, several times any last-level cache of these machines.
        let probe = || hw::read_bandwidth((256 << 20) / threads, threads, 5);
        let mut bandwidth = streamed.then(probe);
        for &d in &args.depth {
            // llama-bench's names: `pp512`, `tg128 @ d2048`.
            let name = |test: String| match d {
                0 => test,
                d => format!("{test} @ d{d}"),
            };
            for &n in args.prompt.iter().filter(|&&n| n > 0) {
                let mut cache = context(&l.model, kv, d, n)?;
                let (rates, ops) = repeat_profiled(&l.model, args.reps, || {
                    prefill_at(&l.model, &mut cache, d, n)
                })?;
                rows.push(row(
                    name(format!("pp{n}")),
                    n,
                    0,
                    d,
                    threads,
                    1,
                    &rates,
                    ops,
                ));
            }
            for &n in args.gen.iter().filter(|&&n| n > 0) {
                for &b in &args.batch {
                    let mut caches = (0..b)
                        .map(|_| context(&l.model, kv, d, n + 1))
                        .collect::<crate::Result<Vec<_>>>()?;
                    let (rates, ops) = repeat_profiled(&l.model, args.reps, || {
                        generate_at(&l.model, &mut caches, d, n)
                    })?;
                    let mut r = row(name(format!("tg{n}")), 0, n, d, threads, b, &rates, ops);
                    // The best the probe has read at this thread count so far,
                    // before and after this test: on a host whose bandwidth
                    // drifts, one probe taken at a slow moment would overstate
                    // the share.
                    bandwidth = bandwidth.map(|bw| bw.max(probe()));
                    // One step reads the weights once for its `b` tokens
                    // (and the LM head's screen only for one sequence), and
                    // every sequence's keys and values so far: `d + 1` before
                    // the first timed step, one more each step, the new
                    // token's included.
                    let step_bytes = l.model.bytes_per_step(b == 1 && l.model.lm_head_screened());
                    let kv_bytes = b as u64 * KvCache::bytes(&l.model.config, d + (n + 3) / 2, kv);
                    let steps_per_s = r.tok_s / b as f64;
                    r.roofline = bandwidth.map(|bw| Roofline {
                        weights: steps_per_s * step_bytes as f64 / 1e9,
                        kv_cache: steps_per_s * kv_bytes as f64 / 1e9,
                        bandwidth: bw,
                    });
                    rows.push(r);
                }
            }
        }
    }
    if args.json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let ops: serde_json::Map<String, serde_json::Value> = Op::ALL
                    .iter()
                    .map(|&op| (op.name().to_string(), ms_per_token(&r.ops, op).into()))
                    .collect();
                serde_json::json!({
                    "test": r.test, "n_prompt": r.n_prompt, "n_gen": r.n_gen, "n_depth": r.n_depth,
                    "threads": r.threads,
                    "batch": r.batch, "tok_s": r.tok_s, "tok_s_sd": r.tok_s_sd, "kernel": kernel,
                    "lm_head": lm_head,
                    "ms_per_token": ops,
                    "weights_gb_s": r.roofline.map(|r| r.weights),
                    "kv_cache_gb_s": r.roofline.map(|r| r.kv_cache),
                    "read_bandwidth_gb_s": r.roofline.map(|r| r.bandwidth),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        println!(
            "| model | kernel | threads | batch | test | t/s | weights + KV cache read | of read bandwidth |"
        );
        println!("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |");
        let mut name = args
            .model
            .as_ref()
            .map_or("built-in demo".into(), |p| p.display().to_string());
        if args.lm_head.is_some() {
            name = format!("{name} (LM head {lm_head})");
        }
        for r in &rows {
            let roofline = match r.roofline {
                Some(Roofline {
                    weights,
                    kv_cache,
                    bandwidth,
                }) => format!(
                    "{weights:.1} + {kv_cache:.1} GB/s | {:.0} % of {bandwidth:.1} GB/s",
                    100.0 * (weights + kv_cache) / bandwidth
                ),
                None => " | ".into(),
            };
            println!(
                "| {name} | {kernel} | {} | {} | {} | {:.2} ± {:.2} | {roofline} |",
                r.threads, r.batch, r.test, r.tok_s, r.tok_s_sd
            );
        }
        if args.profile {
            println!();
            print!("| threads | batch | test |");
            Op::ALL.iter().for_each(|op| print!(" {} |", op.name()));
            println!();
            println!("| ---: | ---: | --- |{}", " ---: |".repeat(Op::ALL.len()));
            for r in &rows {
                print!("| {} | {} | {} |", r.threads, r.batch, r.test);
                let total = r.ops.total_ns().max(1) as f64;
                for &op in &Op::ALL {
                    let share = 100.0 * r.ops.get(op) as f64 / total;
                    print!(" {:.3} ms ({share:.0} %) |", ms_per_token(&r.ops, op));
                }
                println!();
            }
        }
    }
    Ok(())
}

/// Milliseconds of `op` per token that went through the forward pass.
fn ms_per_token(p: &ProfileSnapshot, op: Op) -> f64 {
    p.get(op) as f64 / 1e6 / p.tokens.max(1) as f64
}

/// Token ids that are valid in any vocabulary of at least 256 entries.
pub(crate) fn tokens(n: usize, salt: usize) -> Vec<u32> {
    (0..n)
        .map(|i| ((i * 131 + salt * 7 + 17) % 256) as u32)
        .collect()
}

/// A KV cache holding `depth` positions of context (one untimed prefill)
/// with room for `room` more.
fn context(model: &Model, kv: KvType, depth: usize, room: usize) -> crate::Result<KvCache> {
    let mut cache = KvCache::new(&model.config, depth + room, kv)?;
    if depth > 0 {
        model.forward(&tokens(depth, 1), &mut cache, Logits::Last, &mut Vec::new())?;
    }
    Ok(cache)
}

/// Tokens per second of one batched prefill of `n` tokens.
pub(crate) fn prefill(model: &Model, kv: KvType, n: usize) -> crate::Result<f64> {
    prefill_at(model, &mut KvCache::new(&model.config, n, kv)?, 0, n)
}

/// [`prefill`] after the first `depth` positions of `cache`.
fn prefill_at(model: &Model, cache: &mut KvCache, depth: usize, n: usize) -> crate::Result<f64> {
    cache.truncate(depth);
    let mut logits = Vec::new();
    let start = Instant::now();
    model.forward(&tokens(n, 0), cache, Logits::Last, &mut logits)?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Tokens per second of `b` sequences generating `n` tokens each, one step
/// per token for all of them (after a one-token prompt).
pub(crate) fn generate(model: &Model, kv: KvType, n: usize, b: usize) -> crate::Result<f64> {
    let mut caches = (0..b)
        .map(|_| KvCache::new(&model.config, n + 1, kv))
        .collect::<Result<Vec<_>, _>>()?;
    generate_at(model, &mut caches, 0, n)
}

/// [`generate`] for one sequence per cache, each after its first `depth`
/// positions.
fn generate_at(
    model: &Model,
    caches: &mut [KvCache],
    depth: usize,
    n: usize,
) -> crate::Result<f64> {
    let b = caches.len();
    caches.iter_mut().for_each(|c| c.truncate(depth));
    let mut logits = Vec::new();
    let mut next: Vec<[u32; 1]> = (0..b).map(|i| [tokens(1, i)[0]]).collect();
    let mut step = |next: &[[u32; 1]], caches: &mut [KvCache]| {
        let mut seqs: Vec<Sequence> = next
            .iter()
            .zip(caches.iter_mut())
            .map(|(t, c)| Sequence {
                tokens: t,
                cache: c,
            })
            .collect();
        // Greedy decoding reads only the largest logit.
        model.forward_batch(&mut seqs, Logits::Top { k: 1, exact: &[] }, &mut logits)
    };
    step(&next, caches)?;
    let start = Instant::now();
    for i in 0..n {
        for (j, t) in next.iter_mut().enumerate() {
            t[0] = tokens(1, i * b + j + 1)[0];
        }
        step(&next, caches)?;
    }
    Ok((n * b) as f64 / start.elapsed().as_secs_f64())
}

/// One warm-up run, then `reps` measured ones.
pub(crate) fn repeat(
    reps: usize,
    mut f: impl FnMut() -> crate::Result<f64>,
) -> crate::Result<Vec<f64>> {
    f()?;
    (0..reps).map(|_| f()).collect()
}

/// [`repeat`], with the model's per-op time over the measured runs.
fn repeat_profiled(
    model: &Model,
    reps: usize,
    mut f: impl FnMut() -> crate::Result<f64>,
) -> crate::Result<(Vec<f64>, ProfileSnapshot)> {
    f()?;
    let before = model.profile().snapshot();
    let rates = (0..reps).map(|_| f()).collect::<crate::Result<_>>()?;
    Ok((rates, model.profile().snapshot().since(&before)))
}

#[allow(clippy::too_many_arguments)]
fn row(
    test: String,
    n_prompt: usize,
    n_gen: usize,
    n_depth: usize,
    threads: usize,
    batch: usize,
    rates: &[f64],
    ops: ProfileSnapshot,
) -> Row {
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    let var =
        rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (rates.len().max(2) - 1) as f64;
    Row {
        test,
        n_prompt,
        n_gen,
        n_depth,
        threads,
        batch,
        tok_s: mean,
        tok_s_sd: var.sqrt(),
        ops,
        roofline: None,
    }
}
