//! Ternary (BitNet b1.58, "W1.58A8") matmul kernels for CPUs.
//!
//! * Weights: `M × K` ternary matrices with one f32 scale per tensor, read in
//!   place from GGUF bytes ([`format::I2sMatrix`] for bitnet.cpp's I2_S;
//!   [`format::Tq2Matrix`] / [`format::Tq1Matrix`] for llama.cpp's TQ2_0 /
//!   TQ1_0, repacked losslessly), or repacked for the lookup-table kernels
//!   ([`format::TlMatrix`]).
//! * Activations: per-token int8 absmax ([`Dispatch::quantize`]).
//! * Matmul: `Y[N×M] = X[N×K] · Wᵀ` with the integer dot exact in `i32` and one
//!   shared f32 epilogue ([`dequantize_dot`]), so **every SIMD path is
//!   bit-for-bit equal to the scalar reference**. Two families:
//!   multiply-add ([`Dispatch::gemm_i2s`]) and lookup-table ([`Dispatch::gemm_tl`]).
//! * A re-quantized LM head ([`kquant`]): ggml's Q6_K weights against int8
//!   activations (Q8_K), also exact in `i32` with one shared f32 step per
//!   block, so bit for bit equal on every path too.
//! * Every kernel takes an output-row range; [`partition()`] splits rows into
//!   static, tile-aligned chunks for a thread pool.
//!
//! # Paths
//! Scalar (the reference), AVX2, AVX-512 (F/BW/VL/VNNI/VBMI), NEON and NEON
//! with dotprod. [`Dispatch::detect`] picks the best once and caches it;
//! `BITNET_KERNEL=scalar|avx2|avx512|neon|neon-dotprod` forces one (an error
//! if the CPU lacks it). [`Dispatch::for_isa`] gives any supported path.
//!
//! # Crate features
//! * `std` (default): runtime CPU detection and `BITNET_KERNEL`. Without it the
//!   crate is `no_std` and `#[cfg(target_feature)]` picks the path.
//! * `capi`: a C ABI (`include/bitnet_kernels.h`).
//!
//! Kernels never allocate: callers pass every buffer.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "std")]
extern crate std;

mod arch;
mod dispatch;
mod error;
pub mod float;
pub mod format;
pub mod kquant;
mod math;
mod matmul;
mod partition;
mod quant;

pub use dispatch::{Description, Dispatch, Family, Isa};
pub use error::Error;
pub use matmul::{dequantize_dot, MAX_K};
pub use partition::{partition, partition_chunk};
pub use quant::{QuantizedActs, RowScale, ACT_MAX_FLOOR};

#[cfg(feature = "capi")]
pub mod capi;
