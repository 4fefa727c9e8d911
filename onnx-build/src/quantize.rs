//! int8 quantisation of an ONNX graph's weight matrix products.
//!
//! Activations are quantised where their data movement starts: when a product's input
//! is only cut, padded, reshaped and concatenated from one tensor (the time-major
//! convolution windows of [`crate::graph::GraphBuilder::conv1d_time_major`]), that
//! tensor is quantised and the data movement replayed on its int8 codes
//! ([`QuantizeSummary::activation_sources`]). A source with a calibrated range
//! ([`QuantizeOptions::ranges`], [`crate::calibration`]) gets a fixed scale and one
//! `QuantizeLinear`; the others get a scale computed at run time, as below.
//!
//! [`quantize_dynamic`] rewrites every `MatMul` whose second input is a 2-D f32
//! initializer `W [in, out]` (the projections [`crate::graph::GraphBuilder::linear`]
//! writes: attention q/k/v/out, feed-forward, feature projection) into standard ONNX
//! integer operators, weights stored as int8:
//!
//! ```text
//! x ─ quantise (per tensor, at run time) ─┬─ xq ─────────────┐
//!                                         │  Wq (int8) ──────┴─ MatMulInteger ─ Cast(f32) ─┐
//!                                         └─ x_scale ─ Mul(w_scale [out]) ─────────────────┴─ Mul ─ y
//! ```
//!
//! - Weights: int8, symmetric, one scale per output channel (per column of `[in, out]`):
//!   `scale_j = max_i |W_ij| / 127`, `Wq = round_half_even(W / scale_j)` in `[-127, 127]`,
//!   zero point 0, so `MatMulInteger` gets no `b_zero_point`. An all-zero column gets
//!   scale 1 (its codes are all 0), so nothing divides by zero. Per-channel scales cost
//!   nothing in the integer product (they scale the f32 result) and keep each output
//!   column's error proportional to that column's own range.
//! - Activations, one scale per tensor, computed at run time
//!   ([`ActivationQuantization`]):
//!   - [`ActivationQuantization::SymmetricI8`] (the default): int8, zero point 0,
//!     `x_scale = max(max|x| / 127, f32::MIN_POSITIVE)`,
//!     `xq = Cast<int8>(Round(x / x_scale))` (`Abs`, `ReduceMax`, `Div`, `Max`, `Round`,
//!     `Cast`; `|x / x_scale| ≤ 127` by construction, so no `Clip`);
//!   - [`ActivationQuantization::DynamicU8`]: `DynamicQuantizeLinear` (u8 with a zero
//!     point, the range of `x` with 0 included), passed to `MatMulInteger` as
//!     `a_zero_point`. This is what onnxruntime's own `quantize_dynamic` writes.
//!
//!   One quantiser is shared by every product that reads the same tensor (the q, k and v
//!   projections read one).
//! - The two scales are multiplied first (`x_scale · w_scale`, an `[out]` vector), so the
//!   int32 → f32 result is scaled by one `Mul`. That `Mul` writes the `MatMul`'s
//!   original output name: the bias `Add` and every other consumer are unchanged, and so
//!   are the graph's inputs and outputs (a drop-in replacement).
//!
//! Left in float: `Conv` (HuBERT's positional conv), `LSTM`, `Gemm`, `MatMul`s of two
//! activations (attention scores and context), weights with fewer than
//! [`QuantizeOptions::min_elements`] values ([`DEFAULT_MIN_ELEMENTS`]) or fewer than
//! [`QuantizeOptions::min_inner`] rows (HuBERT's first conv, over 10 raw samples), weights that are
//! also graph inputs (overridable at run time), non-finite weights and weights stored as
//! external data. `MatMul`s inside subgraphs (`If`, `Loop`, `Scan`) are not visited. A
//! quantised f32 initializer is removed when nothing else reads it. When at least one
//! product was quantised the model gets the `metadata_props` entries [`METADATA_KEY`] =
//! [`METADATA_VALUE`] and [`METADATA_ACTIVATIONS_KEY`] (`int8-symmetric` or
//! `uint8-asymmetric`); other entries are kept. The graph needs default-domain opset
//! [`MIN_OPSET`] or later.
//!
//! # Why symmetric int8 activations by default (tract 0.23.9, measured here)
//!
//! Both forms load and run in tract and in onnxruntime 1.32 with about the same accuracy (the
//! tests below bound tract's error; onnxruntime was checked by hand and fuses the tail
//! into `MatMulIntegerToFloat`). tract turns `MatMulInteger` into its native quantised
//! matrix product: u8 operands are shifted to i8 (`OffsetU8asI8`, zero point − 128), the
//! weights are packed once at load time (`PackedI8K4`) and an i8 × i8 → i32 kernel runs
//! (`avx512vnni_mmm_i32_8x8` on this x86 machine; on aarch64 tract picks its SDOT
//! kernels on cores that have them, e.g. the Pi 5), 2.2–3× faster than tract's f32
//! kernel for a 99 × 768 activation. The int32 → f32 `Cast` and the scale `Mul`s stay
//! separate (cheap) ops.
//!
//! The difference is the activation zero point. tract compensates a non-zero one by
//! subtracting `a0 · Σ_k W[k, n]`, and that column sum of the constant weight is folded
//! at load time only while `Cast<i32>(W)` stays within tract's 4 MiB constant-folding
//! budget (≤ 2²⁰ weights). Above it (HuBERT-base's 768 × 3072 feed-forward weights) tract
//! re-casts and re-sums the whole weight on every run: 8.2 ms + 0.8 ms for 768 × 3072,
//! against 4.4 ms for the whole float product. With a zero point of 0 tract removes the
//! compensation altogether. Per 99 × 768 input (1 thread, this 2-core x86 machine):
//! 768 × 3072 float 4.5 ms, u8 11.9 ms, symmetric i8 2.5 ms; 3072 × 768: 4.6 / 9.4 /
//! 4.3 ms (the rest is the quantiser's elementwise ops on the 3072-wide input);
//! 768 × 768: 1.13 / 1.05 / 1.17 ms. On a pruned random HuBERT-base, 2 s of audio, each
//! transformer layer takes ≈ 16–19 ms in float, ≈ 27–31 ms with u8 activations and
//! ≈ 11–15 ms with symmetric i8 ones (whole 4-layer graph: 0.28 / 0.33 / 0.27 s; the
//! float conv feature encoder dominates it). Symmetric codes spend one of the 8 bits on
//! the sign even for one-sided inputs (GELU outputs): on the tiny HuBERT the relative RMS
//! error of the hidden states is 0.83–0.85 % against 0.74–0.76 % with u8, which is
//! harmless here.

use std::collections::{BTreeMap, HashMap, HashSet};

use emotion_core::int8::{PRODUCTS_KEY, QuantizedProduct};
use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::{DataLocation, DataType};

/// Default for [`QuantizeOptions::min_elements`]: 1024 values (a 32 × 32 matrix).
///
/// Below this the int8 copy saves less than 3 KiB while adding a few nodes and a run-time
/// quantisation of the activation; output classifiers (e.g. 128 × 7) stay in float. At
/// 1024 the tiny test encoders (hidden 32) are quantised, so the whole path is exercised
/// end to end by the demo and the tests; real encoders (768 × 768) are far above it.
pub const DEFAULT_MIN_ELEMENTS: usize = 1024;

/// Default for [`QuantizeOptions::min_inner`] ([`SkipReason::ShortInner`]).
pub const MIN_INNER: usize = 16;

/// The `metadata_props` key written on a quantised model.
pub const METADATA_KEY: &str = "quantization";

/// The value of [`METADATA_KEY`]: int8 per-channel weights, activations quantised at run
/// time.
pub const METADATA_VALUE: &str = "dynamic-int8-per-channel";

/// The `metadata_props` key naming the activation form ([`ActivationQuantization::as_str`])
/// of the last pass that quantised something.
pub const METADATA_ACTIVATIONS_KEY: &str = "quantization.activations";

/// The first default-domain opset with `DynamicQuantizeLinear` (and `MatMulInteger`).
pub const MIN_OPSET: i64 = 11;

/// What to quantise, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeOptions {
    /// Weights with fewer values than this stay in f32 (default [`DEFAULT_MIN_ELEMENTS`]).
    pub min_elements: usize,
    /// Weights with fewer rows (input features) than this stay in f32 (default
    /// [`MIN_INNER`]).
    pub min_inner: usize,
    /// How activations without a calibrated range are quantised at run time (default
    /// [`ActivationQuantization::SymmetricI8`]).
    pub activations: ActivationQuantization,
    /// Calibrated ranges ([`crate::calibration`]): an activation with one gets a fixed
    /// scale (one `QuantizeLinear`), the others are quantised at run time.
    pub ranges: ActivationRanges,
    /// Products whose node name starts with one of these stay float
    /// ([`SkipReason::KeptFloat`]).
    pub keep_float: Vec<String>,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        Self {
            min_elements: DEFAULT_MIN_ELEMENTS,
            min_inner: MIN_INNER,
            activations: ActivationQuantization::default(),
            ranges: ActivationRanges::default(),
            keep_float: Vec::new(),
        }
    }
}

/// The largest absolute value of each activation tensor a quantised product reads, by
/// tensor name, measured on calibration inputs ([`crate::calibration::activation_ranges`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActivationRanges(pub BTreeMap<String, f32>);

/// How the activation side of each product is quantised (one scale per tensor, at run
/// time). See the module docs for the trade-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActivationQuantization {
    /// int8, zero point 0, scale `max|x| / 127`, from `Abs`, `ReduceMax`, `Div`, `Max`,
    /// `Round`, `Cast`: the fast form in tract.
    #[default]
    SymmetricI8,
    /// `DynamicQuantizeLinear`: u8 with a zero point (onnxruntime's own form). In tract
    /// 0.23.9, weights above 2²⁰ values are re-summed on every run.
    DynamicU8,
}

impl ActivationQuantization {
    /// The value written under [`METADATA_ACTIVATIONS_KEY`].
    pub fn as_str(self) -> &'static str {
        match self {
            ActivationQuantization::SymmetricI8 => "int8-symmetric",
            ActivationQuantization::DynamicU8 => "uint8-asymmetric",
        }
    }
}

/// Why a `MatMul` with an f32 initializer as its weight was left in float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Fewer values than [`QuantizeOptions::min_elements`].
    TooSmall,
    /// Named in [`QuantizeOptions::keep_float`].
    KeptFloat,
    /// Fewer than [`QuantizeOptions::min_inner`] input features: a product over a handful of values
    /// (HuBERT's first conv reads 10 raw samples) gains nothing from int8, and the raw
    /// signal would lose most of its resolution.
    ShortInner,
    /// The weight is not 2-D.
    NotTwoDimensional,
    /// The weight holds a NaN or an infinity.
    NonFinite,
    /// The initializer is also a graph input, so it can be replaced at run time.
    GraphInput,
    /// The values are stored outside the model file.
    ExternalData,
}

/// What [`quantize_dynamic`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuantizeSummary {
    /// `MatMul` nodes rewritten to `MatMulInteger`.
    pub quantized: usize,
    /// `MatMul` nodes whose weight is an f32 initializer but that were left in float.
    pub skipped: usize,
    /// Bytes of the f32 weights that were quantised (each weight counted once).
    pub weight_bytes_before: usize,
    /// Bytes that replace them: int8 codes and f32 scales, plus any f32 original still
    /// read by another node.
    pub weight_bytes_after: usize,
    /// Names of the rewritten `MatMul` nodes (their first output where unnamed), in
    /// graph order.
    pub quantized_nodes: Vec<String>,
    /// Names of the skipped `MatMul` nodes, with the reason.
    pub skipped_nodes: Vec<(String, SkipReason)>,
    /// The float tensors quantised, in graph order: each product's activation, or the
    /// tensor it is cut from by data movement only (see [`quantize_dynamic`]). These
    /// are the tensors [`crate::calibration`] measures.
    pub activation_sources: Vec<String>,
    /// How many of them got a calibrated (fixed) scale.
    pub calibrated: usize,
    /// Every product rewritten, as the graph's [`emotion_core::int8::PRODUCTS_KEY`] entry lists
    /// it (so a board without fast int8 kernels can compute it in float).
    pub products: Vec<QuantizedProduct>,
}

/// Why a model could not be quantised.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// The bytes are not an ONNX protobuf.
    #[error("not an ONNX model: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A `ModelProto` without a graph.
    #[error("the ONNX model has no graph")]
    NoGraph,
    /// The default domain is imported at an opset without `DynamicQuantizeLinear`.
    #[error(
        "the model imports {}; dynamic quantisation needs opset {MIN_OPSET} or later",
        describe_opset(*.found)
    )]
    Opset {
        /// The default-domain opset imported, if any.
        found: Option<i64>,
    },
    /// A weight initializer whose data does not match its declared shape.
    #[error("initializer `{name}`: {problem}")]
    BadInitializer {
        /// The initializer.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
}

fn describe_opset(found: Option<i64>) -> String {
    match found {
        Some(v) => format!("default-domain opset {v}"),
        None => "no default-domain opset".to_string(),
    }
}

/// Quantises the weight `MatMul`s of the ONNX model `onnx` (see the module docs for the
/// graph written); returns the new model's bytes and what was done. A model with nothing
/// to quantise comes back re-encoded but otherwise unchanged (and unmarked).
pub fn quantize_dynamic(
    onnx: &[u8],
    options: &QuantizeOptions,
) -> Result<(Vec<u8>, QuantizeSummary), QuantizeError> {
    let mut model = pb::ModelProto::decode(onnx)?;
    let opset = model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max();
    let graph = model.graph.as_mut().ok_or(QuantizeError::NoGraph)?;
    let summary = quantize_graph(graph, options, opset)?;
    if summary.quantized > 0 {
        set_metadata(&mut model, METADATA_KEY, METADATA_VALUE);
        set_metadata(
            &mut model,
            METADATA_ACTIVATIONS_KEY,
            options.activations.as_str(),
        );
        let products =
            serde_json::to_string(&summary.products).expect("a list of names serialises");
        set_metadata(&mut model, PRODUCTS_KEY, &products);
    }
    Ok((model.encode_to_vec(), summary))
}

fn set_metadata(model: &mut pb::ModelProto, key: &str, value: &str) {
    match model.metadata_props.iter_mut().find(|e| e.key == key) {
        Some(entry) => entry.value = value.to_string(),
        None => model.metadata_props.push(pb::StringStringEntryProto {
            key: key.to_string(),
            value: value.to_string(),
        }),
    }
}

/// Names of a quantised weight's initializers.
#[derive(Debug, Clone)]
struct QuantizedWeight {
    codes: String,
    scales: String,
}

/// The quantised form of one activation tensor.
#[derive(Debug, Clone)]
struct QuantizedActivation {
    codes: String,
    scale: String,
    /// `None` for symmetric codes (zero point 0).
    zero_point: Option<String>,
}

/// The decision for one weight initializer (cached: a weight may feed several nodes).
#[derive(Debug, Clone)]
enum WeightPlan {
    Quantized(QuantizedWeight),
    Skipped(SkipReason),
}

fn quantize_graph(
    graph: &mut pb::GraphProto,
    options: &QuantizeOptions,
    opset: Option<i64>,
) -> Result<QuantizeSummary, QuantizeError> {
    let mut names = Names::of_graph(graph);
    let graph_inputs: HashSet<String> = graph.input.iter().map(|v| v.name.clone()).collect();
    let initializer_index: HashMap<String, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();

    let mut summary = QuantizeSummary::default();
    let mut plans: HashMap<String, WeightPlan> = HashMap::new();
    let mut activations: HashMap<String, QuantizedActivation> = HashMap::new();
    let mut constants: Option<SymmetricConstants> = None;
    let mut new_initializers: Vec<pb::TensorProto> = Vec::new();
    let original = std::mem::take(&mut graph.node);
    let producers: HashMap<&str, usize> = original
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut codes_of: HashMap<String, String> = HashMap::new();
    let mut nodes = Vec::with_capacity(original.len());

    for node in original.iter().cloned() {
        let is_matmul = node.op_type == "MatMul"
            && (node.domain.is_empty() || node.domain == "ai.onnx")
            && node.input.len() == 2
            && node.output.len() == 1;
        let weight = match node.input.get(1) {
            Some(w) if is_matmul => w.clone(),
            _ => {
                nodes.push(node);
                continue;
            }
        };
        let Some(&index) = initializer_index.get(&weight) else {
            nodes.push(node);
            continue;
        };
        let tensor = &graph.initializer[index];
        if tensor.data_type != DataType::Float as i32 {
            nodes.push(node);
            continue;
        }
        let label = node_label(&node);
        if options
            .keep_float
            .iter()
            .any(|p| label.starts_with(p.as_str()))
        {
            summary.skipped += 1;
            summary.skipped_nodes.push((label, SkipReason::KeptFloat));
            nodes.push(node);
            continue;
        }

        let plan = match plans.get(&weight) {
            Some(plan) => plan.clone(),
            None => {
                let plan = match plan_weight(tensor, options, &graph_inputs)? {
                    Err(reason) => WeightPlan::Skipped(reason),
                    Ok(WeightCodes {
                        codes,
                        scales,
                        cols,
                    }) => {
                        if opset.is_none_or(|v| v < MIN_OPSET) {
                            return Err(QuantizeError::Opset { found: opset });
                        }
                        let rows = codes.len() / cols.max(1);
                        let q = QuantizedWeight {
                            codes: names.fresh(&format!("{weight}.int8")),
                            scales: names.fresh(&format!("{weight}.scale")),
                        };
                        summary.weight_bytes_before += codes.len() * 4;
                        summary.weight_bytes_after += codes.len() + scales.len() * 4;
                        new_initializers.push(pb::TensorProto {
                            name: q.codes.clone(),
                            dims: vec![rows as i64, cols as i64],
                            data_type: DataType::Int8 as i32,
                            raw_data: codes.iter().map(|&c| c as u8).collect(),
                            ..Default::default()
                        });
                        new_initializers.push(pb::TensorProto {
                            name: q.scales.clone(),
                            dims: vec![cols as i64],
                            data_type: DataType::Float as i32,
                            raw_data: scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
                            ..Default::default()
                        });
                        WeightPlan::Quantized(q)
                    }
                };
                plans.insert(weight.clone(), plan.clone());
                plan
            }
        };
        let w = match plan {
            WeightPlan::Skipped(reason) => {
                summary.skipped += 1;
                summary.skipped_nodes.push((label, reason));
                nodes.push(node);
                continue;
            }
            WeightPlan::Quantized(w) => w,
        };

        let x = node.input[0].clone();
        let y = node.output[0].clone();
        let (source, movement) = match trace_data_movement(&x, &original, &producers) {
            Some(traced) if !initializer_index.contains_key(&traced.0) => traced,
            _ => (x.clone(), Vec::new()),
        };
        let sq = match activations.get(&source) {
            Some(sq) => sq.clone(),
            None => {
                let range = options.ranges.0.get(&source).copied();
                let sq = match (range, options.activations) {
                    (None, ActivationQuantization::DynamicU8) => {
                        dynamic_u8(&source, &mut names, &mut nodes)
                    }
                    (range, _) => {
                        let constants = constants
                            .get_or_insert_with(|| {
                                SymmetricConstants::new(&mut names, &mut new_initializers)
                            })
                            .clone();
                        match range {
                            Some(range) => {
                                summary.calibrated += 1;
                                calibrated_i8(
                                    &source,
                                    range,
                                    &constants,
                                    &mut names,
                                    &mut nodes,
                                    &mut new_initializers,
                                )
                            }
                            None => symmetric_i8(&source, &constants, &mut names, &mut nodes),
                        }
                    }
                };
                summary.activation_sources.push(source.clone());
                codes_of.insert(source.clone(), sq.codes.clone());
                activations.insert(source.clone(), sq.clone());
                sq
            }
        };
        // The data movement between the quantised tensor and the product, replayed on
        // the codes (a quarter of the bytes, and the quantiser runs on the smaller tensor).
        for &i in &movement {
            replay_on_codes(&original[i], &mut codes_of, &mut names, &mut nodes);
        }
        let xq = QuantizedActivation {
            codes: codes_of
                .get(&x)
                .cloned()
                .unwrap_or_else(|| sq.codes.clone()),
            ..sq
        };
        let int32 = names.fresh(&format!("{y}.int32"));
        let mut inputs = vec![xq.codes.as_str(), w.codes.as_str()];
        if let Some(zero_point) = &xq.zero_point {
            inputs.push(zero_point);
        }
        nodes.push(new_node(
            "MatMulInteger",
            int32.clone(),
            &inputs,
            vec![int32.clone()],
            vec![],
        ));
        let as_float = names.fresh(&format!("{y}.int32_as_float"));
        nodes.push(new_node(
            "Cast",
            as_float.clone(),
            &[&int32],
            vec![as_float.clone()],
            vec![int_attribute("to", DataType::Float as i64)],
        ));
        let scale = names.fresh(&format!("{y}.scale"));
        nodes.push(new_node(
            "Mul",
            scale.clone(),
            &[&xq.scale, &w.scales],
            vec![scale.clone()],
            vec![],
        ));
        // The original node's name is free now (its node is gone) unless it was empty.
        let final_name = if node.name.is_empty() {
            names.fresh(&format!("{y}.rescale"))
        } else {
            node.name.clone()
        };
        nodes.push(new_node(
            "Mul",
            final_name,
            &[&as_float, &scale],
            vec![y.clone()],
            vec![],
        ));
        summary.quantized += 1;
        summary.quantized_nodes.push(label);
        summary.products.push(QuantizedProduct {
            input: x,
            weight: w.codes.clone(),
            scale: w.scales.clone(),
            output: y,
        });
    }
    graph.node = nodes;
    graph.initializer.extend(new_initializers);

    // Drop the f32 originals that nothing reads any more.
    let quantized_weights: HashSet<&String> = plans
        .iter()
        .filter(|(_, plan)| matches!(plan, WeightPlan::Quantized(_)))
        .map(|(name, _)| name)
        .collect();
    if !quantized_weights.is_empty() {
        let mut used = HashSet::new();
        collect_uses(graph, &mut used);
        let mut kept_bytes = 0usize;
        graph.initializer.retain(|t| {
            if !quantized_weights.contains(&t.name) {
                return true;
            }
            let keep = used.contains(&t.name);
            if keep {
                kept_bytes += t.raw_data.len() + t.float_data.len() * 4;
            }
            keep
        });
        summary.weight_bytes_after += kept_bytes;
        graph
            .value_info
            .retain(|v| !quantized_weights.contains(&v.name) || used.contains(&v.name));
    }
    Ok(summary)
}

/// The name a node is reported under: its own, else its first output.
fn node_label(node: &pb::NodeProto) -> String {
    if node.name.is_empty() {
        node.output.first().cloned().unwrap_or_default()
    } else {
        node.name.clone()
    }
}

/// A weight's int8 codes (`[rows, cols]`, row-major) and column scales.
struct WeightCodes {
    codes: Vec<i8>,
    scales: Vec<f32>,
    cols: usize,
}

/// Decides whether `tensor` (an f32 initializer) is quantised: `Ok(Ok(codes))` if so,
/// `Ok(Err(reason))` if it stays float, `Err` if it is malformed.
fn plan_weight(
    tensor: &pb::TensorProto,
    options: &QuantizeOptions,
    graph_inputs: &HashSet<String>,
) -> Result<Result<WeightCodes, SkipReason>, QuantizeError> {
    if graph_inputs.contains(&tensor.name) {
        return Ok(Err(SkipReason::GraphInput));
    }
    if tensor.data_location == Some(DataLocation::External as i32) {
        return Ok(Err(SkipReason::ExternalData));
    }
    let bad = |problem: String| QuantizeError::BadInitializer {
        name: tensor.name.clone(),
        problem,
    };
    let mut dims = Vec::with_capacity(tensor.dims.len());
    for &d in &tensor.dims {
        dims.push(usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}")))?);
    }
    let len = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {dims:?} overflows")))?;
    let [_, cols] = dims[..] else {
        return Ok(Err(SkipReason::NotTwoDimensional));
    };
    if len < options.min_elements.max(1) {
        return Ok(Err(SkipReason::TooSmall));
    }
    if dims[0] < options.min_inner {
        return Ok(Err(SkipReason::ShortInner));
    }
    let values = float_values(tensor, len).map_err(bad)?;
    if values.iter().any(|v| !v.is_finite()) {
        return Ok(Err(SkipReason::NonFinite));
    }
    let (codes, scales) = quantize_columns(&values, cols);
    Ok(Ok(WeightCodes {
        codes,
        scales,
        cols,
    }))
}

/// The `len` f32 values of an initializer, from `raw_data` or `float_data`.
fn float_values(tensor: &pb::TensorProto, len: usize) -> Result<Vec<f32>, String> {
    if !tensor.raw_data.is_empty() {
        if tensor.raw_data.len() != len.saturating_mul(4) {
            return Err(format!(
                "{} bytes of raw data for {len} f32 values",
                tensor.raw_data.len()
            ));
        }
        return Ok(tensor
            .raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect());
    }
    if tensor.float_data.len() != len {
        return Err(format!(
            "{} values in float_data for {len}",
            tensor.float_data.len()
        ));
    }
    Ok(tensor.float_data.clone())
}

/// Symmetric per-column int8 codes of a row-major `[rows, cols]` matrix, and the column
/// scales (`max |column| / 127`; 1 for an all-zero column).
fn quantize_columns(values: &[f32], cols: usize) -> (Vec<i8>, Vec<f32>) {
    let mut max_abs = vec![0f32; cols];
    for row in values.chunks_exact(cols.max(1)) {
        for (m, v) in max_abs.iter_mut().zip(row) {
            *m = m.max(v.abs());
        }
    }
    let scales: Vec<f32> = max_abs
        .iter()
        .map(|&m| {
            let s = m / 127.0;
            if s > 0.0 { s } else { 1.0 }
        })
        .collect();
    let codes = values
        .chunks_exact(cols.max(1))
        .flat_map(|row| {
            row.iter()
                .zip(&scales)
                .map(|(v, s)| (v / s).round_ties_even().clamp(-127.0, 127.0) as i8)
        })
        .collect();
    (codes, scales)
}

/// `DynamicQuantizeLinear(x)`: u8 codes, scale and zero point of the whole tensor.
fn dynamic_u8(x: &str, names: &mut Names, nodes: &mut Vec<pb::NodeProto>) -> QuantizedActivation {
    let codes = names.fresh(&format!("{x}.quant"));
    let scale = names.fresh(&format!("{x}.quant_scale"));
    let zero_point = names.fresh(&format!("{x}.quant_zero_point"));
    nodes.push(new_node(
        "DynamicQuantizeLinear",
        names.fresh(&format!("{x}.dynamic_quantize")),
        &[x],
        vec![codes.clone(), scale.clone(), zero_point.clone()],
        vec![],
    ));
    QuantizedActivation {
        codes,
        scale,
        zero_point: Some(zero_point),
    }
}

/// The scalar constants of [`symmetric_i8`], added once per graph.
#[derive(Debug, Clone)]
struct SymmetricConstants {
    /// 127: the largest code.
    max_code: String,
    /// The smallest positive normal f32: the scale of an all-zero tensor.
    tiny: String,
    /// An int8 zero (the zero point of calibrated codes).
    zero_point: String,
}

impl SymmetricConstants {
    fn new(names: &mut Names, initializers: &mut Vec<pb::TensorProto>) -> Self {
        let zero_point = names.fresh("quantize.zero_point");
        initializers.push(scalar_tensor(&zero_point, DataType::Int8, vec![0]));
        let mut scalar = |name: &str, value: f32| {
            let name = names.fresh(name);
            initializers.push(scalar_f32_tensor(&name, value));
            name
        };
        Self {
            max_code: scalar("quantize.max_code", 127.0),
            tiny: scalar("quantize.tiny_scale", f32::MIN_POSITIVE),
            zero_point,
        }
    }
}

/// Symmetric int8 codes of `x` from primitives: `scale = max(max|x| / 127, tiny)`,
/// `codes = Cast<int8>(Round(x / scale))`, in `[-127, 127]` by construction.
fn symmetric_i8(
    x: &str,
    constants: &SymmetricConstants,
    names: &mut Names,
    nodes: &mut Vec<pb::NodeProto>,
) -> QuantizedActivation {
    let mut step = |op: &str, name: &str, inputs: &[&str], attributes| {
        let out = names.fresh(&format!("{x}.{name}"));
        nodes.push(new_node(
            op,
            out.clone(),
            inputs,
            vec![out.clone()],
            attributes,
        ));
        out
    };
    let abs = step("Abs", "abs", &[x], vec![]);
    let abs_max = step(
        "ReduceMax",
        "abs_max",
        &[&abs],
        vec![int_attribute("keepdims", 0)],
    );
    let step_size = step(
        "Div",
        "quant_step",
        &[&abs_max, &constants.max_code],
        vec![],
    );
    let scale = step("Max", "quant_scale", &[&step_size, &constants.tiny], vec![]);
    let scaled = step("Div", "quant_scaled", &[x, &scale], vec![]);
    let rounded = step("Round", "quant_rounded", &[&scaled], vec![]);
    // |x / scale| ≤ 127 (+ rounding), so the rounded value is a code already: no Clip.
    let codes = step(
        "Cast",
        "quant",
        &[&rounded],
        vec![int_attribute("to", DataType::Int8 as i64)],
    );
    QuantizedActivation {
        codes,
        scale,
        zero_point: None,
    }
}

/// The inputs of `node` that carry data, when it only moves data that a zero stays a
/// zero through (so it commutes with symmetric quantisation): `Reshape`, `Transpose`,
/// `Squeeze`, `Unsqueeze`, `Flatten`, `Identity`, `Slice`, `Concat` and a `Pad` with
/// zeros. `None` for any other node.
fn data_movement_inputs(node: &pb::NodeProto) -> Option<&[String]> {
    let default_domain = node.domain.is_empty() || node.domain == "ai.onnx";
    if !default_domain || node.output.len() != 1 || node.input.is_empty() {
        return None;
    }
    match node.op_type.as_str() {
        "Reshape" | "Transpose" | "Squeeze" | "Unsqueeze" | "Flatten" | "Identity" | "Slice" => {
            Some(&node.input[..1])
        }
        "Concat" => Some(&node.input[..]),
        "Pad" => {
            let constant_mode = node
                .attribute
                .iter()
                .find(|a| a.name == "mode")
                .is_none_or(|a| a.s == b"constant");
            let zero_fill = node.input.get(2).is_none_or(String::is_empty);
            (constant_mode && zero_fill).then(|| &node.input[..1])
        }
        _ => None,
    }
}

/// Follows `x` back through data-movement nodes ([`data_movement_inputs`]) to the one
/// tensor they all start from; returns it and the nodes in between (indices into
/// `nodes`, in graph order). `None` when the data comes from more than one tensor.
fn trace_data_movement(
    x: &str,
    nodes: &[pb::NodeProto],
    producers: &HashMap<&str, usize>,
) -> Option<(String, Vec<usize>)> {
    fn walk(
        tensor: &str,
        nodes: &[pb::NodeProto],
        producers: &HashMap<&str, usize>,
        visited: &mut Vec<usize>,
        depth: usize,
    ) -> Option<String> {
        let movement = producers
            .get(tensor)
            .and_then(|&i| Some((i, data_movement_inputs(&nodes[i])?)));
        let Some((index, inputs)) = movement.filter(|_| depth < 64) else {
            return Some(tensor.to_string());
        };
        let mut source: Option<String> = None;
        for input in inputs {
            let found = walk(input, nodes, producers, visited, depth + 1)?;
            match &source {
                Some(previous) if *previous != found => return None,
                _ => source = Some(found),
            }
        }
        if !visited.contains(&index) {
            visited.push(index);
        }
        source
    }
    let mut visited = Vec::new();
    let source = walk(x, nodes, producers, &mut visited, 0)?;
    visited.sort_unstable();
    Some((source, visited))
}

/// Adds a copy of the data-movement `node` that reads and writes codes instead of floats
/// (`codes_of` maps each float tensor to its codes); done once per node.
fn replay_on_codes(
    node: &pb::NodeProto,
    codes_of: &mut HashMap<String, String>,
    names: &mut Names,
    nodes: &mut Vec<pb::NodeProto>,
) {
    let output = &node.output[0];
    if codes_of.contains_key(output) {
        return;
    }
    let data_inputs = data_movement_inputs(node).map_or(0, <[String]>::len);
    let mut copy = node.clone();
    for input in copy.input.iter_mut().take(data_inputs) {
        if let Some(codes) = codes_of.get(input) {
            *input = codes.clone();
        }
    }
    let codes = names.fresh(&format!("{output}.int8"));
    copy.output = vec![codes.clone()];
    copy.name = codes.clone();
    codes_of.insert(output.clone(), codes);
    nodes.push(copy);
}

/// Symmetric int8 codes of `x` with a fixed scale from its calibrated range:
/// `QuantizeLinear(x, max(range / 127, tiny), 0)`, one element-wise pass (saturating at
/// ±127 and −128 for values beyond the calibration set's).
fn calibrated_i8(
    x: &str,
    range: f32,
    constants: &SymmetricConstants,
    names: &mut Names,
    nodes: &mut Vec<pb::NodeProto>,
    initializers: &mut Vec<pb::TensorProto>,
) -> QuantizedActivation {
    let scale = names.fresh(&format!("{x}.quant_scale"));
    let value = (range / 127.0).max(f32::MIN_POSITIVE);
    initializers.push(scalar_f32_tensor(&scale, value));
    let codes = names.fresh(&format!("{x}.quant"));
    nodes.push(new_node(
        "QuantizeLinear",
        codes.clone(),
        &[x, &scale, &constants.zero_point],
        vec![codes.clone()],
        vec![],
    ));
    QuantizedActivation {
        codes,
        scale,
        zero_point: None,
    }
}

/// A rank-0 initializer of `data_type` holding `raw_data`.
fn scalar_tensor(name: &str, data_type: DataType, raw_data: Vec<u8>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: vec![],
        data_type: data_type as i32,
        raw_data,
        ..Default::default()
    }
}

/// A rank-0 f32 initializer.
fn scalar_f32_tensor(name: &str, value: f32) -> pb::TensorProto {
    scalar_tensor(name, DataType::Float, value.to_le_bytes().to_vec())
}

fn int_attribute(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn new_node(
    op_type: &str,
    name: String,
    inputs: &[&str],
    outputs: Vec<String>,
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs,
        name,
        op_type: op_type.to_string(),
        attribute,
        ..Default::default()
    }
}

/// Every tensor name a graph reads: node inputs (subgraphs included) and graph outputs.
fn collect_uses(graph: &pb::GraphProto, used: &mut HashSet<String>) {
    for node in &graph.node {
        used.extend(node.input.iter().cloned());
        for attribute in &node.attribute {
            for sub in attribute.g.iter().chain(&attribute.graphs) {
                collect_uses(sub, used);
            }
        }
    }
    used.extend(graph.output.iter().map(|v| v.name.clone()));
}

/// All names used in a graph (tensors and nodes, subgraphs included), to make new ones
/// unique.
struct Names(HashSet<String>);

impl Names {
    fn of_graph(graph: &pb::GraphProto) -> Self {
        let mut names = HashSet::new();
        Self::collect(graph, &mut names);
        Self(names)
    }

    fn collect(graph: &pb::GraphProto, names: &mut HashSet<String>) {
        let infos = graph
            .input
            .iter()
            .chain(&graph.output)
            .chain(&graph.value_info);
        names.extend(infos.map(|v| v.name.clone()));
        names.extend(graph.initializer.iter().map(|t| t.name.clone()));
        for node in &graph.node {
            names.insert(node.name.clone());
            names.extend(node.input.iter().cloned());
            names.extend(node.output.iter().cloned());
            for attribute in &node.attribute {
                for sub in attribute.g.iter().chain(&attribute.graphs) {
                    Self::collect(sub, names);
                }
            }
        }
    }

    /// `base`, or `base_1`, `base_2`, … if taken; the name returned is reserved.
    fn fresh(&mut self, base: &str) -> String {
        let mut candidate = base.to_string();
        let mut k = 0usize;
        while self.0.contains(&candidate) {
            k += 1;
            candidate = format!("{base}_{k}");
        }
        self.0.insert(candidate.clone());
        candidate
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::error::Error;

    use super::*;
    use crate::graph::{Conv1dGeometry, Dim, ElemType, FloatArray, GraphBuilder};
    use tract_onnx::prelude::*;

    type TestResult = Result<(), Box<dyn Error>>;

    /// xorshift64*: deterministic values in [-1, 1).
    struct Rng(u64);

    impl Rng {
        fn uniform(&mut self) -> f32 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
            (bits as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }

        fn values(&mut self, n: usize, spread: f32) -> Vec<f32> {
            (0..n).map(|_| self.uniform() * spread).collect()
        }
    }

    /// One output of a run: shape and values.
    type Output = (Vec<usize>, Vec<f32>);

    /// Loads ONNX bytes in tract as the runner does; returns each output (shape, values)
    /// and the op names of the optimised model.
    fn run(bytes: &[u8], input: Tensor) -> TractResult<(Vec<Output>, BTreeMap<String, usize>)> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])?
            .into_optimized()?;
        let mut ops = BTreeMap::new();
        for node in model.nodes() {
            *ops.entry(node.op().name().to_string()).or_insert(0) += 1;
        }
        let outputs = model.into_runnable()?.run(tvec!(input.into()))?;
        let outputs = outputs
            .iter()
            .map(|t| {
                let view = t.to_plain_array_view::<f32>()?;
                Ok((view.shape().to_vec(), view.iter().copied().collect()))
            })
            .collect::<TractResult<Vec<_>>>()?;
        Ok((outputs, ops))
    }

    fn count_ops(model: &pb::ModelProto, op: &str) -> usize {
        let graph = model
            .graph
            .as_ref()
            .map(|g| g.node.as_slice())
            .unwrap_or(&[]);
        graph.iter().filter(|n| n.op_type == op).count()
    }

    fn initializer<'a>(model: &'a pb::ModelProto, name: &str) -> Option<&'a pb::TensorProto> {
        model
            .graph
            .as_ref()
            .and_then(|g| g.initializer.iter().find(|t| t.name == name))
    }

    /// `m.max(x)` that keeps a NaN (f64::max drops it, so a NaN output would pass).
    fn nan_max(m: f64, x: f64) -> f64 {
        if m.is_nan() || x.is_nan() {
            f64::NAN
        } else {
            m.max(x)
        }
    }

    fn max_abs(v: &[f32]) -> f64 {
        v.iter().fold(0f64, |m, x| nan_max(m, x.abs() as f64))
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .fold(0f64, |m, (x, y)| nan_max(m, (*x as f64 - *y as f64).abs()))
    }

    #[test]
    fn the_test_maxima_keep_a_nan() {
        assert!(max_abs(&[1.0, f32::NAN]).is_nan());
        assert!(max_abs_diff(&[0.0, f32::NAN], &[0.0, 0.0]).is_nan());
        assert_eq!(max_abs_diff(&[1.0, -1.0], &[0.5, -1.0]), 0.5);
    }

    /// Worst-case |quantised − float| of each output of `a · W` (`a`: `[rows, k]` float
    /// reference, `W`: `[k, n]`), when the quantised path's input differs from `a` by at
    /// most `d` per value:
    ///
    /// - the activation step `s` is taken from the perturbed input: symmetric int8
    ///   `s ≤ (max|a| + d) / 127`; u8 (`DynamicQuantizeLinear`, range with 0 included)
    ///   `s ≤ (max(a, 0) − min(a, 0) + 2d) / 255`; either way the rounding error is at
    ///   most s/2 (no value is clamped by more than half a step);
    /// - the weight of column j is off by at most `s_j / 2`, `s_j = max_i |W_ij| / 127`;
    /// - `(a + δ + ε)(W + η) − a·W = Σ (δ + ε)·W + (a + δ + ε)·η`, so
    ///   `|error_j| ≤ Σ_i (d + s/2)|W_ij| + (|a_i| + d + s/2)·s_j/2`,
    ///
    /// plus f32 rounding in both runs (1e-5 of `Σ |a||W|`, 1e-6 absolute).
    fn matmul_error_bound(
        form: ActivationQuantization,
        a: &[f32],
        d: f64,
        k: usize,
        w: &[f32],
        n: usize,
    ) -> Vec<f64> {
        let lo = a.iter().fold(0f64, |m, &v| m.min(v as f64)) - d;
        let hi = a.iter().fold(0f64, |m, &v| m.max(v as f64)) + d;
        let s = match form {
            ActivationQuantization::SymmetricI8 => hi.max(-lo) / 127.0,
            ActivationQuantization::DynamicU8 => (hi - lo) / 255.0,
        };
        let col_step: Vec<f64> = (0..n)
            .map(|j| (0..k).fold(0f64, |m, i| m.max(w[i * n + j].abs() as f64)) / 127.0)
            .collect();
        let mut bound = Vec::with_capacity(a.len() / k * n);
        for row in a.chunks_exact(k) {
            for j in 0..n {
                let mut e = 1e-6;
                for (i, &ai) in row.iter().enumerate() {
                    let wij = w[i * n + j].abs() as f64;
                    let ai = ai.abs() as f64;
                    e += (d + s / 2.0) * wij + (ai + d + s / 2.0) * col_step[j] / 2.0;
                    e += 1e-5 * ai * wij;
                }
                bound.push(e);
            }
        }
        bound
    }

    const K: usize = 64;
    const HIDDEN: usize = 128;
    const OUT: usize = 48;
    const SMALL: usize = 8;
    const CONV_OUT: usize = 16;
    const FRAMES: usize = 10;
    const ZERO_COLUMN: usize = 5;
    /// The steepest slope of exact GELU (at x ≈ 0.75): 1.1289.
    const GELU_LIPSCHITZ: f64 = 1.13;

    struct Toy {
        bytes: Vec<u8>,
        w1: Vec<f32>,
        w2: Vec<f32>,
        w_side: Vec<f32>,
        b1: Vec<f32>,
    }

    /// `x [1, n, K]` → fc1 (K→HIDDEN, one all-zero column) → GELU → fc2 (HIDDEN→OUT);
    /// side (K→K, no bias) and small (K→SMALL, below the threshold) also read x;
    /// scores = x·xᵀ (two activations); conv over x's time axis.
    fn toy_graph() -> Result<Toy, Box<dyn Error>> {
        let mut rng = Rng(0x5eed);
        let mut w1 = rng.values(K * HIDDEN, 1.0 / (K as f32).sqrt());
        for i in 0..K {
            w1[i * HIDDEN + ZERO_COLUMN] = 0.0;
        }
        // Columns of very different ranges, as in trained transformers.
        for (idx, v) in w1.iter_mut().enumerate() {
            *v *= 0.2 + (idx % HIDDEN) as f32 / HIDDEN as f32 * 3.0;
        }
        let b1 = rng.values(HIDDEN, 0.1);
        let w2 = rng.values(HIDDEN * OUT, 1.0 / (HIDDEN as f32).sqrt());
        let b2 = rng.values(OUT, 0.1);
        let w_side = rng.values(K * K, 1.0 / (K as f32).sqrt());
        let w_small = rng.values(K * SMALL, 0.3);
        let b_small = rng.values(SMALL, 0.1);
        let w_conv = rng.values(CONV_OUT * K * 3, 0.1);

        let mut g = GraphBuilder::new("toy");
        let n = Dim::sym("n");
        let x = g.input(
            "x",
            ElemType::F32,
            &[Dim::Fixed(1), n.clone(), Dim::Fixed(K as i64)],
        );
        let pre = g.linear_in_out(
            "fc1",
            &x,
            FloatArray::new(vec![K, HIDDEN], w1.clone())?,
            Some(FloatArray::new(vec![HIDDEN], b1.clone())?),
        )?;
        let hidden = g.gelu("act", &pre);
        let y = g.linear_in_out(
            "fc2",
            &hidden,
            FloatArray::new(vec![HIDDEN, OUT], w2.clone())?,
            Some(FloatArray::new(vec![OUT], b2)?),
        )?;
        let side = g.linear_in_out(
            "side",
            &x,
            FloatArray::new(vec![K, K], w_side.clone())?,
            None,
        )?;
        let small = g.linear_in_out(
            "small",
            &x,
            FloatArray::new(vec![K, SMALL], w_small)?,
            Some(FloatArray::new(vec![SMALL], b_small)?),
        )?;
        let xt = g.transpose("x_t", &x, &[0, 2, 1]);
        let scores = g.node("MatMul", "scores", &[&x, &xt], vec![]);
        let conv = g.conv1d(
            "conv",
            &xt,
            FloatArray::new(vec![CONV_OUT, K, 3], w_conv)?,
            None,
            Conv1dGeometry {
                stride: 1,
                pads: [1, 1],
                groups: 1,
            },
        )?;
        let one = Dim::Fixed(1);
        let f = |d: usize| Dim::Fixed(d as i64);
        g.output(
            "pre",
            &pre,
            ElemType::F32,
            &[one.clone(), n.clone(), f(HIDDEN)],
        )?;
        g.output(
            "hidden",
            &hidden,
            ElemType::F32,
            &[one.clone(), n.clone(), f(HIDDEN)],
        )?;
        g.output("y", &y, ElemType::F32, &[one.clone(), n.clone(), f(OUT)])?;
        g.output(
            "side",
            &side,
            ElemType::F32,
            &[one.clone(), n.clone(), f(K)],
        )?;
        g.output(
            "small",
            &small,
            ElemType::F32,
            &[one.clone(), n.clone(), f(SMALL)],
        )?;
        g.output(
            "scores_out",
            &scores,
            ElemType::F32,
            &[one.clone(), n.clone(), n.clone()],
        )?;
        g.output("conv_out", &conv, ElemType::F32, &[one, f(CONV_OUT), n])?;
        g.metadata("k", "v");
        Ok(Toy {
            bytes: g.into_bytes(),
            w1,
            w2,
            w_side,
            b1,
        })
    }

    /// Quantises the toy graph with `form`, checks the rewritten graph, runs both graphs
    /// in tract and holds every quantised output to its worst-case bound.
    fn check_toy_graph(form: ActivationQuantization) -> TestResult {
        let toy = toy_graph()?;
        let options = QuantizeOptions {
            activations: form,
            ..Default::default()
        };
        let (quantized, summary) = quantize_dynamic(&toy.bytes, &options)?;

        // Structure.
        assert_eq!(summary.quantized, 3, "{summary:?}");
        assert_eq!(
            summary.quantized_nodes,
            ["fc1.matmul", "fc2.matmul", "side.matmul"]
        );
        assert_eq!(
            summary.skipped_nodes,
            [("small.matmul".to_string(), SkipReason::TooSmall)]
        );
        assert_eq!(summary.skipped, 1);
        let float_weights = K * HIDDEN + HIDDEN * OUT + K * K;
        assert_eq!(summary.weight_bytes_before, 4 * float_weights);
        assert_eq!(
            summary.weight_bytes_after,
            float_weights + 4 * (HIDDEN + OUT + K)
        );
        let before = pb::ModelProto::decode(&toy.bytes[..])?;
        let after = pb::ModelProto::decode(&quantized[..])?;
        assert_eq!(count_ops(&after, "MatMulInteger"), 3);
        // x is quantised once for fc1 and side; fc2 reads the GELU output.
        let (quantisers, casts) = match form {
            ActivationQuantization::SymmetricI8 => (count_ops(&after, "ReduceMax"), 3 + 2),
            ActivationQuantization::DynamicU8 => (count_ops(&after, "DynamicQuantizeLinear"), 3),
        };
        assert_eq!(quantisers, 2);
        assert_eq!(count_ops(&after, "Cast"), casts);
        assert_eq!(
            count_ops(&after, "MatMul"),
            2,
            "small and scores stay float"
        );
        assert_eq!(count_ops(&after, "Conv"), 1);
        let (bg, ag) = (
            before.graph.as_ref().unwrap(),
            after.graph.as_ref().unwrap(),
        );
        assert_eq!(bg.input, ag.input);
        assert_eq!(bg.output, ag.output);
        let scores = ag.node.iter().find(|n| n.name == "scores").unwrap();
        assert_eq!(scores.op_type, "MatMul");
        assert_eq!(scores.input, ["x", "x_t"]);
        for node in ag.node.iter().filter(|n| n.op_type == "MatMulInteger") {
            let expected = match form {
                ActivationQuantization::SymmetricI8 => 2,
                ActivationQuantization::DynamicU8 => 3,
            };
            assert_eq!(node.input.len(), expected, "{node:?}");
        }
        for name in ["fc1.weight", "fc2.weight", "side.weight"] {
            assert!(initializer(&after, name).is_none(), "{name} is still there");
            let codes = initializer(&after, &format!("{name}.int8")).unwrap();
            let original = initializer(&before, name).unwrap();
            assert_eq!(codes.data_type, DataType::Int8 as i32);
            assert_eq!(codes.dims, original.dims);
            let scale = initializer(&after, &format!("{name}.scale")).unwrap();
            assert_eq!(scale.dims, original.dims[1..]);
        }
        for name in ["small.weight", "conv.weight"] {
            assert_eq!(initializer(&after, name), initializer(&before, name));
        }
        let metadata: Vec<(&str, &str)> = after
            .metadata_props
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            metadata[..3],
            [
                ("k", "v"),
                (METADATA_KEY, METADATA_VALUE),
                (METADATA_ACTIVATIONS_KEY, form.as_str())
            ]
        );
        assert_eq!(metadata[3].0, PRODUCTS_KEY);
        let listed = emotion_core::int8::quantized_products(&after)?;
        assert_eq!(listed, summary.products);
        let outputs: Vec<&str> = listed.iter().map(|p| p.output.as_str()).collect();
        assert_eq!(outputs, ["fc1.matmul", "fc2.matmul", "side.matmul"]);
        assert_eq!(listed[0].input, "x");
        assert_eq!(listed[0].weight, "fc1.weight.int8");

        // Numbers: both graphs in tract on the same input.
        let mut rng = Rng(7);
        let x: Vec<f32> = (0..FRAMES * K)
            .map(|i| rng.uniform() * if i % 17 == 0 { 4.0 } else { 1.5 })
            .collect();
        let input = || tract_ndarray::Array3::from_shape_vec((1, FRAMES, K), x.clone());
        let (float, float_ops) = run(&toy.bytes, input()?.into_tensor())?;
        let (quant, quant_ops) = run(&quantized, input()?.into_tensor())?;
        println!("{form:?}: tract ops, float graph:     {float_ops:?}");
        println!("{form:?}: tract ops, quantised graph: {quant_ops:?}");
        let [pre, hidden, y, side, small, scores, conv] = &float[..] else {
            panic!("7 outputs expected");
        };
        for (f, q) in float.iter().zip(&quant) {
            assert_eq!(f.0, q.0, "shapes differ");
        }

        // Float paths are untouched.
        for (name, f, q) in [
            ("small", small, &quant[4]),
            ("scores", scores, &quant[5]),
            ("conv", conv, &quant[6]),
        ] {
            let err = max_abs_diff(&f.1, &q.1);
            assert!(err <= 1e-6 * max_abs(&f.1), "{name}: {err}");
        }
        // The all-zero column gives exactly the bias.
        for t in 0..FRAMES {
            assert_eq!(quant[0].1[t * HIDDEN + ZERO_COLUMN], toy.b1[ZERO_COLUMN]);
        }

        // Quantised products against their worst-case bounds.
        let bound_pre = matmul_error_bound(form, &x, 0.0, K, &toy.w1, HIDDEN);
        let d_hidden = GELU_LIPSCHITZ * bound_pre.iter().fold(0f64, |m, &b| m.max(b));
        let bound_y = matmul_error_bound(form, &hidden.1, d_hidden, HIDDEN, &toy.w2, OUT);
        let bound_side = matmul_error_bound(form, &x, 0.0, K, &toy.w_side, K);
        for (name, f, q, bound) in [
            ("pre", pre, &quant[0], &bound_pre),
            ("y", y, &quant[2], &bound_y),
            ("side", side, &quant[3], &bound_side),
        ] {
            let mut worst_ratio = 0f64;
            for ((a, b), e) in f.1.iter().zip(&q.1).zip(bound) {
                let err = (*a as f64 - *b as f64).abs();
                assert!(err <= *e, "{name}: error {err} over its bound {e}");
                worst_ratio = worst_ratio.max(err / e);
            }
            let err = max_abs_diff(&f.1, &q.1);
            let relative = err / max_abs(&f.1);
            println!(
                "{form:?} {name}: max |error| {err:.3e}, relative to max |output| \
                 {relative:.3e}, at most {worst_ratio:.2} of the worst-case bound"
            );
            // Relative to the output's magnitude: about 1 % for 8-bit steps on both
            // operands (measured 0.8–1.6 %).
            assert!(relative < 0.04, "{name}: relative error {relative}");
        }

        // The same graph computed in float from its int8 weights (a CPU without fast
        // int8 kernels): tract runs the float graph's ops, and only the weights' rounding
        // is left, within half a step of each weight's column.
        let mut in_float = after.clone();
        assert_eq!(
            emotion_core::int8::products_in_float(&mut in_float, usize::MAX)?,
            3
        );
        let (dequantised, dequantised_ops) =
            run(&in_float.encode_to_vec(), input()?.into_tensor())?;
        assert_eq!(dequantised_ops, float_ops, "no integer op is left");
        let weight_bound = |x: &[f32], k: usize, w: &[f32], n: usize| -> Vec<f64> {
            let rows = x.len() / k;
            let half_step: Vec<f64> = (0..n)
                .map(|j| (0..k).fold(0f64, |m, i| m.max(w[i * n + j].abs() as f64)) / 127.0 / 2.0)
                .collect();
            (0..rows * n)
                .map(|o| {
                    let (r, j) = (o / n, o % n);
                    let l1: f64 = x[r * k..(r + 1) * k].iter().map(|v| v.abs() as f64).sum();
                    l1 * half_step[j] * (1.0 + 1e-5) + 1e-6
                })
                .collect()
        };
        for (name, f, q, bound) in [
            (
                "pre",
                pre,
                &dequantised[0],
                weight_bound(&x, K, &toy.w1, HIDDEN),
            ),
            (
                "side",
                side,
                &dequantised[3],
                weight_bound(&x, K, &toy.w_side, K),
            ),
        ] {
            for (i, ((a, b), e)) in f.1.iter().zip(&q.1).zip(&bound).enumerate() {
                let err = (*a as f64 - *b as f64).abs();
                assert!(err <= *e, "{name}[{i}] in float: error {err} over {e}");
            }
        }
        let relative = max_abs_diff(&y.1, &dequantised[2].1) / max_abs(&y.1);
        assert!(relative < 0.02, "y in float: relative error {relative}");
        Ok(())
    }

    #[test]
    fn toy_graph_symmetric_i8() -> TestResult {
        check_toy_graph(ActivationQuantization::SymmetricI8)
    }

    #[test]
    fn toy_graph_dynamic_u8() -> TestResult {
        check_toy_graph(ActivationQuantization::DynamicU8)
    }

    /// Weights above 2²⁰ values: with symmetric activations tract runs the int8 kernel
    /// with no per-run work on the weights (no `Reduce<Sum>` of the weight survives
    /// optimisation; see the module docs for the u8 case, printed here).
    #[test]
    fn large_weight_needs_no_per_run_weight_sums_in_tract() -> TestResult {
        let (k, n) = (1024, 1100);
        let mut rng = Rng(99);
        let mut g = GraphBuilder::new("large");
        let t = Dim::sym("t");
        let x = g.input(
            "x",
            ElemType::F32,
            &[Dim::Fixed(1), t.clone(), Dim::Fixed(k)],
        );
        let w = FloatArray::new(vec![k as usize, n], rng.values(k as usize * n, 0.03))?;
        let y = g.linear_in_out("fc", &x, w, None)?;
        g.output(
            "y",
            &y,
            ElemType::F32,
            &[Dim::Fixed(1), t, Dim::Fixed(n as i64)],
        )?;
        let bytes = g.into_bytes();
        let input = tract_ndarray::Array3::from_shape_fn((1, 5, k as usize), |(_, i, j)| {
            ((i * 31 + j * 17) % 100) as f32 / 50.0 - 1.0
        });
        let (float, _) = run(&bytes, input.clone().into_tensor())?;
        for (form, options) in both_forms() {
            let (quantized, _) = quantize_dynamic(&bytes, &options)?;
            let (quant, ops) = run(&quantized, input.clone().into_tensor())?;
            println!("{form:?}: tract ops {ops:?}");
            let relative = max_abs_diff(&float[0].1, &quant[0].1) / max_abs(&float[0].1);
            assert!(relative < 0.03, "{form:?}: {relative}");
            if form == ActivationQuantization::SymmetricI8 {
                assert!(!ops.contains_key("Reduce<Sum>"), "{ops:?}");
                assert!(!ops.contains_key("OffsetU8asI8"), "{ops:?}");
            }
        }
        Ok(())
    }

    /// Default options with each activation form.
    fn both_forms() -> [(ActivationQuantization, QuantizeOptions); 2] {
        [
            ActivationQuantization::SymmetricI8,
            ActivationQuantization::DynamicU8,
        ]
        .map(|form| {
            let options = QuantizeOptions {
                activations: form,
                keep_float: vec!["feature_extractor.".to_string()],
                ..Default::default()
            };
            (form, options)
        })
    }

    #[test]
    fn malformed_input_is_an_error() {
        let mut rng = Rng(11);
        let noise: Vec<u8> = (0..256)
            .map(|_| (rng.uniform() * 128.0 + 128.0) as u8)
            .collect();
        for bytes in [
            &b"this is not an ONNX model"[..],
            &[0xff; 64][..],
            &noise[..],
            &[][..],
        ] {
            let result = quantize_dynamic(bytes, &QuantizeOptions::default());
            assert!(result.is_err(), "{bytes:?} gave {result:?}");
        }
        let empty = quantize_dynamic(&[], &QuantizeOptions::default());
        assert!(matches!(empty, Err(QuantizeError::NoGraph)), "{empty:?}");
    }

    /// A one-MatMul model built by hand, to break on purpose.
    fn one_matmul(opset: i64, weight: pb::TensorProto) -> Vec<u8> {
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            graph: Some(pb::GraphProto {
                node: vec![new_node(
                    "MatMul",
                    "mm".into(),
                    &["x", "w"],
                    vec!["y".into()],
                    vec![],
                )],
                initializer: vec![weight],
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn weight(values: usize, dims: Vec<i64>) -> pb::TensorProto {
        pb::TensorProto {
            name: "w".into(),
            dims,
            data_type: DataType::Float as i32,
            raw_data: vec![0; values * 4],
            ..Default::default()
        }
    }

    #[test]
    fn bad_models_are_typed_errors() {
        let options = QuantizeOptions {
            min_elements: 1,
            min_inner: 1,
            ..Default::default()
        };
        let old = quantize_dynamic(&one_matmul(10, weight(4, vec![2, 2])), &options);
        assert!(
            matches!(old, Err(QuantizeError::Opset { found: Some(10) })),
            "{old:?}"
        );
        let short = quantize_dynamic(&one_matmul(17, weight(3, vec![2, 2])), &options);
        assert!(
            matches!(short, Err(QuantizeError::BadInitializer { .. })),
            "{short:?}"
        );
        let negative = quantize_dynamic(&one_matmul(17, weight(4, vec![-2, -2])), &options);
        assert!(
            matches!(negative, Err(QuantizeError::BadInitializer { .. })),
            "{negative:?}"
        );
        // Fine at opset 17; an all-zero weight does not divide by zero.
        let (bytes, summary) =
            quantize_dynamic(&one_matmul(17, weight(4, vec![2, 2])), &options).unwrap();
        assert_eq!(summary.quantized, 1);
        let model = pb::ModelProto::decode(&bytes[..]).unwrap();
        let scale = initializer(&model, "w.scale").unwrap();
        assert_eq!(scale.raw_data, [1f32, 1.0].map(f32::to_le_bytes).concat());
    }

    #[test]
    fn per_column_codes_and_scales() {
        // [2, 3]: columns (1, -0.5), (0, 0), (-254, 127).
        let (codes, scales) = quantize_columns(&[1.0, 0.0, -254.0, -0.5, 0.0, 127.0], 3);
        assert_eq!(scales, [1.0 / 127.0, 1.0, 2.0]);
        // -0.5 · 127 = -63.5 rounds half to even: -64.
        assert_eq!(codes, [127, 0, -127, -64, 0, 64]);
    }

    /// `x → Relu → time-major strided conv` (the feature encoder's shape: Pad, Slice,
    /// Reshape, Concat between the activation and the product).
    fn relu_then_strided_conv() -> Result<(Vec<u8>, Vec<f32>), Box<dyn Error>> {
        let (channels, out, kernel) = (64usize, 32usize, 3usize);
        let weight: Vec<f32> = (0..out * channels * kernel)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let mut g = GraphBuilder::new("t");
        let x = g.input(
            "x",
            ElemType::F32,
            &[Dim::Fixed(1), Dim::sym("n"), Dim::Fixed(channels as i64)],
        );
        let r = g.node("Relu", "relu", &[&x], vec![]);
        let y = g.conv1d_time_major(
            "conv",
            &r,
            FloatArray::new(vec![out, channels, kernel], weight)?,
            None,
            2,
        )?;
        g.output(
            "y",
            &y,
            ElemType::F32,
            &[Dim::Fixed(1), Dim::sym("t"), Dim::Fixed(out as i64)],
        )?;
        let input: Vec<f32> = (0..41 * channels)
            .map(|i| ((i * 13 % 29) as f32 / 7.0) - 2.0)
            .collect();
        Ok((g.into_bytes(), input))
    }

    /// The activation is quantised where the data movement starts (the Relu's output),
    /// the Pad/Slice/Reshape/Concat are replayed on the codes, and the result still
    /// matches the float graph.
    #[test]
    fn quantisation_is_hoisted_above_data_movement() -> Result<(), Box<dyn Error>> {
        let (bytes, input) = relu_then_strided_conv()?;
        let tensor = || Tensor::from_shape(&[1, 41, 64], &input);
        let (float, _) = run(&bytes, tensor()?)?;
        let (quantised, summary) = quantize_dynamic(&bytes, &QuantizeOptions::default())?;
        assert_eq!(summary.quantized, 1);
        assert_eq!(summary.activation_sources, ["relu"]);
        let model = pb::ModelProto::decode(&quantised[..])?;
        let graph = model.graph.as_ref().expect("graph");
        let abs = graph
            .node
            .iter()
            .find(|n| n.op_type == "Abs")
            .expect("quantiser");
        assert_eq!(abs.input, ["relu"]);
        let concat = graph.node.iter().filter(|n| n.op_type == "Concat").count();
        assert_eq!(concat, 2, "the float Concat and its int8 replay");
        let (q, _) = run(&quantised, tensor()?)?;
        assert_eq!(q[0].0, float[0].0);
        let error = max_abs_diff(&q[0].1, &float[0].1);
        assert!(error < 0.02 * max_abs(&float[0].1), "error {error}");
        Ok(())
    }

    /// Calibration measures the hoisted source; with its range the quantiser writes one
    /// `QuantizeLinear` and no run-time scale, and the result matches the float graph.
    #[test]
    fn calibrated_activations_get_a_fixed_scale() -> Result<(), Box<dyn Error>> {
        let (bytes, input) = relu_then_strided_conv()?;
        let tensor = || Tensor::from_shape(&[1, 41, 64], &input);
        let options = QuantizeOptions::default();
        let ranges = crate::calibration::calibrate(&bytes, &options, &[tensor()?])?;
        let relu_max = input.iter().fold(0f32, |m, v| m.max(v.max(0.0)));
        assert_eq!(ranges.0.len(), 1);
        assert!((ranges.0["relu"] - relu_max).abs() < 1e-6);
        let options = QuantizeOptions { ranges, ..options };
        let (quantised, summary) = quantize_dynamic(&bytes, &options)?;
        assert_eq!(summary.calibrated, 1);
        let model = pb::ModelProto::decode(&quantised[..])?;
        assert_eq!(count_ops(&model, "QuantizeLinear"), 1);
        assert_eq!(count_ops(&model, "Abs"), 0);
        let (float, _) = run(&bytes, tensor()?)?;
        let (q, _) = run(&quantised, tensor()?)?;
        let error = max_abs_diff(&q[0].1, &float[0].1);
        assert!(error < 0.02 * max_abs(&float[0].1), "error {error}");
        assert!(crate::calibration::calibrate(&bytes, &options, &[]).is_err());
        Ok(())
    }

    /// HuBERT's first conv reads 10 raw samples: too short a product to quantise.
    #[test]
    fn products_over_few_inputs_stay_float() -> Result<(), Box<dyn Error>> {
        let mut g = GraphBuilder::new("t");
        let x = g.input("x", ElemType::F32, &[Dim::Fixed(4), Dim::Fixed(10)]);
        let y = g.linear_in_out(
            "fc",
            &x,
            FloatArray::new(vec![10, 512], vec![0.5; 5120])?,
            None,
        )?;
        g.output("y", &y, ElemType::F32, &[Dim::Fixed(4), Dim::Fixed(512)])?;
        let (_, summary) = quantize_dynamic(&g.into_bytes(), &QuantizeOptions::default())?;
        assert_eq!(summary.quantized, 0);
        assert_eq!(summary.skipped_nodes[0].1, SkipReason::ShortInner);
        Ok(())
    }
}
