//! cargo fuzz target: see `harness::wav_frontend`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::wav_frontend(data));
