//! Shared by the tests that compare a model with the fixtures' reference
//! logits (see ../shared/fixtures/README.md for the tolerances).
// Each test binary uses its own subset.
#![allow(dead_code)]

use bitnet_model::gguf::{self, Gguf, GgufWriter, MetaValue};
use bitnet_model::{npy, KvCache, KvType, Logits, Model, RoundingTrace};
use serde_json::Value;
use std::path::PathBuf;

pub fn fixtures() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    assert!(
        root.is_dir(),
        "shared fixtures missing at {}",
        root.display()
    );
    root
}

/// A little-endian f32 .npy file: (shape, data).
pub fn read_npy(path: &PathBuf) -> (Vec<usize>, Vec<f32>) {
    npy::read_f32(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub struct Case {
    pub ids: Vec<u32>,
    pub logits: Vec<f32>,
    pub greedy: Vec<u32>,
    pub margins: Vec<f32>,
}

pub fn cases(dir: &str) -> (Value, Vec<Case>) {
    let root = fixtures().join(dir);
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("cases.json")).unwrap()).unwrap();
    let ids = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect::<Vec<_>>()
    };
    let cases = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let (shape, logits) = read_npy(&root.join(c["logits"].as_str().unwrap()));
            let token_ids = ids(&c["token_ids"]);
            assert_eq!(shape[0], token_ids.len());
            Case {
                ids: token_ids,
                logits,
                greedy: ids(&c["greedy_ids"]),
                margins: c["greedy_top2_margins"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_f64().unwrap() as f32)
                    .collect(),
            }
        })
        .collect();
    (json, cases)
}

/// The README's rule: |ours − ref| ≤ 0.02 + 0.002·|ref| everywhere, mean |diff| < 1e-3.
pub fn within_tolerance(ours: &[f32], reference: &[f32]) -> Result<(), String> {
    assert_eq!(ours.len(), reference.len());
    let mut sum = 0.0f64;
    for (i, (&a, &b)) in ours.iter().zip(reference).enumerate() {
        let diff = (a - b).abs();
        if diff > 0.02 + 0.002 * b.abs() {
            return Err(format!("logit {i}: ours {a}, reference {b}"));
        }
        sum += diff as f64;
    }
    let mean = sum / ours.len() as f64;
    if mean >= 1e-3 {
        return Err(format!("mean |diff| {mean:.2e}"));
    }
    Ok(())
}

pub fn argmax(v: &[f32]) -> u32 {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0 as u32
}

/// Runs a case's prompt and checks every position's logits. An activation
/// that lands within a few ulps of an int8 rounding boundary can round
/// either way depending on float summation order (the README's own caveat);
/// one such flip moves logits by up to ~0.05. When the rule fails, the case
/// still passes only if rounding exactly one recorded near-tie the other way
/// makes every position meet the same rule, and the tie is printed.
pub fn prompt_logits(what: &str, model: &Model, kv: KvType, case: &Case) -> (KvCache, Vec<f32>) {
    let mut trace = RoundingTrace::default();
    let mut cache = KvCache::new(&model.config, 128, kv).unwrap();
    let mut logits = Vec::new();
    model
        .forward_traced(&case.ids, &mut cache, Logits::All, &mut logits, &mut trace)
        .unwrap();
    let Err(first) = within_tolerance(&logits, &case.logits) else {
        return (cache, logits);
    };
    let ties = trace.ties.clone();
    for tie in &ties {
        trace.flip = vec![*tie];
        let mut cache = KvCache::new(&model.config, 128, kv).unwrap();
        model
            .forward_traced(&case.ids, &mut cache, Logits::All, &mut logits, &mut trace)
            .unwrap();
        if within_tolerance(&logits, &case.logits).is_ok() {
            println!("{what}: matches with the reference rounding {tie:?} the other way");
            return (cache, logits);
        }
    }
    panic!(
        "{what}: {first}; no single flip of the {} near ties explains it: {ties:?}",
        ties.len()
    );
}

/// Checks a case's prompt logits ([`prompt_logits`]) and then greedy decoding
/// one token at a time, up to the reference's first near tie.
pub fn check_case(what: &str, model: &Model, kv: KvType, case: &Case) {
    let (mut cache, mut logits) = prompt_logits(what, model, kv, case);
    let mut next = argmax(&logits[logits.len() - model.config.vocab..]);
    for (step, (&want, &margin)) in case.greedy.iter().zip(&case.margins).enumerate() {
        if margin < 0.05 {
            break;
        }
        assert_eq!(next, want, "{what}: greedy step {step}");
        model
            .forward(&[next], &mut cache, Logits::Last, &mut logits)
            .unwrap();
        next = argmax(&logits);
    }
}

/// Overwrites the 4-byte value of GGUF metadata `key` (a value of type
/// `ty` right after the key's bytes) in a file's bytes.
fn patch_meta4(bytes: &mut [u8], key: &str, ty: u32, value: [u8; 4]) {
    let at = bytes
        .windows(key.len())
        .position(|w| w == key.as_bytes())
        .unwrap()
        + key.len();
    assert_eq!(
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()),
        ty,
        "{key} has type {ty}"
    );
    bytes[at + 4..at + 8].copy_from_slice(&value);
}

/// Overwrites the u32 value (type 4) of GGUF metadata `key`.
pub fn patch_u32(bytes: &mut [u8], key: &str, value: u32) {
    patch_meta4(bytes, key, 4, value.to_le_bytes());
}

/// Overwrites the f32 value (type 6) of GGUF metadata `key`.
pub fn patch_f32(bytes: &mut [u8], key: &str, value: f32) {
    patch_meta4(bytes, key, 6, value.to_le_bytes());
}

/// Declares every metadata value of `g` in `w`, arrays cut to their first
/// `max_array` elements. Covers the value types the shared fixtures use.
pub fn copy_metadata(g: &Gguf, w: &mut GgufWriter, max_array: usize) {
    for (key, value) in g.metadata() {
        let v = match value {
            gguf::Value::U32(v) => MetaValue::U32(*v),
            gguf::Value::I32(v) => MetaValue::I32(*v),
            gguf::Value::F32(v) => MetaValue::F32(*v),
            gguf::Value::Bool(v) => MetaValue::Bool(*v),
            gguf::Value::Str(_) => MetaValue::Str(g.get_str(key).unwrap().unwrap().into()),
            gguf::Value::Array(a) if a.elem == 8 => {
                let v = g.get_str_array(key).unwrap().unwrap();
                MetaValue::StrArray(v.iter().take(max_array).map(|s| s.to_string()).collect())
            }
            gguf::Value::Array(a) if a.elem == 5 => {
                let v = g.get_array_4byte(key, 5).unwrap().unwrap();
                MetaValue::I32Array(
                    v.iter()
                        .take(max_array)
                        .map(|b| i32::from_le_bytes(*b))
                        .collect(),
                )
            }
            other => panic!("{key}: {other:?} is not a value type the fixtures use"),
        };
        w.meta(key, v);
    }
}
