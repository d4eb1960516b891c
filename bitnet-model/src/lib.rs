//! The BitNet b1.58 model over `bitnet-kernels`: a zero-copy GGUF reader and
//! writer, Hugging Face checkpoint conversion ([`convert`]), the
//! `bitnet-b1.58` / `bitnet` / ternary-`llama` transformers
//! ([`Model::forward_batch`] runs several sequences per step), KV cache,
//! byte-level BPE and SentencePiece tokenizers, chat formats, sampler,
//! generation [`Session`], a static thread pool, synthetic models, `.npy`
//! logits files, and the machine probes benchmarks measure against.

mod attention;
pub mod batch;
pub mod chat;
pub mod config;
pub mod convert;
mod error;
#[cfg(feature = "fuzz")]
pub mod fuzz;
pub mod gguf;
pub mod hw;
mod kv_cache;
mod model;
pub mod npy;
pub mod ops;
pub mod pool;
pub mod profile;
pub mod sampler;
mod screen;
mod session;
pub mod synthetic;
pub mod tokenizer;
mod weights;

pub use batch::{Batcher, Event, FinishReason, Request, SeqId, SeqStats};
pub use bitnet_kernels::{Dispatch, Isa};
pub use chat::{ChatTemplate, Message, Role};
pub use config::{Activation, Arch, Config, RopeStyle};
pub use error::ModelError;
pub use kv_cache::{KvCache, KvType};
pub use model::{Logits, Model, NearTie, PhaseThreads, RoundingTrace, Sequence, StepBuffers};
pub use profile::{Op, OpProfile, ProfileSnapshot};
pub use sampler::{Sampler, SamplerConfig};
pub use session::{Session, TextStream, Timings};
pub use tokenizer::{PreTokenizer, Tokenizer};
