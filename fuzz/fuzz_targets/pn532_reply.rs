//! Fuzz target `pn532_reply`: the body is `encoder_fuzz_targets::pn532_reply` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::pn532_reply(data));
