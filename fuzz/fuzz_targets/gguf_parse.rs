//! Arbitrary bytes as a GGUF file: Ok or a typed error, never a panic.
//! The body is `bitnet_model::fuzz::gguf_parse`, which `cargo test` also replays on
//! this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bitnet_model::fuzz::gguf_parse(data));
