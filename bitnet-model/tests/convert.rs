//! `convert` against the fixtures: their Hugging Face checkpoints must
//! become their GGUF files (same tensors, same tokenizer) and models that
//! meet the reference logits; master weights must ternarize to the same
//! model; and every kind of bad checkpoint must be a clear error that
//! leaves no file behind.

mod common;

use bitnet_model::convert::{convert, ConvertOptions, EmbeddingType, TernaryFormat, TernarySource};
use bitnet_model::gguf::{partial_path, Gguf, TensorType};
use bitnet_model::{KvType, Model, Tokenizer};
use common::{cases, check_case, fixtures};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FORMATS: [TernaryFormat; 3] = [TernaryFormat::I2s, TernaryFormat::Tq2, TernaryFormat::Tq1];

/// A fresh, empty directory for one test, removed when the test ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bitnet-convert-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn opts(format: TernaryFormat) -> ConvertOptions {
    ConvertOptions {
        format,
        ..ConvertOptions::default()
    }
}

fn fixture_file(dir: &str, format: TernaryFormat) -> PathBuf {
    let name = match format {
        TernaryFormat::I2s => "model-i2s.gguf",
        TernaryFormat::Tq2 => "model-tq2.gguf",
        TernaryFormat::Tq1 => "model-tq1.gguf",
    };
    fixtures().join(dir).join(name)
}

/// Every tensor of `ours` equals `reference`'s: name, shape, type and bytes.
fn assert_same_tensors(ours: &Gguf, reference: &Gguf, what: &str) {
    assert_eq!(ours.tensors().len(), reference.tensors().len(), "{what}");
    for t in reference.tensors() {
        let (info, data) = ours
            .tensor(&t.name)
            .unwrap_or_else(|| panic!("{what}: no {}", t.name));
        assert_eq!((&info.dims, info.ty), (&t.dims, t.ty), "{what}: {}", t.name);
        assert!(
            data == &reference.bytes()[t.data.clone()],
            "{what}: {} differs",
            t.name
        );
    }
}

#[test]
fn fixture_checkpoints_become_the_fixture_models_in_every_format() {
    let tmp = scratch("fixtures");
    for dir in ["tiny-b158", "tiny-llama"] {
        let (json, cases) = cases(dir);
        for format in FORMATS {
            let what = format!("{dir} {format:?}");
            let out = tmp.join(format!("{dir}-{format:?}.gguf"));
            let done = convert(&fixtures().join(dir).join("hf"), &out, opts(format)).unwrap();
            assert_eq!(done.arch, json["arch"].as_str().unwrap(), "{what}");
            assert_eq!(done.source, TernarySource::Packed);
            assert!(!partial_path(&out).exists());

            let ours = Gguf::open(&out).unwrap();
            let reference = Gguf::open(fixture_file(dir, format)).unwrap();
            assert_same_tensors(&ours, &reference, &what);
            for key in [
                "tokenizer.ggml.tokens",
                "tokenizer.ggml.merges",
                "tokenizer.ggml.token_type",
            ] {
                assert_eq!(
                    ours.get(key).is_some(),
                    reference.get(key).is_some(),
                    "{key}"
                );
            }
            assert_eq!(
                ours.get_str_array("tokenizer.ggml.tokens").unwrap(),
                reference.get_str_array("tokenizer.ggml.tokens").unwrap()
            );
            assert_eq!(
                ours.get_str_array("tokenizer.ggml.merges").unwrap(),
                reference.get_str_array("tokenizer.ggml.merges").unwrap()
            );
            for key in [
                "tokenizer.ggml.bos_token_id",
                "tokenizer.ggml.eos_token_id",
                "tokenizer.ggml.padding_token_id",
                "general.file_type",
            ] {
                assert_eq!(
                    ours.get_u64(key).unwrap(),
                    reference.get_u64(key).unwrap(),
                    "{key}"
                );
            }
            assert_eq!(
                ours.get_u64("tokenizer.ggml.eot_token_id").unwrap(),
                json["eot_id"].as_u64()
            );
            assert_eq!(
                ours.get_str("tokenizer.ggml.pre").unwrap(),
                Some(json["config"]["pre"].as_str().unwrap())
            );

            let tok = Tokenizer::from_gguf(&ours).unwrap();
            let model = Model::load(&out).unwrap();
            assert_eq!(
                model.config,
                Model::load(fixture_file(dir, format)).unwrap().config
            );
            for (ci, case) in cases.iter().enumerate() {
                let prompt = json["cases"][ci]["prompt"].as_str().unwrap();
                assert_eq!(
                    tok.encode_prompt(prompt, false).unwrap(),
                    case.ids,
                    "{what} case {ci}"
                );
                check_case(&format!("{what} case {ci}"), &model, KvType::F32, case);
            }
        }
    }
}

#[test]
fn the_bitnet_chat_template_is_written_for_2b_4t_checkpoints() {
    let tmp = scratch("template");
    let out = tmp.join("b158.gguf");
    convert(
        &fixtures().join("tiny-b158/hf"),
        &out,
        ConvertOptions::default(),
    )
    .unwrap();
    let g = Gguf::open(&out).unwrap();
    let t = g.get_str("tokenizer.chat_template").unwrap().unwrap();
    assert!(
        t.contains("capitalize + ': '") && t.contains("'Assistant: '"),
        "{t}"
    );

    // A checkpoint's own template wins.
    let dir = copy_checkpoint("tiny-llama", &tmp.join("own-template"));
    std::fs::write(
        dir.join("tokenizer_config.json"),
        json!({"chat_template": "{{ messages }}<|start_header_id|>"}).to_string(),
    )
    .unwrap();
    let out = tmp.join("llama.gguf");
    convert(&dir, &out, ConvertOptions::default()).unwrap();
    let g = Gguf::open(&out).unwrap();
    assert_eq!(
        g.get_str("tokenizer.chat_template").unwrap(),
        Some("{{ messages }}<|start_header_id|>")
    );
}

/// A checkpoint's tensors, editable: name → (dtype, shape, bytes).
type Tensors = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

fn read_tensors(path: &Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                (v.dtype(), v.shape().to_vec(), v.data().to_vec()),
            )
        })
        .collect()
}

fn write_tensors(path: &Path, tensors: &Tensors) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, (d, s, b))| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Copies a fixture's checkpoint into `dir`.
fn copy_checkpoint(fixture: &str, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixtures().join(fixture).join("hf").join(f), dir.join(f)).unwrap();
    }
    dir.to_path_buf()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The trits of a packed `[M/4, K]` uint8 projection, as an `M × K` matrix
/// (written out here independently of the converter).
fn unpack(shape: &[usize], bytes: &[u8]) -> Vec<i8> {
    let (quarter, k) = (shape[0], shape[1]);
    let mut trits = vec![0i8; 4 * quarter * k];
    for (i, &b) in bytes.iter().enumerate() {
        let (r, c) = (i / k, i % k);
        for block in 0..4 {
            trits[(block * quarter + r) * k + c] = ((b >> (2 * block)) & 3) as i8 - 1;
        }
    }
    trits
}

/// The fixture checkpoint with every packed projection replaced by float
/// master weights that absmean maps back to the same trits and, exactly, the
/// same scale `s`: zeros stay 0, and the non-zero trits become `±s` or `±2s`
/// in the proportion that makes `mean|W| = s` (both round to ±1 after
/// division by `s`). Needs at least half the trits non-zero.
fn master_weights(fixture: &str, dir: &Path, dtype: Dtype) -> PathBuf {
    copy_checkpoint(fixture, dir);
    let mut tensors = read_tensors(&dir.join("model.safetensors"));
    let packed: Vec<String> = tensors
        .iter()
        .filter(|(_, (d, _, _))| *d == Dtype::U8)
        .map(|(n, _)| n.clone())
        .collect();
    for name in packed {
        let (_, shape, bytes) = tensors.remove(&name).unwrap();
        let (_, _, scale) = tensors.remove(&format!("{name}_scale")).unwrap();
        let s = 1.0 / f32s(&scale)[0];
        let trits = unpack(&shape, &bytes);
        let nonzero = trits.iter().filter(|&&t| t != 0).count();
        // Σ|W| = s·(ones + 2·twos) = s·n with ones + twos = nonzero.
        let mut twos = trits.len().checked_sub(nonzero).unwrap();
        assert!(twos <= nonzero, "{name}: too few non-zero trits");
        let w = trits.iter().map(|&t| {
            let double = t != 0 && twos > 0;
            twos -= double as usize;
            t as f32 * if double { 2.0 * s } else { s }
        });
        let data: Vec<u8> = match dtype {
            Dtype::F32 => w.flat_map(f32::to_le_bytes).collect(),
            Dtype::BF16 => w
                .flat_map(|v| (((v.to_bits() + 0x8000) >> 16) as u16).to_le_bytes())
                .collect(),
            other => unreachable!("{other}"),
        };
        tensors.insert(name, (dtype, vec![shape[0] * 4, shape[1]], data));
    }
    write_tensors(&dir.join("model.safetensors"), &tensors);
    dir.to_path_buf()
}

#[test]
fn master_weights_ternarize_with_absmean_to_the_same_model() {
    let tmp = scratch("master");
    for dir in ["tiny-b158", "tiny-llama"] {
        let (_, cases) = cases(dir);
        let hf = master_weights(dir, &tmp.join(dir), Dtype::F32);
        for format in FORMATS {
            let out = tmp.join(format!("{dir}-{format:?}.gguf"));
            let done = convert(&hf, &out, opts(format)).unwrap();
            assert_eq!(done.source, TernarySource::MasterWeights);
            let ours = Gguf::open(&out).unwrap();
            let reference = Gguf::open(fixture_file(dir, format)).unwrap();
            assert_same_tensors(
                &ours,
                &reference,
                &format!("{dir} {format:?} master weights"),
            );
        }
        let model = Model::load(tmp.join(format!("{dir}-I2s.gguf"))).unwrap();
        for (ci, case) in cases.iter().enumerate() {
            check_case(
                &format!("{dir} master weights case {ci}"),
                &model,
                KvType::F32,
                case,
            );
        }
    }
    // Float projections in a Llama checkpoint that does not say it is ternary.
    let llama = tmp.join("tiny-llama");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(llama.join("config.json")).unwrap()).unwrap();
    config
        .as_object_mut()
        .unwrap()
        .remove("quantization_config");
    std::fs::write(llama.join("config.json"), config.to_string()).unwrap();
    expect_error(
        &llama,
        &tmp.join("plain-llama.gguf"),
        ConvertOptions::default(),
        "no bitnet quantization_config: this is not a ternary Llama checkpoint",
    );

    // BF16 master weights: the same trits; the scales move by bf16 rounding.
    let bf16 = master_weights("tiny-b158", &tmp.join("bf16"), Dtype::BF16);
    let out = tmp.join("bf16.gguf");
    convert(&bf16, &out, ConvertOptions::default()).unwrap();
    let ours = Gguf::open(&out).unwrap();
    let reference = Gguf::open(fixture_file("tiny-b158", TernaryFormat::I2s)).unwrap();
    for t in reference
        .tensors()
        .iter()
        .filter(|t| t.ty == TensorType::I2S)
    {
        let (_, x) = ours.tensor(&t.name).unwrap();
        let y = &reference.bytes()[t.data.clone()];
        let codes = x.len() - 32;
        assert!(x[..codes] == y[..codes], "bf16 {}: codes differ", t.name);
        let (sx, sy) = (f32s(&x[codes..codes + 4])[0], f32s(&y[codes..codes + 4])[0]);
        assert!(
            (sx - sy).abs() <= sy / 128.0,
            "bf16 {}: scale {sx} vs {sy}",
            t.name
        );
    }
}

#[test]
fn an_untied_lm_head_becomes_output_weight_and_a_stored_tied_one_is_ignored() {
    let tmp = scratch("head");
    let (_, cases) = cases("tiny-b158");
    let copy_embedding = |t: &mut Tensors| {
        let e = t["model.embed_tokens.weight"].clone();
        t.insert("lm_head.weight".into(), e);
    };
    let untied = variant(
        &tmp,
        "untied",
        |c| c["tie_word_embeddings"] = json!(false),
        copy_embedding,
    );
    let out = tmp.join("untied.gguf");
    convert(&untied, &out, ConvertOptions::default()).unwrap();
    let g = Gguf::open(&out).unwrap();
    assert_eq!(g.tensor("output.weight").unwrap().0.ty, TensorType::F16);
    let model = Model::load(&out).unwrap();
    for (ci, case) in cases.iter().enumerate() {
        check_case(&format!("untied head case {ci}"), &model, KvType::F32, case);
    }
    let tied = variant(&tmp, "tied", |_| {}, copy_embedding);
    let out = tmp.join("tied.gguf");
    convert(&tied, &out, ConvertOptions::default()).unwrap();
    assert!(Gguf::open(&out).unwrap().tensor("output.weight").is_none());
    // Untied without a head is an error.
    let headless = variant(
        &tmp,
        "headless",
        |c| c["tie_word_embeddings"] = json!(false),
        |_| {},
    );
    expect_error(
        &headless,
        &tmp.join("headless.gguf"),
        ConvertOptions::default(),
        "no tensor \"lm_head.weight\"",
    );
}

#[test]
fn quantized_embeddings_hold_the_checkpoint_values() {
    let tmp = scratch("embd");
    let hf = fixtures().join("tiny-b158/hf");
    let tensors = read_tensors(&hf.join("model.safetensors"));
    let embedding = f32s(&tensors["model.embed_tokens.weight"].2);
    let (_, cases) = cases("tiny-b158");
    for (embd, ty) in [(EmbeddingType::Q8_0, "Q8_0"), (EmbeddingType::Q6K, "Q6_K")] {
        let out = tmp.join(format!("{ty}.gguf"));
        let o = ConvertOptions {
            format: TernaryFormat::I2s,
            embedding: embd,
        };
        convert(&hf, &out, o).unwrap();
        let g = Gguf::open(&out).unwrap();
        let (info, data) = g.tensor("token_embd.weight").unwrap();
        assert_eq!(info.ty.name(), ty);
        if embd == EmbeddingType::Q8_0 {
            // Q8_0 decodes as d·q: every value within half a step (plus
            // what storing d in f16 moves the largest level by).
            for (x, block) in embedding.chunks_exact(32).zip(data.chunks_exact(34)) {
                let d =
                    bitnet_kernels::format::f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
                let exact = x.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                let bound = 0.5 * exact + 127.0 * (d - exact).abs() + 1e-9;
                for (&v, &q) in x.iter().zip(&block[2..]) {
                    assert!((q as i8 as f32 * d - v).abs() <= bound, "{v} → {q} × {d}");
                }
            }
        }
        // Through the model: quantization noise, amplified by the int8
        // activations of a random-weight model, stays an order of magnitude
        // below the logits' own size (a layout error would reach it).
        let model = Model::load(&out).unwrap();
        for case in &cases {
            let mut cache = bitnet_model::KvCache::new(&model.config, 64, KvType::F32).unwrap();
            let mut logits = Vec::new();
            model
                .forward(
                    &case.ids,
                    &mut cache,
                    bitnet_model::Logits::All,
                    &mut logits,
                )
                .unwrap();
            let mean = |v: &mut dyn Iterator<Item = f32>| v.sum::<f32>() / logits.len() as f32;
            let diff = mean(&mut logits.iter().zip(&case.logits).map(|(a, b)| (a - b).abs()));
            let size = mean(&mut case.logits.iter().map(|v| v.abs()));
            assert!(
                diff < 0.1 * size,
                "{ty}: mean |logit diff| {diff}, mean |logit| {size}"
            );
        }
    }
}

/// Converts `dir` expecting an error that contains `needle`, and checks that
/// neither the output nor its temporary file exists afterwards.
fn expect_error(dir: &Path, out: &Path, o: ConvertOptions, needle: &str) {
    let e = convert(dir, out, o).expect_err(needle).to_string();
    assert!(e.contains(needle), "expected {needle:?} in: {e}");
    assert!(!e.contains('\n'), "not one line: {e}");
    assert!(
        !out.exists() && !partial_path(out).exists(),
        "{needle}: file left behind"
    );
}

/// A fixture checkpoint with its config and tensors edited.
fn variant(
    tmp: &Path,
    name: &str,
    edit_config: impl FnOnce(&mut Value),
    edit_tensors: impl FnOnce(&mut Tensors),
) -> PathBuf {
    let dir = copy_checkpoint("tiny-b158", &tmp.join(name));
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    edit_config(&mut config);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut tensors = read_tensors(&dir.join("model.safetensors"));
    edit_tensors(&mut tensors);
    write_tensors(&dir.join("model.safetensors"), &tensors);
    dir
}

/// A BitNet checkpoint of any shape, random ternary weights (tiny-b158's tokenizer).
fn shaped_checkpoint(tmp: &Path, name: &str, hidden: usize, ffn: usize) -> PathBuf {
    let dir = variant(
        tmp,
        name,
        |c| {
            c["hidden_size"] = json!(hidden);
            c["intermediate_size"] = json!(ffn);
            c["num_hidden_layers"] = json!(1);
            c["num_attention_heads"] = json!(2);
            c["num_key_value_heads"] = json!(1);
        },
        |t| {
            t.clear();
            let mut seed = 1u32;
            let mut packed = |rows: usize, cols: usize| {
                let bytes = (0..rows / 4 * cols)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        (0..4).fold(0u8, |b, i| {
                            b | ((((seed >> (8 + 3 * i)) % 3) as u8) << (2 * i))
                        })
                    })
                    .collect();
                (Dtype::U8, vec![rows / 4, cols], bytes)
            };
            let floats = |shape: Vec<usize>, v: f32| {
                let n: usize = shape.iter().product();
                (
                    Dtype::F32,
                    shape,
                    (0..n).flat_map(|_| v.to_le_bytes()).collect(),
                )
            };
            let kv = hidden / 2;
            let l = "model.layers.0";
            for (p, m, k) in [
                ("self_attn.q_proj", hidden, hidden),
                ("self_attn.k_proj", kv, hidden),
                ("self_attn.v_proj", kv, hidden),
                ("self_attn.o_proj", hidden, hidden),
                ("mlp.gate_proj", ffn, hidden),
                ("mlp.up_proj", ffn, hidden),
                ("mlp.down_proj", hidden, ffn),
            ] {
                t.insert(format!("{l}.{p}.weight"), packed(m, k));
                t.insert(format!("{l}.{p}.weight_scale"), floats(vec![1], 40.0));
            }
            for (n, len) in [
                ("input_layernorm", hidden),
                ("post_attention_layernorm", hidden),
                ("self_attn.attn_sub_norm", hidden),
                ("mlp.ffn_sub_norm", ffn),
            ] {
                t.insert(format!("{l}.{n}.weight"), floats(vec![len], 1.0));
            }
            t.insert("model.norm.weight".into(), floats(vec![hidden], 1.0));
            t.insert(
                "model.embed_tokens.weight".into(),
                floats(vec![1024, hidden], 0.01),
            );
        },
    );
    dir
}

#[test]
fn shapes_a_format_cannot_hold_are_refused_before_writing() {
    let tmp = scratch("shapes");
    let out = tmp.join("out.gguf");
    // K = 128: I2_S holds it, the TQ formats (blocks of 256) cannot.
    let k128 = shaped_checkpoint(&tmp, "k128", 128, 256);
    convert(&k128, &out, ConvertOptions::default()).unwrap();
    Model::load(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    for format in [TernaryFormat::Tq2, TernaryFormat::Tq1] {
        expect_error(
            &k128,
            &out,
            opts(format),
            "128 inputs per row is not a multiple of 256",
        );
    }
    expect_error(
        &k128,
        &out,
        opts(TernaryFormat::Tq2),
        "(I2_S can hold it: --format i2s)",
    );
    expect_error(
        &k128,
        &out,
        ConvertOptions {
            format: TernaryFormat::I2s,
            embedding: EmbeddingType::Q6K,
        },
        "a Q6_K embedding needs the hidden size to be a multiple of 256; it is 128",
    );
    // K = 64 fits no format.
    let k64 = shaped_checkpoint(&tmp, "k64", 64, 128);
    expect_error(
        &k64,
        &out,
        opts(TernaryFormat::I2s),
        "64 inputs per row is not a multiple of 128, which I2_S needs",
    );
}

#[test]
fn bad_checkpoints_are_clear_errors_and_leave_no_file() {
    let tmp = scratch("bad");
    let out = tmp.join("out.gguf");
    let default = ConvertOptions::default();
    let none = |_: &mut Value| {};
    let keep = |_: &mut Tensors| {};
    let q = "model.layers.0.self_attn.q_proj.weight";

    // Missing files.
    expect_error(&tmp.join("nowhere"), &out, default, "config.json");
    for (file, needle) in [
        ("config.json", "config.json: No such file"),
        ("tokenizer.json", "tokenizer.json: No such file"),
        ("model.safetensors", "no *.safetensors file"),
    ] {
        let dir = copy_checkpoint("tiny-b158", &tmp.join(format!("no-{file}")));
        std::fs::remove_file(dir.join(file)).unwrap();
        expect_error(&dir, &out, default, needle);
    }

    // Config problems.
    for (name, edit, needle) in [
        (
            "arch",
            Box::new(|c: &mut Value| c["architectures"] = json!(["GPT2LMHeadModel"]))
                as Box<dyn FnOnce(&mut Value)>,
            "architecture \"GPT2LMHeadModel\" is not supported",
        ),
        (
            "no-arch",
            Box::new(|c: &mut Value| c["architectures"] = Value::Null),
            "\"architectures\" is missing",
        ),
        (
            "hidden",
            Box::new(|c: &mut Value| c["hidden_size"] = json!("wide")),
            "\"hidden_size\" = \"wide\" is not a positive integer",
        ),
        (
            "rope",
            Box::new(|c: &mut Value| c["rope_scaling"] = json!({"rope_type": "llama3"})),
            "RoPE scaling \"llama3\" is not supported",
        ),
        (
            "quant",
            Box::new(|c: &mut Value| c["quantization_config"]["quant_method"] = json!("gptq")),
            "quant_method \"gptq\" is not supported",
        ),
        (
            "act",
            Box::new(|c: &mut Value| c["hidden_act"] = json!("gelu")),
            "hidden_act \"gelu\" is not supported",
        ),
    ] {
        expect_error(&variant(&tmp, name, edit, keep), &out, default, needle);
    }
    let bad_json = copy_checkpoint("tiny-b158", &tmp.join("bad-json"));
    std::fs::write(bad_json.join("config.json"), "{ not json").unwrap();
    expect_error(&bad_json, &out, default, "config.json: not valid JSON");

    // Tensor problems found from the headers.
    type Edit = Box<dyn FnOnce(&mut Tensors)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "missing",
            Box::new(|t| drop(t.remove("model.layers.0.mlp.up_proj.weight"))),
            "the checkpoint has no tensor \"model.layers.0.mlp.up_proj.weight\"",
        ),
        (
            "extra",
            Box::new(|t| {
                t.insert(
                    "model.layers.0.mlp.bias".into(),
                    (Dtype::F32, vec![1], vec![0; 4]),
                );
            }),
            "tensor(s) the bitnet-b1.58 graph does not use, e.g. \"model.layers.0.mlp.bias\"",
        ),
        (
            "dtype",
            Box::new(move |t| {
                let w = t.get_mut(q).unwrap();
                *w = (Dtype::I32, vec![w.1[0], w.1[1] / 4], w.2.clone());
            }),
            "dtype I32 is neither packed ternary (U8) nor float master weights",
        ),
        (
            "scale-dtype",
            Box::new(|t| {
                *t.get_mut("model.layers.0.self_attn.q_proj.weight_scale")
                    .unwrap() = (Dtype::U8, vec![1], vec![1]);
            }),
            "dtype U8 shape [1], expected one float",
        ),
        (
            "scale-zero",
            Box::new(|t| {
                t.get_mut("model.layers.1.mlp.down_proj.weight_scale")
                    .unwrap()
                    .2 = vec![0; 4];
            }),
            "0 is not a positive finite scale",
        ),
        (
            "shape",
            Box::new(move |t| {
                let w = t.get_mut(q).unwrap();
                w.1 = vec![w.1[0] * 2, w.1[1] / 2];
            }),
            "packed shape [128, 128], expected [64, 256]",
        ),
        (
            "norm-dtype",
            Box::new(|t| {
                *t.get_mut("model.norm.weight").unwrap() = (Dtype::I32, vec![256], vec![0; 1024]);
            }),
            "tensor \"model.norm.weight\": dtype I32 is not F32, F16 or BF16",
        ),
        (
            "embedding-shape",
            Box::new(|t| {
                let e = t.get_mut("model.embed_tokens.weight").unwrap();
                e.1 = vec![512, 512];
            }),
            "shape [512, 512], expected [1024, 256]",
        ),
    ];
    for (name, edit, needle) in cases {
        expect_error(&variant(&tmp, name, none, edit), &out, default, needle);
    }

    // Values found bad while writing: the partial file is removed.
    let code3 = variant(&tmp, "code3", none, |t| {
        t.get_mut("model.layers.2.mlp.down_proj.weight").unwrap().2[5] = 0xff;
    });
    expect_error(&code3, &out, default, "packed code 3 is not a trit");
    let nan = variant(&tmp, "nan", none, |t| {
        let norm = t.get_mut("model.layers.1.mlp.ffn_sub_norm.weight").unwrap();
        norm.2[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    expect_error(&nan, &out, default, "row 0, column 2 is NaN");

    // Corrupt safetensors.
    let truncated = copy_checkpoint("tiny-b158", &tmp.join("truncated"));
    let st = truncated.join("model.safetensors");
    let len = std::fs::metadata(&st).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&st)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    expect_error(
        &truncated,
        &out,
        default,
        "model.safetensors: not a valid safetensors file",
    );
    let garbage = copy_checkpoint("tiny-b158", &tmp.join("garbage"));
    std::fs::write(
        garbage.join("model.safetensors"),
        b"\xff\xff\xff\xff\xff\xff\xff\xffgarbage",
    )
    .unwrap();
    expect_error(&garbage, &out, default, "not a valid safetensors file");

    // Tokenizer problems.
    for (name, edit, needle) in [
        (
            "unigram",
            Box::new(|t: &mut Value| t["model"]["type"] = json!("Unigram"))
                as Box<dyn FnOnce(&mut Value)>,
            "model type \"Unigram\" is not supported",
        ),
        (
            "pre",
            Box::new(|t: &mut Value| t["pre_tokenizer"] = json!({"type": "Whitespace"})),
            "is not supported (Llama 3's or GPT-2's byte-level split is)",
        ),
        (
            "id",
            Box::new(|t: &mut Value| t["added_tokens"][0]["id"] = json!(5000)),
            "has id 5000, outside the model's vocab_size 1024",
        ),
        (
            "merge",
            Box::new(|t: &mut Value| t["model"]["merges"][0] = json!(["zzz", "qqq"])),
            "merge 0 (\"zzz qqq\") names tokens outside the vocabulary",
        ),
    ] {
        let dir = copy_checkpoint("tiny-b158", &tmp.join(format!("tok-{name}")));
        let path = dir.join("tokenizer.json");
        let mut t: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut t);
        std::fs::write(&path, t.to_string()).unwrap();
        expect_error(&dir, &out, default, needle);
    }

    // A failed conversion leaves an existing output untouched.
    std::fs::write(&out, b"previous model").unwrap();
    assert!(convert(&code3, &out, default).is_err());
    assert_eq!(std::fs::read(&out).unwrap(), b"previous model");
    assert!(!partial_path(&out).exists());
}
