//! x86-64: AVX2 (+FMA, F16C) and AVX-512 (F/BW/VL/VNNI/VBMI).

use crate::dispatch::Table;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod float;
#[cfg(target_arch = "x86_64")]
mod kquant;
#[cfg(target_arch = "x86_64")]
mod lut;
#[cfg(target_arch = "x86_64")]
mod mad;

/// Detects a feature at run time under `std`, else at compile time.
#[cfg(target_arch = "x86_64")]
macro_rules! has {
    ($($f:tt),+) => {{
        #[cfg(feature = "std")]
        { true $(&& std::arch::is_x86_feature_detected!($f))+ }
        #[cfg(not(feature = "std"))]
        { true $(&& cfg!(target_feature = $f))+ }
    }};
}

/// How far ahead a DRAM-bound GEMV prefetches each of its row streams. On
/// the AVX2 VM (2026-11-29) the F16 LM head read as four streams ran at
/// 12.5–13.5 GB/s with 1–2 KiB against ~10 GB/s without; 4 KiB was slower.
/// On the Zen 5 VM (2026-11-30) one-thread decode of the 2B shape ran at
/// 30–31 tok/s with 2 KiB against 26–27 with 1 KiB, 29–30 with 1.5 KiB and
/// 26–28 with 4 KiB (AVX2 kernels there: 28.5–29.4 against 24.1–24.6).
#[cfg(target_arch = "x86_64")]
const PREFETCH_BYTES: usize = 2048;

/// Splits `0 .. n` into tiles whose widths are `const`s, so a body can
/// instantiate a tile kernel for each: runs `body` with `t0` the tile's
/// first index and `T` its width, taking the widest, `$last`, while at least
/// that many are left, then the rest in one tile of a listed width. Used
/// for the batched LM heads' vectors (`[1, 2, 3, 4, 5; 6]`: 2 rows × 6 F16,
/// 1 row × 6 Q6_K, as many as their registers hold) and attention's query
/// heads (`[1, 2, 3; 4]`: a KV head's group in BitNet-b1.58-2B-4T).
#[cfg(target_arch = "x86_64")]
macro_rules! tiles {
    ($n:expr, [$($w:literal),*; $last:literal], |$t0:ident, $t:ident| $body:block) => {{
        let n = $n;
        let mut $t0 = 0;
        while $t0 < n {
            $t0 += match n - $t0 {
                $($w => {
                    const $t: usize = $w;
                    $body;
                    $t
                })*
                _ => {
                    const $t: usize = $last;
                    $body;
                    $t
                }
            };
        }
    }};
}
#[cfg(target_arch = "x86_64")]
pub(super) use tiles;

/// Prefetches the line [`PREFETCH_BYTES`] past `p` into L1. The GEMVs call
/// it every 32 bytes of a stream, so each line is requested twice: on the
/// AVX2 VM (2026-11-30) that read 5–13 % faster than once per line.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_ahead(p: *const u8) {
    prefetch_line(p.wrapping_add(PREFETCH_BYTES));
}

/// How far ahead a lone DRAM stream prefetches: the f16 KV cache, widened
/// one head's block at a time with the scores computed in between. On the
/// Zen 5 VM (2026-11-30; 2B shape, depth 2048, one thread) decode attention
/// took 20 ms per token with 2 KiB, 18.6 with 4, 17.2 with 8 and 18 with 16
/// (AVX2 kernels: 24 with 2 KiB, 21.5 with 8).
#[cfg(target_arch = "x86_64")]
const LONE_STREAM_PREFETCH_BYTES: usize = 8192;

/// Prefetches the line [`LONE_STREAM_PREFETCH_BYTES`] past `p` into L1.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_lone_stream(p: *const u8) {
    prefetch_line(p.wrapping_add(LONE_STREAM_PREFETCH_BYTES));
}

/// Prefetches the line holding `p` with the T1 hint: into L2, and on CPUs
/// that honour the hint not into L1, which holds the current tile's data.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_to_l2(p: *const u8) {
    // SAFETY: a prefetch never faults, whatever the address (callers form
    // it with `wrapping_add`).
    unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T1 }>(p.cast()) }
}

/// Prefetches the line holding `p` into L1.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_line(p: *const u8) {
    // SAFETY: a prefetch never faults, whatever the address (callers form
    // it with `wrapping_add`, which keeps computing it defined past the end
    // of the data).
    unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast()) }
}

pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has!("avx2", "fma", "f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2()
            && has!(
                "avx512f",
                "avx512bw",
                "avx512vl",
                "avx512vnni",
                "avx512vbmi"
            )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

pub(crate) fn avx2_table() -> &'static Table {
    #[cfg(target_arch = "x86_64")]
    {
        &avx2::TABLE
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        &super::scalar::TABLE
    }
}

pub(crate) fn avx512_table() -> &'static Table {
    #[cfg(target_arch = "x86_64")]
    {
        &avx512::TABLE
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        &super::scalar::TABLE
    }
}
