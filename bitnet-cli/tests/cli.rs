//! The real `bitnet` binary: the main job, its errors, and its output contract.

use std::path::PathBuf;
use std::process::{Command, Output};

fn bitnet(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitnet"));
    cmd.args(args).env_remove("BITNET_KERNEL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running bitnet")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A tiny synthetic model written by `bitnet gen-model`, once per test binary.
fn tiny_model() -> PathBuf {
    static MODEL: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("bitnet-cli-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("tiny.gguf");
            let out = bitnet(
                &[
                    "gen-model",
                    "-o",
                    path.to_str().unwrap(),
                    "--preset",
                    "tiny",
                ],
                &[],
            );
            assert!(out.status.success(), "{}", text(&out.stderr));
            path
        })
        .clone()
}

#[test]
fn run_streams_text_and_reports_timings() {
    let model = tiny_model();
    let out = bitnet(
        &[
            "run",
            "-m",
            model.to_str().unwrap(),
            "-p",
            "Once upon a time",
            "-n",
            "8",
            "--temp",
            "0",
            "-t",
            "2",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("prompt 17 tok")
            && err.contains("generated 8 tok")
            && err.contains("threads 2"),
        "{err}"
    );
    // Greedy decoding is reproducible, whatever the thread count.
    let again = bitnet(
        &[
            "run",
            "-m",
            model.to_str().unwrap(),
            "-p",
            "Once upon a time",
            "-n",
            "8",
            "--temp",
            "0",
            "-t",
            "1",
        ],
        &[],
    );
    assert_eq!(out.stdout, again.stdout);
}

#[test]
fn run_json_is_one_object() {
    let model = tiny_model();
    let out = bitnet(
        &[
            "run",
            "-m",
            model.to_str().unwrap(),
            "-p",
            "hi",
            "-n",
            "3",
            "--json",
            "--seed",
            "9",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["token_ids"].as_array().unwrap().len(), 3);
    assert_eq!(v["prompt_tokens"], 3);
    assert!(v["timings"]["decode_tok_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_input_is_a_clear_error() {
    let model = tiny_model();
    let m = model.to_str().unwrap();
    let long = "word ".repeat(300);
    for (args, env, needle) in [
        (
            vec!["run", "-m", m, "-p", long.as_str(), "-c", "64"],
            vec![],
            "longer than the context of 64",
        ),
        (
            vec!["run", "-m", "/nonexistent.gguf", "-p", "x"],
            vec![],
            "/nonexistent.gguf",
        ),
        (
            vec!["run", "-m", m, "-p", "x", "--top-p", "2"],
            vec![],
            "top-p",
        ),
        (
            vec!["run", "-m", m, "-p", "x"],
            vec![("BITNET_KERNEL", "sse9")],
            "BITNET_KERNEL",
        ),
        (
            vec!["gen-model", "-o", "/tmp/x.gguf", "--preset", "huge"],
            vec![],
            "unknown preset",
        ),
    ] {
        let out = bitnet(&args, &env);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // A file that is not GGUF.
    let junk = std::env::temp_dir().join(format!("bitnet-junk-{}.gguf", std::process::id()));
    std::fs::write(&junk, b"not a model at all").unwrap();
    let out = bitnet(&["run", "-m", junk.to_str().unwrap(), "-p", "x"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a GGUF file"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(junk).unwrap();
}

#[test]
fn kernels_self_check_passes() {
    let out = bitnet(&["kernels", "--no-bench"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("bit for bit"));
    let out = bitnet(&["kernels", "--no-bench"], &[("BITNET_KERNEL", "scalar")]);
    assert!(
        text(&out.stdout).contains("chosen: scalar"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn chat_keeps_the_conversation_and_resets() {
    use std::io::Write;
    use std::process::Stdio;
    let model = tiny_model();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args([
            "chat",
            "-m",
            model.to_str().unwrap(),
            "-n",
            "4",
            "--temp",
            "0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nagain\n/reset\nhello\n/exit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let replies: Vec<String> = text(&out.stdout)
        .split("> ")
        .map(str::to_string)
        .filter(|s| !s.is_empty())
        .collect();
    assert!(replies.len() >= 3, "{replies:?}");
    // After /reset, the same first message gets the same greedy reply.
    assert_eq!(replies[0], replies[2], "{replies:?}");
    assert!(text(&out.stderr).contains("conversation reset"));
}

#[test]
fn chat_refuses_a_line_over_the_prompt_limit_and_goes_on() {
    use std::io::Write;
    use std::process::Stdio;
    let model = tiny_model();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(["chat", "-m", model.to_str().unwrap(), "-n", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = vec![b'x'; bitnet_model::tokenizer::MAX_PROMPT_BYTES + 1];
    input.extend(b"\nhello\n/exit\n");
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("more than the limit of 1048576"),
        "{}",
        text(&out.stderr)
    );
    // The next line still gets a reply.
    assert!(
        text(&out.stdout).matches("> ").count() >= 3,
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn bench_json_rows_have_the_documented_fields() {
    let model = tiny_model();
    let out = bitnet(
        &[
            "bench",
            "-m",
            model.to_str().unwrap(),
            "-p",
            "16",
            "-n",
            "4",
            "-t",
            "1,2",
            "--batch",
            "1,3",
            "-r",
            "1",
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("a JSON list");
    // Per thread count: pp16, tg4 at batch 1 and tg4 at batch 3.
    assert_eq!(rows.len(), 6);
    for r in &rows {
        for key in [
            "test", "n_prompt", "n_gen", "threads", "batch", "tok_s", "tok_s_sd", "kernel",
        ] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
        assert!(r["tok_s"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(rows[0]["test"], "pp16");
    assert_eq!(rows[2]["batch"], 3);
    let out = bitnet(
        &["bench", "-m", model.to_str().unwrap(), "-p", "99999"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("context"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn info_describes_the_model_and_rejects_bad_files() {
    let fixtures =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/tiny-b158");
    let out = bitnet(
        &[
            "info",
            "-m",
            fixtures.join("model-tq2.gguf").to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    for needle in [
        "bitnet-b1.58",
        "hidden 256",
        "TQ2_0",
        "repacked to I2_S",
        "kernels:",
    ] {
        assert!(s.contains(needle), "{needle} missing in:\n{s}");
    }
    let out = bitnet(
        &[
            "info",
            "-m",
            fixtures.join("model-i2s.gguf").to_str().unwrap(),
            "--all",
        ],
        &[],
    );
    assert!(
        text(&out.stdout).contains("in place") && text(&out.stdout).contains("blk.0.attn_q.weight")
    );
    let out = bitnet(
        &["info", "-m", fixtures.join("cases.json").to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a GGUF file"),
        "{}",
        text(&out.stderr)
    );
}
