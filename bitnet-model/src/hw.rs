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

/// Eight independent lanes so the loop is bound by loads, not by an add chain.
fn sum_words(buf: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let chunks = buf.chunks_exact(8);
    let tail: u64 = chunks.remainder().iter().fold(0, |a, &v| a.wrapping_add(v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(v);
        }
    }
    acc.iter().fold(tail, |a, &v| a.wrapping_add(v))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bandwidth_is_positive_and_finite() {
        let gbs = super::read_bandwidth(1 << 20, 2, 2);
        assert!(gbs.is_finite() && gbs > 0.0);
    }
}
