//! OpenAI-compatible request parsing and validation for `bitnet serve`: the
//! chat and text completion bodies it accepts, checked field by field, the
//! error body, and the response and stream-chunk JSON.
//!
//! No I/O: every function maps bytes or values to values, so the server's
//! handlers (bitnet-cli) and the `chat_request` fuzz target (module `fuzz`,
//! feature `fuzz`) run the same code, and the fuzz build needs no HTTP stack.

use bitnet_model::{Message, Role, SamplerConfig};
use serde_json::{json, Map, Value};

#[cfg(feature = "fuzz")]
pub mod fuzz;

/// An error answered with the OpenAI error body
/// `{"error": {"message", "type", "code"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    pub message: String,
    /// OpenAI's `type` (`invalid_request_error`, …).
    pub kind: &'static str,
    /// OpenAI's `code` (machine-readable reason).
    pub code: &'static str,
}

impl ApiError {
    /// 400: the request is malformed or asks for something impossible.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            code,
        }
    }

    pub fn new(
        status: u16,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind,
            code,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "code": self.code}})
    }
}

/// Settings shared by chat and text completions.
#[derive(Debug, Clone, PartialEq)]
pub struct GenParams {
    /// Tokens to generate at most; `None`: until a stop or the context ends.
    pub max_tokens: Option<usize>,
    /// The request's `seed` is kept in `sampling.seed`; absent, the
    /// caller picks one (see [`GenParams::seed_given`]).
    pub sampling: SamplerConfig,
    pub seed_given: bool,
    /// Texts that end the reply (not included in it).
    pub stop: Vec<String>,
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk carries `usage`.
    pub include_usage: bool,
}

/// A parsed `POST /v1/chat/completions` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub params: GenParams,
}

/// What a text completion continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Text, tokenized with BOS and without special-token parsing.
    Text(String),
    /// Token ids, used as given.
    Tokens(Vec<u32>),
}

/// A parsed `POST /v1/completions` body.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    pub prompt: Prompt,
    pub params: GenParams,
}

/// Stop sequences OpenAI allows per request.
const MAX_STOP_STRINGS: usize = 4;

/// Parses and checks a chat completion body.
pub fn parse_chat_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let obj = parse_object(body)?;
    let messages = match obj.get("messages") {
        None | Some(Value::Null) => return Err(missing("messages")),
        Some(Value::Array(list)) if list.is_empty() => {
            return Err(ApiError::invalid(
                "invalid_value",
                "`messages` must hold at least one message",
            ))
        }
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, m)| parse_message(i, m))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(wrong_type("messages", "an array of messages", other)),
    };
    Ok(ChatRequest {
        messages,
        params: parse_params(&obj)?,
    })
}

/// Parses and checks a text completion body.
pub fn parse_completion_request(body: &[u8]) -> Result<CompletionRequest, ApiError> {
    let obj = parse_object(body)?;
    const EXPECTED: &str = "a string, an array of one string, or an array of token ids";
    let prompt = match obj.get("prompt") {
        None | Some(Value::Null) => return Err(missing("prompt")),
        Some(Value::String(s)) => Prompt::Text(s.clone()),
        Some(Value::Array(list)) => match list.as_slice() {
            [Value::String(s)] => Prompt::Text(s.clone()),
            [] => {
                return Err(ApiError::invalid(
                    "invalid_value",
                    "`prompt` must not be empty",
                ))
            }
            items if items.iter().all(|v| v.is_u64()) => Prompt::Tokens(
                items
                    .iter()
                    .map(|v| {
                        v.as_u64()
                            .and_then(|id| u32::try_from(id).ok())
                            .ok_or_else(|| wrong_type("prompt", EXPECTED, v))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            [_, _, ..] if items_are_strings(list) => {
                return Err(ApiError::invalid(
                    "unsupported_value",
                    "`prompt` may hold one string only (batched prompts are not supported)",
                ))
            }
            _ => return Err(wrong_type("prompt", EXPECTED, &Value::Array(list.clone()))),
        },
        Some(other) => return Err(wrong_type("prompt", EXPECTED, other)),
    };
    Ok(CompletionRequest {
        prompt,
        params: parse_params(&obj)?,
    })
}

fn items_are_strings(list: &[Value]) -> bool {
    list.iter().all(Value::is_string)
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            "invalid_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    match value {
        Value::Object(obj) => Ok(obj),
        other => Err(ApiError::invalid(
            "invalid_json",
            format!(
                "the request body must be a JSON object, not {}",
                type_name(&other)
            ),
        )),
    }
}

fn parse_message(index: usize, value: &Value) -> Result<Message, ApiError> {
    let field = |name: &str| format!("messages[{index}].{name}");
    let Value::Object(m) = value else {
        return Err(wrong_type(
            &format!("messages[{index}]"),
            "an object",
            value,
        ));
    };
    let role = match m.get("role") {
        None | Some(Value::Null) => return Err(missing(&field("role"))),
        Some(role @ Value::String(r)) => match r.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => {
                return Err(ApiError::invalid(
                    "invalid_value",
                    format!(
                        "`{}` must be system, developer, user or assistant, not {}",
                        field("role"),
                        excerpt(role)
                    ),
                ))
            }
        },
        Some(other) => return Err(wrong_type(&field("role"), "a string", other)),
    };
    let content = match m.get("content") {
        None | Some(Value::Null) => return Err(missing(&field("content"))),
        Some(Value::String(s)) => s.clone(),
        // Content parts: only text parts carry anything this model can read.
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (
                    part.get("type").and_then(Value::as_str),
                    part.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(ApiError::invalid(
                            "unsupported_value",
                            format!(
                                "`{}` parts must be {{\"type\": \"text\", \"text\": …}}",
                                field("content")
                            ),
                        ))
                    }
                }
            }
            text
        }
        Some(other) => return Err(wrong_type(&field("content"), "a string", other)),
    };
    Ok(Message::new(role, content))
}

fn parse_params(obj: &Map<String, Value>) -> Result<GenParams, ApiError> {
    if let Some(model) = present(obj, "model") {
        if !model.is_string() {
            return Err(wrong_type("model", "a string", model));
        }
    }
    if let Some(n) = present(obj, "n") {
        if n.as_u64() != Some(1) {
            return Err(ApiError::invalid(
                "unsupported_value",
                format!("`n` must be 1 (one choice per request), not {}", excerpt(n)),
            ));
        }
    }
    let max_tokens = match present(obj, "max_completion_tokens").or(present(obj, "max_tokens")) {
        None => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => return Err(wrong_type("max_tokens", "an integer of at least 1", v)),
        },
    };
    let defaults = SamplerConfig::default();
    // OpenAI's defaults (temperature 1, no truncation) unless llama.cpp's
    // extra knobs are given.
    let sampling = SamplerConfig {
        temperature: number(obj, "temperature", 0.0, 2.0)?.unwrap_or(1.0),
        top_p: number(obj, "top_p", 0.0, 1.0)?.unwrap_or(1.0),
        min_p: number(obj, "min_p", 0.0, 1.0)?.unwrap_or(0.0),
        top_k: match present(obj, "top_k") {
            None => 0,
            Some(v) => v
                .as_u64()
                .map(|k| usize::try_from(k).unwrap_or(usize::MAX))
                .ok_or_else(|| wrong_type("top_k", "an integer of at least 0", v))?,
        },
        repeat_penalty: match number(obj, "repeat_penalty", 0.0, 100.0)? {
            Some(0.0) => {
                return Err(ApiError::invalid(
                    "invalid_value",
                    "`repeat_penalty` must be above 0",
                ))
            }
            Some(p) => p,
            None => 1.0,
        },
        repeat_last_n: defaults.repeat_last_n,
        seed: 0,
    };
    let (seed, seed_given) = match present(obj, "seed") {
        None => (0, false),
        // Negative seeds are valid in OpenAI's API; their bits are as good.
        Some(v) => match (v.as_u64(), v.as_i64()) {
            (Some(s), _) => (s, true),
            (None, Some(s)) => (s as u64, true),
            _ => return Err(wrong_type("seed", "an integer", v)),
        },
    };
    let stop = match present(obj, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(list)) if list.len() <= MAX_STOP_STRINGS && items_are_strings(list) => {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        }
        Some(v) => {
            return Err(wrong_type(
                "stop",
                "a string or an array of at most 4 strings",
                v,
            ))
        }
    };
    if stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            "invalid_value",
            "`stop` strings must not be empty",
        ));
    }
    let stream = match present(obj, "stream") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| wrong_type("stream", "true or false", v))?,
    };
    let include_usage = match present(obj, "stream_options") {
        None => false,
        Some(Value::Object(o)) => match o.get("include_usage") {
            None | Some(Value::Null) => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| wrong_type("stream_options.include_usage", "true or false", v))?,
        },
        Some(v) => return Err(wrong_type("stream_options", "an object", v)),
    };
    Ok(GenParams {
        max_tokens,
        sampling: SamplerConfig { seed, ..sampling },
        seed_given,
        stop,
        stream,
        include_usage,
    })
}

/// The field's value; JSON `null` counts as absent, as OpenAI treats it.
fn present<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn number(
    obj: &Map<String, Value>,
    name: &str,
    min: f32,
    max: f32,
) -> Result<Option<f32>, ApiError> {
    match present(obj, name) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if (min as f64..=max as f64).contains(&x) => Ok(Some(x as f32)),
            _ => Err(wrong_type(
                name,
                &format!("a number from {min} to {max}"),
                v,
            )),
        },
    }
}

fn missing(field: &str) -> ApiError {
    ApiError::invalid(
        "missing_field",
        format!("the required field `{field}` is missing"),
    )
}

fn wrong_type(field: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid(
        "invalid_value",
        format!("`{field}` must be {expected}, not {}", excerpt(got)),
    )
}

/// `v` as JSON, cut after at most 40 bytes: an error names what it got
/// without echoing a large request back whole.
fn excerpt(v: &Value) -> String {
    let mut shown = v.to_string();
    if shown.len() > 40 {
        let cut = (0..=40)
            .rev()
            .find(|&i| shown.is_char_boundary(i))
            .unwrap_or(0);
        shown.truncate(cut);
        shown.push('…');
    }
    shown
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Which endpoint a response is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completion,
}

/// What stays the same across one response's chunks.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub endpoint: Endpoint,
    /// `chatcmpl-…` or `cmpl-…`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    pub model: String,
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

impl Usage {
    pub fn json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }
}

impl ResponseHead {
    /// The whole (non-streaming) response.
    pub fn complete(&self, text: &str, finish_reason: &str, usage: Usage) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": finish_reason,
            }),
            Endpoint::Completion => json!({
                "index": 0,
                "text": text,
                "logprobs": null,
                "finish_reason": finish_reason,
            }),
        };
        let object = match self.endpoint {
            Endpoint::Chat => "chat.completion",
            Endpoint::Completion => "text_completion",
        };
        let mut response = self.envelope(object, json!([choice]));
        response["usage"] = usage.json();
        response
    }

    /// The first chat chunk, which names the speaker (chat only).
    pub fn role_chunk(&self) -> Value {
        self.chunk(json!([{
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": null,
            "finish_reason": null,
        }]))
    }

    /// A chunk of streamed text; `finish_reason` on the last one.
    pub fn text_chunk(&self, text: &str, finish_reason: Option<&str>) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let delta = if text.is_empty() && finish_reason.is_some() {
                    json!({})
                } else {
                    json!({"content": text})
                };
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason})
            }
            Endpoint::Completion => {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish_reason})
            }
        };
        self.chunk(json!([choice]))
    }

    /// The chunk after the last one when `stream_options.include_usage`.
    pub fn usage_chunk(&self, usage: Usage) -> Value {
        let mut chunk = self.chunk(json!([]));
        chunk["usage"] = usage.json();
        chunk
    }

    fn chunk(&self, choices: Value) -> Value {
        let object = match self.endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            Endpoint::Completion => "text_completion",
        };
        self.envelope(object, choices)
    }

    /// The fields every response and chunk carries around its choices.
    fn envelope(&self, object: &str, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<ChatRequest, ApiError> {
        parse_chat_request(body.as_bytes())
    }

    #[test]
    fn a_full_chat_request_parses() {
        let r = chat(
            r#"{"model":"m","messages":[{"role":"system","content":"be brief"},
               {"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]}],
               "max_tokens":7,"temperature":0,"top_p":0.5,"seed":-3,"stop":["\n","END"],
               "stream":true,"stream_options":{"include_usage":true},"n":1,"user":"ignored"}"#,
        )
        .unwrap();
        assert_eq!(
            r.messages,
            vec![
                Message::new(Role::System, "be brief"),
                Message::new(Role::User, "hi there")
            ]
        );
        let p = r.params;
        assert_eq!(p.max_tokens, Some(7));
        assert_eq!(p.sampling.temperature, 0.0);
        assert_eq!(p.sampling.top_p, 0.5);
        assert_eq!((p.sampling.seed, p.seed_given), (-3i64 as u64, true));
        assert_eq!(p.stop, ["\n", "END"]);
        assert!(p.stream && p.include_usage);
    }

    #[test]
    fn defaults_are_openais() {
        let p = chat(r#"{"messages":[{"role":"user","content":"x"}],"temperature":null}"#)
            .unwrap()
            .params;
        assert_eq!(p.max_tokens, None);
        assert_eq!(p.sampling.temperature, 1.0);
        assert_eq!(p.sampling.top_p, 1.0);
        assert_eq!(p.sampling.top_k, 0);
        assert!(!p.seed_given && !p.stream && p.stop.is_empty());
    }

    #[test]
    fn bad_bodies_are_400_naming_the_problem() {
        let cases = [
            ("{", "not valid JSON"),
            ("[1]", "must be a JSON object"),
            ("{}", "`messages` is missing"),
            (r#"{"messages":[]}"#, "at least one message"),
            (r#"{"messages":"hi"}"#, "`messages` must be an array"),
            (
                r#"{"messages":[{"content":"x"}]}"#,
                "`messages[0].role` is missing",
            ),
            (
                r#"{"messages":[{"role":"user"}]}"#,
                "`messages[0].content` is missing",
            ),
            (
                r#"{"messages":[{"role":"tool","content":"x"}]}"#,
                "not \"tool\"",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
                "`temperature` must be a number from 0 to 2",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"temperature":3}"#,
                "`temperature`",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
                "`max_tokens` must be an integer of at least 1",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"n":2}"#,
                "`n` must be 1",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}"#,
                "at most 4",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"stop":""}"#,
                "must not be empty",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
                "`stream` must be true or false",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"seed":1.5}"#,
                "`seed` must be an integer",
            ),
        ];
        for (body, expected) in cases {
            let e = chat(body).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
            assert!(e.message.contains(expected), "{body}: {}", e.message);
        }
    }

    /// chat_request fuzz target, `long-role-44e2ab74` (in the corpus): an
    /// unknown role, and a wrong `n`, came back whole in the error message.
    #[test]
    fn errors_quote_a_short_excerpt_of_a_long_value() {
        let long = "y".repeat(10_000);
        for body in [
            format!(r#"{{"messages":[{{"role":"{long}","content":"x"}}]}}"#),
            format!(r#"{{"messages":[{{"role":"user","content":"x"}}],"n":"{long}"}}"#),
        ] {
            let e = chat(&body).unwrap_err();
            assert!(e.message.len() < 120, "{}", e.message);
            assert!(e.message.ends_with(r#"yyy…"#), "{}", e.message);
        }
    }

    #[test]
    fn completion_prompts() {
        let p = |b: &str| parse_completion_request(b.as_bytes()).map(|r| r.prompt);
        assert_eq!(p(r#"{"prompt":"hi"}"#).unwrap(), Prompt::Text("hi".into()));
        assert_eq!(
            p(r#"{"prompt":["hi"]}"#).unwrap(),
            Prompt::Text("hi".into())
        );
        assert_eq!(
            p(r#"{"prompt":[1,2,3]}"#).unwrap(),
            Prompt::Tokens(vec![1, 2, 3])
        );
        assert!(p(r#"{"prompt":["a","b"]}"#)
            .unwrap_err()
            .message
            .contains("one string"));
        assert!(p(r#"{"prompt":[]}"#).unwrap_err().message.contains("empty"));
        assert!(p(r#"{"prompt":[-1]}"#)
            .unwrap_err()
            .message
            .contains("token ids"));
        assert!(p(r#"{"prompt":[5000000000]}"#).is_err());
        assert!(p(r#"{}"#)
            .unwrap_err()
            .message
            .contains("`prompt` is missing"));
    }

    #[test]
    fn chunks_have_openais_shape() {
        let head = ResponseHead {
            endpoint: Endpoint::Chat,
            id: "chatcmpl-1".into(),
            created: 5,
            model: "m".into(),
        };
        assert_eq!(
            head.role_chunk()["choices"][0]["delta"]["role"],
            "assistant"
        );
        let last = head.text_chunk("", Some("stop"));
        assert_eq!(last["choices"][0]["delta"], json!({}));
        assert_eq!(last["object"], "chat.completion.chunk");
        let usage = Usage {
            prompt_tokens: 3,
            completion_tokens: 4,
        };
        assert_eq!(head.usage_chunk(usage)["usage"]["total_tokens"], 7);
        let full = head.complete("hi", "length", usage);
        assert_eq!(full["choices"][0]["message"]["content"], "hi");
        assert_eq!(full["usage"]["completion_tokens"], 4);
    }
}
