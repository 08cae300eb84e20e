//! Fuzz target `sim_http`: the body is `encoder_fuzz_targets::sim_http` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::sim_http(data));
