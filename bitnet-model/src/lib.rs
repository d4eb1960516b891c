//! The BitNet b1.58 model: GGUF loading, the transformer, tokenizer, sampler
//! and thread pool (issue #3). For now it only re-exports the kernel crate's
//! dispatch so downstream crates link against one place.

pub use bitnet_kernels::{Dispatch, Isa};
