//! Calibration for fixed-scale int8 activations: runs a float graph on sample inputs and
//! records the largest absolute value of every tensor the quantiser will quantise.
//!
//! Why fixed scales for the speech encoder: a scale measured at run time costs three
//! full passes over every activation (absolute value and maximum, division, rounding and
//! cast) where a fixed one costs one `QuantizeLinear`, and tract runs those element-wise
//! passes far below memory speed (≈ 2–4 ns per value here): on HuBERT-base's feature
//! encoder the run-time scales cost more than the int8 products saved. The front-end
//! normalises every clip to zero mean and unit variance, so the encoder's activation
//! ranges are stable from one utterance to the next, and a few dozen utterances of the
//! training part measure them. A value beyond the calibrated range saturates at the
//! largest code; the quantisation report measures what that costs on the test part.

use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::quantize::{ActivationRanges, QuantizeError, QuantizeOptions, quantize_dynamic};

/// Why a graph could not be calibrated.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// The graph cannot be planned for quantisation.
    #[error(transparent)]
    Quantize(#[from] QuantizeError),
    /// The graph does not load or run in tract.
    #[error("calibration run failed: {0}")]
    Run(String),
    /// Nothing to measure with.
    #[error("calibration needs at least one input")]
    NoInputs,
}

/// The tensors [`quantize_dynamic`] would quantise in `onnx` with `options`, measured
/// over `inputs` (each the graph's single input, e.g. `input_values [1, N]`).
pub fn calibrate(
    onnx: &[u8],
    options: &QuantizeOptions,
    inputs: &[Tensor],
) -> Result<ActivationRanges, CalibrationError> {
    let plan_only = QuantizeOptions {
        ranges: ActivationRanges::default(),
        ..options.clone()
    };
    let (_, summary) = quantize_dynamic(onnx, &plan_only)?;
    activation_ranges(onnx, &summary.activation_sources, inputs)
}

/// The largest absolute value of each tensor named in `tensors` over `inputs`.
pub fn activation_ranges(
    onnx: &[u8],
    tensors: &[String],
    inputs: &[Tensor],
) -> Result<ActivationRanges, CalibrationError> {
    if inputs.is_empty() {
        return Err(CalibrationError::NoInputs);
    }
    let run = |e: TractError| CalibrationError::Run(format!("{e:#}"));
    let mut model = pb::ModelProto::decode(onnx).map_err(QuantizeError::from)?;
    let graph = model.graph.as_mut().ok_or(QuantizeError::NoGraph)?;
    let first_extra = graph.output.len();
    // A graph input is measured from the inputs themselves (tract cannot also output it).
    let input_name = graph
        .input
        .first()
        .map(|i| i.name.clone())
        .unwrap_or_default();
    let inner: Vec<&String> = tensors.iter().filter(|t| **t != input_name).collect();
    graph
        .output
        .extend(inner.iter().map(|&name| pb::ValueInfoProto {
            name: name.clone(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: pb::tensor_proto::DataType::Float as i32,
                    shape: None,
                })),
                ..Default::default()
            }),
            ..Default::default()
        }));
    let plan = tract_onnx::onnx()
        .model_for_proto_model(&model)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(run)?;
    let max_abs = |value: &Tensor, range: &mut f32| -> Result<(), CalibrationError> {
        let view = value.to_plain_array_view::<f32>().map_err(run)?;
        *range = view.iter().fold(*range, |m, v| m.max(v.abs()));
        Ok(())
    };
    let mut ranges = vec![0f32; inner.len()];
    let mut input_range = 0f32;
    for input in inputs {
        max_abs(input, &mut input_range)?;
        let outputs = plan.run(tvec!(input.clone().into_tvalue())).map_err(run)?;
        for (range, value) in ranges.iter_mut().zip(&outputs[first_extra..]) {
            max_abs(value, range)?;
        }
    }
    let mut measured: ActivationRanges =
        ActivationRanges(inner.into_iter().cloned().zip(ranges).collect());
    if tensors.contains(&input_name) {
        measured.0.insert(input_name, input_range);
    }
    Ok(measured)
}
