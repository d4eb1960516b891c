//! The BitNet b1.58 transformer (and its ternary-llama sibling), written to
//! read like the paper: every projection is `BitLinear` = per-token int8
//! quantization + exact ternary matmul + rescale.

use crate::attention;
use crate::config::{Activation, Arch, Config, RopeStyle};
use crate::error::ModelError;
use crate::gguf::{Gguf, TensorType};
use crate::kv_cache::KvCache;
use crate::ops;
use crate::pool::{SharedOut, ThreadPool};
use crate::profile::{Op, OpProfile};
use bitnet_kernels::partition_chunk;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Rows per chunk of a static split: whole register tiles of every kernel.
const ROW_TILE: usize = 32;
use crate::screen::ScreenedHead;
use crate::weights::{load_vector, Dense, Ternary};
use bitnet_kernels::{Dispatch, QuantizedActs};
use std::path::Path;

struct Layer {
    attn_norm: Vec<f32>,
    wq: Ternary,
    wk: Ternary,
    wv: Ternary,
    wo: Ternary,
    /// BitNet's extra norm before the output projection.
    attn_sub_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    w_gate: Ternary,
    w_up: Ternary,
    w_down: Ternary,
    /// BitNet's extra norm before the down projection.
    ffn_sub_norm: Option<Vec<f32>>,
}

/// The weights of a model, in place in the (mapped) file; shared by every
/// [`Model`] instance made with [`Model::instance`].
struct Weights {
    file: Gguf,
    layers: Vec<Layer>,
    embed: Dense,
    output_norm: Vec<f32>,
    /// `None`: the LM head is tied to the token embedding.
    output: Option<Dense>,
    /// A Q8_0 screen of the LM head, for [`Logits::Top`].
    screen: Option<ScreenedHead>,
}

/// A loaded model: shared weights (in the mapped file), the kernels, and this
/// instance's own worker pool and per-op counters.
pub struct Model {
    weights: Arc<Weights>,
    pub config: Config,
    dispatch: Dispatch,
    pool: ThreadPool,
    phase_threads: PhaseThreads,
    profile: Arc<OpProfile>,
}

/// Workers used per kind of forward step (at most the pool's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseThreads {
    /// Steps that feed some sequence more than one token (prompt processing).
    pub prefill: usize,
    /// Steps that feed every sequence one token (generation, batched or not).
    pub decode: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .field("kernels", &self.dispatch)
            .finish()
    }
}

/// Which positions' logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits<'a> {
    /// Only the last token's (generation).
    Last,
    /// Every token's, `N × vocab` (scoring, perplexity, tests).
    All,
    /// The last token's, read only by a sampler that keeps the `k` largest
    /// after changing the logits of the ids `exact` (strictly increasing;
    /// a repetition penalty's recent tokens). With a screened LM head
    /// ([`Model::with_screened_lm_head`]) and one sequence in the step,
    /// only the rows that can be among those `k` (and the rows of `exact`)
    /// are scored exactly; every other row gets a lower bound of its logit,
    /// below them. Otherwise the same as `Last`.
    Top { k: usize, exact: &'a [u32] },
}

impl Model {
    /// Maps and loads a GGUF model file.
    pub fn load(path: impl AsRef<Path>) -> Result<Model, ModelError> {
        Model::from_gguf(Gguf::open(path)?)
    }

    /// Builds the model over an opened file, checking every tensor's shape.
    pub fn from_gguf(file: Gguf) -> Result<Model, ModelError> {
        let config = Config::from_gguf(&file)?;
        let c = &config;
        let (h, q_dim, kv, ffn) = (c.hidden, c.heads * c.head_dim, c.kv_dim(), c.ffn);
        let sub_norms = matches!(c.arch, Arch::BitnetB158 | Arch::Bitnet);
        // Not `with_capacity(c.layers)`: the count comes from the file, and
        // a missing tensor ends the loop long before an absurd count would.
        let mut layers = Vec::new();
        for i in 0..c.layers {
            let name = |t: &str| format!("blk.{i}.{t}.weight");
            let optional_norm = |t: &str, len: usize| -> Result<Option<Vec<f32>>, ModelError> {
                match file.tensor(&name(t)) {
                    Some(_) => load_vector(&file, &name(t), len).map(Some),
                    None if sub_norms => Err(ModelError::Tensor {
                        name: name(t),
                        problem: "is missing".into(),
                    }),
                    None => Ok(None),
                }
            };
            layers.push(Layer {
                attn_norm: load_vector(&file, &name("attn_norm"), h)?,
                wq: Ternary::load(&file, &name("attn_q"), h, q_dim)?,
                wk: Ternary::load(&file, &name("attn_k"), h, kv)?,
                wv: Ternary::load(&file, &name("attn_v"), h, kv)?,
                wo: Ternary::load(&file, &name("attn_output"), q_dim, h)?,
                attn_sub_norm: optional_norm("attn_sub_norm", q_dim)?,
                ffn_norm: load_vector(&file, &name("ffn_norm"), h)?,
                w_gate: Ternary::load(&file, &name("ffn_gate"), h, ffn)?,
                w_up: Ternary::load(&file, &name("ffn_up"), h, ffn)?,
                w_down: Ternary::load(&file, &name("ffn_down"), ffn, h)?,
                ffn_sub_norm: optional_norm("ffn_sub_norm", ffn)?,
            });
        }
        let embed = Dense::load(&file, "token_embd.weight", h, c.vocab)?;
        let output = match file.tensor("output.weight") {
            Some(_) => Some(Dense::load(&file, "output.weight", h, c.vocab)?),
            None => None,
        };
        let output_norm = load_vector(&file, "output_norm.weight", h)?;
        Ok(Model {
            weights: Arc::new(Weights {
                file,
                layers,
                embed,
                output_norm,
                output,
                screen: None,
            }),
            config,
            dispatch: Dispatch::from_env()?,
            pool: ThreadPool::new(1, false),
            phase_threads: PhaseThreads {
                prefill: 1,
                decode: 1,
            },
            profile: Arc::default(),
        })
    }

    /// Runs every forward pass on `threads` workers (the caller included),
    /// optionally pinned one per CPU.
    pub fn with_threads(mut self, threads: usize, pin: bool) -> Model {
        self.set_threads(threads, pin);
        self
    }

    /// Replaces the worker pool (e.g. to measure another thread count); both
    /// phases use all of it.
    pub fn set_threads(&mut self, threads: usize, pin: bool) {
        self.set_threads_on(threads, &ThreadPool::default_cpus(pin), pin);
    }

    /// Replaces the worker pool with `threads` workers, pinned (with `pin`)
    /// to `cpus` in order: disjoint CPU sets give instances that do not
    /// compete for cores.
    pub fn set_threads_on(&mut self, threads: usize, cpus: &[usize], pin: bool) {
        self.pool = ThreadPool::with_cpus(threads, if pin { cpus } else { &[] });
        let threads = self.pool.threads();
        self.phase_threads = PhaseThreads {
            prefill: threads,
            decode: threads,
        };
    }

    /// Uses fewer workers than the pool has in one phase, e.g. fewer for
    /// memory-bound decoding than for compute-bound prompt processing.
    /// Counts are clamped to `1..=pool size`.
    pub fn set_phase_threads(&mut self, phase: PhaseThreads) {
        let clamp = |n: usize| n.clamp(1, self.pool.threads());
        self.phase_threads = PhaseThreads {
            prefill: clamp(phase.prefill),
            decode: clamp(phase.decode),
        };
    }

    /// Workers used per phase.
    pub fn phase_threads(&self) -> PhaseThreads {
        self.phase_threads
    }

    /// Another instance of this model: the same weights (nothing is copied
    /// or mapped again) and kernels, with its own single-worker pool and
    /// counters; give it workers with [`Model::set_threads_on`].
    pub fn instance(&self) -> Model {
        Model {
            weights: Arc::clone(&self.weights),
            config: self.config.clone(),
            dispatch: self.dispatch,
            pool: ThreadPool::new(1, false),
            phase_threads: PhaseThreads {
                prefill: 1,
                decode: 1,
            },
            profile: Arc::default(),
        }
    }

    /// Time spent per kind of operation by this instance since it was made.
    pub fn profile(&self) -> &Arc<OpProfile> {
        &self.profile
    }

    /// The worker pool (its per-worker busy/wait counters).
    pub fn pool(&self) -> &ThreadPool {
        &self.pool
    }

    /// `y = W · x` for every token and every `(W, y)` of `outs`, which share
    /// the input `x`, rows split statically over `workers`. One pass of the
    /// workers: each computes its rows of every matrix in turn, so none
    /// waits for the others between matrices (Q, K, V; gate, up).
    fn matmuls<const N: usize>(
        &self,
        workers: usize,
        x: &QuantizedActs<'_>,
        outs: [(&Ternary, &mut [f32]); N],
    ) -> Result<(), ModelError> {
        let (d, file) = (self.dispatch, self.weights.file.bytes());
        let outs = outs.map(|(w, y)| {
            debug_assert_eq!(y.len(), x.n() * w.m);
            (w, SharedOut(y.as_mut_ptr()))
        });
        // The index of a matrix whose shapes the kernel refused, if any.
        let failed = AtomicUsize::new(usize::MAX);
        self.pool.run_on(workers, &|i, n| {
            for (j, (w, out)) in outs.iter().enumerate() {
                let rows = partition_chunk(w.m, n, ROW_TILE, i);
                // SAFETY: `y` holds N rows of stride M; each worker writes only
                // its own columns `rows`, and `run` returns after all are done.
                if unsafe { d.gemm_i2s_strided(&w.matrix(file), x, rows, out.ptr(), w.m) }.is_err()
                {
                    failed.store(j, Ordering::Relaxed);
                }
            }
        });
        if let Some((w, _)) = outs.get(failed.load(Ordering::Relaxed)) {
            return Err(ModelError::Config(format!(
                "matmul shapes disagree ({} rows, K = {})",
                w.m,
                x.k()
            )));
        }
        Ok(())
    }

    /// A projection's int8 input, one token row at a time, rows split over
    /// `workers`: `make_row(t, row)` first writes token `t`'s `k` floats
    /// into its row of `rows` (or, with `None`, `rows` already holds them).
    fn quantize_rows<'q>(
        &self,
        workers: usize,
        rows: &mut [f32],
        k: usize,
        make_row: Option<&MakeRow<'_>>,
        quant: &'q mut QuantBuffers,
        trace: &mut Option<&mut RoundingTrace>,
    ) -> Result<QuantizedActs<'q>, ModelError> {
        let n = rows.len() / k;
        quant.resize(n, k);
        let (d, failed) = (self.dispatch, AtomicBool::new(false));
        let (x, q) = (
            SharedOut(rows.as_mut_ptr()),
            SharedOut(quant.q.as_mut_ptr()),
        );
        let (scales, sums) = (
            SharedOut(quant.scales.as_mut_ptr()),
            SharedOut(quant.sums.as_mut_ptr()),
        );
        // One token is not worth waking the other workers for.
        self.pool.run_on(if n > 1 { workers } else { 1 }, &|i, w| {
            for t in partition_chunk(n, w, 1, i) {
                // SAFETY: token rows are split between workers, so row `t`
                // of each buffer (`k` floats / bytes, one scale, one sum)
                // is this worker's alone, and all lie inside the buffers.
                let (row, qrow) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(x.ptr().add(t * k), k),
                        std::slice::from_raw_parts_mut(q.ptr().add(t * k), k),
                    )
                };
                if let Some(make_row) = make_row {
                    make_row(t, row);
                }
                match d.quantize_row_i8(row, qrow) {
                    // SAFETY: as above.
                    Ok(r) => unsafe {
                        scales.ptr().add(t).write(r.scale);
                        sums.ptr().add(t).write(r.sum);
                    },
                    Err(_) => failed.store(true, Ordering::Relaxed),
                }
            }
        });
        if failed.load(Ordering::Relaxed) {
            return Err(ModelError::Config(format!("quantizing rows of {k} failed")));
        }
        if let Some(trace) = trace.as_deref_mut() {
            trace.visit(rows, k, &mut quant.q, &quant.scales, &mut quant.sums);
        }
        Ok(QuantizedActs::new(&quant.q, &quant.scales, &quant.sums, k)?)
    }

    /// Runs the kernels of another path (tests, benches).
    pub fn with_dispatch(mut self, d: Dispatch) -> Model {
        self.dispatch = d;
        self
    }

    /// The kernels in use.
    pub fn dispatch(&self) -> Dispatch {
        self.dispatch
    }

    /// Bytes of weights one decode step reads from memory: the 2-bit codes of
    /// every ternary projection plus the whole LM head (the embedding lookup
    /// reads one row and the norms are tiny, so neither is counted). Times
    /// decode steps per second, it estimates the memory bandwidth used.
    pub fn bytes_per_token(&self) -> usize {
        self.bytes_per_step(self.lm_head_screened())
    }

    /// [`Model::bytes_per_token`] of a step that uses the LM head's screen
    /// (`screened`: a [`Logits::Top`] step of one sequence) or the head.
    pub fn bytes_per_step(&self, screened: bool) -> usize {
        let w = &self.weights;
        let ternary: usize = w
            .layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down])
            .map(Ternary::code_bytes)
            .sum();
        let head = match &w.screen {
            Some(screen) if screened => screen.bytes(),
            _ => w.output.as_ref().unwrap_or(&w.embed).len_bytes(),
        };
        ternary + head
    }

    /// Bytes of weights held outside the file mapping (TQ repacks, a
    /// re-quantized LM head).
    pub fn owned_weight_bytes(&self) -> usize {
        let w = &self.weights;
        let ternary: usize = w
            .layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down])
            .map(Ternary::owned_bytes)
            .sum();
        ternary
            + w.output.as_ref().map_or(0, Dense::owned_bytes)
            + w.screen.as_ref().map_or(0, ScreenedHead::bytes)
    }

    /// Re-quantizes the LM head to `ty` (Q8_0 or Q6_K) in memory: fewer
    /// bytes read per decoded token at the cost of exactness (lossy, opt-in;
    /// the token embedding keeps the file's values). Call before
    /// [`Model::instance`]; uses up to `threads` threads once.
    pub fn with_lm_head(mut self, ty: TensorType, threads: usize) -> Result<Model, ModelError> {
        let d = self.dispatch;
        let w = Arc::get_mut(&mut self.weights).ok_or_else(|| {
            ModelError::Config(
                "the LM head can only be re-quantized before making instances".into(),
            )
        })?;
        let head = w.output.as_ref().unwrap_or(&w.embed);
        let requantized = head.requantized(w.file.bytes(), d, ty, threads)?;
        w.output = Some(requantized);
        w.screen = None;
        Ok(self)
    }

    /// Adds a Q8_0 screen to the LM head, used by [`Logits::Top`] steps:
    /// a decoded token then reads about half of an F16 head's bytes, and
    /// a sampler that reads only the top `k` picks exactly what it picks
    /// from the file's head. Costs half an F16 head in memory and one pass
    /// over the head now, on up to `threads` threads. The head must be the
    /// file's F16, BF16 or F32 one. Call before [`Model::instance`].
    pub fn with_screened_lm_head(mut self, threads: usize) -> Result<Model, ModelError> {
        let d = self.dispatch;
        let w = Arc::get_mut(&mut self.weights).ok_or_else(|| {
            ModelError::Config("the LM head can only be screened before making instances".into())
        })?;
        let head = w.output.as_ref().unwrap_or(&w.embed);
        w.screen = Some(ScreenedHead::new(head, w.file.bytes(), d, threads)?);
        Ok(self)
    }

    /// Whether the LM head has a screen ([`Model::with_screened_lm_head`]).
    pub fn lm_head_screened(&self) -> bool {
        self.weights.screen.is_some()
    }

    /// The LM head's tensor type (after any re-quantization).
    pub fn lm_head_type(&self) -> TensorType {
        let w = &self.weights;
        w.output.as_ref().unwrap_or(&w.embed).ty
    }

    /// The parsed file (metadata, tokenizer data).
    pub fn gguf(&self) -> &Gguf {
        &self.weights.file
    }

    /// Feeds `tokens` at positions `cache.len()..`, appends their keys and
    /// values to `cache`, and writes logits (`vocab` per returned position)
    /// into `logits`.
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        which: Logits,
        logits: &mut Vec<f32>,
    ) -> Result<(), ModelError> {
        self.forward_batch(&mut [Sequence { tokens, cache }], which, logits)
    }

    /// One forward step over several independent sequences, each with its
    /// own KV cache: their tokens go through every matmul together, so the
    /// weights are read once for all of them. Logits are written per
    /// sequence in order: its last token's (`Last`) or every token's (`All`).
    /// On error no cache changes.
    pub fn forward_batch(
        &self,
        seqs: &mut [Sequence<'_>],
        which: Logits,
        logits: &mut Vec<f32>,
    ) -> Result<(), ModelError> {
        let mut buffers = StepBuffers::default();
        self.forward_inner(seqs, which, logits, None, &mut buffers.scratch)
    }

    /// [`Model::forward_batch`] with working memory the caller keeps from
    /// step to step, so that a long run of steps allocates it once (sized
    /// by the largest step) instead of every step.
    pub fn forward_batch_with(
        &self,
        seqs: &mut [Sequence<'_>],
        which: Logits,
        logits: &mut Vec<f32>,
        buffers: &mut StepBuffers,
    ) -> Result<(), ModelError> {
        self.forward_inner(seqs, which, logits, None, &mut buffers.scratch)
    }

    /// [`Model::forward`] that also records activations within an ulp-scale
    /// distance of an int8 rounding boundary and can round chosen ones the
    /// other way; used to explain differences from a reference implementation.
    #[doc(hidden)]
    pub fn forward_traced(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        which: Logits,
        logits: &mut Vec<f32>,
        trace: &mut RoundingTrace,
    ) -> Result<(), ModelError> {
        trace.site = 0;
        trace.ties.clear();
        self.forward_inner(
            &mut [Sequence { tokens, cache }],
            which,
            logits,
            Some(trace),
            &mut Scratch::default(),
        )
    }

    fn forward_inner(
        &self,
        seqs: &mut [Sequence<'_>],
        which: Logits,
        logits: &mut Vec<f32>,
        mut diag: Option<&mut RoundingTrace>,
        s: &mut Scratch,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let d = self.dispatch;
        let w = &*self.weights;
        let file = w.file.bytes();
        // Every token row of the step: (sequence, position in its cache).
        let mut rows: Vec<(usize, usize)> = Vec::new();
        for (si, seq) in seqs.iter().enumerate() {
            let start = seq.cache.len();
            if start + seq.tokens.len() > seq.cache.capacity() {
                return Err(ModelError::ContextFull {
                    needed: start + seq.tokens.len(),
                    ctx: seq.cache.capacity(),
                });
            }
            if let Some(&id) = seq.tokens.iter().find(|&&t| t as usize >= c.vocab) {
                return Err(ModelError::BadToken { id, vocab: c.vocab });
            }
            rows.extend((0..seq.tokens.len()).map(|t| (si, start + t)));
        }
        let n = rows.len();
        logits.clear();
        if n == 0 {
            return Ok(());
        }
        let (h, q_dim, kv_dim, ffn) = (c.hidden, c.heads * c.head_dim, c.kv_dim(), c.ffn);
        let workers = if seqs.iter().all(|q| q.tokens.len() <= 1) {
            self.phase_threads.decode
        } else {
            self.phase_threads.prefill
        };
        let mut laps = self.profile.step(n);
        s.prepare(n, h, q_dim, kv_dim, ffn);

        for (t, &id) in seqs.iter().flat_map(|q| q.tokens).enumerate() {
            w.embed
                .row(file, d, id as usize, &mut s.x[t * h..(t + 1) * h])?;
        }
        let positions: Vec<usize> = rows.iter().map(|&(_, p)| p).collect();
        let rope = RopeTable::new(c, &positions);
        laps.lap(Op::NormsRope);

        for (li, layer) in w.layers.iter().enumerate() {
            // Attention: RMSNorm → Q, K, V (one shared quantization) → RoPE → causal GQA.
            let x = &s.x;
            let norm = |t: usize, out: &mut [f32]| {
                ops::rms_norm(&x[t * h..(t + 1) * h], &layer.attn_norm, c.rms_eps, out)
            };
            let acts =
                self.quantize_rows(workers, &mut s.xn, h, Some(&norm), &mut s.quant, &mut diag)?;
            laps.lap(Op::NormsRope);
            self.matmuls(
                workers,
                &acts,
                [
                    (&layer.wq, &mut s.q),
                    (&layer.wk, &mut s.k),
                    (&layer.wv, &mut s.v),
                ],
            )?;
            laps.lap(Op::TernaryMatmul);
            for t in 0..n {
                rope.apply(d, c, t, &mut s.q[t * q_dim..(t + 1) * q_dim])?;
                rope.apply(d, c, t, &mut s.k[t * kv_dim..(t + 1) * kv_dim])?;
            }
            laps.lap(Op::NormsRope);
            for (t, &(si, pos)) in rows.iter().enumerate() {
                let (k, v) = (
                    &s.k[t * kv_dim..(t + 1) * kv_dim],
                    &s.v[t * kv_dim..(t + 1) * kv_dim],
                );
                seqs[si].cache.store(d, li, pos, k, v)?;
            }
            let caches: Vec<&KvCache> = seqs.iter().map(|q| &*q.cache).collect();
            let step = attention::Step {
                d,
                config: c,
                layer: li,
                caches: &caches,
                rows: &rows,
                q: &s.q,
            };
            step.run(&self.pool, workers, &mut s.scores, &mut s.attn);
            laps.lap(Op::Attention);
            let acts = match &layer.attn_sub_norm {
                Some(weight) => {
                    let attn = &s.attn;
                    let norm = |t: usize, out: &mut [f32]| {
                        ops::rms_norm(&attn[t * q_dim..(t + 1) * q_dim], weight, c.rms_eps, out)
                    };
                    self.quantize_rows(
                        workers,
                        &mut s.attn_n,
                        q_dim,
                        Some(&norm),
                        &mut s.quant,
                        &mut diag,
                    )?
                }
                None => {
                    self.quantize_rows(workers, &mut s.attn, q_dim, None, &mut s.quant, &mut diag)?
                }
            };
            laps.lap(Op::NormsRope);
            self.matmuls(workers, &acts, [(&layer.wo, &mut s.proj)])?;
            laps.lap(Op::TernaryMatmul);
            add_in_place(&mut s.x, &s.proj);

            // Feed-forward: RMSNorm → gate, up (one shared quantization) → act(gate) ⊙ up → [sub-norm] → down.
            let x = &s.x;
            let norm = |t: usize, out: &mut [f32]| {
                ops::rms_norm(&x[t * h..(t + 1) * h], &layer.ffn_norm, c.rms_eps, out)
            };
            let acts =
                self.quantize_rows(workers, &mut s.xn, h, Some(&norm), &mut s.quant, &mut diag)?;
            laps.lap(Op::NormsRope);
            self.matmuls(
                workers,
                &acts,
                [(&layer.w_gate, &mut s.gate), (&layer.w_up, &mut s.up)],
            )?;
            laps.lap(Op::TernaryMatmul);
            let (gate, up) = (&s.gate, &s.up);
            let gated = |t: usize, out: &mut [f32]| {
                let span = t * ffn..(t + 1) * ffn;
                for ((o, &g), &u) in out.iter_mut().zip(&gate[span.clone()]).zip(&up[span]) {
                    *o = activate(c.activation, g) * u;
                }
                if let Some(weight) = &layer.ffn_sub_norm {
                    ops::rms_norm_in_place(out, weight, c.rms_eps);
                }
            };
            let acts = self.quantize_rows(
                workers,
                &mut s.ffn_in,
                ffn,
                Some(&gated),
                &mut s.quant,
                &mut diag,
            )?;
            laps.lap(Op::NormsRope);
            self.matmuls(workers, &acts, [(&layer.w_down, &mut s.proj)])?;
            laps.lap(Op::TernaryMatmul);
            add_in_place(&mut s.x, &s.proj);
        }
        for seq in seqs.iter_mut() {
            let len = seq.cache.len() + seq.tokens.len();
            seq.cache.set_len(len);
        }

        // Final norm and LM head for the rows whose logits are asked for.
        let mut wanted = Vec::new();
        let mut t = 0;
        for seq in seqs.iter() {
            let len = seq.tokens.len();
            match which {
                Logits::Last | Logits::Top { .. } if len > 0 => wanted.push(t + len - 1),
                Logits::Last | Logits::Top { .. } => {}
                Logits::All => wanted.extend(t..t + len),
            }
            t += len;
        }
        let head = w.output.as_ref().unwrap_or(&w.embed);
        let mut normed = vec![0f32; wanted.len() * h];
        for (&t, out) in wanted.iter().zip(normed.chunks_exact_mut(h)) {
            ops::rms_norm(&s.x[t * h..(t + 1) * h], &w.output_norm, c.rms_eps, out);
        }
        laps.lap(Op::NormsRope);
        logits.resize(wanted.len() * c.vocab, 0.0);
        let screened = match (which, &w.screen) {
            (Logits::Top { k, exact }, Some(screen)) if wanted.len() == 1 => {
                self.head_gemv(workers, screen.q8(), &normed, logits)?;
                screen.refine(head, file, d, &normed, k, exact, logits)?
            }
            _ => false,
        };
        if !screened {
            self.head_gemv(workers, head, &normed, logits)?;
        }
        laps.lap(Op::LmHead);
        Ok(())
    }

    /// `logits[t·vocab + r] = head row r · normed row t` on `workers`
    /// workers, each taking a static share of the rows.
    fn head_gemv(
        &self,
        workers: usize,
        head: &Dense,
        normed: &[f32],
        logits: &mut [f32],
    ) -> Result<(), ModelError> {
        let (file, d, vocab) = (self.weights.file.bytes(), self.dispatch, self.config.vocab);
        debug_assert_eq!(logits.len() / vocab, normed.len() / head.cols);
        let dst = SharedOut(logits.as_mut_ptr());
        let failed = AtomicBool::new(false);
        self.pool.run_on(workers, &|i, workers| {
            let rows = partition_chunk(vocab, workers, ROW_TILE, i);
            // SAFETY: `logits` holds one `vocab`-wide row per row of
            // `normed`; each worker writes only its own columns `rows`.
            if unsafe { head.gemv_tokens(file, d, normed, rows, dst.ptr(), vocab) }.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
        });
        if failed.load(Ordering::Relaxed) {
            return Err(ModelError::Tensor {
                name: head.name.clone(),
                problem: "LM head GEMV failed".into(),
            });
        }
        Ok(())
    }
}

/// Writes token `t`'s row of a projection input (see `Model::quantize_rows`).
type MakeRow<'a> = dyn Fn(usize, &mut [f32]) + Sync + 'a;

/// One sequence of a batched forward step: its new tokens and its cache.
#[derive(Debug)]
pub struct Sequence<'a> {
    pub tokens: &'a [u32],
    pub cache: &'a mut KvCache,
}

fn activate(a: Activation, x: f32) -> f32 {
    match a {
        Activation::Relu2 => ops::relu2(x),
        Activation::Silu => ops::silu(x),
    }
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Per-forward buffers, `N` tokens wide.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    xn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    attn_n: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// The down projection's input.
    ffn_in: Vec<f32>,
    /// Attention scores of a decode step (see [`attention::Step`]).
    scores: Vec<f32>,
    quant: QuantBuffers,
}

impl Scratch {
    /// Zeroed buffers for `n` token rows, reusing the memory of earlier steps.
    fn prepare(&mut self, n: usize, h: usize, q_dim: usize, kv_dim: usize, ffn: usize) {
        for (buf, width) in [
            (&mut self.x, h),
            (&mut self.xn, h),
            (&mut self.q, q_dim),
            (&mut self.k, kv_dim),
            (&mut self.v, kv_dim),
            (&mut self.attn, q_dim),
            (&mut self.attn_n, q_dim),
            (&mut self.proj, h),
            (&mut self.gate, ffn),
            (&mut self.up, ffn),
            (&mut self.ffn_in, ffn),
        ] {
            buf.clear();
            buf.resize(n * width, 0.0);
        }
    }
}

/// The working memory of forward steps (activations of every token row,
/// their int8 quantization), for a caller that runs many steps to keep;
/// see [`Model::forward_batch_with`].
#[derive(Default)]
pub struct StepBuffers {
    scratch: Scratch,
}

impl std::fmt::Debug for StepBuffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepBuffers").finish_non_exhaustive()
    }
}

impl StepBuffers {
    /// Allocates and writes (so the pages are resident) room for steps of
    /// up to `rows` token rows of a `config` model.
    pub fn reserve(&mut self, config: &Config, rows: usize) {
        let q_dim = config.heads * config.head_dim;
        let s = &mut self.scratch;
        s.prepare(rows, config.hidden, q_dim, config.kv_dim(), config.ffn);
        let widest = config.hidden.max(q_dim).max(config.ffn);
        s.quant.resize(rows, widest);
    }
}

/// Int8 activations of the current projection input.
#[derive(Default)]
struct QuantBuffers {
    q: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
}

impl QuantBuffers {
    fn resize(&mut self, n: usize, k: usize) {
        self.q.resize(n * k, 0);
        self.scales.resize(n, 0.0);
        self.sums.resize(n, 0);
    }
}

/// One activation whose scaled value lies within `ULPS` ulps of a rounding
/// boundary: which quantization of the forward pass (`site`, counting from
/// 0), which token row and element.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearTie {
    pub site: usize,
    pub token: usize,
    pub index: usize,
    /// `x · scale` as computed.
    pub scaled: f32,
}

/// Diagnostics of the int8 roundings in one forward pass.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct RoundingTrace {
    site: usize,
    /// Near ties seen in the last traced pass.
    pub ties: Vec<NearTie>,
    /// Ties to round the other way (matched by site, token and index).
    pub flip: Vec<NearTie>,
}

impl RoundingTrace {
    /// How close to a boundary counts as a tie, in ulps of `x · scale`.
    pub const ULPS: f32 = 8.0;

    fn visit(&mut self, x: &[f32], k: usize, q: &mut [i8], scales: &[f32], sums: &mut [i32]) {
        for (t, (row, qrow)) in x.chunks_exact(k).zip(q.chunks_exact_mut(k)).enumerate() {
            for (i, (&v, qv)) in row.iter().zip(qrow.iter_mut()).enumerate() {
                let y = v * scales[t];
                let gap = (y.abs() - (y.abs().floor() + 0.5)).abs();
                let ulp = f32::from_bits(y.abs().to_bits() + 1) - y.abs();
                if gap > Self::ULPS * ulp {
                    continue;
                }
                let tie = NearTie {
                    site: self.site,
                    token: t,
                    index: i,
                    scaled: y,
                };
                self.ties.push(tie);
                if self
                    .flip
                    .iter()
                    .any(|f| (f.site, f.token, f.index) == (tie.site, t, i))
                {
                    // Round to the other neighbour of the boundary.
                    let other = if (y as f64) > *qv as f64 {
                        *qv as i32 + 1
                    } else {
                        *qv as i32 - 1
                    };
                    let other = other.clamp(-128, 127);
                    sums[t] += other - *qv as i32;
                    *qv = other as i8;
                }
            }
        }
        self.site += 1;
    }
}

/// cos/sin of each rotated pair for the given positions, computed as
/// transformers does: `inv_freq = 1 / θ^(2i/d)` and `angle = p · inv_freq`,
/// each rounded to f32.
struct RopeTable {
    half: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    fn new(c: &Config, positions: &[usize]) -> RopeTable {
        let half = c.rope_dim / 2;
        let inv_freq: Vec<f32> = (0..half).map(|i| c.rope_frequency(i)).collect();
        let (mut cos, mut sin) = (
            Vec::with_capacity(positions.len() * half),
            Vec::with_capacity(positions.len() * half),
        );
        for &p in positions {
            for &f in &inv_freq {
                let angle = (p as f32 * f) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        RopeTable { half, cos, sin }
    }

    /// Rotates every head of one token's Q or K row.
    fn apply(&self, d: Dispatch, c: &Config, t: usize, row: &mut [f32]) -> Result<(), ModelError> {
        let (cos, sin) = (
            &self.cos[t * self.half..(t + 1) * self.half],
            &self.sin[t * self.half..(t + 1) * self.half],
        );
        for head in row.chunks_exact_mut(c.head_dim) {
            let rotated = &mut head[..c.rope_dim];
            match c.rope {
                RopeStyle::Neox => d.rope_neox(rotated, c.rope_dim, cos, sin)?,
                RopeStyle::Interleaved => d.rope_interleaved(rotated, c.rope_dim, cos, sin)?,
            }
        }
        Ok(())
    }
}
