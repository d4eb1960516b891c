use core::fmt;

/// Everything the safe kernel API can reject. Each variant names the
/// offending quantity so a caller can turn it into a clear message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A buffer has the wrong length for the shape it is used with.
    BufferLength {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    /// `K` (the reduction length) is not a multiple of the format's block.
    KNotMultiple { k: usize, block: usize },
    /// A dimension that must be positive is zero.
    ZeroDim { what: &'static str },
    /// An output-row range lies outside `0..M` or is reversed.
    RowRange { start: usize, end: usize, m: usize },
    /// A weight scale is NaN, infinite or (where it matters) zero.
    BadScale { what: &'static str, bits: u32 },
    /// A packed code is 3 (I2_S/TQ2_0) or a TQ1_0 byte decodes outside 0..243.
    BadCode { index: usize },
    /// The CPU lacks the instruction set asked for.
    IsaUnavailable { isa: crate::Isa },
    /// `BITNET_KERNEL` names no known path.
    UnknownIsa,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::BufferLength {
                what,
                expected,
                actual,
            } => write!(
                f,
                "{what}: expected {expected} elements/bytes, got {actual}"
            ),
            Error::KNotMultiple { k, block } => {
                write!(f, "K = {k} is not a multiple of the block size {block}")
            }
            Error::ZeroDim { what } => write!(f, "{what} must be greater than zero"),
            Error::RowRange { start, end, m } => {
                write!(f, "row range {start}..{end} is not within 0..{m}")
            }
            Error::BadScale { what, bits } => write!(
                f,
                "{what}: scale {} is not a finite non-zero number",
                f32::from_bits(bits)
            ),
            Error::BadCode { index } => {
                write!(f, "invalid ternary code at packed byte {index}")
            }
            Error::IsaUnavailable { isa } => {
                write!(f, "this CPU does not support the {} kernels", isa.name())
            }
            Error::UnknownIsa => write!(
                f,
                "BITNET_KERNEL must be one of scalar, avx2, avx512, neon, neon-dotprod"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

pub(crate) fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), Error> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::BufferLength {
            what,
            expected,
            actual,
        })
    }
}
