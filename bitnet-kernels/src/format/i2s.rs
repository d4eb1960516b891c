use crate::error::{check_len, Error};
use core::fmt;

/// Weights per I2_S block: 128 trits in 32 bytes.
pub const I2S_BLOCK: usize = 128;
/// Bytes after the packed codes of an I2_S tensor; the first 4 hold the f32 scale.
pub const I2S_TAIL_BYTES: usize = 32;

/// How a ternary matrix is scaled: `w = trit × scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightScale<'a> {
    /// One scale for the whole tensor (I2_S, and every BitNet checkpoint).
    Tensor(f32),
    /// One scale per 256 weights of each row, row-major: `M × K/256` values
    /// (TQ files whose blocks disagree). Runs on the portable path only.
    Blocks256(&'a [f32]),
}

/// An `M × K` ternary matrix in bitnet.cpp's x86 I2_S code layout, borrowed.
///
/// Each row is `K/4` bytes of 128-weight blocks; byte `j` of a block holds
/// weights `j`, `j+32`, `j+64`, `j+96` in bits 7:6, 5:4, 3:2, 1:0 as
/// `code = trit + 1`. Rows are contiguous (`K/4`-byte stride).
#[derive(Clone, Copy, PartialEq)]
pub struct I2sMatrix<'a> {
    codes: &'a [u8],
    m: usize,
    k: usize,
    scale: WeightScale<'a>,
}

impl fmt::Debug for I2sMatrix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("I2sMatrix")
            .field("m", &self.m)
            .field("k", &self.k)
            .field("scale", &self.scale)
            .finish()
    }
}

impl<'a> I2sMatrix<'a> {
    /// Views a GGUF I2_S tensor: `M·K/4` code bytes then a 32-byte tail whose
    /// first 4 bytes are the little-endian f32 scale. `data` must be exactly
    /// `M·K/4 + 32` bytes.
    pub fn from_gguf(data: &'a [u8], m: usize, k: usize) -> Result<Self, Error> {
        let code_bytes = checked_code_bytes(m, k)?;
        check_len("I2_S tensor bytes", code_bytes + I2S_TAIL_BYTES, data.len())?;
        let (codes, tail) = data.split_at(code_bytes);
        let scale = f32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        Self::new(codes, m, k, WeightScale::Tensor(scale))
    }

    /// Wraps `M·K/4` code bytes with a scale. Scales must be finite
    /// (zero is allowed: an all-zero tensor).
    pub fn new(codes: &'a [u8], m: usize, k: usize, scale: WeightScale<'a>) -> Result<Self, Error> {
        let code_bytes = checked_code_bytes(m, k)?;
        check_len("I2_S code bytes", code_bytes, codes.len())?;
        match scale {
            WeightScale::Tensor(s) => check_scale("I2_S tensor scale", s)?,
            WeightScale::Blocks256(s) => {
                if !k.is_multiple_of(256) {
                    return Err(Error::KNotMultiple { k, block: 256 });
                }
                check_len("block scales", m * (k / 256), s.len())?;
                for &v in s {
                    check_scale("block scale", v)?;
                }
            }
        }
        Ok(I2sMatrix { codes, m, k, scale })
    }

    /// Output rows.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Inputs per row (a multiple of 128).
    pub fn k(&self) -> usize {
        self.k
    }

    /// The scale(s).
    pub fn scale(&self) -> WeightScale<'a> {
        self.scale
    }

    /// All code bytes, `M × K/4`.
    pub fn codes(&self) -> &'a [u8] {
        self.codes
    }

    /// Code bytes of row `r`, `K/4` of them.
    pub fn row(&self, r: usize) -> &'a [u8] {
        let stride = self.k / 4;
        &self.codes[r * stride..(r + 1) * stride]
    }

    /// The trit at row `r`, column `c`.
    pub fn trit(&self, r: usize, c: usize) -> i8 {
        let byte = self.row(r)[(c / I2S_BLOCK) * 32 + c % 32];
        let shift = 6 - 2 * ((c % I2S_BLOCK) / 32);
        ((byte >> shift) & 3) as i8 - 1
    }

    /// Checks that no code is 3 (which has no ternary meaning). O(M·K/4).
    pub fn validate_codes(&self) -> Result<(), Error> {
        match self.codes.iter().position(|&b| (b & (b >> 1) & 0x55) != 0) {
            Some(index) => Err(Error::BadCode { index }),
            None => Ok(()),
        }
    }
}

/// `M·K/4`, after checking that the shape is one I2_S can hold.
pub(crate) fn checked_code_bytes(m: usize, k: usize) -> Result<usize, Error> {
    if m == 0 {
        return Err(Error::ZeroDim { what: "M (rows)" });
    }
    if k == 0 {
        return Err(Error::ZeroDim {
            what: "K (columns)",
        });
    }
    if !k.is_multiple_of(I2S_BLOCK) {
        return Err(Error::KNotMultiple {
            k,
            block: I2S_BLOCK,
        });
    }
    m.checked_mul(k / 4).ok_or(Error::BufferLength {
        what: "I2_S code bytes (overflow)",
        expected: usize::MAX,
        actual: 0,
    })
}

pub(crate) fn check_scale(what: &'static str, s: f32) -> Result<(), Error> {
    if s.is_finite() {
        Ok(())
    } else {
        Err(Error::BadScale {
            what,
            bits: s.to_bits(),
        })
    }
}

/// Packs one row of trits (`K` values in `{-1, 0, 1}`, `K % 128 == 0`) into
/// `K/4` I2_S code bytes.
pub fn encode_i2s_row(trits: &[i8], out: &mut [u8]) -> Result<(), Error> {
    if !trits.len().is_multiple_of(I2S_BLOCK) {
        return Err(Error::KNotMultiple {
            k: trits.len(),
            block: I2S_BLOCK,
        });
    }
    check_len("I2_S row bytes", trits.len() / 4, out.len())?;
    for (block, bytes) in trits.chunks_exact(I2S_BLOCK).zip(out.chunks_exact_mut(32)) {
        for j in 0..32 {
            let mut byte = 0u8;
            for g in 0..4 {
                byte |= trit_code(block[j + 32 * g], j + 32 * g)? << (6 - 2 * g);
            }
            bytes[j] = byte;
        }
    }
    Ok(())
}

/// Unpacks `K/4` I2_S code bytes into `K` trits. Code 3 is an error.
pub fn decode_i2s_row(codes: &[u8], out: &mut [i8]) -> Result<(), Error> {
    if !out.len().is_multiple_of(I2S_BLOCK) {
        return Err(Error::KNotMultiple {
            k: out.len(),
            block: I2S_BLOCK,
        });
    }
    check_len("I2_S row bytes", out.len() / 4, codes.len())?;
    for (b, (block, bytes)) in out
        .chunks_exact_mut(I2S_BLOCK)
        .zip(codes.chunks_exact(32))
        .enumerate()
    {
        for j in 0..32 {
            for g in 0..4 {
                let code = (bytes[j] >> (6 - 2 * g)) & 3;
                if code == 3 {
                    return Err(Error::BadCode { index: b * 32 + j });
                }
                block[j + 32 * g] = code as i8 - 1;
            }
        }
    }
    Ok(())
}

pub(crate) fn trit_code(t: i8, index: usize) -> Result<u8, Error> {
    match t {
        -1..=1 => Ok((t + 1) as u8),
        _ => Err(Error::BadCode { index }),
    }
}
