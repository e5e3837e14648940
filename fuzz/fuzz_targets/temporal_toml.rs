#![no_main]

#[path = "../harness/temporal_toml.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
