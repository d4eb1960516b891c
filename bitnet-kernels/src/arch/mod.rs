//! Per-ISA kernels. `scalar` is the reference every other path must match;
//! each SIMD module holds only what differs.

pub(crate) mod aarch64;
pub(crate) mod lut;
pub(crate) mod scalar;
pub(crate) mod x86_64;

use crate::dispatch::{Family, Isa};

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
