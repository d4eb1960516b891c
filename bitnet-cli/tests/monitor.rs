//! `bitnet monitor` on the fixture model: JSON snapshots with the documented
//! fields, and its error paths.

use serde_json::Value;

mod common;

use common::{bitnet, model, text};

fn pct(v: &Value) -> f64 {
    let x = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!(x.is_finite() && x >= 0.0, "{v}");
    x
}

fn check_snapshot(s: &Value, threads: usize) {
    for key in ["t_s", "interval_s", "tok_s", "bandwidth_gb_s"] {
        pct(&s[key]);
    }
    assert!(s["generated"].is_u64() && s["final"].is_boolean(), "{s}");
    let workers = s["workers"].as_array().unwrap();
    assert_eq!(workers.len(), threads, "{s}");
    for (i, w) in workers.iter().enumerate() {
        assert_eq!(w["worker"], i);
        assert!(w["tid"].as_u64().unwrap() > 0, "{w}");
        // No upper bound per interval: the pool credits a wait when it ends,
        // so a wait begun in an earlier interval lands whole in a later one.
        pct(&w["busy_pct"]);
        pct(&w["wait_pct"]);
        pct(&w["cpu_pct"]);
    }
    let ops = s["ops"].as_object().unwrap();
    let names = [
        "ternary_matmul",
        "attention",
        "lm_head",
        "norms_rope",
        "sampling",
    ];
    assert_eq!(ops.len(), names.len());
    let total: f64 = names.iter().map(|n| pct(&ops[*n])).sum();
    assert!(total == 0.0 || (total - 100.0).abs() < 1e-6, "{s}");
}

#[test]
fn quick_json_prints_snapshots_then_the_whole_run() {
    let out = bitnet(&["monitor", "-m", &model(), "--quick", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snaps: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let (last, live) = snaps.split_last().expect("at least the final snapshot");
    assert_eq!(last["final"], true);
    assert!(live.iter().all(|s| s["final"] == false));
    let threads = last["workers"].as_array().unwrap().len();
    assert!(threads >= 1);
    for s in &snaps {
        check_snapshot(s, threads);
    }
    // The whole run generated tokens, had the matmuls take time, and streamed
    // the tiny model's weights once per token.
    assert!(last["generated"].as_u64().unwrap() >= 32);
    assert!(pct(&last["ops"]["ternary_matmul"]) > 0.0);
    assert!(pct(&last["workers"][0]["busy_pct"]) > 0.0);
    let bytes = last["bytes_per_token"].as_f64().unwrap();
    // 3 layers of ternary codes (hidden 256, ffn 768, 4 × 64 q, 1 × 64 kv) + an F16 1024 × 256 head.
    assert_eq!(
        bytes,
        (3 * 256 * (2 * 256 + 2 * 64 + 3 * 768) / 4 + 1024 * 256 * 2) as f64
    );
    let expected = pct(&last["tok_s"]) * bytes / 1e9;
    assert!((pct(&last["bandwidth_gb_s"]) - expected).abs() <= 1e-9 * expected.max(1.0));
}

#[test]
fn run_args_set_the_workload() {
    let out = bitnet(&[
        "monitor",
        "-m",
        &model(),
        "--json",
        "--",
        "-p",
        "hello",
        "-n",
        "5",
        "-t",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let last: Value = serde_json::from_str(text(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["final"], true);
    assert_eq!(last["generated"], 5);
    check_snapshot(&last, 2);
    // Without --json and not on a terminal: the whole-run view only.
    let out = bitnet(&["monitor", "-m", &model(), "--", "-n", "3", "-t", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("whole run") && s.contains("ternary_matmul") && !s.contains('\x1b'),
        "{s}"
    );
}

#[test]
fn bad_workloads_are_clear_errors() {
    let m = model();
    for (args, needle) in [
        (
            vec!["monitor", "-m", &m, "--", "-n", "x"],
            "the workload after `--`",
        ),
        (vec!["monitor", "-m", &m, "--", "--bogus"], "--bogus"),
        (vec!["monitor", "-m", &m, "--interval", "0"], "--interval"),
        (
            vec!["monitor", "-m", "/nonexistent.gguf", "--quick"],
            "/nonexistent.gguf",
        ),
    ] {
        let out = bitnet(&args);
        // A missing model file is a runtime failure; the rest are usage errors.
        let code = if args.contains(&"/nonexistent.gguf") {
            1
        } else {
            2
        };
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}
