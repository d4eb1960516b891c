//! Static work split: contiguous, tile-aligned chunks of output rows.

use core::ops::Range;

/// Chunk `index` of `threads` when `rows` output rows are split into
/// contiguous runs of whole `tile`s (the last tile may be short).
///
/// Tiles are spread as evenly as possible: the last `tiles % threads`
/// chunks get one extra tile, so the one short tile at the end lands on a
/// larger chunk and no two chunks differ by more than `tile` rows. A thread with no tile gets an empty range at
/// `rows`. The same arguments always give the same chunk, so a worker keeps
/// its rows (and their cache lines) from one call to the next.
///
/// # Panics
/// If `threads` or `tile` is zero, or `index >= threads`.
pub fn partition_chunk(rows: usize, threads: usize, tile: usize, index: usize) -> Range<usize> {
    assert!(
        threads > 0 && tile > 0,
        "partition: threads and tile must be positive"
    );
    assert!(index < threads, "partition: chunk {index} of {threads}");
    let tiles = rows.div_ceil(tile);
    let (base, extra) = (tiles / threads, tiles % threads);
    let plain = threads - extra;
    let first = index * base + index.saturating_sub(plain);
    let count = base + usize::from(index >= plain);
    let start = (first * tile).min(rows);
    let end = ((first + count) * tile).min(rows);
    start..end
}

/// All `threads` chunks of [`partition_chunk`], in order; they cover
/// `0..rows` exactly once.
pub fn partition(rows: usize, threads: usize, tile: usize) -> impl Iterator<Item = Range<usize>> {
    (0..threads).map(move |i| partition_chunk(rows, threads, tile, i))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn covers_rows_once_tile_aligned() {
        for rows in [0, 1, 7, 64, 65, 2560, 6912, 128_256] {
            for threads in 1..=9 {
                for tile in [1, 4, 16, 64] {
                    let mut next = 0;
                    for chunk in partition(rows, threads, tile) {
                        assert_eq!(chunk.start, next.min(rows));
                        assert!(chunk.start.is_multiple_of(tile) || chunk.start == rows);
                        assert!(chunk.end.is_multiple_of(tile) || chunk.end == rows);
                        next = chunk.end.max(next);
                    }
                    assert_eq!(next, rows);
                    let sizes: Vec<_> = partition(rows, threads, tile).map(|c| c.len()).collect();
                    let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                    assert!(hi - lo <= tile, "{rows} {threads} {tile}: {sizes:?}");
                }
            }
        }
    }
}
