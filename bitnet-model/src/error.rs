use crate::gguf::GgufError;
use std::fmt;

/// Why a model could not be loaded or run.
#[derive(Debug)]
pub enum ModelError {
    Gguf(GgufError),
    Kernel(bitnet_kernels::Error),
    /// The architecture string is not one this engine runs.
    UnsupportedArch(String),
    /// A hyper-parameter is missing, zero or inconsistent; the message names it.
    Config(String),
    /// A tensor has the wrong shape or type for its role.
    Tensor {
        name: String,
        problem: String,
    },
    /// More tokens than the context (or the KV cache) holds.
    ContextFull {
        needed: usize,
        ctx: usize,
    },
    /// A token id outside the vocabulary.
    BadToken {
        id: u32,
        vocab: usize,
    },
    /// Prompt text longer than [`MAX_PROMPT_BYTES`](crate::tokenizer::MAX_PROMPT_BYTES).
    PromptTooLong {
        bytes: usize,
        max: usize,
    },
    /// An allocation (`what`) larger than the memory the machine has free.
    OutOfMemory {
        what: String,
        needed: u64,
        available: u64,
    },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Gguf(e) => e.fmt(f),
            ModelError::Kernel(e) => write!(f, "kernel: {e}"),
            ModelError::UnsupportedArch(a) => write!(
                f,
                "architecture {a:?} is not supported (bitnet-b1.58, bitnet-25, bitnet and llama are)"
            ),
            ModelError::Config(m) => f.write_str(m),
            ModelError::Tensor { name, problem } => write!(f, "tensor {name:?}: {problem}"),
            ModelError::ContextFull { needed, ctx } => {
                write!(f, "{needed} tokens do not fit the context of {ctx} tokens")
            }
            ModelError::BadToken { id, vocab } => {
                write!(f, "token id {id} is outside the vocabulary of {vocab} tokens")
            }
            ModelError::PromptTooLong { bytes, max } => {
                write!(f, "the prompt is {bytes} bytes, more than the limit of {max}")
            }
            ModelError::OutOfMemory {
                what,
                needed,
                available,
            } => write!(
                f,
                "{what} needs {} MiB, more than the {} MiB of memory available",
                needed.div_ceil(1 << 20),
                available >> 20
            ),
        }
    }
}

impl std::error::Error for ModelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ModelError::Gguf(e) => Some(e),
            ModelError::Kernel(e) => Some(e),
            _ => None,
        }
    }
}

impl From<GgufError> for ModelError {
    fn from(e: GgufError) -> Self {
        ModelError::Gguf(e)
    }
}

impl From<bitnet_kernels::Error> for ModelError {
    fn from(e: bitnet_kernels::Error) -> Self {
        ModelError::Kernel(e)
    }
}
