//! Fuzzer-described small models through loading and two forward steps.
//! The body is `bitnet_model::fuzz::gguf_load_model`, which `cargo test` also replays on
//! this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bitnet_model::fuzz::gguf_load_model(data));
