//! Text through encode and decode of every tokenizer kind: lossless, in range.
//! The body is `bitnet_model::fuzz::tokenizer_roundtrip`, which `cargo test` also replays on
//! this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bitnet_model::fuzz::tokenizer_roundtrip(data));
