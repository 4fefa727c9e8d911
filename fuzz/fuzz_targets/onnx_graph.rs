//! cargo fuzz target: see `harness::onnx_graph`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::onnx_graph(data));
