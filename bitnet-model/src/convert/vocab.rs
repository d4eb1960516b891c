//! `tokenizer.json` (Hugging Face `tokenizers`) → the GGUF `gpt2` tokenizer
//! metadata our loader reads: tokens, token types, merges, pre-tokenizer.

use super::checkpoint::read_json;
use super::ConvertError;
use crate::tokenizer::{PreTokenizer, Tokenizer};
use serde_json::Value;
use std::path::Path;

/// GGUF token types (`tokenizer.ggml.token_type`).
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// A byte-level BPE vocabulary, ready for GGUF.
#[derive(Debug)]
pub(super) struct Vocab {
    /// `vocab_size` entries; ids the tokenizer does not use are `[PAD{id}]`.
    pub tokens: Vec<String>,
    pub types: Vec<i32>,
    /// `"left right"`, in rank order.
    pub merges: Vec<String>,
    pub pre: PreTokenizer,
}

impl Vocab {
    pub fn id(&self, token: &str) -> Option<u32> {
        self.tokens
            .iter()
            .position(|t| t == token)
            .map(|i| i as u32)
    }
}

/// Reads `path` for a model whose embedding has `vocab_size` rows.
pub(super) fn read(path: &Path, vocab_size: usize) -> Result<Vocab, ConvertError> {
    let v = read_json(path)?;
    let bad = |what: String| ConvertError::Input(format!("{}: {what}", path.display()));
    let model = &v["model"];
    match model["type"].as_str() {
        Some("BPE") => {}
        other => {
            return Err(bad(format!(
                "model type {} is not supported (byte-level BPE is)",
                other.map_or("(missing)".to_string(), |t| format!("{t:?}"))
            )))
        }
    }
    if model["byte_fallback"].as_bool() == Some(true) {
        return Err(bad(
            "BPE with byte fallback (SentencePiece style) is not supported (byte-level BPE is)"
                .into(),
        ));
    }
    if !v["normalizer"].is_null() {
        return Err(bad(format!(
            "normalizer {} is not supported (byte-level BPE has none)",
            v["normalizer"]["type"]
        )));
    }
    let pre = pre_tokenizer(&v["pre_tokenizer"]).map_err(bad)?;

    let mut tokens: Vec<Option<String>> = vec![None; vocab_size];
    let mut types = vec![UNUSED; vocab_size];
    let mut put = |text: &str, id: &Value, ty: i32| -> Result<(), ConvertError> {
        let id = id
            .as_u64()
            .filter(|&i| (i as usize) < vocab_size)
            .ok_or_else(|| {
                bad(format!(
                    "token {text:?} has id {id}, outside the model's vocab_size {vocab_size}"
                ))
            })? as usize;
        match &tokens[id] {
            Some(prev) if prev != text => {
                Err(bad(format!("id {id} is both {prev:?} and {text:?}")))
            }
            _ => {
                tokens[id] = Some(text.to_string());
                types[id] = ty;
                Ok(())
            }
        }
    };
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| bad("model.vocab is missing".into()))?;
    for (text, id) in vocab {
        put(text, id, NORMAL)?;
    }
    for added in v["added_tokens"].as_array().into_iter().flatten() {
        let text = added["content"]
            .as_str()
            .ok_or_else(|| bad(format!("added token {added} has no content")))?;
        let ty = if added["special"].as_bool() == Some(true) {
            CONTROL
        } else {
            USER_DEFINED
        };
        put(text, &added["id"], ty)?;
    }
    let tokens: Vec<String> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.unwrap_or_else(|| format!("[PAD{i}]")))
        .collect();

    let merges = model["merges"]
        .as_array()
        .ok_or_else(|| bad("model.merges is missing".into()))?
        .iter()
        .enumerate()
        .map(|(rank, m)| {
            let pair = match m {
                Value::String(s) => s.split_once(' '),
                Value::Array(a) if a.len() == 2 => a[0].as_str().zip(a[1].as_str()),
                _ => None,
            };
            match pair {
                Some((l, r)) if !l.contains(' ') && !r.contains(' ') => Ok(format!("{l} {r}")),
                _ => Err(bad(format!("merge {rank} ({m}) is not a pair of tokens"))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;

    // What the loader will build from this metadata: a vocabulary that
    // cannot become a tokenizer is refused here, before any file is written.
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let merge_refs: Vec<&str> = merges.iter().map(String::as_str).collect();
    Tokenizer::new(&refs, &types, &merge_refs, pre).map_err(|e| bad(e.to_string()))?;
    Ok(Vocab {
        tokens,
        types,
        merges,
        pre,
    })
}

/// Which of the loader's pre-tokenizers `tokenizer.json`'s is: a `Split` on
/// one of its regexes followed by a regex-free `ByteLevel`, or a lone
/// `ByteLevel` with GPT-2's built-in regex.
fn pre_tokenizer(p: &Value) -> Result<PreTokenizer, String> {
    let steps: Vec<&Value> = match p["type"].as_str() {
        Some("Sequence") => p["pretokenizers"]
            .as_array()
            .into_iter()
            .flatten()
            .collect(),
        Some(_) => vec![p],
        None => return Err("pre_tokenizer is missing".into()),
    };
    let unsupported =
        || format!("pre_tokenizer {p} is not supported (Llama 3's or GPT-2's byte-level split is)");
    match steps.as_slice() {
        [split, byte_level]
            if split["type"] == "Split"
                && byte_level["type"] == "ByteLevel"
                && byte_level["use_regex"] == false
                && byte_level["add_prefix_space"] != true
                && split["behavior"] == "Isolated"
                && split["invert"] != true =>
        {
            let regex = split["pattern"]["Regex"].as_str().unwrap_or_default();
            [PreTokenizer::Llama3, PreTokenizer::Gpt2]
                .into_iter()
                .find(|pre| pre.pattern() == regex)
                .ok_or_else(unsupported)
        }
        [byte_level]
            if byte_level["type"] == "ByteLevel"
                && byte_level["use_regex"] != false
                && byte_level["add_prefix_space"] != true =>
        {
            Ok(PreTokenizer::Gpt2)
        }
        _ => Err(unsupported()),
    }
}
