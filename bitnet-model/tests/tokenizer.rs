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
                tok.encode_prompt(text, false),
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
    let ids = t.render(&tok, &msgs, true);
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
