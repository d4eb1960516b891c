//! Reproducible random weights, activations and whole GGUF models for
//! benches, self-checks and demos (no download needed).

use crate::gguf::{write_ternary, GgufWriter, MetaValue, TensorType};
use bitnet_kernels::format::{encode_i2s_row, f16_to_f32, f32_to_f16};
use std::io::{self, Write};
use std::path::Path;

pub use crate::gguf::TernaryFormat;

/// xorshift64: deterministic and fast; not for anything statistical.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x2545_f491_4f6c_dd1d | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `[-1, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// Uniform in `{-1, 0, 1}`.
    pub fn next_trit(&mut self) -> i8 {
        (self.next_u64() % 3) as i8 - 1
    }
}

/// An `m × k` matrix of uniform random trits as I2_S codes (`m·k/4` bytes).
///
/// # Panics
/// If `k` is not a multiple of 128.
pub fn ternary_i2s_codes(m: usize, k: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut trits = vec![0i8; k];
    let mut codes = vec![0u8; m * k / 4];
    for row in codes.chunks_exact_mut(k / 4) {
        trits.iter_mut().for_each(|t| *t = rng.next_trit());
        encode_i2s_row(&trits, row).expect("k is a multiple of 128");
    }
    codes
}

/// `len` activations uniform in `[-1, 1)`.
pub fn activations(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.next_f32()).collect()
}

/// A model shape (always the BitNet-b1.58-2B-4T graph: `bitnet-b1.58`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub ctx: usize,
    pub rope_theta: u32,
}

impl Preset {
    /// A few-MB model for tests and demos.
    pub const TINY: Preset = Preset {
        name: "tiny",
        hidden: 256,
        layers: 4,
        heads: 4,
        kv_heads: 2,
        ffn: 768,
        vocab: 512,
        ctx: 2048,
        rope_theta: 500_000,
    };

    /// BitNet-b1.58-2B-4T's shape: 1.18 GB read per decoded token.
    pub const B2_4T: Preset = Preset {
        name: "2b-4t",
        hidden: 2560,
        layers: 30,
        heads: 20,
        kv_heads: 5,
        ffn: 6912,
        vocab: 128_256,
        ctx: 4096,
        rope_theta: 500_000,
    };

    pub const ALL: [Preset; 2] = [Preset::TINY, Preset::B2_4T];

    pub fn by_name(name: &str) -> Option<Preset> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }
}

/// The vocabulary of a synthetic model: the 256 byte tokens, the Llama-3
/// special tokens a chat needs, then unused fillers up to `vocab`.
fn vocabulary(vocab: usize) -> (Vec<String>, Vec<i32>) {
    let chars = crate::tokenizer::byte_chars();
    let mut tokens: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
    let mut types = vec![1i32; 256];
    for special in [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ] {
        tokens.push(special.into());
        types.push(3);
    }
    while tokens.len() < vocab {
        tokens.push(format!("<|unused_{}|>", tokens.len()));
        types.push(5);
    }
    (tokens, types)
}

/// Writes a random-weight model of `preset`'s shape: ternary projections in
/// `format` (scale 1/√(2K/3), rounded to f16 so every format holds the same
/// weights), F16 token embedding (tied LM head), unit norms, and a byte-level
/// tokenizer. Deterministic in `seed`. Written to a temporary file and
/// renamed, so a failure leaves no partial model behind.
pub fn write_model(
    path: &Path,
    preset: Preset,
    format: TernaryFormat,
    seed: u64,
) -> io::Result<()> {
    let p = preset;
    let vocab = p.vocab.max(262);
    let head_dim = p.hidden / p.heads;
    let arch = "bitnet-b1.58";
    let (tokens, types) = vocabulary(vocab);
    let mut w = GgufWriter::new();
    let key = |k: &str| format!("{arch}.{k}");
    w.meta("general.architecture", MetaValue::Str(arch.into()))
        .meta(
            "general.name",
            MetaValue::Str(format!("synthetic-{}", p.name)),
        )
        .meta("general.file_type", MetaValue::U32(format.file_type()))
        .meta(&key("vocab_size"), MetaValue::U32(vocab as u32))
        .meta(&key("context_length"), MetaValue::U32(p.ctx as u32))
        .meta(&key("embedding_length"), MetaValue::U32(p.hidden as u32))
        .meta(&key("block_count"), MetaValue::U32(p.layers as u32))
        .meta(&key("feed_forward_length"), MetaValue::U32(p.ffn as u32))
        .meta(
            &key("rope.dimension_count"),
            MetaValue::U32(head_dim as u32),
        )
        .meta(&key("attention.head_count"), MetaValue::U32(p.heads as u32))
        .meta(
            &key("attention.head_count_kv"),
            MetaValue::U32(p.kv_heads as u32),
        )
        .meta(
            &key("attention.layer_norm_rms_epsilon"),
            MetaValue::F32(1e-5),
        )
        .meta(&key("rope.freq_base"), MetaValue::F32(p.rope_theta as f32))
        .meta("tokenizer.ggml.model", MetaValue::Str("gpt2".into()))
        .meta("tokenizer.ggml.pre", MetaValue::Str("llama-bpe".into()))
        .meta("tokenizer.ggml.tokens", MetaValue::StrArray(tokens))
        .meta("tokenizer.ggml.token_type", MetaValue::I32Array(types))
        .meta("tokenizer.ggml.merges", MetaValue::StrArray(Vec::new()))
        .meta("tokenizer.ggml.bos_token_id", MetaValue::U32(256))
        .meta("tokenizer.ggml.eos_token_id", MetaValue::U32(257))
        .meta("tokenizer.ggml.add_bos_token", MetaValue::Bool(true));

    enum Kind {
        Embedding,
        Norm,
        Ternary { k: usize },
    }
    let mut plan: Vec<(String, Vec<u64>, Kind)> = vec![(
        "token_embd.weight".into(),
        vec![p.hidden as u64, vocab as u64],
        Kind::Embedding,
    )];
    let q_dim = p.heads * head_dim;
    let kv_dim = p.kv_heads * head_dim;
    for i in 0..p.layers {
        let t = |n: &str| format!("blk.{i}.{n}.weight");
        plan.push((t("attn_norm"), vec![p.hidden as u64], Kind::Norm));
        for (n, k, m) in [
            ("attn_q", p.hidden, q_dim),
            ("attn_k", p.hidden, kv_dim),
            ("attn_v", p.hidden, kv_dim),
            ("attn_output", q_dim, p.hidden),
        ] {
            plan.push((t(n), vec![k as u64, m as u64], Kind::Ternary { k }));
        }
        plan.push((t("attn_sub_norm"), vec![q_dim as u64], Kind::Norm));
        plan.push((t("ffn_norm"), vec![p.hidden as u64], Kind::Norm));
        for (n, k, m) in [
            ("ffn_gate", p.hidden, p.ffn),
            ("ffn_up", p.hidden, p.ffn),
            ("ffn_down", p.ffn, p.hidden),
        ] {
            plan.push((t(n), vec![k as u64, m as u64], Kind::Ternary { k }));
        }
        plan.push((t("ffn_sub_norm"), vec![p.ffn as u64], Kind::Norm));
    }
    plan.push((
        "output_norm.weight".into(),
        vec![p.hidden as u64],
        Kind::Norm,
    ));
    for (name, dims, kind) in &plan {
        let ty = match kind {
            Kind::Embedding => TensorType::F16,
            Kind::Norm => TensorType::F32,
            Kind::Ternary { .. } => format.tensor_type(),
        };
        w.tensor(name, dims, ty);
    }

    w.write_file(path, |i, out| {
        let (_, dims, kind) = &plan[i];
        let mut rng = Rng::new(seed.wrapping_mul(0x9e37_79b9).wrapping_add(i as u64));
        match kind {
            Kind::Embedding => {
                let mut row = Vec::with_capacity(dims[0] as usize * 2);
                for _ in 0..dims[1] {
                    row.clear();
                    for _ in 0..dims[0] {
                        row.extend_from_slice(&f32_to_f16(rng.next_f32() * 0.05).to_le_bytes());
                    }
                    out.write_all(&row)?;
                }
                Ok(())
            }
            Kind::Norm => (0..dims[0]).try_for_each(|_| out.write_all(&1.0f32.to_le_bytes())),
            Kind::Ternary { k } => {
                let scale = f16_to_f32(f32_to_f16(1.0 / (2.0 * *k as f32 / 3.0).sqrt()));
                write_ternary(out, format, *k, dims[1] as usize, scale, |_, trits| {
                    trits.iter_mut().for_each(|t| *t = rng.next_trit());
                    Ok(())
                })
            }
        }
    })
}
