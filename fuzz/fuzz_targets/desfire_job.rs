//! Fuzz target `desfire_job`: the body is `encoder_fuzz_targets::desfire_job` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::desfire_job(data));
