//! The BitNet b1.58 transformer (and its ternary-llama sibling), written to
//! read like the paper: every projection is `BitLinear` = per-token int8
//! quantization + exact ternary matmul + rescale.

use crate::config::{Activation, Arch, Config, RopeStyle};
use crate::error::ModelError;
use crate::gguf::Gguf;
use crate::kv_cache::KvCache;
use crate::ops;
use crate::pool::{SharedOut, ThreadPool};
use bitnet_kernels::partition_chunk;
use std::sync::atomic::{AtomicBool, Ordering};

/// Rows per chunk of a static split: whole register tiles of every kernel.
const ROW_TILE: usize = 32;
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

/// A loaded model: weights in place in the (mapped) file, plus the kernels.
pub struct Model {
    file: Gguf,
    pub config: Config,
    layers: Vec<Layer>,
    embed: Dense,
    output_norm: Vec<f32>,
    /// `None`: the LM head is tied to the token embedding.
    output: Option<Dense>,
    dispatch: Dispatch,
    pool: ThreadPool,
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
pub enum Logits {
    /// Only the last token's (generation).
    Last,
    /// Every token's, `N × vocab` (scoring, perplexity, tests).
    All,
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
            file,
            config,
            layers,
            embed,
            output_norm,
            output,
            dispatch: Dispatch::from_env()?,
            pool: ThreadPool::new(1, false),
        })
    }

    /// Runs every forward pass on `threads` workers (the caller included),
    /// optionally pinned one per CPU.
    pub fn with_threads(mut self, threads: usize, pin: bool) -> Model {
        self.pool = ThreadPool::new(threads, pin);
        self
    }

    /// Replaces the worker pool (e.g. to measure another thread count).
    pub fn set_threads(&mut self, threads: usize, pin: bool) {
        self.pool = ThreadPool::new(threads, pin);
    }

    /// The worker pool (its per-worker busy/wait counters).
    pub fn pool(&self) -> &ThreadPool {
        &self.pool
    }

    /// `y = W · x` for every token, rows split statically over the pool.
    fn matmul(&self, w: &Ternary, x: &QuantizedActs<'_>, y: &mut [f32]) -> Result<(), ModelError> {
        let (d, file) = (self.dispatch, self.file.bytes());
        let m = w.m;
        debug_assert_eq!(y.len(), x.n() * m);
        let out = SharedOut(y.as_mut_ptr());
        let failed = AtomicBool::new(false);
        self.pool.run(&|i, n| {
            let rows = partition_chunk(m, n, ROW_TILE, i);
            // SAFETY: `y` holds N rows of stride M; each worker writes only
            // its own columns `rows`, and `run` returns after all are done.
            if unsafe { d.gemm_i2s_strided(&w.matrix(file), x, rows, out.ptr(), m) }.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
        });
        if failed.load(Ordering::Relaxed) {
            return Err(ModelError::Config(format!(
                "matmul shapes disagree ({m} rows, K = {})",
                x.k()
            )));
        }
        Ok(())
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

    /// Bytes of weights held outside the file mapping (TQ repacks).
    pub fn owned_weight_bytes(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down])
            .map(Ternary::owned_bytes)
            .sum()
    }

    /// The parsed file (metadata, tokenizer data).
    pub fn gguf(&self) -> &Gguf {
        &self.file
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
        self.forward_inner(seqs, which, logits, None)
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
        )
    }

    fn forward_inner(
        &self,
        seqs: &mut [Sequence<'_>],
        which: Logits,
        logits: &mut Vec<f32>,
        mut diag: Option<&mut RoundingTrace>,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let d = self.dispatch;
        let file = self.file.bytes();
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
        let (h, q_dim, kv_dim, ffn, hd) = (
            c.hidden,
            c.heads * c.head_dim,
            c.kv_dim(),
            c.ffn,
            c.head_dim,
        );
        let mut s = Scratch::new(n, h, q_dim, kv_dim, ffn);

        for (t, &id) in seqs.iter().flat_map(|q| q.tokens).enumerate() {
            self.embed
                .row(file, d, id as usize, &mut s.x[t * h..(t + 1) * h])?;
        }
        let positions: Vec<usize> = rows.iter().map(|&(_, p)| p).collect();
        let rope = RopeTable::new(c, &positions);
        let longest = positions.iter().max().map_or(0, |p| p + 1);

        for (li, layer) in self.layers.iter().enumerate() {
            // Attention: RMSNorm → Q, K, V (one shared quantization) → RoPE → causal GQA.
            rms_norm_rows(&s.x, &layer.attn_norm, c.rms_eps, &mut s.xn, h);
            let acts = s.quant.quantize(d, &s.xn, h, diag.as_deref_mut())?;
            self.matmul(&layer.wq, &acts, &mut s.q)?;
            self.matmul(&layer.wk, &acts, &mut s.k)?;
            self.matmul(&layer.wv, &acts, &mut s.v)?;
            for (t, &(si, pos)) in rows.iter().enumerate() {
                rope.apply(d, c, t, &mut s.q[t * q_dim..(t + 1) * q_dim])?;
                rope.apply(d, c, t, &mut s.k[t * kv_dim..(t + 1) * kv_dim])?;
                let (k, v) = (
                    &s.k[t * kv_dim..(t + 1) * kv_dim],
                    &s.v[t * kv_dim..(t + 1) * kv_dim],
                );
                seqs[si].cache.store(d, li, pos, k, v)?;
            }
            let group = c.heads / c.kv_heads;
            let scale = 1.0 / (hd as f32).sqrt();
            let caches: Vec<&KvCache> = seqs.iter().map(|q| &*q.cache).collect();
            let (q_all, out, rows) = (&s.q, SharedOut(s.attn.as_mut_ptr()), &rows);
            self.pool.run(&|i, workers| {
                let heads = partition_chunk(c.heads, workers, 1, i);
                let mut scores = vec![0f32; longest];
                let mut acc = vec![0f64; hd];
                let mut row = vec![0f32; hd];
                for (t, &(si, pos)) in rows.iter().enumerate() {
                    for head in heads.clone() {
                        let at = t * q_dim + head * hd;
                        let scores = &mut scores[..pos + 1];
                        caches[si].key_scores(
                            d,
                            li,
                            head / group,
                            hd,
                            &q_all[at..at + hd],
                            &mut row,
                            scores,
                        );
                        scores.iter_mut().for_each(|v| *v *= scale);
                        ops::softmax(scores);
                        // SAFETY: head `head` of row `t` is this worker's alone
                        // (heads are split), inside `s.attn` (N × q_dim).
                        let dst = unsafe { std::slice::from_raw_parts_mut(out.ptr().add(at), hd) };
                        caches[si].mix_values(
                            d,
                            li,
                            head / group,
                            hd,
                            scores,
                            &mut row,
                            &mut acc,
                            dst,
                        );
                    }
                }
            });
            if let Some(w) = &layer.attn_sub_norm {
                rms_norm_rows(&s.attn, w, c.rms_eps, &mut s.attn_n, q_dim);
                std::mem::swap(&mut s.attn, &mut s.attn_n);
            }
            let acts = s.quant.quantize(d, &s.attn, q_dim, diag.as_deref_mut())?;
            self.matmul(&layer.wo, &acts, &mut s.proj)?;
            add_in_place(&mut s.x, &s.proj);

            // Feed-forward: RMSNorm → gate, up (one shared quantization) → act(gate) ⊙ up → [sub-norm] → down.
            rms_norm_rows(&s.x, &layer.ffn_norm, c.rms_eps, &mut s.xn, h);
            let acts = s.quant.quantize(d, &s.xn, h, diag.as_deref_mut())?;
            self.matmul(&layer.w_gate, &acts, &mut s.gate)?;
            self.matmul(&layer.w_up, &acts, &mut s.up)?;
            for (g, &u) in s.gate.iter_mut().zip(&s.up) {
                *g = activate(c.activation, *g) * u;
            }
            if let Some(w) = &layer.ffn_sub_norm {
                rms_norm_rows(&s.gate, w, c.rms_eps, &mut s.up, ffn);
                std::mem::swap(&mut s.gate, &mut s.up);
            }
            let acts = s.quant.quantize(d, &s.gate, ffn, diag.as_deref_mut())?;
            self.matmul(&layer.w_down, &acts, &mut s.proj)?;
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
                Logits::Last if len > 0 => wanted.push(t + len - 1),
                Logits::Last => {}
                Logits::All => wanted.extend(t..t + len),
            }
            t += len;
        }
        let head = self.output.as_ref().unwrap_or(&self.embed);
        let mut normed = vec![0f32; wanted.len() * h];
        for (&t, out) in wanted.iter().zip(normed.chunks_exact_mut(h)) {
            ops::rms_norm(&s.x[t * h..(t + 1) * h], &self.output_norm, c.rms_eps, out);
        }
        logits.resize(wanted.len() * c.vocab, 0.0);
        let (dst, normed) = (SharedOut(logits.as_mut_ptr()), &normed);
        let failed = AtomicBool::new(false);
        self.pool.run(&|i, workers| {
            let rows = partition_chunk(c.vocab, workers, ROW_TILE, i);
            // SAFETY: `logits` holds one `vocab`-wide row per wanted token;
            // each worker writes only its own columns `rows`.
            if unsafe { head.gemv_tokens(file, d, normed, rows, dst.ptr(), c.vocab) }.is_err() {
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

fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32], width: usize) {
    for (row, o) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        ops::rms_norm(row, w, eps, o);
    }
}

/// Per-forward buffers, `N` tokens wide.
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
    quant: QuantBuffers,
}

impl Scratch {
    fn new(n: usize, h: usize, q_dim: usize, kv_dim: usize, ffn: usize) -> Scratch {
        Scratch {
            x: vec![0.0; n * h],
            xn: vec![0.0; n * h],
            q: vec![0.0; n * q_dim],
            k: vec![0.0; n * kv_dim],
            v: vec![0.0; n * kv_dim],
            attn: vec![0.0; n * q_dim],
            attn_n: vec![0.0; n * q_dim],
            proj: vec![0.0; n * h],
            gate: vec![0.0; n * ffn],
            up: vec![0.0; n * ffn],
            quant: QuantBuffers::default(),
        }
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
    fn quantize(
        &mut self,
        d: Dispatch,
        x: &[f32],
        k: usize,
        trace: Option<&mut RoundingTrace>,
    ) -> Result<QuantizedActs<'_>, ModelError> {
        let n = x.len() / k;
        self.q.resize(x.len(), 0);
        self.scales.resize(n, 0.0);
        self.sums.resize(n, 0);
        d.quantize(x, k, &mut self.q, &mut self.scales, &mut self.sums)?;
        if let Some(trace) = trace {
            trace.visit(x, k, &mut self.q, &self.scales, &mut self.sums);
        }
        Ok(QuantizedActs::new(&self.q, &self.scales, &self.sums, k)?)
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
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                let exponent = (2 * i) as f32 / c.rope_dim as f32;
                1.0 / ((c.rope_theta as f64).powf(exponent as f64) as f32)
            })
            .collect();
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
