//! A small builder for ONNX graphs over the protobuf types of `tract_onnx::pb`.
//!
//! Every ONNX file this project writes (the imported encoders, the exported heads) is
//! built here: initializers (f32 weights, i64 constants), nodes with attributes, graph
//! inputs and outputs with symbolic dimensions, metadata, and [`GraphBuilder::into_bytes`].
//! The default domain at opset [`OPSET`] is used throughout, and only standard operators,
//! so a graph loads in tract and in onnxruntime alike.
//!
//! On top of the raw nodes sit the blocks the encoders are made of: [`GraphBuilder::linear`]
//! (HF `[out, in]` weights), [`GraphBuilder::layer_norm`], [`GraphBuilder::activation`]
//! (exact erf GELU from primitives, in the shape tract fuses), [`GraphBuilder::conv1d`] and
//! [`GraphBuilder::self_attention`] (unmasked: one unpadded sequence at a time).
//!
//! Names are unique: [`GraphBuilder::fresh_name`] appends `_1`, `_2`, … to a name already
//! taken, and every node is named after its (first) output.

use std::collections::HashSet;

use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::dimension;

/// The ONNX operator-set version of the default domain used by every graph we write.
pub const OPSET: i64 = 17;

/// The ONNX IR version that goes with [`OPSET`].
pub const IR_VERSION: i64 = 8;

/// What can go wrong while building a graph: always a programming or shape error in the
/// caller (weights that do not have the shape they claim), never a runtime condition.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// A tensor's data length does not match the product of its dimensions.
    #[error("tensor `{name}`: shape {shape:?} holds {expected} values but {found} were given")]
    DataLength {
        /// Name of the tensor being added.
        name: String,
        /// Its declared shape.
        shape: Vec<usize>,
        /// Product of the shape.
        expected: usize,
        /// Values actually given.
        found: usize,
    },
    /// A weight passed to a block does not have the shape the block needs.
    #[error("`{name}`: expected shape {expected}, found {found:?}")]
    WeightShape {
        /// Name of the block or tensor.
        name: String,
        /// The shape the block needs, in words (`[out, in]`, `[3]`, …).
        expected: String,
        /// The shape found.
        found: Vec<usize>,
    },
    /// A graph output name is already used by another tensor.
    #[error("graph output name `{0}` is already taken by another tensor")]
    DuplicateOutput(String),
}

/// A dense row-major f32 array with its shape: what the builder stores as an initializer.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatArray {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl FloatArray {
    /// Wraps `data` with `shape`; fails if their sizes disagree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, GraphError> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(GraphError::DataLength {
                name: "<array>".into(),
                shape,
                expected,
                found: data.len(),
            });
        }
        Ok(Self { shape, data })
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Takes the values out.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// The transpose of a 2-D array (`[r, c]` → `[c, r]`).
    pub fn transposed(&self) -> Result<FloatArray, GraphError> {
        let [rows, cols] = self.shape[..] else {
            return Err(GraphError::WeightShape {
                name: "transpose".into(),
                expected: "a 2-D array".into(),
                found: self.shape.clone(),
            });
        };
        let mut out = vec![0f32; self.data.len()];
        for (r, row) in self.data.chunks_exact(cols.max(1)).enumerate() {
            for (c, v) in row.iter().enumerate() {
                if let Some(slot) = out.get_mut(c * rows + r) {
                    *slot = *v;
                }
            }
        }
        Ok(FloatArray {
            shape: vec![cols, rows],
            data: out,
        })
    }
}

/// The element type of a graph input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    /// 32-bit float.
    F32,
    /// 64-bit signed integer (token ids, shapes).
    I64,
}

impl ElemType {
    fn data_type(self) -> DataType {
        match self {
            ElemType::F32 => DataType::Float,
            ElemType::I64 => DataType::Int64,
        }
    }
}

/// One dimension of a graph input or output: fixed, or symbolic (`dim_param`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A known size.
    Fixed(i64),
    /// A size known only at run time, by name (`"samples"`, `"frames"`, `"tokens"`).
    Symbolic(String),
}

impl Dim {
    /// A symbolic dimension.
    pub fn sym(name: &str) -> Self {
        Dim::Symbolic(name.to_string())
    }
}

/// A node attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// One integer.
    Int(i64),
    /// One float.
    Float(f32),
    /// A list of integers.
    Ints(Vec<i64>),
    /// A list of floats.
    Floats(Vec<f32>),
    /// A UTF-8 string.
    Str(String),
}

/// The weights of one fully connected layer in the HF / PyTorch layout.
#[derive(Debug, Clone)]
pub struct LinearWeights {
    /// `[out, in]`.
    pub weight: FloatArray,
    /// `[out]`, if the layer has a bias.
    pub bias: Option<FloatArray>,
}

/// The four projections of a multi-head self-attention block.
#[derive(Debug, Clone)]
pub struct AttentionWeights {
    /// Query projection.
    pub query: LinearWeights,
    /// Key projection.
    pub key: LinearWeights,
    /// Value projection.
    pub value: LinearWeights,
    /// Output projection.
    pub output: LinearWeights,
    /// Number of heads; must divide the hidden size.
    pub heads: usize,
}

/// Stride, padding and groups of a 1-D convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv1dGeometry {
    /// Step between windows.
    pub stride: usize,
    /// Zero padding `[begin, end]` of the time axis.
    pub pads: [usize; 2],
    /// Channel groups (1: dense).
    pub groups: usize,
}

/// Element-wise activations, each built from standard ONNX primitives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, `0.5·x·(1 + erf(x/√2))` (HF `"gelu"`).
    GeluErf,
    /// Tanh-approximated GELU (HF `"gelu_new"`, `"gelu_pytorch_tanh"`).
    GeluTanh,
    /// `max(x, 0)`.
    Relu,
    /// `x·sigmoid(x)` (HF `"silu"`, `"swish"`).
    Silu,
}

/// Builds one ONNX graph, node by node, then encodes it as a model.
#[derive(Debug)]
pub struct GraphBuilder {
    graph: pb::GraphProto,
    names: HashSet<String>,
    metadata: Vec<(String, String)>,
    doc: String,
}

impl GraphBuilder {
    /// An empty graph named `name`.
    pub fn new(name: &str) -> Self {
        Self {
            graph: pb::GraphProto {
                name: name.to_string(),
                ..Default::default()
            },
            names: HashSet::new(),
            metadata: Vec::new(),
            doc: String::new(),
        }
    }

    /// `base` if no tensor or node has that name yet, else `base_1`, `base_2`, …; the name
    /// returned is reserved.
    pub fn fresh_name(&mut self, base: &str) -> String {
        let mut candidate = base.to_string();
        let mut k = 0usize;
        while self.names.contains(&candidate) {
            k += 1;
            candidate = format!("{base}_{k}");
        }
        self.names.insert(candidate.clone());
        candidate
    }

    /// Sets the model's doc string.
    pub fn set_doc(&mut self, doc: &str) {
        self.doc = doc.to_string();
    }

    /// Sets one `metadata_props` entry (replacing an earlier value for the same key).
    pub fn metadata(&mut self, key: &str, value: &str) {
        if let Some(entry) = self.metadata.iter_mut().find(|(k, _)| k == key) {
            entry.1 = value.to_string();
        } else {
            self.metadata.push((key.to_string(), value.to_string()));
        }
    }

    /// Declares a graph input; returns its name (exactly `name`: inputs are reserved first).
    pub fn input(&mut self, name: &str, elem: ElemType, dims: &[Dim]) -> String {
        let name = self.fresh_name(name);
        self.graph.input.push(value_info(&name, elem, dims));
        name
    }

    /// Declares `tensor` a graph output named `name` (adding an `Identity` node when the
    /// names differ). Outputs appear in the order declared.
    pub fn output(
        &mut self,
        name: &str,
        tensor: &str,
        elem: ElemType,
        dims: &[Dim],
    ) -> Result<(), GraphError> {
        if name != tensor {
            if self.names.contains(name) {
                return Err(GraphError::DuplicateOutput(name.to_string()));
            }
            self.names.insert(name.to_string());
            self.graph.node.push(pb::NodeProto {
                input: vec![tensor.to_string()],
                output: vec![name.to_string()],
                name: name.to_string(),
                op_type: "Identity".into(),
                ..Default::default()
            });
        }
        self.graph.output.push(value_info(name, elem, dims));
        Ok(())
    }

    /// Adds an f32 initializer; returns its (unique) name.
    pub fn initializer(&mut self, name: &str, array: FloatArray) -> String {
        let name = self.fresh_name(name);
        let dims = array.shape.iter().map(|&d| d as i64).collect();
        let raw_data = le_bytes(&array.data);
        self.graph.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims,
            data_type: DataType::Float as i32,
            raw_data,
            ..Default::default()
        });
        name
    }

    /// Adds an f32 initializer from a shape and values.
    pub fn initializer_f32(
        &mut self,
        name: &str,
        shape: &[usize],
        values: Vec<f32>,
    ) -> Result<String, GraphError> {
        let array = FloatArray::new(shape.to_vec(), values).map_err(|e| rename(e, name))?;
        Ok(self.initializer(name, array))
    }

    /// Adds an f32 scalar (rank 0) constant.
    pub fn scalar_f32(&mut self, name: &str, value: f32) -> String {
        self.initializer(
            name,
            FloatArray {
                shape: vec![],
                data: vec![value],
            },
        )
    }

    /// Adds a 1-D i64 constant (shapes, axes, indices).
    pub fn const_i64(&mut self, name: &str, values: &[i64]) -> String {
        let name = self.fresh_name(name);
        self.graph.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims: vec![values.len() as i64],
            data_type: DataType::Int64 as i32,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// Adds a node with one output named after `name` (made unique); returns that output.
    pub fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        attributes: Vec<(&str, Attr)>,
    ) -> String {
        let out = self.fresh_name(name);
        self.graph.node.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op_type.to_string(),
            attribute: attributes
                .into_iter()
                .map(|(k, v)| attribute(k, v))
                .collect(),
            ..Default::default()
        });
        out
    }

    /// The nodes added so far.
    pub fn nodes(&self) -> &[pb::NodeProto] {
        &self.graph.node
    }

    /// The finished model: graph, opset [`OPSET`], producer and metadata.
    pub fn into_model(self) -> pb::ModelProto {
        pb::ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "emotion-edge host-trainer".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: self.doc,
            graph: Some(self.graph),
            metadata_props: self
                .metadata
                .into_iter()
                .map(|(key, value)| pb::StringStringEntryProto { key, value })
                .collect(),
            ..Default::default()
        }
    }

    /// The finished model as ONNX protobuf bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.into_model().encode_to_vec()
    }

    // ----- blocks -------------------------------------------------------------------

    /// `x · Wᵀ + b` for an HF / PyTorch weight `[out, in]` (stored transposed, `[in, out]`,
    /// so the graph holds a plain `MatMul` + `Add`).
    pub fn linear(
        &mut self,
        name: &str,
        x: &str,
        weights: LinearWeights,
    ) -> Result<String, GraphError> {
        if weights.weight.shape.len() != 2 {
            return Err(GraphError::WeightShape {
                name: format!("{name}.weight"),
                expected: "[out, in]".into(),
                found: weights.weight.shape.clone(),
            });
        }
        let weight_in_out = weights.weight.transposed()?;
        self.linear_in_out(name, x, weight_in_out, weights.bias)
    }

    /// `x · W + b` for a weight already `[in, out]` (burn's layout).
    pub fn linear_in_out(
        &mut self,
        name: &str,
        x: &str,
        weight_in_out: FloatArray,
        bias: Option<FloatArray>,
    ) -> Result<String, GraphError> {
        let [_, out_features] = weight_in_out.shape[..] else {
            return Err(GraphError::WeightShape {
                name: format!("{name}.weight"),
                expected: "[in, out]".into(),
                found: weight_in_out.shape.clone(),
            });
        };
        let w = self.initializer(&format!("{name}.weight"), weight_in_out);
        let y = self.node("MatMul", &format!("{name}.matmul"), &[x, &w], vec![]);
        let Some(bias) = bias else {
            return Ok(y);
        };
        if bias.shape != [out_features] {
            return Err(GraphError::WeightShape {
                name: format!("{name}.bias"),
                expected: format!("[{out_features}]"),
                found: bias.shape.clone(),
            });
        }
        let b = self.initializer(&format!("{name}.bias"), bias);
        Ok(self.node("Add", &format!("{name}.add"), &[&y, &b], vec![]))
    }

    /// A normalisation's scale `gamma` and shift `beta` (1-D, the same length) as
    /// initializers `{name}.weight` and `{name}.bias`.
    fn norm_parameters(
        &mut self,
        name: &str,
        gamma: FloatArray,
        beta: FloatArray,
    ) -> Result<(String, String), GraphError> {
        if gamma.shape.len() != 1 || gamma.shape != beta.shape {
            return Err(GraphError::WeightShape {
                name: format!("{name}.bias"),
                expected: format!("{:?} (like the weight)", gamma.shape),
                found: beta.shape.clone(),
            });
        }
        let g = self.initializer(&format!("{name}.weight"), gamma);
        let b = self.initializer(&format!("{name}.bias"), beta);
        Ok((g, b))
    }

    /// ONNX `LayerNormalization` over the last axis with scale `gamma` and shift `beta`.
    pub fn layer_norm(
        &mut self,
        name: &str,
        x: &str,
        gamma: FloatArray,
        beta: FloatArray,
        epsilon: f32,
    ) -> Result<String, GraphError> {
        let (g, b) = self.norm_parameters(name, gamma, beta)?;
        Ok(self.node(
            "LayerNormalization",
            name,
            &[x, &g, &b],
            vec![("axis", Attr::Int(-1)), ("epsilon", Attr::Float(epsilon))],
        ))
    }

    /// An element-wise activation.
    pub fn activation(&mut self, name: &str, x: &str, activation: Activation) -> String {
        match activation {
            Activation::GeluErf => self.gelu(name, x),
            Activation::GeluTanh => self.gelu_tanh(name, x),
            Activation::Relu => self.node("Relu", name, &[x], vec![]),
            Activation::Silu => {
                let s = self.node("Sigmoid", &format!("{name}.sigmoid"), &[x], vec![]);
                self.node("Mul", name, &[x, &s], vec![])
            }
        }
    }

    /// Exact GELU, `(x · (1 + erf(x · 1/√2))) · 0.5`, from `Mul`, `Erf`, `Add`: the pattern
    /// tract fuses into one op, and plain ONNX for every other runtime.
    pub fn gelu(&mut self, name: &str, x: &str) -> String {
        let inv_sqrt2 = self.scalar_f32(&format!("{name}.inv_sqrt2"), 2f32.sqrt().recip());
        let one = self.scalar_f32(&format!("{name}.one"), 1.0);
        let half = self.scalar_f32(&format!("{name}.half"), 0.5);
        let scaled = self.node("Mul", &format!("{name}.scaled"), &[x, &inv_sqrt2], vec![]);
        let erf = self.node("Erf", &format!("{name}.erf"), &[&scaled], vec![]);
        let one_plus = self.node("Add", &format!("{name}.one_plus"), &[&erf, &one], vec![]);
        let x_times = self.node("Mul", &format!("{name}.x_times"), &[x, &one_plus], vec![]);
        self.node("Mul", name, &[&x_times, &half], vec![])
    }

    /// Tanh GELU, `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    pub fn gelu_tanh(&mut self, name: &str, x: &str) -> String {
        let c = self.scalar_f32(
            &format!("{name}.sqrt_2_over_pi"),
            (2.0f64 / std::f64::consts::PI).sqrt() as f32,
        );
        let k = self.scalar_f32(&format!("{name}.k"), 0.044715);
        let one = self.scalar_f32(&format!("{name}.one"), 1.0);
        let half = self.scalar_f32(&format!("{name}.half"), 0.5);
        let x2 = self.node("Mul", &format!("{name}.x2"), &[x, x], vec![]);
        let x3 = self.node("Mul", &format!("{name}.x3"), &[&x2, x], vec![]);
        let kx3 = self.node("Mul", &format!("{name}.kx3"), &[&x3, &k], vec![]);
        let inner = self.node("Add", &format!("{name}.inner"), &[x, &kx3], vec![]);
        let scaled = self.node("Mul", &format!("{name}.scaled"), &[&inner, &c], vec![]);
        let tanh = self.node("Tanh", &format!("{name}.tanh"), &[&scaled], vec![]);
        let one_plus = self.node("Add", &format!("{name}.one_plus"), &[&tanh, &one], vec![]);
        let x_times = self.node("Mul", &format!("{name}.x_times"), &[x, &one_plus], vec![]);
        self.node("Mul", name, &[&x_times, &half], vec![])
    }

    /// `Transpose` with a permutation.
    pub fn transpose(&mut self, name: &str, x: &str, perm: &[i64]) -> String {
        self.node(
            "Transpose",
            name,
            &[x],
            vec![("perm", Attr::Ints(perm.to_vec()))],
        )
    }

    /// `Reshape` to a constant shape (`0` copies the input dimension, `-1` infers one).
    pub fn reshape(&mut self, name: &str, x: &str, shape: &[i64]) -> String {
        let s = self.const_i64(&format!("{name}.shape"), shape);
        self.node("Reshape", name, &[x, &s], vec![])
    }

    /// `Unsqueeze` (opset 13+: the axes are an input).
    pub fn unsqueeze(&mut self, name: &str, x: &str, axes: &[i64]) -> String {
        let a = self.const_i64(&format!("{name}.axes"), axes);
        self.node("Unsqueeze", name, &[x, &a], vec![])
    }

    /// A 1-D convolution over `[batch, channels, time]`: weight `[out, in/groups, k]`,
    /// optional bias `[out]`.
    pub fn conv1d(
        &mut self,
        name: &str,
        x: &str,
        weight: FloatArray,
        bias: Option<FloatArray>,
        geometry: Conv1dGeometry,
    ) -> Result<String, GraphError> {
        let Conv1dGeometry {
            stride,
            pads,
            groups,
        } = geometry;
        let [out_channels, _, kernel] = weight.shape[..] else {
            return Err(GraphError::WeightShape {
                name: format!("{name}.weight"),
                expected: "[out, in/groups, kernel]".into(),
                found: weight.shape.clone(),
            });
        };
        let w = self.initializer(&format!("{name}.weight"), weight);
        let mut inputs = vec![w];
        if let Some(bias) = bias {
            if bias.shape != [out_channels] {
                return Err(GraphError::WeightShape {
                    name: format!("{name}.bias"),
                    expected: format!("[{out_channels}]"),
                    found: bias.shape.clone(),
                });
            }
            inputs.push(self.initializer(&format!("{name}.bias"), bias));
        }
        let mut all: Vec<&str> = vec![x];
        all.extend(inputs.iter().map(String::as_str));
        Ok(self.node(
            "Conv",
            name,
            &all,
            vec![
                ("kernel_shape", Attr::Ints(vec![kernel as i64])),
                ("strides", Attr::Ints(vec![stride as i64])),
                ("pads", Attr::Ints(vec![pads[0] as i64, pads[1] as i64])),
                ("dilations", Attr::Ints(vec![1])),
                ("group", Attr::Int(groups as i64)),
            ],
        ))
    }

    /// A strided, unpadded, dense 1-D convolution over **time-major** `x: [1, T, C]`,
    /// written as one matrix product instead of a `Conv` (weight `[out, C, k]`, optional
    /// bias `[out]`; returns `[1, T', out]`, `T' = ⌊(T − k) / stride⌋ + 1`).
    ///
    /// Why: tract runs a `Conv` as im2col + product on channel-major data, and the
    /// channel-major normalisation and activations around it are its slow broadcasting
    /// paths; as a `MatMul` against a constant weight the product is also what
    /// [`crate::quantize`] turns into int8. How, for `stride ≤ k ≤ 2·stride` (every
    /// HuBERT/wav2vec2 feature-encoder layer): the rows are zero-padded by `stride`, cut
    /// into blocks of `stride` rows (`Reshape` to `[1, blocks, stride·C]`), and window `t`
    /// is block `t` followed by the first `k − stride` rows of block `t + 1` (`Concat`);
    /// the weight is laid out to match (`W'[j·C + c, o] = W[o, c, j]`). The number of
    /// windows comes from the input's shape at run time (`Shape`, integer arithmetic,
    /// `Slice`), so `T` stays symbolic.
    pub fn conv1d_time_major(
        &mut self,
        name: &str,
        x: &str,
        weight: FloatArray,
        bias: Option<FloatArray>,
        stride: usize,
    ) -> Result<String, GraphError> {
        let [out_channels, channels, kernel] = weight.shape[..] else {
            return Err(GraphError::WeightShape {
                name: format!("{name}.weight"),
                expected: "[out, in, kernel]".into(),
                found: weight.shape.clone(),
            });
        };
        if stride == 0 || kernel < stride || kernel > 2 * stride {
            return Err(GraphError::WeightShape {
                name: format!("{name}.weight"),
                expected: format!("a kernel between stride and 2·stride (stride {stride})"),
                found: weight.shape.clone(),
            });
        }
        let mut laid_out = vec![0f32; weight.data.len()];
        for (o, filter) in weight.data.chunks_exact(channels * kernel).enumerate() {
            for (c, taps) in filter.chunks_exact(kernel).enumerate() {
                for (j, &w) in taps.iter().enumerate() {
                    laid_out[(j * channels + c) * out_channels + o] = w;
                }
            }
        }
        let laid_out = FloatArray::new(vec![kernel * channels, out_channels], laid_out)?;

        // windows = (T − k) / stride + 1, as a [1] tensor.
        let length = self.node(
            "Shape",
            &format!("{name}.length"),
            &[x],
            vec![("start", Attr::Int(1)), ("end", Attr::Int(2))],
        );
        let k = self.const_i64(&format!("{name}.kernel"), &[kernel as i64]);
        let s = self.const_i64(&format!("{name}.stride"), &[stride as i64]);
        let one = self.const_i64(&format!("{name}.one"), &[1]);
        let past = self.node("Sub", &format!("{name}.past"), &[&length, &k], vec![]);
        let steps = self.node("Div", &format!("{name}.steps"), &[&past, &s], vec![]);
        let windows = self.node("Add", &format!("{name}.windows"), &[&steps, &one], vec![]);
        let blocks = if kernel > stride {
            self.node("Add", &format!("{name}.blocks"), &[&windows, &one], vec![])
        } else {
            windows.clone()
        };
        let rows = self.node("Mul", &format!("{name}.rows"), &[&blocks, &s], vec![]);

        let pads = self.const_i64(&format!("{name}.pads"), &[0, 0, 0, 0, stride as i64, 0]);
        let padded = self.node("Pad", &format!("{name}.padded"), &[x, &pads], vec![]);
        let zero = self.const_i64(&format!("{name}.zero"), &[0]);
        let time_axis = self.const_i64(&format!("{name}.time_axis"), &[1]);
        let cut = self.node(
            "Slice",
            &format!("{name}.cut"),
            &[&padded, &zero, &rows, &time_axis],
            vec![],
        );
        let blocked = self.reshape(
            &format!("{name}.blocked"),
            &cut,
            &[1, -1, (stride * channels) as i64],
        );
        let windows_rows = if kernel > stride {
            let first = self.node(
                "Slice",
                &format!("{name}.first"),
                &[&blocked, &zero, &windows, &time_axis],
                vec![],
            );
            let starts = self.const_i64(&format!("{name}.next_starts"), &[1, 0]);
            let ends = self.const_i64(
                &format!("{name}.next_ends"),
                &[i64::MAX, ((kernel - stride) * channels) as i64],
            );
            let axes = self.const_i64(&format!("{name}.next_axes"), &[1, 2]);
            let next = self.node(
                "Slice",
                &format!("{name}.next"),
                &[&blocked, &starts, &ends, &axes],
                vec![],
            );
            self.node(
                "Concat",
                &format!("{name}.windows_rows"),
                &[&first, &next],
                vec![("axis", Attr::Int(2))],
            )
        } else {
            blocked
        };
        self.linear_in_out(name, &windows_rows, laid_out, bias)
    }

    /// Per-channel normalisation over time of time-major `x: [1, T, C]` (GroupNorm with one
    /// group per channel, i.e. `InstanceNormalization` on the channel-major layout), with
    /// scale `gamma [C]` and shift `beta [C]`.
    pub fn instance_norm_time_major(
        &mut self,
        name: &str,
        x: &str,
        gamma: FloatArray,
        beta: FloatArray,
        epsilon: f32,
    ) -> Result<String, GraphError> {
        let (g, b) = self.norm_parameters(name, gamma, beta)?;
        let eps = self.scalar_f32(&format!("{name}.epsilon"), epsilon);
        let over_time = || vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(1))];
        // var = E[x²] − E[x]², so that the one full-size pass is `x·scale + shift`, which
        // tract fuses into a single element-wise chain.
        let mean = self.node("ReduceMean", &format!("{name}.mean"), &[x], over_time());
        let square = self.node("Mul", &format!("{name}.square"), &[x, x], vec![]);
        let mean_square = self.node(
            "ReduceMean",
            &format!("{name}.mean_square"),
            &[&square],
            over_time(),
        );
        let mean_2 = self.node("Mul", &format!("{name}.mean_2"), &[&mean, &mean], vec![]);
        let var = self.node(
            "Sub",
            &format!("{name}.var"),
            &[&mean_square, &mean_2],
            vec![],
        );
        let var_eps = self.node("Add", &format!("{name}.var_eps"), &[&var, &eps], vec![]);
        let std = self.node("Sqrt", &format!("{name}.std"), &[&var_eps], vec![]);
        let scale = self.node("Div", &format!("{name}.scale"), &[&g, &std], vec![]);
        let mean_scaled = self.node(
            "Mul",
            &format!("{name}.mean_scaled"),
            &[&mean, &scale],
            vec![],
        );
        let shift = self.node("Sub", &format!("{name}.shift"), &[&b, &mean_scaled], vec![]);
        let scaled = self.node("Mul", &format!("{name}.scaled"), &[x, &scale], vec![]);
        Ok(self.node("Add", name, &[&scaled, &shift], vec![]))
    }

    /// Unmasked multi-head self-attention over `x: [1, T, hidden]`, as HF computes it:
    /// `softmax(q·kᵀ · 1/√head_dim) · v`, heads merged, then the output projection.
    ///
    /// Graph: `Reshape [0,0,heads,dim] → Transpose → MatMul → Mul(scale) → Softmax →
    /// MatMul → Transpose → Reshape [0,0,hidden]`.
    pub fn self_attention(
        &mut self,
        name: &str,
        x: &str,
        weights: AttentionWeights,
    ) -> Result<String, GraphError> {
        self.self_attention_with_bias(name, x, weights, None)
    }

    /// [`GraphBuilder::self_attention`] with an additive bias on the scaled scores before
    /// the softmax (`bias`: a tensor that broadcasts to `[1, heads, T, T]`, e.g. WavLM's
    /// gated relative position bias), as PyTorch's `multi_head_attention_forward` adds a
    /// float `attn_mask`.
    pub fn self_attention_with_bias(
        &mut self,
        name: &str,
        x: &str,
        weights: AttentionWeights,
        bias: Option<&str>,
    ) -> Result<String, GraphError> {
        let hidden = weights.query.weight.shape.first().copied().unwrap_or(0);
        let heads = weights.heads;
        if heads == 0 || hidden % heads != 0 {
            return Err(GraphError::WeightShape {
                name: format!("{name}.query.weight"),
                expected: format!("[hidden, hidden] with hidden divisible by {heads} heads"),
                found: weights.query.weight.shape.clone(),
            });
        }
        let head_dim = hidden / heads;
        let split = [0, 0, heads as i64, head_dim as i64];

        let q = self.linear(&format!("{name}.query"), x, weights.query)?;
        let k = self.linear(&format!("{name}.key"), x, weights.key)?;
        let v = self.linear(&format!("{name}.value"), x, weights.value)?;
        let q = self.reshape(&format!("{name}.query.split"), &q, &split);
        let k = self.reshape(&format!("{name}.key.split"), &k, &split);
        let v = self.reshape(&format!("{name}.value.split"), &v, &split);
        // [1, heads, T, d], [1, heads, d, T], [1, heads, T, d]
        let q = self.transpose(&format!("{name}.query.heads"), &q, &[0, 2, 1, 3]);
        let k = self.transpose(&format!("{name}.key.heads"), &k, &[0, 2, 3, 1]);
        let v = self.transpose(&format!("{name}.value.heads"), &v, &[0, 2, 1, 3]);

        let scores = self.node("MatMul", &format!("{name}.scores"), &[&q, &k], vec![]);
        let scale = self.scalar_f32(
            &format!("{name}.scale"),
            (1.0 / (head_dim as f64).sqrt()) as f32,
        );
        let mut scores = self.node("Mul", &format!("{name}.scaled"), &[&scores, &scale], vec![]);
        if let Some(bias) = bias {
            scores = self.node("Add", &format!("{name}.biased"), &[&scores, bias], vec![]);
        }
        let probs = self.node(
            "Softmax",
            &format!("{name}.softmax"),
            &[&scores],
            vec![("axis", Attr::Int(-1))],
        );
        let context = self.node("MatMul", &format!("{name}.context"), &[&probs, &v], vec![]);
        let context = self.transpose(&format!("{name}.context.merge"), &context, &[0, 2, 1, 3]);
        let context = self.reshape(
            &format!("{name}.context.flat"),
            &context,
            &[0, 0, hidden as i64],
        );
        self.linear(&format!("{name}.output"), &context, weights.output)
    }
}

/// Little-endian bytes of `values` (ONNX `raw_data`).
fn le_bytes(values: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(values.len() * 4);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

fn rename(error: GraphError, name: &str) -> GraphError {
    match error {
        GraphError::DataLength {
            shape,
            expected,
            found,
            ..
        } => GraphError::DataLength {
            name: name.to_string(),
            shape,
            expected,
            found,
        },
        other => other,
    }
}

fn value_info(name: &str, elem: ElemType, dims: &[Dim]) -> pb::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| pb::tensor_shape_proto::Dimension {
            denotation: String::new(),
            value: Some(match d {
                Dim::Fixed(v) => dimension::Value::DimValue(*v),
                Dim::Symbolic(s) => dimension::Value::DimParam(s.clone()),
            }),
        })
        .collect();
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem.data_type() as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
        }),
        doc_string: String::new(),
    }
}

fn attribute(name: &str, value: Attr) -> pb::AttributeProto {
    use pb::attribute_proto::AttributeType;
    let mut a = pb::AttributeProto {
        name: name.to_string(),
        ..Default::default()
    };
    match value {
        Attr::Int(i) => {
            a.r#type = AttributeType::Int as i32;
            a.i = i;
        }
        Attr::Float(f) => {
            a.r#type = AttributeType::Float as i32;
            a.f = f;
        }
        Attr::Ints(v) => {
            a.r#type = AttributeType::Ints as i32;
            a.ints = v;
        }
        Attr::Floats(v) => {
            a.r#type = AttributeType::Floats as i32;
            a.floats = v;
        }
        Attr::Str(s) => {
            a.r#type = AttributeType::String as i32;
            a.s = s.into_bytes();
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::*;

    fn run(bytes: &[u8], input: Tensor) -> TractResult<TVec<TValue>> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])?
            .into_optimized()?
            .into_runnable()?;
        model.run(tvec!(input.into()))
    }

    #[test]
    fn names_are_unique() {
        let mut g = GraphBuilder::new("t");
        assert_eq!(g.fresh_name("a"), "a");
        assert_eq!(g.fresh_name("a"), "a_1");
        assert_eq!(g.fresh_name("a"), "a_2");
    }

    #[test]
    fn transpose_of_a_matrix() -> Result<(), GraphError> {
        let m = FloatArray::new(vec![2, 3], vec![1., 2., 3., 4., 5., 6.])?;
        let t = m.transposed()?;
        assert_eq!(t.shape(), &[3, 2]);
        assert_eq!(t.data(), &[1., 4., 2., 5., 3., 6.]);
        assert!(FloatArray::new(vec![2, 2], vec![1.0]).is_err());
        Ok(())
    }

    /// A linear layer (HF layout) followed by exact GELU, against a direct computation.
    #[test]
    fn linear_then_gelu_runs_in_tract() -> TractResult<()> {
        let mut g = GraphBuilder::new("t");
        let x = g.input(
            "x",
            ElemType::F32,
            &[Dim::Fixed(1), Dim::sym("n"), Dim::Fixed(2)],
        );
        // weight [out=3, in=2]
        let w = vec![0.5, -1.0, 2.0, 0.25, -0.5, 1.5];
        let b = vec![0.1, -0.2, 0.3];
        let y = g.linear(
            "fc",
            &x,
            LinearWeights {
                weight: FloatArray::new(vec![3, 2], w.clone())?,
                bias: Some(FloatArray::new(vec![3], b.clone())?),
            },
        )?;
        let y = g.gelu("act", &y);
        g.output(
            "y",
            &y,
            ElemType::F32,
            &[Dim::Fixed(1), Dim::sym("n"), Dim::Fixed(3)],
        )?;
        g.metadata("k", "v");
        let bytes = g.into_bytes();

        let xs = [1.0f32, -2.0, 0.5, 3.0];
        let out = run(
            &bytes,
            tract_ndarray::arr3(&[[[1.0f32, -2.0], [0.5, 3.0]]]).into_tensor(),
        )?;
        let out = out[0].to_plain_array_view::<f32>()?;
        assert_eq!(out.shape(), &[1, 2, 3]);
        for t in 0..2 {
            for o in 0..3 {
                let z = (w[o * 2] * xs[t * 2] + w[o * 2 + 1] * xs[t * 2 + 1] + b[o]) as f64;
                let gelu = 0.5 * z * (1.0 + erf(z / 2f64.sqrt()));
                assert!((out[[0, t, o]] as f64 - gelu).abs() < 1e-5);
            }
        }
        Ok(())
    }

    /// A value from a fixed pseudo-random sequence in [-1, 1).
    fn noise(i: usize) -> f32 {
        let x = (i as u64)
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// The time-major strided conv equals the convolution's definition for every
    /// feature-encoder geometry, at lengths that leave every remainder of the stride.
    #[test]
    fn time_major_conv_matches_the_definition() -> TractResult<()> {
        for (kernel, stride, channels, out_channels) in [(10, 5, 1, 4), (3, 2, 3, 5), (2, 2, 4, 3)]
        {
            let weight: Vec<f32> = (0..out_channels * channels * kernel).map(noise).collect();
            let bias: Vec<f32> = (0..out_channels).map(|i| noise(1000 + i)).collect();
            let mut g = GraphBuilder::new("t");
            let x = g.input(
                "x",
                ElemType::F32,
                &[Dim::Fixed(1), Dim::sym("n"), Dim::Fixed(channels as i64)],
            );
            let y = g.conv1d_time_major(
                "conv",
                &x,
                FloatArray::new(vec![out_channels, channels, kernel], weight.clone())?,
                Some(FloatArray::new(vec![out_channels], bias.clone())?),
                stride,
            )?;
            g.output(
                "y",
                &y,
                ElemType::F32,
                &[
                    Dim::Fixed(1),
                    Dim::sym("t"),
                    Dim::Fixed(out_channels as i64),
                ],
            )?;
            let bytes = g.into_bytes();
            for length in [kernel, kernel + 1, 4 * stride + kernel - 1, 23, 24] {
                let input: Vec<f32> = (0..length * channels).map(|i| noise(5000 + i)).collect();
                let out = run(&bytes, Tensor::from_shape(&[1, length, channels], &input)?)?;
                let out = out[0].to_plain_array_view::<f32>()?;
                let frames = (length - kernel) / stride + 1;
                assert_eq!(
                    out.shape(),
                    &[1, frames, out_channels],
                    "k {kernel} s {stride} T {length}"
                );
                for t in 0..frames {
                    for o in 0..out_channels {
                        let mut want = bias[o];
                        for c in 0..channels {
                            for j in 0..kernel {
                                want += weight[(o * channels + c) * kernel + j]
                                    * input[(t * stride + j) * channels + c];
                            }
                        }
                        assert!(
                            (out[[0, t, o]] - want).abs() < 1e-5,
                            "k {kernel} s {stride} T {length} t {t} o {o}"
                        );
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn time_major_conv_refuses_what_it_cannot_write() -> Result<(), GraphError> {
        let mut g = GraphBuilder::new("t");
        let w = |k| FloatArray::new(vec![2, 1, k], vec![0.0; 2 * k]);
        assert!(g.conv1d_time_major("c", "x", w(5)?, None, 2).is_err()); // k > 2·stride
        assert!(g.conv1d_time_major("c", "x", w(1)?, None, 2).is_err()); // k < stride
        assert!(g.conv1d_time_major("c", "x", w(2)?, None, 0).is_err());
        Ok(())
    }

    /// Per-channel normalisation over time, against mean and variance computed directly.
    #[test]
    fn time_major_instance_norm_matches_the_definition() -> TractResult<()> {
        let (length, channels) = (37, 3);
        let gamma = vec![1.5f32, -0.5, 2.0];
        let beta = vec![0.1f32, 0.0, -1.0];
        let mut g = GraphBuilder::new("t");
        let x = g.input(
            "x",
            ElemType::F32,
            &[Dim::Fixed(1), Dim::sym("n"), Dim::Fixed(3)],
        );
        let y = g.instance_norm_time_major(
            "norm",
            &x,
            FloatArray::new(vec![3], gamma.clone())?,
            FloatArray::new(vec![3], beta.clone())?,
            1e-5,
        )?;
        g.output(
            "y",
            &y,
            ElemType::F32,
            &[Dim::Fixed(1), Dim::sym("n"), Dim::Fixed(3)],
        )?;
        // Channel 2 has an offset of 5: the one-pass variance must still hold there.
        let input: Vec<f32> = (0..length * channels)
            .map(|i| noise(i) + if i % channels == 2 { 5.0 } else { 0.0 })
            .collect();
        let out = run(
            &g.into_bytes(),
            Tensor::from_shape(&[1, length, channels], &input)?,
        )?;
        let out = out[0].to_plain_array_view::<f32>()?;
        for c in 0..channels {
            let column: Vec<f64> = (0..length)
                .map(|t| input[t * channels + c] as f64)
                .collect();
            let mean = column.iter().sum::<f64>() / length as f64;
            let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / length as f64;
            for (t, v) in column.iter().enumerate() {
                let want = (v - mean) / (var + 1e-5).sqrt() * gamma[c] as f64 + beta[c] as f64;
                assert!((out[[0, t, c]] as f64 - want).abs() < 1e-4, "t {t} c {c}");
            }
        }
        Ok(())
    }

    fn erf(x: f64) -> f64 {
        // Abramowitz–Stegun 7.1.26 is too coarse here; a series is plenty for |x| < 4.
        let mut sum = 0.0;
        let mut term = x;
        for n in 0..80 {
            sum += term / (2 * n + 1) as f64;
            term *= -x * x / (n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }
}
