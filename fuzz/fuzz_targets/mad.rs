//! Fuzz target `mad`: the body is `encoder_fuzz_targets::mad` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::mad(data));
