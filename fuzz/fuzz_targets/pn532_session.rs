//! Fuzz target `pn532_session`: the body is `encoder_fuzz_targets::pn532_session` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::pn532_session(data));
