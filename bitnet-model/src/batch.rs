//! Continuous batching: many independent sequences generated together.
//!
//! Each call to [`Batcher::step`] runs one forward pass: every generating
//! sequence contributes its last sampled token, and the sequences still
//! reading their prompts share a budget of prompt tokens per step, first
//! admitted first. The weights are therefore read once per step for all
//! of them, a new request's prefill joins between decode steps instead of
//! waiting for the batch to drain, and the budget keeps those steps short:
//! the running sequences keep streaming while others prefill, and each
//! prompt's first token comes out in the step that reads its last prompt
//! token rather than after everyone else's prefill too. Each sequence keeps
//! its own KV cache and sampler, so its tokens are exactly those a lone
//! [`crate::Session`] would produce with the same request (the forward pass
//! is bit-identical batched or not, and however a prompt is split).

use crate::error::ModelError;
use crate::kv_cache::{KvCache, KvType};
use crate::model::{Logits, Model, Sequence, StepBuffers};
use crate::profile::Op;
use crate::sampler::{Sampler, SamplerConfig};
use std::time::{Duration, Instant};

/// The caller's name for one sequence.
pub type SeqId = u64;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Request {
    /// Prompt token ids, BOS included if the model wants one; not empty.
    pub prompt: Vec<u32>,
    /// Tokens to generate at most.
    pub max_tokens: usize,
    pub sampling: SamplerConfig,
    /// Tokens that end the sequence (not emitted), e.g. EOS and EOT.
    pub stop_tokens: Vec<u32>,
}

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// `max_tokens` were generated.
    Length,
    /// A stop token was sampled.
    Stop,
    /// The KV cache is full.
    ContextFull,
}

impl FinishReason {
    /// The OpenAI-style name (`length`, `stop`), with `context_full` for the third.
    pub fn name(self) -> &'static str {
        match self {
            FinishReason::Length => "length",
            FinishReason::Stop => "stop",
            FinishReason::ContextFull => "context_full",
        }
    }
}

/// Per-sequence counts and times, measured from its admission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeqStats {
    pub prompt_tokens: usize,
    pub generated: usize,
    /// Admission to the first generated token (prefill plus waiting for steps).
    pub time_to_first_token: Option<Duration>,
    /// Admission to the end.
    pub total: Duration,
}

impl SeqStats {
    /// Generated tokens per second after the first one.
    pub fn decode_tok_s(&self) -> f64 {
        let first = self.time_to_first_token.unwrap_or(self.total);
        let secs = (self.total - first).as_secs_f64();
        if self.generated > 1 && secs > 0.0 {
            (self.generated - 1) as f64 / secs
        } else {
            0.0
        }
    }
}

/// What one step produced, in slot order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Sequence `id` generated `token`.
    Token { id: SeqId, token: u32 },
    /// Sequence `id` ended; its slot is free again.
    Finished {
        id: SeqId,
        reason: FinishReason,
        stats: SeqStats,
    },
}

struct Slot {
    id: SeqId,
    cache: KvCache,
    /// Prompt then generated tokens; `cache` holds the first `cache.len()`.
    tokens: Vec<u32>,
    prompt_len: usize,
    max_tokens: usize,
    stops: Vec<u32>,
    sampler: Sampler,
    admitted: Instant,
    first_token: Option<Duration>,
}

impl Slot {
    fn generated(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }

    fn stats(&self) -> SeqStats {
        SeqStats {
            prompt_tokens: self.prompt_len,
            generated: self.generated(),
            time_to_first_token: self.first_token,
            total: self.admitted.elapsed(),
        }
    }
}

/// Up to `slots` sequences generated together over one model instance.
pub struct Batcher<'m> {
    model: &'m Model,
    ctx: usize,
    kv: KvType,
    max_slots: usize,
    prefill_budget: usize,
    /// In admission order, which is the order prompts are fed in.
    active: Vec<Slot>,
    /// Caches of finished sequences, kept for reuse.
    spare: Vec<KvCache>,
    logits: Vec<f32>,
    /// Working memory of the forward pass, kept from step to step.
    buffers: StepBuffers,
}

impl std::fmt::Debug for Batcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("ctx", &self.ctx)
            .field("slots", &self.max_slots)
            .field("active", &self.active.len())
            .finish()
    }
}

/// Prompt tokens one step feeds at most by default, over all sequences.
/// Prompts beyond it wait or are split, so a step costs at most about this
/// many tokens plus one per generating sequence: that bounds the pause the
/// generating sequences see while others prefill, and lets the prompts
/// first in line finish (and emit their first token) before later ones
/// start. Smaller budgets stream more smoothly but read the weights once
/// more per extra step; see BENCHMARKS.md (Serving) for the measurement.
pub const DEFAULT_PREFILL_BUDGET: usize = 64;

impl<'m> Batcher<'m> {
    /// A batcher of `slots` sequences of at most `ctx` positions each (KV
    /// caches are allocated on admission and reused; [`Batcher::reserve`]
    /// allocates everything up front instead).
    pub fn new(
        model: &'m Model,
        slots: usize,
        ctx: usize,
        kv: KvType,
    ) -> Result<Batcher<'m>, ModelError> {
        if slots == 0 {
            return Err(ModelError::Config(
                "a batcher needs at least one slot".into(),
            ));
        }
        if ctx == 0 || ctx > model.config.ctx {
            return Err(ModelError::Config(format!(
                "context size {ctx} must be between 1 and the model's {}",
                model.config.ctx
            )));
        }
        Ok(Batcher {
            model,
            ctx,
            kv,
            max_slots: slots,
            prefill_budget: DEFAULT_PREFILL_BUDGET,
            active: Vec::new(),
            spare: Vec::new(),
            logits: Vec::new(),
            buffers: StepBuffers::default(),
        })
    }

    /// Sets how many prompt tokens one step feeds at most, over all
    /// sequences (at least 1; see [`DEFAULT_PREFILL_BUDGET`]).
    pub fn with_prefill_budget(mut self, tokens: usize) -> Batcher<'m> {
        self.prefill_budget = tokens.max(1);
        self
    }

    /// Allocates every slot's KV cache, the logits and the forward pass's
    /// working memory for the largest step now, and writes them so they are
    /// resident: the batcher's memory is then what it will be under full
    /// load, and a machine without that memory is found out here, with
    /// [`ModelError::OutOfMemory`], rather than at the busiest moment. Call
    /// it before the first [`Batcher::admit`] (a server does; one-off
    /// batches needn't).
    pub fn reserve(&mut self) -> Result<(), ModelError> {
        let config = &self.model.config;
        while self.spare.len() + self.active.len() < self.max_slots {
            let mut cache = KvCache::new(config, self.ctx, self.kv)?;
            cache.commit();
            self.spare.push(cache);
        }
        // A step feeds at most the budget plus one token per other slot.
        let rows = self.prefill_budget + self.max_slots - 1;
        self.buffers.reserve(config, rows);
        self.logits.clear();
        self.logits.resize(self.max_slots * config.vocab, 0.0);
        Ok(())
    }

    /// Prompt tokens one step feeds at most, over all sequences.
    pub fn prefill_budget(&self) -> usize {
        self.prefill_budget
    }

    /// The model instance this batcher runs on.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// Positions per sequence.
    pub fn ctx(&self) -> usize {
        self.ctx
    }

    /// Sequences running now.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Slots free for [`Batcher::admit`].
    pub fn free_slots(&self) -> usize {
        self.max_slots - self.active.len()
    }

    /// No sequence is running.
    pub fn is_idle(&self) -> bool {
        self.active.is_empty()
    }

    /// Starts sequence `id`; its prompt is read by the next steps. Errors,
    /// changing nothing, when no slot is free, the prompt is empty, longer
    /// than the context, or holds a token outside the vocabulary.
    pub fn admit(&mut self, id: SeqId, request: Request) -> Result<(), ModelError> {
        if self.free_slots() == 0 {
            return Err(ModelError::Config(format!(
                "all {} slots are busy",
                self.max_slots
            )));
        }
        if request.prompt.is_empty() {
            return Err(ModelError::Config("the prompt has no tokens".into()));
        }
        if request.prompt.len() > self.ctx {
            return Err(ModelError::ContextFull {
                needed: request.prompt.len(),
                ctx: self.ctx,
            });
        }
        let vocab = self.model.config.vocab;
        if let Some(&bad) = request.prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(ModelError::BadToken { id: bad, vocab });
        }
        request.sampling.validate().map_err(ModelError::Config)?;
        let cache = match self.spare.pop() {
            Some(cache) => cache,
            None => KvCache::new(&self.model.config, self.ctx, self.kv)?,
        };
        let prompt_len = request.prompt.len();
        let mut tokens = request.prompt;
        tokens.reserve(request.max_tokens.min(self.ctx));
        self.active.push(Slot {
            id,
            cache,
            tokens,
            prompt_len,
            max_tokens: request.max_tokens,
            stops: request.stop_tokens,
            sampler: Sampler::new(request.sampling),
            admitted: Instant::now(),
            first_token: None,
        });
        Ok(())
    }

    /// Ends sequence `id` now (a client went away); returns its stats, or
    /// `None` if it is not running.
    pub fn cancel(&mut self, id: SeqId) -> Option<SeqStats> {
        let at = self.active.iter().position(|s| s.id == id)?;
        let slot = self.active.remove(at);
        let stats = slot.stats();
        self.recycle(slot);
        Some(stats)
    }

    /// One forward pass: every generating sequence's last token, and the
    /// waiting prompt tokens, oldest sequence first, up to the prefill
    /// budget. Appends what it produced to `events`: a sequence's first
    /// token comes in the step that reads the end of its prompt. Does
    /// nothing when idle.
    pub fn step(&mut self, events: &mut Vec<Event>) -> Result<(), ModelError> {
        if self.active.is_empty() {
            return Ok(());
        }
        let mut budget = self.prefill_budget;
        // Indices into `active` of the sequences in this step, which is
        // also the order of their logits rows.
        let mut fed = Vec::with_capacity(self.active.len());
        let mut seqs: Vec<Sequence<'_>> = Vec::with_capacity(self.active.len());
        // What each fed sequence's sampler reads of its logits.
        let mut reads = Vec::with_capacity(self.active.len());
        let vocab = self.model.config.vocab;
        for (i, slot) in self.active.iter_mut().enumerate() {
            let done = slot.cache.len();
            let take = if done >= slot.prompt_len {
                slot.tokens.len() - done // its last sampled token
            } else {
                let take = (slot.prompt_len - done).min(budget);
                budget -= take;
                take
            };
            if take == 0 {
                continue;
            }
            fed.push(i);
            let Slot {
                tokens,
                cache,
                sampler,
                ..
            } = slot;
            reads.push(sampler.reads(tokens, vocab));
            seqs.push(Sequence {
                tokens: &tokens[done..done + take],
                cache,
            });
        }
        // A screened LM head serves a step of one sequence.
        let which = match reads.as_slice() {
            [Some((k, exact))] => Logits::Top { k: *k, exact },
            _ => Logits::Last,
        };
        self.model
            .forward_batch_with(&mut seqs, which, &mut self.logits, &mut self.buffers)?;
        drop((seqs, reads));

        let sampling_start = Instant::now();
        let mut finished = Vec::new();
        for (row, &i) in fed.iter().enumerate() {
            let slot = &mut self.active[i];
            if slot.cache.len() < slot.tokens.len() {
                continue; // more prompt to read
            }
            let reason = if slot.generated() >= slot.max_tokens {
                Some(FinishReason::Length)
            } else if slot.cache.len() >= slot.cache.capacity() {
                Some(FinishReason::ContextFull)
            } else {
                let logits = &self.logits[row * vocab..(row + 1) * vocab];
                let token = slot.sampler.sample(logits, &slot.tokens);
                slot.first_token
                    .get_or_insert_with(|| slot.admitted.elapsed());
                if slot.stops.contains(&token) {
                    Some(FinishReason::Stop)
                } else {
                    slot.tokens.push(token);
                    events.push(Event::Token { id: slot.id, token });
                    // The last token is not fed: nothing would read its logits.
                    (slot.generated() >= slot.max_tokens).then_some(FinishReason::Length)
                }
            };
            if let Some(reason) = reason {
                events.push(Event::Finished {
                    id: slot.id,
                    reason,
                    stats: slot.stats(),
                });
                finished.push(i);
            }
        }
        self.model
            .profile()
            .add(Op::Sampling, sampling_start.elapsed());
        for &i in finished.iter().rev() {
            let slot = self.active.remove(i);
            self.recycle(slot);
        }
        Ok(())
    }

    fn recycle(&mut self, mut slot: Slot) {
        slot.cache.clear();
        self.spare.push(slot.cache);
    }
}
