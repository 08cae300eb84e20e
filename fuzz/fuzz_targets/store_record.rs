//! Fuzz target `store_record`: the body is `encoder_fuzz_targets::store_record` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::store_record(data));
