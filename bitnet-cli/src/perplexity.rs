//! `bitnet perplexity`: exp(mean negative log-likelihood) of a text file
//! under the model, over non-overlapping windows of `-c` tokens. Each window
//! starts with BOS when the model adds one (so every text token is scored
//! exactly once, each seeing only its own window as context); without BOS a
//! window's first token has nothing to be predicted from and is not scored.

use crate::args::PerplexityArgs;
use crate::error::usage;
use crate::load::load_with;
use crate::logits::{forward_chunks, CHUNK};
use crate::progress::Progress;
use bitnet_model::KvCache;
use std::time::Instant;

pub fn run(args: &PerplexityArgs) -> crate::Result<()> {
    if args.ctx < 2 {
        return Err(usage(format!(
            "-c {}: a window needs at least 2 tokens",
            args.ctx
        )));
    }
    let l = load_with(&args.load, Some(args.ctx), args.kv)?;
    let file = args.file.display();
    let text = std::fs::read_to_string(&args.file).map_err(|e| format!("{file}: {e}"))?;
    let ids = l.tok.encode(&text, false);
    let bos = if l.tok.add_bos { l.tok.bos } else { None };
    let windows = windows(&ids, bos, args.ctx);
    let scored: usize = windows.iter().map(|w| w.len() - 1).sum();
    if scored == 0 {
        return Err(format!("{file}: {} tokens of text, too few to score", ids.len()).into());
    }

    let vocab = l.model.config.vocab;
    let mut cache = KvCache::new(&l.model.config, args.ctx, l.kv)?;
    let progress = Progress::new(scored as u64, "perplexity");
    let mut nll_sum = 0f64;
    let start = Instant::now();
    for w in &windows {
        cache.clear();
        let mut pos = 0;
        forward_chunks(&l.model, &mut cache, w, CHUNK, |chunk, logits| {
            // Row i predicts the token after position pos + i.
            let targets = w.get(pos + 1..).unwrap_or(&[]);
            for (row, &next) in logits.chunks_exact(vocab).zip(targets) {
                nll_sum += nll(row, next);
            }
            progress.inc(chunk.len().min(targets.len()) as u64);
            pos += chunk.len();
            Ok(())
        })?;
    }
    progress.finish();
    let secs = start.elapsed().as_secs_f64();
    let processed: usize = windows.iter().map(Vec::len).sum();
    let ppl = (nll_sum / scored as f64).exp();
    let kernels = l.model.dispatch().describe().to_string();
    if args.json {
        let out = serde_json::json!({
            "perplexity": ppl,
            "tokens": scored,
            "windows": windows.len(),
            "ctx": args.ctx,
            "seconds": secs,
            "tok_s": processed as f64 / secs,
            "load_ms": l.load_ms,
            "threads": l.threads,
            "pinned": l.pin,
            "kernels": kernels,
        });
        println!("{out}");
    } else {
        println!(
            "perplexity {ppl:.4} over {scored} tokens ({} windows of up to {} tokens)",
            windows.len(),
            args.ctx
        );
        eprintln!(
            "load {:.0} ms | {processed} tok in {secs:.2} s, {:.1} tok/s | threads {}{} | kernels {kernels}",
            l.load_ms,
            processed as f64 / secs,
            l.threads,
            if l.pin { " (pinned)" } else { "" },
        );
    }
    Ok(())
}

/// Splits `text` into consecutive windows of at most `ctx` tokens, each
/// led by `bos` when given; windows with nothing to score are dropped.
fn windows(text: &[u32], bos: Option<u32>, ctx: usize) -> Vec<Vec<u32>> {
    let per_window = ctx - usize::from(bos.is_some());
    text.chunks(per_window.max(1))
        .map(|piece| bos.into_iter().chain(piece.iter().copied()).collect())
        .filter(|w: &Vec<u32>| w.len() >= 2)
        .collect()
}

/// `−log softmax(logits)[target]`, in f64.
fn nll(logits: &[f32], target: u32) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    max + sum.ln() - logits[target as usize] as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_lead_with_bos_and_cover_every_token_once() {
        let text: Vec<u32> = (10..20).collect();
        let w = windows(&text, Some(1), 4);
        assert_eq!(
            w,
            [
                vec![1, 10, 11, 12],
                vec![1, 13, 14, 15],
                vec![1, 16, 17, 18],
                vec![1, 19]
            ]
        );
        // Without BOS the last window (one token) has nothing to score.
        let w = windows(&text, None, 3);
        assert_eq!(w, [vec![10, 11, 12], vec![13, 14, 15], vec![16, 17, 18]]);
        assert!(windows(&[5], None, 8).is_empty());
    }

    #[test]
    fn nll_is_the_negative_log_softmax() {
        let logits = [1.0f32, 2.0, 3.0];
        let z: f64 = logits.iter().map(|&x| (x as f64).exp()).sum();
        for t in 0..3 {
            let want = -((logits[t] as f64).exp() / z).ln();
            assert!((nll(&logits, t as u32) - want).abs() < 1e-12);
        }
        // Large logits do not overflow.
        assert!((nll(&[1000.0, 1000.0], 0) - 2f64.ln()).abs() < 1e-12);
    }
}
