//! Causal grouped-query attention over the KV cache: `softmax(q·Kᵀ/√d)·V`
//! for every query head of a step, split over the pool's workers.
//!
//! A prefill step splits its queries, (query head, chunk of tokens) at a
//! time, by cost: each worker reads a KV head's blocks once for all of its
//! queries of that head ([`attend`]), and a model with fewer query heads
//! than workers still keeps every worker busy ([`Step::prefill`]). A
//! decoding step (one token per sequence) has too few queries for that: a
//! KV head with fewer query heads than workers (one, in a model without
//! grouped queries) kept a single worker busy. So decoding scores by
//! positions instead, every worker an even share of all keys, and then
//! splits the softmax and the weighted sums by query head
//! ([`Step::decode`]). Either way every output is the same bits, whatever
//! the thread count.

use crate::config::Config;
use crate::kv_cache::{Half, HeadRows, KvCache};
use crate::pool::{SharedOut, ThreadPool};
use crate::KvType;
use bitnet_kernels::{partition_chunk, Dispatch};
use std::ops::Range;

/// One layer's attention in a forward step, after its keys and values are
/// stored in the caches.
pub(crate) struct Step<'a> {
    pub d: Dispatch,
    pub config: &'a Config,
    pub layer: usize,
    /// Each sequence's cache.
    pub caches: &'a [&'a KvCache],
    /// `(sequence, position)` of each token row, a sequence's rows together.
    pub rows: &'a [(usize, usize)],
    /// The step's queries, `rows × q_dim`, RoPE applied.
    pub q: &'a [f32],
}

impl Step<'_> {
    /// Writes the attention output, `rows × q_dim`, to `out`. `scores` is
    /// working memory kept across steps.
    pub(crate) fn run(
        &self,
        pool: &ThreadPool,
        workers: usize,
        scores: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        let c = self.config;
        assert_eq!(out.len(), self.rows.len() * c.heads * c.head_dim);
        let decoding = self.rows.windows(2).all(|w| w[0].0 != w[1].0);
        if decoding {
            self.decode(pool, workers, scores, out);
        } else {
            self.prefill(pool, workers, out);
        }
    }

    /// Attention for steps with several tokens of a sequence. Every (KV
    /// head, up to [`QUERY_TOKENS`] tokens of a sequence, query head of the
    /// group) is one item, costing the positions its tokens see; each
    /// worker takes an even, contiguous share. A worker's items of one KV
    /// head and one chunk of tokens are one call of [`attend`], which reads
    /// the head's blocks once for all of them.
    fn prefill(&self, pool: &ThreadPool, workers: usize, out: &mut [f32]) {
        let (c, d, rows) = (self.config, self.d, self.rows);
        let (hd, q_dim) = (c.head_dim, c.heads * c.head_dim);
        let group = c.heads / c.kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        // Each sequence's token rows (a sequence's rows are together).
        let mut seqs: Vec<Range<usize>> = Vec::new();
        for (t, &(si, _)) in rows.iter().enumerate() {
            match seqs.last_mut() {
                Some(r) if rows[r.start].0 == si => r.end = t + 1,
                _ => seqs.push(t..t + 1),
            }
        }
        let items = || {
            seqs.iter().flat_map(move |tokens| {
                (0..c.kv_heads).flat_map(move |head| {
                    let chunks = tokens.clone().step_by(QUERY_TOKENS);
                    chunks.flat_map(move |t| {
                        let chunk = t..(t + QUERY_TOKENS).min(tokens.end);
                        let cost = rows[chunk.clone()].iter().map(|&(_, pos)| pos + 1).sum();
                        (0..group).map(move |g| ((head, chunk.clone(), g), cost))
                    })
                })
            })
        };
        let out = SharedOut(out.as_mut_ptr());
        pool.run_on(workers, &|i, workers| {
            let (mut scratch, mut queries) = (AttendScratch::default(), Vec::new());
            let mut mine = share(items, i, workers).peekable();
            while let Some((head, chunk, g)) = mine.next() {
                let mut shared = g..g + 1;
                while mine
                    .next_if(|(h, ch, g)| *h == head && *ch == chunk && *g == shared.end)
                    .is_some()
                {
                    shared.end += 1;
                }
                queries.clear();
                for t in chunk.clone() {
                    queries.extend(shared.clone().map(|g| Query {
                        at: t * q_dim + (head * group + g) * hd,
                        len: rows[t].1 + 1,
                    }));
                }
                let kv = KvHead {
                    cache: self.caches[rows[chunk.start].0],
                    layer: self.layer,
                    head,
                };
                // SAFETY: every query's output (token row, query head) is
                // this worker's alone (`share` gives each item to one
                // worker) and inside `out` (rows × q_dim, checked in `run`).
                unsafe { attend(d, &kv, scale, self.q, &queries, &mut scratch, out) };
            }
        });
    }

    /// Attention for one token per sequence, in two passes over the pool.
    ///
    /// 1. Scores: the positions of every (row, KV head), one after another,
    ///    are split into contiguous, even shares; each worker writes the
    ///    group's scores at its positions into `scores`, so every key row is
    ///    read by one worker. A score is one pair's dot, the same bits in
    ///    any block.
    /// 2. Weighted sums: every (row, query head) costs a pass over the
    ///    row's positions, and each worker takes an even, contiguous share.
    ///    It turns its query heads' scores into weights and sums the value
    ///    rows, once per run of its query heads that share a KV head. A KV
    ///    head whose query heads fall to two workers has its values read by
    ///    both, as in prefill.
    fn decode(&self, pool: &ThreadPool, workers: usize, scores: &mut Vec<f32>, out: &mut [f32]) {
        let (c, d) = (self.config, self.d);
        let (hd, q_dim) = (c.head_dim, c.heads * c.head_dim);
        let group = c.heads / c.kv_heads;
        // Row t's scores start at `starts[t]`: `len` per query head, head
        // after head.
        let mut starts = Vec::with_capacity(self.rows.len());
        let mut total = 0;
        for &(_, pos) in self.rows {
            starts.push(total);
            total += c.heads * (pos + 1);
        }
        scores.clear();
        scores.resize(total, 0.0);
        let (starts, scores_out) = (&starts, SharedOut(scores.as_mut_ptr()));
        // The positions of every (row, KV head), one after another: each
        // worker scores a contiguous share of them.
        let heads = || {
            self.rows
                .iter()
                .enumerate()
                .flat_map(move |(t, &(_, pos))| (0..c.kv_heads).map(move |head| (t, head, pos + 1)))
        };
        let positions = heads().map(|(_, _, len)| len).sum::<usize>();
        pool.run_on(workers, &|i, workers| {
            let mine = partition_chunk(positions, workers, KV_BLOCK, i);
            let mut tile = Vec::new();
            let mut first = 0;
            for (t, head, len) in heads() {
                let piece = first..first + len;
                first += len;
                if piece.end <= mine.start {
                    continue;
                }
                // This worker's positions of the head (`mine` starts before
                // the piece ends and, see below, ends after it starts).
                let span = mine.start.max(piece.start) - piece.start
                    ..mine.end.min(piece.end) - piece.start;
                let (si, pos) = self.rows[t];
                let cache = self.caches[si];
                let f16 = cache.kv_type() == KvType::F16;
                let kv = KvHead {
                    cache,
                    layer: self.layer,
                    head,
                };
                let at = t * q_dim + head * group * hd;
                let qs = &self.q[at..at + group * hd];
                for block in blocks(span) {
                    let n = block.len();
                    let keys = kv.in_place(Half::Keys, block.clone());
                    tile.resize(group * n, 0.0);
                    scores_of(d, keys, f16, qs, hd, n, &mut tile);
                    for (g, row) in tile.chunks_exact(n).enumerate() {
                        let at = starts[t] + (head * group + g) * (pos + 1) + block.start;
                        // SAFETY: these scores (row t, query head, block)
                        // are this worker's alone (the chunks of `mine` do
                        // not overlap) and inside `scores` (`total` above).
                        let dst =
                            unsafe { std::slice::from_raw_parts_mut(scores_out.ptr().add(at), n) };
                        dst.copy_from_slice(row);
                    }
                }
                if piece.end >= mine.end {
                    break;
                }
            }
        });
        let scores = &*scores;
        let out = SharedOut(out.as_mut_ptr());
        // Every (row, query head) costs a pass over the row's positions.
        let query_items = || {
            self.rows
                .iter()
                .enumerate()
                .flat_map(move |(t, &(_, pos))| (0..c.heads).map(move |h| ((t, h), pos + 1)))
        };
        let scale = 1.0 / (hd as f32).sqrt();
        pool.run_on(workers, &|i, workers| {
            let (mut s, mut queries) = (AttendScratch::default(), Vec::new());
            let mut mine = share(query_items, i, workers).peekable();
            while let Some((t, h)) = mine.next() {
                // One call per run of this worker's query heads that share
                // a KV head: its value rows are read once for all of them.
                let head = h / group;
                let mut heads = h..h + 1;
                while heads.end < (head + 1) * group
                    && mine.next_if(|&next| next == (t, heads.end)).is_some()
                {
                    heads.end += 1;
                }
                let (si, pos) = self.rows[t];
                let len = pos + 1;
                queries.clear();
                queries.extend(heads.clone().map(|h| Query {
                    at: t * q_dim + h * hd,
                    len,
                }));
                s.scores.clear();
                s.scores.extend_from_slice(
                    &scores[starts[t] + heads.start * len..][..heads.len() * len],
                );
                query_runs(&queries, hd, &mut s.runs);
                let kv = KvHead {
                    cache: self.caches[si],
                    layer: self.layer,
                    head,
                };
                // SAFETY: these query heads' outputs (row t) are this
                // worker's alone (`share` gives each to one worker), and
                // inside `out`.
                unsafe { weigh(d, &kv, scale, &queries, &mut s, out) };
            }
        });
    }
}

/// Worker `i`'s items when `items()`, each with a cost, are split in order
/// among `workers` into contiguous runs of nearly equal cost: an item goes
/// to the worker its cost's midpoint falls in. Every item goes to exactly
/// one worker.
fn share<T, I>(items: impl Fn() -> I, i: usize, workers: usize) -> impl Iterator<Item = T>
where
    I: Iterator<Item = (T, usize)>,
{
    let total = items().map(|(_, cost)| cost as u64).sum::<u64>().max(1);
    let (i, workers) = (i as u64, workers as u64);
    let mut start = 0u64;
    items().filter_map(move |(item, cost)| {
        let mid2 = 2 * start + cost as u64;
        start += cost as u64;
        ((mid2 * workers / (2 * total)).min(workers - 1) == i).then_some(item)
    })
}

/// Consecutive blocks of [`KV_BLOCK`] positions (the last may be short)
/// that cover `span`; none when it is empty.
fn blocks(span: Range<usize>) -> impl Iterator<Item = Range<usize>> {
    let end = span.end;
    span.step_by(KV_BLOCK)
        .map(move |b| b..(b + KV_BLOCK).min(end))
}

/// `tile = qs · keysᵀ` for `qs.len() / k` queries and the first `n` key
/// rows (`k` wide), query after query: f32 FMA chains over an f16 cache
/// (`f16`), f64 sums over an f32 one (see [`attend`]).
fn scores_of(
    d: Dispatch,
    keys: HeadRows<'_>,
    f16: bool,
    qs: &[f32],
    k: usize,
    n: usize,
    tile: &mut [f32],
) {
    match keys {
        HeadRows::F16(r) => d.dot_f32acc_queries_f16(qs, &r[..n * k], k, tile),
        HeadRows::F32(r) if f16 => d.dot_f32acc_queries(qs, &r[..n * k], k, tile),
        HeadRows::F32(r) => d.dot_f64acc_queries(qs, &r[..n * k], k, tile),
    }
    .expect("head-sized rows");
}

/// `softmax(scale · scores)` in place, with the kernel for the cache type.
fn softmax(d: Dispatch, f16: bool, scores: &mut [f32], scale: f32) {
    if f16 {
        d.softmax_f32exp(scores, scale)
    } else {
        d.softmax_f64acc(scores, scale)
    }
    .expect("a query sees at least its own position");
}

/// Weighted sums of value rows in progress: f32 over an f16 cache, f64
/// over an f32 one (see [`attend`]).
#[derive(Default)]
struct Accs {
    f16: bool,
    f32: Vec<f32>,
    f64: Vec<f64>,
}

impl Accs {
    /// `len` zeros for a cache of f16 (`f16`) or f32 elements.
    fn zeroed(&mut self, f16: bool, len: usize) {
        self.f16 = f16;
        self.f32.clear();
        self.f64.clear();
        if f16 {
            self.f32.resize(len, 0.0);
        } else {
            self.f64.resize(len, 0.0);
        }
    }

    /// Adds `ps · values` to accumulators `range`: `ps` holds `n` weights
    /// per query, `values` at least `n` rows `k` wide, `range` `k` per query.
    fn add(
        &mut self,
        d: Dispatch,
        values: HeadRows<'_>,
        ps: &[f32],
        k: usize,
        n: usize,
        range: Range<usize>,
    ) {
        match values {
            HeadRows::F16(v) => {
                d.weighted_sum_f32acc_queries_f16(ps, &v[..n * k], k, &mut self.f32[range])
            }
            HeadRows::F32(v) if self.f16 => {
                d.weighted_sum_f32acc_queries(ps, &v[..n * k], k, &mut self.f32[range])
            }
            HeadRows::F32(v) => {
                d.weighted_sum_f64acc_queries(ps, &v[..n * k], k, &mut self.f64[range])
            }
        }
        .expect("head-sized rows");
    }

    /// Accumulators `range` as f32, to `dst`.
    fn write(&self, range: Range<usize>, dst: &mut [f32]) {
        if self.f16 {
            dst.copy_from_slice(&self.f32[range]);
        } else {
            for (o, &a) in dst.iter_mut().zip(&self.f64[range]) {
                *o = a as f32;
            }
        }
    }
}

/// Positions of a KV head read together: keys or values of 32 positions
/// are 8 KiB of f16 (16 KiB of f32) at head width 128, so a block stays in
/// L1 while every query of the group reads it.
const KV_BLOCK: usize = 32;

/// Tokens of one step attended together (prefill): each KV block is widened
/// once for all of them.
const QUERY_TOKENS: usize = 16;

/// One query head of one token: its row starts at `at` in the step's
/// `N × q_dim` queries (and its output at `at` in the attention output), and
/// it attends to positions `0..len`.
#[derive(Clone, Copy)]
struct Query {
    at: usize,
    len: usize,
}

/// One KV head of one layer of a sequence's cache.
struct KvHead<'a> {
    cache: &'a KvCache,
    layer: usize,
    head: usize,
}

impl<'a> KvHead<'a> {
    /// Its keys or values at `positions`, as the cache holds them.
    fn in_place(&self, half: Half, positions: Range<usize>) -> HeadRows<'a> {
        self.cache.head_rows(half, self.layer, self.head, positions)
    }

    /// Its keys or values at `positions` in place (see
    /// [`KvCache::head_rows`]), or widened once into `scratch` when `runs` several-query calls
    /// will read them. Both give the same bits. A decoded token is one run,
    /// and the kernels widen its f16 rows in registers as they stream from
    /// DRAM; a prefill step has up to [`QUERY_TOKENS`] runs per block, which
    /// would each widen every row again.
    fn rows<'s>(
        &self,
        d: Dispatch,
        half: Half,
        positions: Range<usize>,
        runs: usize,
        scratch: &'s mut Vec<f32>,
    ) -> HeadRows<'s>
    where
        'a: 's,
    {
        match self.in_place(half, positions) {
            HeadRows::F16(h) if runs > 1 => {
                scratch.resize(h.len(), 0.0);
                d.f16_to_f32(h, scratch).expect("equal lengths");
                HeadRows::F32(scratch)
            }
            rows => rows,
        }
    }
}

/// Working memory of [`attend`], kept across its calls in one step.
#[derive(Default)]
struct AttendScratch {
    /// A block's rows widened to f32 (see [`KvHead::rows`]).
    block: Vec<f32>,
    scores: Vec<f32>,
    /// Each query's output so far.
    accs: Accs,
    /// One run's scores or weights for one block, query after query.
    tile: Vec<f32>,
    runs: Vec<Range<usize>>,
}

/// Splits `queries` into runs that attend to the same positions and sit
/// side by side in the step's queries (the query heads of one token that
/// share the KV head): each run's scores and value sums are one call of the
/// several-query kernels, which widen each key and value row once for the
/// whole run.
fn query_runs(queries: &[Query], head_dim: usize, out: &mut Vec<Range<usize>>) {
    out.clear();
    let mut start = 0;
    for i in 1..=queries.len() {
        let joins = i < queries.len()
            && queries[i].len == queries[start].len
            && queries[i].at == queries[i - 1].at + head_dim;
        if !joins {
            out.push(start..i);
            start = i;
        }
    }
}

/// The positions of `block` that the queries of `run` attend to.
fn seen(queries: &[Query], run: &Range<usize>, block: &Range<usize>) -> usize {
    queries[run.start]
        .len
        .min(block.end)
        .saturating_sub(block.start)
}

/// `softmax(scale · q·Kᵀ)·V` for each query of one KV head, each dot and
/// weighted sum in an order every path keeps, so every path gives the same
/// output. Over an f32 cache (the reference-grade choice) the products are
/// summed in f64; over an f16 cache, whose keys and values were rounded to
/// 11 bits when stored, in f32 FMA chains with f32 exponentials, at about
/// half the work.
/// Keys, then values, are read [`KV_BLOCK`] positions at a time by every
/// query while in L1 (widened as [`KvHead::rows`] says); a query's sums
/// still take its positions in order, so the result is the same as over all
/// positions at once.
///
/// # Safety
/// `out[q.at .. q.at + head_dim]` is writable for every query and no one
/// else touches it during the call.
unsafe fn attend(
    d: Dispatch,
    kv: &KvHead<'_>,
    scale: f32,
    q_all: &[f32],
    queries: &[Query],
    s: &mut AttendScratch,
    out: SharedOut<f32>,
) {
    let hd = kv.cache.head_dim();
    let len = queries.iter().map(|q| q.len).max().unwrap_or(0);
    s.scores.clear();
    s.scores.resize(queries.len() * len, 0.0);
    let f16 = kv.cache.kv_type() == KvType::F16;
    s.tile.resize(queries.len() * KV_BLOCK, 0.0);
    query_runs(queries, hd, &mut s.runs);
    for block in blocks(0..len) {
        let keys = kv.rows(d, Half::Keys, block.clone(), s.runs.len(), &mut s.block);
        for run in &s.runs {
            let n = seen(queries, run, &block);
            if n == 0 {
                continue;
            }
            let at = queries[run.start].at;
            let qs = &q_all[at..at + run.len() * hd];
            let tile = &mut s.tile[..run.len() * n];
            scores_of(d, keys, f16, qs, hd, n, tile);
            for (i, row) in run.clone().zip(tile.chunks_exact(n)) {
                s.scores[i * len + block.start..][..n].copy_from_slice(row);
            }
        }
    }
    // SAFETY: forwarded from our caller.
    unsafe { weigh(d, kv, scale, queries, s, out) }
}

/// The second half of [`attend`]: each query's scores in `s.scores`
/// (`queries × len`, `len` the longest query's) turned into weights, the
/// weighted sums of the values, written to each query's output. `s.runs`
/// holds the runs of `queries` (see [`query_runs`]).
///
/// # Safety
/// As for [`attend`].
unsafe fn weigh(
    d: Dispatch,
    kv: &KvHead<'_>,
    scale: f32,
    queries: &[Query],
    s: &mut AttendScratch,
    out: SharedOut<f32>,
) {
    let hd = kv.cache.head_dim();
    let len = queries.iter().map(|q| q.len).max().unwrap_or(0);
    let f16 = kv.cache.kv_type() == KvType::F16;
    s.accs.zeroed(f16, queries.len() * hd);
    s.tile.resize(queries.len() * KV_BLOCK, 0.0);
    for (i, q) in queries.iter().enumerate() {
        softmax(d, f16, &mut s.scores[i * len..][..q.len], scale);
    }
    for block in blocks(0..len) {
        let values = kv.rows(d, Half::Values, block.clone(), s.runs.len(), &mut s.block);
        for run in &s.runs {
            let n = seen(queries, run, &block);
            if n == 0 {
                continue;
            }
            let ps = &mut s.tile[..run.len() * n];
            for (i, p) in run.clone().zip(ps.chunks_exact_mut(n)) {
                p.copy_from_slice(&s.scores[i * len + block.start..][..n]);
            }
            s.accs
                .add(d, values, ps, hd, n, run.start * hd..run.end * hd);
        }
    }
    for (i, q) in queries.iter().enumerate() {
        // SAFETY: this query's output is ours (caller).
        let dst = unsafe { std::slice::from_raw_parts_mut(out.ptr().add(q.at), hd) };
        s.accs.write(i * hd..(i + 1) * hd, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_gives_each_item_to_one_worker_in_contiguous_even_runs() {
        let costs = [5, 1, 1, 32, 32, 7, 0, 16, 16, 16, 3, 32];
        let items = || costs.iter().copied().enumerate();
        let total: usize = costs.iter().sum();
        for workers in 1..=14 {
            let mut next = 0;
            for i in 0..workers {
                let mine: Vec<usize> = share(items, i, workers).collect();
                // Contiguous, in order, following the previous worker's run.
                assert!(mine.iter().enumerate().all(|(j, &item)| item == next + j));
                next += mine.len();
                let cost: usize = mine.iter().map(|&j| costs[j]).sum();
                let fair = total as f64 / workers as f64;
                assert!(
                    (cost as f64 - fair).abs() <= 32.0,
                    "{workers}: worker {i} has {cost}"
                );
            }
            assert_eq!(next, costs.len());
        }
        assert_eq!(share(std::iter::empty::<((), usize)>, 0, 3).count(), 0);
    }
}
