//! AArch64: NEON, with and without the dot-product extension.

use crate::dispatch::Table;

#[cfg(target_arch = "aarch64")]
mod float;
#[cfg(target_arch = "aarch64")]
mod kquant;
#[cfg(target_arch = "aarch64")]
mod lut;
#[cfg(target_arch = "aarch64")]
mod neon;

pub(crate) fn has_neon() -> bool {
    // NEON is part of the AArch64 baseline.
    cfg!(target_arch = "aarch64")
}

pub(crate) fn has_dotprod() -> bool {
    #[cfg(all(target_arch = "aarch64", feature = "std"))]
    {
        std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(all(target_arch = "aarch64", not(feature = "std")))]
    {
        cfg!(target_feature = "dotprod")
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

pub(crate) fn neon_table() -> &'static Table {
    #[cfg(target_arch = "aarch64")]
    {
        &neon::TABLE
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        &super::scalar::TABLE
    }
}

pub(crate) fn dotprod_table() -> &'static Table {
    #[cfg(target_arch = "aarch64")]
    {
        &neon::TABLE_DOTPROD
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        &super::scalar::TABLE
    }
}
