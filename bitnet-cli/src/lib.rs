//! The library half of the `bitnet` command: only what code outside the
//! binary must reach. That is the OpenAI request parsing of `bitnet serve`
//! ([`openai`]), which the server's handlers call and the `chat_request`
//! fuzz target drives (module `fuzz`, feature `fuzz`) on the same code.

pub mod openai;

#[cfg(feature = "fuzz")]
pub mod fuzz;
