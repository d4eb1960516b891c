//! The BitNet b1.58 model: GGUF loading, the transformer, tokenizer, sampler
//! and thread pool (issue #3 builds these). Today: the machine probes that
//! benchmarks and `bitnet kernels` measure against.

pub mod gguf;
pub mod hw;
pub mod synthetic;

pub use bitnet_kernels::{Dispatch, Isa};
