//! Machine probes that performance reports are measured against.

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

/// One sequential stream in 512-byte steps of eight independent lanes: on
/// the reference machine this beats several concurrent streams (26–27 GB/s
/// against 14–21), and its loop is bound by loads, not by an add chain.
fn sum_words(buf: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let blocks = buf.chunks_exact(64);
    let rest = blocks
        .remainder()
        .iter()
        .fold(0u64, |a, &v| a.wrapping_add(v));
    for block in blocks {
        for lane in block.chunks_exact(8) {
            for (a, &v) in acc.iter_mut().zip(lane) {
                *a = a.wrapping_add(v);
            }
        }
    }
    acc.iter().fold(rest, |a, &v| a.wrapping_add(v))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_every_word() {
        for len in [0usize, 1, 31, 32, 33, 1000] {
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
