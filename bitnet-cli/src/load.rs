//! Turning model flags into a loaded model, shared by `run` and `chat`.

use crate::args::{KvArg, ModelArgs, SamplingArgs};
use bitnet_model::synthetic::{write_model, Preset, TernaryFormat};
use bitnet_model::{ChatTemplate, KvType, Model, SamplerConfig, Tokenizer};
use std::path::PathBuf;
use std::time::Instant;

/// A model ready to generate with.
pub struct Loaded {
    pub model: Model,
    pub tok: Tokenizer,
    pub ctx: usize,
    pub kv: KvType,
    pub threads: usize,
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
    let threads = args.threads.resolve();
    let model = Model::load(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .with_threads(threads, args.pin);
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
        model,
        tok,
        ctx,
        kv,
        threads,
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

/// The built-in model: a synthetic `tiny` model in the user cache directory,
/// written on first use.
fn demo_model() -> crate::Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join("bitnet");
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
