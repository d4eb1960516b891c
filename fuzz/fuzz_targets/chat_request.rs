//! Arbitrary bytes as chat and text completion bodies: a request that keeps
//! the validation's promises, or a short 400 error, never a panic.
//! The body is `bitnet_openai::fuzz::chat_request`, which `cargo test` also
//! replays on this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bitnet_openai::fuzz::chat_request(data));
