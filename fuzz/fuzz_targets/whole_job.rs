//! Fuzz target `whole_job`: the body is `encoder_fuzz_targets::whole_job` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::whole_job(data));
