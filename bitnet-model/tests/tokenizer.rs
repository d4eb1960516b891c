//! The tokenizer against the fixtures' reference ids (transformers'
//! tokenizer over the same vocabulary and merges).

use bitnet_model::gguf::Gguf;
use bitnet_model::{PreTokenizer, Tokenizer};
use serde_json::Value;
use std::path::PathBuf;

fn fixture(dir: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    assert!(
        root.is_dir(),
        "shared fixtures missing at {}",
        root.display()
    );
    root.join(dir)
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn fixture_tokenizer_cases_are_exact() {
    for dir in ["tiny-b158", "tiny-llama"] {
        let g = Gguf::open(fixture(dir).join("model-i2s.gguf")).unwrap();
        let tok = Tokenizer::from_gguf(&g).unwrap();
        assert_eq!(tok.pre, PreTokenizer::Llama3);
        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture(dir).join("cases.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(tok.bos, Some(json["bos_id"].as_u64().unwrap() as u32));
        assert_eq!(tok.eos, Some(json["eos_id"].as_u64().unwrap() as u32));
        assert_eq!(tok.eot, Some(json["eot_id"].as_u64().unwrap() as u32));
        for case in json["tokenizer_cases"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let want = ids(&case["ids"]);
            // The reference (transformers' default) splits out special-token
            // text; plain text is unaffected by the flag.
            assert_eq!(tok.encode(text, true), want, "{dir}: {text:?}");
            if !text.contains("<|") {
                assert_eq!(tok.encode(text, false), want, "{dir}: {text:?}");
            }
            // Byte-level BPE round-trips any text exactly.
            assert_eq!(tok.decode(&want, true), text, "{dir}: decode {text:?}");
        }
        for case in json["cases"].as_array().unwrap() {
            let text = case["prompt"].as_str().unwrap();
            assert_eq!(
                tok.encode_prompt(text, false).unwrap(),
                ids(&case["token_ids"]),
                "{dir}: prompt {text:?}"
            );
        }
    }
}

#[test]
fn special_tokens_parse_only_when_asked() {
    let g = Gguf::open(fixture("tiny-b158").join("model-i2s.gguf")).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let text = "a<|eot_id|>b";
    let parsed = tok.encode(text, true);
    assert!(parsed.contains(&tok.eot.unwrap()), "{parsed:?}");
    assert!(!tok.encode(text, false).contains(&tok.eot.unwrap()));
    assert_eq!(tok.decode(&parsed, false), "ab");
    assert_eq!(tok.decode(&parsed, true), text);
}

#[test]
fn bitnet_chat_format_and_no_special_injection() {
    use bitnet_model::{Arch, ChatTemplate, Message, Role};
    let g = Gguf::open(fixture("tiny-b158").join("model-i2s.gguf")).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let t = ChatTemplate::for_model(Arch::BitnetB158, None, &tok);
    assert_eq!(t, ChatTemplate::Bitnet);
    let msgs = [
        Message::new(Role::System, "Be brief."),
        Message::new(Role::User, "Hi <|eot_id|>"),
    ];
    let ids = t.render(&tok, &msgs, true).unwrap();
    let eot = tok.eot.unwrap();
    assert_eq!(ids[0], tok.bos.unwrap());
    // One end-of-turn per message: the user's literal "<|eot_id|>" stays text.
    assert_eq!(ids.iter().filter(|&&i| i == eot).count(), 2);
    assert_eq!(
        tok.decode(&ids, true),
        "<|begin_of_text|>System: Be brief.<|eot_id|>User: Hi <|eot_id|><|eot_id|>Assistant: "
    );
    assert!(t.stop_tokens(&tok).contains(&eot));
    // Other architectures recognise Llama 3's template, else fall back.
    assert_eq!(
        ChatTemplate::for_model(Arch::Llama, Some("{{ '<|start_header_id|>' }}"), &tok),
        ChatTemplate::Llama3
    );
    assert_eq!(
        ChatTemplate::for_model(Arch::Llama, None, &tok),
        ChatTemplate::Plain
    );
}

/// A SentencePiece vocabulary: unk, BOS, EOS, the 256 byte tokens, then pieces.
fn spm_tokenizer() -> Tokenizer {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0.0f32; 3];
    for b in 0..256 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    // Higher score merges first.
    for (piece, score) in [
        ("▁", -10.0),
        ("h", -10.0),
        ("e", -10.0),
        ("l", -10.0),
        ("o", -10.0),
        ("w", -10.0),
        ("r", -10.0),
        ("d", -10.0),
        ("ll", -1.0),
        ("▁h", -2.0),
        ("he", -3.0),
        ("llo", -4.0),
        ("▁he", -5.0),
        ("▁hello", -6.0),
        ("▁w", -2.5),
        ("or", -3.5),
        ("▁wor", -4.5),
        ("ld", -5.5),
        ("▁world", -7.0),
    ] {
        tokens.push(piece.into());
        types.push(1);
        scores.push(score);
    }
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let mut tok = Tokenizer::new_spm(&refs, &types, &scores, true).unwrap();
    tok.bos = Some(1);
    tok.eos = Some(2);
    tok.add_bos = true;
    tok
}

#[test]
fn sentencepiece_merges_by_score_and_falls_back_to_bytes() {
    let tok = spm_tokenizer();
    let id = |t: &str| tok.token_id(t).unwrap();
    assert_eq!(
        tok.encode("hello world", false),
        vec![id("▁hello"), id("▁world")]
    );
    assert_eq!(
        tok.encode_prompt("hello", false).unwrap(),
        vec![1, id("▁hello")]
    );
    // 'é' is not a piece: its two UTF-8 bytes.
    assert_eq!(
        tok.encode("hé", false),
        vec![id("▁h"), id("<0xC3>"), id("<0xA9>")]
    );
    for text in ["hello world", "hé", "world hello  hello", "w o r l d"] {
        assert_eq!(
            tok.decode(&tok.encode_prompt(text, false).unwrap(), false),
            text,
            "{text:?}"
        );
    }
    // A special token in the text is parsed on request, with a fresh space prefix after it.
    assert_eq!(
        tok.encode("hello</s>hello", true),
        vec![id("▁hello"), 2, id("▁hello")]
    );
}
