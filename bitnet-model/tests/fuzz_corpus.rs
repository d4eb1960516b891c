//! Every fuzz target replayed on its committed corpus (`fuzz/corpus/<target>/`:
//! seeds plus every minimized crash), through the same bodies cargo-fuzz
//! runs. `cargo test -p bitnet-model --test fuzz_corpus -- --ignored` rewrites
//! the generated seeds (from the shared fixtures and by hand).

mod common;

use bitnet_model::fuzz::{self, corpus_dir, replay_corpus};
use bitnet_model::gguf::{Gguf, GgufWriter, TensorType};
use std::path::{Path, PathBuf};

#[test]
fn kernel_differential_corpus() {
    replay_corpus("kernel_differential", fuzz::kernel_differential);
}

#[test]
fn gguf_parse_corpus() {
    replay_corpus("gguf_parse", fuzz::gguf_parse);
}

#[test]
fn gguf_load_model_corpus() {
    replay_corpus("gguf_load_model", fuzz::gguf_load_model);
}

#[test]
fn tokenizer_roundtrip_corpus() {
    replay_corpus("tokenizer_roundtrip", fuzz::tokenizer_roundtrip);
}

fn fixture(dir: &str, file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures")
        .join(dir)
        .join(file)
}

fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// A fixture's metadata with every array cut to its first 16 elements and
/// no tensors: a small valid file whose keys are a real model's.
fn fixture_metadata(path: &Path) -> Vec<u8> {
    let mut w = GgufWriter::new();
    common::copy_metadata(&Gguf::open(path).unwrap(), &mut w, 16);
    let mut out = Vec::new();
    w.write(&mut out, |_, _| Ok(())).unwrap();
    out
}

/// A hand-made file with one value of every metadata type (nested arrays
/// included) and one small tensor of every type the reader knows.
fn every_type() -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    let tensors: [(&str, &[u64], TensorType); 8] = [
        ("f32", &[4], TensorType::F32),
        ("f16", &[8, 2], TensorType::F16),
        ("bf16", &[2, 2, 2], TensorType::BF16),
        ("q8_0", &[32], TensorType::Q8_0),
        ("q6_k", &[256], TensorType::Q6K),
        ("tq1_0", &[256, 1], TensorType::Tq1_0),
        ("tq2_0", &[256, 1], TensorType::Tq2_0),
        ("i2_s", &[128, 1], TensorType::I2S),
    ];
    b.extend((tensors.len() as u64).to_le_bytes());
    let s = |b: &mut Vec<u8>, s: &str| {
        b.extend((s.len() as u64).to_le_bytes());
        b.extend(s.as_bytes());
    };
    let kv: Vec<(&str, u32, Vec<u8>)> = vec![
        ("u8", 0, vec![7]),
        ("i8", 1, vec![0xf9]),
        ("u16", 2, 700u16.to_le_bytes().to_vec()),
        ("i16", 3, (-700i16).to_le_bytes().to_vec()),
        ("u32", 4, 70_000u32.to_le_bytes().to_vec()),
        ("i32", 5, (-70_000i32).to_le_bytes().to_vec()),
        ("f32", 6, 0.5f32.to_le_bytes().to_vec()),
        ("bool", 7, vec![1]),
        ("str", 8, {
            let mut v = Vec::new();
            s(&mut v, "héllo");
            v
        }),
        ("u64", 10, 7u64.to_le_bytes().to_vec()),
        ("i64", 11, (-7i64).to_le_bytes().to_vec()),
        ("f64", 12, 0.25f64.to_le_bytes().to_vec()),
        ("general.alignment", 4, 64u32.to_le_bytes().to_vec()),
        ("arr.u8", 9, {
            let mut v = 0u32.to_le_bytes().to_vec();
            v.extend(3u64.to_le_bytes());
            v.extend([1, 2, 3]);
            v
        }),
        ("arr.str", 9, {
            let mut v = 8u32.to_le_bytes().to_vec();
            v.extend(2u64.to_le_bytes());
            s(&mut v, "a");
            s(&mut v, "bc");
            v
        }),
        ("arr.arr.f32", 9, {
            let mut v = 9u32.to_le_bytes().to_vec();
            v.extend(2u64.to_le_bytes());
            for n in [1u64, 2] {
                v.extend(6u32.to_le_bytes());
                v.extend(n.to_le_bytes());
                (0..n).for_each(|i| v.extend((i as f32).to_le_bytes()));
            }
            v
        }),
    ];
    b.extend((kv.len() as u64).to_le_bytes());
    for (k, ty, v) in &kv {
        s(&mut b, k);
        b.extend(ty.to_le_bytes());
        b.extend(v);
    }
    let mut offset = 0u64;
    for (name, dims, ty) in &tensors {
        s(&mut b, name);
        b.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| b.extend(d.to_le_bytes()));
        b.extend(ty.id().to_le_bytes());
        b.extend(offset.to_le_bytes());
        offset += ty.byte_size(dims).unwrap().div_ceil(64) * 64;
    }
    b.resize(b.len().div_ceil(64) * 64 + offset as usize, 0);
    b
}

#[test]
#[ignore = "rewrites the committed seed corpora"]
fn regenerate_seeds() {
    // gguf_parse: a slice of a real file, a real file's metadata, every type,
    // and headerless input (the body adds the header).
    let i2s = std::fs::read(fixture("tiny-b158", "model-i2s.gguf")).unwrap();
    write_seed("gguf_parse", "fixture-b158-first-4k", &i2s[..4096]);
    for dir in ["tiny-b158", "tiny-llama"] {
        let meta = fixture_metadata(&fixture(dir, "model-tq1.gguf"));
        write_seed("gguf_parse", &format!("fixture-{dir}-metadata"), &meta);
    }
    write_seed("gguf_parse", "every-type", &every_type());
    let mut headerless = vec![1u8, 1];
    headerless.extend(4u64.to_le_bytes());
    headerless.extend(b"name");
    headerless.extend(8u32.to_le_bytes());
    headerless.extend(1u64.to_le_bytes());
    headerless.extend(b"x");
    headerless.extend(1u64.to_le_bytes());
    headerless.extend(b"t");
    headerless.extend(1u32.to_le_bytes());
    headerless.extend(4u64.to_le_bytes());
    headerless.extend(0u32.to_le_bytes());
    headerless.extend(0u64.to_le_bytes());
    headerless.extend([0u8; 40]);
    write_seed("gguf_parse", "headerless-1kv-1tensor", &headerless);

    // gguf_load_model: input runs out early, so the rest of the description
    // takes its undamaged defaults: one seed per architecture and tensor type.
    for (arch, name) in ["bitnet-b1.58", "llama", "bitnet"].iter().enumerate() {
        for (ternary, tname) in ["i2s", "tq2", "tq1"].iter().enumerate() {
            // arch, ternary type, norm type, embedding type, hidden (TQ
            // blocks need 256).
            let seed = [arch as u8, ternary as u8, 0, 0, (ternary > 0) as u8];
            write_seed("gguf_load_model", &format!("{name}-{tname}"), &seed);
        }
    }
    // Every embedding type (F16, F32, BF16, Q8_0, Q6_K; I2_S is refused).
    for embed in 1..6u8 {
        write_seed(
            "gguf_load_model",
            &format!("embedding-{embed}"),
            &[0, 0, 0, embed],
        );
    }

    // tokenizer_roundtrip: the fixtures' texts, then hand-made edge cases.
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tiny-b158", "cases.json")).unwrap())
            .unwrap();
    for (i, case) in cases["tokenizer_cases"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        // The first byte picks the tokenizer.
        let mut seed = vec![i as u8 % 4];
        seed.extend(case["text"].as_str().unwrap().as_bytes());
        write_seed("tokenizer_roundtrip", &format!("fixture-{i:02}"), &seed);
    }
    let hand: [(&str, &[u8]); 6] = [
        (
            "specials",
            b"<|begin_of_text|>a<|end|>b<|end_of_text|><|eot_id|><think>the</think>",
        ),
        ("prefix-specials", b"<|end<|end|>_of_text|><|e<|<|eot_id"),
        (
            "invalid-utf8",
            b"caf\xc3\xa9 \xc3 \xe4\xb8 \xf0\x9f\x99\x82 \xff\xfe",
        ),
        ("spm-space", "▁the ▁▁x".as_bytes()),
        ("merges", b"the the thing 123123 1234 it's   \n\n\n"),
        ("combining", "e\u{301}e\u{301}\u{301} 中中🙂🙂".as_bytes()),
    ];
    for (name, bytes) in hand {
        for which in 0..4u8 {
            let seed: Vec<u8> = [which].iter().chain(bytes).copied().collect();
            write_seed("tokenizer_roundtrip", &format!("{name}-{which}"), &seed);
        }
    }
}
