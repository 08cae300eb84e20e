//! Fuzz target `classic_record`: the body is `encoder_fuzz_targets::classic_record` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::classic_record(data));
