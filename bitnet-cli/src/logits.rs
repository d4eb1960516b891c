//! `bitnet logits`: the logits at every position of a token sequence as a
//! float32 .npy of shape [tokens, vocab] (the layout reference dumps use),
//! for checking this engine against others.

use crate::args::LogitsArgs;
use crate::error::usage;
use crate::load::load_with;
use crate::progress::Progress;
use bitnet_model::{npy, KvCache, Logits, Model};
use std::io::{BufWriter, Write};
use std::time::Instant;

/// Tokens per forward pass when every position's logits are kept: bounds
/// the logits buffer (CHUNK × vocab floats, 33 MB at a 128k vocabulary) and
/// the activations, yet keeps prefill matmuls batched.
pub const CHUNK: usize = 64;

pub fn run(args: &LogitsArgs) -> crate::Result<()> {
    let l = load_with(&args.load, None, args.kv)?;
    let c = &l.model.config;
    let ids = match &args.prompt {
        Some(p) => l
            .tok
            .encode_prompt(p, args.special)
            .map_err(|e| usage(format!("-p: {e}")))?,
        None => args.tokens.clone(),
    };
    if ids.is_empty() {
        return Err(usage(
            "-p: the prompt is empty and the model adds no BOS token",
        ));
    }
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= c.vocab) {
        return Err(usage(format!(
            "--tokens: id {id} is outside the vocabulary of {} tokens",
            c.vocab
        )));
    }
    if ids.len() > c.ctx {
        return Err(usage(format!(
            "{} tokens are more than the model's context of {}",
            ids.len(),
            c.ctx
        )));
    }
    let path = &args.output;
    let write_err = |e: std::io::Error| format!("writing {}: {e}", path.display());
    let mut out = BufWriter::new(std::fs::File::create(path).map_err(write_err)?);
    npy::write_f32_header(&mut out, &[ids.len(), c.vocab]).map_err(write_err)?;
    let mut cache = KvCache::new(c, ids.len(), l.kv)?;
    let progress = Progress::new(ids.len() as u64, "logits");
    let start = Instant::now();
    forward_chunks(&l.model, &mut cache, &ids, CHUNK, |chunk, logits| {
        npy::write_f32(&mut out, logits).map_err(write_err)?;
        progress.inc(chunk.len() as u64);
        Ok(())
    })?;
    out.flush().map_err(write_err)?;
    progress.finish();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} ([{}, {}] float32) | load {:.0} ms | {} tok in {secs:.2} s, {:.1} tok/s | threads {}{} | kernels {}",
        path.display(),
        ids.len(),
        c.vocab,
        l.load_ms,
        ids.len(),
        ids.len() as f64 / secs,
        l.threads,
        if l.pin { " (pinned)" } else { "" },
        l.model.dispatch().describe()
    );
    Ok(())
}

/// Feeds `tokens` through `model` at most `chunk` at a time, after what
/// `cache` holds (it needs room for all of them), and hands each chunk's
/// tokens and logits (`tokens × vocab`, row-major) to `sink`.
pub fn forward_chunks(
    model: &Model,
    cache: &mut KvCache,
    tokens: &[u32],
    chunk: usize,
    mut sink: impl FnMut(&[u32], &[f32]) -> crate::Result<()>,
) -> crate::Result<()> {
    let mut logits = Vec::new();
    for piece in tokens.chunks(chunk.max(1)) {
        model.forward(piece, cache, Logits::All, &mut logits)?;
        sink(piece, &logits)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitnet_model::synthetic::{write_model, Preset, TernaryFormat};
    use bitnet_model::KvType;

    #[test]
    fn chunked_logits_equal_one_pass_bit_for_bit() {
        let dir = std::env::temp_dir().join(format!("bitnet-logits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tiny.gguf");
        write_model(&path, Preset::TINY, TernaryFormat::I2s, 3).unwrap();
        let model = Model::load(&path).unwrap();
        let tokens: Vec<u32> = (0..45).map(|i| (i * 37 + 5) % 512).collect();
        let all = |chunk: usize| {
            let mut cache = KvCache::new(&model.config, tokens.len(), KvType::F16).unwrap();
            let (mut out, mut sizes) = (Vec::new(), Vec::new());
            forward_chunks(&model, &mut cache, &tokens, chunk, |t, l| {
                sizes.push(t.len());
                out.extend_from_slice(l);
                Ok(())
            })
            .unwrap();
            (out, sizes)
        };
        let (whole, sizes) = all(CHUNK);
        assert_eq!(sizes, [45]);
        assert_eq!(whole.len(), 45 * 512);
        let (pieces, sizes) = all(8);
        assert_eq!(sizes, [8, 8, 8, 8, 8, 5]);
        assert!(pieces == whole, "chunked logits differ");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
