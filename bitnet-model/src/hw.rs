//! Machine probes: the memory an allocation may take, and the bandwidth
//! performance reports are measured against.

use std::hint::black_box;
use std::time::Instant;

/// Streaming read bandwidth in GB/s (10⁹ bytes/s): `threads` threads each sum
/// their own `bytes_per_thread` buffer, best of `reps` passes. Use buffers
/// well beyond the last-level cache (≥ 256 MiB) to measure DRAM.
pub fn read_bandwidth(bytes_per_thread: usize, threads: usize, reps: usize) -> f64 {
    let words = (bytes_per_thread / 8).max(1);
    let buffers: Vec<Vec<u64>> = (0..threads.max(1))
        .map(|t| (0..words as u64).map(|i| i ^ t as u64).collect())
        .collect();
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        std::thread::scope(|s| {
            for buf in &buffers {
                s.spawn(move || black_box(sum_words(buf)));
            }
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    (words * 8 * buffers.len()) as f64 / best / 1e9
}

/// Four streams 1 MiB apart read in lockstep, 512 bytes at a time, eight
/// independent lanes each. On the reference machine (Zen 4) this is the
/// fastest way one core reads (≈ 28.7 GB/s against ≈ 24 for one stream and
/// ≈ 10 for streams a few hundred bytes apart), so a kernel's bandwidth is
/// divided by what the core can really pull, not by a weaker pattern.
fn sum_words(buf: &[u64]) -> u64 {
    const STREAMS: usize = 4;
    const SPAN: usize = (1 << 20) / 8;
    let mut acc = [0u64; 8];
    let groups = buf.chunks_exact(STREAMS * SPAN);
    let rest = groups
        .remainder()
        .iter()
        .fold(0u64, |a, &v| a.wrapping_add(v));
    for group in groups {
        let (s0, r) = group.split_at(SPAN);
        let (s1, r) = r.split_at(SPAN);
        let (s2, s3) = r.split_at(SPAN);
        let blocks = s0
            .chunks_exact(64)
            .zip(s1.chunks_exact(64))
            .zip(s2.chunks_exact(64))
            .zip(s3.chunks_exact(64));
        for (((a, b), c), d) in blocks {
            for block in [a, b, c, d] {
                for lane in block.chunks_exact(8) {
                    for (x, &v) in acc.iter_mut().zip(lane) {
                        *x = x.wrapping_add(v);
                    }
                }
            }
        }
    }
    acc.iter().fold(rest, |a, &v| a.wrapping_add(v))
}

/// Bytes of memory free for new allocations: Linux's `MemAvailable` (free
/// plus reclaimable cache), else `MemTotal`, from `/proc/meminfo`. `None`
/// where that cannot be read (other systems), and then callers do not
/// limit allocations by it.
pub fn available_memory() -> Option<u64> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

fn parse_meminfo(text: &str) -> Option<u64> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
            .map(|kb| kb.saturating_mul(1024))
    };
    field("MemAvailable").or_else(|| field("MemTotal"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_meminfo() {
        let text = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   23000000 kB\n";
        assert_eq!(super::parse_meminfo(text), Some(23_000_000 * 1024));
        assert_eq!(
            super::parse_meminfo("MemTotal: 2048 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(super::parse_meminfo("nothing"), None);
        if cfg!(target_os = "linux") {
            assert!(super::available_memory().unwrap() > 0);
        }
    }

    #[test]
    fn sums_every_word() {
        for len in [0usize, 1, 31, 32, 33, 1000, (1 << 19) + 77] {
            let buf: Vec<u64> = (1..=len as u64).collect();
            assert_eq!(
                super::sum_words(&buf),
                (1..=len as u64).sum::<u64>(),
                "len {len}"
            );
        }
    }

    #[test]
    fn bandwidth_is_positive_and_finite() {
        let gbs = super::read_bandwidth(1 << 20, 2, 2);
        assert!(gbs.is_finite() && gbs > 0.0);
    }
}
