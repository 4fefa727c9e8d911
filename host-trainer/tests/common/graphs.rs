//! Helpers shared by the conformance tests: run an encoder graph in tract as the board
//! does, compare outputs (a NaN never passes), read the graph's structure.

use std::collections::HashMap;

use host_trainer::encoders::ImportedEncoder;
use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::*;

/// Loads ONNX bytes in tract (the same stages the runner uses) and runs one input.
pub fn run(model_bytes: &[u8], input: Tensor) -> Vec<(Vec<usize>, Vec<f32>)> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &model_bytes[..])
        .expect("tract reads the model")
        .into_optimized()
        .expect("tract optimises the model")
        .into_runnable()
        .expect("runnable");
    let outputs = model
        .run(tvec!(input.into()))
        .expect("tract runs the model");
    outputs
        .iter()
        .map(|t| {
            let view = t.to_plain_array_view::<f32>().expect("f32 output");
            (view.shape().to_vec(), view.iter().copied().collect())
        })
        .collect()
}

/// A speech graph's input: `[1, samples]`.
pub fn speech_input(samples: &[f32]) -> Tensor {
    tract_ndarray::Array2::from_shape_vec((1, samples.len()), samples.to_vec())
        .expect("shape")
        .into_tensor()
}

/// A text graph's input: `[1, tokens]`.
pub fn ids_input(ids: &[i64]) -> Tensor {
    tract_ndarray::Array2::from_shape_vec((1, ids.len()), ids.to_vec())
        .expect("shape")
        .into_tensor()
}

/// The largest |a - b|; NaN anywhere makes it NaN, so a NaN never passes.
#[allow(unused_imports)] // not every test that includes `common` compares outputs
pub use emotion_core::scores::max_abs_difference as max_abs_error;

/// The graph as a protobuf.
pub fn model_proto(encoder: &ImportedEncoder) -> pb::ModelProto {
    pb::ModelProto::decode(&encoder.model_bytes[..]).expect("valid protobuf")
}

/// How many nodes of type `op` the graph has.
pub fn count_ops(model: &pb::ModelProto, op: &str) -> usize {
    let graph = model.graph.as_ref().expect("graph");
    graph.node.iter().filter(|n| n.op_type == op).count()
}

/// The model's `metadata_props`.
pub fn metadata(model: &pb::ModelProto) -> HashMap<String, String> {
    model
        .metadata_props
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect()
}
