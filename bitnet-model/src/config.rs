//! Hyper-parameters, read from GGUF metadata.

use crate::error::ModelError;
use crate::gguf::Gguf;

/// The graph families this engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `bitnet-b1.58` / `bitnet-25` (BitNet-b1.58-2B-4T): sub-norms, relu², NEOX RoPE.
    BitnetB158,
    /// `bitnet` (1bitLLM bitnet_b1_58-large/3B): sub-norms, SiLU, NEOX RoPE.
    Bitnet,
    /// `llama` with ternary projections (Falcon3-1.58bit, Llama3-8B-1.58):
    /// no sub-norms, SiLU, interleaved RoPE on GGUF-permuted Q/K.
    Llama,
}

/// The gate activation of the feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `relu(x)²`.
    Relu2,
    /// `x·sigmoid(x)`.
    Silu,
}

/// How RoPE pairs dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// `(i, i + d/2)`.
    Neox,
    /// `(2i, 2i + 1)`.
    Interleaved,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The `general.architecture` string as written in the file.
    pub arch_name: String,
    pub arch: Arch,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Leading dimensions of each head that RoPE rotates.
    pub rope_dim: usize,
    pub ffn: usize,
    pub vocab: usize,
    /// Training context length (the position limit).
    pub ctx: usize,
    pub rope_theta: f32,
    pub rms_eps: f32,
    pub activation: Activation,
    pub rope: RopeStyle,
}

impl Config {
    pub fn from_gguf(g: &Gguf) -> Result<Config, ModelError> {
        let arch_name = g
            .get_str("general.architecture")?
            .ok_or_else(|| {
                ModelError::Config("required metadata \"general.architecture\" is missing".into())
            })?
            .to_string();
        let arch = match arch_name.as_str() {
            "bitnet-b1.58" | "bitnet-25" => Arch::BitnetB158,
            "bitnet" => Arch::Bitnet,
            "llama" => Arch::Llama,
            other => return Err(ModelError::UnsupportedArch(other.into())),
        };
        let key = |k: &str| format!("{arch_name}.{k}");
        let required = |k: &str| -> Result<usize, ModelError> {
            match g.get_u64(&key(k))? {
                Some(v) if v > 0 && v <= u32::MAX as u64 => Ok(v as usize),
                Some(v) => Err(ModelError::Config(format!(
                    "metadata {:?} = {v} is out of range",
                    key(k)
                ))),
                None => Err(ModelError::Config(format!(
                    "required metadata {:?} is missing",
                    key(k)
                ))),
            }
        };
        let hidden = required("embedding_length")?;
        let layers = required("block_count")?;
        let heads = required("attention.head_count")?;
        let kv_heads = match g.get_u64(&key("attention.head_count_kv"))? {
            None => heads,
            Some(_) => required("attention.head_count_kv")?,
        };
        let ffn = required("feed_forward_length")?;
        let ctx = required("context_length")?;
        if hidden % heads != 0 {
            return Err(ModelError::Config(format!(
                "embedding_length {hidden} is not a multiple of head_count {heads}"
            )));
        }
        if heads % kv_heads != 0 {
            return Err(ModelError::Config(format!(
                "head_count {heads} is not a multiple of head_count_kv {kv_heads}"
            )));
        }
        let head_dim = hidden / heads;
        let rope_dim = match g.get_u64(&key("rope.dimension_count"))? {
            None => head_dim,
            Some(_) => required("rope.dimension_count")?,
        };
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(ModelError::Config(format!(
                "rope.dimension_count {rope_dim} must be even and at most the head size {head_dim}"
            )));
        }
        let vocab = match g.get_u64(&key("vocab_size"))? {
            Some(_) => required("vocab_size")?,
            None => g
                .get_str_array("tokenizer.ggml.tokens")?
                .map(|t| t.len())
                .ok_or_else(|| {
                    ModelError::Config(format!(
                        "required metadata {:?} is missing",
                        key("vocab_size")
                    ))
                })?,
        };
        let rope_theta = g.get_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0);
        let rms_eps = g
            .get_f32(&key("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-5);
        if !(rope_theta.is_finite() && rope_theta > 0.0 && rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(ModelError::Config(format!(
                "rope.freq_base {rope_theta} or layer_norm_rms_epsilon {rms_eps} is invalid"
            )));
        }
        let activation = match g.get_str(&key("hidden_act"))? {
            Some("relu2" | "relu_squared") => Activation::Relu2,
            Some("silu" | "swish") => Activation::Silu,
            Some(other) => {
                return Err(ModelError::Config(format!(
                    "{:?} = {other:?} is not relu2 or silu",
                    key("hidden_act")
                )))
            }
            None if arch == Arch::BitnetB158 => Activation::Relu2,
            None => Activation::Silu,
        };
        let rope = if arch == Arch::Llama {
            RopeStyle::Interleaved
        } else {
            RopeStyle::Neox
        };
        let config = Config {
            arch_name,
            arch,
            hidden,
            layers,
            heads,
            kv_heads,
            head_dim,
            rope_dim,
            ffn,
            vocab,
            ctx,
            rope_theta,
            rms_eps,
            activation,
            rope,
        };
        // A base below 1 makes the frequencies grow with the pair index; far
        // enough below, the highest overflows f32 and every angle it makes is
        // Inf or NaN (each ISA then rounds NaN to int8 its own way). The
        // frequencies are monotonic in the pair index, so the two ends bound
        // them (a fuzzed head size of 10⁹ must not cost 10⁹ calls).
        let half = config.rope_dim / 2;
        let fastest = match half {
            0 => 0.0,
            _ => config
                .rope_frequency(0)
                .max(config.rope_frequency(half - 1)),
        };
        let angle = config.ctx as f32 * fastest;
        if !angle.is_finite() {
            return Err(ModelError::Config(format!(
                "rope.freq_base {rope_theta} gives RoPE angles of {angle} within the context of {}",
                config.ctx
            )));
        }
        Ok(config)
    }

    /// Rotation frequency of RoPE pair `i` (`0 ≤ i < rope_dim / 2`), in
    /// radians per position: `1 / θ^(2i / rope_dim)`, rounded to f32 as
    /// transformers computes it.
    pub fn rope_frequency(&self, i: usize) -> f32 {
        let exponent = (2 * i) as f32 / self.rope_dim as f32;
        1.0 / ((self.rope_theta as f64).powf(exponent as f64) as f32)
    }

    /// Width of K and V rows: `kv_heads · head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}
