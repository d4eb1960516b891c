//! The GGUF reader on the shared fixtures, and on damaged copies of them:
//! every damage must be a typed error naming the problem, never a panic.

use bitnet_kernels::format::{I2sMatrix, Tq1Matrix, Tq2Matrix};
use bitnet_model::gguf::{Gguf, GgufError, TensorType, Value};
use std::path::PathBuf;

fn fixture(dir: &str, file: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    assert!(
        root.is_dir(),
        "shared fixtures missing at {}",
        root.display()
    );
    root.join(dir).join(file)
}

const FILES: [&str; 3] = ["model-i2s.gguf", "model-tq2.gguf", "model-tq1.gguf"];

/// Under Miri (CI runs this file there) every parse is ~1000× slower:
/// truncation tests try every `SPARSE`-th cut instead of every one.
const SPARSE: usize = if cfg!(miri) { 53 } else { 1 };

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn reads_every_fixture_zero_copy() {
    for dir in ["tiny-b158", "tiny-llama"] {
        for file in FILES {
            let g = Gguf::open(fixture(dir, file)).unwrap();
            assert!(g.is_mapped());
            assert_eq!(g.version, 3);
            let arch = g.get_str("general.architecture").unwrap().unwrap();
            assert!(arch == "bitnet-b1.58" || arch == "llama", "{arch}");
            let hidden = g
                .get_u64(&format!("{arch}.embedding_length"))
                .unwrap()
                .unwrap();
            assert_eq!(hidden, 256);
            let tokens = g.get_str_array("tokenizer.ggml.tokens").unwrap().unwrap();
            assert_eq!(tokens.len(), 1024);
            assert!(
                g.get_str_array("tokenizer.ggml.merges")
                    .unwrap()
                    .unwrap()
                    .len()
                    > 100
            );
            assert!(g.get_str("general.architecture").is_ok());
            assert!(matches!(
                g.get_str(&format!("{arch}.embedding_length")),
                Err(GgufError::WrongType { .. })
            ));

            let (info, data) = g.require_tensor("blk.0.attn_q.weight").unwrap();
            let (k, m) = (info.dims[0] as usize, info.dims[1] as usize);
            match info.ty {
                TensorType::I2S => drop(I2sMatrix::from_gguf(data, m, k).unwrap()),
                TensorType::Tq2_0 => drop(Tq2Matrix::from_gguf(data, m, k).unwrap()),
                TensorType::Tq1_0 => drop(Tq1Matrix::from_gguf(data, m, k).unwrap()),
                t => panic!("{dir}/{file}: attn_q is {t:?}"),
            }
            let (emb, _) = g.require_tensor("token_embd.weight").unwrap();
            assert_eq!(emb.ty, TensorType::F16);
            assert!(
                g.tensor("output.weight").is_none(),
                "fixtures tie the LM head"
            );
            assert!(matches!(
                g.require_tensor("nope"),
                Err(GgufError::MissingTensor(_))
            ));
        }
    }
}

/// The byte offsets where the header's sections end, for truncation tests.
fn header_len(bytes: &[u8]) -> usize {
    let g = Gguf::from_bytes(bytes.to_vec()).unwrap();
    g.tensors().iter().map(|t| t.data.start).min().unwrap()
}

#[test]
fn every_truncation_is_a_typed_error() {
    let bytes = std::fs::read(fixture("tiny-b158", "model-i2s.gguf")).unwrap();
    let header = header_len(&bytes);
    // Every byte of the first 4 KiB, then a stride through the rest of the
    // header and the data.
    let cuts = (0..4096.min(header))
        .step_by(SPARSE)
        .chain((4096..header).step_by(97 * SPARSE))
        .chain((header..bytes.len()).step_by(4099 * SPARSE))
        .chain([header - 1, bytes.len() - 1]);
    for cut in cuts {
        match Gguf::from_bytes(bytes[..cut].to_vec()) {
            Err(GgufError::Truncated { .. } | GgufError::OutOfBounds { .. }) => {}
            Err(e) => panic!("cut at {cut}: unexpected error {e}"),
            Ok(_) => panic!("cut at {cut}: accepted a truncated file"),
        }
    }
}

fn damaged(f: impl FnOnce(&mut Vec<u8>)) -> Result<Gguf, GgufError> {
    let mut bytes = std::fs::read(fixture("tiny-b158", "model-i2s.gguf")).unwrap();
    f(&mut bytes);
    Gguf::from_bytes(bytes)
}

/// Byte offset of the tensor-info entry for `name` (its name length field).
fn tensor_info_offset(bytes: &[u8], name: &str) -> usize {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    bytes
        .windows(needle.len())
        .rposition(|w| w == needle)
        .unwrap()
}

#[test]
fn damaged_headers_are_named() {
    let e = damaged(|b| b[0] = b'X').unwrap_err();
    assert!(matches!(e, GgufError::BadMagic(_)), "{e}");
    let e = damaged(|b| b[4..8].copy_from_slice(&7u32.to_le_bytes())).unwrap_err();
    assert!(matches!(e, GgufError::UnsupportedVersion(7)), "{e}");
    let e = damaged(|b| b[8..16].copy_from_slice(&u64::MAX.to_le_bytes())).unwrap_err();
    assert!(
        matches!(
            e,
            GgufError::TooMany {
                what: "tensor count",
                ..
            }
        ),
        "{e}"
    );
    let e = damaged(|b| b[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes())).unwrap_err();
    assert!(
        matches!(
            e,
            GgufError::TooMany {
                what: "metadata count",
                ..
            }
        ),
        "{e}"
    );
    // The first key's length, absurdly large.
    let e = damaged(|b| b[24..32].copy_from_slice(&(1u64 << 50).to_le_bytes())).unwrap_err();
    assert!(
        matches!(
            e,
            GgufError::TooMany {
                what: "string length",
                ..
            }
        ),
        "{e}"
    );
    // Within the limit but past the end of the file.
    let e = damaged(|b| {
        b.truncate(200);
        b[24..32].copy_from_slice(&500u64.to_le_bytes())
    })
    .unwrap_err();
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    // The first key's value type.
    let e = damaged(|b| {
        let key_len = u64::from_le_bytes(b[24..32].try_into().unwrap()) as usize;
        b[32 + key_len..36 + key_len].copy_from_slice(&99u32.to_le_bytes());
    })
    .unwrap_err();
    assert!(matches!(e, GgufError::BadValueType { ty: 99, .. }), "{e}");
}

#[test]
fn damaged_tensor_tables_are_named() {
    let name = "blk.0.attn_q.weight";
    // Entry layout: name (8 + len), n_dims u32, dims u64 × n, type u32, offset u64.
    let field = |b: &[u8], which: &str| {
        let at = tensor_info_offset(b, name) + 8 + name.len();
        let nd = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        match which {
            "n_dims" => at,
            "dim0" => at + 4,
            "type" => at + 4 + 8 * nd,
            _ => at + 8 + 8 * nd,
        }
    };
    let e = damaged(|b| {
        let at = field(b, "type");
        b[at..at + 4].copy_from_slice(&77u32.to_le_bytes());
    })
    .unwrap_err();
    assert!(
        matches!(&e, GgufError::UnknownType { tensor, id: 77 } if tensor == name),
        "{e}"
    );
    for id in [38u32, 39] {
        let e = damaged(|b| {
            let at = field(b, "type");
            b[at..at + 4].copy_from_slice(&id.to_le_bytes());
        })
        .unwrap_err();
        assert!(e.to_string().contains("re-quantize"), "{e}");
    }
    let e = damaged(|b| {
        let at = field(b, "offset");
        b[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    })
    .unwrap_err();
    assert!(
        matches!(&e, GgufError::OutOfBounds { tensor, .. } if tensor == name),
        "{e}"
    );
    let e = damaged(|b| {
        let at = field(b, "offset");
        let off = u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        b[at..at + 8].copy_from_slice(&(off + 4).to_le_bytes());
    })
    .unwrap_err();
    assert!(matches!(&e, GgufError::Misaligned { .. }), "{e}");
    let e = damaged(|b| {
        let at = field(b, "offset");
        b[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
    })
    .unwrap_err();
    assert!(matches!(&e, GgufError::Overlap { .. }), "{e}");
    let e = damaged(|b| {
        let at = field(b, "dim0");
        b[at..at + 8].copy_from_slice(&100u64.to_le_bytes());
    })
    .unwrap_err();
    assert!(
        matches!(&e, GgufError::BlockMismatch { block: 128, .. }),
        "{e}"
    );
    let e = damaged(|b| {
        let at = field(b, "dim0");
        b[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
    })
    .unwrap_err();
    assert!(matches!(&e, GgufError::BadShape { .. }), "{e}");
    let e = damaged(|b| {
        let at = field(b, "n_dims");
        b[at..at + 4].copy_from_slice(&9u32.to_le_bytes());
    })
    .unwrap_err();
    assert!(matches!(&e, GgufError::BadShape { .. }), "{e}");
    // Rename another tensor to the same name (same length): a duplicate.
    let e = damaged(|b| {
        let at = tensor_info_offset(b, "blk.0.attn_k.weight");
        b[at + 8..at + 8 + name.len()].copy_from_slice(name.as_bytes());
    })
    .unwrap_err();
    assert!(
        matches!(&e, GgufError::DuplicateTensor(n) if n == name),
        "{e}"
    );
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn metadata_types_are_checked() {
    let g = Gguf::open(fixture("tiny-b158", "model-i2s.gguf")).unwrap();
    assert!(matches!(g.get("general.architecture"), Some(Value::Str(_))));
    assert!(matches!(
        g.get_u64("general.architecture"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        g.get_bool("general.architecture"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(g.get_u64("no.such.key").unwrap().is_none());
    let e = Gguf::open("/definitely/not/here.gguf").unwrap_err();
    assert!(matches!(e, GgufError::Io(_)), "{e}");
}

/// Byte offsets where each section of a GGUF file ends: the fixed header
/// fields, every metadata key and value, every tensor-info field, the
/// alignment padding and every tensor's data. Walked independently of the
/// reader, so a truncation test cannot share its mistakes.
fn section_boundaries(b: &[u8]) -> Vec<(String, usize)> {
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    fn value_end(b: &[u8], ty: u32, at: usize) -> usize {
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
        match ty {
            0 | 1 | 7 => at + 1,
            2 | 3 => at + 2,
            4..=6 => at + 4,
            10..=12 => at + 8,
            8 => at + 8 + u64_at(at),
            9 => {
                let elem = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
                let mut end = at + 12;
                for _ in 0..u64_at(at + 4) {
                    end = value_end(b, elem, end);
                }
                end
            }
            _ => panic!("value type {ty}"),
        }
    }
    let mut out = vec![
        ("magic".to_string(), 4),
        ("version".to_string(), 8),
        ("tensor count".to_string(), 16),
        ("metadata count".to_string(), 24),
    ];
    let (n_tensors, n_kv) = (u64_at(8), u64_at(16));
    let mut at = 24;
    for i in 0..n_kv {
        at += 8 + u64_at(at);
        out.push((format!("key {i}"), at));
        let ty = u32_at(at);
        at += 4;
        out.push((format!("type {i}"), at));
        at = value_end(b, ty, at);
        out.push((format!("value {i}"), at));
    }
    for i in 0..n_tensors {
        at += 8 + u64_at(at);
        out.push((format!("tensor {i} name"), at));
        let dims = u32_at(at) as usize;
        at += 4 + 8 * dims;
        out.push((format!("tensor {i} dims"), at));
        at += 4;
        out.push((format!("tensor {i} type"), at));
        at += 8;
        out.push((format!("tensor {i} offset"), at));
    }
    let g = Gguf::from_bytes(b.to_vec()).unwrap();
    for t in g.tensors() {
        out.push((format!("{} data start", t.name), t.data.start));
        out.push((format!("{} data end", t.name), t.data.end));
    }
    out
}

#[test]
fn truncation_at_every_section_boundary_is_a_typed_error() {
    for file in FILES {
        let bytes = std::fs::read(fixture("tiny-llama", file)).unwrap();
        let boundaries = section_boundaries(&bytes);
        assert!(boundaries.len() > 150, "{}", boundaries.len());
        for (what, end) in boundaries.into_iter().step_by(SPARSE) {
            // Cut right at the boundary and one byte before it.
            for cut in [end.saturating_sub(1), end] {
                if cut >= bytes.len() {
                    continue;
                }
                match Gguf::from_bytes(bytes[..cut].to_vec()) {
                    Err(GgufError::Truncated { .. } | GgufError::OutOfBounds { .. }) => {}
                    Err(e) => panic!("{file}: cut at {cut} ({what}): unexpected error {e}"),
                    Ok(_) => panic!("{file}: cut at {cut} ({what}): accepted"),
                }
            }
        }
    }
}

#[test]
fn lengths_and_sizes_past_the_end_are_named() {
    // A tensor name's length, past the end of the file (cut to 200 kB
    // so the length is within the string limit).
    let e = damaged(|b| {
        b.truncate(200_000);
        let at = tensor_info_offset(b, "output_norm.weight");
        b[at..at + 8].copy_from_slice(&300_000u64.to_le_bytes());
    })
    .unwrap_err();
    assert!(
        matches!(&e, GgufError::Truncated { what, .. } if what.contains("name")),
        "{e}"
    );
    // One string of the vocabulary array, longer than the file (within the
    // string limit): the array's key is named.
    let e = damaged(|b| {
        b.truncate(200_000);
        let key = b"tokenizer.ggml.tokens";
        let at = b.windows(key.len()).position(|w| w == key).unwrap() + key.len();
        // type (9), element type (8), count, then the first string's length.
        b[at + 16..at + 24].copy_from_slice(&1_000_000u64.to_le_bytes());
    })
    .unwrap_err();
    assert!(
        matches!(&e, GgufError::Truncated { what, .. } if what == "tokenizer.ggml.tokens"),
        "{e}"
    );
    // A tensor whose shape says more bytes than lie before the next one.
    let e = damaged(|b| {
        let name = "blk.0.attn_q.weight";
        let at = tensor_info_offset(b, name) + 8 + name.len() + 4 + 8;
        b[at..at + 8].copy_from_slice(&1024u64.to_le_bytes());
    })
    .unwrap_err();
    assert!(
        matches!(&e, GgufError::Overlap { first, .. } if first == "blk.0.attn_q.weight"),
        "{e}"
    );
    // The last tensor's shape runs past the end of the file.
    let e = damaged(|b| {
        let g = Gguf::from_bytes(b.clone()).unwrap();
        let last = g
            .tensors()
            .iter()
            .max_by_key(|t| t.data.start)
            .unwrap()
            .name
            .clone();
        let at = tensor_info_offset(b, &last) + 8 + last.len() + 4;
        let d0 = u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        b[at..at + 8].copy_from_slice(&(d0 * 4).to_le_bytes());
    })
    .unwrap_err();
    assert!(matches!(&e, GgufError::OutOfBounds { .. }), "{e}");
}
