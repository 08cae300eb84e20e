//! Fuzz target `cloud_message`: the body is `encoder_fuzz_targets::cloud_message` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::cloud_message(data));
