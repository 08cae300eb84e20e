//! Fuzz target `trailer_access`: the body is `encoder_fuzz_targets::trailer_access` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::trailer_access(data));
