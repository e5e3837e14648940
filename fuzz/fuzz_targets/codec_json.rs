#![no_main]

#[path = "../harness/codec_json.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
