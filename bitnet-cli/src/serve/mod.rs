//! `bitnet serve`: an OpenAI-compatible HTTP server. The cores are split
//! into model instances (each a thread driving a continuous [`Batcher`]
//! over the shared mapped weights, with its own pinned worker pool); tokio
//! and axum only carry bytes.
//!
//! The request bodies are parsed by [`bitnet_openai`], a crate of its own
//! (no HTTP stack), so the `chat_request` fuzz target runs the same code.
//!
//! [`Batcher`]: bitnet_model::Batcher

mod http;
mod metrics;
mod scheduler;

use crate::args::{LoadArgs, ModelArgs, PinArg, ServeArgs, Strategy, Threads};
use crate::error::usage;
use crate::tuned::Tuned;
use bitnet_model::pool::ThreadPool;
use bitnet_model::{ChatTemplate, KvCache, Tokenizer};
use metrics::Metrics;
use scheduler::{InstanceSpec, Scheduler};
use std::future::IntoFuture;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Set once the model is loaded and the instances run.
    engine: OnceLock<Engine>,
    api_key: Option<String>,
    shutting_down: AtomicBool,
    metrics: Arc<Metrics>,
    next_response: AtomicU64,
}

/// The loaded model as the handlers need it.
#[derive(Debug)]
pub struct Engine {
    scheduler: Scheduler,
    tok: Arc<Tokenizer>,
    template: ChatTemplate,
    stop_tokens: Vec<u32>,
    /// Positions per sequence.
    ctx: usize,
    /// KV cache memory reserved over every instance's slots.
    kv_bytes: u64,
    vocab: usize,
    model_name: String,
    /// Unix seconds the model was loaded.
    created: u64,
}

/// How the cores are split into instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub instances: usize,
    pub threads: usize,
    /// Per instance, the CPUs its workers are pinned to (empty: unpinned).
    pub cpus: Vec<Vec<usize>>,
    /// Why this layout, for the startup line.
    pub reason: String,
}

impl Layout {
    /// The layout for `args` on a machine whose usable CPUs are `cpus`
    /// (`cores` of them; `cpus` is empty where they cannot be listed).
    pub fn choose(args: &ServeArgs, cores: usize, cpus: &[usize], tuned: Option<&Tuned>) -> Layout {
        let cores = cores.max(1);
        let strategy = args.strategy.unwrap_or(Strategy::Balanced);
        let measured = tuned.and_then(|t| {
            let (i, threads, _) = match strategy {
                Strategy::Latency => None,
                Strategy::Balanced => t.server(),
                Strategy::Throughput => t.many_prompts(),
            }?;
            (i * threads <= cores).then(|| (i, threads, t.path.display().to_string()))
        });
        let (instances, threads, reason) = match (args.instances, args.threads) {
            (None, None) if measured.is_some() => {
                let (i, t, path) = measured.expect("checked");
                let name = strategy.describe().split(':').next().unwrap_or("");
                (
                    i,
                    t,
                    format!("{name}: measured best (tuned profile {path})"),
                )
            }
            (None, None) => {
                let instances = strategy.instances(cores);
                (
                    instances,
                    (cores / instances).max(1),
                    strategy.describe().to_string(),
                )
            }
            (i, t) => {
                let instances =
                    i.map_or_else(|| (cores / t.unwrap_or(1) as usize).max(1), usize::from);
                let threads = t.map_or_else(|| (cores / instances).max(1), usize::from);
                (instances, threads, "--instances/--threads".to_string())
            }
        };
        let pinned = !cpus.is_empty() && instances * threads <= cpus.len();
        let cpus = (0..instances)
            .map(|i| {
                if pinned {
                    cpus[i * threads..(i + 1) * threads].to_vec()
                } else {
                    Vec::new()
                }
            })
            .collect();
        Layout {
            instances,
            threads,
            cpus,
            reason,
        }
    }

    fn describe(&self, cores: usize) -> String {
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let pinning = match self.cpus.first() {
            Some(first) if !first.is_empty() => format!(
                "pinned to CPUs {}",
                self.cpus
                    .iter()
                    .map(|c| format!("{c:?}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            _ if self.instances * self.threads > cores => format!(
                "not pinned: {} threads oversubscribe {cores} cores",
                self.instances * self.threads
            ),
            _ => "not pinned".to_string(),
        };
        format!(
            "layout: {} × {} on {} ({}), {pinning}",
            plural(self.instances, "instance"),
            plural(self.threads, "thread"),
            plural(cores, "core"),
            self.reason
        )
    }
}

pub fn run(args: &ServeArgs) -> crate::Result<()> {
    if !(args.grace.is_finite() && args.grace >= 0.0) {
        return Err(usage(format!(
            "--grace {} must be a number of seconds ≥ 0",
            args.grace
        )));
    }
    let cpus = ThreadPool::default_cpus(true);
    let cores = if cpus.is_empty() {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        cpus.len()
    };
    // The profile `bitnet tune` saved for this model and CPU, if any.
    let tuned = args.model.as_deref().and_then(|path| {
        let file = bitnet_model::gguf::Gguf::open(path).ok()?;
        Tuned::find(path, &file)
    });
    let layout = Layout::choose(args, cores, &cpus, tuned.as_ref());
    eprintln!("{}", layout.describe(cores));
    eprintln!(
        "{} slots per instance, prefill budget {} tokens per step, queue of {}",
        args.slots, args.prefill_budget, args.max_queue
    );
    // Only I/O runs on the runtime, and on this thread alone: the cores
    // belong to the instances, streaming tokens takes a sliver of one core,
    // and every further thread would keep its own allocator arena holding
    // the high-water mark of its connections' buffers.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let state = runtime.block_on(serve(args, layout))?;
    drop(runtime);
    if let Some(engine) = state.engine.get() {
        engine.scheduler.shutdown();
    }
    eprintln!("stopped");
    Ok(())
}

async fn serve(args: &ServeArgs, layout: Layout) -> crate::Result<Arc<AppState>> {
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    let state = Arc::new(AppState {
        engine: OnceLock::new(),
        api_key: args.api_key.clone(),
        shutting_down: AtomicBool::new(false),
        metrics: Arc::default(),
        next_response: AtomicU64::new(1),
    });

    let (load_failed, mut load_failure) = tokio::sync::oneshot::channel::<String>();
    let model_args = ModelArgs {
        load: LoadArgs {
            model: args.model.clone(),
            threads: Some(Threads::Count(1)),
            pin: Some(PinArg::None),
            kernel: None,
            lm_head: args.lm_head,
        },
        ctx: args.ctx,
        kv: args.kv,
    };
    let sizes = Sizes {
        slots: usize::from(args.slots),
        prefill_budget: args.prefill_budget as usize,
        max_queue: args.max_queue,
    };
    let loading = Arc::clone(&state);
    // Loading maps and checks the file and starts the instances: off the runtime.
    std::thread::Builder::new()
        .name("bitnet-load".into())
        .spawn(move || {
            let start = Instant::now();
            match start_engine(&model_args, &layout, &sizes, &loading.metrics) {
                Ok(engine) => {
                    eprintln!(
                        "ready: {} (context {}, {:.0} MB of KV cache reserved) in {:.0} ms",
                        engine.model_name,
                        engine.ctx,
                        engine.kv_bytes as f64 / 1e6,
                        start.elapsed().as_secs_f64() * 1e3
                    );
                    let _ = loading.engine.set(engine);
                }
                Err(e) => {
                    let _ = load_failed.send(e.to_string());
                }
            }
        })?;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    // As a make-service, each connection gets a clone of the router; a bare
    // `Router` would rebuild its route tables for every connection.
    let app = http::router(Arc::clone(&state)).into_make_service();
    let mut server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let mut stopped = stopped;
                let _ = stopped.wait_for(|s| *s).await;
            })
            .into_future(),
    );
    tokio::select! {
        () = shutdown_signal() => {}
        Ok(message) = &mut load_failure => return Err(message.into()),
        result = &mut server => {
            result??;
            return Err("the HTTP server stopped by itself".into());
        }
    }
    eprintln!(
        "shutting down: no new requests; in-flight ones have {} s to finish",
        args.grace
    );
    state.shutting_down.store(true, Ordering::Release);
    let _ = stop.send(true);
    let grace = Duration::from_secs_f64(args.grace);
    if tokio::time::timeout(grace, &mut server).await.is_err() {
        if let Some(engine) = state.engine.get() {
            eprintln!("cancelling the requests still running");
            engine.scheduler.cancel_all();
        }
        // Clients that stopped reading cannot hold the exit up.
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut server).await;
    }
    Ok(state)
}

/// What each instance holds and how many requests may wait.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    slots: usize,
    prefill_budget: usize,
    max_queue: usize,
}

fn start_engine(
    model_args: &ModelArgs,
    layout: &Layout,
    sizes: &Sizes,
    metrics: &Arc<Metrics>,
) -> crate::Result<Engine> {
    let Sizes {
        slots,
        prefill_budget,
        max_queue,
    } = *sizes;
    let loaded = crate::load::load(model_args)?;
    let template = loaded.chat_template()?;
    let tok = Arc::new(loaded.tok);
    let specs: Vec<InstanceSpec> = layout
        .cpus
        .iter()
        .map(|cpus| InstanceSpec {
            threads: layout.threads,
            cpus: cpus.clone(),
            slots,
            ctx: loaded.ctx,
            kv: loaded.kv,
            prefill_budget,
        })
        .collect();
    let scheduler = Scheduler::start(&loaded.model, &specs, max_queue, &tok, metrics)?;
    let model_name = model_args
        .load
        .model
        .as_ref()
        .and_then(|p| p.file_stem())
        .map_or_else(
            || "bitnet-synthetic-tiny".to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
    let kv_bytes = KvCache::bytes(&loaded.model.config, loaded.ctx, loaded.kv)
        .saturating_mul((slots * specs.len()) as u64);
    Ok(Engine {
        scheduler,
        kv_bytes,
        stop_tokens: template.stop_tokens(&tok),
        template,
        tok,
        ctx: loaded.ctx,
        vocab: loaded.model.config.vocab,
        model_name,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn layout(flags: &[&str], cores: usize) -> Layout {
        let mut argv = vec!["bitnet", "serve"];
        argv.extend(flags);
        let cli = crate::args::Cli::try_parse_from(argv).unwrap();
        let crate::args::Command::Serve(args) = cli.command else {
            unreachable!()
        };
        let cpus: Vec<usize> = (0..cores).collect();
        Layout::choose(&args, cores, &cpus, None)
    }

    #[test]
    fn strategies_split_the_cores() {
        let shape = |l: Layout| (l.instances, l.threads);
        assert_eq!(shape(layout(&["--strategy", "latency"], 12)), (1, 12));
        assert_eq!(shape(layout(&["--strategy", "throughput"], 12)), (12, 1));
        assert_eq!(shape(layout(&["--strategy", "balanced"], 12)), (3, 4));
        assert_eq!(shape(layout(&[], 16)), (4, 4));
        assert_eq!(shape(layout(&[], 2)), (1, 2));
        assert_eq!(shape(layout(&["--instances", "2"], 8)), (2, 4));
        assert_eq!(shape(layout(&["-t", "3"], 12)), (4, 3));
        assert_eq!(shape(layout(&["--instances", "4", "-t", "3"], 12)), (4, 3));
    }

    #[test]
    fn instances_get_disjoint_cpus_unless_oversubscribed() {
        let l = layout(&["--instances", "2", "-t", "2"], 4);
        assert_eq!(l.cpus, vec![vec![0, 1], vec![2, 3]]);
        let l = layout(&["--instances", "2", "-t", "2"], 2);
        assert_eq!(l.cpus, vec![Vec::<usize>::new(), Vec::new()]);
        assert!(l.describe(2).contains("oversubscribe"));
    }

    #[test]
    fn strategy_and_explicit_layout_conflict() {
        let r = crate::args::Cli::try_parse_from([
            "bitnet",
            "serve",
            "--strategy",
            "latency",
            "--instances",
            "2",
        ]);
        assert!(r.is_err());
    }
}
