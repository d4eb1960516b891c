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
use bitnet_model::{Batcher, Event, Model, PhaseThreads, Request, SamplerConfig, TextStream};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Sequences per instance when neither `--batch-size` nor a profile says.
const DEFAULT_BATCH: usize = 8;

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
    let layout = layout(args, l.tuned.as_ref())?;

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
        eprintln!(
            "  instance {i} (CPUs {}): {} prompts, {} tokens, workers busy {:.0} % of the time",
            cpu_list(&layout.cpus[i]),
            r.prompts,
            r.tokens,
            busy * 100.0
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

/// Instances, threads per instance, batch size and the cores of each.
fn layout(args: &BatchArgs, tuned: Option<&Tuned>) -> crate::Result<Layout> {
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
    let (instances, threads, batch, phase, source) = match (args.instances, args.strategy) {
        (Some(i), _) => (
            i,
            explicit_threads.unwrap_or((cores / i).max(1)),
            args.batch_size.unwrap_or(DEFAULT_BATCH),
            None,
            "as asked".to_string(),
        ),
        (None, Some(Strategy::Throughput)) if tuned.and_then(Tuned::many_prompts).is_some() => {
            let tuned = tuned.expect("checked");
            let (i, t, b) = tuned.many_prompts().expect("checked");
            // Other prompt lengths change little: decode dominates a batch.
            let t = explicit_threads.unwrap_or(t);
            (
                i,
                t,
                args.batch_size.unwrap_or(b),
                tuned.run_threads().map(|p| PhaseThreads {
                    prefill: p.prefill.min(t),
                    decode: t,
                }),
                format!("tuned profile {}", tuned.path.display()),
            )
        }
        (None, Some(Strategy::Throughput)) => {
            // Without a profile: two workers per instance (decode is bound by
            // memory bandwidth, which a couple of cores nearly saturate).
            let t = explicit_threads.unwrap_or(2.min(cores));
            (
                (cores / t).max(1),
                t,
                args.batch_size.unwrap_or(DEFAULT_BATCH),
                None,
                "throughput heuristic (run `bitnet tune` for measured numbers)".to_string(),
            )
        }
        (None, Some(strategy @ (Strategy::Latency | Strategy::Balanced))) => {
            let i = strategy.instances(cores);
            let t = explicit_threads.unwrap_or((cores / i).max(1));
            (
                i,
                t,
                args.batch_size.unwrap_or(DEFAULT_BATCH),
                None,
                strategy.describe().to_string(),
            )
        }
        (None, None) => (
            1,
            explicit_threads.unwrap_or(cores),
            args.batch_size.unwrap_or(DEFAULT_BATCH),
            None,
            "one instance".to_string(),
        ),
    };
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
