//! Fuzz target `pn532_frame`: the body is `encoder_fuzz_targets::pn532_frame` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::pn532_frame(data));
