//! Turning model flags into a loaded model, shared by every subcommand that
//! runs one; the one place where threads, pinning and the kernel path are
//! resolved from flags and the environment.

use crate::args::{
    parse_threads, KvArg, LmHeadArg, LoadArgs, ModelArgs, PinArg, SamplingArgs, Threads,
};
use crate::error::usage;
use crate::tuned::{fnv1a, Tuned};
use bitnet_model::gguf::TensorType;
use bitnet_model::{
    ChatTemplate, Dispatch, Isa, KvType, Model, PhaseThreads, SamplerConfig, Tokenizer,
};
use std::path::PathBuf;
use std::time::Instant;

/// A model ready to generate with.
pub struct Loaded {
    /// The model file (the built-in one's when no -m was given).
    pub path: PathBuf,
    pub model: Model,
    pub tok: Tokenizer,
    /// Context size in tokens (`-c`, else the model's, at most 4096).
    pub ctx: usize,
    pub kv: KvType,
    /// Workers in the pool.
    pub threads: usize,
    /// Whether each worker is bound to its own CPU.
    pub pin: bool,
    /// Workers per phase (fewer than `threads` in one of them when tuned).
    pub phase: PhaseThreads,
    /// The `bitnet tune` profile for this model and CPU, if there is one.
    pub tuned: Option<Tuned>,
    /// Whether `-t auto` took the thread counts from `tuned`.
    pub threads_tuned: bool,
    pub load_ms: f64,
}

impl Loaded {
    /// The model's chat format (see [`ChatTemplate::for_model`]).
    pub fn chat_template(&self) -> crate::Result<ChatTemplate> {
        let file_template = self.model.gguf().get_str("tokenizer.chat_template")?;
        Ok(ChatTemplate::for_model(
            self.model.config.arch,
            file_template,
            &self.tok,
        ))
    }
}

pub fn load(args: &ModelArgs) -> crate::Result<Loaded> {
    load_with(&args.load, args.ctx, args.kv)
}

/// Loads the model of `args` with a context of `ctx` tokens (default: the
/// model's, at most 4096) and a KV cache of `kv` elements.
pub fn load_with(args: &LoadArgs, ctx: Option<usize>, kv: KvArg) -> crate::Result<Loaded> {
    let mut warnings = Vec::new();
    let choice = thread_choice(args.threads, &process_env, &mut warnings)?;
    let threads = thread_count(choice, cpus(), &mut warnings);
    let pin = resolve_pin(args.pin, &process_env, &mut warnings);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let dispatch = resolve_kernel(args.kernel)?;
    let path = match &args.model {
        Some(p) => p.clone(),
        None => demo_model()?,
    };
    let start = Instant::now();
    let mut model = Model::load(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .with_dispatch(dispatch);
    if let Some(head) = args.lm_head {
        let began = Instant::now();
        let requantized = |ty: TensorType| format!("re-quantized to {} (lossy", ty.name());
        let (changed, done) = match head {
            LmHeadArg::Screen => (
                model.with_screened_lm_head(cpus()),
                "screened by a Q8_0 copy (greedy and top-k pick exactly".into(),
            ),
            LmHeadArg::Q8_0 => (
                model.with_lm_head(TensorType::Q8_0, cpus()),
                requantized(TensorType::Q8_0),
            ),
            LmHeadArg::Q6K => (
                model.with_lm_head(TensorType::Q6K, cpus()),
                requantized(TensorType::Q6K),
            ),
        };
        model = changed.map_err(|e| format!("{}: --lm-head: {e}", path.display()))?;
        eprintln!(
            "note: LM head {done}; {:.0} MB in memory, {:.0} ms)",
            model.owned_weight_bytes() as f64 / 1e6,
            began.elapsed().as_secs_f64() * 1e3
        );
    }
    let tuned = Tuned::find(&path, model.gguf());
    let tuned_phase = tuned.as_ref().and_then(Tuned::run_threads);
    let threads_tuned = choice == Threads::Auto && tuned_phase.is_some();
    let phase = match tuned_phase {
        Some(phase) if threads_tuned => phase,
        _ => PhaseThreads {
            prefill: threads,
            decode: threads,
        },
    };
    let threads = phase.prefill.max(phase.decode);
    model.set_threads(threads, pin);
    model.set_phase_threads(phase);
    let tok = Tokenizer::from_gguf(model.gguf()).map_err(|e| format!("{}: {e}", path.display()))?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let ctx = ctx.unwrap_or(model.config.ctx.min(4096));
    if ctx == 0 || ctx > model.config.ctx {
        return Err(usage(format!(
            "context size {ctx} must be between 1 and the model's {}",
            model.config.ctx
        )));
    }
    Ok(Loaded {
        path,
        model,
        tok,
        ctx,
        kv: kv_type(kv),
        threads,
        pin,
        phase,
        tuned,
        threads_tuned,
        load_ms,
    })
}

fn kv_type(kv: KvArg) -> KvType {
    match kv {
        KvArg::F16 => KvType::F16,
        KvArg::F32 => KvType::F32,
    }
}

/// A lookup of an environment variable (the process's, or a test's).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment; unset, empty and non-UTF-8 values all read as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// CPUs this process may run on (its affinity mask, cgroup quota).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The worker count: the `-t` flag, else `BITNET_THREADS`, else
/// `OMP_NUM_THREADS`, else `auto` (every CPU this process may use). More
/// threads than `cpus` is allowed, with a warning pushed to `warnings`.
/// `BITNET_THREADS` is ours, so a bad value is a usage error; `OMP_*` are
/// shared with other programs, so a value we cannot use is skipped with a
/// warning rather than refusing to run.
pub fn resolve_threads(
    flag: Option<Threads>,
    env: Env<'_>,
    cpus: usize,
    warnings: &mut Vec<String>,
) -> crate::Result<usize> {
    let choice = thread_choice(flag, env, warnings)?;
    Ok(thread_count(choice, cpus, warnings))
}

/// The `-t` flag, else `BITNET_THREADS`, else `OMP_NUM_THREADS`, else
/// `auto`; see [`resolve_threads`].
pub(crate) fn thread_choice(
    flag: Option<Threads>,
    env: Env<'_>,
    warnings: &mut Vec<String>,
) -> crate::Result<Threads> {
    Ok(match flag {
        Some(t) => t,
        None => match env("BITNET_THREADS") {
            Some(v) => {
                parse_threads(v.trim()).map_err(|e| usage(format!("BITNET_THREADS: {e}")))?
            }
            // OpenMP's list form ("8,4") sets nested levels; the first is ours.
            None => match env("OMP_NUM_THREADS") {
                Some(v) => match parse_threads(v.split(',').next().unwrap_or("").trim()) {
                    Ok(Threads::Count(n)) => Threads::Count(n),
                    _ => {
                        warnings.push(format!(
                            "ignoring OMP_NUM_THREADS={v:?}: not a thread count from 1 to 1024"
                        ));
                        Threads::Auto
                    }
                },
                None => Threads::Auto,
            },
        },
    })
}

/// Workers for `choice` on `cpus` CPUs, warning about over-subscription.
fn thread_count(choice: Threads, cpus: usize, warnings: &mut Vec<String>) -> usize {
    let threads = match choice {
        Threads::Count(n) => n,
        Threads::Auto => cpus,
    };
    if threads > cpus {
        warnings.push(format!(
            "{threads} threads on {cpus} CPUs: over-subscribed, workers will wait for each other"
        ));
    }
    threads
}

/// Whether to pin workers: `--pin`, else OpenMP's habits (`OMP_PROC_BIND`
/// true/close/spread/primary/master pins and `false` does not, even with
/// `OMP_PLACES` set; else `OMP_PLACES=cores` or `threads` pins), else no.
///
/// Not pinning is the default because pinning always starts at the first
/// allowed CPU: two processes started separately, each pinned, would share
/// the same cores while others sit idle. Whoever assigns disjoint cores
/// (a launcher, `taskset`, or OMP settings) asks for it.
pub fn resolve_pin(flag: Option<PinArg>, env: Env<'_>, warnings: &mut Vec<String>) -> bool {
    if let Some(p) = flag {
        return p == PinArg::Cores;
    }
    if let Some(v) = env("OMP_PROC_BIND") {
        // A list ("spread,close") sets nested levels; the first is ours.
        match v
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "false" => return false,
            "true" | "close" | "spread" | "primary" | "master" => return true,
            _ => warnings.push(format!(
                "ignoring OMP_PROC_BIND={v:?}: not true, false, close, spread or primary"
            )),
        }
    }
    if let Some(v) = env("OMP_PLACES") {
        match v.trim().to_ascii_lowercase().as_str() {
            "cores" | "threads" => return true,
            _ => warnings.push(format!(
                "ignoring OMP_PLACES={v:?}: only cores and threads are understood (not pinning)"
            )),
        }
    }
    false
}

/// The kernel path: `--kernel`, else `BITNET_KERNEL`, else the best this
/// CPU has. `BITNET_KERNEL` is checked even when `--kernel` overrides it, as
/// the model loader reads it too.
fn resolve_kernel(flag: Option<Isa>) -> crate::Result<Dispatch> {
    let from_env = match process_env("BITNET_KERNEL") {
        Some(v) => {
            let isa = Isa::from_name(&v).map_err(|_| {
                let names: Vec<&str> = Isa::ALL.iter().map(|i| i.name()).collect();
                usage(format!(
                    "BITNET_KERNEL={v:?} is not one of {}",
                    names.join(", ")
                ))
            })?;
            Some(Dispatch::for_isa(isa).map_err(|e| usage(format!("BITNET_KERNEL={v}: {e}")))?)
        }
        None => None,
    };
    match flag {
        Some(isa) => Dispatch::for_isa(isa).map_err(|e| usage(format!("--kernel {isa}: {e}"))),
        None => Ok(from_env.unwrap_or_else(Dispatch::best)),
    }
}

pub fn sampling(args: &SamplingArgs) -> crate::Result<SamplerConfig> {
    let config = SamplerConfig {
        temperature: args.temp,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repeat_penalty: args.repeat_penalty,
        repeat_last_n: 64,
        seed: args.seed,
    };
    config.validate().map_err(usage)?;
    Ok(config)
}

/// `$XDG_CACHE_HOME/bitnet`, else `~/.cache/bitnet` (the temp dir without a home).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("bitnet")
}

/// The built-in demo model: a small BitNet b1.58 trained on generated
/// stories and additions (`tools/demo-model/`), converted by `bitnet convert`.
const DEMO_MODEL: &[u8] = include_bytes!("../../models/demo.gguf");

/// The built-in model's file in the user cache directory, written on first
/// use so that it is memory-mapped like any other model. The name carries a
/// hash of the contents, so a new build's model never meets an old file.
fn demo_model() -> crate::Result<PathBuf> {
    let dir = cache_dir();
    let path = dir.join(format!("demo-{:016x}.gguf", fnv1a(DEMO_MODEL)));
    if !path.exists() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        // Written under a name of this process's own and renamed, so a
        // concurrent first run never maps a half-written file.
        let partial = dir.join(format!("demo.gguf.{}.partial", std::process::id()));
        std::fs::write(&partial, DEMO_MODEL)
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&partial);
                format!("writing {}: {e}", path.display())
            })?;
    }
    eprintln!(
        "note: no -m given; using the built-in demo model, a {} kB BitNet b1.58 trained on simple stories and additions. Pass -m MODEL.gguf for a real model.",
        DEMO_MODEL.len() / 1000
    );
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn threads(flag: Option<Threads>, pairs: &[(&str, &str)]) -> (usize, Vec<String>) {
        let mut warnings = Vec::new();
        let n = resolve_threads(flag, &env(pairs), 4, &mut warnings).unwrap();
        (n, warnings)
    }

    fn pin(flag: Option<PinArg>, pairs: &[(&str, &str)]) -> (bool, Vec<String>) {
        let mut warnings = Vec::new();
        let p = resolve_pin(flag, &env(pairs), &mut warnings);
        (p, warnings)
    }

    #[test]
    fn thread_count_precedence_is_flag_bitnet_omp_auto() {
        let both = [("BITNET_THREADS", "3"), ("OMP_NUM_THREADS", "2")];
        assert_eq!(threads(Some(Threads::Count(1)), &both).0, 1);
        // An explicit `-t auto` is a flag too: it beats the environment.
        assert_eq!(threads(Some(Threads::Auto), &both).0, 4);
        assert_eq!(threads(None, &both).0, 3);
        assert_eq!(threads(None, &[("BITNET_THREADS", "auto")]).0, 4);
        assert_eq!(threads(None, &[("OMP_NUM_THREADS", "2")]).0, 2);
        assert_eq!(threads(None, &[("OMP_NUM_THREADS", "2,1")]).0, 2);
        assert_eq!(threads(None, &[]), (4, vec![]));
    }

    #[test]
    fn bad_thread_settings() {
        let mut w = Vec::new();
        let e = resolve_threads(None, &env(&[("BITNET_THREADS", "many")]), 4, &mut w).unwrap_err();
        assert!(e.is::<crate::error::UsageError>());
        assert!(e.to_string().starts_with("BITNET_THREADS: \"many\""), "{e}");
        let (n, w) = threads(None, &[("OMP_NUM_THREADS", "0")]);
        assert_eq!(n, 4);
        assert!(w[0].contains("ignoring OMP_NUM_THREADS=\"0\""), "{w:?}");
        let (n, w) = threads(Some(Threads::Count(6)), &[]);
        assert_eq!(n, 6, "over-subscription is allowed");
        assert!(
            w[0].contains("6 threads on 4 CPUs: over-subscribed"),
            "{w:?}"
        );
    }

    #[test]
    fn pinning_follows_the_flag_then_openmp_habits() {
        assert_eq!(pin(None, &[]), (false, vec![]));
        assert!(pin(Some(PinArg::Cores), &[]).0);
        assert!(!pin(Some(PinArg::None), &[("OMP_PROC_BIND", "true")]).0);
        assert!(pin(None, &[("OMP_PROC_BIND", "TRUE")]).0);
        assert!(pin(None, &[("OMP_PROC_BIND", "spread,close")]).0);
        assert!(pin(None, &[("OMP_PLACES", "cores")]).0);
        assert!(pin(None, &[("OMP_PLACES", "threads")]).0);
        // OpenMP: binding off wins over places.
        assert!(!pin(None, &[("OMP_PROC_BIND", "false"), ("OMP_PLACES", "cores")]).0);
        let (p, w) = pin(None, &[("OMP_PLACES", "sockets")]);
        assert!(!p && w[0].contains("OMP_PLACES=\"sockets\""), "{w:?}");
        let (p, w) = pin(None, &[("OMP_PROC_BIND", "maybe"), ("OMP_PLACES", "cores")]);
        assert!(p && w[0].contains("OMP_PROC_BIND"), "{w:?}");
    }
}
