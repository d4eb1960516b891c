//! The body of the `chat_request` cargo-fuzz target in `fuzz/` (feature
//! `fuzz`). It lives here rather than in `fuzz/` so that `cargo test`
//! replays the committed corpus and every minimized crash through the same
//! code (`tests/fuzz_corpus.rs`).

use crate::{parse_chat_request, parse_completion_request, ApiError, GenParams, Prompt};
use bitnet_model::{Role, SamplerConfig};
use serde_json::{Map, Value};

/// The longest error message a request can cause: errors quote at most a
/// short excerpt of the request, so a huge body never comes back in one.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 200;

/// Arbitrary bytes as both a chat and a text completion body. Each parse
/// must either give a request that keeps every promise of the validation
/// and says what the body says (read again here, independently, from the
/// JSON), or a 400 `invalid_request_error` with a short one-line message.
/// A body both endpoints accept has the same generation settings in both.
pub fn chat_request(data: &[u8]) {
    let body = match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(obj)) => Some(obj),
        _ => None,
    };
    let chat = parse_chat_request(data);
    let completion = parse_completion_request(data);
    for e in [chat.as_ref().err(), completion.as_ref().err()]
        .into_iter()
        .flatten()
    {
        check_error(e);
        if body.is_none() {
            assert_eq!(e.code, "invalid_json", "{}", e.message);
        }
    }
    if let Ok(req) = &chat {
        let body = body.as_ref().expect("an accepted body is a JSON object");
        let messages = body["messages"].as_array().expect("messages is an array");
        assert!(!req.messages.is_empty(), "no messages");
        assert_eq!(req.messages.len(), messages.len());
        for (m, v) in req.messages.iter().zip(messages) {
            let role = match v["role"].as_str() {
                Some("system" | "developer") => Role::System,
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                other => panic!("role {other:?} accepted"),
            };
            assert_eq!(m.role, role);
            let content = match &v["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts.iter().map(|p| p["text"].as_str().unwrap()).collect(),
                other => panic!("content {other} accepted"),
            };
            assert_eq!(m.content, content);
        }
        check_params(&req.params, body);
    }
    if let Ok(req) = &completion {
        let body = body.as_ref().expect("an accepted body is a JSON object");
        match (&req.prompt, &body["prompt"]) {
            (Prompt::Text(text), Value::String(s)) => assert_eq!(text, s),
            (Prompt::Text(text), Value::Array(list)) => assert_eq!(list, &[text.as_str()]),
            (Prompt::Tokens(ids), Value::Array(list)) => {
                assert!(!ids.is_empty(), "empty token prompt");
                let given: Vec<Option<u64>> = list.iter().map(Value::as_u64).collect();
                let parsed: Vec<Option<u64>> = ids.iter().map(|&id| Some(id.into())).collect();
                assert_eq!(parsed, given);
            }
            (prompt, given) => panic!("prompt {given} parsed as {prompt:?}"),
        }
        check_params(&req.params, body);
    }
    if let (Ok(chat), Ok(completion)) = (&chat, &completion) {
        assert_eq!(chat.params, completion.params);
    }
}

fn check_error(e: &ApiError) {
    assert_eq!(e.status, 400, "{e:?}");
    assert_eq!(e.kind, "invalid_request_error", "{e:?}");
    assert!(!e.code.is_empty(), "{e:?}");
    assert!(!e.message.is_empty(), "{e:?}");
    assert!(!e.message.contains(['\n', '\r']), "{e:?}");
    assert!(
        e.message.len() <= MAX_ERROR_MESSAGE_BYTES,
        "{} bytes: {:?}…",
        e.message.len(),
        e.message.chars().take(80).collect::<String>()
    );
    assert_eq!(e.body()["error"]["message"], e.message.as_str());
}

/// The settings against the body's fields; `null` counts as absent.
fn check_params(p: &GenParams, body: &Map<String, Value>) {
    let field = |name: &str| body.get(name).filter(|v| !v.is_null());
    if let Some(model) = field("model") {
        assert!(model.is_string(), "model {model} accepted");
    }
    if let Some(n) = field("n") {
        assert_eq!(n.as_u64(), Some(1), "n {n} accepted");
    }

    let max_tokens = field("max_completion_tokens").or(field("max_tokens"));
    let max_tokens = max_tokens.map(|v| v.as_u64().expect("max_tokens is an integer"));
    assert!(
        max_tokens.is_none_or(|n| n >= 1),
        "max_tokens {max_tokens:?}"
    );
    assert_eq!(p.max_tokens, max_tokens.map(saturating_usize));

    let s = &p.sampling;
    for (name, value, min, max, default) in [
        ("temperature", s.temperature, 0.0, 2.0, 1.0),
        ("top_p", s.top_p, 0.0, 1.0, 1.0),
        ("min_p", s.min_p, 0.0, 1.0, 0.0),
        ("repeat_penalty", s.repeat_penalty, 0.0, 100.0, 1.0),
    ] {
        assert!((min..=max).contains(&value), "{name} {value}");
        match field(name) {
            Some(v) => assert_eq!(v.as_f64().map(|x| x as f32), Some(value), "{name}"),
            None => assert_eq!(value, default, "{name}"),
        }
    }
    assert!(s.repeat_penalty > 0.0, "repeat_penalty 0");
    let top_k = field("top_k").map(|v| v.as_u64().expect("top_k is an integer"));
    assert_eq!(s.top_k, top_k.map_or(0, saturating_usize));
    assert_eq!(s.repeat_last_n, SamplerConfig::default().repeat_last_n);

    let seed = field("seed").map(|v| {
        v.as_u64()
            .or(v.as_i64().map(|s| s as u64))
            .expect("seed is an integer")
    });
    assert_eq!(p.seed_given, seed.is_some());
    assert_eq!(s.seed, seed.unwrap_or(0));

    assert!(p.stop.len() <= 4, "{} stop strings", p.stop.len());
    assert!(p.stop.iter().all(|s| !s.is_empty()), "empty stop string");
    let stop: Vec<&str> = match field("stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(list)) => list.iter().map(|v| v.as_str().unwrap()).collect(),
        Some(other) => panic!("stop {other} accepted"),
    };
    assert_eq!(p.stop, stop);

    assert_eq!(p.stream, field("stream") == Some(&Value::Bool(true)));
    let include_usage = field("stream_options").and_then(|o| o.get("include_usage"));
    assert_eq!(p.include_usage, include_usage == Some(&Value::Bool(true)));
}

fn saturating_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
