//! cargo fuzz target: see `harness::bundle_loader`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::bundle_loader(data));
