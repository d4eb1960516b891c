//! Per-ISA kernels. `scalar` is the reference every other path must match;
//! each SIMD module holds only what differs.

pub(crate) mod aarch64;
pub(crate) mod lut;
pub(crate) mod scalar;
pub(crate) mod x86_64;

use crate::dispatch::{Family, Isa};
use core::ops::Range;

/// The faster family per ISA and token count, as measured on one core of
/// this project's reference machine (README "Benchmarks"). Both families are
/// exact, so this is a pure speed choice:
/// * scalar: lookup tables win up to N = 16 (~+20 %), tie at 128;
/// * AVX2, AVX-512: multiply-add wins at every N (LUT 8–13 % behind at N = 1,
///   far behind beyond: it redoes its lookups per token while maddubs /
///   vpdpbusd reuse each unpacked weight across tokens);
/// * NEON: multiply-add (`sdot` with dotprod; without it unmeasured on real
///   hardware, so the simpler family stays).
pub(crate) fn preferred_family(isa: Isa, n: usize) -> Family {
    match isa {
        Isa::Scalar if n <= 16 => Family::Lookup,
        _ => Family::MultiplyAdd,
    }
}

/// Rows a DRAM-bound float GEMV (the LM head) reads per pass.
///
/// A pass takes rows `r, r + l, r + 2l, r + 3l` with `l = rows / 4`, so the
/// weights arrive as four sequential streams a quarter of the matrix apart,
/// the pattern the ternary GEMV and the bandwidth probe use. One core pulls
/// far more from DRAM that way than from one stream: on the AVX2 VM
/// (2026-11-29) a plain sum over the mmapped head ran at 12.5 GB/s as four
/// such streams against 8.3 GB/s as one. Adjacent rows would not help: a few
/// KiB apart, they look like one stream to the prefetchers.
pub(crate) const GEMV_STREAMS: usize = 4;

/// Computes `y[r - rows.start]` for every `r` in `rows` in
/// [`GEMV_STREAMS`] far-apart streams, row `r` being `w[r·row_len ..][..row_len]`:
/// `dots` gets the rows of one pass and returns their dot products in order;
/// `dot` takes the `< GEMV_STREAMS` rows left over. `y.len() == rows.len()`.
#[inline(always)]
pub(crate) fn gemv_in_streams<'w, T>(
    w: &'w [T],
    row_len: usize,
    rows: Range<usize>,
    y: &mut [f32],
    mut dots: impl FnMut([&'w [T]; GEMV_STREAMS]) -> [f32; GEMV_STREAMS],
    mut dot: impl FnMut(&'w [T]) -> f32,
) {
    let row = |r: usize| &w[r * row_len..(r + 1) * row_len];
    let l = rows.len() / GEMV_STREAMS;
    for i in 0..l {
        let d = dots(rows_at(|j| row(rows.start + i + j * l)));
        for (j, v) in d.into_iter().enumerate() {
            y[i + j * l] = v;
        }
    }
    for r in rows.start + GEMV_STREAMS * l..rows.end {
        y[r - rows.start] = dot(row(r));
    }
}

/// `[row(0), row(1), …, row(S - 1)]`, as a plain loop: `array::map` and
/// `array::from_fn` are not inlined into the `#[target_feature]` kernels and
/// left a call and a `vzeroupper` per tile. Without them, on the Zen 5 VM
/// (2026-11-30, one thread), the F16 head read 37.3–37.9 GB/s instead of
/// 35.8–36.5, and decode attention at depth 2048 took 15.9–16.1 ms per token
/// instead of 17.1–17.4.
#[inline(always)]
pub(crate) fn rows_at<'w, T, const S: usize>(row: impl Fn(usize) -> &'w [T]) -> [&'w [T]; S] {
    let mut rows = [&[][..]; S];
    for (j, r) in rows.iter_mut().enumerate() {
        *r = row(j);
    }
    rows
}

/// An element of the attention kernels' key and value rows: f32, or the
/// f16 bits (`u16`) of an f16 KV cache, widened exactly where the kernel
/// reads it. Widening is exact, so a kernel over f16 rows gives bit for bit
/// what it gives over the same rows widened first.
pub(crate) trait KvElem: Copy + 'static {
    fn to_f32(self) -> f32;
}

impl KvElem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl KvElem for u16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        crate::math::f16_to_f32(self)
    }
}

/// [`Table::dot_f64acc_rows`](crate::dispatch::Table) for an ISA without its
/// own: one `dot` per row.
///
/// # Safety
/// `dot`'s ISA is present; `keys.len() == out.len() · q.len()`.
#[inline(always)]
pub(crate) unsafe fn dot_f64acc_rows_with<E: KvElem>(
    dot: unsafe fn(&[f32], &[E]) -> f32,
    q: &[f32],
    keys: &[E],
    out: &mut [f32],
) {
    let k = q.len();
    for (j, o) in out.iter_mut().enumerate() {
        // SAFETY: forwarded from our caller.
        *o = unsafe { dot(q, &keys[j * k..(j + 1) * k]) };
    }
}

/// [`Table::weighted_sum_f64acc`](crate::dispatch::Table) for an ISA without
/// its own: `axpy` row by row into `acc`.
///
/// # Safety
/// `axpy`'s ISA is present; `values.len() == p.len() · acc.len()`.
#[inline(always)]
pub(crate) unsafe fn weighted_sum_f64acc_with<E: KvElem>(
    axpy: unsafe fn(f32, &[E], &mut [f64]),
    p: &[f32],
    values: &[E],
    acc: &mut [f64],
) {
    let k = acc.len();
    for (j, &pj) in p.iter().enumerate() {
        // SAFETY: forwarded from our caller.
        unsafe { axpy(pj, &values[j * k..(j + 1) * k], acc) };
    }
}

/// [`Table::dot_f64acc_queries`](crate::dispatch::Table) for an ISA without
/// its own: the table's `dot_f64acc_rows` per query.
///
/// # Safety
/// `rows`' ISA is present; `k > 0`, `qs.len()` and `keys.len()` are
/// multiples of `k`, and `out` holds one value per query and key.
#[inline(always)]
pub(crate) unsafe fn dot_f64acc_queries_with<E: KvElem>(
    rows: unsafe fn(&[f32], &[E], &mut [f32]),
    qs: &[f32],
    keys: &[E],
    k: usize,
    out: &mut [f32],
) {
    let n = keys.len() / k;
    if n == 0 {
        return;
    }
    for (q, o) in qs.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
        // SAFETY: forwarded from our caller.
        unsafe { rows(q, keys, o) };
    }
}

/// [`Table::weighted_sum_f64acc_queries`](crate::dispatch::Table) for an
/// ISA without its own: the table's `weighted_sum_f64acc` per query.
///
/// # Safety
/// `sum`'s ISA is present; `k > 0`, `values.len()` and `accs.len()` are
/// multiples of `k`, and `ps` holds one weight per query and row.
#[inline(always)]
pub(crate) unsafe fn weighted_sum_f64acc_queries_with<E: KvElem>(
    sum: unsafe fn(&[f32], &[E], &mut [f64]),
    ps: &[f32],
    values: &[E],
    k: usize,
    accs: &mut [f64],
) {
    let n = values.len() / k;
    for (g, acc) in accs.chunks_exact_mut(k).enumerate() {
        // SAFETY: forwarded from our caller.
        unsafe { sum(&ps[g * n..(g + 1) * n], values, acc) };
    }
}

/// [`Table::dot_f16_multi`](crate::dispatch::Table) for an ISA whose kernel
/// takes one row against every vector (`row(xs, b, out)`): row by row.
///
/// # Safety
/// `row`'s ISA is present; `k > 0`, `xs.len()` and `w.len()` are multiples
/// of `k`, and `out.len() == (w.len() / k) · (xs.len() / k)`.
#[inline(always)]
pub(crate) unsafe fn dot_f16_multi_rows_with(
    row: unsafe fn(&[f32], &[u16], &mut [f32]),
    xs: &[f32],
    w: &[u16],
    k: usize,
    out: &mut [f32],
) {
    let n = xs.len() / k;
    if n == 0 {
        return;
    }
    for (b, o) in w.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
        // SAFETY: forwarded from our caller.
        unsafe { row(xs, b, o) };
    }
}

/// The batched LM heads' row order: `R` far-apart streams, as the decode
/// GEMVs read rows ([`GEMV_STREAMS`]). Row `r` is `w[r·row_len ..][..row_len]`
/// and `m = w.len() / row_len`. With `q = m / R`, calls `tile(rows, outs)`
/// for rows `j + i·q` (`i < R`) for each `j < q`, `outs[i]` being that row's
/// `n` outputs in `out` (M × N, row-major), then `one(row, out_r)` for each
/// of the `m % R` rows left. Nothing is called when `n == 0`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn multi_in_streams<'w, T, const R: usize>(
    w: &'w [T],
    row_len: usize,
    n: usize,
    out: &mut [f32],
    mut tile: impl FnMut([&'w [T]; R], [&mut [f32]; R]),
    mut one: impl FnMut(&'w [T], &mut [f32]),
) {
    if n == 0 {
        return;
    }
    let m = w.len() / row_len;
    let row = |r: usize| &w[r * row_len..(r + 1) * row_len];
    let q = m / R;
    let (body, rest) = out[..m * n].split_at_mut(R * q * n);
    if q > 0 {
        let mut streams = body.chunks_exact_mut(q * n);
        let mut streams: [_; R] =
            core::array::from_fn(|_| streams.next().expect("R streams").chunks_exact_mut(n));
        for j in 0..q {
            let outs = streams
                .each_mut()
                .map(|s| s.next().expect("q rows per stream"));
            tile(rows_at(|i| row(j + i * q)), outs);
        }
    }
    for (r, o) in (R * q..m).zip(rest.chunks_exact_mut(n)) {
        one(row(r), o);
    }
}

/// A `Table::dot_*_multi` entry for an ISA without its own: the ISA's
/// `gemv` per row and vector, so every output is that GEMV's bit for bit.
/// `xs` holds vectors of `xrow` elements (as `gemv` takes them for `k`
/// weights).
///
/// # Safety
/// `gemv`'s ISA is present; `k`, `xs` and `w` are what `gemv` takes for
/// whole rows and vectors, and `out` holds one value per row and vector.
#[inline(always)]
pub(crate) unsafe fn dot_multi_with<X>(
    gemv: crate::dispatch::GemvFn<u8, X>,
    xs: &[X],
    xrow: usize,
    w: &[u8],
    k: usize,
    out: &mut [f32],
) {
    let n = xs.len() / xrow;
    if n == 0 {
        return;
    }
    for (r, o) in out.chunks_exact_mut(n).enumerate() {
        for (x, y) in xs.chunks_exact(xrow).zip(o.chunks_exact_mut(1)) {
            // SAFETY: forwarded from our caller; row `r` exists.
            unsafe { gemv(w, k, x, r..r + 1, y) };
        }
    }
}
