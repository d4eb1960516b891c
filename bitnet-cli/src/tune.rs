//! `bitnet tune`: measures this machine instead of guessing, prints the
//! table users otherwise keep by hand, and saves it as a profile.
//!
//! Profile fields (also what `--json` prints):
//! - `version`, `model` (`file`, `bytes`, `header_hash`), `cpu` (`name`,
//!   `cores`: CPUs this process may use), `cores_used`, `kernel`, `quick`;
//! - `sizes`: `prompt_short`, `prompt_long`, `gen` (tokens per test),
//!   `split_prompt`, `split_gen`;
//! - `threads[]`: `threads`, `prefill_short_tok_s`, `prefill_long_tok_s`,
//!   `decode_tok_s` (one sequence, workers pinned to the first CPUs);
//! - `splits[]`: `instances`, `threads`, `batch`, `tok_s` (all sequences of
//!   all instances), `per_sequence_tok_s` (mean decode speed one sequence
//!   sees), for every `instances × threads = cores_used` and batch size;
//! - `recommended`: `run` (`prefill_threads`, `decode_threads`: what `-t
//!   auto` uses), `short_prompt` (`threads`, `decode_tok_s`,
//!   `prefill_tok_s`), `long_prompt` (`prefill_threads`, `prefill_tok_s`),
//!   `many_prompts` and `server` (`instances`, `threads`, `batch`, `tok_s`,
//!   `per_sequence_tok_s`). The server pick is the best aggregate among the
//!   splits whose per-sequence speed is at least half the best single-stream
//!   decode speed (`server_rule`).

use crate::args::{KvArg, LoadArgs, ModelArgs, PinArg, Threads, TuneArgs};
use crate::bench;
use crate::error::usage;
use crate::load::load;
use crate::progress::Progress;
use crate::tuned::{self, Key};
use bitnet_model::{Batcher, Event, KvType, Model, ModelError, Request, SamplerConfig};
use serde_json::json;
use std::io::Write;
use std::sync::Barrier;
use std::time::Instant;

/// Test sizes in tokens.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    prompt_short: usize,
    prompt_long: usize,
    gen: usize,
    split_prompt: usize,
    split_gen: usize,
    reps: usize,
}

#[derive(Debug, Clone, Copy)]
struct ThreadRow {
    threads: usize,
    prefill_short: f64,
    prefill_long: f64,
    decode: f64,
}

#[derive(Debug, Clone, Copy)]
struct SplitRow {
    instances: usize,
    threads: usize,
    batch: usize,
    tok_s: f64,
    per_sequence: f64,
}

/// Share of the best single-stream decode speed a server split must keep.
const SERVER_MIN_SHARE: f64 = 0.5;

pub fn run(args: &TuneArgs) -> crate::Result<()> {
    let cpus = tuned::usable_cpus();
    let cores = args.cores.unwrap_or(cpus.len());
    if cores == 0 || cores > cpus.len() {
        return Err(usage(format!(
            "--cores {cores}: this process may use 1 to {} CPUs",
            cpus.len()
        )));
    }
    let cpus = &cpus[..cores];
    let model_args = ModelArgs {
        load: LoadArgs {
            model: args.model.clone(),
            threads: Some(Threads::Count(1)),
            pin: Some(PinArg::None),
            kernel: None,
            lm_head: None,
        },
        ctx: None,
        kv: args.kv,
    };
    let l = load(&model_args)?;
    let key = Key::new(&l.path, l.model.gguf());
    let kv = match args.kv {
        KvArg::F16 => KvType::F16,
        KvArg::F32 => KvType::F32,
    };
    let ctx = l.model.config.ctx;
    let sizes = if args.quick {
        Sizes {
            prompt_short: 16,
            prompt_long: 128,
            gen: 16,
            split_prompt: 8,
            split_gen: 16,
            reps: 2,
        }
    } else {
        Sizes {
            prompt_short: 16,
            prompt_long: 512,
            gen: 64,
            split_prompt: 16,
            split_gen: 48,
            reps: 3,
        }
    };
    let sizes = Sizes {
        prompt_long: sizes.prompt_long.min(ctx - 1),
        prompt_short: sizes.prompt_short.min(ctx - 1),
        gen: sizes.gen.min(ctx - 1),
        split_gen: sizes.split_gen.min(ctx - sizes.split_prompt.min(ctx - 1)),
        ..sizes
    };
    let batches: &[usize] = if args.quick { &[1, 8] } else { &[1, 4, 16] };
    let splits: Vec<(usize, usize)> = (1..=cores)
        .filter(|&i| cores.is_multiple_of(i))
        .map(|i| (i, cores / i))
        .collect();
    let steps = cores + splits.len() * batches.len();
    let progress = Progress::new(steps as u64, "tune");

    let mut threads = Vec::new();
    for t in 1..=cores {
        progress.inc_noting(0, Some(&format!("{t} thread(s)")));
        // Errors cross the thread as text (boxed errors are not `Send`).
        let row = on_instance(&l.model, t, &cpus[..t], |m| {
            let measure = || -> crate::Result<ThreadRow> {
                let pp = |n| median(bench::repeat(sizes.reps, || bench::prefill(m, kv, n))?);
                Ok(ThreadRow {
                    threads: t,
                    prefill_short: pp(sizes.prompt_short)?,
                    prefill_long: pp(sizes.prompt_long)?,
                    decode: median(bench::repeat(sizes.reps, || {
                        bench::generate(m, kv, sizes.gen, 1)
                    })?)?,
                })
            };
            measure().map_err(|e| e.to_string())
        })?;
        threads.push(row);
        progress.inc(1);
    }
    let mut split_rows = Vec::new();
    for &(instances, t) in &splits {
        for &batch in batches {
            progress.inc_noting(
                0,
                Some(&format!("{instances} × {t} threads, batch {batch}")),
            );
            let (tok_s, per_sequence) =
                split_throughput(&l.model, instances, t, batch, cpus, kv, sizes)?;
            split_rows.push(SplitRow {
                instances,
                threads: t,
                batch,
                tok_s,
                per_sequence,
            });
            progress.inc(1);
        }
    }
    progress.finish();

    let best = |f: fn(&ThreadRow) -> f64| {
        *threads
            .iter()
            .max_by(|a, b| f(a).total_cmp(&f(b)))
            .expect("at least one thread count")
    };
    let decode_best = best(|r| r.decode);
    let prefill_best = best(|r| r.prefill_long);
    let many = *split_rows
        .iter()
        .max_by(|a, b| a.tok_s.total_cmp(&b.tok_s))
        .expect("at least one split");
    let server = split_rows
        .iter()
        .filter(|r| r.per_sequence >= SERVER_MIN_SHARE * decode_best.decode)
        .max_by(|a, b| a.tok_s.total_cmp(&b.tok_s))
        .or_else(|| {
            split_rows
                .iter()
                .max_by(|a, b| a.per_sequence.total_cmp(&b.per_sequence))
        })
        .copied()
        .expect("at least one split");
    let split_json = |r: &SplitRow| {
        json!({
            "instances": r.instances, "threads": r.threads, "batch": r.batch,
            "tok_s": r.tok_s, "per_sequence_tok_s": r.per_sequence,
        })
    };
    let (model_json, cpu_json) = key.to_json();
    let kernel = l.model.dispatch().describe().to_string();
    let profile = json!({
        "version": tuned::VERSION,
        "model": model_json,
        "cpu": cpu_json,
        "cores_used": cores,
        "kernel": kernel,
        "quick": args.quick,
        "sizes": {
            "prompt_short": sizes.prompt_short, "prompt_long": sizes.prompt_long, "gen": sizes.gen,
            "split_prompt": sizes.split_prompt, "split_gen": sizes.split_gen,
        },
        "threads": threads.iter().map(|r| json!({
            "threads": r.threads,
            "prefill_short_tok_s": r.prefill_short,
            "prefill_long_tok_s": r.prefill_long,
            "decode_tok_s": r.decode,
        })).collect::<Vec<_>>(),
        "splits": split_rows.iter().map(split_json).collect::<Vec<_>>(),
        "recommended": {
            "run": {"prefill_threads": prefill_best.threads, "decode_threads": decode_best.threads},
            "short_prompt": {
                "threads": decode_best.threads,
                "decode_tok_s": decode_best.decode,
                "prefill_tok_s": decode_best.prefill_short,
            },
            "long_prompt": {"prefill_threads": prefill_best.threads, "prefill_tok_s": prefill_best.prefill_long},
            "many_prompts": split_json(&many),
            "server": split_json(&server),
            "server_rule": format!(
                "best aggregate tok/s among splits whose per-sequence tok/s is at least {SERVER_MIN_SHARE} × the best single-stream decode tok/s"
            ),
        },
    });

    let path = key.path();
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    std::fs::write(&path, format!("{profile:#}\n"))
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    if let Some(plot) = &args.plot {
        std::fs::write(plot, svg(&threads, &key.cpu, &key.model_file))
            .map_err(|e| format!("writing {}: {e}", plot.display()))?;
    }

    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{profile}")?;
    } else {
        print_tables(&mut out, &key, &kernel, &threads, &split_rows, sizes)?;
        writeln!(out, "\nRecommended on this machine ({} CPUs):\n", cores)?;
        writeln!(out, "| workload | configuration | measured |")?;
        writeln!(out, "| --- | --- | ---: |")?;
        writeln!(
            out,
            "| single short prompt | `run -t {}` | {:.1} tok/s generation |",
            decode_best.threads, decode_best.decode
        )?;
        writeln!(
            out,
            "| long prompt | `run -t auto` (prefill {}, decode {} threads) | {:.1} tok/s prompt |",
            prefill_best.threads, decode_best.threads, prefill_best.prefill_long
        )?;
        writeln!(
            out,
            "| many prompts | `batch --instances {} -t {} --batch-size {}` (or `--strategy throughput`) | {:.1} tok/s aggregate |",
            many.instances, many.threads, many.batch, many.tok_s
        )?;
        writeln!(
            out,
            "| server | {} instance(s) × {} threads, {} sequences each | {:.1} tok/s aggregate, {:.1} per sequence |",
            server.instances, server.threads, server.batch, server.tok_s, server.per_sequence
        )?;
    }
    eprintln!("profile saved to {}", path.display());
    if let Some(plot) = &args.plot {
        eprintln!("plot saved to {}", plot.display());
    }
    Ok(())
}

fn print_tables(
    out: &mut impl Write,
    key: &Key,
    kernel: &str,
    threads: &[ThreadRow],
    splits: &[SplitRow],
    s: Sizes,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{} on {} ({} CPUs), kernels {kernel}\n",
        key.model_file, key.cpu, key.cores
    )?;
    writeln!(
        out,
        "| threads | prompt {} tok/s | prompt {} tok/s | generation tok/s |",
        s.prompt_short, s.prompt_long
    )?;
    writeln!(out, "| ---: | ---: | ---: | ---: |")?;
    for r in threads {
        writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.1} |",
            r.threads, r.prefill_short, r.prefill_long, r.decode
        )?;
    }
    writeln!(
        out,
        "\n| instances × threads | batch | tok/s aggregate | tok/s per sequence |"
    )?;
    writeln!(out, "| --- | ---: | ---: | ---: |")?;
    for r in splits {
        writeln!(
            out,
            "| {} × {} | {} | {:.1} | {:.1} |",
            r.instances, r.threads, r.batch, r.tok_s, r.per_sequence
        )?;
    }
    Ok(())
}

/// Runs `f` on a fresh instance with `threads` workers pinned to `cpus`, on
/// its own thread (pinning binds the calling thread too, so not this one).
fn on_instance<R: Send>(
    base: &Model,
    threads: usize,
    cpus: &[usize],
    f: impl FnOnce(&Model) -> R + Send,
) -> R {
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut model = base.instance();
            model.set_threads_on(threads, cpus, true);
            f(&model)
        })
        .join()
        .expect("a tune thread panicked")
    })
}

/// `instances` instances of `threads` workers on disjoint CPUs, each
/// generating `batch` sequences together through a [`Batcher`]: aggregate
/// tok/s of all of them and the mean per-sequence decode tok/s.
fn split_throughput(
    base: &Model,
    instances: usize,
    threads: usize,
    batch: usize,
    cpus: &[usize],
    kv: KvType,
    s: Sizes,
) -> crate::Result<(f64, f64)> {
    let ready = Barrier::new(instances + 1);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..instances)
            .map(|i| {
                let (ready, cpus) = (&ready, &cpus[i * threads..(i + 1) * threads]);
                scope.spawn(move || -> Result<(usize, f64, Vec<f64>), ModelError> {
                    let mut model = base.instance();
                    model.set_threads_on(threads, cpus, true);
                    let batcher = Batcher::new(&model, batch, s.split_prompt + s.split_gen, kv);
                    // A warm-up round first: fresh workers and caches are slow once.
                    let warm = batcher.and_then(|mut b| round(&mut b, i, s).map(|_| b));
                    ready.wait();
                    let mut batcher = warm?;
                    let start = Instant::now();
                    let (tokens, rates) = round(&mut batcher, i, s)?;
                    Ok((tokens, start.elapsed().as_secs_f64(), rates))
                })
            })
            .collect();
        ready.wait();
        handles
            .into_iter()
            .map(|h| h.join().expect("a tune thread panicked"))
            .collect::<Vec<_>>()
    });
    let (mut tokens, mut wall, mut rates) = (0, 0f64, Vec::new());
    for r in results {
        let (t, secs, r) = r?;
        tokens += t;
        wall = wall.max(secs);
        rates.extend(r);
    }
    let per_sequence = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    Ok((tokens as f64 / wall.max(1e-9), per_sequence))
}

/// Fills every slot of `batcher` with a request and generates until all are
/// done: tokens generated and each sequence's decode tok/s.
fn round(
    batcher: &mut Batcher<'_>,
    instance: usize,
    s: Sizes,
) -> Result<(usize, Vec<f64>), ModelError> {
    let batch = batcher.free_slots();
    for b in 0..batch {
        batcher.admit(
            b as u64,
            Request {
                prompt: bench::tokens(s.split_prompt, instance * batch + b),
                max_tokens: s.split_gen,
                sampling: SamplerConfig::greedy(),
                stop_tokens: Vec::new(),
            },
        )?;
    }
    let (mut tokens, mut rates, mut events) = (0, Vec::new(), Vec::new());
    while !batcher.is_idle() {
        events.clear();
        batcher.step(&mut events)?;
        for e in &events {
            match e {
                Event::Token { .. } => tokens += 1,
                Event::Finished { stats, .. } => rates.push(stats.decode_tok_s()),
            }
        }
    }
    Ok((tokens, rates))
}

fn median(mut v: Vec<f64>) -> crate::Result<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2)
        .copied()
        .ok_or_else(|| "no measurement".into())
}

/// One line of a plot: legend, colour, a value per thread count.
type Series = (&'static str, &'static str, Vec<f64>);

/// Two panels, prompt processing and generation tok/s against threads.
fn svg(rows: &[ThreadRow], cpu: &str, model: &str) -> String {
    const W: f64 = 360.0;
    const H: f64 = 240.0;
    const PAD: f64 = 48.0;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="12" y="18" font-size="13">{} on {}: tok/s against threads</text>
"#,
        2.0 * W + 24.0,
        H + 56.0,
        escape(model),
        escape(cpu)
    );
    let max_t = rows.last().map_or(1, |r| r.threads).max(2) as f64;
    let panels: [(&str, Vec<Series>); 2] = [
        (
            "prompt processing",
            vec![
                (
                    "long prompt",
                    "#1f77b4",
                    rows.iter().map(|r| r.prefill_long).collect(),
                ),
                (
                    "short prompt",
                    "#2ca02c",
                    rows.iter().map(|r| r.prefill_short).collect(),
                ),
            ],
        ),
        (
            "generation",
            vec![(
                "one sequence",
                "#d62728",
                rows.iter().map(|r| r.decode).collect(),
            )],
        ),
    ];
    for (p, (title, series)) in panels.iter().enumerate() {
        let x0 = 12.0 + p as f64 * (W + 12.0);
        let (left, top, right, bottom) = (x0 + PAD, 40.0, x0 + W - 12.0, 40.0 + H - 32.0);
        let max_y = series
            .iter()
            .flat_map(|(_, _, v)| v.iter().copied())
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.1;
        let x = |t: f64| left + (t - 1.0) / (max_t - 1.0) * (right - left);
        let y = |v: f64| bottom - v / max_y * (bottom - top);
        out += &format!(
            r#"<text x="{left}" y="{}" font-size="12">{title} (tok/s)</text>
<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">threads</text>
"#,
            top - 6.0,
            (left + right) / 2.0,
            bottom + 28.0
        );
        // At most ~16 labels, so many-core machines stay legible.
        let label_every = rows.len().div_ceil(16);
        for r in rows.iter().filter(|r| (r.threads - 1) % label_every == 0) {
            let t = r.threads as f64;
            out += &format!(
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                x(t),
                bottom + 14.0,
                r.threads
            );
        }
        for k in 0..=4 {
            let v = max_y * k as f64 / 4.0;
            out += &format!(
                "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{right}\" y2=\"{0:.1}\" stroke=\"#ddd\"/>\n<text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\">{3:.0}</text>\n",
                y(v),
                left - 4.0,
                y(v) + 4.0,
                v
            );
        }
        for (si, (name, color, values)) in series.iter().enumerate() {
            let points: Vec<String> = rows
                .iter()
                .zip(values)
                .map(|(r, &v)| format!("{:.1},{:.1}", x(r.threads as f64), y(v)))
                .collect();
            out += &format!(
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
                points.join(" ")
            );
            for pt in &points {
                let (px, py) = pt.split_once(',').expect("x,y");
                out += &format!("<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{color}\"/>\n");
            }
            let ly = top + 12.0 + si as f64 * 14.0;
            out += &format!(
                "<rect x=\"{0}\" y=\"{1}\" width=\"10\" height=\"3\" fill=\"{color}\"/>\n<text x=\"{2}\" y=\"{3}\">{name}</text>\n",
                right - 110.0,
                ly - 4.0,
                right - 96.0,
                ly
            );
        }
    }
    out + "</svg>\n"
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
