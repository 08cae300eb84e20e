//! Fuzz target `status_apdu`: the body is `encoder_fuzz_targets::status_apdu` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::status_apdu(data));
