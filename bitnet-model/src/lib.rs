//! The BitNet b1.58 model: GGUF loading, the transformer, KV cache, and the
//! machine probes benchmarks measure against. Tokenizer, sampler, thread
//! pool and generation API come next (issue #3).

pub mod chat;
pub mod config;
mod error;
pub mod gguf;
pub mod hw;
mod kv_cache;
mod model;
pub mod ops;
pub mod pool;
pub mod sampler;
mod session;
pub mod synthetic;
pub mod tokenizer;
mod weights;

pub use bitnet_kernels::{Dispatch, Isa};
pub use chat::{ChatTemplate, Message, Role};
pub use config::{Activation, Arch, Config, RopeStyle};
pub use error::ModelError;
pub use kv_cache::{KvCache, KvType};
pub use model::{Logits, Model, NearTie, RoundingTrace, Sequence};
pub use sampler::{Sampler, SamplerConfig};
pub use session::{Session, TextStream, Timings};
pub use tokenizer::{PreTokenizer, Tokenizer};
