//! `bitnet bench`: prompt processing (one batched prefill) and generation
//! (one token per step, optionally several sequences per step) in tokens
//! per second, mean ± standard deviation over repetitions.

use crate::args::{BenchArgs, KvArg, ModelArgs, Threads};
use crate::load::load;
use bitnet_model::{KvCache, KvType, Logits, Model, Sequence};
use std::time::Instant;

/// One result row; the JSON field names are part of the CLI contract.
#[derive(Debug, Clone)]
struct Row {
    test: String,
    n_prompt: usize,
    n_gen: usize,
    threads: usize,
    batch: usize,
    tok_s: f64,
    tok_s_sd: f64,
}

pub fn run(args: &BenchArgs) -> crate::Result<()> {
    if args.reps == 0 {
        return Err("-r must be at least 1".into());
    }
    if args.batch.contains(&0) {
        return Err("--batch sizes must be at least 1".into());
    }
    let model_args = ModelArgs {
        model: args.model.clone(),
        threads: Threads::Count(1),
        pin: args.pin,
        ctx: None,
        kv: args.kv,
    };
    let mut l = load(&model_args)?;
    let kv = match args.kv {
        KvArg::F16 => KvType::F16,
        KvArg::F32 => KvType::F32,
    };
    let longest = args
        .prompt
        .iter()
        .chain(&args.gen)
        .copied()
        .max()
        .unwrap_or(0)
        + 1;
    if longest > l.model.config.ctx {
        return Err(format!(
            "a test needs {longest} positions but the model's context is {}",
            l.model.config.ctx
        )
        .into());
    }
    let kernel = l.model.dispatch().describe().to_string();
    let mut rows = Vec::new();
    for t in &args.threads {
        let threads = t.resolve();
        l.model.set_threads(threads, args.pin);
        for &n in args.prompt.iter().filter(|&&n| n > 0) {
            let rates = repeat(args.reps, || prefill(&l.model, kv, n))?;
            rows.push(row(format!("pp{n}"), n, 0, threads, 1, &rates));
        }
        for &n in args.gen.iter().filter(|&&n| n > 0) {
            for &b in &args.batch {
                let rates = repeat(args.reps, || generate(&l.model, kv, n, b))?;
                rows.push(row(format!("tg{n}"), 0, n, threads, b, &rates));
            }
        }
    }
    if args.json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "test": r.test, "n_prompt": r.n_prompt, "n_gen": r.n_gen, "threads": r.threads,
                    "batch": r.batch, "tok_s": r.tok_s, "tok_s_sd": r.tok_s_sd, "kernel": kernel,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        println!("| model | kernel | threads | batch | test | t/s |");
        println!("| --- | --- | ---: | ---: | --- | ---: |");
        let name = args
            .model
            .as_ref()
            .map_or("built-in synthetic tiny".into(), |p| {
                p.display().to_string()
            });
        for r in &rows {
            println!(
                "| {name} | {kernel} | {} | {} | {} | {:.2} ± {:.2} |",
                r.threads, r.batch, r.test, r.tok_s, r.tok_s_sd
            );
        }
    }
    Ok(())
}

/// Token ids that are valid in any vocabulary of at least 256 entries.
pub(crate) fn tokens(n: usize, salt: usize) -> Vec<u32> {
    (0..n)
        .map(|i| ((i * 131 + salt * 7 + 17) % 256) as u32)
        .collect()
}

/// Tokens per second of one batched prefill of `n` tokens.
pub(crate) fn prefill(model: &Model, kv: KvType, n: usize) -> crate::Result<f64> {
    let mut cache = KvCache::new(&model.config, n, kv)?;
    let mut logits = Vec::new();
    let start = Instant::now();
    model.forward(&tokens(n, 0), &mut cache, Logits::Last, &mut logits)?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Tokens per second of `b` sequences generating `n` tokens each, one step
/// per token for all of them (after a one-token prompt).
pub(crate) fn generate(model: &Model, kv: KvType, n: usize, b: usize) -> crate::Result<f64> {
    let mut caches: Vec<KvCache> = (0..b)
        .map(|_| KvCache::new(&model.config, n + 1, kv))
        .collect::<Result<_, _>>()?;
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
        model.forward_batch(&mut seqs, Logits::Last, &mut logits)
    };
    step(&next, &mut caches)?;
    let start = Instant::now();
    for i in 0..n {
        for (j, t) in next.iter_mut().enumerate() {
            t[0] = tokens(1, i * b + j + 1)[0];
        }
        step(&next, &mut caches)?;
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

fn row(
    test: String,
    n_prompt: usize,
    n_gen: usize,
    threads: usize,
    batch: usize,
    rates: &[f64],
) -> Row {
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    let var =
        rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (rates.len().max(2) - 1) as f64;
    Row {
        test,
        n_prompt,
        n_gen,
        threads,
        batch,
        tok_s: mean,
        tok_s_sd: var.sqrt(),
    }
}
