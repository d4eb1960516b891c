//! `bitnet monitor`: a generation workload on a background thread, and a
//! live view of where its time goes, built from counters the engine keeps
//! anyway: the pool's per-worker busy/wait time, the OS's per-thread CPU
//! time (`/proc/self/task/TID/stat`), and the per-op [`OpProfile`].
//!
//! `--json` prints one snapshot per line: `t_s` (since the workload began),
//! `interval_s`, `final` (the last line covers the whole run), `generated`
//! (tokens in the interval), `tok_s`, `bytes_per_token`, `bandwidth_gb_s`
//! (`bytes_per_token × tok_s`: weights streamed per decoded token),
//! `workers[]` (`worker`, `tid`, `busy_pct`, `wait_pct`, `cpu_pct`, null when
//! the OS does not say) and `ops` (each op's share of the measured forward
//! time, in %; keys as [`Op::name`]).
//!
//! [`OpProfile`]: bitnet_model::OpProfile

use crate::args::{Cli, Command, MonitorArgs, RunArgs};
use crate::error::usage;
use crate::load::{load, sampling};
use crate::run::prompt_ids;
use bitnet_model::pool::ThreadPool;
use bitnet_model::{Batcher, Event, Model, ModelError, Op, ProfileSnapshot, Request};
use clap::Parser;
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

const DEFAULT_PROMPT: &str = "Once upon a time";
/// How long `--quick` keeps generating.
const QUICK: Duration = Duration::from_millis(1500);
/// Tokens per reply of the `--quick` workload (replies repeat until `QUICK`).
const QUICK_TOKENS: &str = "32";
/// Linux reports thread CPU time in USER_HZ ticks, fixed at 100 per second
/// by the kernel ABI.
const TICK: Duration = Duration::from_millis(10);

/// How long the workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    /// The RUN-ARGS generation, once.
    Once,
    /// Replies repeat until this much time has passed.
    For(Duration),
    /// Replies repeat until Ctrl-C.
    UntilInterrupted,
}

pub fn run(args: &MonitorArgs) -> crate::Result<()> {
    if !(args.interval.is_finite() && args.interval >= 0.05) {
        return Err(usage(format!(
            "--interval {} must be at least 0.05 seconds",
            args.interval
        )));
    }
    let run_args = workload(args)?;
    let span = if args.quick {
        Span::For(QUICK)
    } else if args.run_args.is_empty() {
        Span::UntilInterrupted
    } else {
        Span::Once
    };
    let sampling = sampling(&run_args.sampling)?;
    let mut l = load(&run_args.model)?;
    let template = l.chat_template()?;
    let prompt = prompt_ids(&run_args, &l, &template)?;
    let request = Request {
        prompt,
        max_tokens: run_args.n_predict,
        sampling,
        stop_tokens: template.stop_tokens(&l.tok),
    };
    let (threads, phase, pin) = (l.threads, l.phase, l.pin);
    // The workload gets its own instance, made on its thread (pinning binds
    // the thread that makes the pool); this one's pool is not needed.
    l.model.set_threads(1, false);
    let bytes_per_token = l.model.bytes_per_token();
    let title = format!(
        "{}, {threads} worker(s) (prefill {}, decode {}), kernels {}",
        l.path
            .file_name()
            .map_or("model".into(), |n| n.to_string_lossy()),
        phase.prefill,
        phase.decode,
        l.model.dispatch().describe()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
    })?;
    let generated = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let instance: OnceLock<Model> = OnceLock::new();
    let mut out = std::io::stdout().lock();

    std::thread::scope(|s| -> crate::Result<()> {
        let (base, instance, generated, done, stop) =
            (&l.model, &instance, &generated, &done, &*stop);
        let request = &request;
        let (ctx, kv) = (l.ctx, l.kv);
        // Dropped (or sent on) once the last snapshot is taken: the workload
        // thread is worker 0, and its CPU time is readable only while it lives.
        let (release, released) = mpsc::channel::<()>();
        let (go, go_rx) = mpsc::channel::<()>();
        let work = s.spawn(move || -> Result<(), ModelError> {
            let mut model = base.instance();
            model.set_threads_on(threads, &ThreadPool::default_cpus(pin), pin);
            model.set_phase_threads(phase);
            // One empty job: every worker, this thread included, has then
            // recorded its thread id, so the first snapshot can read them.
            model.pool().run(&|_, _| {});
            let model = instance.get_or_init(|| model);
            // Start once the first snapshot is taken (or never, if the view failed).
            let result = match go_rx.recv() {
                Ok(()) => generate(model, ctx, kv, request, span, generated, stop),
                Err(_) => Ok(()),
            };
            done.store(true, Ordering::Release);
            let _ = released.recv();
            result
        });
        let watched = watch(
            args,
            &title,
            instance,
            go,
            generated,
            done,
            bytes_per_token,
            &mut out,
        );
        // Whatever happened to the view, the workload ends before the scope does.
        stop.store(true, Ordering::Relaxed);
        drop(release);
        work.join().expect("the workload thread panicked")?;
        watched
    })
}

/// Snapshots every `--interval` while the workload runs, then the whole run.
fn watch(
    args: &MonitorArgs,
    title: &str,
    instance: &OnceLock<Model>,
    go: mpsc::Sender<()>,
    generated: &AtomicU64,
    done: &AtomicBool,
    bytes_per_token: usize,
    out: &mut impl Write,
) -> crate::Result<()> {
    let interval = Duration::from_secs_f64(args.interval);
    let terminal = !args.json && std::io::stdout().is_terminal();
    // The instance exists once the workload thread has made it.
    let model = loop {
        if let Some(m) = instance.get() {
            break m;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let first = Sample::take(model, generated);
    let _ = go.send(());
    let mut prev = first.clone();
    while !done.load(Ordering::Acquire) {
        let due = prev.at + interval;
        while !done.load(Ordering::Acquire) && Instant::now() < due {
            std::thread::sleep(Duration::from_millis(20).min(interval));
        }
        if done.load(Ordering::Acquire) {
            break;
        }
        let now = Sample::take(model, generated);
        let v = view(&first, &prev, &now, bytes_per_token, false);
        if args.json {
            writeln!(out, "{v}")?;
            out.flush()?;
        } else if terminal {
            write!(out, "\x1b[H\x1b[J{}", render(title, &v))?;
            out.flush()?;
        }
        prev = now;
    }
    let end = Sample::take(model, generated);
    let v = view(&first, &first, &end, bytes_per_token, true);
    if args.json {
        writeln!(out, "{v}")?;
    } else {
        if terminal {
            write!(out, "\x1b[H\x1b[J")?;
        }
        write!(out, "{}", render(title, &v))?;
    }
    Ok(())
}

/// The workload's `run` arguments: RUN-ARGS (or the built-in prompt), with
/// monitor's `-m`.
fn workload(args: &MonitorArgs) -> crate::Result<RunArgs> {
    let mut argv: Vec<String> = vec!["bitnet".into(), "run".into()];
    if let Some(m) = &args.model {
        argv.extend(["-m".into(), m.to_string_lossy().into_owned()]);
    }
    let has_prompt = args.run_args.iter().any(|a| {
        a == "--prompt"
            || a.starts_with("--prompt=")
            || (a.starts_with("-p") && !a.starts_with("--"))
    });
    if !has_prompt {
        argv.extend(["-p".into(), DEFAULT_PROMPT.into()]);
    }
    if args.quick {
        argv.extend(["-n".into(), QUICK_TOKENS.into()]);
    }
    argv.extend(args.run_args.iter().cloned());
    match Cli::try_parse_from(&argv) {
        Ok(Cli {
            command: Command::Run(run),
        }) => Ok(run),
        Ok(_) => unreachable!("parsed as `run`"),
        Err(e) => {
            let msg = e.to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            Err(usage(format!(
                "the workload after `--` (bitnet run arguments): {first}"
            )))
        }
    }
}

/// Generates replies to `request` on one batcher slot (the tokens `run`
/// would print), counting tokens as they come.
fn generate(
    model: &Model,
    ctx: usize,
    kv: bitnet_model::KvType,
    request: &Request,
    span: Span,
    generated: &AtomicU64,
    stop: &AtomicBool,
) -> Result<(), ModelError> {
    let start = Instant::now();
    let mut batcher = Batcher::new(model, 1, ctx, kv)?;
    let mut events = Vec::new();
    loop {
        batcher.admit(0, request.clone())?;
        while !batcher.is_idle() {
            if stop.load(Ordering::Relaxed) {
                batcher.cancel(0);
                return Ok(());
            }
            events.clear();
            batcher.step(&mut events)?;
            let tokens = events
                .iter()
                .filter(|e| matches!(e, Event::Token { .. }))
                .count();
            generated.fetch_add(tokens as u64, Ordering::Relaxed);
        }
        let again = match span {
            Span::Once => false,
            Span::For(d) => start.elapsed() < d,
            Span::UntilInterrupted => true,
        };
        if !again || stop.load(Ordering::Relaxed) {
            return Ok(());
        }
    }
}

/// Every counter at one moment.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    /// Per worker: busy ns, wait ns, OS thread id, OS CPU time.
    workers: Vec<(u64, u64, u64, Option<Duration>)>,
    ops: ProfileSnapshot,
    generated: u64,
}

impl Sample {
    fn take(model: &Model, generated: &AtomicU64) -> Sample {
        let workers = model
            .pool()
            .stats()
            .iter()
            .map(|w| {
                let tid = w.tid.load(Ordering::Relaxed);
                (
                    w.busy_ns.load(Ordering::Relaxed),
                    w.wait_ns.load(Ordering::Relaxed),
                    tid,
                    thread_cpu_time(tid),
                )
            })
            .collect();
        Sample {
            at: Instant::now(),
            workers,
            ops: model.profile().snapshot(),
            generated: generated.load(Ordering::Relaxed),
        }
    }
}

/// User plus system CPU time of thread `tid` of this process (Linux).
fn thread_cpu_time(tid: u64) -> Option<Duration> {
    if tid == 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields 14 and 15 (utime,
    // stime) are the 12th and 13th after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u32 = fields.next()?.parse().ok()?;
    let stime: u32 = fields.next()?.parse().ok()?;
    Some(TICK * (utime + stime))
}

/// What happened between `prev` and `now`, as the JSON snapshot.
fn view(first: &Sample, prev: &Sample, now: &Sample, bytes_per_token: usize, last: bool) -> Value {
    let dt = (now.at - prev.at).as_secs_f64().max(1e-9);
    let pct = |ns: u64| ns as f64 / 1e9 / dt * 100.0;
    let workers: Vec<Value> = now
        .workers
        .iter()
        .zip(&prev.workers)
        .enumerate()
        .map(|(i, (n, p))| {
            let cpu = match (n.3, p.3) {
                (Some(a), Some(b)) if n.2 == p.2 => {
                    Some(pct(a.saturating_sub(b).as_nanos() as u64))
                }
                _ => None,
            };
            json!({
                "worker": i,
                "tid": n.2,
                "busy_pct": pct(n.0.saturating_sub(p.0)),
                "wait_pct": pct(n.1.saturating_sub(p.1)),
                "cpu_pct": cpu,
            })
        })
        .collect();
    let ops = now.ops.since(&prev.ops);
    let total = ops.total_ns().max(1) as f64;
    let shares: serde_json::Map<String, Value> = Op::ALL
        .iter()
        .map(|&op| {
            (
                op.name().to_string(),
                json!(ops.get(op) as f64 / total * 100.0),
            )
        })
        .collect();
    let generated = now.generated - prev.generated;
    let tok_s = generated as f64 / dt;
    json!({
        "t_s": (now.at - first.at).as_secs_f64(),
        "interval_s": dt,
        "final": last,
        "generated": generated,
        "tok_s": tok_s,
        "bytes_per_token": bytes_per_token,
        "bandwidth_gb_s": tok_s * bytes_per_token as f64 / 1e9,
        "workers": workers,
        "ops": shares,
    })
}

/// The human view of a snapshot.
fn render(title: &str, v: &Value) -> String {
    let f = |x: &Value| x.as_f64().unwrap_or(0.0);
    let mut s = format!(
        "bitnet monitor: {title}\n{} {:.1} s: {:.1} tok/s generated, ~{:.2} GB/s of weights read ({:.2} MB per token)\n\n",
        if v["final"] == true { "whole run," } else { "at" },
        f(&v["t_s"]),
        f(&v["tok_s"]),
        f(&v["bandwidth_gb_s"]),
        f(&v["bytes_per_token"]) / 1e6
    );
    s += "worker      tid    busy    wait  os cpu\n";
    for w in v["workers"].as_array().into_iter().flatten() {
        let cpu = w["cpu_pct"]
            .as_f64()
            .map_or("     -".to_string(), |c| format!("{c:5.1}%"));
        s += &format!(
            "{:>6} {:>8} {:6.1}% {:6.1}% {cpu}\n",
            w["worker"].as_u64().unwrap_or(0),
            w["tid"].as_u64().unwrap_or(0),
            f(&w["busy_pct"]),
            f(&w["wait_pct"])
        );
    }
    s += "\nshare of forward-pass time\n";
    for op in Op::ALL {
        let share = f(&v["ops"][op.name()]);
        let bar = "#".repeat((share / 2.5).round() as usize);
        s += &format!("{:<15} {share:5.1}% {bar}\n", op.name());
    }
    s
}
