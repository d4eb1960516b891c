//! Generation: one sequence's KV cache and position, fed prompt tokens in
//! batches and then one token per step, with timings.

use crate::error::ModelError;
use crate::kv_cache::{KvCache, KvType};
use crate::model::{Logits, Model};
use crate::profile::Op;
use crate::sampler::Sampler;
use std::time::{Duration, Instant};

/// Wall-clock time spent per phase.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    pub prefill_tokens: usize,
    pub prefill: Duration,
    pub decode_tokens: usize,
    pub decode: Duration,
}

impl Timings {
    /// Prompt tokens per second.
    pub fn prefill_tok_s(&self) -> f64 {
        self.prefill_tokens as f64 / self.prefill.as_secs_f64().max(1e-9)
    }

    /// Generated tokens per second.
    pub fn decode_tok_s(&self) -> f64 {
        self.decode_tokens as f64 / self.decode.as_secs_f64().max(1e-9)
    }
}

/// One sequence being generated.
#[derive(Debug)]
pub struct Session<'m> {
    model: &'m Model,
    cache: KvCache,
    tokens: Vec<u32>,
    logits: Vec<f32>,
    pub timings: Timings,
}

/// Prompt tokens per forward call: bounds scratch memory on long prompts.
const PREFILL_CHUNK: usize = 512;

impl<'m> Session<'m> {
    /// A session holding up to `ctx` positions (at most the model's context).
    pub fn new(model: &'m Model, ctx: usize, kv: KvType) -> Result<Session<'m>, ModelError> {
        Ok(Session {
            model,
            cache: KvCache::new(&model.config, ctx, kv)?,
            tokens: Vec::new(),
            logits: Vec::new(),
            timings: Timings::default(),
        })
    }

    /// Tokens fed so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Positions left in the context.
    pub fn remaining(&self) -> usize {
        self.cache.capacity() - self.tokens.len()
    }

    /// The next-token logits after the last token fed.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Forgets the sequence (keeps the allocation).
    pub fn reset(&mut self) {
        self.cache.clear();
        self.tokens.clear();
        self.logits.clear();
    }

    /// Feeds prompt tokens (batched prefill). Errors, changing nothing, if
    /// they do not fit the context.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<(), ModelError> {
        if tokens.len() > self.remaining() {
            return Err(ModelError::ContextFull {
                needed: self.tokens.len() + tokens.len(),
                ctx: self.cache.capacity(),
            });
        }
        let start = Instant::now();
        for chunk in tokens.chunks(PREFILL_CHUNK) {
            self.model
                .forward(chunk, &mut self.cache, Logits::Last, &mut self.logits)?;
            self.tokens.extend_from_slice(chunk);
        }
        self.timings.prefill += start.elapsed();
        self.timings.prefill_tokens += tokens.len();
        Ok(())
    }

    /// Feeds one generated token.
    pub fn push(&mut self, token: u32) -> Result<(), ModelError> {
        self.feed(token, None)
    }

    /// [`Session::push`] for a token whose next logits only `sampler` will
    /// read ([`Session::sample`]): with a screened LM head, only the rows
    /// that can be among its picks are scored exactly ([`Logits::Top`]).
    pub fn push_for(&mut self, token: u32, sampler: &mut Sampler) -> Result<(), ModelError> {
        self.feed(token, Some(sampler))
    }

    /// Feeds `token`, whose next logits `sampler` (when given) alone reads.
    fn feed(&mut self, token: u32, sampler: Option<&mut Sampler>) -> Result<(), ModelError> {
        let start = Instant::now();
        self.tokens.push(token);
        let vocab = self.model.config.vocab;
        let which = match sampler.and_then(|s| s.reads(&self.tokens, vocab)) {
            Some((k, exact)) => Logits::Top { k, exact },
            None => Logits::Last,
        };
        let fed = self
            .model
            .forward(&[token], &mut self.cache, which, &mut self.logits);
        if fed.is_err() {
            self.tokens.pop();
        }
        fed?;
        self.timings.decode += start.elapsed();
        self.timings.decode_tokens += 1;
        Ok(())
    }

    /// Samples the next token from the current logits (call after
    /// [`Session::prefill`] or [`Session::push`]).
    pub fn sample(&self, sampler: &mut Sampler) -> u32 {
        let start = Instant::now();
        let token = sampler.sample(&self.logits, &self.tokens);
        self.model.profile().add(Op::Sampling, start.elapsed());
        token
    }
}

/// Turns token bytes into text as they arrive, holding back an incomplete
/// UTF-8 sequence until its last byte comes; invalid bytes become U+FFFD.
#[derive(Debug, Default, Clone)]
pub struct TextStream {
    pending: Vec<u8>,
}

impl TextStream {
    /// Adds bytes; returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(
                        std::str::from_utf8(&self.pending[..valid]).expect("valid prefix"),
                    );
                    match e.error_len() {
                        // An incomplete sequence at the end: wait for more.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Flushes what is left (an unfinished sequence becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::TextStream;

    #[test]
    fn holds_back_partial_characters() {
        let mut s = TextStream::default();
        let emoji = "🙂".as_bytes();
        assert_eq!(s.push(b"a"), "a");
        assert_eq!(s.push(&emoji[..2]), "");
        assert_eq!(s.push(&emoji[2..]), "🙂");
        assert_eq!(s.push(&[0xff, b'b']), "\u{fffd}b");
        assert_eq!(s.push(&emoji[..1]), "");
        assert_eq!(s.finish(), "\u{fffd}");
    }
}
