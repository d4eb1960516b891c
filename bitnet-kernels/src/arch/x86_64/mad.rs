//! The multiply-add GEMM driver, written once for AVX2 and AVX-512: how
//! output rows and tokens are cut into register tiles. Each ISA supplies
//! only its tile shapes and the two tile kernels ([`MadTiles`]).

use super::{prefetch_ahead, prefetch_to_l2};
use crate::format::{I2sMatrix, WeightScale};
use crate::matmul::dequantize_dot;
use crate::quant::QuantizedActs;
use core::ops::Range;

/// Everything a tile needs; pointers are to the first code byte / activation.
pub(super) struct Gemm<'a> {
    pub codes: *const u8,
    pub row_bytes: usize,
    pub acts: *const i8,
    pub k: usize,
    pub x: &'a QuantizedActs<'a>,
    pub ws: f32,
    pub y: *mut f32,
    pub y_stride: usize,
    /// A decode batch or short prompt (`N ≤ STREAM_MAX_N`): tiles are at
    /// most `STREAM_T` tokens wide and prefetch their rows.
    pub stream: bool,
}

/// The most tokens that run in prefetching tiles (`Gemm::stream`) rather
/// than the widest ones. On the Zen 5 VM (2026-12-01; 2B shape, one
/// thread, AVX-512, ms of ternary matmul per token in a decode batch) 8
/// tokens took 5.4–5.7 this way against 6.3–6.4 in unprefetched tiles, 12
/// took 5.3–5.7 against 5.9–6.3, and 16 5.3 against 5.5–5.7; from 24 on
/// both ran at 5.2–5.4. The passes after the first read the panel from L2,
/// but the prefetches into L1 still pay there.
const STREAM_MAX_N: usize = 16;

impl Gemm<'_> {
    /// Writes `y[t·y_stride + r]` from `dot = Σ code·q` (the shared epilogue).
    ///
    /// # Safety
    /// That output must be writable.
    #[inline(always)]
    pub unsafe fn store(&self, r: usize, t: usize, dot: i32) {
        let v = dequantize_dot(dot.wrapping_sub(self.x.sum(t)), self.x.scale(t), self.ws);
        // SAFETY: the caller guarantees this output is writable.
        unsafe { self.y.add(t * self.y_stride + r).write(v) };
    }
}

/// Prefetches I2_S block `b` (32 bytes) of rows `w + r·rstep`, `r < R`,
/// [`PREFETCH_BYTES`](super::PREFETCH_BYTES) ahead: once per 64-byte line, so
/// only on even blocks.
#[inline(always)]
pub(super) fn prefetch_rows<const R: usize>(w: *const u8, rstep: usize, b: usize) {
    if b.is_multiple_of(2) {
        for r in 0..R {
            prefetch_ahead(w.wrapping_add(r * rstep + b * 32));
        }
    }
}

/// An ISA's register tiles for the multiply-add family.
pub(super) trait MadTiles {
    /// Weight rows × tokens of a full prefill tile.
    const GEMM_R: usize;
    const GEMM_T: usize;
    /// Tokens of the widest tile that prefetches its weight rows, for
    /// decode batches and short prompts (`Gemm::stream`); a wider tile has
    /// no registers left for the prefetch addresses.
    const STREAM_T: usize;
    /// Weight rows of a full decode tile (they share each activation load).
    const GEMV_R: usize;
    /// Rows per panel: one panel's weights stay in L2 while every token
    /// chunk passes over them.
    const PANEL_BYTES: usize;

    /// Rows `r0 + j·rs` for `j < GEMM_R` (or just `r0` when `!full`) ×
    /// tokens `t0 .. t0 + tt`, `1 ≤ tt ≤ GEMM_T`.
    ///
    /// # Safety
    /// The ISA is present; the rows and tokens exist and their outputs are writable.
    unsafe fn tile(g: &Gemm<'_>, full: bool, r0: usize, rs: usize, t0: usize, tt: usize);

    /// Decode (`N = 1`): rows `r0 + j·rs` for `j < GEMV_R` (or just `r0`).
    ///
    /// # Safety
    /// As for [`MadTiles::tile`].
    unsafe fn gemv_tile(g: &Gemm<'_>, full: bool, r0: usize, rs: usize);
}

/// The glue between an ISA's tile kernels and the driver: declares `$isa`,
/// implements [`MadTiles`] from the module's `GEMM_R`, `GEMM_T`, `STREAM_T`,
/// `GEMV_R`, `PANEL_BYTES`, `tile::<R, T>` and `gemv_tile::<R>`, and defines the
/// table entry `gemm_i2s` under `$features`. `$T` lists every token count a
/// tile can take (const generics need one instantiation each).
macro_rules! mad_isa {
    ($isa:ident, $features:literal, [$($T:literal),+]) => {
        /// The multiply-add register tiles of this ISA.
        struct $isa;

        impl $crate::arch::x86_64::mad::MadTiles for $isa {
            const GEMM_R: usize = GEMM_R;
            const GEMM_T: usize = GEMM_T;
            const STREAM_T: usize = STREAM_T;
            const GEMV_R: usize = GEMV_R;
            const PANEL_BYTES: usize = PANEL_BYTES;

            #[inline(always)]
            unsafe fn tile(g: &Gemm<'_>, full: bool, r0: usize, rs: usize, t0: usize, tt: usize) {
                // SAFETY: the driver passes rows `r0 + j·rs < rows.end` and
                // tokens `t0 + tt ≤ N`, whose outputs the caller of
                // `gemm_i2s` vouches for.
                unsafe {
                    match (full, tt) {
                        $((true, $T) => tile::<GEMM_R, $T>(g, r0, rs, t0),)+
                        $((false, $T) => tile::<1, $T>(g, r0, rs, t0),)+
                        _ => unreachable!("tile shape out of range"),
                    }
                }
            }

            #[inline(always)]
            unsafe fn gemv_tile(g: &Gemm<'_>, full: bool, r0: usize, rs: usize) {
                if full {
                    // SAFETY: forwarded from the driver's contract.
                    unsafe { gemv_tile::<GEMV_R>(g, r0, rs) }
                } else {
                    // SAFETY: as above.
                    unsafe { gemv_tile::<1>(g, r0, 0) }
                }
            }
        }

        /// See [`Table::gemm_i2s`]: the shared driver over this ISA's tiles.
        ///
        /// # Safety
        /// The ISA is present; shapes validated by the caller;
        /// `y[t·y_stride + r]` writable for `t < N`, `r ∈ rows`.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn gemm_i2s(
            w: &I2sMatrix<'_>,
            x: &QuantizedActs<'_>,
            rows: Range<usize>,
            y: *mut f32,
            y_stride: usize,
        ) {
            // SAFETY: forwarded contract.
            unsafe { $crate::arch::x86_64::mad::gemm_i2s::<$isa>(w, x, rows, y, y_stride) }
        }
    };
}
pub(super) use mad_isa;

/// See `Table::gemm_i2s`. Inlined into each ISA's `#[target_feature]` entry.
///
/// # Safety
/// `K`'s ISA is present; shapes validated by the caller; `y[t·y_stride + r]`
/// writable for `t < N`, `r ∈ rows`.
#[inline(always)]
pub(super) unsafe fn gemm_i2s<K: MadTiles>(
    w: &I2sMatrix<'_>,
    x: &QuantizedActs<'_>,
    rows: Range<usize>,
    y: *mut f32,
    y_stride: usize,
) {
    let WeightScale::Tensor(ws) = w.scale() else {
        unreachable!("block-scaled matrices take gemm_i2s_block_scaled")
    };
    let g = Gemm {
        codes: w.codes().as_ptr(),
        row_bytes: w.k() / 4,
        acts: x.values().as_ptr(),
        k: w.k(),
        x,
        ws,
        y,
        y_stride,
        stream: x.n() <= STREAM_MAX_N,
    };
    let n = x.n();
    if n == 1 {
        // R far-apart sequential streams: rows interleaved at a short
        // distance confuse the hardware prefetchers and halve DRAM bandwidth
        // on Zen 4, while independent streams run at full speed.
        let l = rows.len() / K::GEMV_R;
        for i in 0..l {
            // SAFETY: rows start + i + j·l < end; the caller vouches for y.
            unsafe { K::gemv_tile(&g, true, rows.start + i, l) };
        }
        for r in rows.start + K::GEMV_R * l..rows.end {
            // SAFETY: as above.
            unsafe { K::gemv_tile(&g, false, r, 0) };
        }
        return;
    }
    let panel = (K::PANEL_BYTES / g.row_bytes).max(K::GEMM_R) / K::GEMM_R * K::GEMM_R;
    let mut p = rows.start;
    while p < rows.end {
        let pend = (p + panel).min(rows.end);
        // Within a panel, tile `i` takes rows `p + i + j·l` (far apart, for the
        // prefetchers on the first pass); the last `< R` rows go one by one.
        let l = (pend - p) / K::GEMM_R;
        let next = NextPanel::new(&g, pend, (pend + panel).min(rows.end), l);
        let mut t = 0;
        while t < n {
            // Near-equal chunks: with 4-token tiles, 5 tokens run as 3 + 2, not 4 + 1.
            let left = n - t;
            let widest = if g.stream { K::STREAM_T } else { K::GEMM_T };
            let tt = left.div_ceil(left.div_ceil(widest));
            // The last of several passes over this panel reads it from L2
            // and has DRAM to spare: it brings in the next panel.
            let prefetch = t > 0 && t + tt == n;
            for i in 0..l {
                if prefetch {
                    next.prefetch_share(i);
                }
                // SAFETY: rows p + i + j·l < pend ≤ rows.end, tokens t + tt ≤ N.
                unsafe { K::tile(&g, true, p + i, l, t, tt) };
            }
            for r in p + K::GEMM_R * l..pend {
                // SAFETY: as above.
                unsafe { K::tile(&g, false, r, 0, t, tt) };
            }
            t += tt;
        }
        p = pend;
    }
}

/// The next panel's bytes (its rows are contiguous), cut into one share
/// per tile of a pass over the current panel, so that the DRAM reads that
/// the first pass over the next panel would wait for overlap the last pass
/// over this one.
struct NextPanel {
    start: *const u8,
    lines: usize,
    per_tile: usize,
}

impl NextPanel {
    /// Rows `first .. end` (none at the end of the range) over `tiles` tile calls.
    fn new(g: &Gemm<'_>, first: usize, end: usize, tiles: usize) -> NextPanel {
        let lines = (end.saturating_sub(first) * g.row_bytes).div_ceil(64);
        NextPanel {
            start: g.codes.wrapping_add(first * g.row_bytes),
            lines,
            per_tile: lines.div_ceil(tiles.max(1)),
        }
    }

    /// Prefetches tile `i`'s share into L2.
    #[inline(always)]
    fn prefetch_share(&self, i: usize) {
        let from = (i * self.per_tile).min(self.lines);
        let to = (from + self.per_tile).min(self.lines);
        for line in from..to {
            prefetch_to_l2(self.start.wrapping_add(64 * line));
        }
    }
}
