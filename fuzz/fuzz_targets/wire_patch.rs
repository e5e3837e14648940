#![no_main]

#[path = "../harness/wire_patch.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
