//! The parts of a Hugging Face checkpoint directory the converter reads:
//! `config.json`, the `*.safetensors` shards (memory-mapped), and the
//! optional `tokenizer_config.json`.

use super::ConvertError;
use crate::config::Activation;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// A JSON file, parsed.
pub(super) fn read_json(path: &Path) -> Result<Value, ConvertError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConvertError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| ConvertError::Input(format!("{}: not valid JSON: {e}", path.display())))
}

/// The graph families a checkpoint can be converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// `BitNetForCausalLM` → `bitnet-b1.58`: sub-norms, relu², NEOX RoPE.
    Bitnet,
    /// Ternary `LlamaForCausalLM` → `llama`: Q/K rows permuted for interleaved RoPE.
    Llama,
}

impl Family {
    pub fn gguf_arch(self) -> &'static str {
        match self {
            Family::Bitnet => "bitnet-b1.58",
            Family::Llama => "llama",
        }
    }

    /// The activation our loader assumes when `<arch>.hidden_act` is absent.
    pub fn default_activation(self) -> Activation {
        match self {
            Family::Bitnet => Activation::Relu2,
            Family::Llama => Activation::Silu,
        }
    }
}

/// How a packed checkpoint's `weight_scale` relates to the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScaleUse {
    /// transformers' `BitLinear` divides the output by it: GGUF scale = 1 / weight_scale.
    Divide,
    /// `AutoBitLinear` multiplies: GGUF scale = weight_scale.
    Multiply,
}

/// The hyper-parameters of `config.json` that the GGUF needs.
#[derive(Debug, Clone)]
pub(super) struct HfConfig {
    pub family: Family,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub ctx: usize,
    pub rope_theta: f32,
    pub rms_eps: f32,
    pub activation: Activation,
    pub tied: bool,
    /// `quantization_config.quant_method == "bitnet"`.
    pub bitnet_quant: bool,
    pub scale_use: ScaleUse,
    pub bos: Option<u32>,
    /// The first of `eos_token_id` when it is a list.
    pub eos: Option<u32>,
    pub pad: Option<u32>,
}

fn bad_config(path: &Path, what: impl std::fmt::Display) -> ConvertError {
    ConvertError::Input(format!("{}: {what}", path.display()))
}

impl HfConfig {
    pub fn read(path: &Path) -> Result<HfConfig, ConvertError> {
        let v = read_json(path)?;
        let bad = |what: String| bad_config(path, what);
        let arch_name = v["architectures"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .ok_or_else(|| bad("\"architectures\" is missing".into()))?;
        let family = match arch_name {
            "BitNetForCausalLM" | "BitnetForCausalLM" => Family::Bitnet,
            "LlamaForCausalLM" => Family::Llama,
            other => {
                return Err(bad(format!(
                    "architecture {other:?} is not supported (BitNetForCausalLM and ternary LlamaForCausalLM are)"
                )))
            }
        };
        let positive = |key: &str| -> Result<Option<usize>, ConvertError> {
            match &v[key] {
                Value::Null => Ok(None),
                x => match x.as_u64() {
                    Some(n) if n > 0 && n <= u32::MAX as u64 => Ok(Some(n as usize)),
                    _ => Err(bad(format!("{key:?} = {x} is not a positive integer"))),
                },
            }
        };
        let required = |key: &str| positive(key)?.ok_or_else(|| bad(format!("{key:?} is missing")));
        let hidden = required("hidden_size")?;
        let layers = required("num_hidden_layers")?;
        let heads = required("num_attention_heads")?;
        let kv_heads = positive("num_key_value_heads")?.unwrap_or(heads);
        let ffn = required("intermediate_size")?;
        let vocab = required("vocab_size")?;
        let ctx = required("max_position_embeddings")?;
        if !hidden.is_multiple_of(heads) || !heads.is_multiple_of(kv_heads) {
            return Err(bad(format!(
                "hidden_size {hidden}, num_attention_heads {heads} and num_key_value_heads {kv_heads} do not divide evenly"
            )));
        }
        let head_dim = hidden / heads;
        if let Some(d) = positive("head_dim")? {
            if d != head_dim {
                return Err(bad(format!(
                    "head_dim {d} differs from hidden_size / num_attention_heads = {head_dim}, which this engine assumes"
                )));
            }
        }
        if !head_dim.is_multiple_of(2) {
            return Err(bad(format!(
                "the head size {head_dim} is odd; RoPE needs pairs"
            )));
        }
        let float = |x: &Value, key: &str| -> Result<Option<f32>, ConvertError> {
            match x {
                Value::Null => Ok(None),
                x => match x.as_f64() {
                    Some(f) if f.is_finite() && f > 0.0 => Ok(Some(f as f32)),
                    _ => Err(bad(format!("{key:?} = {x} is not a positive number"))),
                },
            }
        };
        let rope_theta = float(&v["rope_theta"], "rope_theta")?
            .or(float(
                &v["rope_parameters"]["rope_theta"],
                "rope_parameters.rope_theta",
            )?)
            .unwrap_or(match family {
                Family::Bitnet => 500_000.0,
                Family::Llama => 10_000.0,
            });
        for scaling in [&v["rope_scaling"], &v["rope_parameters"]] {
            let kind = scaling["rope_type"].as_str().or(scaling["type"].as_str());
            if let Some(kind) = kind.filter(|&k| k != "default") {
                return Err(bad(format!(
                    "RoPE scaling {kind:?} is not supported (only plain RoPE is)"
                )));
            }
        }
        // transformers' class defaults when the key is absent.
        let rms_eps = float(&v["rms_norm_eps"], "rms_norm_eps")?.unwrap_or(match family {
            Family::Bitnet => 1e-5,
            Family::Llama => 1e-6,
        });
        let activation = match v["hidden_act"].as_str() {
            None => family.default_activation(),
            Some("relu2") => Activation::Relu2,
            Some("silu") => Activation::Silu,
            Some(other) => {
                return Err(bad(format!(
                    "hidden_act {other:?} is not supported (relu2 and silu are)"
                )))
            }
        };
        for key in ["attention_bias", "mlp_bias"] {
            if v[key].as_bool() == Some(true) {
                return Err(bad(format!("{key} is true; biases are not supported")));
            }
        }
        let q = &v["quantization_config"];
        let bitnet_quant = match q["quant_method"].as_str() {
            None => false,
            Some("bitnet") => true,
            Some(other) => {
                return Err(bad(format!(
                    "quantization_config.quant_method {other:?} is not supported (bitnet is)"
                )))
            }
        };
        let scale_use = match q["linear_class"].as_str() {
            None | Some("bitlinear") => ScaleUse::Divide,
            Some("autobitlinear") => ScaleUse::Multiply,
            Some(other) => {
                return Err(bad(format!(
                    "quantization_config.linear_class {other:?} is not bitlinear or autobitlinear"
                )))
            }
        };
        let id = |x: &Value, key: &str| -> Result<Option<u32>, ConvertError> {
            let first = match x {
                Value::Array(a) => a.first().unwrap_or(&Value::Null),
                x => x,
            };
            match first {
                Value::Null => Ok(None),
                x => match x.as_u64() {
                    Some(n) if (n as usize) < vocab => Ok(Some(n as u32)),
                    _ => Err(bad(format!(
                        "{key:?} = {x} is not a token id below vocab_size {vocab}"
                    ))),
                },
            }
        };
        Ok(HfConfig {
            family,
            hidden,
            layers,
            heads,
            kv_heads,
            head_dim,
            ffn,
            vocab,
            ctx,
            rope_theta,
            rms_eps,
            activation,
            // BitNetConfig's and LlamaConfig's class default is untied.
            tied: v["tie_word_embeddings"].as_bool().unwrap_or(false),
            bitnet_quant,
            scale_use,
            bos: id(&v["bos_token_id"], "bos_token_id")?,
            eos: id(&v["eos_token_id"], "eos_token_id")?,
            pad: id(&v["pad_token_id"], "pad_token_id")?,
        })
    }
}

/// One tensor of a shard: a view into its memory map.
#[derive(Debug, Clone)]
pub(super) struct HfTensor<'a> {
    pub name: String,
    pub dtype: Dtype,
    /// PyTorch order: `[rows, cols]` for a matrix.
    pub shape: Vec<usize>,
    pub data: &'a [u8],
    pub file: &'a Path,
}

impl HfTensor<'_> {
    /// Whether the data is F32, F16 or BF16.
    pub fn is_float(&self) -> bool {
        matches!(self.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16)
    }

    /// `self.data[start..start + out.len()]` (in elements) as f32.
    ///
    /// # Panics
    /// If the dtype is not F32, F16 or BF16 (callers check [`HfTensor::is_float`]).
    pub fn read_f32(&self, start: usize, out: &mut [f32]) {
        let size = self.dtype.bitsize() / 8;
        let bytes = &self.data[start * size..(start + out.len()) * size];
        match self.dtype {
            Dtype::F32 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes(c.try_into().expect("4 bytes"));
                }
            }
            Dtype::F16 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = bitnet_kernels::format::f16_to_f32(u16::from_le_bytes([c[0], c[1]]));
                }
            }
            Dtype::BF16 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
                }
            }
            other => unreachable!("read_f32 on {other}"),
        }
    }

    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The memory-mapped `*.safetensors` files of a checkpoint directory.
pub(super) struct Shards {
    files: Vec<(PathBuf, memmap2::Mmap)>,
}

impl Shards {
    /// Maps every `*.safetensors` file in `dir` (read-only).
    pub fn open(dir: &Path) -> Result<Shards, ConvertError> {
        let entries = std::fs::read_dir(dir).map_err(|e| ConvertError::io(dir, e))?;
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| ConvertError::io(dir, e))?.path();
            if path.extension().is_some_and(|e| e == "safetensors") {
                paths.push(path);
            }
        }
        if paths.is_empty() {
            return Err(ConvertError::Input(format!(
                "{}: no *.safetensors file",
                dir.display()
            )));
        }
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let file = File::open(&path).map_err(|e| ConvertError::io(&path, e))?;
            // SAFETY: a read-only private mapping of a checkpoint nobody is
            // expected to modify during the conversion; every offset into it
            // is validated by the safetensors parser before use.
            let map =
                unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ConvertError::io(&path, e))?;
            files.push((path, map));
        }
        Ok(Shards { files })
    }

    /// Every tensor of every shard by name (headers parsed and checked).
    pub fn tensors(&self) -> Result<HashMap<String, HfTensor<'_>>, ConvertError> {
        let mut all = HashMap::new();
        for (path, map) in &self.files {
            let st = SafeTensors::deserialize(map).map_err(|e| {
                ConvertError::Input(format!(
                    "{}: not a valid safetensors file: {e}",
                    path.display()
                ))
            })?;
            for (name, view) in st.iter() {
                let t = HfTensor {
                    name: name.to_string(),
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    data: view.data(),
                    file: path,
                };
                if let Some(prev) = all.insert(name.to_string(), t) {
                    return Err(ConvertError::Input(format!(
                        "tensor {name:?} appears in both {} and {}",
                        prev.file.display(),
                        path.display()
                    )));
                }
            }
        }
        Ok(all)
    }
}

/// `tokenizer_config.json`'s chat template (a string, or the `default` of a
/// list of named templates), else `chat_template.jinja`'s text.
pub(super) fn chat_template(dir: &Path) -> Result<Option<String>, ConvertError> {
    let config = dir.join("tokenizer_config.json");
    if config.exists() {
        let v = read_json(&config)?;
        match &v["chat_template"] {
            Value::String(s) => return Ok(Some(s.clone())),
            Value::Array(list) => {
                let default = list
                    .iter()
                    .find(|t| t["name"] == "default")
                    .and_then(|t| t["template"].as_str());
                if let Some(t) = default {
                    return Ok(Some(t.to_string()));
                }
            }
            _ => {}
        }
    }
    let jinja = dir.join("chat_template.jinja");
    if jinja.exists() {
        return std::fs::read_to_string(&jinja)
            .map(Some)
            .map_err(|e| ConvertError::io(&jinja, e));
    }
    Ok(None)
}
