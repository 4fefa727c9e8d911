//! cargo fuzz target: see `harness::wav_stream`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::wav_stream(data));
