//! BERT as an ONNX graph, computing what HF transformers computes in eval mode for one
//! unpadded sequence (`output_hidden_states=True`):
//!
//! - embeddings: `word_embeddings[ids] + token_type_embeddings[0] + position_embeddings[0..T]`
//!   (the position table is sliced with the run-time length: `Shape → Slice`), then
//!   LayerNorm: hidden state 0;
//! - post-LN layers: `h = LN(h + dense(self_attention(h)))`,
//!   `h = LN(h + dense(act(intermediate(h))))`: hidden state `i` is layer `i`'s output.
//!
//! The pooler is not part of the graph, nor any layer after the last selected one.

use onnx_build::graph::{Activation, AttentionWeights, Attr, Dim, ElemType, GraphBuilder};

use super::checkpoint::EncoderCheckpoint;
use super::error::ImportError;
use super::{check_heads, emit_hidden_state, layer_norm, parse_activation, size_field};

/// A BERT config with HF's defaults filled in and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    /// Transformer width.
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Epsilon of every layer norm.
    pub layer_norm_eps: f32,
    /// Feed-forward activation.
    pub hidden_act: Activation,
    /// Rows of the word table.
    pub vocab_size: usize,
    /// Rows of the position table (the longest sequence).
    pub max_position_embeddings: usize,
    /// Rows of the token-type table.
    pub type_vocab_size: usize,
}

impl TextConfig {
    /// Reads the config of `checkpoint` (HF defaults where a field is absent).
    pub fn from_checkpoint(checkpoint: &EncoderCheckpoint) -> Result<Self, ImportError> {
        let c = checkpoint.config();
        let path = checkpoint.config_path();
        let hidden_size = size_field(c.hidden_size, 768, "hidden_size", path)?;
        let num_attention_heads =
            size_field(c.num_attention_heads, 12, "num_attention_heads", path)?;
        check_heads(hidden_size, num_attention_heads, path)?;
        if let Some(kind) = c
            .position_embedding_type
            .as_deref()
            .filter(|k| *k != "absolute")
        {
            return Err(ImportError::UnsupportedConfig {
                path: path.to_path_buf(),
                field: "position_embedding_type".into(),
                value: format!("\"{kind}\""),
                reason: "only absolute position embeddings are built".into(),
            });
        }
        let layer_norm_eps = c.layer_norm_eps.unwrap_or(1e-12);
        if !(layer_norm_eps.is_finite() && layer_norm_eps >= 0.0) {
            return Err(ImportError::InvalidConfig {
                path: path.to_path_buf(),
                field: "layer_norm_eps".into(),
                reason: "must be a non-negative number".into(),
            });
        }
        Ok(Self {
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
            vocab_size: size_field(c.vocab_size, 30522, "vocab_size", path)?,
            max_position_embeddings: size_field(
                c.max_position_embeddings,
                512,
                "max_position_embeddings",
                path,
            )?,
            type_vocab_size: size_field(c.type_vocab_size, 2, "type_vocab_size", path)?,
        })
    }
}

/// Builds the graph for hidden states `indices` (ascending, each ≤ `num_hidden_layers`).
pub fn build_graph(
    checkpoint: &EncoderCheckpoint,
    config: &TextConfig,
    indices: &[usize],
) -> Result<GraphBuilder, ImportError> {
    let last = indices.last().copied().unwrap_or(0);
    let hidden = config.hidden_size;
    let mut g = GraphBuilder::new("bert_encoder");
    let ids = g.input(
        "input_ids",
        ElemType::I64,
        &[Dim::Fixed(1), Dim::sym("tokens")],
    );
    let mut h = embeddings(checkpoint, config, &mut g, &ids)?;
    if indices.contains(&0) {
        emit_hidden_state(&mut g, 0, &h, "tokens", hidden)?;
    }
    for layer in 0..last {
        h = encoder_layer(checkpoint, config, &mut g, layer, &h)?;
        if indices.contains(&(layer + 1)) {
            emit_hidden_state(&mut g, layer + 1, &h, "tokens", hidden)?;
        }
    }
    Ok(g)
}

/// Embeddings, in HF's order: (words + token type 0) + positions, then LayerNorm.
fn embeddings(
    checkpoint: &EncoderCheckpoint,
    config: &TextConfig,
    g: &mut GraphBuilder,
    ids: &str,
) -> Result<String, ImportError> {
    let hidden = config.hidden_size;
    let words = checkpoint.tensor(
        "embeddings.word_embeddings.weight",
        &[config.vocab_size, hidden],
    )?;
    let words = g.initializer("embeddings.word_embeddings.weight", words);
    let mut h = g.node(
        "Gather",
        "embeddings.word_embeddings",
        &[&words, ids],
        vec![("axis", Attr::Int(0))],
    );
    let token_types = checkpoint.tensor(
        "embeddings.token_type_embeddings.weight",
        &[config.type_vocab_size, hidden],
    )?;
    let type_zero = g.initializer_f32(
        "embeddings.token_type_embeddings.row0",
        &[hidden],
        token_types
            .data()
            .get(..hidden)
            .unwrap_or_default()
            .to_vec(),
    )?;
    h = g.node(
        "Add",
        "embeddings.add_token_type",
        &[&h, &type_zero],
        vec![],
    );
    let pos = position_embeddings(checkpoint, config, g, ids)?;
    h = g.node("Add", "embeddings.add_position", &[&h, &pos], vec![]);
    layer_norm(
        checkpoint,
        g,
        "embeddings.LayerNorm",
        &h,
        hidden,
        config.layer_norm_eps,
    )
}

/// The position table's first `tokens` rows, sliced with the run-time length.
fn position_embeddings(
    checkpoint: &EncoderCheckpoint,
    config: &TextConfig,
    g: &mut GraphBuilder,
    ids: &str,
) -> Result<String, ImportError> {
    let positions = checkpoint.tensor(
        "embeddings.position_embeddings.weight",
        &[config.max_position_embeddings, config.hidden_size],
    )?;
    let positions = g.initializer("embeddings.position_embeddings.weight", positions);
    let length = g.node(
        "Shape",
        "embeddings.length",
        &[ids],
        vec![("start", Attr::Int(1)), ("end", Attr::Int(2))],
    );
    let zero = g.const_i64("embeddings.position_start", &[0]);
    let axis = g.const_i64("embeddings.position_axis", &[0]);
    Ok(g.node(
        "Slice",
        "embeddings.position_embeddings",
        &[&positions, &zero, &length, &axis],
        vec![],
    ))
}

/// Post-LN layer `encoder.layer.{layer}`: `h = LN(h + attention(h))`, then
/// `h = LN(h + dense(act(intermediate(h))))`.
fn encoder_layer(
    checkpoint: &EncoderCheckpoint,
    config: &TextConfig,
    g: &mut GraphBuilder,
    layer: usize,
    h: &str,
) -> Result<String, ImportError> {
    let (hidden, inner, eps) = (
        config.hidden_size,
        config.intermediate_size,
        config.layer_norm_eps,
    );
    let p = format!("encoder.layer.{layer}");
    let weights = attention_weights(checkpoint, config, &p)?;
    let a = g.self_attention(&format!("{p}.attention"), h, weights)?;
    let sum = g.node("Add", &format!("{p}.attention.residual"), &[&a, h], vec![]);
    let h = layer_norm(
        checkpoint,
        g,
        &format!("{p}.attention.output.LayerNorm"),
        &sum,
        hidden,
        eps,
    )?;
    let up = checkpoint.linear_weights(&format!("{p}.intermediate.dense"), inner, hidden)?;
    let f = g.linear(&format!("{p}.intermediate.dense"), &h, up)?;
    let f = g.activation(
        &format!("{p}.intermediate.activation"),
        &f,
        config.hidden_act,
    );
    let down = checkpoint.linear_weights(&format!("{p}.output.dense"), hidden, inner)?;
    let f = g.linear(&format!("{p}.output.dense"), &f, down)?;
    let sum = g.node("Add", &format!("{p}.output.residual"), &[&f, &h], vec![]);
    layer_norm(
        checkpoint,
        g,
        &format!("{p}.output.LayerNorm"),
        &sum,
        hidden,
        eps,
    )
}

/// The query/key/value/output projections of layer `p` (`encoder.layer.{i}`).
fn attention_weights(
    checkpoint: &EncoderCheckpoint,
    config: &TextConfig,
    p: &str,
) -> Result<AttentionWeights, ImportError> {
    let hidden = config.hidden_size;
    Ok(AttentionWeights {
        query: checkpoint.linear_weights(&format!("{p}.attention.self.query"), hidden, hidden)?,
        key: checkpoint.linear_weights(&format!("{p}.attention.self.key"), hidden, hidden)?,
        value: checkpoint.linear_weights(&format!("{p}.attention.self.value"), hidden, hidden)?,
        output: checkpoint.linear_weights(
            &format!("{p}.attention.output.dense"),
            hidden,
            hidden,
        )?,
        heads: config.num_attention_heads,
    })
}
