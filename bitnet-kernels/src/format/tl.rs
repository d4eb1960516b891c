//! The lookup-table kernels' weight layout: row-interleaved tiles of 4-bit
//! pair indices.
use super::i2s::{check_scale, checked_code_bytes, I2sMatrix, WeightScale, I2S_BLOCK};
use crate::error::{check_len, Error};
use core::fmt;

/// Rows per interleaved tile of the lookup-table layout.
pub const TL_ROW_TILE: usize = 64;

/// An `M × K` ternary matrix in the lookup-table kernels' layout, borrowed.
///
/// # Layout
/// Rows are grouped into tiles of [`TL_ROW_TILE`] = 64 rows; tile `j` holds
/// rows `64j .. 64j + 63`. The last tile is padded to 64 rows with zero
/// trits (code 1), so the kernels never special-case a short tile.
///
/// * Tile `j` is `64 · K/4` contiguous bytes starting at byte `j · 16K`.
/// * Inside a tile, *step* `s` (`0 ≤ s < K/4`) is 64 bytes at offset `64s`:
///   byte `i` belongs to row `64j + i` and holds that row's weights
///   `4s, 4s+1, 4s+2, 4s+3` as codes (`trit + 1`) in bits 7:6, 5:4, 3:2, 1:0.
/// * So the high nibble `4·code(4s) + code(4s+1)` indexes the 16-entry table
///   of activation pair `2s` (columns `4s, 4s+1`), and the low nibble indexes
///   pair `2s + 1` (columns `4s+2, 4s+3`).
///
/// One step load gives the table indices of two activation pairs for 16–64
/// rows, all under the same two tables: a byte shuffle (`vpshufb`, `tbl`)
/// looks them up 16 or 32 rows at a time, and AVX-512 reads the 64 bytes as
/// 32 words (rows `2i`, `2i+1`) and looks both bytes up with `vpermw`.
///
/// # Memory
/// `⌈M/64⌉ · 64 · K/4` bytes: 2 bits per weight, like I2_S, plus at most 63
/// padding rows (none for the 2B-4T shapes). The scale is passed separately.
///
/// Code 3 has no ternary meaning: [`TlMatrix::pack`] rejects it. Bytes given
/// to [`TlMatrix::from_packed`] are not scanned; a code 3 there counts as a
/// weight of 2, exactly as the multiply-add kernels treat it in I2_S.
#[derive(Clone, Copy)]
pub struct TlMatrix<'a> {
    bytes: &'a [u8],
    m: usize,
    k: usize,
    scale: f32,
}

impl fmt::Debug for TlMatrix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlMatrix")
            .field("m", &self.m)
            .field("k", &self.k)
            .field("scale", &self.scale)
            .finish()
    }
}

/// The I2_S code of row `r`, column `c` (see [`I2sMatrix`]).
#[inline(always)]
fn i2s_code(row: &[u8], c: usize) -> u8 {
    let byte = row[(c / I2S_BLOCK) * 32 + c % 32];
    (byte >> (6 - 2 * ((c % I2S_BLOCK) / 32))) & 3
}

/// Byte of four consecutive zero trits (code 1 each): the padding rows.
const ZERO_TRITS: u8 = 0b0101_0101;

impl<'a> TlMatrix<'a> {
    /// Bytes [`TlMatrix::pack`] writes for an `m × k` matrix:
    /// `⌈m/64⌉ · 64 · k/4` (saturating, so absurd shapes fail the length checks).
    pub fn packed_len(m: usize, k: usize) -> usize {
        m.div_ceil(TL_ROW_TILE)
            .saturating_mul(TL_ROW_TILE)
            .saturating_mul(k / 4)
    }

    /// Repacks a tensor-scaled I2_S matrix into `out` (exactly
    /// [`TlMatrix::packed_len`] bytes) and returns the view. Code 3 is
    /// [`Error::BadCode`] with the offending I2_S byte index.
    pub fn pack(w: &I2sMatrix<'_>, out: &'a mut [u8]) -> Result<TlMatrix<'a>, Error> {
        let WeightScale::Tensor(scale) = w.scale() else {
            return Err(Error::BadScale {
                what: "lookup-table kernels need a per-tensor scale",
                bits: 0,
            });
        };
        let (m, k) = (w.m(), w.k());
        check_len("TL packed bytes", Self::packed_len(m, k), out.len())?;
        w.validate_codes()?;
        let tile_bytes = TL_ROW_TILE * k / 4;
        for (j, tile) in out.chunks_exact_mut(tile_bytes).enumerate() {
            for (i, r) in (j * TL_ROW_TILE..(j + 1) * TL_ROW_TILE).enumerate() {
                if r >= m {
                    for s in 0..k / 4 {
                        tile[s * TL_ROW_TILE + i] = ZERO_TRITS;
                    }
                    continue;
                }
                let row = w.row(r);
                for s in 0..k / 4 {
                    let mut byte = 0u8;
                    for c in 4 * s..4 * s + 4 {
                        byte = byte << 2 | i2s_code(row, c);
                    }
                    tile[s * TL_ROW_TILE + i] = byte;
                }
            }
        }
        Self::from_packed(out, m, k, scale)
    }

    /// Views bytes written by [`TlMatrix::pack`] (for example, cached on
    /// disk). Checks the shape, the length and that `scale` is finite.
    pub fn from_packed(
        bytes: &'a [u8],
        m: usize,
        k: usize,
        scale: f32,
    ) -> Result<TlMatrix<'a>, Error> {
        // The layout is I2_S's 2 bits per weight over whole 64-row tiles.
        let expected = checked_code_bytes(m.div_ceil(TL_ROW_TILE) * TL_ROW_TILE, k)?;
        check_len("TL packed bytes", expected, bytes.len())?;
        check_scale("TL tensor scale", scale)?;
        Ok(TlMatrix { bytes, m, k, scale })
    }

    /// Writes the matrix back as I2_S codes (`M·K/4` bytes): lossless, the
    /// inverse of [`TlMatrix::pack`]. Padding rows are dropped.
    pub fn unpack_i2s(&self, codes: &mut [u8]) -> Result<(), Error> {
        let (m, k) = (self.m, self.k);
        check_len("I2_S code bytes", m * k / 4, codes.len())?;
        for (r, row) in codes.chunks_exact_mut(k / 4).enumerate() {
            let tile = self.tile(r / TL_ROW_TILE);
            let i = r % TL_ROW_TILE;
            for (b, block) in row.chunks_exact_mut(32).enumerate() {
                for (j, out) in block.iter_mut().enumerate() {
                    let mut byte = 0u8;
                    for g in 0..4 {
                        let c = b * I2S_BLOCK + 32 * g + j;
                        let packed = tile[(c / 4) * TL_ROW_TILE + i];
                        byte = byte << 2 | (packed >> (6 - 2 * (c % 4))) & 3;
                    }
                    *out = byte;
                }
            }
        }
        Ok(())
    }

    /// Output rows.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Inputs per row (a multiple of 128).
    pub fn k(&self) -> usize {
        self.k
    }

    /// The per-tensor weight scale.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// All packed bytes, [`TlMatrix::packed_len`] of them.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of row tiles, `⌈M/64⌉`.
    pub fn tiles(&self) -> usize {
        self.m.div_ceil(TL_ROW_TILE)
    }

    /// Tile `j`'s `64 · K/4` bytes.
    #[inline(always)]
    pub fn tile(&self, j: usize) -> &'a [u8] {
        let len = TL_ROW_TILE * self.k / 4;
        &self.bytes[j * len..(j + 1) * len]
    }
}
