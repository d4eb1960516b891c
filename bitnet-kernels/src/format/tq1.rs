use super::i2s::{check_scale, trit_code};
use super::tq2::tq_blocks;
use super::TQ_BLOCK;
use crate::error::{check_len, Error};
use crate::math::{f16_to_f32, f32_to_f16};

/// Bytes per TQ1_0 block: 48 `qs` bytes, 4 `qh` bytes, then the f16 scale.
pub const TQ1_BLOCK_BYTES: usize = 54;

/// An `M × K` matrix in llama.cpp's TQ1_0 layout (GGUF type 34), borrowed.
///
/// Five trits per byte (1.6875 bits/weight): a byte holds the base-3 number
/// of its trits' codes (first trit most significant) as the fixed-point
/// fraction `ceil(v · 256 / 243)`, so trit `n` is the top two bits of
/// `(byte · 3ⁿ mod 256) · 3`. `qs[0..32]` byte `m` covers weights
/// `m + 32n` (n < 5), `qs[32..48]` byte `m` covers `160 + m + 16n`, and
/// `qh` byte `j` covers `240 + j + 4n` (n < 4, one trit shifted in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tq1Matrix<'a> {
    data: &'a [u8],
    m: usize,
    k: usize,
}

impl<'a> Tq1Matrix<'a> {
    /// Views a GGUF TQ1_0 tensor of exactly `M · K/256 · 54` bytes.
    pub fn from_gguf(data: &'a [u8], m: usize, k: usize) -> Result<Self, Error> {
        let blocks = tq_blocks(m, k)?;
        check_len("TQ1_0 tensor bytes", blocks * TQ1_BLOCK_BYTES, data.len())?;
        Ok(Tq1Matrix { data, m, k })
    }

    /// Output rows.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Inputs per row (a multiple of 256).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Repacks into I2_S codes (`M·K/4` bytes) and per-block scales
    /// (`M·K/256` values). Lossless; non-finite scales are errors.
    pub fn repack_i2s(&self, codes: &mut [u8], scales: &mut [f32]) -> Result<(), Error> {
        let blocks = self.m * (self.k / TQ_BLOCK);
        check_len("I2_S code bytes", self.m * self.k / 4, codes.len())?;
        check_len("block scales", blocks, scales.len())?;
        let mut trits = [0i8; TQ_BLOCK];
        for (i, (block, out)) in self
            .data
            .chunks_exact(TQ1_BLOCK_BYTES)
            .zip(codes.chunks_exact_mut(64))
            .enumerate()
        {
            let s = decode_block(block, &mut trits);
            check_scale("TQ1_0 block scale", s)?;
            scales[i] = s;
            super::encode_i2s_row(&trits, out)?;
        }
        Ok(())
    }
}

const POW3: [u8; 5] = [1, 3, 9, 27, 81];

fn trit_of(byte: u8, n: usize) -> u8 {
    let q = byte.wrapping_mul(POW3[n]);
    ((q as u16 * 3) >> 8) as u8
}

/// Decodes one block. Every byte decodes to some trit pattern (the top
/// two bits of `q · 3` for `q < 256` are at most 2), so this cannot fail;
/// non-canonical bytes decode exactly as llama.cpp decodes them.
fn decode_block(block: &[u8], trits: &mut [i8; TQ_BLOCK]) -> f32 {
    for m in 0..32 {
        for n in 0..5 {
            trits[m + 32 * n] = trit_of(block[m], n) as i8 - 1;
        }
    }
    for m in 0..16 {
        for n in 0..5 {
            trits[160 + m + 16 * n] = trit_of(block[32 + m], n) as i8 - 1;
        }
    }
    for j in 0..4 {
        for n in 0..4 {
            trits[240 + j + 4 * n] = trit_of(block[48 + j], n) as i8 - 1;
        }
    }
    f16_to_f32(u16::from_le_bytes([block[52], block[53]]))
}

fn encode_fraction(v: u16) -> u8 {
    ((v * 256).div_ceil(243)) as u8
}

/// Packs one row of `K` trits (`K % 256 == 0`) with one scale per block
/// (`K/256` values, rounded to f16) into `K/256 · 54` TQ1_0 bytes,
/// byte-identical to llama.cpp's reference quantizer.
pub fn encode_tq1_row(trits: &[i8], scales: &[f32], out: &mut [u8]) -> Result<(), Error> {
    let blocks = tq_blocks(1, trits.len())?;
    check_len("TQ1_0 block scales", blocks, scales.len())?;
    check_len("TQ1_0 row bytes", blocks * TQ1_BLOCK_BYTES, out.len())?;
    for ((w, &s), block) in trits
        .chunks_exact(TQ_BLOCK)
        .zip(scales)
        .zip(out.chunks_exact_mut(TQ1_BLOCK_BYTES))
    {
        let pack = |idx: &mut dyn Iterator<Item = usize>| -> Result<u16, Error> {
            let mut acc = 0u16;
            for i in idx {
                acc = acc * 3 + trit_code(w[i], i)? as u16;
            }
            Ok(acc)
        };
        for m in 0..32 {
            block[m] = encode_fraction(pack(&mut (0..5).map(|n| m + 32 * n))?);
        }
        for m in 0..16 {
            block[32 + m] = encode_fraction(pack(&mut (0..5).map(|n| 160 + m + 16 * n))?);
        }
        for j in 0..4 {
            block[48 + j] = encode_fraction(pack(&mut (0..4).map(|n| 240 + j + 4 * n))? * 3);
        }
        block[52..].copy_from_slice(&f32_to_f16(s).to_le_bytes());
    }
    Ok(())
}

/// Unpacks one TQ1_0 row into `K` trits and `K/256` scales.
pub fn decode_tq1_row(data: &[u8], trits: &mut [i8], scales: &mut [f32]) -> Result<(), Error> {
    let blocks = tq_blocks(1, trits.len())?;
    check_len("TQ1_0 row bytes", blocks * TQ1_BLOCK_BYTES, data.len())?;
    check_len("TQ1_0 block scales", blocks, scales.len())?;
    let mut block_trits = [0i8; TQ_BLOCK];
    for ((block, w), s) in data
        .chunks_exact(TQ1_BLOCK_BYTES)
        .zip(trits.chunks_exact_mut(TQ_BLOCK))
        .zip(scales.iter_mut())
    {
        *s = decode_block(block, &mut block_trits);
        w.copy_from_slice(&block_trits);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_round_trips_through_a_byte() {
        for v in 0..243u16 {
            let byte = encode_fraction(v);
            let back = (0..5).fold(0u16, |acc, n| acc * 3 + trit_of(byte, n) as u16);
            assert_eq!(back, v, "pattern {v} byte {byte}");
        }
    }
}
