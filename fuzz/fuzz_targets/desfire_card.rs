//! Fuzz target `desfire_card`: the body is `encoder_fuzz_targets::desfire_card` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::desfire_card(data));
