//! `bitnet batch` on the fixture model: order, equality with `run`, resume,
//! shards, interrupts, and its error paths.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{bitnet, model, text};

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    common::scratch("batch", name)
}

fn records(jsonl: &str) -> Vec<Value> {
    jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A record without its timings (which differ from run to run).
fn content(v: &Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove("timings");
    v
}

const PROMPTS: [&str; 7] = [
    "Once upon a time",
    "The capital of France is",
    "hi",
    "1, 2, 3,",
    "A long time ago in a galaxy far, far away",
    "Question: what is ternary? Answer:",
    "ok",
];

fn write_jsonl(path: &Path, n_predict: &[Option<usize>]) {
    let lines: Vec<String> = PROMPTS
        .iter()
        .zip(n_predict)
        .enumerate()
        .map(|(i, (p, n))| {
            let mut v = serde_json::json!({"id": format!("p{i}"), "prompt": p});
            if let Some(n) = n {
                v["n_predict"] = (*n).into();
            }
            v.to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn results_come_in_input_order_and_equal_run() {
    let dir = scratch("order");
    let prompts = dir.join("prompts.txt");
    // A blank line is not a prompt; ids of a text file are line numbers.
    let body = format!(
        "{}\n\n{}\n",
        PROMPTS[..3].join("\n"),
        PROMPTS[3..].join("\n")
    );
    std::fs::write(&prompts, body).unwrap();
    let m = model();
    let out = bitnet(&[
        "batch",
        "-m",
        &m,
        "-f",
        prompts.to_str().unwrap(),
        "-n",
        "6",
        "--temp",
        "0",
        "--instances",
        "2",
        "-t",
        "1",
        "--batch-size",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let recs = records(&text(&out.stdout));
    let ids: Vec<u64> = recs.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 5, 6, 7, 8]);
    for (rec, prompt) in recs.iter().zip(PROMPTS) {
        assert_eq!(rec["prompt"], prompt);
        assert_eq!(rec["tokens"].as_array().unwrap().len(), 6);
        assert_eq!(rec["stop"], "length");
        assert!(rec["timings"]["total_ms"].as_f64().unwrap() > 0.0);
        let lone = bitnet(&["run", "-m", &m, "-p", prompt, "-n", "6", "--temp", "0"]);
        assert!(lone.status.success(), "{}", text(&lone.stderr));
        assert_eq!(
            format!("{}\n", rec["text"].as_str().unwrap()),
            text(&lone.stdout),
            "{prompt}"
        );
    }
    let err = text(&out.stderr);
    assert!(
        err.contains("7 results written") && err.contains("instance 1"),
        "{err}"
    );
}

#[test]
fn sampled_text_equals_run_with_the_same_seed() {
    let dir = scratch("seed");
    let prompts = dir.join("p.txt");
    std::fs::write(&prompts, "Once upon a time\n").unwrap();
    let m = model();
    let out = bitnet(&[
        "batch",
        "-m",
        &m,
        "-f",
        prompts.to_str().unwrap(),
        "-n",
        "8",
        "--seed",
        "42",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rec = &records(&text(&out.stdout))[0];
    let lone = bitnet(&[
        "run",
        "-m",
        &m,
        "-p",
        "Once upon a time",
        "-n",
        "8",
        "--seed",
        "42",
        "--json",
    ]);
    let lone: Value = serde_json::from_slice(&lone.stdout).unwrap();
    assert_eq!(rec["tokens"], lone["token_ids"]);
    assert_eq!(rec["text"], lone["text"]);
}

#[test]
fn a_partial_output_is_resumed_and_restored_to_input_order() {
    let dir = scratch("resume");
    let prompts = dir.join("prompts.jsonl");
    write_jsonl(
        &prompts,
        &[None, Some(2), None, Some(0), None, None, Some(9)],
    );
    let full = dir.join("full.jsonl");
    let m = model();
    let args = |out: &Path| {
        vec![
            "batch".to_string(),
            "-m".into(),
            m.clone(),
            "-f".into(),
            prompts.to_str().unwrap().into(),
            "-o".into(),
            out.to_str().unwrap().into(),
            "-n".into(),
            "5".into(),
            "--temp".into(),
            "0".into(),
        ]
    };
    let run = |out: &Path| {
        let a = args(out);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        bitnet(&a)
    };
    let o = run(&full);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty());
    let all = records(&std::fs::read_to_string(&full).unwrap());
    let lens: Vec<usize> = all
        .iter()
        .map(|r| r["tokens"].as_array().unwrap().len())
        .collect();
    assert_eq!(lens, [5, 2, 5, 0, 5, 5, 9]);

    // Results 1, 4 and 5 done (out of order, the last one cut short by a hard kill).
    let part = dir.join("part.jsonl");
    let lines: Vec<&str> = std::fs::read_to_string(&full)
        .unwrap()
        .leak()
        .lines()
        .collect();
    std::fs::write(
        &part,
        format!("{}\n{}\n{}", lines[4], lines[1], &lines[5][..20]),
    )
    .unwrap();
    let o = run(&part);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("5 prompts to run (2 skipped") && err.contains("unfinished last line"),
        "{err}"
    );
    let resumed = records(&std::fs::read_to_string(&part).unwrap());
    assert_eq!(
        resumed.iter().map(content).collect::<Vec<_>>(),
        all.iter().map(content).collect::<Vec<_>>()
    );
    // Nothing left to do: a no-op.
    let o = run(&part);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("0 prompts to run (7 skipped"));
    assert_eq!(records(&std::fs::read_to_string(&part).unwrap()).len(), 7);
}

#[test]
fn shards_partition_the_prompts() {
    let dir = scratch("shard");
    let prompts = dir.join("prompts.jsonl");
    write_jsonl(&prompts, &[None; 7]);
    let m = model();
    let mut seen = Vec::new();
    for k in 0..3 {
        let shard = format!("{k}/3");
        let out = bitnet(&[
            "batch",
            "-m",
            &m,
            "-f",
            prompts.to_str().unwrap(),
            "-n",
            "2",
            "--shard",
            &shard,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let ids: Vec<String> = records(&text(&out.stdout))
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        let expected: Vec<String> = (0..7)
            .filter(|i| i % 3 == k)
            .map(|i| format!("p{i}"))
            .collect();
        assert_eq!(ids, expected);
        seen.extend(ids);
    }
    assert_eq!(seen.len(), 7);
    for bad in ["3/3", "1/0", "x/2", "2"] {
        let out = bitnet(&["batch", "-m", &m, "-f", "x.txt", "--shard", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(text(&out.stderr).contains("0 <= K < N"), "{bad}");
    }
}

#[test]
fn ctrl_c_leaves_every_finished_result_written() {
    let dir = scratch("interrupt");
    let prompts = dir.join("prompts.txt");
    let body: Vec<String> = (0..400).map(|i| format!("prompt number {i}")).collect();
    std::fs::write(&prompts, body.join("\n")).unwrap();
    let out = dir.join("out.jsonl");
    let child = Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args([
            "batch",
            "-m",
            &model(),
            "-f",
            prompts.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-n",
            "24",
            "--temp",
            "0",
            "--batch-size",
            "3",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) for the first result, then interrupt.
    for _ in 0..600 {
        if std::fs::metadata(&out).is_ok_and(|m| m.len() > 0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    let recs = records(&std::fs::read_to_string(&out).unwrap());
    assert!(!recs.is_empty());
    if o.status.code() == Some(130) {
        assert!(recs.len() < 400);
        assert!(
            text(&o.stderr).contains("interrupted"),
            "{}",
            text(&o.stderr)
        );
    } else {
        // It finished before the signal arrived.
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert_eq!(recs.len(), 400);
    }
    for r in &recs {
        assert_eq!(r["tokens"].as_array().unwrap().len(), 24, "{r}");
    }
}

#[test]
fn bad_input_is_a_clear_error_and_a_long_prompt_only_fails_itself() {
    let dir = scratch("errors");
    let m = model();
    let write = |name: &str, body: &str| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };
    let bad_json = write("bad.jsonl", "{\"prompt\": \"a\"}\n\n{\"prompt\": \"b\"\n");
    let no_prompt = write("noprompt.jsonl", "{\"id\": 1, \"text\": \"a\"}\n");
    let dup = write(
        "dup.jsonl",
        "{\"id\": \"x\", \"prompt\": \"a\"}\n{\"id\": \"y\", \"prompt\": \"b\"}\n{\"id\": \"x\", \"prompt\": \"c\"}\n",
    );
    let good = write("good.txt", "hello\n");
    let junk_out = write("junk.jsonl", "not json\n{\"id\": 1}\n");
    let missing = dir.join("missing.txt");
    let missing = missing.to_str().unwrap();
    for (args, needle) in [
        (vec!["-f", missing], "missing.txt"),
        (vec!["-f", &bad_json], "bad.jsonl:3: not a JSON object"),
        (vec!["-f", &no_prompt], "noprompt.jsonl:1: no \"prompt\""),
        (
            vec!["-f", &dup],
            "dup.jsonl:3: id \"x\" is already used on line 1",
        ),
        (
            vec!["-f", &good, "-o", &junk_out],
            "junk.jsonl:1: not a result line",
        ),
        (vec!["-f", &good, "--batch-size", "0"], "--batch-size"),
        (vec!["-f", &good, "--instances", "0"], "--instances"),
        (vec!["-f", &good, "--top-p", "2"], "top-p"),
    ] {
        let mut all = vec!["batch", "-m", &m];
        all.extend(&args);
        let out = bitnet(&all);
        // Flag values are usage errors; unreadable or bad files are runtime ones.
        let usage = args.iter().any(|a| a.starts_with("--"));
        assert_eq!(
            out.status.code(),
            Some(if usage { 2 } else { 1 }),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }

    let long = "word ".repeat(100);
    let mixed = write("mixed.txt", &format!("first\n{long}\nlast\n"));
    let out = bitnet(&["batch", "-m", &m, "-f", &mixed, "-n", "3", "-c", "64"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let recs = records(&text(&out.stdout));
    assert_eq!(recs.len(), 3);
    assert!(recs[0]["error"].is_null() && recs[2]["error"].is_null());
    assert!(
        recs[1]["error"]
            .as_str()
            .unwrap()
            .contains("longer than the context of 64"),
        "{}",
        recs[1]
    );
    assert!(text(&out.stderr).contains("(1 with an error)"));
}
