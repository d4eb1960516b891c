//! Kernel paths against the scalar reference; any difference is a crash.
//! The body is `bitnet_model::fuzz::kernel_differential`, which `cargo test` also replays on
//! this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bitnet_model::fuzz::kernel_differential(data));
