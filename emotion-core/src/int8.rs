//! How an int8 graph computes on this CPU: with tract's integer kernels, or in float
//! from the same int8 weights.
//!
//! An int8 variant stores its weight products as int8 codes and per-column scales
//! (`host-trainer`'s `quantize`). Whether integer arithmetic then pays depends on the CPU
//! the board runs on, not on the machine that exported the bundle: with dot-product
//! instructions (x86 AVX-512 VNNI / AVX-VNNI, ARMv8.2 SDOT) tract's int8 kernels beat its
//! f32 ones; on an x86 CPU with AVX2 + FMA only, tract widens int8 to 16 bits and its
//! int8 kernel ran HuBERT-base at half the speed of its f32 kernel (the pruned encoder:
//! 615 vs 295 ms per 2 s on a Zen 4 VM, tract's kernels restricted to AVX2 by
//! `TRACT_CPU_ISA`). There the board rewrites each quantised product back into a float
//! `MatMul` over the dequantised weights (`codes × scale`, exactly the values the int8
//! product multiplies by) before tract optimises the graph: the int8 variant is never
//! slower than fp32, and its weights are those the export measured (activations stay
//! float, which only brings it closer to fp32).
//!
//! The export names every product it quantised in the graph's metadata
//! ([`PRODUCTS_KEY`], a JSON list of [`QuantizedProduct`]), so the rewrite never guesses
//! at graph patterns; a graph without that entry (an older bundle) keeps its integer
//! products.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{ModelProto, NodeProto, TensorProto};

use crate::onnx_model::{OnnxModel, Weight};

/// The `metadata_props` key listing the quantised products of a graph.
pub const PRODUCTS_KEY: &str = "quantization.products";

/// Products whose weight has fewer values than this compute in float on every CPU: the
/// run-time quantisation of their input costs more than integer arithmetic saves (the
/// tiny demo encoders, hidden size 32, ran 1.7 × slower in int8 than in f32 on an
/// AVX-512 VNNI core). HuBERT-base's smallest quantised weight has 393,216 values.
pub const MIN_INTEGER_WEIGHT_VALUES: usize = 1 << 16;

/// One product the export quantised: `output = input · dequantise(weight, scale)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantizedProduct {
    /// The float tensor the original `MatMul` read.
    pub input: String,
    /// The int8 codes initializer, `[in, out]`.
    pub weight: String,
    /// The per-column f32 scales initializer, `[out]`.
    pub scale: String,
    /// The tensor the original `MatMul` wrote (and the rescaling `Mul` now writes).
    pub output: String,
}

/// How the quantised products of an int8 graph are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Int8Compute {
    /// Integer kernels where this CPU has fast ones ([`int8_kernels_pay`]), float from
    /// the int8 weights elsewhere; products below [`MIN_INTEGER_WEIGHT_VALUES`] in float.
    #[default]
    Auto,
    /// tract's integer kernels for every product the graph quantised.
    Integer,
    /// Every quantised product as a float `MatMul` over its dequantised weights.
    Float,
}

/// The environment variable that overrides [`Int8Compute::Auto`] for the whole process
/// (`auto`, `integer` or `float`), e.g. to measure one against the other.
pub const INT8_COMPUTE_ENV: &str = "EMOTION_EDGE_INT8";

impl Int8Compute {
    /// The setting [`INT8_COMPUTE_ENV`] asks for; `Auto` when it is unset.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(INT8_COMPUTE_ENV) {
            Err(_) => Ok(Int8Compute::Auto),
            Ok(value) => match value.trim() {
                "" | "auto" => Ok(Int8Compute::Auto),
                "integer" => Ok(Int8Compute::Integer),
                "float" => Ok(Int8Compute::Float),
                other => Err(format!(
                    "{INT8_COMPUTE_ENV}={other:?} is not one of auto, integer, float"
                )),
            },
        }
    }

    /// The smallest weight computed with integer kernels on this CPU (`usize::MAX`:
    /// none).
    pub fn min_integer_weight_values(self) -> usize {
        match self {
            Int8Compute::Integer => 0,
            Int8Compute::Float => usize::MAX,
            Int8Compute::Auto if int8_kernels_pay() => MIN_INTEGER_WEIGHT_VALUES,
            Int8Compute::Auto => usize::MAX,
        }
    }
}

/// Whether tract's int8 kernels beat its f32 ones on this CPU
/// ([`crate::cpu::CpuInfo::int8_kernels_pay`]). The features tract's own
/// `TRACT_CPU_ISA` removes (e.g. `-avx512vnni,-avxvnni`) count as absent, so this answers
/// for the kernels tract will actually pick.
pub fn int8_kernels_pay() -> bool {
    crate::cpu::detect().int8_kernels_pay()
}

/// The products the export listed under [`PRODUCTS_KEY`]; empty when there is no such
/// entry. A malformed entry is an error (the graph was tampered with or is not ours).
pub fn quantized_products(model: &ModelProto) -> Result<Vec<QuantizedProduct>, String> {
    match model.metadata_props.iter().find(|e| e.key == PRODUCTS_KEY) {
        None => Ok(Vec::new()),
        Some(entry) => serde_json::from_str(&entry.value)
            .map_err(|e| format!("metadata `{PRODUCTS_KEY}` is not a product list: {e}")),
    }
}

/// Rewrites every listed product whose weight has fewer than `min_integer_values`
/// values into `output = MatMul(input, codes × scale)`; the integer nodes it replaces
/// become unused and tract drops them. Returns how many products were rewritten.
pub fn products_in_float(
    model: &mut ModelProto,
    min_integer_values: usize,
) -> Result<usize, String> {
    let mut onnx = OnnxModel::from_proto(std::mem::take(model));
    let rewritten = rewrite_products(&mut onnx, min_integer_values);
    *model = onnx.into_proto();
    rewritten
}

/// [`products_in_float`] on a model as `graph_load` decodes it (weights held apart).
pub(crate) fn rewrite_products(
    model: &mut OnnxModel,
    min_integer_values: usize,
) -> Result<usize, String> {
    let products = quantized_products(&model.proto)?;
    if products.is_empty() || min_integer_values == 0 {
        return Ok(0);
    }
    let graph = model
        .proto
        .graph
        .as_mut()
        .ok_or_else(|| "the model has no graph".to_string())?;
    let mut taken: HashSet<String> = model
        .weights
        .iter()
        .map(|w| w.proto.name.clone())
        .chain(graph.node.iter().flat_map(|n| n.output.iter().cloned()))
        .collect();
    let mut dequantised: Vec<(String, String)> = Vec::new();
    let mut added: Vec<Weight> = Vec::new();
    let mut rewritten = 0;
    for product in &products {
        let find = |name: &str| model.weights.iter().find(|w| w.proto.name == name);
        let (Some(codes), Some(scales)) = (find(&product.weight), find(&product.scale)) else {
            return Err(format!(
                "metadata `{PRODUCTS_KEY}` names `{}`/`{}`, which the graph does not hold",
                product.weight, product.scale
            ));
        };
        if codes.raw_data().len() >= min_integer_values {
            continue;
        }
        let float_name = match dequantised.iter().find(|(w, _)| *w == product.weight) {
            Some((_, name)) => name.clone(),
            None => {
                let tensor = dequantise(codes, scales, fresh(&mut taken, &product.weight))?;
                let name = tensor.name.clone();
                added.push(Weight::new(tensor));
                dequantised.push((product.weight.clone(), name.clone()));
                name
            }
        };
        let producer = graph
            .node
            .iter()
            .position(|n| n.output.contains(&product.output))
            .ok_or_else(|| format!("no node writes `{}`", product.output))?;
        let name = graph.node[producer].name.clone();
        graph.node[producer] = NodeProto {
            name,
            op_type: "MatMul".into(),
            input: vec![product.input.clone(), float_name],
            output: vec![product.output.clone()],
            ..Default::default()
        };
        rewritten += 1;
    }
    model.weights.extend(added);
    Ok(rewritten)
}

/// `codes [in, out] × scale [out]` as an f32 initializer named `name`.
fn dequantise(codes: &Weight, scales: &Weight, name: String) -> Result<TensorProto, String> {
    let (codes_bytes, scales_bytes) = (codes.raw_data(), scales.raw_data());
    let (codes, scales) = (&codes.proto, &scales.proto);
    let [rows, cols] = codes.dims[..] else {
        return Err(format!("`{}` is not a matrix", codes.name));
    };
    let (rows, cols) = (rows as usize, cols as usize);
    if codes.data_type != DataType::Int8 as i32 || codes_bytes.len() != rows * cols {
        return Err(format!(
            "`{}` is not {rows} × {cols} int8 codes",
            codes.name
        ));
    }
    let scale: Vec<f32> = if !scales_bytes.is_empty() {
        scales_bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        scales.float_data.clone()
    };
    if scales.data_type != DataType::Float as i32 || scale.len() != cols {
        return Err(format!("`{}` is not {cols} f32 scales", scales.name));
    }
    let raw_data = codes_bytes
        .iter()
        .enumerate()
        .flat_map(|(i, &c)| (f32::from(c as i8) * scale[i % cols]).to_le_bytes())
        .collect();
    Ok(TensorProto {
        name,
        dims: codes.dims.clone(),
        data_type: DataType::Float as i32,
        raw_data,
        ..Default::default()
    })
}

/// `base.as_float`, or with a number when that is taken.
fn fresh(taken: &mut HashSet<String>, base: &str) -> String {
    let mut name = format!("{base}.as_float");
    let mut k = 1;
    while taken.contains(&name) {
        name = format!("{base}.as_float_{k}");
        k += 1;
    }
    taken.insert(name.clone());
    name
}
