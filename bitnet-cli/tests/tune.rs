//! `bitnet tune --quick` on the fixture model: the profile JSON, the file it
//! saves, the plot, and `run -t auto` / `batch --strategy throughput` using it.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use common::{model, text};

fn bitnet(args: &[&str], cache: &Path) -> Output {
    common::bitnet_env(args, &[("XDG_CACHE_HOME", cache)])
}

fn scratch(name: &str) -> PathBuf {
    common::scratch("tune", name)
}

fn positive(v: &Value) -> bool {
    v.as_f64().is_some_and(|x| x > 0.0 && x.is_finite())
}

#[test]
fn quick_json_is_the_saved_profile_and_run_auto_uses_it() {
    let cache = scratch("profile");
    let m = model();
    let plot = cache.join("plot.svg");
    let out = bitnet(
        &[
            "tune",
            "-m",
            &m,
            "--quick",
            "--json",
            "--plot",
            plot.to_str().unwrap(),
        ],
        &cache,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let p: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");

    let cores = p["cpu"]["cores"].as_u64().unwrap() as usize;
    assert_eq!(p["cores_used"], cores);
    assert_eq!(p["version"], 1);
    assert_eq!(p["model"]["file"], "model-i2s.gguf");
    assert_eq!(p["model"]["bytes"], std::fs::metadata(&m).unwrap().len());
    assert_eq!(p["model"]["header_hash"].as_str().unwrap().len(), 16);
    assert!(!p["cpu"]["name"].as_str().unwrap().is_empty());
    assert!(p["kernel"].is_string() && p["quick"] == true);
    let threads = p["threads"].as_array().unwrap();
    assert_eq!(threads.len(), cores);
    for (i, row) in threads.iter().enumerate() {
        assert_eq!(row["threads"], i + 1);
        for key in ["prefill_short_tok_s", "prefill_long_tok_s", "decode_tok_s"] {
            assert!(positive(&row[key]), "{key} in {row}");
        }
    }
    // Every instances × threads split of the cores, at batch 1 and 8.
    let splits = p["splits"].as_array().unwrap();
    let divisors = (1..=cores).filter(|&i| cores.is_multiple_of(i)).count();
    assert_eq!(splits.len(), divisors * 2);
    for s in splits {
        let (i, t) = (
            s["instances"].as_u64().unwrap(),
            s["threads"].as_u64().unwrap(),
        );
        assert_eq!((i * t) as usize, cores);
        assert!(
            positive(&s["tok_s"]) && positive(&s["per_sequence_tok_s"]),
            "{s}"
        );
    }
    let r = &p["recommended"];
    for (section, keys) in [
        ("run", &["prefill_threads", "decode_threads"][..]),
        (
            "short_prompt",
            &["threads", "decode_tok_s", "prefill_tok_s"],
        ),
        ("long_prompt", &["prefill_threads", "prefill_tok_s"]),
        (
            "many_prompts",
            &[
                "instances",
                "threads",
                "batch",
                "tok_s",
                "per_sequence_tok_s",
            ],
        ),
        (
            "server",
            &[
                "instances",
                "threads",
                "batch",
                "tok_s",
                "per_sequence_tok_s",
            ],
        ),
    ] {
        for key in keys {
            assert!(positive(&r[section][key]), "{section}.{key} in {r}");
        }
    }

    // The saved file is the same profile, under the cache dir.
    let err = text(&out.stderr);
    let saved = err
        .lines()
        .find_map(|l| l.strip_prefix("profile saved to "))
        .expect("the profile path on stderr");
    assert!(
        Path::new(saved).starts_with(cache.join("bitnet/tune")),
        "{saved}"
    );
    let on_disk: Value = serde_json::from_str(&std::fs::read_to_string(saved).unwrap()).unwrap();
    assert_eq!(on_disk, p);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("polyline") && svg.trim_end().ends_with("</svg>")
    );

    // `-t auto` (the default) now takes its thread counts from the profile.
    let run = bitnet(&["run", "-m", &m, "-p", "hi", "-n", "2", "--json"], &cache);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let err = text(&run.stderr);
    assert!(
        err.contains("tuned profile") && err.contains(saved),
        "{err}"
    );
    let j: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(j["timings"]["threads_from_profile"], true);
    assert_eq!(j["timings"]["prefill_threads"], r["run"]["prefill_threads"]);
    assert_eq!(j["timings"]["decode_threads"], r["run"]["decode_threads"]);
    // An explicit count wins.
    let run = bitnet(&["run", "-m", &m, "-p", "hi", "-n", "2", "-t", "1"], &cache);
    assert!(!text(&run.stderr).contains("tuned profile"));

    let prompts = cache.join("p.txt");
    std::fs::write(&prompts, "a\nb\n").unwrap();
    let batch = bitnet(
        &[
            "batch",
            "-m",
            &m,
            "-f",
            prompts.to_str().unwrap(),
            "-n",
            "2",
            "--strategy",
            "throughput",
        ],
        &cache,
    );
    assert!(batch.status.success(), "{}", text(&batch.stderr));
    let err = text(&batch.stderr);
    let many = &r["many_prompts"];
    assert!(
        err.contains(&format!(
            "on {} instance(s) × {} thread(s), up to {} sequences each (tuned profile",
            many["instances"], many["threads"], many["batch"]
        )),
        "{err}"
    );

    // Another model has no profile.
    let other = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/tiny-b158/model-tq2.gguf");
    let run = bitnet(
        &["run", "-m", other.to_str().unwrap(), "-p", "hi", "-n", "1"],
        &cache,
    );
    assert!(run.status.success());
    assert!(!text(&run.stderr).contains("tuned profile"));
}

#[test]
fn bad_flags_are_clear_errors() {
    let cache = scratch("errors");
    let m = model();
    for (args, needle) in [
        (
            vec!["tune", "-m", &m, "--quick", "--cores", "0"],
            "--cores 0",
        ),
        (
            vec!["tune", "-m", &m, "--quick", "--cores", "100000"],
            "--cores 100000",
        ),
        (
            vec!["tune", "-m", "/nonexistent.gguf", "--quick"],
            "/nonexistent.gguf",
        ),
    ] {
        let out = bitnet(&args, &cache);
        // A missing model file is a runtime failure; bad flags are usage errors.
        let code = if args.contains(&"/nonexistent.gguf") {
            1
        } else {
            2
        };
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(text(&out.stderr).contains(needle), "{}", text(&out.stderr));
    }
}
