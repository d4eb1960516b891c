//! The lookup-table (T-MAC style) matmul, written once over a per-ISA
//! [`Lut`] kernel, and its scalar reference.
//!
//! For each token and each pair of activations `(a0, a1)` a 16-entry table
//! holds `T[4·c0 + c1] = (c0 − 1)·a0 + (c1 − 1)·a1` for codes `c0, c1 ∈ 0..4`
//! (code 3 counts as weight 2, as in the multiply-add kernels). A
//! [`TlMatrix`] byte holds two such 4-bit indices per row, so one lookup
//! instruction yields one pair's partial sums for 16–64 rows.
//!
//! # Exactness
//! Every entry lies in `[−512, 508]` (`|c − 1| ≤ 2`, `a ∈ [−128, 127]`), and
//! only `[−256, 256]` for real ternary weights. Kernels add entries in `i16`
//! over one 128-activation block (64 pairs) and then widen to `i32`: the
//! block sum is within `64 · [−512, 508] = [−32768, 32512]`, which fits `i16`,
//! and so does every partial sum on the way (wrapping adds would be exact
//! anyway, since the final value fits). Over `K ≤ MAX_K = 2^20` the `i32`
//! dot is at most `2^19` pairs `· 512 = 2^28` in magnitude. The dot is thus
//! the exact `Σ trit·q`, and [`dequantize_dot`] makes the output bitwise
//! equal to the multiply-add family's.
//!
//! # Blocking
//! Tables are built into a 16 KB stack buffer (L1-resident) for as many
//! activations as fit (512 or 1024, by the kernel's table format) and reused
//! across a block of `TB` tiles (2048 rows), whose `i32` sums (8 KB) also
//! live on the stack; nothing allocates. The block is that large because
//! building a pair's table costs about as much as looking it up for one
//! tile, so it must be shared by many tiles (TB = 8 was 8% slower on Zen 4).
//! Each token re-reads a block's weights; this family is meant for small
//! `N`, where that costs little.

use crate::format::{TlMatrix, TL_ROW_TILE};
use crate::matmul::dequantize_dot;
use crate::quant::QuantizedActs;
use core::ops::Range;

/// Bytes of tables per chunk of activations.
const TABLE_BYTES: usize = 16 * 1024;
/// Tiles that share one table build (2048 rows).
const TB: usize = 32;
/// Tiles per [`Lut::tiles`] call.
const GROUP: usize = 2;
/// Activations per `i16` accumulation block (64 pairs; see "Exactness").
pub(crate) const BLOCK: usize = 128;

/// Weight of code `c` (`c − 1`; the unused code 3 weighs 2).
#[inline(always)]
pub(crate) const fn code_weight(c: usize) -> i16 {
    c as i16 - 1
}

/// What an ISA supplies: how it lays out and builds the tables, and how it
/// runs one tile over one chunk.
pub(crate) trait Lut {
    /// Table bytes per activation pair (32, or 64 when duplicated).
    const PAIR_BYTES: usize;

    /// Writes the tables of `acts` (a multiple of [`BLOCK`] values),
    /// `PAIR_BYTES` per pair, into `table` (`acts.len() / 2 · PAIR_BYTES` bytes).
    ///
    /// # Safety
    /// The CPU supports the kernel's ISA.
    unsafe fn build(acts: &[i8], table: &mut [u8]);

    /// Adds to `acc[i]` row `i`'s dot over a chunk: `codes` are the tile's
    /// `64 · len/4` bytes for the chunk's `len` activations, `table` the
    /// chunk's tables.
    ///
    /// # Safety
    /// The CPU supports the kernel's ISA.
    unsafe fn tile(table: &[u8], codes: &[u8], acc: &mut [i32; TL_ROW_TILE]);

    /// [`Lut::tile`] on `T` tiles, for kernels that share table loads.
    ///
    /// # Safety
    /// The CPU supports the kernel's ISA.
    #[inline(always)]
    unsafe fn tiles<const T: usize>(
        table: &[u8],
        codes: [&[u8]; T],
        acc: [&mut [i32; TL_ROW_TILE]; T],
    ) {
        for (codes, acc) in codes.into_iter().zip(acc) {
            // SAFETY: the caller guarantees the ISA.
            unsafe { Self::tile(table, codes, acc) };
        }
    }
}

/// Stack buffer for one chunk's tables, aligned for full-width loads.
#[repr(C, align(64))]
struct TableBuf([u8; TABLE_BYTES]);

/// The algorithm: `y[t·y_stride + r] = dequantize(Σ_k trit[r][k]·q[t][k])`
/// for `r ∈ rows`. Inlined into each ISA's `#[target_feature]` entry point.
///
/// # Safety
/// The CPU supports `L`'s ISA; shapes are valid (checked by
/// [`crate::Dispatch::gemm_tl`]); `y[t·y_stride + r]` is writable for
/// `t < x.n()`, `r ∈ rows`.
#[inline(always)]
pub(crate) unsafe fn gemm<L: Lut>(
    w: &TlMatrix<'_>,
    x: &QuantizedActs<'_>,
    rows: Range<usize>,
    y: *mut f32,
    y_stride: usize,
) {
    if rows.is_empty() {
        return;
    }
    let k = w.k();
    let tiles = rows.start / TL_ROW_TILE..rows.end.div_ceil(TL_ROW_TILE);
    let kc = TABLE_BYTES / L::PAIR_BYTES * 2;
    let mut table = TableBuf([0; TABLE_BYTES]);
    let mut acc = [[0i32; TL_ROW_TILE]; TB];
    for first in tiles.clone().step_by(TB) {
        let block = first..tiles.end.min(first + TB);
        for t in 0..x.n() {
            let act = x.row(t);
            let acc = &mut acc[..block.len()];
            acc.iter_mut().for_each(|a| *a = [0; TL_ROW_TILE]);
            for c in (0..k).step_by(kc) {
                let len = kc.min(k - c);
                let table = &mut table.0[..len / 2 * L::PAIR_BYTES];
                // SAFETY: the caller guarantees the ISA.
                unsafe { L::build(&act[c..c + len], table) };
                let codes = |j: usize| &w.tile(j)[c / 4 * TL_ROW_TILE..(c + len) / 4 * TL_ROW_TILE];
                let mut groups = acc.chunks_exact_mut(GROUP);
                let mut j = block.start;
                for group in &mut groups {
                    let mut accs = group.iter_mut();
                    let accs = core::array::from_fn(|_| accs.next().expect("GROUP tiles"));
                    let codes = core::array::from_fn(|i| codes(j + i));
                    // SAFETY: as above.
                    unsafe { L::tiles::<GROUP>(table, codes, accs) };
                    j += GROUP;
                }
                for a in groups.into_remainder() {
                    // SAFETY: as above.
                    unsafe { L::tile(table, codes(j), a) };
                    j += 1;
                }
            }
            for (a, j) in acc.iter().zip(block.clone()) {
                let base = j * TL_ROW_TILE;
                for (i, &dot) in a.iter().enumerate() {
                    if rows.contains(&(base + i)) {
                        let v = dequantize_dot(dot, x.scale(t), w.scale());
                        // SAFETY: the caller guarantees y[t·y_stride + r] is writable.
                        unsafe { y.add(t * y_stride + base + i).write(v) };
                    }
                }
            }
        }
    }
}

/// The scalar kernel: `i16` tables, `T[e]` little-endian at bytes `2e, 2e+1`.
pub(crate) struct Scalar;

impl Lut for Scalar {
    const PAIR_BYTES: usize = 32;

    unsafe fn build(acts: &[i8], table: &mut [u8]) {
        build_i16(acts, table);
    }

    unsafe fn tile(table: &[u8], codes: &[u8], acc: &mut [i32; TL_ROW_TILE]) {
        let entry = |pair: &[u8], e: u8| {
            let e = 2 * e as usize;
            i16::from_le_bytes([pair[e], pair[e + 1]])
        };
        for (tables, codes) in table
            .chunks_exact(BLOCK / 2 * Self::PAIR_BYTES)
            .zip(codes.chunks_exact(BLOCK / 4 * TL_ROW_TILE))
        {
            for (i, a) in acc.iter_mut().enumerate() {
                let mut sum = 0i16;
                for (pairs, step) in tables
                    .chunks_exact(2 * Self::PAIR_BYTES)
                    .zip(codes.chunks_exact(TL_ROW_TILE))
                {
                    let (first, second) = pairs.split_at(Self::PAIR_BYTES);
                    let b = step[i];
                    // Cannot overflow: see "Exactness" in the module docs.
                    sum += entry(first, b >> 4) + entry(second, b & 15);
                }
                *a += sum as i32;
            }
        }
    }
}

/// Builds `i16` tables: pair `p`'s entry `e` at bytes `32p + 2e`.
fn build_i16(acts: &[i8], table: &mut [u8]) {
    for (pair, out) in acts.chunks_exact(2).zip(table.chunks_exact_mut(32)) {
        let (a0, a1) = (pair[0] as i16, pair[1] as i16);
        for (e, o) in out.chunks_exact_mut(2).enumerate() {
            let v = code_weight(e >> 2) * a0 + code_weight(e & 3) * a1;
            o.copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// The scalar reference entry (`Table::gemm_tl`).
///
/// # Safety
/// As [`gemm`] (the scalar ISA is always present).
pub(crate) unsafe fn gemm_tl(
    w: &TlMatrix<'_>,
    x: &QuantizedActs<'_>,
    rows: Range<usize>,
    y: *mut f32,
    y_stride: usize,
) {
    // SAFETY: same contract; scalar needs no CPU feature.
    unsafe { gemm::<Scalar>(w, x, rows, y, y_stride) }
}
