//! The HuBERT / wav2vec 2.0 family as an ONNX graph, computing exactly what HF
//! transformers computes in eval mode (`output_hidden_states=True`):
//!
//! 1. `input_values [1, N]` → `[1, N, 1]`: time-major from the start;
//! 2. conv feature encoder: per layer `Conv1d(k, stride, bias iff conv_bias)` written as
//!    one matrix product over time-major windows
//!    ([`GraphBuilder::conv1d_time_major`]: faster in tract than `Conv`, and int8-able),
//!    then `group` mode: GroupNorm with one group per channel after layer 0 only
//!    ([`GraphBuilder::instance_norm_time_major`]), or `layer` mode: LayerNorm over
//!    channels after every layer (eps 1e-5 both), then the activation;
//! 3. `[1, T, C]`, feature projection: LayerNorm (if `feat_proj_layer_norm`; wav2vec2
//!    always) → Linear(C → hidden);
//! 4. positional conv (weight-normed, grouped, padding K/2, the extra last frame of an even
//!    kernel dropped: pads `[K/2, K/2 − 1]`) → activation, added to the input;
//! 5. transformer: post-LN ("base": `encoder.layer_norm` first, it is hidden state 0) or
//!    pre-LN ("large", `do_stable_layer_norm`: hidden state 0 is un-normed and
//!    `encoder.layer_norm` applies only after the last layer of the full model, so only
//!    `hidden_states.{num_hidden_layers}` is normed).
//!
//! The graph stops after the last selected layer.
//!
//! [`build_speech_graph`] is that whole skeleton with the attention block left to the
//! caller: [`build_graph`] puts HF's plain self-attention in it, and
//! [`super::wavlm`] its attention with a gated relative position bias (WavLM shares
//! everything else with this family).

use std::path::Path;

use onnx_build::graph::{
    Activation, AttentionWeights, Conv1dGeometry, Dim, ElemType, GraphBuilder,
};

use super::checkpoint::{EncoderCheckpoint, HfConfig};
use super::error::ImportError;
use super::{
    EncoderKind, check_heads, emit_hidden_state, layer_norm, parse_activation, size_field,
};

/// Epsilon of the feature encoder's norms (PyTorch's default; HF does not configure it).
const CONV_NORM_EPS: f32 = 1e-5;

/// How the conv feature encoder is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatExtractNorm {
    /// GroupNorm (one group per channel) after the first conv only (base models).
    Group,
    /// LayerNorm over channels after every conv (large models).
    Layer,
}

/// A HuBERT/wav2vec2/WavLM config with HF's defaults filled in and checked (WavLM's
/// relative position settings: [`super::wavlm::RelativePositions`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechConfig {
    /// HuBERT, wav2vec2 or WavLM.
    pub kind: EncoderKind,
    /// Transformer width.
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Epsilon of the transformer and feature-projection layer norms.
    pub layer_norm_eps: f32,
    /// Feed-forward activation.
    pub hidden_act: Activation,
    /// Feature encoder and positional conv activation.
    pub feat_extract_activation: Activation,
    /// Output channels per conv layer.
    pub conv_dim: Vec<usize>,
    /// Kernel per conv layer.
    pub conv_kernel: Vec<usize>,
    /// Stride per conv layer.
    pub conv_stride: Vec<usize>,
    /// Whether the convs have biases.
    pub conv_bias: bool,
    /// Feature-encoder normalisation.
    pub feat_extract_norm: FeatExtractNorm,
    /// LayerNorm before the feature projection.
    pub feat_proj_layer_norm: bool,
    /// Pre-LN transformer ("large").
    pub do_stable_layer_norm: bool,
    /// Positional conv kernel.
    pub num_conv_pos_embeddings: usize,
    /// Positional conv groups.
    pub num_conv_pos_embedding_groups: usize,
}

impl SpeechConfig {
    /// Reads the config of `checkpoint` (HF defaults where a field is absent).
    pub fn from_checkpoint(
        checkpoint: &EncoderCheckpoint,
        kind: EncoderKind,
    ) -> Result<Self, ImportError> {
        let c = checkpoint.config();
        let path = checkpoint.config_path();
        let hidden_size = size_field(c.hidden_size, 768, "hidden_size", path)?;
        let num_attention_heads =
            size_field(c.num_attention_heads, 12, "num_attention_heads", path)?;
        check_heads(hidden_size, num_attention_heads, path)?;
        let ConvLayers {
            dim: conv_dim,
            kernel: conv_kernel,
            stride: conv_stride,
        } = conv_layers(c, path)?;
        let feat_extract_norm = feat_extract_norm(c, path)?;
        let (num_conv_pos_embeddings, num_conv_pos_embedding_groups) =
            positional_conv(c, path, hidden_size)?;
        let layer_norm_eps = c.layer_norm_eps.unwrap_or(1e-5);
        if !(layer_norm_eps.is_finite() && layer_norm_eps >= 0.0) {
            return Err(invalid(
                path,
                "layer_norm_eps",
                "must be a non-negative number".into(),
            ));
        }
        Ok(Self {
            kind,
            hidden_size,
            num_hidden_layers: c.num_hidden_layers.unwrap_or(12),
            num_attention_heads,
            intermediate_size: size_field(c.intermediate_size, 3072, "intermediate_size", path)?,
            layer_norm_eps: layer_norm_eps as f32,
            hidden_act: parse_activation(
                c.hidden_act.as_deref().unwrap_or("gelu"),
                "hidden_act",
                path,
            )?,
            feat_extract_activation: parse_activation(
                c.feat_extract_activation.as_deref().unwrap_or("gelu"),
                "feat_extract_activation",
                path,
            )?,
            conv_dim,
            conv_kernel,
            conv_stride,
            conv_bias: c.conv_bias.unwrap_or(false),
            feat_extract_norm,
            // wav2vec2 and WavLM have no such option: their projection is always
            // layer-normed.
            feat_proj_layer_norm: match kind {
                EncoderKind::Hubert => c.feat_proj_layer_norm.unwrap_or(true),
                _ => true,
            },
            do_stable_layer_norm: c.do_stable_layer_norm.unwrap_or(false),
            num_conv_pos_embeddings,
            num_conv_pos_embedding_groups,
        })
    }
}

fn invalid(path: &Path, field: &str, reason: String) -> ImportError {
    ImportError::InvalidConfig {
        path: path.to_path_buf(),
        field: field.into(),
        reason,
    }
}

/// The feature encoder's per-layer channels, kernels and strides.
struct ConvLayers {
    dim: Vec<usize>,
    kernel: Vec<usize>,
    stride: Vec<usize>,
}

/// `conv_dim`, `conv_kernel` and `conv_stride` (HF's 7-layer defaults), checked to
/// describe the same non-empty list of layers.
fn conv_layers(c: &HfConfig, path: &Path) -> Result<ConvLayers, ImportError> {
    let dim = c.conv_dim.clone().unwrap_or_else(|| vec![512; 7]);
    let kernel = c
        .conv_kernel
        .clone()
        .unwrap_or_else(|| vec![10, 3, 3, 3, 3, 2, 2]);
    let stride = c
        .conv_stride
        .clone()
        .unwrap_or_else(|| vec![5, 2, 2, 2, 2, 2, 2]);
    if dim.is_empty() || kernel.len() != dim.len() || stride.len() != dim.len() {
        return Err(invalid(
            path,
            "conv_dim",
            format!(
                "conv_dim, conv_kernel and conv_stride must have the same non-zero length \
                 (found {}, {}, {})",
                dim.len(),
                kernel.len(),
                stride.len()
            ),
        ));
    }
    for (field, list) in [
        ("conv_dim", &dim),
        ("conv_kernel", &kernel),
        ("conv_stride", &stride),
    ] {
        if list.contains(&0) {
            return Err(invalid(path, field, "entries must be positive".into()));
        }
    }
    Ok(ConvLayers {
        dim,
        kernel,
        stride,
    })
}

fn feat_extract_norm(c: &HfConfig, path: &Path) -> Result<FeatExtractNorm, ImportError> {
    match c.feat_extract_norm.as_deref().unwrap_or("group") {
        "group" => Ok(FeatExtractNorm::Group),
        "layer" => Ok(FeatExtractNorm::Layer),
        other => Err(invalid(
            path,
            "feat_extract_norm",
            format!("`{other}` is neither `group` nor `layer`"),
        )),
    }
}

/// The positional conv's kernel and groups; only the weight-normed variant is built.
fn positional_conv(
    c: &HfConfig,
    path: &Path,
    hidden_size: usize,
) -> Result<(usize, usize), ImportError> {
    if c.conv_pos_batch_norm == Some(true) {
        return Err(ImportError::UnsupportedConfig {
            path: path.to_path_buf(),
            field: "conv_pos_batch_norm".into(),
            value: "true".into(),
            reason: "only the weight-normed positional convolution is built".into(),
        });
    }
    let kernel = size_field(
        c.num_conv_pos_embeddings,
        128,
        "num_conv_pos_embeddings",
        path,
    )?;
    let groups = size_field(
        c.num_conv_pos_embedding_groups,
        16,
        "num_conv_pos_embedding_groups",
        path,
    )?;
    if !hidden_size.is_multiple_of(groups) {
        return Err(invalid(
            path,
            "num_conv_pos_embedding_groups",
            format!("{groups} groups do not divide {hidden_size}"),
        ));
    }
    Ok((kernel, groups))
}

/// Builds the graph for hidden states `indices` (ascending, each ≤ `num_hidden_layers`).
pub fn build_graph(
    checkpoint: &EncoderCheckpoint,
    config: &SpeechConfig,
    indices: &[usize],
) -> Result<GraphBuilder, ImportError> {
    build_speech_graph(checkpoint, config, indices, &mut |g, _layer, prefix, x| {
        let p = format!("{prefix}.attention");
        let weights = attention_weights(checkpoint, config, &p)?;
        Ok(g.self_attention(&p, x, weights)?)
    })
}

/// Builds one transformer layer's attention block: given the graph, the layer's index
/// (0-based, called in order), its tensor prefix (`encoder.layers.{i}`) and the block's
/// input `[1, frames, hidden]` (already normed in the pre-LN layout), returns its output.
pub(crate) type AttentionBlock<'a> =
    dyn FnMut(&mut GraphBuilder, usize, &str, &str) -> Result<String, ImportError> + 'a;

/// The graph of the HuBERT / wav2vec2 / WavLM family for hidden states `indices`
/// (ascending, each ≤ `num_hidden_layers`): everything in the module docs, with each
/// layer's attention block built by `attention`.
pub(crate) fn build_speech_graph(
    checkpoint: &EncoderCheckpoint,
    config: &SpeechConfig,
    indices: &[usize],
    attention: &mut AttentionBlock<'_>,
) -> Result<GraphBuilder, ImportError> {
    let last = indices.last().copied().unwrap_or(0);
    let hidden = config.hidden_size;
    let eps = config.layer_norm_eps;
    let mut g = GraphBuilder::new(&format!("{}_encoder", config.kind.as_str()));
    let x = g.input(
        "input_values",
        ElemType::F32,
        &[Dim::Fixed(1), Dim::sym("samples")],
    );
    // Time-major throughout: [1, N] → [1, N, 1] → each conv → [1, T, C].
    let h = g.unsqueeze("input_values.channel", &x, &[2]);
    let (h, channels) = conv_feature_encoder(checkpoint, config, &mut g, h)?;
    let h = feature_projection(checkpoint, config, &mut g, h, channels)?;
    let mut h = positional_conv_embedding(checkpoint, config, &mut g, h)?;

    if !config.do_stable_layer_norm {
        h = layer_norm(checkpoint, &mut g, "encoder.layer_norm", &h, hidden, eps)?;
    }
    if indices.contains(&0) {
        emit_hidden_state(&mut g, 0, &h, "frames", hidden)?;
    }

    for layer in 0..last {
        let p = format!("encoder.layers.{layer}");
        h = if config.do_stable_layer_norm {
            pre_ln_layer(checkpoint, config, &mut g, layer, &p, &h, attention)?
        } else {
            post_ln_layer(checkpoint, config, &mut g, layer, &p, &h, attention)?
        };
        let index = layer + 1;
        if indices.contains(&index) {
            if config.do_stable_layer_norm && index == config.num_hidden_layers {
                // HF applies the encoder's final norm after the model's last layer only.
                let normed = layer_norm(checkpoint, &mut g, "encoder.layer_norm", &h, hidden, eps)?;
                emit_hidden_state(&mut g, index, &normed, "frames", hidden)?;
            } else {
                emit_hidden_state(&mut g, index, &h, "frames", hidden)?;
            }
        }
    }
    Ok(g)
}

/// The conv feature encoder on `[1, N, 1]`, each layer one matrix product
/// (`conv1d_time_major`): returns `[1, T, C]` and `C`.
fn conv_feature_encoder(
    checkpoint: &EncoderCheckpoint,
    config: &SpeechConfig,
    g: &mut GraphBuilder,
    mut h: String,
) -> Result<(String, usize), ImportError> {
    let mut in_channels = 1;
    let layers = config
        .conv_dim
        .iter()
        .zip(&config.conv_kernel)
        .zip(&config.conv_stride);
    for (i, ((&channels, &kernel), &stride)) in layers.enumerate() {
        let p = format!("feature_extractor.conv_layers.{i}");
        let weight = checkpoint.tensor(
            &format!("{p}.conv.weight"),
            &[channels, in_channels, kernel],
        )?;
        let bias = if config.conv_bias {
            Some(checkpoint.tensor(&format!("{p}.conv.bias"), &[channels])?)
        } else {
            None
        };
        h = g.conv1d_time_major(&format!("{p}.conv"), &h, weight, bias, stride)?;
        match config.feat_extract_norm {
            FeatExtractNorm::Group if i == 0 => {
                let gamma = checkpoint.tensor(&format!("{p}.layer_norm.weight"), &[channels])?;
                let beta = checkpoint.tensor(&format!("{p}.layer_norm.bias"), &[channels])?;
                h = g.instance_norm_time_major(
                    &format!("{p}.layer_norm"),
                    &h,
                    gamma,
                    beta,
                    CONV_NORM_EPS,
                )?;
            }
            FeatExtractNorm::Group => {}
            FeatExtractNorm::Layer => {
                let gamma = checkpoint.tensor(&format!("{p}.layer_norm.weight"), &[channels])?;
                let beta = checkpoint.tensor(&format!("{p}.layer_norm.bias"), &[channels])?;
                h = g.layer_norm(&format!("{p}.layer_norm"), &h, gamma, beta, CONV_NORM_EPS)?;
            }
        }
        h = g.activation(
            &format!("{p}.activation"),
            &h,
            config.feat_extract_activation,
        );
        in_channels = channels;
    }
    Ok((h, in_channels))
}

/// `[1, T, C]` → `[1, T, hidden]`, layer-normed first if the config says so.
fn feature_projection(
    checkpoint: &EncoderCheckpoint,
    config: &SpeechConfig,
    g: &mut GraphBuilder,
    mut h: String,
    in_channels: usize,
) -> Result<String, ImportError> {
    let (hidden, eps) = (config.hidden_size, config.layer_norm_eps);
    if config.feat_proj_layer_norm {
        let gamma = checkpoint.tensor("feature_projection.layer_norm.weight", &[in_channels])?;
        let beta = checkpoint.tensor("feature_projection.layer_norm.bias", &[in_channels])?;
        h = g.layer_norm("feature_projection.layer_norm", &h, gamma, beta, eps)?;
    }
    Ok(g.linear(
        "feature_projection.projection",
        &h,
        checkpoint.linear_weights("feature_projection.projection", hidden, in_channels)?,
    )?)
}

/// `h + act(conv(h))` with the grouped, weight-normed positional conv, run channel-major.
fn positional_conv_embedding(
    checkpoint: &EncoderCheckpoint,
    config: &SpeechConfig,
    g: &mut GraphBuilder,
    h: String,
) -> Result<String, ImportError> {
    let hidden = config.hidden_size;
    let kernel = config.num_conv_pos_embeddings;
    let groups = config.num_conv_pos_embedding_groups;
    let pos_weight = checkpoint.weight_normed(
        "encoder.pos_conv_embed.conv",
        &[hidden, hidden / groups, kernel],
        2,
    )?;
    let pos_bias = checkpoint.tensor("encoder.pos_conv_embed.conv.bias", &[hidden])?;
    let pad = kernel / 2;
    let pad_end = if kernel.is_multiple_of(2) {
        pad - 1
    } else {
        pad
    };
    let t = g.transpose("encoder.pos_conv_embed.to_channel_major", &h, &[0, 2, 1]);
    let t = g.conv1d(
        "encoder.pos_conv_embed.conv",
        &t,
        pos_weight,
        Some(pos_bias),
        Conv1dGeometry {
            stride: 1,
            pads: [pad, pad_end],
            groups,
        },
    )?;
    let t = g.activation(
        "encoder.pos_conv_embed.activation",
        &t,
        config.feat_extract_activation,
    );
    let pos = g.transpose("encoder.pos_conv_embed.to_time_major", &t, &[0, 2, 1]);
    Ok(g.node("Add", "encoder.pos_conv_embed.add", &[&h, &pos], vec![]))
}

/// A pre-LN ("large") layer: `h += attention(LN(h))`, then `h += ff(LN(h))`.
fn pre_ln_layer(
    checkpoint: &EncoderCheckpoint,
    config: &SpeechConfig,
    g: &mut GraphBuilder,
    layer: usize,
    p: &str,
    h: &str,
    attention: &mut AttentionBlock<'_>,
) -> Result<String, ImportError> {
    let (hidden, eps) = (config.hidden_size, config.layer_norm_eps);
    let normed = layer_norm(checkpoint, g, &format!("{p}.layer_norm"), h, hidden, eps)?;
    let a = attention(g, layer, p, &normed)?;
    let h = g.node("Add", &format!("{p}.attention.residual"), &[h, &a], vec![]);
    let normed = layer_norm(
        checkpoint,
        g,
        &format!("{p}.final_layer_norm"),
        &h,
        hidden,
        eps,
    )?;
    let f = feed_forward(checkpoint, g, config, p, &normed)?;
    Ok(g.node(
        "Add",
        &format!("{p}.feed_forward.residual"),
        &[&h, &f],
        vec![],
    ))
}

/// A post-LN ("base") layer: `h = LN(h + attention(h))`, then `h = LN(h + ff(h))`.
fn post_ln_layer(
    checkpoint: &EncoderCheckpoint,
    config: &SpeechConfig,
    g: &mut GraphBuilder,
    layer: usize,
    p: &str,
    h: &str,
    attention: &mut AttentionBlock<'_>,
) -> Result<String, ImportError> {
    let (hidden, eps) = (config.hidden_size, config.layer_norm_eps);
    let a = attention(g, layer, p, h)?;
    let sum = g.node("Add", &format!("{p}.attention.residual"), &[h, &a], vec![]);
    let h = layer_norm(checkpoint, g, &format!("{p}.layer_norm"), &sum, hidden, eps)?;
    let f = feed_forward(checkpoint, g, config, p, &h)?;
    let sum = g.node(
        "Add",
        &format!("{p}.feed_forward.residual"),
        &[&h, &f],
        vec![],
    );
    layer_norm(
        checkpoint,
        g,
        &format!("{p}.final_layer_norm"),
        &sum,
        hidden,
        eps,
    )
}

/// The q/k/v/out projections (with biases) of the attention module `p`
/// (`encoder.layers.{i}.attention`).
pub(crate) fn attention_weights(
    checkpoint: &EncoderCheckpoint,
    config: &SpeechConfig,
    p: &str,
) -> Result<AttentionWeights, ImportError> {
    let hidden = config.hidden_size;
    Ok(AttentionWeights {
        query: checkpoint.linear_weights(&format!("{p}.q_proj"), hidden, hidden)?,
        key: checkpoint.linear_weights(&format!("{p}.k_proj"), hidden, hidden)?,
        value: checkpoint.linear_weights(&format!("{p}.v_proj"), hidden, hidden)?,
        output: checkpoint.linear_weights(&format!("{p}.out_proj"), hidden, hidden)?,
        heads: config.num_attention_heads,
    })
}

/// `{layer}.feed_forward`: intermediate_dense → activation → output_dense.
fn feed_forward(
    checkpoint: &EncoderCheckpoint,
    g: &mut GraphBuilder,
    config: &SpeechConfig,
    layer: &str,
    x: &str,
) -> Result<String, ImportError> {
    let p = format!("{layer}.feed_forward");
    let (hidden, inner) = (config.hidden_size, config.intermediate_size);
    let up = checkpoint.linear_weights(&format!("{p}.intermediate_dense"), inner, hidden)?;
    let h = g.linear(&format!("{p}.intermediate_dense"), x, up)?;
    let h = g.activation(&format!("{p}.activation"), &h, config.hidden_act);
    let down = checkpoint.linear_weights(&format!("{p}.output_dense"), hidden, inner)?;
    Ok(g.linear(&format!("{p}.output_dense"), &h, down)?)
}
