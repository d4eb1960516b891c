//! `bitnet batch`: a file of prompts through several model instances in one
//! process. Instances share the mapped weights, each runs its own pinned
//! workers on its own cores and a [`Batcher`] over up to B sequences; prompts
//! are dealt from one shared queue. Results are written in input order as
//! they complete (out-of-order completions wait for the ones before them).
//!
//! Output contract, one JSON object per line:
//! - success: `id`, `prompt`, `text`, `tokens` (generated ids), `prompt_tokens`,
//!   `stop` (`length` | `stop` | `context_full`), `timings` (`ttft_ms`,
//!   `total_ms`, `decode_tok_s`, `instance`);
//! - a prompt that cannot run (longer than the context, empty): `id`,
//!   `prompt`, `error`. The rest of the batch goes on; such a record counts
//!   as done on resume (delete its line to retry, e.g. with a larger `-c`).
//!
//! Resuming: ids already in the output file are skipped and new results
//! appended; when a resumed run completes, the file is rewritten in input
//! order. Ctrl-C stops admitting prompts, drops the unfinished ones and writes
//! every finished result (a second Ctrl-C exits at once).

use crate::args::{BatchArgs, LoadArgs, ModelArgs, PinArg, Strategy, Threads};
use crate::error::usage;
use crate::load::{load, process_env, sampling, thread_choice};
use crate::progress::Progress;
use crate::tuned::Tuned;
use bitnet_model::{pool::ThreadPool, Tokenizer};
use bitnet_model::{
    Batcher, Event, Model, Op, PhaseThreads, ProfileSnapshot, Request, SamplerConfig, TextStream,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// At most this many sequences per instance when neither `--batch-size` nor
/// a profile says: the prompts are split evenly over the instances up to it
/// (12 prompts on one instance run as one batch of 12, not 8 then 4). A
/// batched step costs about the same per token from N ≈ 8 up, and a first
/// step prefilling 16 prompts of 256 tokens already needs ~600 MB of scratch.
const MAX_DEFAULT_BATCH: usize = 16;

/// One prompt of the input file.
#[derive(Debug, Clone)]
struct Item {
    /// As given ("id" of a JSONL line; the line number for text files).
    id: Value,
    prompt: String,
    n_predict: Option<usize>,
}

/// How instances and their cores are laid out.
#[derive(Debug, Clone)]
pub struct Layout {
    pub instances: usize,
    pub threads: usize,
    pub batch: usize,
    /// Per instance, the CPUs its workers are pinned to (empty: not pinned).
    pub cpus: Vec<Vec<usize>>,
    /// Per-phase worker counts (from a tuned profile), if any.
    pub phase: Option<PhaseThreads>,
    /// Where the numbers came from, for the summary.
    pub source: String,
}

/// What one instance did.
#[derive(Debug, Default)]
struct InstanceReport {
    prompts: usize,
    tokens: usize,
    busy: Duration,
    wall: Duration,
    /// Its forward passes' and sampling's time per kind of operation.
    ops: ProfileSnapshot,
}

/// A prompt ready for a batcher.
struct Job {
    /// Position among the prompts this run processes (the output order).
    slot: usize,
    ids: Vec<u32>,
    max_tokens: usize,
}

pub fn run(args: &BatchArgs) -> crate::Result<()> {
    let sampling = sampling(&args.sampling)?;
    if args.batch_size == Some(0) {
        return Err(usage("--batch-size must be at least 1"));
    }
    if args.instances == Some(0) {
        return Err(usage("--instances must be at least 1"));
    }
    let items = read_prompts(&args.file)?;
    let order: HashMap<String, usize> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (id_key(&it.id), i))
        .collect();
    let mut done = HashSet::new();
    let mut resumed = false;
    if let Some(out) = args.output.as_deref().filter(|p| p.exists()) {
        done = finished_ids(out)?;
        resumed = !done.is_empty();
    }
    let todo: Vec<Item> = items
        .iter()
        .enumerate()
        .filter(|(i, _)| args.shard.is_none_or(|s| i % s.count == s.index))
        .map(|(_, it)| it)
        .filter(|it| !done.contains(&id_key(&it.id)))
        .cloned()
        .collect();
    let skipped = items.len() - todo.len();

    // One loaded model whose weights every instance shares; its own pool stays
    // at one worker so no idle threads are left behind.
    let model_args = ModelArgs {
        load: LoadArgs {
            threads: Some(Threads::Count(1)),
            pin: Some(PinArg::None),
            ..args.model.load.clone()
        },
        ..args.model.clone()
    };
    let l = load(&model_args)?;
    let template = l.chat_template()?;
    let stops = template.stop_tokens(&l.tok);

    // Prompts that cannot run become error records, in their place.
    let mut pending: BTreeMap<usize, String> = BTreeMap::new();
    let mut jobs = Vec::new();
    let mut longest = 1;
    for (slot, it) in todo.iter().enumerate() {
        let (ids, too_long) = match l.tok.encode_prompt(&it.prompt, false) {
            Ok(ids) => (ids, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let max_tokens = it.n_predict.unwrap_or(args.n_predict);
        let problem = if too_long.is_some() {
            too_long
        } else if ids.is_empty() {
            Some("the prompt is empty and the model adds no BOS token".to_string())
        } else if ids.len() > l.ctx {
            Some(format!(
                "the prompt is {} tokens, longer than the context of {} tokens (raise -c)",
                ids.len(),
                l.ctx
            ))
        } else {
            None
        };
        match problem {
            Some(error) => {
                let record = json!({"id": it.id, "prompt": it.prompt, "error": error});
                pending.insert(slot, record.to_string());
            }
            None => {
                longest = longest.max((ids.len() + max_tokens).min(l.ctx));
                jobs.push(Job {
                    slot,
                    ids,
                    max_tokens,
                });
            }
        }
    }
    let errors = pending.len();
    let layout = layout(args, l.tuned.as_ref(), jobs.len())?;

    let mut sink: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
    })?;

    eprintln!(
        "batch: {} prompts to run ({skipped} skipped: other shards or already in the output) on {} instance(s) × {} thread(s), up to {} sequences each ({}{})",
        todo.len(),
        layout.instances,
        layout.threads,
        layout.batch,
        layout.source,
        if layout.cpus.iter().all(Vec::is_empty) { ", not pinned" } else { ", pinned" },
    );
    let start = Instant::now();
    let next_job = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, String)>();
    let mut written = 0;
    let mut write_error = None;
    let reports = std::thread::scope(|s| {
        let handles: Vec<_> = (0..layout.instances)
            .map(|index| {
                let tx = tx.clone();
                let (base, layout, jobs, todo) = (&l.model, &layout, &jobs, &todo);
                let (next_job, stop, failed, stops, sampling, tok) =
                    (&next_job, &*stop, &failed, &stops, &sampling, &l.tok);
                let (ctx, kv) = (longest, l.kv);
                s.spawn(move || {
                    let mut model = base.instance();
                    let cpus = &layout.cpus[index];
                    model.set_threads_on(layout.threads, cpus, !cpus.is_empty());
                    if let Some(phase) = layout.phase {
                        model.set_phase_threads(phase);
                    }
                    let shared = Shared {
                        jobs,
                        todo,
                        next_job,
                        stop,
                        stops,
                        sampling,
                        tok,
                    };
                    let result = drive(&model, index, layout.batch, ctx, kv, &shared, &tx);
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                        stop.store(true, Ordering::Relaxed);
                    }
                    result
                })
            })
            .collect();
        drop(tx);
        // The writer: results in order, each flushed as soon as it can go out.
        let mut next_out = 0;
        let progress = Progress::new(jobs.len() as u64, "batch");
        let mut pump = |pending: &mut BTreeMap<usize, String>| -> std::io::Result<usize> {
            let mut n = flush(pending, &mut next_out, &mut *sink)?;
            for (slot, line) in &rx {
                progress.inc(1);
                pending.insert(slot, line);
                n += flush(pending, &mut next_out, &mut *sink)?;
            }
            // Interrupted: what finished out of order goes out too, so no
            // finished work is lost (a resumed run restores the order).
            for line in std::mem::take(pending).into_values() {
                writeln!(sink, "{line}")?;
                sink.flush()?;
                n += 1;
            }
            Ok(n)
        };
        match pump(&mut pending) {
            Ok(n) => written = n,
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                write_error = Some(e);
            }
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("an instance thread panicked"))
            .collect::<Vec<_>>()
    });
    if let Some(e) = write_error {
        return Err(e.into());
    }
    let reports: Vec<InstanceReport> = reports.into_iter().collect::<Result<_, _>>()?;
    let wall = start.elapsed();
    let tokens: usize = reports.iter().map(|r| r.tokens).sum();
    eprintln!(
        "batch: {written} results written ({errors} with an error) | {tokens} tokens generated in {:.2} s | {:.1} tok/s aggregate",
        wall.as_secs_f64(),
        tokens as f64 / wall.as_secs_f64().max(1e-9)
    );
    for (i, r) in reports.iter().enumerate() {
        let busy = r.busy.as_secs_f64() / (r.wall.as_secs_f64() * layout.threads as f64).max(1e-9);
        let total = r.ops.total_ns().max(1) as f64;
        let shares: Vec<String> = Op::ALL
            .iter()
            .map(|&op| {
                let share = 100.0 * r.ops.get(op) as f64 / total;
                format!("{} {share:.0} %", op.name())
            })
            .collect();
        eprintln!(
            "  instance {i} (CPUs {}): {} prompts, {} tokens, workers busy {:.0} % of the time; time in {}",
            cpu_list(&layout.cpus[i]),
            r.prompts,
            r.tokens,
            busy * 100.0,
            shares.join(", ")
        );
    }
    if stop.load(Ordering::Relaxed) && !failed.load(Ordering::Relaxed) {
        eprintln!(
            "batch: interrupted; {} of {} prompts written. Run the same command again to resume.",
            written,
            todo.len()
        );
        std::process::exit(130);
    }
    if resumed {
        if let Some(out) = &args.output {
            reorder(out, &order)?;
        }
    }
    Ok(())
}

/// Writes the results that are next in order; returns how many.
fn flush(
    pending: &mut BTreeMap<usize, String>,
    next_out: &mut usize,
    sink: &mut dyn Write,
) -> std::io::Result<usize> {
    let mut n = 0;
    while let Some(line) = pending.remove(next_out) {
        writeln!(sink, "{line}")?;
        sink.flush()?;
        *next_out += 1;
        n += 1;
    }
    Ok(n)
}

/// What every instance thread reads.
struct Shared<'a> {
    jobs: &'a [Job],
    todo: &'a [Item],
    next_job: &'a AtomicUsize,
    stop: &'a AtomicBool,
    stops: &'a [u32],
    sampling: &'a SamplerConfig,
    tok: &'a Tokenizer,
}

/// A sequence in flight.
struct Live {
    ids: Vec<u32>,
    text: String,
    stream: TextStream,
}

/// One instance: keeps its batcher full from the shared queue until the
/// queue is empty (or a stop), sending each finished result to the writer.
fn drive(
    model: &Model,
    instance: usize,
    batch: usize,
    ctx: usize,
    kv: bitnet_model::KvType,
    sh: &Shared<'_>,
    tx: &mpsc::Sender<(usize, String)>,
) -> Result<InstanceReport, bitnet_model::ModelError> {
    let start = Instant::now();
    let mut batcher = Batcher::new(model, batch, ctx, kv)?;
    let mut live: HashMap<u64, Live> = HashMap::new();
    let mut events = Vec::new();
    let mut report = InstanceReport::default();
    while !sh.stop.load(Ordering::Relaxed) {
        while batcher.free_slots() > 0 {
            let Some(job) = sh.jobs.get(sh.next_job.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let request = Request {
                prompt: job.ids.clone(),
                max_tokens: job.max_tokens,
                sampling: sh.sampling.clone(),
                stop_tokens: sh.stops.to_vec(),
            };
            let item = &sh.todo[job.slot];
            match batcher.admit(job.slot as u64, request) {
                Ok(()) => {
                    live.insert(
                        job.slot as u64,
                        Live {
                            ids: Vec::new(),
                            text: String::new(),
                            stream: TextStream::default(),
                        },
                    );
                }
                Err(e) => {
                    let record =
                        json!({"id": item.id, "prompt": item.prompt, "error": e.to_string()});
                    let _ = tx.send((job.slot, record.to_string()));
                }
            }
        }
        if batcher.is_idle() {
            break;
        }
        events.clear();
        batcher.step(&mut events)?;
        for event in &events {
            match *event {
                Event::Token { id, token } => {
                    let seq = live.get_mut(&id).expect("admitted");
                    seq.ids.push(token);
                    // The same text `run` streams: control tokens print nothing.
                    if !sh.tok.is_control(token) {
                        let piece = seq.stream.push(sh.tok.token_bytes(token));
                        seq.text.push_str(&piece);
                    }
                }
                Event::Finished { id, reason, stats } => {
                    let mut seq = live.remove(&id).expect("admitted");
                    seq.text.push_str(&seq.stream.finish());
                    let item = &sh.todo[id as usize];
                    report.prompts += 1;
                    report.tokens += seq.ids.len();
                    let ms = |d: Duration| d.as_secs_f64() * 1e3;
                    let record = json!({
                        "id": item.id,
                        "prompt": item.prompt,
                        "text": seq.text,
                        "tokens": seq.ids,
                        "prompt_tokens": stats.prompt_tokens,
                        "stop": reason.name(),
                        "timings": {
                            "ttft_ms": stats.time_to_first_token.map(ms),
                            "total_ms": ms(stats.total),
                            "decode_tok_s": stats.decode_tok_s(),
                            "instance": instance,
                        },
                    });
                    if tx.send((id as usize, record.to_string())).is_err() {
                        // The writer is gone (its output failed): stop.
                        return Ok(report);
                    }
                }
            }
        }
    }
    report.wall = start.elapsed();
    report.ops = model.profile().snapshot();
    report.busy = Duration::from_nanos(
        model
            .pool()
            .stats()
            .iter()
            .map(|w| w.busy_ns.load(Ordering::Relaxed))
            .sum(),
    );
    Ok(report)
}

/// How many instances of how many workers, and sequences per instance.
#[derive(Debug, PartialEq)]
struct Shape {
    instances: usize,
    threads: usize,
    batch: usize,
    phase: Option<PhaseThreads>,
    /// Where the numbers came from, for the summary.
    source: String,
}

/// The [`Shape`] for `args` on `cores` cores with `-t` (or its environment
/// variables) at `explicit_threads`, for `prompts` prompts.
fn shape(
    args: &BatchArgs,
    cores: usize,
    explicit_threads: Option<usize>,
    tuned: Option<&Tuned>,
    prompts: usize,
) -> Shape {
    let cores = cores.max(1);
    let even_split = |instances: usize| {
        args.batch_size
            .unwrap_or(prompts.div_ceil(instances).clamp(1, MAX_DEFAULT_BATCH))
    };
    let strategy = args.strategy.unwrap_or(Strategy::Throughput);
    match (args.instances, strategy) {
        (Some(i), _) => Shape {
            instances: i,
            threads: explicit_threads.unwrap_or((cores / i).max(1)),
            batch: even_split(i),
            phase: None,
            source: "as asked".to_string(),
        },
        (None, Strategy::Throughput) if tuned.and_then(Tuned::many_prompts).is_some() => {
            let tuned = tuned.expect("checked");
            let (i, t, b) = tuned.many_prompts().expect("checked");
            // Other prompt lengths change little: decode dominates a batch.
            let t = explicit_threads.unwrap_or(t);
            Shape {
                instances: i,
                threads: t,
                batch: args.batch_size.unwrap_or(b),
                phase: tuned.run_threads().map(|p| PhaseThreads {
                    prefill: p.prefill.min(t),
                    decode: t,
                }),
                source: format!("tuned profile {}", tuned.path.display()),
            }
        }
        (None, strategy) => {
            // Without a profile, throughput is one single-worker instance per
            // core (`-t T`: T workers each): a step over several sequences is
            // compute-bound, and instances never wait for each other at the
            // per-op barriers of a shared pool. On the 2-core AVX2 VM, 12
            // prompts ran 1.5–1.6× faster as 2 × 1 than as 1 × 2 (BENCHMARKS.md).
            let (instances, threads) = match explicit_threads {
                Some(t) if strategy == Strategy::Throughput => ((cores / t).max(1), t),
                Some(t) => (strategy.instances(cores), t),
                None => {
                    let i = strategy.instances(cores);
                    (i, (cores / i).max(1))
                }
            };
            let mut source = strategy.describe().to_string();
            if strategy == Strategy::Throughput {
                source.push_str(" (run `bitnet tune` for measured numbers)");
            }
            Shape {
                instances,
                threads,
                batch: even_split(instances),
                phase: None,
                source,
            }
        }
    }
}

/// Instances, threads per instance, batch size and the cores of each, for
/// `prompts` prompts.
fn layout(args: &BatchArgs, tuned: Option<&Tuned>, prompts: usize) -> crate::Result<Layout> {
    let cpus = ThreadPool::default_cpus(true);
    let cores = if cpus.is_empty() {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        cpus.len()
    };
    let mut warnings = Vec::new();
    let explicit_threads =
        match thread_choice(args.model.load.threads, &process_env, &mut warnings)? {
            Threads::Count(n) => Some(n),
            Threads::Auto => None,
        };
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let Shape {
        instances,
        threads,
        batch,
        phase,
        source,
    } = shape(args, cores, explicit_threads, tuned, prompts);
    // Instances of one process get disjoint cores, so pinning is the
    // default here; `--pin none` leaves placement to the OS.
    let pin = args.model.load.pin != Some(PinArg::None);
    let fits = pin && !cpus.is_empty() && instances * threads <= cpus.len();
    if instances * threads > cores {
        eprintln!(
            "warning: {instances} instances × {threads} threads = {} workers on {cores} cores; they will compete (not pinned)",
            instances * threads
        );
    }
    let cpus = (0..instances)
        .map(|i| {
            if fits {
                cpus[i * threads..(i + 1) * threads].to_vec()
            } else {
                Vec::new()
            }
        })
        .collect();
    Ok(Layout {
        instances,
        threads,
        batch,
        cpus,
        phase,
        source,
    })
}

fn cpu_list(cpus: &[usize]) -> String {
    if cpus.is_empty() {
        return "any".into();
    }
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The key an id is matched by: its JSON text (so `7` and `"7"` differ).
fn id_key(id: &Value) -> String {
    id.to_string()
}

/// The prompts of `path`, in file order; blank lines are skipped.
fn read_prompts(path: &Path) -> crate::Result<Vec<Item>> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let jsonl = path.extension().is_some_and(|e| e == "jsonl");
    let mut items = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let item = if jsonl {
            let v: Value = serde_json::from_str(raw)
                .map_err(|e| format!("{name}:{line}: not a JSON object: {e}"))?;
            let Some(prompt) = v.get("prompt").and_then(Value::as_str) else {
                return Err(format!("{name}:{line}: no \"prompt\" string").into());
            };
            let id = match v.get("id") {
                None => Value::from(line),
                Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
                Some(_) => {
                    return Err(
                        format!("{name}:{line}: \"id\" must be a string or a number").into(),
                    )
                }
            };
            let n_predict = match v.get("n_predict") {
                None => None,
                Some(n) => Some(n.as_u64().ok_or_else(|| {
                    format!("{name}:{line}: \"n_predict\" must be a non-negative integer")
                })? as usize),
            };
            Item {
                id,
                prompt: prompt.to_string(),
                n_predict,
            }
        } else {
            Item {
                id: Value::from(line),
                prompt: raw.to_string(),
                n_predict: None,
            }
        };
        if let Some(first) = seen.insert(id_key(&item.id), line) {
            return Err(format!(
                "{name}:{line}: id {} is already used on line {first}",
                item.id
            )
            .into());
        }
        items.push(item);
    }
    Ok(items)
}

/// Ids recorded in an existing output file. A last line cut short by a hard
/// kill is removed (its prompt runs again); any other bad line is an error.
fn finished_ids(path: &Path) -> crate::Result<HashSet<String>> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let mut ids = HashSet::new();
    let mut offset = 0;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let id = serde_json::from_str::<Value>(raw)
            .ok()
            .and_then(|v| v.get("id").cloned());
        match id {
            Some(id) => {
                ids.insert(id_key(&id));
            }
            None if !raw.ends_with('\n') => {
                eprintln!("warning: {name}: dropping the unfinished last line");
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| format!("{name}: {e}"))?;
                file.set_len(offset as u64)
                    .map_err(|e| format!("{name}: {e}"))?;
            }
            None if raw.trim().is_empty() => {}
            None => {
                return Err(format!(
                    "{name}:{}: not a result line of `bitnet batch` (JSON with an \"id\"); choose another -o",
                    i + 1
                )
                .into())
            }
        }
        offset += raw.len();
    }
    Ok(ids)
}

/// Rewrites a completed output file in input order (lines of ids not in the
/// input keep their order after the rest), via a temporary file and a rename.
fn reorder(path: &Path, order: &HashMap<String, usize>) -> crate::Result<()> {
    let name = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?;
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| format!("{name}: {e}"))?;
        let rank = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v.get("id").and_then(|id| order.get(&id_key(id)).copied()))
            .unwrap_or(usize::MAX);
        lines.push((rank, line));
    }
    lines.sort_by_key(|&(rank, _)| rank);
    let tmp = path.with_extension("jsonl.tmp");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?,
    );
    for (_, line) in &lines {
        writeln!(out, "{line}")?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{name}: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// (instances, threads, batch) for `flags` on `cores` cores, no profile.
    fn shape_of(flags: &[&str], cores: usize, prompts: usize) -> (usize, usize, usize) {
        let mut argv = vec!["bitnet", "batch", "-f", "prompts.txt"];
        argv.extend(flags);
        let cli = crate::args::Cli::try_parse_from(argv).unwrap();
        let crate::args::Command::Batch(args) = cli.command else {
            unreachable!()
        };
        let threads = args.model.load.threads.map(|t| match t {
            Threads::Count(n) => n,
            Threads::Auto => unreachable!("tests give counts"),
        });
        let s = shape(&args, cores, threads, None, prompts);
        (s.instances, s.threads, s.batch)
    }

    #[test]
    fn the_default_is_one_single_worker_instance_per_core_with_the_prompts_split_evenly() {
        assert_eq!(shape_of(&[], 2, 12), (2, 1, 6));
        assert_eq!(shape_of(&[], 2, 13), (2, 1, 7));
        assert_eq!(shape_of(&[], 8, 100), (8, 1, 13));
        assert_eq!(shape_of(&[], 2, 1000), (2, 1, MAX_DEFAULT_BATCH));
        assert_eq!(shape_of(&[], 4, 0), (4, 1, 1));
        assert_eq!(shape_of(&["-t", "2"], 4, 12), (2, 2, 6));
        assert_eq!(shape_of(&["--strategy", "throughput"], 2, 12), (2, 1, 6));
    }

    #[test]
    fn other_strategies_and_explicit_layouts_are_followed() {
        assert_eq!(shape_of(&["--strategy", "latency"], 2, 12), (1, 2, 12));
        assert_eq!(shape_of(&["--strategy", "balanced"], 9, 12), (3, 3, 4));
        assert_eq!(
            shape_of(&["--instances", "1", "-t", "2"], 2, 12),
            (1, 2, 12)
        );
        assert_eq!(shape_of(&["--instances", "3"], 6, 12), (3, 2, 4));
        assert_eq!(
            shape_of(&["--instances", "2", "-t", "1", "--batch-size", "3"], 2, 12),
            (2, 1, 3)
        );
    }
}
