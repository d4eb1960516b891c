//! `bitnet run`: prompt in, streamed text out, timings on stderr.

use crate::args::{KvArg, RunArgs};
use bitnet_model::synthetic::{write_model, Preset, TernaryFormat};
use bitnet_model::{KvType, Model, Sampler, SamplerConfig, Session, TextStream, Tokenizer};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

pub fn run(args: &RunArgs) -> crate::Result<()> {
    let sampling = SamplerConfig {
        temperature: args.sampling.temp,
        top_k: args.sampling.top_k,
        top_p: args.sampling.top_p,
        min_p: args.sampling.min_p,
        repeat_penalty: args.sampling.repeat_penalty,
        repeat_last_n: 64,
        seed: args.sampling.seed,
    };
    sampling.validate()?;
    let path = match &args.model {
        Some(p) => p.clone(),
        None => demo_model()?,
    };
    let load_start = Instant::now();
    let threads = args.threads.resolve();
    let model = Model::load(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .with_threads(threads, args.pin);
    let tok = Tokenizer::from_gguf(model.gguf()).map_err(|e| format!("{}: {e}", path.display()))?;
    let load_ms = load_start.elapsed().as_secs_f64() * 1e3;

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
    let prompt = tok.encode_prompt(&args.prompt, args.special);
    if prompt.is_empty() {
        return Err("the prompt is empty and the model adds no BOS token".into());
    }
    if prompt.len() > ctx {
        return Err(format!(
            "the prompt is {} tokens, longer than the context of {ctx} tokens (raise -c)",
            prompt.len()
        )
        .into());
    }
    let mut session = Session::new(&model, ctx, kv)?;
    session.prefill(&prompt)?;

    let mut sampler = Sampler::new(sampling);
    let stops = [tok.eos, tok.eot];
    let mut stream = TextStream::default();
    let mut text = String::new();
    let mut generated = Vec::new();
    let mut stdout = std::io::stdout().lock();
    let mut stop = "length";
    for _ in 0..args.n_predict {
        if session.remaining() == 0 {
            stop = "context full";
            break;
        }
        let next = session.sample(&mut sampler);
        if stops.contains(&Some(next)) {
            stop = "end of text";
            break;
        }
        generated.push(next);
        let piece = if tok.is_control(next) {
            String::new()
        } else {
            stream.push(tok.token_bytes(next))
        };
        if !args.json {
            stdout.write_all(piece.as_bytes())?;
            stdout.flush()?;
        }
        text.push_str(&piece);
        session.push(next)?;
    }
    let tail = stream.finish();
    text.push_str(&tail);
    let t = session.timings;
    if args.json {
        let out = serde_json::json!({
            "text": text,
            "prompt_tokens": prompt.len(),
            "token_ids": generated,
            "stop": stop,
            "timings": {
                "load_ms": load_ms,
                "prompt_tok_s": t.prefill_tok_s(),
                "decode_tok_s": t.decode_tok_s(),
                "threads": threads,
                "kernels": model.dispatch().describe().to_string(),
            },
        });
        writeln!(stdout, "{out}")?;
    } else {
        writeln!(stdout, "{tail}")?;
    }
    eprintln!(
        "load {load_ms:.0} ms | prompt {} tok, {:.1} tok/s | generated {} tok, {:.1} tok/s | stop: {stop} | threads {threads} | kernels {}",
        t.prefill_tokens,
        t.prefill_tok_s(),
        t.decode_tokens,
        t.decode_tok_s(),
        model.dispatch().describe()
    );
    Ok(())
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
