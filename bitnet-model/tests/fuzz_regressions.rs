//! Bugs found by the fuzz targets (and by reading the code while writing
//! them), each replayed as the smallest input that showed it. The fuzzers'
//! own crash inputs also sit in `fuzz/corpus/<target>/`, which
//! `tests/fuzz_corpus.rs` replays.

mod common;

use common::patch_u32;

use bitnet_model::gguf::{Gguf, GgufError, GgufWriter, TensorType};
use bitnet_model::tokenizer::MAX_PROMPT_BYTES;
use bitnet_model::{KvCache, KvType, Model, ModelError, Tokenizer};
use std::io::Write;
use std::path::PathBuf;

fn fixture(file: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/tiny-b158");
    std::fs::read(root.join(file)).expect("shared fixtures")
}

/// gguf_load_model, `oom-a53817ec…` (in the corpus): `block_count` near
/// `u32::MAX` made `Model::from_gguf` reserve room for that many layers
/// (9 GB) before finding the second one missing; the allocation aborted.
#[test]
fn absurd_block_count_is_a_missing_tensor_not_an_allocation() {
    let mut b = fixture("model-i2s.gguf");
    patch_u32(&mut b, "bitnet-b1.58.block_count", u32::MAX);
    let e = Model::from_gguf(Gguf::from_bytes(b).unwrap()).unwrap_err();
    assert!(
        matches!(&e, ModelError::Gguf(GgufError::MissingTensor(n)) if n.starts_with("blk.3.")),
        "{e}"
    );
}

/// Found reading the reader: an I2_S tensor's size is its codes plus a
/// 32-byte tail, and that addition overflowed (a panic with overflow
/// checks, a wrapped tiny size without) for `[128, 2^59 − 1]`.
#[test]
fn i2s_size_overflow_is_a_shape_error() {
    let name = "w";
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(1u64.to_le_bytes()); // tensors
    b.extend(0u64.to_le_bytes()); // metadata
    b.extend((name.len() as u64).to_le_bytes());
    b.extend(name.as_bytes());
    b.extend(2u32.to_le_bytes());
    b.extend(128u64.to_le_bytes());
    b.extend(((1u64 << 59) - 1).to_le_bytes());
    b.extend(36u32.to_le_bytes()); // I2_S
    b.extend(0u64.to_le_bytes());
    b.resize(96, 0);
    let e = Gguf::from_bytes(b).unwrap_err();
    assert!(
        matches!(&e, GgufError::BadShape { tensor, .. } if tensor == name),
        "{e}"
    );
}

/// The fixture with one more tensor: `blk.0.attn_q.scale`, the separate
/// per-tensor multiplier of 1bitLLM `bitnet` files, holding `mult`.
fn fixture_with_multiplier(mult: f32) -> Vec<u8> {
    let g = Gguf::from_bytes(fixture("model-i2s.gguf")).unwrap();
    let mut w = GgufWriter::new();
    common::copy_metadata(&g, &mut w, usize::MAX);
    for t in g.tensors() {
        w.tensor(&t.name, &t.dims, t.ty);
    }
    w.tensor("blk.0.attn_q.scale", &[1], TensorType::F32);
    let mut out = Vec::new();
    w.write(&mut out, |i, out| match g.tensors().get(i) {
        Some(t) => out.write_all(&g.bytes()[t.data.clone()]),
        None => out.write_all(&mult.to_le_bytes()),
    })
    .unwrap();
    out
}

/// gguf_load_model, `crash-e9227c11…` (in the corpus): a NaN multiplier
/// passed the scale checks, which ran before it was applied, and the
/// kernel view's own check then panicked on the first forward step.
/// Infinite and zero multipliers are refused at load too, and the scaled
/// result goes through the kernel view's own check there (an overflow).
#[test]
fn a_bad_scale_multiplier_is_named_at_load() {
    let load =
        |mult: f32| Model::from_gguf(Gguf::from_bytes(fixture_with_multiplier(mult)).unwrap());
    for mult in [f32::NAN, f32::INFINITY, 0.0] {
        let e = load(mult).err().unwrap_or_else(|| panic!("{mult} loaded"));
        assert!(e.to_string().contains("blk.0.attn_q."), "{mult}: {e}");
    }
    // A sane multiplier loads and scales the projection.
    load(0.5).unwrap();
}

/// A KV cache for a context the file claims but the machine cannot hold is
/// an error before anything is allocated (the allocation used to abort).
#[test]
fn kv_cache_beyond_memory_is_an_error() {
    let model = Model::from_gguf(Gguf::from_bytes(fixture("model-i2s.gguf")).unwrap()).unwrap();
    let mut config = model.config.clone();
    config.ctx = u32::MAX as usize;
    let e = KvCache::new(&config, config.ctx, KvType::F32).unwrap_err();
    assert!(
        matches!(e, ModelError::OutOfMemory { .. }) && e.to_string().contains("KV cache"),
        "{e}"
    );
    // A context that fits is still fine.
    KvCache::new(&model.config, 64, KvType::F16).unwrap();
}

/// Found reading the tokenizer: merging rescanned every pair after each
/// merge, so one long word (BPE) or a long SentencePiece prompt took
/// quadratic time: a 1 MiB word would never finish. The limit is 1 MiB
/// and text that long now tokenizes in about a second.
#[test]
fn prompt_limit_and_long_words() {
    let g = Gguf::from_bytes(fixture("model-i2s.gguf")).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let word = "the".repeat(MAX_PROMPT_BYTES / 3);
    let ids = tok.encode_prompt(&word, false).unwrap();
    assert!(
        ids.len() > 1 && ids.len() < word.len(),
        "merged: {}",
        ids.len()
    );
    assert_eq!(tok.decode(&ids, false), word);
    let e = tok
        .encode_prompt(&"a".repeat(MAX_PROMPT_BYTES + 1), false)
        .unwrap_err();
    assert!(
        matches!(e, ModelError::PromptTooLong { bytes, max } if bytes == max + 1),
        "{e}"
    );
    assert!(e.to_string().contains("limit"), "{e}");
}
