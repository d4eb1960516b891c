use super::i2s::{check_scale, trit_code};
use super::TQ_BLOCK;
use crate::error::{check_len, Error};
use crate::math::{f16_to_f32, f32_to_f16};

/// Bytes per TQ2_0 block: 64 code bytes then the f16 scale.
pub const TQ2_BLOCK_BYTES: usize = 66;

/// An `M × K` matrix in llama.cpp's TQ2_0 layout (GGUF type 35), borrowed.
///
/// Each 256-weight block is 64 bytes of codes (`code = trit + 1`) then an
/// f16 scale. Within each 128-weight half, byte `m` holds weights `m`,
/// `m+32`, `m+64`, `m+96` in bits 1:0, 3:2, 5:4, 7:6: the I2_S grouping
/// with the bit pairs in reverse order, so repacking is a per-byte swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tq2Matrix<'a> {
    data: &'a [u8],
    m: usize,
    k: usize,
}

impl<'a> Tq2Matrix<'a> {
    /// Views a GGUF TQ2_0 tensor of exactly `M · K/256 · 66` bytes.
    pub fn from_gguf(data: &'a [u8], m: usize, k: usize) -> Result<Self, Error> {
        let blocks = tq_blocks(m, k)?;
        check_len("TQ2_0 tensor bytes", blocks * TQ2_BLOCK_BYTES, data.len())?;
        Ok(Tq2Matrix { data, m, k })
    }

    /// Output rows.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Inputs per row (a multiple of 256).
    pub fn k(&self) -> usize {
        self.k
    }

    /// The f16 scale of block `b` of row `r`, as f32.
    pub fn block_scale(&self, r: usize, b: usize) -> f32 {
        let block = self.block(r, b);
        f16_to_f32(u16::from_le_bytes([block[64], block[65]]))
    }

    fn block(&self, r: usize, b: usize) -> &'a [u8] {
        let i = r * (self.k / TQ_BLOCK) + b;
        &self.data[i * TQ2_BLOCK_BYTES..(i + 1) * TQ2_BLOCK_BYTES]
    }

    /// Repacks into I2_S codes (`M·K/4` bytes) and per-block scales
    /// (`M·K/256` values). Lossless; code 3 and non-finite scales are errors.
    /// Use [`super::collapse_block_scales`] to get a per-tensor scale.
    pub fn repack_i2s(&self, codes: &mut [u8], scales: &mut [f32]) -> Result<(), Error> {
        let blocks = self.m * (self.k / TQ_BLOCK);
        check_len("I2_S code bytes", self.m * self.k / 4, codes.len())?;
        check_len("block scales", blocks, scales.len())?;
        for (i, (block, out)) in self
            .data
            .chunks_exact(TQ2_BLOCK_BYTES)
            .zip(codes.chunks_exact_mut(64))
            .enumerate()
        {
            for (j, (&src, dst)) in block[..64].iter().zip(out.iter_mut()).enumerate() {
                if src & (src >> 1) & 0x55 != 0 {
                    return Err(Error::BadCode {
                        index: i * TQ2_BLOCK_BYTES + j,
                    });
                }
                *dst = reverse_pairs(src);
            }
            let s = f16_to_f32(u16::from_le_bytes([block[64], block[65]]));
            check_scale("TQ2_0 block scale", s)?;
            scales[i] = s;
        }
        Ok(())
    }
}

/// Swaps the four 2-bit fields of a byte end for end (TQ2_0 ↔ I2_S order).
fn reverse_pairs(b: u8) -> u8 {
    let b = b.rotate_left(4);
    ((b & 0x33) << 2) | ((b >> 2) & 0x33)
}

pub(crate) fn tq_blocks(m: usize, k: usize) -> Result<usize, Error> {
    if m == 0 {
        return Err(Error::ZeroDim { what: "M (rows)" });
    }
    if k == 0 {
        return Err(Error::ZeroDim {
            what: "K (columns)",
        });
    }
    if !k.is_multiple_of(TQ_BLOCK) {
        return Err(Error::KNotMultiple { k, block: TQ_BLOCK });
    }
    m.checked_mul(k / TQ_BLOCK).ok_or(Error::BufferLength {
        what: "TQ blocks (overflow)",
        expected: usize::MAX,
        actual: 0,
    })
}

/// Packs one row of `K` trits (`K % 256 == 0`) with one scale per block
/// (`K/256` values, rounded to f16) into `K/256 · 66` TQ2_0 bytes.
pub fn encode_tq2_row(trits: &[i8], scales: &[f32], out: &mut [u8]) -> Result<(), Error> {
    let blocks = tq_blocks(1, trits.len())?;
    check_len("TQ2_0 block scales", blocks, scales.len())?;
    check_len("TQ2_0 row bytes", blocks * TQ2_BLOCK_BYTES, out.len())?;
    for ((w, &s), block) in trits
        .chunks_exact(TQ_BLOCK)
        .zip(scales)
        .zip(out.chunks_exact_mut(TQ2_BLOCK_BYTES))
    {
        for half in 0..2 {
            for m in 0..32 {
                let mut byte = 0u8;
                for n in 0..4 {
                    let i = half * 128 + m + 32 * n;
                    byte |= trit_code(w[i], i)? << (2 * n);
                }
                block[half * 32 + m] = byte;
            }
        }
        block[64..].copy_from_slice(&f32_to_f16(s).to_le_bytes());
    }
    Ok(())
}

/// Unpacks one TQ2_0 row into `K` trits and `K/256` scales.
pub fn decode_tq2_row(data: &[u8], trits: &mut [i8], scales: &mut [f32]) -> Result<(), Error> {
    let blocks = tq_blocks(1, trits.len())?;
    check_len("TQ2_0 row bytes", blocks * TQ2_BLOCK_BYTES, data.len())?;
    check_len("TQ2_0 block scales", blocks, scales.len())?;
    for (b, ((block, w), s)) in data
        .chunks_exact(TQ2_BLOCK_BYTES)
        .zip(trits.chunks_exact_mut(TQ_BLOCK))
        .zip(scales.iter_mut())
        .enumerate()
    {
        for half in 0..2 {
            for m in 0..32 {
                let byte = block[half * 32 + m];
                for n in 0..4 {
                    let code = (byte >> (2 * n)) & 3;
                    if code == 3 {
                        return Err(Error::BadCode {
                            index: b * TQ2_BLOCK_BYTES + half * 32 + m,
                        });
                    }
                    w[half * 128 + m + 32 * n] = code as i8 - 1;
                }
            }
        }
        *s = f16_to_f32(u16::from_le_bytes([block[64], block[65]]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::reverse_pairs;

    #[test]
    fn reverse_pairs_swaps_fields() {
        assert_eq!(reverse_pairs(0b11_10_01_00), 0b00_01_10_11);
        for b in 0..=255u8 {
            assert_eq!(reverse_pairs(reverse_pairs(b)), b);
        }
    }
}
