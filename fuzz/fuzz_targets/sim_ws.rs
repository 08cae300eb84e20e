//! Fuzz target `sim_ws`: the body is `encoder_fuzz_targets::sim_ws` (crates/fuzz-targets).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| encoder_fuzz_targets::sim_ws(data));
