//! Routes: the OpenAI endpoints, health, metrics, errors and the API key.
//! Handlers only parse, tokenize, submit and relay; the model runs on the
//! instance threads.

use super::scheduler::{Chunk, End, Job, Outcome, Rejected, RETRY_AFTER};
use super::{AppState, Engine};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bitnet_openai::{self as openai, ApiError, Endpoint, GenParams, Prompt, ResponseHead, Usage};
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::json;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// Largest request body accepted (413 beyond it).
pub const BODY_LIMIT: usize = 1 << 20;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_api_key,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            count_responses,
        ))
        .with_state(state)
}

/// An [`ApiError`] as an HTTP response: its status, the OpenAI error body
/// and the headers that status calls for. A wrapper because the orphan rule
/// keeps axum's trait off the library's type.
#[derive(Debug)]
struct ErrorResponse(ApiError);

impl From<ApiError> for ErrorResponse {
    fn from(e: ApiError) -> ErrorResponse {
        ErrorResponse(e)
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let ErrorResponse(e) = self;
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json_response(status, &e.body());
        if status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(RETRY_AFTER.as_secs()),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn count_responses(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // Probes and scrapes would drown the API traffic.
    let counted = !matches!(req.uri().path(), "/health" | "/metrics");
    let response = next.run(req).await;
    if counted {
        state.metrics.count_response(response.status().as_u16());
    }
    response
}

async fn require_api_key(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key {
        // Health probes come from load balancers that hold no key.
        if req.uri().path() != "/health" {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes())) {
                return ErrorResponse(ApiError::new(
                    401,
                    "invalid_request_error",
                    "invalid_api_key",
                    "a valid API key is required: send `Authorization: Bearer KEY`",
                ))
                .into_response();
            }
        }
    }
    next.run(req).await
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn not_found(req: Request) -> ErrorResponse {
    ErrorResponse(ApiError::new(
        404,
        "invalid_request_error",
        "not_found",
        format!("no route {} {}", req.method(), req.uri().path()),
    ))
}

async fn method_not_allowed(req: Request) -> ErrorResponse {
    ErrorResponse(ApiError::new(
        405,
        "invalid_request_error",
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    ))
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    if state.engine.get().is_some() {
        json_response(StatusCode::OK, &json!({"status": "ok"}))
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "loading"}),
        )
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state
        .metrics
        .render(state.engine.get().map(|e| &e.scheduler));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn models(State(state): State<Arc<AppState>>) -> Result<Response, ErrorResponse> {
    let engine = state.engine()?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": [{
                "id": engine.model_name,
                "object": "model",
                "created": engine.created,
                "owned_by": "bitnet-rs",
            }],
        }),
    ))
}

async fn chat(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ErrorResponse> {
    let req = openai::parse_chat_request(&body.map_err(body_error)?)?;
    let engine = state.engine()?;
    let prompt = engine
        .template
        .render(&engine.tok, &req.messages, true)
        .map_err(|e| ApiError::invalid("invalid_value", e.to_string()))?;
    Ok(generate(&state, engine, Endpoint::Chat, prompt, req.params).await?)
}

async fn completions(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ErrorResponse> {
    let req = openai::parse_completion_request(&body.map_err(body_error)?)?;
    let engine = state.engine()?;
    let prompt = match req.prompt {
        Prompt::Text(text) => engine
            .tok
            .encode_prompt(&text, false)
            .map_err(|e| ApiError::invalid("invalid_value", e.to_string()))?,
        Prompt::Tokens(ids) => {
            let vocab = engine.vocab;
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(ApiError::invalid(
                    "invalid_value",
                    format!("token id {bad} in `prompt` is outside the vocabulary of {vocab}"),
                )
                .into());
            }
            ids
        }
    };
    Ok(generate(&state, engine, Endpoint::Completion, prompt, req.params).await?)
}

fn body_error(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            413,
            "invalid_request_error",
            "request_too_large",
            format!("the request body is larger than {BODY_LIMIT} bytes"),
        )
    } else {
        ApiError::invalid(
            "invalid_body",
            format!("the request body could not be read: {e}"),
        )
    }
}

impl AppState {
    fn engine(&self) -> Result<&Engine, ApiError> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(unavailable("the server is shutting down"));
        }
        self.engine
            .get()
            .ok_or_else(|| unavailable("the model is still loading"))
    }
}

fn unavailable(message: &str) -> ApiError {
    ApiError::new(503, "server_error", "unavailable", message)
}

async fn generate(
    state: &AppState,
    engine: &Engine,
    endpoint: Endpoint,
    prompt: Vec<u32>,
    params: GenParams,
) -> Result<Response, ApiError> {
    if prompt.is_empty() {
        return Err(ApiError::invalid(
            "invalid_value",
            "the prompt is empty and the model adds no BOS token",
        ));
    }
    if prompt.len() >= engine.ctx {
        return Err(ApiError::invalid(
            "context_length_exceeded",
            format!(
                "the prompt is {} tokens; the context is {} tokens, so a prompt may have at most {}",
                prompt.len(),
                engine.ctx,
                engine.ctx - 1
            ),
        ));
    }
    let mut sampling = params.sampling.clone();
    if !params.seed_given {
        sampling.seed = fresh_seed();
    }
    let (tx, rx) = unbounded_channel();
    let prompt_tokens = prompt.len();
    let job = Job {
        max_tokens: params.max_tokens.unwrap_or(engine.ctx),
        prompt,
        sampling,
        stop_tokens: engine.stop_tokens.clone(),
        stop_strings: params.stop.clone(),
        reply: tx,
    };
    match engine.scheduler.submit(job) {
        Ok(()) => {}
        Err(Rejected::QueueFull) => {
            return Err(ApiError::new(
                429,
                "rate_limit_error",
                "queue_full",
                "every slot is busy and the queue is full; retry later",
            ))
        }
        Err(Rejected::Closed) => return Err(unavailable("the server is shutting down")),
    }
    let head = ResponseHead {
        endpoint,
        id: format!(
            "{}-{}",
            match endpoint {
                Endpoint::Chat => "chatcmpl",
                Endpoint::Completion => "cmpl",
            },
            state.next_response.fetch_add(1, Ordering::Relaxed)
        ),
        created: unix_now(),
        model: engine.model_name.clone(),
    };
    if params.stream {
        let events = sse_events(head, rx, params.include_usage, prompt_tokens);
        return Ok(Sse::new(events).into_response());
    }
    let mut rx = rx;
    let mut text = String::new();
    let outcome = loop {
        match rx.recv().await {
            Some(Chunk::Text(t)) => text.push_str(&t),
            Some(Chunk::Done(o)) => break o,
            None => return Err(failed("the instance stopped")),
        }
    };
    match &outcome.end {
        End::Stop | End::Length => {}
        End::Cancelled => {
            return Err(unavailable(
                "the server shut down before the reply was done",
            ))
        }
        End::Failed(msg) => return Err(failed(msg)),
    }
    let usage = usage(&outcome);
    Ok(json_response(
        StatusCode::OK,
        &head.complete(&text, outcome.end.finish_reason(), usage),
    ))
}

fn failed(message: &str) -> ApiError {
    ApiError::new(500, "server_error", "internal_error", message)
}

fn usage(o: &Outcome) -> Usage {
    Usage {
        prompt_tokens: o.prompt_tokens,
        completion_tokens: o.completion_tokens,
    }
}

/// The SSE body: (chat) a role chunk, a chunk per piece of text, a last
/// chunk with `finish_reason`, (optionally) a usage chunk, `[DONE]`.
/// Dropping it (client gone) closes `rx`, which cancels the job.
fn sse_events(
    head: ResponseHead,
    rx: UnboundedReceiver<Chunk>,
    include_usage: bool,
    prompt_tokens: usize,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let data = |v: serde_json::Value| Event::default().data(v.to_string());
    let first: Vec<Event> = match head.endpoint {
        Endpoint::Chat => vec![data(head.role_chunk())],
        Endpoint::Completion => Vec::new(),
    };
    let rest = stream::unfold(Some(rx), move |rx| {
        let head = head.clone();
        async move {
            let mut rx = rx?;
            let events = match rx.recv().await {
                Some(Chunk::Text(t)) => vec![data(head.text_chunk(&t, None))],
                Some(Chunk::Done(o)) => {
                    let mut events = match &o.end {
                        End::Stop | End::Length => {
                            vec![data(head.text_chunk("", Some(o.end.finish_reason())))]
                        }
                        End::Cancelled => vec![data(
                            unavailable("the server shut down before the reply was done").body(),
                        )],
                        End::Failed(msg) => vec![data(failed(msg).body())],
                    };
                    if include_usage {
                        events.push(data(head.usage_chunk(usage(&o))));
                    }
                    events.push(Event::default().data("[DONE]"));
                    return Some((events, None));
                }
                None => {
                    let mut events = vec![data(failed("the instance stopped").body())];
                    if include_usage {
                        events.push(data(head.usage_chunk(Usage {
                            prompt_tokens,
                            completion_tokens: 0,
                        })));
                    }
                    events.push(Event::default().data("[DONE]"));
                    return Some((events, None));
                }
            };
            Some((events, Some(rx)))
        }
    });
    stream::iter(first)
        .chain(rest.flat_map(stream::iter))
        .map(Ok)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A seed for requests that give none: differs per request and per run.
fn fresh_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // splitmix64 of the mix, so close inputs give unrelated seeds.
    let mut z = nanos ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
