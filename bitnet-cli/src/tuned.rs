//! The profile `bitnet tune` writes and `-t auto` (run, chat), `batch
//! --strategy throughput` and `serve` read: one JSON file per model and CPU
//! under `<cache dir>/bitnet/tune/`.
//!
//! A model is identified by its file name, size and a hash of its header
//! (metadata and tensor table, so a re-converted file with the same name is a
//! new model); a CPU by its `/proc/cpuinfo` model name and the number of CPUs
//! this process may use. The fields are listed in `tune.rs`.

use bitnet_model::gguf::Gguf;
use bitnet_model::pool::ThreadPool;
use bitnet_model::PhaseThreads;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Bumped when the meaning of a field changes; other versions are ignored.
pub const VERSION: u64 = 1;

/// Who a profile is for.
#[derive(Debug, Clone)]
pub struct Key {
    pub model_file: String,
    pub model_bytes: u64,
    /// FNV-1a 64 of the bytes before the first tensor's data, as 16 hex digits.
    pub header_hash: String,
    pub cpu: String,
    pub cores: usize,
}

impl Key {
    pub fn new(model_path: &Path, gguf: &Gguf) -> Key {
        let bytes = gguf.bytes();
        let header_end = gguf
            .tensors()
            .iter()
            .map(|t| t.data.start)
            .min()
            .unwrap_or(bytes.len());
        Key {
            model_file: model_path
                .file_name()
                .map_or("model".into(), |n| n.to_string_lossy().into_owned()),
            model_bytes: bytes.len() as u64,
            header_hash: format!("{:016x}", fnv1a(&bytes[..header_end])),
            cpu: cpu_name(),
            cores: usable_cpus().len().max(1),
        }
    }

    /// `<cache>/bitnet/tune/<model>-<hash>--<cpu>-<cores>c.json`.
    pub fn path(&self) -> PathBuf {
        let slug = |s: &str| -> String {
            let s: String = s
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            s.split('-')
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join("-")
        };
        crate::load::cache_dir().join("tune").join(format!(
            "{}-{}--{}-{}c.json",
            slug(&self.model_file),
            &self.header_hash[..12],
            slug(&self.cpu),
            self.cores
        ))
    }

    /// The `model` and `cpu` objects of a profile.
    pub fn to_json(&self) -> (Value, Value) {
        (
            serde_json::json!({
                "file": self.model_file,
                "bytes": self.model_bytes,
                "header_hash": self.header_hash,
            }),
            serde_json::json!({"name": self.cpu, "cores": self.cores}),
        )
    }
}

/// A profile read from disk.
#[derive(Debug, Clone)]
pub struct Tuned {
    pub path: PathBuf,
    pub json: Value,
}

impl Tuned {
    /// The profile for this model and CPU, if one was saved and still
    /// matches (an unreadable one is reported and ignored).
    pub fn find(model_path: &Path, gguf: &Gguf) -> Option<Tuned> {
        let key = Key::new(model_path, gguf);
        let path = key.path();
        let text = std::fs::read_to_string(&path).ok()?;
        let json: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                eprintln!(
                    "warning: ignoring the tuned profile {}: {e}",
                    path.display()
                );
                return None;
            }
        };
        let matches = json["version"] == VERSION
            && json["model"]["bytes"] == key.model_bytes
            && json["model"]["header_hash"] == key.header_hash.as_str();
        matches.then_some(Tuned { path, json })
    }

    fn count(v: &Value) -> Option<usize> {
        v.as_u64().filter(|&n| n >= 1).map(|n| n as usize)
    }

    /// Workers for prompt processing and for generation of one sequence.
    pub fn run_threads(&self) -> Option<PhaseThreads> {
        let r = &self.json["recommended"]["run"];
        Some(PhaseThreads {
            prefill: Self::count(&r["prefill_threads"])?,
            decode: Self::count(&r["decode_threads"])?,
        })
    }

    /// `(instances, threads, batch)` with the best aggregate throughput.
    pub fn many_prompts(&self) -> Option<(usize, usize, usize)> {
        self.split("many_prompts")
    }

    /// `(instances, threads, batch)` with the best aggregate throughput among
    /// the splits that keep each sequence responsive (tune's server rule).
    pub fn server(&self) -> Option<(usize, usize, usize)> {
        self.split("server")
    }

    fn split(&self, workload: &str) -> Option<(usize, usize, usize)> {
        let r = &self.json["recommended"][workload];
        Some((
            Self::count(&r["instances"])?,
            Self::count(&r["threads"])?,
            Self::count(&r["batch"])?,
        ))
    }
}

/// The CPUs this process may run on (empty where that is unknown).
pub fn usable_cpus() -> Vec<usize> {
    let cpus = ThreadPool::default_cpus(true);
    if cpus.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        return Vec::from_iter(0..n);
    }
    cpus
}

/// The processor's model name from /proc/cpuinfo ("unknown" elsewhere).
pub fn cpu_name() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| matches!(k.trim(), "model name" | "Model" | "Hardware"))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| format!("unknown {}", std::env::consts::ARCH))
}

/// FNV-1a, 64 bits: stable across Rust versions (unlike `DefaultHasher`),
/// which a key stored on disk needs.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fnv1a_matches_the_published_vectors() {
        assert_eq!(super::fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(super::fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
