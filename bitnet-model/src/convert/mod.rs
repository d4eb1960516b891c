//! Hugging Face checkpoint → GGUF: `config.json`, `*.safetensors` and
//! `tokenizer.json` in, one GGUF file out with ternary projections in I2_S,
//! TQ2_0 or TQ1_0 and the metadata this crate's loader (and bitnet.cpp /
//! llama.cpp) read.
//!
//! Checkpoints handled:
//! * `BitNetForCausalLM` (BitNet-b1.58-2B-4T) → `bitnet-b1.58`, and ternary
//!   `LlamaForCausalLM` (Falcon3-1.58bit, Llama3-8B-1.58) → `llama`, whose Q
//!   and K rows are permuted the way llama.cpp's converter does, so the
//!   interleaved RoPE of GGUF `llama` applies.
//! * Projections packed as uint8 (4 trits per byte along the output
//!   dimension: byte row `r` holds output rows `r`, `r + M/4`, `r + M/2`,
//!   `r + 3M/4` in bits 1:0, 3:2, 5:4, 7:6; value = code − 1) with a
//!   `weight_scale` that transformers' `BitLinear` divides by (so the GGUF
//!   scale is its reciprocal; `AutoBitLinear` multiplies, and is honoured).
//! * Float "master weights" (F32 / F16 / BF16), ternarized per tensor with
//!   absmean as BitNet trains them: `scale = max(mean|W|, 1e-5)`,
//!   `trit = clamp(round_half_even(W / scale), -1, 1)`.
//!
//! The shards are memory-mapped and converted one tensor at a time, row by
//! row, so memory stays far below the model's size. Everything that can be
//! checked from headers (architecture, shapes, dtypes, the tokenizer) is
//! checked before the output is created; the file is written under a
//! `.partial` name and renamed at the end, so a failure leaves nothing behind.

mod checkpoint;
mod vocab;

use crate::config::Activation;
use crate::gguf::{write_ternary, GgufWriter, MetaValue, TensorType};
use crate::weights::{
    nearest_int, quantize_q6_k, quantize_q8_0, Q6K_BLOCK_BYTES, Q8_0_BLOCK_BYTES,
};
use bitnet_kernels::format::f32_to_f16;
use checkpoint::{Family, HfConfig, HfTensor, ScaleUse, Shards};
use safetensors::Dtype;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use crate::gguf::TernaryFormat;

/// Element type of the token embedding (and of an untied LM head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingType {
    F16,
    /// 8.5 bits per weight; the hidden size must be a multiple of 32.
    Q8_0,
    /// 6.56 bits per weight; the hidden size must be a multiple of 256.
    Q6K,
}

impl EmbeddingType {
    fn tensor_type(self) -> TensorType {
        match self {
            EmbeddingType::F16 => TensorType::F16,
            EmbeddingType::Q8_0 => TensorType::Q8_0,
            EmbeddingType::Q6K => TensorType::Q6K,
        }
    }

    /// Weights per row must be a multiple of this.
    fn block(self) -> usize {
        match self {
            EmbeddingType::F16 => 1,
            EmbeddingType::Q8_0 => 32,
            EmbeddingType::Q6K => 256,
        }
    }
}

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvertOptions {
    pub format: TernaryFormat,
    pub embedding: EmbeddingType,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            format: TernaryFormat::I2s,
            embedding: EmbeddingType::F16,
        }
    }
}

/// How the checkpoint stored its ternary projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TernarySource {
    /// uint8, 4 trits per byte, with `weight_scale`.
    Packed,
    /// Float master weights, ternarized with absmean.
    MasterWeights,
}

/// What [`convert`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// `general.architecture`: `bitnet-b1.58` or `llama`.
    pub arch: &'static str,
    pub source: TernarySource,
    pub tensors: usize,
    /// Size of the output file.
    pub bytes: u64,
}

/// Why a checkpoint could not be converted.
#[derive(Debug)]
pub enum ConvertError {
    /// A file could not be read or written.
    Io { path: PathBuf, source: io::Error },
    /// Input this converter cannot use; the message names the file or
    /// tensor and the problem.
    Input(String),
}

impl ConvertError {
    fn io(path: &Path, source: io::Error) -> ConvertError {
        ConvertError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn tensor(name: &str, problem: impl fmt::Display) -> ConvertError {
        ConvertError::Input(format!("tensor {name:?}: {problem}"))
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvertError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ConvertError::Input(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ConvertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConvertError::Io { source, .. } => Some(source),
            ConvertError::Input(_) => None,
        }
    }
}

/// transformers' template for BitNet-b1.58-2B-4T, written when the checkpoint
/// has none (BOS is left to `tokenizer.ggml.add_bos_token`).
const BITNET_CHAT_TEMPLATE: &str = "{% for message in messages %}{{ message['role'] | capitalize + ': ' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";

/// Converts the checkpoint in `dir` to the GGUF file `out`.
pub fn convert(dir: &Path, out: &Path, opts: ConvertOptions) -> Result<Converted, ConvertError> {
    let cfg = HfConfig::read(&dir.join("config.json"))?;
    let vocab = vocab::read(&dir.join("tokenizer.json"), cfg.vocab)?;
    let chat_template = checkpoint::chat_template(dir)?;
    let shards = Shards::open(dir)?;
    let tensors = shards.tensors()?;
    let plan = plan(&cfg, &tensors, opts)?;

    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    let mut w = header(&cfg, vocab, chat_template, opts, name);
    for item in &plan {
        w.tensor(&item.name, &item.dims, item.ty);
    }
    w.write_file(out, |i, sink| plan[i].write(sink))
        .map_err(
            |e| match e.get_ref().is_some_and(|e| e.is::<ConvertError>()) {
                true => *e
                    .into_inner()
                    .and_then(|e| e.downcast().ok())
                    .expect("checked above"),
                false => ConvertError::io(out, e),
            },
        )?;
    let bytes = std::fs::metadata(out)
        .map_err(|e| ConvertError::io(out, e))?
        .len();
    let master = plan.iter().any(|p| {
        matches!(
            p.source,
            Source::Ternary(Projection {
                packed_scale: None,
                ..
            })
        )
    });
    Ok(Converted {
        arch: cfg.family.gguf_arch(),
        source: match master {
            true => TernarySource::MasterWeights,
            false => TernarySource::Packed,
        },
        tensors: plan.len(),
        bytes,
    })
}

/// The GGUF metadata: hyper-parameters under the arch's prefix, then the
/// tokenizer (ids from `config.json`, `<|eot_id|>` found by its text).
fn header(
    cfg: &HfConfig,
    vocab: vocab::Vocab,
    chat_template: Option<String>,
    opts: ConvertOptions,
    name: String,
) -> GgufWriter {
    let mut w = GgufWriter::new();
    let arch = cfg.family.gguf_arch();
    let key = |k: &str| format!("{arch}.{k}");
    let count = |n: usize| MetaValue::U32(n as u32);
    w.meta("general.architecture", MetaValue::Str(arch.into()))
        .meta("general.name", MetaValue::Str(name))
        .meta("general.file_type", MetaValue::U32(opts.format.file_type()))
        .meta("general.quantization_version", MetaValue::U32(2))
        .meta(&key("vocab_size"), count(cfg.vocab))
        .meta(&key("context_length"), count(cfg.ctx))
        .meta(&key("embedding_length"), count(cfg.hidden))
        .meta(&key("block_count"), count(cfg.layers))
        .meta(&key("feed_forward_length"), count(cfg.ffn))
        .meta(&key("rope.dimension_count"), count(cfg.head_dim))
        .meta(&key("attention.head_count"), count(cfg.heads))
        .meta(&key("attention.head_count_kv"), count(cfg.kv_heads))
        .meta(
            &key("attention.layer_norm_rms_epsilon"),
            MetaValue::F32(cfg.rms_eps),
        )
        .meta(&key("rope.freq_base"), MetaValue::F32(cfg.rope_theta));
    if cfg.activation != cfg.family.default_activation() {
        let act = match cfg.activation {
            Activation::Relu2 => "relu2",
            Activation::Silu => "silu",
        };
        w.meta(&key("hidden_act"), MetaValue::Str(act.into()));
    }
    let eot = vocab.id("<|eot_id|>");
    let pre = vocab.pre.name();
    w.meta("tokenizer.ggml.model", MetaValue::Str("gpt2".into()))
        .meta("tokenizer.ggml.pre", MetaValue::Str(pre.into()))
        .meta("tokenizer.ggml.tokens", MetaValue::StrArray(vocab.tokens))
        .meta(
            "tokenizer.ggml.token_type",
            MetaValue::I32Array(vocab.types),
        )
        .meta("tokenizer.ggml.merges", MetaValue::StrArray(vocab.merges));
    for (k, id) in [
        ("tokenizer.ggml.bos_token_id", cfg.bos),
        ("tokenizer.ggml.eos_token_id", cfg.eos),
        ("tokenizer.ggml.eot_token_id", eot),
        ("tokenizer.ggml.padding_token_id", cfg.pad.or(cfg.eos)),
    ] {
        if let Some(id) = id {
            w.meta(k, MetaValue::U32(id));
        }
    }
    w.meta(
        "tokenizer.ggml.add_bos_token",
        MetaValue::Bool(cfg.bos.is_some()),
    );
    let chat_template = match (chat_template, cfg.family, eot) {
        (Some(t), _, _) => Some(t),
        (None, Family::Bitnet, Some(_)) => Some(BITNET_CHAT_TEMPLATE.to_string()),
        (None, _, _) => None,
    };
    if let Some(t) = chat_template {
        w.meta("tokenizer.chat_template", MetaValue::Str(t));
    }
    w
}

/// One output tensor and where its values come from.
struct Item<'a> {
    name: String,
    /// ggml order: row length first.
    dims: Vec<u64>,
    ty: TensorType,
    source: Source<'a>,
}

enum Source<'a> {
    /// A float tensor written as `ty` (F32, F16, Q8_0, Q6_K) row by row.
    Dense(HfTensor<'a>),
    Ternary(Projection<'a>),
}

/// An `m × k` ternary projection.
struct Projection<'a> {
    weight: HfTensor<'a>,
    k: usize,
    m: usize,
    format: TernaryFormat,
    /// The GGUF scale of a packed tensor; `None` for master weights.
    packed_scale: Option<f32>,
    /// `{proj}.weight_scale`, read only for packed weights.
    scale_name: String,
    /// The head size, for Q and K rows that llama.cpp's permutation reorders.
    permute_head_dim: Option<usize>,
}

/// A bad value found while writing, carried through the writer's
/// `io::Error` callbacks to [`convert`], which unwraps it.
fn bad_value(e: ConvertError) -> io::Error {
    io::Error::other(e)
}

/// The tensor list of the GGUF, every source checked for presence, dtype and
/// shape; also refuses tensors the graph would silently ignore.
fn plan<'a>(
    cfg: &HfConfig,
    tensors: &HashMap<String, HfTensor<'a>>,
    opts: ConvertOptions,
) -> Result<Vec<Item<'a>>, ConvertError> {
    let take = |name: &str| -> Result<HfTensor<'a>, ConvertError> {
        tensors
            .get(name)
            .cloned()
            .ok_or_else(|| ConvertError::Input(format!("the checkpoint has no tensor {name:?}")))
    };
    let dense = |name: &str, gguf: String, shape: &[usize], ty: TensorType| {
        let t = take(name)?;
        if !t.is_float() {
            let problem = format!("dtype {} is not F32, F16 or BF16", t.dtype);
            return Err(ConvertError::tensor(name, problem));
        }
        if t.shape != shape && !(shape.len() == 1 && t.elements() == shape[0]) {
            let problem = format!("shape {:?}, expected {shape:?}", t.shape);
            return Err(ConvertError::tensor(name, problem));
        }
        Ok(Item {
            name: gguf,
            dims: shape.iter().rev().map(|&d| d as u64).collect(),
            ty,
            source: Source::Dense(t),
        })
    };
    let norm = |name: String, gguf: String, len: usize| dense(&name, gguf, &[len], TensorType::F32);
    let embd = opts.embedding;
    let embedding = |name: &str, gguf: &str| {
        if !cfg.hidden.is_multiple_of(embd.block()) {
            return Err(ConvertError::Input(format!(
                "a {} embedding needs the hidden size to be a multiple of {}; it is {}",
                embd.tensor_type().name(),
                embd.block(),
                cfg.hidden
            )));
        }
        dense(
            name,
            gguf.into(),
            &[cfg.vocab, cfg.hidden],
            embd.tensor_type(),
        )
    };
    let project = |proj: String, gguf: String, k: usize, m: usize, permute: Option<usize>| {
        ternary(cfg, &take, &proj, gguf, k, m, permute, opts.format)
    };

    let (h, ffn) = (cfg.hidden, cfg.ffn);
    let q_dim = cfg.heads * cfg.head_dim;
    let kv_dim = cfg.kv_heads * cfg.head_dim;
    let bitnet = cfg.family == Family::Bitnet;
    let qk = (!bitnet).then_some(cfg.head_dim);
    let mut plan = vec![embedding("model.embed_tokens.weight", "token_embd.weight")?];
    for i in 0..cfg.layers {
        let hf = |n: &str| format!("model.layers.{i}.{n}");
        let gguf = |n: &str| format!("blk.{i}.{n}.weight");
        plan.push(norm(hf("input_layernorm.weight"), gguf("attn_norm"), h)?);
        plan.push(project(
            hf("self_attn.q_proj"),
            gguf("attn_q"),
            h,
            q_dim,
            qk,
        )?);
        plan.push(project(
            hf("self_attn.k_proj"),
            gguf("attn_k"),
            h,
            kv_dim,
            qk,
        )?);
        plan.push(project(
            hf("self_attn.v_proj"),
            gguf("attn_v"),
            h,
            kv_dim,
            None,
        )?);
        plan.push(project(
            hf("self_attn.o_proj"),
            gguf("attn_output"),
            q_dim,
            h,
            None,
        )?);
        if bitnet {
            let sub = hf("self_attn.attn_sub_norm.weight");
            plan.push(norm(sub, gguf("attn_sub_norm"), q_dim)?);
        }
        plan.push(norm(
            hf("post_attention_layernorm.weight"),
            gguf("ffn_norm"),
            h,
        )?);
        plan.push(project(
            hf("mlp.gate_proj"),
            gguf("ffn_gate"),
            h,
            ffn,
            None,
        )?);
        plan.push(project(hf("mlp.up_proj"), gguf("ffn_up"), h, ffn, None)?);
        plan.push(project(
            hf("mlp.down_proj"),
            gguf("ffn_down"),
            ffn,
            h,
            None,
        )?);
        if bitnet {
            plan.push(norm(
                hf("mlp.ffn_sub_norm.weight"),
                gguf("ffn_sub_norm"),
                ffn,
            )?);
        }
    }
    plan.push(norm(
        "model.norm.weight".into(),
        "output_norm.weight".into(),
        h,
    )?);
    if !cfg.tied {
        plan.push(embedding("lm_head.weight", "output.weight")?);
    }

    let mut used: HashSet<&str> = HashSet::new();
    for item in &plan {
        match &item.source {
            Source::Dense(t) => {
                used.insert(&t.name);
            }
            Source::Ternary(p) => {
                used.insert(&p.weight.name);
                if p.packed_scale.is_some() {
                    used.insert(&p.scale_name);
                }
            }
        }
    }
    // Some checkpoints store a tied head anyway: it is the embedding.
    let ignored =
        |n: &str| n.ends_with("rotary_emb.inv_freq") || (cfg.tied && n == "lm_head.weight");
    let mut unused: Vec<&String> = tensors
        .keys()
        .filter(|n| !used.contains(n.as_str()) && !ignored(n))
        .collect();
    unused.sort();
    if let Some(first) = unused.first() {
        return Err(ConvertError::Input(format!(
            "the checkpoint has {} tensor(s) the {} graph does not use, e.g. {first:?}",
            unused.len(),
            cfg.family.gguf_arch()
        )));
    }
    Ok(plan)
}

/// Plans one `m × k` projection from `{proj}.weight` (and `{proj}.weight_scale`).
fn ternary<'a>(
    cfg: &HfConfig,
    take: &impl Fn(&str) -> Result<HfTensor<'a>, ConvertError>,
    proj: &str,
    gguf: String,
    k: usize,
    m: usize,
    permute_head_dim: Option<usize>,
    format: TernaryFormat,
) -> Result<Item<'a>, ConvertError> {
    let weight = take(&format!("{proj}.weight"))?;
    let scale_name = format!("{proj}.weight_scale");
    let name = weight.name.clone();
    if !k.is_multiple_of(format.block()) {
        let hint = if format != TernaryFormat::I2s && k.is_multiple_of(TernaryFormat::I2s.block()) {
            " (I2_S can hold it: --format i2s)"
        } else {
            ""
        };
        return Err(ConvertError::tensor(
            &name,
            format!(
                "{k} inputs per row is not a multiple of {}, which {} needs{hint}",
                format.block(),
                format.tensor_type().name()
            ),
        ));
    }
    let packed = match weight.dtype {
        Dtype::U8 => {
            if !m.is_multiple_of(4) || weight.shape != [m / 4, k] {
                return Err(ConvertError::tensor(
                    &name,
                    format!(
                        "packed shape {:?}, expected [{}, {k}] (4 trits per byte along {m} outputs)",
                        weight.shape,
                        m / 4
                    ),
                ));
            }
            let s = take(&scale_name)?;
            if !s.is_float() || s.elements() != 1 {
                return Err(ConvertError::tensor(
                    &s.name,
                    format!(
                        "dtype {} shape {:?}, expected one float (per-tensor scale)",
                        s.dtype, s.shape
                    ),
                ));
            }
            let mut v = [0f32];
            s.read_f32(0, &mut v);
            let scale = match cfg.scale_use {
                ScaleUse::Divide => 1.0 / v[0],
                ScaleUse::Multiply => v[0],
            };
            if !(v[0].is_finite() && v[0] > 0.0 && scale.is_finite()) {
                return Err(ConvertError::tensor(
                    &s.name,
                    format!("{} is not a positive finite scale", v[0]),
                ));
            }
            Some(scale)
        }
        _ if weight.is_float() => {
            if cfg.family == Family::Llama && !cfg.bitnet_quant {
                return Err(ConvertError::Input(format!(
                    "{name:?} holds {} weights and config.json has no bitnet quantization_config: \
                     this is not a ternary Llama checkpoint",
                    weight.dtype
                )));
            }
            if weight.shape != [m, k] {
                return Err(ConvertError::tensor(
                    &name,
                    format!("shape {:?}, expected [{m}, {k}]", weight.shape),
                ));
            }
            None
        }
        other => {
            return Err(ConvertError::tensor(
                &name,
                format!("dtype {other} is neither packed ternary (U8) nor float master weights"),
            ))
        }
    };
    Ok(Item {
        name: gguf,
        dims: vec![k as u64, m as u64],
        ty: format.tensor_type(),
        source: Source::Ternary(Projection {
            weight,
            k,
            m,
            format,
            packed_scale: packed,
            scale_name,
            permute_head_dim,
        }),
    })
}

/// The checkpoint row that becomes GGUF row `row` under llama.cpp's Q/K
/// permutation: within each head, GGUF rows `(2i, 2i+1)` are the checkpoint's
/// rows `(i, i + head_dim/2)`, turning NEOX-style pairs into adjacent ones.
fn checkpoint_row(row: usize, head_dim: usize) -> usize {
    let (head, r) = (row / head_dim, row % head_dim);
    head * head_dim + (r % 2) * (head_dim / 2) + r / 2
}

impl Item<'_> {
    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        match &self.source {
            Source::Dense(t) => write_dense(t, self.ty, self.dims[0] as usize, out),
            Source::Ternary(p) => p.write(out),
        }
    }
}

impl Projection<'_> {
    /// Unpacks (or ternarizes) row by row, in GGUF row order.
    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let Projection {
            weight,
            k,
            m,
            format,
            packed_scale,
            permute_head_dim,
            ..
        } = self;
        let (k, m) = (*k, *m);
        let source_row = |r: usize| match permute_head_dim {
            Some(hd) => checkpoint_row(r, *hd),
            None => r,
        };
        match packed_scale {
            Some(scale) => {
                let quarter = m / 4;
                write_ternary(out, *format, k, m, *scale, |r, trits| {
                    let src = source_row(r);
                    let (byte_row, shift) = (src % quarter, 2 * (src / quarter));
                    let bytes = &weight.data[byte_row * k..(byte_row + 1) * k];
                    for (c, (t, &b)) in trits.iter_mut().zip(bytes).enumerate() {
                        let code = (b >> shift) & 3;
                        if code == 3 {
                            return Err(bad_value(ConvertError::tensor(
                                &weight.name,
                                format!(
                                    "row {src}, column {c}: packed code 3 is not a trit (0, 1, 2)"
                                ),
                            )));
                        }
                        *t = code as i8 - 1;
                    }
                    Ok(())
                })
            }
            None => {
                let scale = absmean(weight).map_err(bad_value)?;
                // transformers multiplies by the reciprocal.
                let inv = 1.0 / scale;
                let mut row = vec![0f32; k];
                write_ternary(out, *format, k, m, scale, |r, trits| {
                    weight.read_f32(source_row(r) * k, &mut row);
                    for (t, &w) in trits.iter_mut().zip(&row) {
                        *t = nearest_int(w * inv).clamp(-1, 1) as i8;
                    }
                    Ok(())
                })
            }
        }
    }
}

/// BitNet's absmean weight scale, `max(mean|W|, 1e-5)` (the reciprocal of
/// transformers' `WeightQuant` scale), accumulated in f64.
fn absmean(t: &HfTensor<'_>) -> Result<f32, ConvertError> {
    let cols = *t.shape.last().expect("2-D");
    let mut row = vec![0f32; cols];
    let mut sum = 0f64;
    for r in 0..t.elements() / cols {
        t.read_f32(r * cols, &mut row);
        for (c, &w) in row.iter().enumerate() {
            if !w.is_finite() {
                return Err(ConvertError::tensor(
                    &t.name,
                    format!("row {r}, column {c} is {w}"),
                ));
            }
            sum += w.abs() as f64;
        }
    }
    Ok(((sum / t.elements() as f64) as f32).max(1e-5))
}

/// Writes a float tensor as `ty`, `cols` values per row.
fn write_dense(
    t: &HfTensor<'_>,
    ty: TensorType,
    cols: usize,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut row = vec![0f32; cols];
    let mut bytes = vec![
        0u8;
        match ty {
            TensorType::F32 => cols * 4,
            TensorType::F16 => cols * 2,
            TensorType::Q8_0 => cols / 32 * Q8_0_BLOCK_BYTES,
            TensorType::Q6K => cols / 256 * Q6K_BLOCK_BYTES,
            other => unreachable!("planned dense type {}", other.name()),
        }
    ];
    for r in 0..t.elements() / cols {
        t.read_f32(r * cols, &mut row);
        if let Some(c) = row.iter().position(|v| !v.is_finite()) {
            return Err(bad_value(ConvertError::tensor(
                &t.name,
                format!("row {r}, column {c} is {}", row[c]),
            )));
        }
        match ty {
            TensorType::F32 => {
                for (b, v) in bytes.chunks_exact_mut(4).zip(&row) {
                    b.copy_from_slice(&v.to_le_bytes());
                }
            }
            TensorType::F16 => {
                for (b, &v) in bytes.chunks_exact_mut(2).zip(&row) {
                    b.copy_from_slice(&f32_to_f16(v).to_le_bytes());
                }
            }
            TensorType::Q8_0 => quantize_q8_0(&row, &mut bytes),
            TensorType::Q6K => quantize_q6_k(&row, &mut bytes),
            _ => unreachable!("checked above"),
        }
        out.write_all(&bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qk_permutation_pairs_halves_of_each_head() {
        // head_dim 8: GGUF rows 0..8 of a head come from 0,4,1,5,2,6,3,7.
        let rows: Vec<usize> = (0..16).map(|r| checkpoint_row(r, 8)).collect();
        assert_eq!(rows, [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15]);
    }
}
