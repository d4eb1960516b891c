//! Damaged model files: every case is a typed error that names the key or
//! tensor at fault — never a panic, never a silently wrong model.

mod common;

use common::{patch_f32, patch_u32};

use bitnet_model::gguf::Gguf;
use bitnet_model::{Model, ModelError};
use std::path::PathBuf;

fn fixture(file: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/tiny-b158");
    std::fs::read(root.join(file)).expect("shared fixtures")
}

/// Replaces the first occurrence of `from` with `to` (same length).
fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    bytes[at..at + to.len()].copy_from_slice(to);
}

fn load(bytes: Vec<u8>) -> Result<Model, ModelError> {
    Model::from_gguf(Gguf::from_bytes(bytes)?)
}

fn error(bytes: Vec<u8>) -> String {
    match load(bytes) {
        Ok(_) => panic!("a damaged model loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_fixture_loads() {
    load(fixture("model-i2s.gguf")).unwrap();
}

#[test]
fn missing_or_inconsistent_metadata_is_named() {
    let mut b = fixture("model-i2s.gguf");
    patch(
        &mut b,
        b"bitnet-b1.58.embedding_length",
        b"bitnet-b1.58.embedding_lengtX",
    );
    let e = error(b);
    assert!(
        e.contains("bitnet-b1.58.embedding_length") && e.contains("missing"),
        "{e}"
    );

    let mut b = fixture("model-i2s.gguf");
    patch_u32(&mut b, "bitnet-b1.58.attention.head_count", 3);
    let e = error(b);
    assert!(e.contains("head_count 3"), "{e}");

    let mut b = fixture("model-i2s.gguf");
    patch_u32(&mut b, "bitnet-b1.58.attention.head_count_kv", 3);
    let e = error(b);
    assert!(e.contains("head_count_kv 3"), "{e}");

    let mut b = fixture("model-i2s.gguf");
    patch(
        &mut b,
        b"general.architecture\x08\x00\x00\x00\x0c\x00\x00\x00\x00\x00\x00\x00bitnet-b1.58",
        b"general.architecture\x08\x00\x00\x00\x0c\x00\x00\x00\x00\x00\x00\x00bitnet-x1.58",
    );
    let e = error(b);
    assert!(
        e.contains("bitnet-x1.58") && e.contains("not supported"),
        "{e}"
    );

    let mut b = fixture("model-i2s.gguf");
    patch_u32(&mut b, "bitnet-b1.58.feed_forward_length", 512);
    let e = error(b);
    assert!(
        e.contains("ffn_gate") && e.contains("expected [256, 512]"),
        "{e}"
    );
}

#[test]
fn missing_or_misshaped_tensors_are_named() {
    let mut b = fixture("model-i2s.gguf");
    patch(
        &mut b,
        b"blk.1.ffn_sub_norm.weight",
        b"blk.1.ffn_sub_norm.weighX",
    );
    let e = error(b);
    assert!(
        e.contains("blk.1.ffn_sub_norm.weight") && e.contains("missing"),
        "{e}"
    );

    let mut b = fixture("model-i2s.gguf");
    patch(&mut b, b"output_norm.weight", b"output_norm.weighX");
    let e = error(b);
    assert!(e.contains("output_norm.weight"), "{e}");

    // A norm weight holding NaN.
    let g = Gguf::from_bytes(fixture("model-i2s.gguf")).unwrap();
    let (_, data) = g.require_tensor("blk.0.attn_norm.weight").unwrap();
    let offset = data.as_ptr() as usize - g.bytes().as_ptr() as usize;
    let mut b = fixture("model-i2s.gguf");
    b[offset..offset + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = error(b);
    assert!(
        e.contains("blk.0.attn_norm.weight") && e.contains("not finite"),
        "{e}"
    );

    // An I2_S scale of zero.
    let (info, data) = g.require_tensor("blk.0.attn_q.weight").unwrap();
    let tail = data.as_ptr() as usize - g.bytes().as_ptr() as usize
        + (info.dims[0] * info.dims[1] / 4) as usize;
    let mut b = fixture("model-i2s.gguf");
    b[tail..tail + 4].copy_from_slice(&0f32.to_le_bytes());
    let e = error(b);
    assert!(
        e.contains("blk.0.attn_q.weight") && e.contains("zero"),
        "{e}"
    );
}

#[test]
fn bad_tq_block_scales_are_named() {
    let g = Gguf::from_bytes(fixture("model-tq2.gguf")).unwrap();
    let (_, data) = g.require_tensor("blk.2.ffn_down.weight").unwrap();
    let offset = data.as_ptr() as usize - g.bytes().as_ptr() as usize;
    let mut b = fixture("model-tq2.gguf");
    b[offset + 64..offset + 66].copy_from_slice(&0x7c00u16.to_le_bytes()); // +inf
    let e = error(b);
    assert!(
        e.contains("blk.2.ffn_down.weight") && e.contains("scale"),
        "{e}"
    );
}

/// Byte offset of tensor `name`'s data in `file` of the fixture folder.
fn data_offset(file: &str, name: &str) -> usize {
    let g = Gguf::from_bytes(fixture(file)).unwrap();
    let (info, _) = g.require_tensor(name).unwrap();
    info.data.start
}

#[test]
fn non_finite_i2s_scales_are_named() {
    let name = "blk.1.ffn_up.weight";
    let g = Gguf::from_bytes(fixture("model-i2s.gguf")).unwrap();
    let (info, _) = g.require_tensor(name).unwrap();
    let tail = info.data.start + (info.dims[0] * info.dims[1] / 4) as usize;
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut b = fixture("model-i2s.gguf");
        b[tail..tail + 4].copy_from_slice(&bad.to_le_bytes());
        let e = error(b);
        assert!(e.contains(name) && e.contains("scale"), "{bad}: {e}");
    }
}

#[test]
fn bad_tq_blocks_are_named() {
    // TQ1_0 (54-byte blocks, f16 scale last): a NaN scale in block 3.
    let name = "blk.0.attn_v.weight";
    let at = data_offset("model-tq1.gguf", name) + 4 * 54 - 2;
    let mut b = fixture("model-tq1.gguf");
    b[at..at + 2].copy_from_slice(&0x7e00u16.to_le_bytes());
    let e = error(b);
    assert!(e.contains(name) && e.contains("scale"), "{e}");

    // TQ2_0: every block scale zero, a tensor of zero weights.
    let name = "blk.1.attn_k.weight";
    let g = Gguf::from_bytes(fixture("model-tq2.gguf")).unwrap();
    let (info, data) = g.require_tensor(name).unwrap();
    let start = info.data.start;
    let mut b = fixture("model-tq2.gguf");
    for block in 0..data.len() / 66 {
        let at = start + block * 66 + 64;
        b[at..at + 2].copy_from_slice(&0u16.to_le_bytes());
    }
    let e = error(b);
    assert!(e.contains(name) && e.contains("zero"), "{e}");

    // TQ2_0: a 2-bit code of 3, which holds no trit.
    let mut b = fixture("model-tq2.gguf");
    b[start + 5] |= 0b11;
    let e = error(b);
    assert!(e.contains(name) && e.contains("code"), "{e}");
}

#[test]
fn missing_architecture_and_zero_counts_are_named() {
    let mut b = fixture("model-i2s.gguf");
    patch(&mut b, b"general.architecture", b"general.architecturX");
    let e = error(b);
    assert!(
        e.contains("general.architecture") && e.contains("missing"),
        "{e}"
    );
    for key in [
        "bitnet-b1.58.attention.head_count",
        "bitnet-b1.58.block_count",
        "bitnet-b1.58.context_length",
    ] {
        let mut b = fixture("model-i2s.gguf");
        patch_u32(&mut b, key, 0);
        let e = error(b);
        assert!(e.contains(key) && e.contains("out of range"), "{e}");
    }
    // More KV heads than heads.
    let mut b = fixture("model-i2s.gguf");
    patch_u32(&mut b, "bitnet-b1.58.attention.head_count_kv", 8);
    let e = error(b);
    assert!(e.contains("head_count_kv 8"), "{e}");
}

#[test]
fn a_rope_base_whose_angles_overflow_is_named() {
    let key = "bitnet-b1.58.rope.freq_base";
    // The fuzzer's value: the highest frequency, 1/θ^(1 − 2/d), is beyond f32.
    let mut b = fixture("model-i2s.gguf");
    patch_f32(&mut b, key, 6e-45);
    let e = error(b);
    assert!(e.contains("rope.freq_base") && e.contains("inf"), "{e}");
    // Bases below 1 whose angles stay finite are odd but well defined.
    let mut b = fixture("model-i2s.gguf");
    patch_f32(&mut b, key, 0.5);
    load(b).unwrap();
}
