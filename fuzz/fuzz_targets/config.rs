//! Fuzz target `config`: the body is `encoder_fuzz_targets::config` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::config(data));
