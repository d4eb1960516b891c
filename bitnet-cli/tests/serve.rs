//! `bitnet serve` over real HTTP on 127.0.0.1 with the fixture model:
//! greedy replies equal `bitnet run --temp 0`'s, concurrent requests stay
//! independent, disconnects free their slot, every error status, the API
//! key, metrics, memory under load, and shutdown.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/tiny-b158/model-i2s.gguf")
}

/// A running server, killed when dropped.
struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(flags: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bitnet"))
            .args(["serve", "-m", fixture().to_str().unwrap(), "--port", "0"])
            .args(flags)
            .env_remove("BITNET_KERNEL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting bitnet serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no address printed: {}", log.lock().unwrap()));
        let server = Server { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(&server, "/health").status != 200 {
            assert!(Instant::now() < deadline, "never ready: {}", server.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    fn metric(&self, name: &str) -> f64 {
        let text = String::from_utf8(get(self, "/metrics").body).unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(' '))
            .filter(|(key, _)| {
                *key == name || key.strip_prefix(name).is_some_and(|l| l.starts_with('{'))
            })
            .map(|(_, v)| v.parse::<f64>().unwrap())
            .sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The `data:` payloads of an SSE body, `[DONE]` last.
    fn events(&self) -> Vec<String> {
        String::from_utf8(self.body.clone())
            .unwrap()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_string)
            .collect()
    }
}

fn open(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> TcpStream {
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        server.addr,
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A server refusing a large body may close before reading it all.
    let _ = s.write_all(body);
    s
}

fn read_response(mut s: TcpStream) -> Response {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let headers = String::from_utf8(raw[..split].to_vec()).unwrap();
    let status = headers.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    let response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if response
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Response { body, ..response }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size");
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}

fn request(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    read_response(open(server, method, path, headers, body))
}

fn get(server: &Server, path: &str) -> Response {
    request(server, "GET", path, &[], b"")
}

fn post(server: &Server, path: &str, body: &Value) -> Response {
    request(server, "POST", path, &[], body.to_string().as_bytes())
}

/// `bitnet run --temp 0` on the fixture: the reference text.
fn greedy(prompt: &str, n: usize, chat: bool) -> (String, Vec<u32>) {
    let n = n.to_string();
    let model = fixture();
    let mut args = vec![
        "run",
        "-m",
        model.to_str().unwrap(),
        "-p",
        prompt,
        "-n",
        &n,
        "--temp",
        "0",
        "--json",
        "-t",
        "1",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    if chat {
        args.push("--chat".into());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids = v["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as u32)
        .collect();
    (v["text"].as_str().unwrap().to_string(), ids)
}

fn chat_body(prompt: &str, n: usize, stream: bool) -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": n, "temperature": 0, "stream": stream})
}

fn completion_body(prompt: &str, n: usize, stream: bool) -> Value {
    json!({"model": "m", "prompt": prompt, "max_tokens": n, "temperature": 0, "stream": stream})
}

/// The text and finish reason of a response, streamed or not.
fn reply(r: &Response, chat: bool, stream: bool) -> (String, String) {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    if !stream {
        let v = r.json();
        let choice = &v["choices"][0];
        let text = if chat {
            &choice["message"]["content"]
        } else {
            &choice["text"]
        };
        return (
            text.as_str().unwrap().to_string(),
            choice["finish_reason"].as_str().unwrap().to_string(),
        );
    }
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = r.events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let mut text = String::new();
    let mut finish = None;
    for e in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(e).unwrap();
        assert!(
            finish.is_none(),
            "a chunk after the finish_reason: {events:?}"
        );
        let choice = &v["choices"][0];
        let piece = if chat {
            &choice["delta"]["content"]
        } else {
            &choice["text"]
        };
        text.push_str(piece.as_str().unwrap_or(""));
        finish = choice["finish_reason"].as_str().map(str::to_string);
    }
    (text, finish.expect("a finish_reason"))
}

#[test]
fn greedy_replies_equal_bitnet_run_streamed_or_not() {
    let server = Server::start(&[]);
    assert!(server.log().contains("layout: "), "{}", server.log());
    let prompt = "def fibonacci(n):\n    return";
    let (text, ids) = greedy(prompt, 8, false);
    // The fixture's greedy continuation (its first 8 steps have no near tie).
    assert_eq!(ids, [43, 55, 55, 471, 373, 861, 507, 507]);
    for stream in [false, true] {
        let r = post(
            &server,
            "/v1/completions",
            &completion_body(prompt, 8, stream),
        );
        assert_eq!(reply(&r, false, stream), (text.clone(), "length".into()));
    }
    let (chat_text, _) = greedy("hi there", 6, true);
    for stream in [false, true] {
        let r = post(
            &server,
            "/v1/chat/completions",
            &chat_body("hi there", 6, stream),
        );
        assert_eq!(
            reply(&r, true, stream),
            (chat_text.clone(), "length".into())
        );
        if stream {
            let first: Value = serde_json::from_str(&r.events()[0]).unwrap();
            assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
            assert_eq!(first["object"], "chat.completion.chunk");
        }
    }

    // usage, ids and object names.
    let v = post(
        &server,
        "/v1/chat/completions",
        &chat_body("hi there", 6, false),
    )
    .json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["usage"]["completion_tokens"], 6);
    let p = v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(p > 2);
    assert_eq!(v["usage"]["total_tokens"].as_u64().unwrap(), p + 6);
    let mut body = completion_body(prompt, 8, true);
    body["stream_options"] = json!({"include_usage": true});
    let events = post(&server, "/v1/completions", &body).events();
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 13, "completion_tokens": 8, "total_tokens": 21})
    );
    assert_eq!(usage["choices"], json!([]));
    // Token-id prompts are used as given.
    let ids_prompt = json!({"prompt": [1016, 543, 289, 72, 65, 269, 756, 669, 7, 77, 290, 258, 386], "max_tokens": 8, "temperature": 0});
    assert_eq!(
        reply(&post(&server, "/v1/completions", &ids_prompt), false, false).0,
        text
    );

    // A stop string ends the reply before it, in both modes.
    let (long, _) = greedy(prompt, 24, false);
    let chars: Vec<char> = long.chars().collect();
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
    let expected = long[..long.find(&stop).unwrap()].to_string();
    for stream in [false, true] {
        let mut body = completion_body(prompt, 24, stream);
        body["stop"] = json!(["never matches", stop]);
        let r = post(&server, "/v1/completions", &body);
        assert_eq!(
            reply(&r, false, stream),
            (expected.clone(), "stop".into()),
            "stop {stop:?} in {long:?}"
        );
    }

    let models = get(&server, "/v1/models").json();
    assert_eq!(models["data"][0]["id"], "model-i2s");
    assert_eq!(models["object"], "list");
}

/// `serve --lm-head screen`: a greedy request alone in its steps reads the
/// screen and gets the reply `run` gives from the file's head.
#[test]
fn a_screened_lm_head_serves_the_same_greedy_replies() {
    let server = Server::start(&["--lm-head", "screen"]);
    assert!(
        server.log().contains("LM head screened"),
        "{}",
        server.log()
    );
    let prompt = "def fibonacci(n):\n    return";
    let (text, _) = greedy(prompt, 16, false);
    for stream in [false, true] {
        let r = post(
            &server,
            "/v1/completions",
            &completion_body(prompt, 16, stream),
        );
        assert_eq!(reply(&r, false, stream), (text.clone(), "length".into()));
    }
}

#[test]
fn concurrent_clients_get_their_own_replies_and_memory_stays_flat() {
    const CLIENTS: usize = 32;
    const REQUESTS: usize = 20;
    let prompts: Vec<String> = (0..12)
        .map(|i| {
            format!(
                "Request {i}: {} and then",
                [
                    "once",
                    "fox",
                    "tab\there",
                    "café 東京",
                    "x = [1, 22]",
                    "hello"
                ][i % 6]
            )
        })
        .collect();
    // Replies of different lengths, so mixed-up sequences would show.
    let n_for = |i: usize| 4 + i % 9;
    let refs: Vec<[(String, Vec<u32>); 2]> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| [greedy(p, n_for(i), false), greedy(p, n_for(i), true)])
        .collect();
    // A context just long enough for these requests keeps the reserved KV
    // caches small, so that growth elsewhere is not hidden behind them.
    let server = Arc::new(Server::start(&[
        "--instances",
        "2",
        "--threads",
        "1",
        "--slots",
        "8",
        "-c",
        "128",
    ]));
    assert!(
        server.log().contains("layout: 2 instances × 1 thread"),
        "{}",
        server.log()
    );
    let run_load = |requests: usize| {
        let ok_before = server.metric("bitnet_requests_total{status=\"200\"}");
        let tokens_before = server.metric("bitnet_completion_tokens_total");
        let start = Instant::now();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let server = Arc::clone(&server);
                let prompts = prompts.clone();
                let refs = refs.clone();
                std::thread::spawn(move || {
                    let mut tokens = 0;
                    for r in 0..requests {
                        let i = (c * 5 + r * 7) % prompts.len();
                        let (chat, stream) = (r % 2 == 1, (r / 2) % 2 == 1);
                        let (path, body) = if chat {
                            (
                                "/v1/chat/completions",
                                chat_body(&prompts[i], n_for(i), stream),
                            )
                        } else {
                            (
                                "/v1/completions",
                                completion_body(&prompts[i], n_for(i), stream),
                            )
                        };
                        let got = reply(&post(&server, path, &body), chat, stream);
                        let expected = &refs[i][chat as usize];
                        assert_eq!(
                            got.0, expected.0,
                            "client {c} request {r}: prompt {i} chat {chat} stream {stream}"
                        );
                        tokens += expected.1.len();
                    }
                    tokens
                })
            })
            .collect();
        let tokens: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
        eprintln!(
            "{} requests, {tokens} tokens in {:.1} s",
            CLIENTS * requests,
            start.elapsed().as_secs_f64()
        );
        assert_eq!(
            server.metric("bitnet_requests_total{status=\"200\"}") - ok_before,
            (CLIENTS * requests) as f64
        );
        assert_eq!(
            server.metric("bitnet_completion_tokens_total") - tokens_before,
            tokens as f64
        );
        // A reply's last byte can reach its client a moment before the
        // engine thread frees the slot: the gauges must settle, promptly.
        let settle = Instant::now();
        while server.metric("bitnet_active_slots") != 0.0
            && settle.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(server.metric("bitnet_queue_depth"), 0.0);
        assert_eq!(server.metric("bitnet_active_slots"), 0.0);
    };
    // "Before" is the server once it has served this concurrency: model
    // loaded, every slot's KV cache and the step buffers reserved at start,
    // and one request of each kind (completion or chat, streamed or not)
    // from each of the 32 clients at once. That sizes what
    // scales with open connections rather than with traffic (hyper keeps
    // about 30 kB per connection, which the allocator holds after they
    // close: about 9 % of this 1 MB model's server). Growth over the 5×
    // longer load that follows is what a leak per request would show.
    let rss_started = server.rss_kib();
    run_load(4);
    let rss_before = server.rss_kib();
    run_load(REQUESTS);
    for i in 0..2 {
        assert!(
            server.metric(&format!(
                "bitnet_worker_busy_seconds_total{{instance=\"{i}\",worker=\"0\"}}"
            )) > 0.0
        );
    }
    let rss_after = server.rss_kib();
    eprintln!(
        "RSS {rss_started} kB started, {rss_before} kB after {CLIENTS} clients × 4 requests, \
         {rss_after} kB after {CLIENTS} clients × {REQUESTS} more"
    );
    assert!(
        (rss_after as f64) <= rss_before as f64 * 1.10,
        "RSS grew from {rss_before} kB to {rss_after} kB"
    );
}

/// Reads a streaming response until `n` data events arrived.
fn read_events(s: &mut TcpStream, n: usize) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&seen).matches("data: ").count() < n {
        let got = s.read(&mut buf).unwrap();
        assert!(
            got > 0,
            "stream ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..got]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_client_that_goes_away_frees_its_slot() {
    let server = Server::start(&["--instances", "1", "--threads", "1", "--slots", "2"]);
    let long = completion_body("Once upon a time", 4000, true);
    let mut s = open(
        &server,
        "POST",
        "/v1/completions",
        &[],
        long.to_string().as_bytes(),
    );
    let head = read_events(&mut s, 3);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(server.metric("bitnet_active_slots"), 1.0);
    drop(s);
    wait_for("the stream's cancellation", || {
        server.metric("bitnet_cancelled_total") == 1.0
    });
    assert_eq!(server.metric("bitnet_active_slots"), 0.0);
    let generated = server.metric("bitnet_completion_tokens_total");
    assert!(
        generated < 4000.0,
        "the sequence ran to the end ({generated} tokens)"
    );

    // A non-streaming request whose client leaves is cancelled too.
    let s = open(
        &server,
        "POST",
        "/v1/completions",
        &[],
        completion_body("Once upon a time", 4000, false)
            .to_string()
            .as_bytes(),
    );
    wait_for("the request to start", || {
        server.metric("bitnet_active_slots") == 1.0
    });
    drop(s);
    wait_for("the request's cancellation", || {
        server.metric("bitnet_cancelled_total") == 2.0
    });
    assert_eq!(server.metric("bitnet_active_slots"), 0.0);

    // The freed slots serve the next client normally.
    let (text, _) = greedy("hi", 5, false);
    assert_eq!(
        reply(
            &post(&server, "/v1/completions", &completion_body("hi", 5, false)),
            false,
            false
        )
        .0,
        text
    );
}

fn error_of(r: &Response, status: u16, message_part: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let e = r.json();
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains(message_part), "{message}");
    assert!(
        e["error"]["type"].is_string() && e["error"]["code"].is_string(),
        "{e}"
    );
}

#[test]
fn errors_have_the_documented_statuses_and_bodies() {
    let server = Server::start(&[
        "--instances",
        "1",
        "--threads",
        "1",
        "--slots",
        "1",
        "--max-queue",
        "1",
    ]);
    let chat = "/v1/chat/completions";
    error_of(
        &request(&server, "POST", chat, &[], b"{\"messages\": [}"),
        400,
        "not valid JSON",
    );
    error_of(
        &post(&server, chat, &json!({"model": "m"})),
        400,
        "`messages` is missing",
    );
    error_of(
        &post(&server, "/v1/completions", &json!({"max_tokens": 3})),
        400,
        "`prompt` is missing",
    );
    error_of(
        &post(
            &server,
            chat,
            &json!({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
        ),
        400,
        "`temperature`",
    );
    let big = vec![b' '; (1 << 20) + 1];
    error_of(
        &request(&server, "POST", chat, &[], &big),
        413,
        "larger than",
    );
    let long_prompt = "word ".repeat(2500);
    error_of(
        &post(
            &server,
            "/v1/completions",
            &completion_body(&long_prompt, 4, false),
        ),
        400,
        "the context is 4096 tokens",
    );
    let r = post(
        &server,
        "/v1/completions",
        &completion_body(&long_prompt, 4, false),
    );
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    let prompt_tokens: usize = message
        .strip_prefix("the prompt is ")
        .and_then(|m| m.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{message}"));
    assert!(prompt_tokens > 4096, "{message}");
    error_of(
        &get(&server, "/v2/nothing"),
        404,
        "no route GET /v2/nothing",
    );
    error_of(&get(&server, chat), 405, "GET is not allowed");

    // One running, one waiting: the third is turned away with Retry-After.
    let long = completion_body("Once upon a time", 4000, true).to_string();
    let mut running = open(&server, "POST", "/v1/completions", &[], long.as_bytes());
    read_events(&mut running, 1);
    let mut waiting = open(&server, "POST", "/v1/completions", &[], long.as_bytes());
    let mut head = [0u8; 12];
    waiting.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let r = post(&server, "/v1/completions", &completion_body("hi", 2, false));
    error_of(&r, 429, "queue is full");
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    drop((running, waiting));
    wait_for("both to be cancelled", || {
        server.metric("bitnet_cancelled_total") == 2.0
    });
    assert_eq!(
        post(&server, "/v1/completions", &completion_body("hi", 2, false)).status,
        200
    );
    for status in ["400", "404", "405", "413", "429"] {
        assert!(
            server.metric(&format!("bitnet_requests_total{{status=\"{status}\"}}")) >= 1.0,
            "{status}"
        );
    }
}

#[test]
fn the_api_key_guards_everything_but_health() {
    let server = Server::start(&["--api-key", "s3cret"]);
    let body = completion_body("hi", 2, false).to_string();
    let with =
        |auth: &[(&str, &str)]| request(&server, "POST", "/v1/completions", auth, body.as_bytes());
    error_of(&with(&[]), 401, "API key");
    error_of(&with(&[("Authorization", "Bearer wrong")]), 401, "API key");
    error_of(&with(&[("Authorization", "s3cret")]), 401, "API key");
    assert_eq!(with(&[("Authorization", "Bearer s3cret")]).status, 200);
    error_of(&get(&server, "/v1/models"), 401, "API key");
    error_of(&get(&server, "/metrics"), 401, "API key");
    assert_eq!(
        request(
            &server,
            "GET",
            "/metrics",
            &[("Authorization", "Bearer s3cret")],
            b""
        )
        .status,
        200
    );
    assert_eq!(get(&server, "/health").status, 200);
}

#[test]
fn sigterm_cancels_what_outlives_the_grace_period_and_exits_0() {
    let mut server = Server::start(&["--grace", "0.3", "--instances", "1", "--threads", "1"]);
    let long = completion_body("Once upon a time", 4000, true).to_string();
    let mut s = open(&server, "POST", "/v1/completions", &[], long.as_bytes());
    read_events(&mut s, 2);
    let kill = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let start = Instant::now();
    let mut rest = String::new();
    s.read_to_string(&mut rest).unwrap();
    assert!(
        rest.contains("the server shut down before the reply was done")
            && rest.contains("data: [DONE]"),
        "{rest}"
    );
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still running: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // The process has exited, so nothing listens on its port any more. (A
    // connect test would race with other tests' servers, which may be given
    // the freed port.)
    assert!(status.success(), "{status:?}: {}", server.log());
    assert!(server.log().contains("stopped"), "{}", server.log());
}

#[test]
fn the_official_openai_python_client_works_in_both_modes() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openai/client.py");
    let probe = Command::new("python3")
        .args(["-c", "import openai"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED: python3 with the `openai` package is not installed (pip install openai)"
        );
        return;
    }
    let server = Server::start(&["--api-key", "k3y"]);
    let out = Command::new("python3")
        .arg(&script)
        .arg(format!("http://{}/v1", server.addr))
        .arg("k3y")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (chat, _) = greedy("hi there", 6, true);
    let (completion, _) = greedy("def fibonacci(n):\n    return", 8, false);
    assert_eq!(got["chat"], json!([chat, "length", 6]));
    assert_eq!(got["chat_stream"], json!([chat, "length"]));
    assert_eq!(got["completion"], json!([completion, "length", 13]));
    assert_eq!(got["completion_stream"], json!([completion, 21]));
    assert_eq!(got["models"], json!(["model-i2s"]));
    assert_eq!(got["bad_key"], 401);
}
