#![no_main]

#[path = "../harness/storage_reference.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
