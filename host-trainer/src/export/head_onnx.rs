//! Trained heads (burn) to ONNX graphs that tract runs on the board.
//!
//! One graph per head, for batch 1 and one unpadded sequence (the board classifies one
//! utterance at a time). Every parameter is read out of the burn model and written as
//! an initializer with [`GraphBuilder`]; nothing is traced.
//!
//! ```text
//! speech_features [1, frames, H]  or  [1, L, frames, H]
//!   │ (L > 1)  Mul by softmax(mix logits) [1, L, 1, 1] (a constant) ─ ReduceSum axis 1
//!   ▼
//! [1, T, H] ─ Transpose ─► [1, H, T] ─ Conv (k, pads k/2 both sides) ─ Relu
//!   ─ MaxPool (2, stride 2, floor) ─► [1, C, T'] ─ Transpose ─► [T', 1, C]
//!   ─ LSTM direction="bidirectional" (0: burn's forward Lstm, 1: its backward Lstm)
//!   ─► Y [T', 2, 1, h] ─ Transpose ─► [1, T', 2, h] ─ Reshape ─► S [1, T', 2h]
//!   ─ ReduceMean over time ─► s [1, 2h]                      (forward half first)
//!
//! speech / text model:   s ─ MatMul + Add ─► logits [1, 7]
//!
//! fusion model (text_features goes through its own branch the same way ─► K [1, Tt', 2h]):
//!   q = S·Wq + bq, k = K·Wk + bk, v = K·Wv + bv
//!   scores = MatMul(q, Transpose(k)) · 1/√attention_dim ─ Softmax (last axis)
//!   ─ MatMul v ─ MatMul + Add (output projection) ─► [1, Ts', 2h] ─ ReduceMean over time ─► a
//!   fused = s + tanh(g) · a          (tanh(g) a constant)
//!   fused ─ MatMul + Add ─► logits [1, 7]
//! ```
//!
//! Why the graph looks like this:
//! - **No `direction="reverse"`.** tract runs a reverse-only ONNX LSTM forward. burn's
//!   pair of `Lstm`s ([`MaskedBiLstm`]) is one `direction="bidirectional"` LSTM, whose
//!   second direction reads the sequence reversed and writes its outputs back in time
//!   order — exactly what the pair computes on an unpadded sequence.
//! - **Gate order i, o, f, c.** burn keeps one `GateController` per gate, each a pair
//!   of `Linear`s (`[in, out]` weights); ONNX stacks them in the order input, output,
//!   forget, cell: W `[2, 4h, C]`, R `[2, 4h, h]`, B `[2, 8h]` (input-transform biases,
//!   then hidden-transform biases).
//! - **No masks.** With one unpadded sequence every frame and token is real, so the
//!   masked means are plain means and the attention needs no key mask.
//! - **Constants folded on the host.** The layer-mix weights (a softmax of learned
//!   logits) and the fusion gate `tanh(g)` do not depend on the input.
//!
//! Callers give at least [`MIN_FRAMES`] frames (and tokens), padding shorter sequences
//! with zero frames as the training batches do; the pooled sequence is then never empty.
//!
//! Metadata (`metadata_props`): [`KIND_METADATA`] (`speech`, `text`, `fusion`),
//! [`CLASSES_METADATA`] (the TESS codes of the seven classes in [`emotion_core::Emotion`]
//! order, comma-separated), `min_frames`, and per branch (`speech_` / `text_` prefix)
//! `layers`, `dim`, `conv_channels`, `conv_kernel`, `lstm_hidden` and, with a layer mix,
//! `layer_weights`; the fusion model adds `attention_dim` and `gate` (= tanh(g)).
//!
//! The **keyword spotter** ([`export_keyword_spotter`]) is the speech model's graph with
//! one logit per output: `speech_features` in, `logits [1, N]` out, [`KIND_METADATA`] =
//! [`KEYWORD_KIND`] and [`WORDS_METADATA`] = the N output names in order,
//! comma-separated, instead of the class codes: the vocabulary words, then
//! [`NONE_CLASS`] last for an open-set spotter (see [`emotion_core::keyword_spotter`]).

use burn::nn::activation::Activation;
use burn::nn::conv::Conv1d;
use burn::nn::pool::MaxPool1d;
use burn::nn::{GateController, Linear, Lstm, PaddingConfig1d};
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

use crate::train::heads::branch::Branch;
use crate::train::heads::classifier::BranchClassifier;
use crate::train::heads::fusion::{CrossAttention, FusionHead};
use crate::train::heads::recurrent::MaskedBiLstm;
use crate::train::heads::{CLASSES, EmotionHead, MIN_FRAMES};
use onnx_build::graph::{
    Attr, Conv1dGeometry, Dim, ElemType, FloatArray, GraphBuilder, GraphError,
};

// The names the bundle loader reads, from the contract in `emotion-core` (one source for both).
pub use emotion_core::head_graph::{KIND_METADATA, LOGITS_OUTPUT, SPEECH_INPUT, TEXT_INPUT};
pub use emotion_core::keyword_spotter::{KEYWORD_KIND, NONE_CLASS, WORDS_METADATA};

/// Symbolic dimension of the speech input's time axis.
pub const SPEECH_FRAMES: &str = "frames";
/// Symbolic dimension of the text input's token axis.
pub const TEXT_TOKENS: &str = "tokens";
/// Metadata key listing the class codes, comma-separated, in output order.
pub const CLASSES_METADATA: &str = "classes";

/// A head that cannot be written as ONNX.
#[derive(Debug, thiserror::Error)]
pub enum HeadExportError {
    /// A parameter could not be read back from the burn model as f32 values.
    #[error("could not read parameter `{name}` as f32: {detail}")]
    Parameter {
        /// Where the parameter sits in the model.
        name: String,
        /// burn's explanation.
        detail: String,
    },
    /// The model uses a setting the exporter does not translate (it would compute
    /// something else on the board than in training).
    #[error("`{name}` cannot be exported: {why}")]
    Unsupported {
        /// The module concerned.
        name: String,
        /// The setting, and what the exporter supports instead.
        why: String,
    },
    /// Keyword spotter words that cannot label its outputs.
    #[error("keyword spotter words: {0}")]
    Words(String),
    /// Weights whose shapes do not fit together.
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// Writes `head` as one ONNX graph (see the module documentation for the contract).
pub fn export_head(head: &EmotionHead) -> Result<Vec<u8>, HeadExportError> {
    let kind = head.kind();
    let mut g = GraphBuilder::new(&format!("{kind}_head"));
    g.set_doc(&format!(
        "{kind} emotion head exported by host-trainer: batch 1, one unpadded sequence"
    ));
    g.metadata(KIND_METADATA, kind.name());
    let classes: Vec<&str> = emotion_core::Emotion::ALL
        .iter()
        .map(|e| e.code())
        .collect();
    g.metadata(CLASSES_METADATA, &classes.join(","));
    g.metadata("min_frames", &MIN_FRAMES.to_string());

    let logits = match head {
        EmotionHead::Speech(model) => {
            let s = branch(&mut g, &model.branch, Side::SPEECH)?;
            classifier(&mut g, &s.pooled, &model.output, CLASSES)?
        }
        EmotionHead::Text(model) => {
            let t = branch(&mut g, &model.branch, Side::TEXT)?;
            classifier(&mut g, &t.pooled, &model.output, CLASSES)?
        }
        EmotionHead::Fusion(model) => fusion(&mut g, model)?,
    };
    finish(g, &logits, CLASSES)
}

/// Writes a keyword spotter: a speech model whose outputs are `words`, in order (see the
/// module documentation; [`NONE_CLASS`] may only be last). The words (at least two
/// besides it) must be distinct, non-empty, free of commas and surrounding spaces, and
/// as many as the model's outputs.
pub fn export_keyword_spotter(
    model: &BranchClassifier,
    words: &[String],
) -> Result<Vec<u8>, HeadExportError> {
    check_words(words)?;
    let mut g = GraphBuilder::new("keyword_spotter");
    g.set_doc(
        "keyword spotter exported by host-trainer: speech features to one logit per vocabulary word (then <none>, not a keyword, for an open-set spotter); batch 1, one unpadded sequence",
    );
    g.metadata(KIND_METADATA, KEYWORD_KIND);
    g.metadata(WORDS_METADATA, &words.join(","));
    g.metadata("min_frames", &MIN_FRAMES.to_string());
    let s = branch(&mut g, &model.branch, Side::SPEECH)?;
    let logits = classifier(&mut g, &s.pooled, &model.output, words.len())?;
    finish(g, &logits, words.len())
}

/// Words that survive being joined with commas and split again, each once.
fn check_words(words: &[String]) -> Result<(), HeadExportError> {
    let vocabulary = match words.split_last() {
        Some((last, rest)) if last == NONE_CLASS => rest,
        _ => words,
    };
    if vocabulary.iter().any(|w| w == NONE_CLASS) {
        return Err(HeadExportError::Words(format!(
            "`{NONE_CLASS}` can only be the last output"
        )));
    }
    if vocabulary.len() < 2 {
        return Err(HeadExportError::Words(format!(
            "{} word(s): a spotter needs at least two",
            vocabulary.len()
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for word in words {
        if word.is_empty() || word.contains(',') || word.trim() != word {
            return Err(HeadExportError::Words(format!(
                "`{word}` cannot be listed (empty, a comma, or surrounding spaces)"
            )));
        }
        if !seen.insert(word.as_str()) {
            return Err(HeadExportError::Words(format!("`{word}` is listed twice")));
        }
    }
    Ok(())
}

/// Declares the `logits [1, classes]` output and encodes the graph.
fn finish(mut g: GraphBuilder, logits: &str, classes: usize) -> Result<Vec<u8>, HeadExportError> {
    g.output(
        LOGITS_OUTPUT,
        logits,
        ElemType::F32,
        &[Dim::Fixed(1), Dim::Fixed(classes as i64)],
    )?;
    Ok(g.into_bytes())
}

/// Which input a branch reads.
#[derive(Debug, Clone, Copy)]
struct Side {
    /// Graph input name.
    input: &'static str,
    /// Symbolic time dimension.
    time: &'static str,
    /// Prefix of node, initializer and metadata names.
    prefix: &'static str,
}

impl Side {
    const SPEECH: Side = Side {
        input: SPEECH_INPUT,
        time: SPEECH_FRAMES,
        prefix: "speech",
    };
    const TEXT: Side = Side {
        input: TEXT_INPUT,
        time: TEXT_TOKENS,
        prefix: "text",
    };
}

/// The two tensors a branch gives.
struct BranchTensors {
    /// `[1, T', 2h]` BiLSTM states.
    sequence: String,
    /// `[1, 2h]` their mean.
    pooled: String,
}

/// Declares the branch's input and writes layer mix → Conv → Relu → MaxPool → BiLSTM →
/// mean.
fn branch(
    g: &mut GraphBuilder,
    branch: &Branch,
    side: Side,
) -> Result<BranchTensors, HeadExportError> {
    let p = side.prefix;
    let (layers, dim) = (branch.layers, branch.input_dim);
    let time = Dim::sym(side.time);
    let mut dims = vec![Dim::Fixed(1)];
    if layers > 1 {
        dims.push(Dim::Fixed(layers as i64));
    }
    dims.extend([time, Dim::Fixed(dim as i64)]);
    let input = g.input(side.input, ElemType::F32, &dims);
    g.metadata(&format!("{p}_layers"), &layers.to_string());
    g.metadata(&format!("{p}_dim"), &dim.to_string());

    // [1, T, H]
    let x = match (&branch.mix, layers) {
        (None, 1) => input,
        (Some(mix), layers) if layers > 1 => {
            let name = format!("{p}.mix");
            let weights = read(&format!("{name}.logits"), softmax(mix.logits.val(), 0))?;
            if weights.shape() != [layers] {
                return Err(GraphError::WeightShape {
                    name: format!("{name}.logits"),
                    expected: format!("[{layers}]"),
                    found: weights.shape().to_vec(),
                }
                .into());
            }
            let listed: Vec<String> = weights.data().iter().map(|w| w.to_string()).collect();
            g.metadata(&format!("{p}_layer_weights"), &listed.join(","));
            let w = g.initializer_f32(
                &format!("{name}.weights"),
                &[1, layers, 1, 1],
                weights.into_data(),
            )?;
            let weighted = g.node("Mul", &format!("{name}.weighted"), &[&input, &w], vec![]);
            let axes = g.const_i64(&format!("{name}.axes"), &[1]);
            g.node(
                "ReduceSum",
                &name,
                &[&weighted, &axes],
                vec![("keepdims", Attr::Int(0))],
            )
        }
        (mix, layers) => {
            return Err(HeadExportError::Unsupported {
                name: format!("{p} branch"),
                why: format!(
                    "{layers} layers {} a layer mix: a mix is needed exactly when there are several layers",
                    if mix.is_some() { "with" } else { "without" }
                ),
            });
        }
    };

    let x = g.transpose(&format!("{p}.channels_first"), &x, &[0, 2, 1]);
    let x = conv(g, &format!("{p}.conv"), &x, &branch.conv)?;
    let x = g.node("Relu", &format!("{p}.relu"), &[&x], vec![]);
    let x = max_pool(g, &format!("{p}.pool"), &x, &branch.pool)?;
    // [1, C, T'] → [T', 1, C]: ONNX LSTM wants time first.
    let x = g.transpose(&format!("{p}.time_first"), &x, &[2, 0, 1]);
    let (sequence, hidden) = bilstm(g, &format!("{p}.lstm"), &x, &branch.lstm)?;
    let pooled = mean_over_time(g, &format!("{p}.mean"), &sequence);
    g.metadata(&format!("{p}_lstm_hidden"), &hidden.to_string());
    g.metadata(
        &format!("{p}_conv_channels"),
        &branch.conv.weight.dims()[0].to_string(),
    );
    g.metadata(
        &format!("{p}_conv_kernel"),
        &branch.conv.kernel_size.to_string(),
    );
    Ok(BranchTensors { sequence, pooled })
}

/// The fusion model: both branches, speech-queries-text attention, gated residual,
/// classifier.
fn fusion(g: &mut GraphBuilder, model: &FusionHead) -> Result<String, HeadExportError> {
    let s = branch(g, &model.speech, Side::SPEECH)?;
    let t = branch(g, &model.text, Side::TEXT)?;
    let attended = attention(g, "attention", &s.sequence, &t.sequence, &model.attention)?;
    let attended = mean_over_time(g, "attention.mean", &attended);
    let gate = read("gate", model.gate.val().tanh())?;
    let &[gate] = gate.data() else {
        return Err(GraphError::WeightShape {
            name: "gate".into(),
            expected: "[1]".into(),
            found: gate.shape().to_vec(),
        }
        .into());
    };
    g.metadata("gate", &gate.to_string());
    g.metadata("attention_dim", &model.attention.attention_dim.to_string());
    let gate = g.scalar_f32("gate.tanh", gate);
    let gated = g.node("Mul", "gated", &[&attended, &gate], vec![]);
    let fused = g.node("Add", "fused", &[&s.pooled, &gated], vec![]);
    classifier(g, &fused, &model.classifier, CLASSES)
}

/// Single-head scaled dot-product attention, `queries [1, Tq, Dq]` over
/// `keys [1, Tk, Dk]` → `[1, Tq, Dq]`, unmasked.
fn attention(
    g: &mut GraphBuilder,
    name: &str,
    queries: &str,
    keys: &str,
    attention: &CrossAttention,
) -> Result<String, HeadExportError> {
    let q = linear(g, &format!("{name}.query"), queries, &attention.query)?;
    let k = linear(g, &format!("{name}.key"), keys, &attention.key)?;
    let v = linear(g, &format!("{name}.value"), keys, &attention.value)?;
    let k = g.transpose(&format!("{name}.key.transposed"), &k, &[0, 2, 1]);
    let scores = g.node("MatMul", &format!("{name}.scores"), &[&q, &k], vec![]);
    // As burn computes it: the f64 scale rounded to f32.
    let scale = (1.0 / (attention.attention_dim as f64).sqrt()) as f32;
    let scale = g.scalar_f32(&format!("{name}.scale"), scale);
    let scores = g.node("Mul", &format!("{name}.scaled"), &[&scores, &scale], vec![]);
    let weights = g.node(
        "Softmax",
        &format!("{name}.softmax"),
        &[&scores],
        vec![("axis", Attr::Int(-1))],
    );
    let context = g.node(
        "MatMul",
        &format!("{name}.context"),
        &[&weights, &v],
        vec![],
    );
    linear(g, &format!("{name}.output"), &context, &attention.output)
}

/// A burn `Conv1d` over `[1, C_in, T]` (weights `[out, in, k]` as ONNX has them).
fn conv(
    g: &mut GraphBuilder,
    name: &str,
    x: &str,
    conv: &Conv1d,
) -> Result<String, HeadExportError> {
    let unsupported = |why: String| HeadExportError::Unsupported {
        name: name.to_string(),
        why,
    };
    if conv.dilation != 1 {
        return Err(unsupported(format!(
            "dilation {} (only 1 is exported)",
            conv.dilation
        )));
    }
    let pads = match conv.padding {
        PaddingConfig1d::Explicit(left, right) => [left, right],
        PaddingConfig1d::Valid => [0, 0],
        PaddingConfig1d::Same => {
            return Err(unsupported(
                "'Same' padding (the heads use Explicit(k/2, k/2))".into(),
            ));
        }
    };
    let weight = read(&format!("{name}.weight"), conv.weight.val())?;
    let bias = match &conv.bias {
        Some(b) => Some(read(&format!("{name}.bias"), b.val())?),
        None => None,
    };
    let geometry = Conv1dGeometry {
        stride: conv.stride,
        pads,
        groups: conv.groups,
    };
    Ok(g.conv1d(name, x, weight, bias, geometry)?)
}

/// A burn `MaxPool1d` without padding or dilation, rounding down (ONNX's default).
fn max_pool(
    g: &mut GraphBuilder,
    name: &str,
    x: &str,
    pool: &MaxPool1d,
) -> Result<String, HeadExportError> {
    let unpadded = matches!(
        pool.padding,
        PaddingConfig1d::Valid | PaddingConfig1d::Explicit(0, 0)
    );
    if !unpadded || pool.dilation != 1 || pool.ceil_mode {
        return Err(HeadExportError::Unsupported {
            name: name.to_string(),
            why: format!(
                "padding {:?}, dilation {}, ceil_mode {} (only unpadded, undilated, floor pooling is exported)",
                pool.padding, pool.dilation, pool.ceil_mode
            ),
        });
    }
    Ok(g.node(
        "MaxPool",
        name,
        &[x],
        vec![
            ("kernel_shape", Attr::Ints(vec![pool.kernel_size as i64])),
            ("strides", Attr::Ints(vec![pool.stride as i64])),
        ],
    ))
}

/// The [`MaskedBiLstm`] over `x: [T, 1, C]` as one bidirectional ONNX LSTM; returns the
/// states `[1, T, 2h]` (forward half first) and `h`.
fn bilstm(
    g: &mut GraphBuilder,
    name: &str,
    x: &str,
    lstm: &MaskedBiLstm,
) -> Result<(String, usize), HeadExportError> {
    let hidden = lstm.d_hidden;
    let forward = lstm_direction(&format!("{name}.forward"), &lstm.forward, hidden)?;
    let backward = lstm_direction(&format!("{name}.backward"), &lstm.backward, hidden)?;
    if forward.input != backward.input {
        return Err(GraphError::WeightShape {
            name: format!("{name}.backward"),
            expected: format!("input width {} like the forward LSTM", forward.input),
            found: vec![backward.input],
        }
        .into());
    }
    let input = forward.input;
    let w = [forward.w, backward.w].concat();
    let r = [forward.r, backward.r].concat();
    let b = [forward.wb, forward.rb, backward.wb, backward.rb].concat();
    let w = g.initializer_f32(&format!("{name}.W"), &[2, 4 * hidden, input], w)?;
    let r = g.initializer_f32(&format!("{name}.R"), &[2, 4 * hidden, hidden], r)?;
    let b = g.initializer_f32(&format!("{name}.B"), &[2, 8 * hidden], b)?;
    // Y: [T, 2, 1, h]
    let y = g.node(
        "LSTM",
        name,
        &[x, &w, &r, &b],
        vec![
            ("hidden_size", Attr::Int(hidden as i64)),
            ("direction", Attr::Str("bidirectional".into())),
        ],
    );
    let y = g.transpose(&format!("{name}.batch_first"), &y, &[2, 0, 1, 3]);
    let y = g.reshape(&format!("{name}.concat"), &y, &[1, -1, 2 * hidden as i64]);
    Ok((y, hidden))
}

/// One direction of an ONNX LSTM, gates stacked i, o, f, c.
#[derive(Debug, Default)]
struct DirectionWeights {
    /// Input width C.
    input: usize,
    /// `[4h, C]` row-major.
    w: Vec<f32>,
    /// `[4h, h]` row-major.
    r: Vec<f32>,
    /// `[4h]` input-transform biases.
    wb: Vec<f32>,
    /// `[4h]` hidden-transform biases.
    rb: Vec<f32>,
}

/// Reads one burn `Lstm` (checking it computes the standard ONNX LSTM cell).
fn lstm_direction(
    name: &str,
    lstm: &Lstm,
    hidden: usize,
) -> Result<DirectionWeights, HeadExportError> {
    let unsupported = |why: &str| HeadExportError::Unsupported {
        name: name.to_string(),
        why: why.to_string(),
    };
    if lstm.d_hidden != hidden {
        return Err(unsupported(
            "its hidden size differs from the other direction's",
        ));
    }
    if lstm.reverse || !lstm.batch_first {
        return Err(unsupported(
            "`reverse` or time-first input (the exporter expects a plain batch-first forward Lstm)",
        ));
    }
    if lstm.clip.is_some() {
        return Err(unsupported("cell clipping (burn's `clip`)"));
    }
    let standard = matches!(lstm.gate_activation, Activation::Sigmoid(_))
        && matches!(lstm.cell_activation, Activation::Tanh(_))
        && matches!(lstm.hidden_activation, Activation::Tanh(_));
    if !standard {
        return Err(unsupported(
            "activations other than sigmoid (gates), tanh (cell, hidden)",
        ));
    }
    let forget = match (&lstm.forget_gate, lstm.input_forget) {
        (Some(forget), false) => forget,
        _ => return Err(unsupported("a coupled input-forget gate (`input_forget`)")),
    };
    let input = lstm.input_gate.input_transform.weight.dims()[0];
    let mut out = DirectionWeights {
        input,
        ..DirectionWeights::default()
    };
    let gates: [(&str, &GateController); 4] = [
        ("input_gate", &lstm.input_gate),
        ("output_gate", &lstm.output_gate),
        ("forget_gate", forget),
        ("cell_gate", &lstm.cell_gate),
    ];
    for (gate_name, gate) in gates {
        let gate_name = format!("{name}.{gate_name}");
        let (wi, bi) = linear_params(
            &format!("{gate_name}.input_transform"),
            &gate.input_transform,
            [input, hidden],
        )?;
        let (wh, bh) = linear_params(
            &format!("{gate_name}.hidden_transform"),
            &gate.hidden_transform,
            [hidden, hidden],
        )?;
        // burn's [in, out] transposed is ONNX's [out, in]: row j is unit j's weights.
        out.w.extend(wi.transposed()?.into_data());
        out.r.extend(wh.transposed()?.into_data());
        out.wb
            .extend(bi.map_or_else(|| vec![0.0; hidden], FloatArray::into_data));
        out.rb
            .extend(bh.map_or_else(|| vec![0.0; hidden], FloatArray::into_data));
    }
    Ok(out)
}

/// The weight (`[in, out]`, checked against `shape`) and bias of a burn `Linear`.
fn linear_params(
    name: &str,
    layer: &Linear,
    shape: [usize; 2],
) -> Result<(FloatArray, Option<FloatArray>), HeadExportError> {
    let weight = read(&format!("{name}.weight"), layer.weight.val())?;
    let bias = match &layer.bias {
        Some(b) => Some(read(&format!("{name}.bias"), b.val())?),
        None => None,
    };
    let bias_ok = bias.as_ref().is_none_or(|b| b.shape() == [shape[1]]);
    if weight.shape() != shape || !bias_ok {
        return Err(GraphError::WeightShape {
            name: name.to_string(),
            expected: format!("weight {shape:?} and bias [{}]", shape[1]),
            found: weight.shape().to_vec(),
        }
        .into());
    }
    Ok((weight, bias))
}

/// The last layer, to the logits (checked: as many as the classes the metadata names,
/// the seven emotions or the spotter's words).
fn classifier(
    g: &mut GraphBuilder,
    x: &str,
    layer: &Linear,
    expected: usize,
) -> Result<String, HeadExportError> {
    let [_, classes] = layer.weight.dims();
    if classes != expected {
        return Err(HeadExportError::Unsupported {
            name: "classifier".into(),
            why: format!("{classes} outputs, but the graph's metadata names {expected} classes"),
        });
    }
    linear(g, "classifier", x, layer)
}

/// `x · W + b` for a burn `Linear`.
fn linear(
    g: &mut GraphBuilder,
    name: &str,
    x: &str,
    layer: &Linear,
) -> Result<String, HeadExportError> {
    let weight = read(&format!("{name}.weight"), layer.weight.val())?;
    let bias = match &layer.bias {
        Some(b) => Some(read(&format!("{name}.bias"), b.val())?),
        None => None,
    };
    Ok(g.linear_in_out(name, x, weight, bias)?)
}

/// `[1, T, C]` → `[1, C]`: the mean over time (every frame is real here).
fn mean_over_time(g: &mut GraphBuilder, name: &str, x: &str) -> String {
    g.node(
        "ReduceMean",
        name,
        &[x],
        vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(0))],
    )
}

/// The values and shape of a burn tensor, as f32.
fn read<const D: usize>(name: &str, tensor: Tensor<D>) -> Result<FloatArray, HeadExportError> {
    let shape = tensor.dims().to_vec();
    let data =
        tensor
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| HeadExportError::Parameter {
                name: name.to_string(),
                detail: format!("{e:?}"),
            })?;
    Ok(FloatArray::new(shape, data)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::cache::Features;
    use crate::train::heads::branch::LayerMix;
    use crate::train::heads::classifier::BranchClassifier;
    use crate::train::heads::test_support::{max_abs_diff, random_features, tiny, values};
    use crate::train::heads::{FeatureLayout, HeadConfig, HeadInput, ModelKind, SequenceBatch};
    use burn::module::Param;
    use burn::tensor::{Device, TensorData};
    use emotion_core::scores::argmax;
    use prost::Message;
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::SeedableRng;
    use tract_onnx::pb;
    use tract_run::{load, tract_logits};

    const TOLERANCE: f32 = 1e-4;
    const SPEECH_DIM: usize = 6;
    const TEXT_DIM: usize = 4;

    fn device() -> Device {
        Device::flex()
    }

    /// Layer-mix logits far from uniform, so a wrong weighting shows.
    fn skewed(branch: Branch) -> Branch {
        let mix = branch.mix.map(|_| {
            let logits: Vec<f32> = [1.1f32, -0.7, 0.4, 0.0, -1.3]
                .into_iter()
                .take(branch.layers)
                .collect();
            LayerMix {
                logits: Param::from_tensor(Tensor::from_data(
                    TensorData::new(logits, [branch.layers]),
                    &device(),
                )),
            }
        });
        Branch { mix, ..branch }
    }

    /// A small seeded head: mix logits skewed, the fusion gate opened, its attention
    /// sharpened.
    fn head(
        config: &HeadConfig,
        kind: ModelKind,
        speech_layers: usize,
        text_layers: usize,
        seed: u64,
    ) -> EmotionHead {
        let speech = FeatureLayout {
            layers: speech_layers,
            dim: SPEECH_DIM,
        };
        let text = FeatureLayout {
            layers: text_layers,
            dim: TEXT_DIM,
        };
        let classifier = |c: BranchClassifier| BranchClassifier {
            branch: skewed(c.branch),
            ..c
        };
        match config
            .model(kind, speech, text)
            .init_seeded(seed, &device())
        {
            EmotionHead::Speech(c) => EmotionHead::Speech(classifier(c)),
            EmotionHead::Text(c) => EmotionHead::Text(classifier(c)),
            EmotionHead::Fusion(f) => EmotionHead::Fusion(FusionHead {
                speech: skewed(f.speech),
                text: skewed(f.text),
                gate: Param::from_tensor(Tensor::from_data(
                    TensorData::new(vec![0.9f32], [1]),
                    &device(),
                )),
                attention: sharpened(f.attention),
                ..f
            }),
        }
    }

    /// Queries scaled up so that the attention weights are far from uniform (with the
    /// small initial weights they are nearly uniform, and the score scale hardly shows).
    fn sharpened(attention: CrossAttention) -> CrossAttention {
        let query = Linear {
            weight: Param::from_tensor(attention.query.weight.val().mul_scalar(6.0)),
            ..attention.query
        };
        CrossAttention { query, ..attention }
    }

    fn burn_logits(
        head: &EmotionHead,
        speech: Option<&Features>,
        text: Option<&Features>,
    ) -> Vec<f32> {
        let batch = |f: &Features| SequenceBatch::from_features(&[f], &device()).unwrap();
        let input = HeadInput {
            speech: speech.map(batch),
            text: text.map(batch),
        };
        values(head.forward(&input, None).unwrap())
    }

    /// tract, kept apart: its prelude would shadow burn's `Tensor`.
    mod tract_run {
        use crate::features::cache::Features;
        use tract_onnx::prelude::*;

        /// A loaded, optimised graph.
        pub type Plan = std::sync::Arc<TypedSimplePlan>;

        pub fn load(bytes: &[u8]) -> Plan {
            tract_onnx::onnx()
                .model_for_read(&mut &bytes[..])
                .unwrap()
                .into_optimized()
                .unwrap()
                .into_runnable()
                .unwrap()
        }

        fn batch_of_one(f: &Features) -> Tensor {
            let mut shape = vec![1];
            shape.extend(&f.shape);
            tract_ndarray::ArrayD::from_shape_vec(shape, f.data.clone())
                .unwrap()
                .into_tensor()
        }

        /// Runs the graph on the inputs in graph order (speech first).
        pub fn tract_logits(model: &Plan, inputs: &[&Features]) -> Vec<f32> {
            let inputs = inputs.iter().map(|f| batch_of_one(f).into()).collect();
            let out = model.run(inputs).unwrap();
            let view = out[0].to_plain_array_view::<f32>().unwrap();
            assert_eq!(view.ndim(), 2);
            assert_eq!(view.shape()[0], 1);
            view.iter().copied().collect()
        }
    }

    /// Features reversed in time (every layer).
    fn reversed(f: &Features) -> Features {
        let dim = *f.shape.last().unwrap();
        let frames = f.shape[f.shape.len() - 2];
        let data = f
            .data
            .chunks_exact(frames * dim)
            .flat_map(|layer| {
                layer
                    .chunks_exact(dim)
                    .rev()
                    .flatten()
                    .copied()
                    .collect::<Vec<_>>()
            })
            .collect();
        Features { data, ..f.clone() }
    }

    /// Compares burn and the exported graph on each (speech, text) pair, and on the
    /// time-reversed inputs; returns the largest logit difference.
    fn assert_parity(head: &EmotionHead, pairs: &[(Option<Features>, Option<Features>)]) -> f32 {
        assert_graph_parity(head, &export_head(head).unwrap(), pairs)
    }

    /// [`assert_parity`] for a graph exported from `head` by any exporter.
    fn assert_graph_parity(
        head: &EmotionHead,
        bytes: &[u8],
        pairs: &[(Option<Features>, Option<Features>)],
    ) -> f32 {
        let model = load(bytes);
        let mut worst = 0f32;
        for (speech, text) in pairs {
            for reverse in [false, true] {
                let flip = |f: &Option<Features>| {
                    f.as_ref()
                        .map(|f| if reverse { reversed(f) } else { f.clone() })
                };
                let (speech, text) = (flip(speech), flip(text));
                let expected = burn_logits(head, speech.as_ref(), text.as_ref());
                let inputs: Vec<&Features> = speech.iter().chain(text.iter()).collect();
                let found = tract_logits(&model, &inputs);
                let diff = max_abs_diff(&expected, &found);
                let shapes: Vec<_> = inputs.iter().map(|f| f.shape.clone()).collect();
                println!(
                    "{} {shapes:?} reversed={reverse}: max |Δlogit| = {diff:.2e}",
                    head.kind()
                );
                assert!(diff <= TOLERANCE, "{shapes:?}: {diff} > {TOLERANCE}");
                assert_eq!(argmax(&expected).0, argmax(&found).0, "{shapes:?}");
                worst = worst.max(diff);
            }
        }
        println!("{}: worst max |Δlogit| = {worst:.2e}", head.kind());
        worst
    }

    fn sequences(seed: u64, layers: usize, lengths: &[usize], dim: usize) -> Vec<Features> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        lengths
            .iter()
            .map(|&t| random_features(&mut rng, layers, t, dim))
            .collect()
    }

    #[test]
    fn speech_export_matches_burn() {
        let head = head(&tiny(), ModelKind::Speech, 1, 1, 41);
        let pairs: Vec<_> = sequences(42, 1, &[2, 3, 8, 17, 40, 41], SPEECH_DIM)
            .into_iter()
            .map(|s| (Some(s), None))
            .collect();
        assert_parity(&head, &pairs);
    }

    #[test]
    fn text_export_matches_burn() {
        let head = head(&tiny(), ModelKind::Text, 1, 1, 43);
        let pairs: Vec<_> = sequences(44, 1, &[2, 3, 6, 13], TEXT_DIM)
            .into_iter()
            .map(|t| (None, Some(t)))
            .collect();
        assert_parity(&head, &pairs);
    }

    #[test]
    fn layer_mixing_export_matches_burn() {
        let config = HeadConfig {
            conv_kernel: 5,
            ..tiny()
        };
        let head = head(&config, ModelKind::Speech, 3, 1, 45);
        let EmotionHead::Speech(model) = &head else {
            panic!("speech head expected");
        };
        let weights = model.branch.mix.as_ref().unwrap().weights();
        assert!(max_abs_diff(&weights, &[1.0 / 3.0; 3]) > 0.1, "{weights:?}");
        let pairs: Vec<_> = sequences(46, 3, &[2, 5, 11, 40], SPEECH_DIM)
            .into_iter()
            .map(|s| (Some(s), None))
            .collect();
        assert_parity(&head, &pairs);
    }

    #[test]
    fn fusion_export_matches_burn() {
        let config = HeadConfig {
            conv_kernel: 5,
            ..tiny()
        };
        let head = head(&config, ModelKind::Fusion, 3, 1, 47);
        let speech = sequences(48, 3, &[2, 3, 9, 40, 41], SPEECH_DIM);
        let text = sequences(49, 1, &[5, 2, 3, 8, 12], TEXT_DIM);
        // The gate is open: changing the text changes the burn logits.
        let a = burn_logits(&head, Some(&speech[3]), Some(&text[3]));
        let b = burn_logits(&head, Some(&speech[3]), Some(&text[4]));
        assert!(max_abs_diff(&a, &b) > 1e-3, "the text path does not matter");
        let pairs: Vec<_> = speech
            .into_iter()
            .zip(text)
            .map(|(s, t)| (Some(s), Some(t)))
            .collect();
        assert_parity(&head, &pairs);
    }

    /// A fusion head built on a speech head whose text was not kept (gate closed, as
    /// `train_fusion_from_speech` leaves it) exports to a graph that gives exactly the
    /// speech head's logits in tract, whatever the text: the board's fusion head is then
    /// the speech head, bit for bit.
    #[test]
    fn a_fusion_head_with_the_gate_closed_exports_as_the_speech_head() {
        let config = HeadConfig {
            conv_kernel: 5,
            ..tiny()
        };
        let EmotionHead::Speech(speech) = head(&config, ModelKind::Speech, 3, 1, 71) else {
            panic!("speech head expected");
        };
        let EmotionHead::Fusion(fresh) = head(&config, ModelKind::Fusion, 3, 1, 72) else {
            panic!("fusion head expected");
        };
        let fusion = fresh.starting_from(&speech, &device());
        assert_eq!(fusion.gate_value(), 0.0);
        let speech_graph = load(&export_head(&EmotionHead::Speech(speech)).unwrap());
        let fusion_graph = load(&export_head(&EmotionHead::Fusion(fusion)).unwrap());
        let speech_inputs = sequences(73, 3, &[2, 9, 40], SPEECH_DIM);
        let texts = sequences(74, 1, &[3, 5, 12], TEXT_DIM);
        for s in &speech_inputs {
            let alone = tract_logits(&speech_graph, &[s]);
            for t in &texts {
                assert_eq!(tract_logits(&fusion_graph, &[s, t]), alone, "{:?}", t.shape);
            }
        }
    }

    /// The default sizes (768-wide features, five layers, BiLSTM 64, attention 64) on
    /// utterance-length inputs: rounding stays far inside the tolerance.
    #[test]
    fn default_size_fusion_export_matches_burn() {
        let config = HeadConfig::default();
        let speech_layout = FeatureLayout {
            layers: 5,
            dim: 768,
        };
        let text_layout = FeatureLayout {
            layers: 1,
            dim: 384,
        };
        let EmotionHead::Fusion(f) = config
            .model(ModelKind::Fusion, speech_layout, text_layout)
            .init_seeded(61, &device())
        else {
            panic!("fusion head expected");
        };
        let head = EmotionHead::Fusion(FusionHead {
            speech: skewed(f.speech),
            gate: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![0.7f32], [1]),
                &device(),
            )),
            ..f
        });
        let speech = sequences(62, 5, &[149], 768).remove(0);
        let text = sequences(63, 1, &[9], 384).remove(0);
        assert_parity(&head, &[(Some(speech), Some(text))]);
    }

    /// The backward LSTMs matter (swapping the directions changes burn's answer far
    /// beyond the tolerance), so the parity tests would catch a backward half that ran
    /// forward or sat in the wrong slot; and no LSTM is exported as `reverse`.
    #[test]
    fn lstms_are_bidirectional_and_the_backward_half_matters() {
        let head = head(&tiny(), ModelKind::Fusion, 1, 1, 51);
        let bytes = export_head(&head).unwrap();
        let proto = pb::ModelProto::decode(&bytes[..]).unwrap();
        let graph = proto.graph.unwrap();
        let lstms: Vec<_> = graph.node.iter().filter(|n| n.op_type == "LSTM").collect();
        assert_eq!(lstms.len(), 2, "one per branch");
        for node in lstms {
            let direction = node
                .attribute
                .iter()
                .find(|a| a.name == "direction")
                .map(|a| String::from_utf8(a.s.clone()).unwrap());
            assert_eq!(direction.as_deref(), Some("bidirectional"), "{}", node.name);
            let w = graph
                .initializer
                .iter()
                .find(|t| t.name == node.input[1])
                .unwrap();
            assert_eq!(w.dims, [2, 4 * 6, 8], "W of {}", node.name);
        }

        let swap = |lstm: MaskedBiLstm| MaskedBiLstm {
            forward: lstm.backward,
            backward: lstm.forward,
            ..lstm
        };
        let EmotionHead::Fusion(f) = head.clone() else {
            panic!("fusion head expected");
        };
        let swapped = EmotionHead::Fusion(FusionHead {
            speech: Branch {
                lstm: swap(f.speech.lstm),
                ..f.speech
            },
            text: Branch {
                lstm: swap(f.text.lstm),
                ..f.text
            },
            ..f
        });
        let speech = sequences(52, 1, &[40], SPEECH_DIM).remove(0);
        let text = sequences(53, 1, &[12], TEXT_DIM).remove(0);
        let exported = tract_logits(&load(&bytes), &[&speech, &text]);
        let original = burn_logits(&head, Some(&speech), Some(&text));
        let wrong = burn_logits(&swapped, Some(&speech), Some(&text));
        assert!(max_abs_diff(&exported, &original) <= TOLERANCE);
        let gap = max_abs_diff(&exported, &wrong);
        println!("swapped directions: max |Δlogit| = {gap:.2e}");
        assert!(
            gap > 100.0 * TOLERANCE,
            "swapping directions changes little: {gap}"
        );
    }

    fn dims(info: &pb::ValueInfoProto) -> Vec<String> {
        use pb::tensor_shape_proto::dimension::Value;
        let Some(pb::type_proto::Value::TensorType(t)) = &info.r#type.as_ref().unwrap().value
        else {
            panic!("not a tensor");
        };
        t.shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| match d.value.as_ref().unwrap() {
                Value::DimValue(v) => v.to_string(),
                Value::DimParam(p) => p.clone(),
            })
            .collect()
    }

    #[test]
    fn inputs_outputs_and_metadata_follow_the_contract() {
        let head = head(&tiny(), ModelKind::Fusion, 3, 1, 55);
        let proto = pb::ModelProto::decode(&export_head(&head).unwrap()[..]).unwrap();
        let meta = |key: &str| {
            proto
                .metadata_props
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.value.clone())
        };
        assert_eq!(meta(KIND_METADATA).as_deref(), Some("fusion"));
        let classes = meta(CLASSES_METADATA).unwrap();
        let parsed: Vec<emotion_core::Emotion> =
            classes.split(',').map(|c| c.parse().unwrap()).collect();
        assert_eq!(parsed, emotion_core::Emotion::ALL, "{classes}");
        assert_eq!(meta("speech_layers").as_deref(), Some("3"));
        assert_eq!(meta("text_dim").as_deref(), Some("4"));
        assert_eq!(meta("speech_lstm_hidden").as_deref(), Some("6"));
        let graph = proto.graph.unwrap();
        let inputs: Vec<_> = graph
            .input
            .iter()
            .map(|i| (i.name.as_str(), dims(i)))
            .collect();
        assert_eq!(
            inputs,
            [
                (
                    SPEECH_INPUT,
                    vec!["1".into(), "3".into(), "frames".into(), "6".into()]
                ),
                (TEXT_INPUT, vec!["1".into(), "tokens".into(), "4".into()]),
            ]
        );
        assert_eq!(graph.output.len(), 1);
        assert_eq!(graph.output[0].name, LOGITS_OUTPUT);
        assert_eq!(dims(&graph.output[0]), ["1", "7"]);

        let speech = pb::ModelProto::decode(
            &export_head(&super::tests::head(&tiny(), ModelKind::Speech, 1, 1, 56)).unwrap()[..],
        )
        .unwrap();
        let graph = speech.graph.unwrap();
        assert_eq!(graph.input.len(), 1);
        assert_eq!(graph.input[0].name, SPEECH_INPUT);
        assert_eq!(dims(&graph.input[0]), ["1", "frames", "6"]);
    }

    #[test]
    fn an_lstm_the_graph_cannot_express_is_a_typed_error() {
        let EmotionHead::Speech(c) = head(&tiny(), ModelKind::Speech, 1, 1, 57) else {
            panic!("speech head expected");
        };
        let mut lstm = c.branch.lstm.clone();
        lstm.backward.clip = Some(3.0);
        let clipped = EmotionHead::Speech(BranchClassifier {
            branch: Branch { lstm, ..c.branch },
            ..c
        });
        let error = export_head(&clipped).unwrap_err();
        assert!(
            matches!(&error, HeadExportError::Unsupported { name, .. } if name == "speech.lstm.backward"),
            "{error}"
        );
    }

    fn words(n: usize) -> Vec<String> {
        ["back", "bar", "base", "bath", "bean", "beg", "bite", "boat"][..n]
            .iter()
            .map(|w| w.to_string())
            .collect()
    }

    /// A seeded speech classifier with `classes` outputs and a skewed layer mix.
    fn spotter(classes: usize, layers: usize, seed: u64) -> BranchClassifier {
        let layout = FeatureLayout {
            layers,
            dim: SPEECH_DIM,
        };
        match tiny()
            .model(ModelKind::Speech, layout, layout)
            .with_classes(classes)
            .init_seeded(seed, &device())
        {
            EmotionHead::Speech(c) => BranchClassifier {
                branch: skewed(c.branch),
                ..c
            },
            other => panic!("speech model expected, got {:?}", other.kind()),
        }
    }

    #[test]
    fn keyword_spotter_export_matches_burn() {
        for (layers, seed) in [(1, 71), (3, 73)] {
            let model = spotter(8, layers, seed);
            let bytes = export_keyword_spotter(&model, &words(8)).unwrap();
            let head = EmotionHead::Speech(model);
            let pairs: Vec<_> = sequences(seed + 1, layers, &[2, 3, 9, 40, 71], SPEECH_DIM)
                .into_iter()
                .map(|s| (Some(s), None))
                .collect();
            let worst = assert_graph_parity(&head, &bytes, &pairs);
            println!("keyword spotter, {layers} layer(s), 8 words: worst {worst:.2e}");
        }
    }

    #[test]
    fn keyword_spotter_graph_follows_its_contract() {
        let bytes = export_keyword_spotter(&spotter(5, 1, 75), &words(5)).unwrap();
        let proto = pb::ModelProto::decode(&bytes[..]).unwrap();
        let meta = |key: &str| {
            proto
                .metadata_props
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.value.clone())
        };
        assert_eq!(meta(KIND_METADATA).as_deref(), Some(KEYWORD_KIND));
        assert_eq!(
            meta(WORDS_METADATA).as_deref(),
            Some("back,bar,base,bath,bean")
        );
        assert_eq!(meta(CLASSES_METADATA), None, "no emotion classes");
        let graph = proto.graph.unwrap();
        assert_eq!(graph.input.len(), 1);
        assert_eq!(graph.input[0].name, SPEECH_INPUT);
        assert_eq!(dims(&graph.input[0]), ["1", "frames", "6"]);
        assert_eq!(graph.output.len(), 1);
        assert_eq!(graph.output[0].name, LOGITS_OUTPUT);
        assert_eq!(dims(&graph.output[0]), ["1", "5"]);
    }

    /// An open-set spotter lists `<none>` last; the board's loader reads it as "not a
    /// keyword", the vocabulary without it.
    #[test]
    fn open_set_spotter_lists_none_last_and_loads_as_open_set() {
        let mut names = words(4);
        names.push(NONE_CLASS.to_string());
        let model = spotter(5, 1, 79);
        let bytes = export_keyword_spotter(&model, &names).unwrap();
        let loaded =
            emotion_core::keyword_spotter::KeywordSpotter::from_bytes(&bytes, "kws.onnx", 1)
                .unwrap();
        assert!(loaded.is_open_set());
        assert_eq!(loaded.words(), &names[..4]);
        let head = EmotionHead::Speech(model);
        let pairs: Vec<_> = sequences(80, 1, &[3, 20], SPEECH_DIM)
            .into_iter()
            .map(|s| (Some(s), None))
            .collect();
        assert_graph_parity(&head, &bytes, &pairs);
        let closed = export_keyword_spotter(&spotter(4, 1, 81), &words(4)).unwrap();
        let closed =
            emotion_core::keyword_spotter::KeywordSpotter::from_bytes(&closed, "k.onnx", 1)
                .unwrap();
        assert!(!closed.is_open_set());
    }

    #[test]
    fn keyword_spotter_words_must_label_the_outputs() {
        let model = spotter(3, 1, 77);
        let refused = |words: &[&str]| {
            let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            export_keyword_spotter(&model, &words)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(&["a", "b"]).contains("3 outputs"));
        assert!(refused(&["a", "b", "c,d"]).contains("`c,d`"));
        assert!(refused(&["a", "b", "a"]).contains("twice"));
        assert!(refused(&["a", "b", " c"]).contains("spaces"));
        assert!(refused(&["a"]).contains("at least two"));
        assert!(refused(&["a", "<none>", "b"]).contains("last output"));
        assert!(refused(&["a", "<none>"]).contains("at least two"));
        // An emotion head with other than seven outputs is refused too.
        let error = export_head(&EmotionHead::Speech(spotter(3, 1, 78))).unwrap_err();
        assert!(error.to_string().contains("3 outputs"), "{error}");
    }
}
