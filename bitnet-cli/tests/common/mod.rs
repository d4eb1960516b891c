//! Running the real `bitnet` binary on the fixture model, shared by the CLI
//! test files.
// Each test binary uses its own subset.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs `bitnet args` with `env` set (and any `BITNET_KERNEL` of ours removed).
pub fn bitnet_env<V: AsRef<OsStr>>(args: &[&str], env: &[(&str, V)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitnet"));
    cmd.args(args).env_remove("BITNET_KERNEL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running bitnet")
}

/// Runs `bitnet args`.
pub fn bitnet(args: &[&str]) -> Output {
    bitnet_env::<&str>(args, &[])
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The tiny-b158 fixture model (I2_S).
pub fn model() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/tiny-b158/model-i2s.gguf")
        .to_str()
        .unwrap()
        .to_string()
}

/// A fresh directory for one test of one file.
pub fn scratch(file: &str, name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bitnet-{file}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
