//! Fuzz target `card_identify`: the body is `encoder_fuzz_targets::card_identify` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::card_identify(data));
