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

/// Generates greedily with `--json`: (token ids, text).
fn greedy(model: &std::path::Path, prompt: &str) -> (Vec<u64>, String) {
    let out = bitnet(
        &[
            "run",
            "-m",
            model.to_str().unwrap(),
            "-p",
            prompt,
            "-n",
            "24",
            "--temp",
            "0",
            "--kv",
            "f32",
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let ids = v["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    (ids, v["text"].as_str().unwrap().to_string())
}

#[test]
fn convert_then_run_gives_the_reference_greedy_continuation() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    let dir = std::env::temp_dir().join(format!("bitnet-cli-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (fixture, format) in [("tiny-b158", "tq1"), ("tiny-llama", "i2s")] {
        let out = dir.join(format!("{fixture}.gguf"));
        let run = bitnet(
            &[
                "convert",
                fixtures.join(fixture).join("hf").to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--format",
                format,
            ],
            &[],
        );
        assert!(run.status.success(), "{}", text(&run.stderr));
        assert!(text(&run.stderr).contains("wrote"), "{}", text(&run.stderr));
        let cases: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures.join(fixture).join("cases.json")).unwrap(),
        )
        .unwrap();
        let reference_model = fixtures.join(fixture).join(format!("model-{format}.gguf"));
        for case in cases["cases"].as_array().unwrap() {
            let prompt = case["prompt"].as_str().unwrap();
            let (ids, text_out) = greedy(&out, prompt);
            let reference = greedy(&reference_model, prompt);
            // The same weights as the fixture's own file: the same ids and text.
            assert_eq!(
                (&ids, &text_out),
                (&reference.0, &reference.1),
                "{fixture}: {prompt:?}"
            );
            // transformers' greedy ids, up to the reference's first near tie.
            let want = case["greedy_ids"].as_array().unwrap();
            let margins = case["greedy_top2_margins"].as_array().unwrap();
            for (step, (got, (want, margin))) in
                ids.iter().zip(want.iter().zip(margins)).enumerate()
            {
                if margin.as_f64().unwrap() < 0.05 {
                    break;
                }
                assert_eq!(
                    Some(*got),
                    want.as_u64(),
                    "{fixture} {prompt:?}: step {step}"
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn convert_refuses_bad_checkpoints_without_leaving_a_file() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    let dir = std::env::temp_dir().join(format!("bitnet-cli-badconv-{}", std::process::id()));
    let hf = dir.join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    for f in ["tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixtures.join("tiny-b158/hf").join(f), hf.join(f)).unwrap();
    }
    let mut config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("tiny-b158/hf/config.json")).unwrap(),
    )
    .unwrap();
    config["architectures"] = serde_json::json!(["MambaForCausalLM"]);
    std::fs::write(hf.join("config.json"), config.to_string()).unwrap();
    let out = dir.join("out.gguf");
    let o = out.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["convert", "/nonexistent/checkpoint", "-o", o],
            "/nonexistent/checkpoint/config.json",
        ),
        (
            vec!["convert", hf.to_str().unwrap(), "-o", o],
            "architecture \"MambaForCausalLM\" is not supported",
        ),
        (
            vec!["convert", hf.to_str().unwrap(), "-o", o, "--embd", "q4_0"],
            "invalid value 'q4_0'",
        ),
    ] {
        let run = bitnet(&args, &[]);
        assert!(!run.status.success(), "{args:?}");
        let err = text(&run.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(
            !out.exists() && !dir.join("out.gguf.partial").exists(),
            "{args:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
