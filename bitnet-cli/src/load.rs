//! Turning model flags into a loaded model, shared by `run` and `chat`.

use crate::args::{KvArg, ModelArgs, SamplingArgs, Threads};
use crate::tuned::Tuned;
use bitnet_model::synthetic::{write_model, Preset, TernaryFormat};
use bitnet_model::{ChatTemplate, KvType, Model, PhaseThreads, SamplerConfig, Tokenizer};
use std::path::PathBuf;
use std::time::Instant;

/// A model ready to generate with.
pub struct Loaded {
    /// The model file (the built-in one's when no -m was given).
    pub path: PathBuf,
    pub model: Model,
    pub tok: Tokenizer,
    pub ctx: usize,
    pub kv: KvType,
    /// Workers in the pool.
    pub threads: usize,
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
    let path = match &args.model {
        Some(p) => p.clone(),
        None => demo_model()?,
    };
    let start = Instant::now();
    let mut model = Model::load(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tuned = Tuned::find(&path, model.gguf());
    let tuned_phase = tuned.as_ref().and_then(Tuned::run_threads);
    let threads_tuned = args.threads == Threads::Auto && tuned_phase.is_some();
    let phase = match tuned_phase {
        Some(phase) if threads_tuned => phase,
        _ => {
            let n = args.threads.resolve();
            PhaseThreads {
                prefill: n,
                decode: n,
            }
        }
    };
    let threads = phase.prefill.max(phase.decode);
    model.set_threads(threads, args.pin);
    model.set_phase_threads(phase);
    let tok = Tokenizer::from_gguf(model.gguf()).map_err(|e| format!("{}: {e}", path.display()))?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let ctx = args.ctx.unwrap_or(model.config.ctx.min(4096));
    if ctx == 0 || ctx > model.config.ctx {
        return Err(format!(
            "context size {ctx} must be between 1 and the model's {}",
            model.config.ctx
        )
        .into());
    }
    let kv = match args.kv {
        KvArg::F16 => KvType::F16,
        KvArg::F32 => KvType::F32,
    };
    Ok(Loaded {
        path,
        model,
        tok,
        ctx,
        kv,
        threads,
        phase,
        tuned,
        threads_tuned,
        load_ms,
    })
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
    config.validate()?;
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

/// The built-in model: a synthetic `tiny` model in the user cache directory,
/// written on first use.
fn demo_model() -> crate::Result<PathBuf> {
    let dir = cache_dir();
    let path = dir.join("synthetic-tiny-i2s.gguf");
    if !path.exists() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        write_model(&path, Preset::TINY, TernaryFormat::I2s, 1)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    eprintln!(
        "note: no -m given; using the built-in synthetic tiny model ({}). Its weights are random, so its text is noise; pass -m MODEL.gguf for a real model.",
        path.display()
    );
    Ok(path)
}
