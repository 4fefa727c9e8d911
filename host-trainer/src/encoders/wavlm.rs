//! WavLM (`model_type: "wavlm"`, e.g. `microsoft/wavlm-base-plus`) as an ONNX graph,
//! computing what HF transformers' `WavLMModel` computes in eval mode
//! (`output_hidden_states=True`).
//!
//! Everything but attention is HuBERT's graph ([`super::hubert::build_speech_graph`]:
//! conv feature encoder, layer-normed feature projection, positional conv, post-LN "base"
//! or pre-LN "large" transformer, the graph stopping after the last selected layer). Each
//! attention block adds a gated relative position bias to its scaled scores:
//!
//! 1. **Relative position bias**, built once from layer 0's `rel_attn_embed`
//!    (`[num_buckets, heads]`) and shared by every layer: `bias[h, i, j] =
//!    E[bucket(j − i), h]`, with HF's bidirectional log buckets (half the buckets per
//!    direction, exact up to a quarter of them, logarithmic up to `max_bucket_distance`,
//!    then the last bucket). The bucket of a distance stops changing beyond a saturation
//!    distance `L` (≤ `max_bucket_distance`), so the graph holds the bias of every
//!    distance `−L..=L` as a constant table `[heads, 2L + 1]` and gathers it with
//!    `clip(j − i, −L, L) + L`: exact for any number of frames (the time axis stays
//!    symbolic), and no bucket arithmetic at run time. The table is computed here in f32
//!    the way PyTorch computes the buckets (see [`relative_position_bucket`]).
//! 2. **Gate**, per layer, head and frame, from the attention input `x` split into heads:
//!    `g = σ(a) · (σ(b) · c_h − 1) + 2`, where `a` and `b` are the sums of the first and
//!    last four outputs of `gru_rel_pos_linear` (`head_dim → 8`) and `c_h` is
//!    `gru_rel_pos_const`. The sums are folded into the weights: two `[hidden, heads]`
//!    products (block-diagonal over heads) on `x [1, T, hidden]`.
//! 3. `softmax(q·kᵀ/√d + g · bias) · v`: [`GraphBuilder::self_attention_with_bias`].
//!
//! Ops used on top of HuBERT's: `Shape`, `Squeeze`, `Range`, `Unsqueeze`, `Sub`, `Min`,
//! `Max`, `Add` (i64, for the distance indices), `Gather`, `Sigmoid`; all run in tract.

use std::path::Path;

use serde::Deserialize;

use onnx_build::graph::{Attr, FloatArray, GraphBuilder};

use super::checkpoint::EncoderCheckpoint;
use super::error::ImportError;
use super::hubert::{SpeechConfig, attention_weights, build_speech_graph};

/// HF's default `num_buckets`.
pub const DEFAULT_NUM_BUCKETS: usize = 320;

/// HF's default `max_bucket_distance`.
pub const DEFAULT_MAX_BUCKET_DISTANCE: usize = 800;

/// The largest `max_bucket_distance` accepted: the bias table grows with it.
const MAX_BUCKET_DISTANCE_LIMIT: usize = 100_000;

/// The relative position settings of a WavLM config (`num_buckets`,
/// `max_bucket_distance`), checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelativePositions {
    /// Buckets over both directions (`rel_attn_embed` has one row each).
    pub num_buckets: usize,
    /// The distance at which the logarithmic buckets end.
    pub max_distance: usize,
    /// The distance from which every larger one falls in the last bucket of its direction.
    pub saturation: usize,
}

/// The WavLM-only fields of `config.json` (the shared reader does not know them).
#[derive(Debug, Default, Deserialize)]
struct WavLmFields {
    num_buckets: Option<usize>,
    max_bucket_distance: Option<usize>,
}

impl RelativePositions {
    /// Reads `num_buckets` and `max_bucket_distance` from the checkpoint's `config.json`
    /// (HF's defaults, 320 and 800, where absent) and checks them.
    pub fn from_checkpoint(checkpoint: &EncoderCheckpoint) -> Result<Self, ImportError> {
        let path = checkpoint.config_path();
        let text = std::fs::read_to_string(path).map_err(|source| ImportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let fields: WavLmFields =
            serde_json::from_str(&text).map_err(|source| ImportError::ConfigParse {
                path: path.to_path_buf(),
                source,
            })?;
        Self::new(
            fields.num_buckets.unwrap_or(DEFAULT_NUM_BUCKETS),
            fields
                .max_bucket_distance
                .unwrap_or(DEFAULT_MAX_BUCKET_DISTANCE),
            path,
        )
    }

    /// Checks the settings (`config_path` names the file in errors) and finds the
    /// saturation distance.
    pub fn new(
        num_buckets: usize,
        max_distance: usize,
        config_path: &Path,
    ) -> Result<Self, ImportError> {
        let invalid = |field: &str, reason: String| ImportError::InvalidConfig {
            path: config_path.to_path_buf(),
            field: field.into(),
            reason,
        };
        if num_buckets < 4 {
            return Err(invalid(
                "num_buckets",
                format!("{num_buckets}: at least 4 are needed (two exact ones per direction)"),
            ));
        }
        let max_exact = num_buckets / 2 / 2;
        if max_distance <= max_exact {
            return Err(invalid(
                "max_bucket_distance",
                format!(
                    "{max_distance}: must exceed num_buckets / 4 = {max_exact}, where the \
                     logarithmic buckets start"
                ),
            ));
        }
        if max_distance > MAX_BUCKET_DISTANCE_LIMIT {
            return Err(ImportError::UnsupportedConfig {
                path: config_path.to_path_buf(),
                field: "max_bucket_distance".into(),
                value: max_distance.to_string(),
                reason: format!(
                    "the bias table would hold 2 × {max_distance} distances; at most \
                     {MAX_BUCKET_DISTANCE_LIMIT} is built"
                ),
            });
        }
        let last = num_buckets / 2 - 1;
        // Buckets grow with the distance; at `max_distance` the logarithm reaches the last
        // one (a little rounding may put it there one step later). Negative distances
        // have the lower half's buckets, the same for either sign.
        let saturation = (0..=2 * max_distance + 2)
            .find(|&r| relative_position_bucket(-(r as i64), num_buckets, max_distance) == last)
            .ok_or_else(|| {
                invalid(
                    "max_bucket_distance",
                    format!("the buckets never reach the last one below {max_distance}"),
                )
            })?;
        Ok(Self {
            num_buckets,
            max_distance,
            saturation,
        })
    }

    /// The bucket of every relative distance `−L..=L` (`L` the saturation distance), in
    /// that order.
    pub fn bucket_table(&self) -> Vec<usize> {
        let l = self.saturation as i64;
        (-l..=l)
            .map(|r| relative_position_bucket(r, self.num_buckets, self.max_distance))
            .collect()
    }
}

/// The bucket of relative distance `relative` (key position − query position), as
/// HF's `WavLMAttention._relative_positions_bucket` computes it in PyTorch: half the
/// buckets per direction (positive distances in the upper half), the first quarter exact,
/// then `⌊q + ln(r / q) / ln(max_distance / q) · (n/2 − q)⌋` (`q` = `num_buckets / 4`,
/// each step in f32, the divisor rounded from f64 as PyTorch rounds a Python float),
/// capped at the last bucket of the direction.
pub fn relative_position_bucket(relative: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = num_buckets / 2;
    let max_exact = half / 2;
    let base = if relative > 0 { half } else { 0 };
    let r = relative.unsigned_abs() as usize;
    if r < max_exact {
        return base + r;
    }
    let divisor = (max_distance as f64 / max_exact as f64).ln() as f32;
    let large = (r as f32 / max_exact as f32).ln() / divisor * (half - max_exact) as f32;
    // `as` truncates toward zero (PyTorch's `.to(torch.long)`) and saturates.
    let bucket = (max_exact as f32 + large) as i64;
    base + bucket.clamp(0, half as i64 - 1) as usize
}

/// Builds the WavLM graph for hidden states `indices` (ascending, each ≤
/// `num_hidden_layers`); reads the relative position settings from the config.
pub fn build_graph(
    checkpoint: &EncoderCheckpoint,
    config: &SpeechConfig,
    indices: &[usize],
) -> Result<GraphBuilder, ImportError> {
    let positions = RelativePositions::from_checkpoint(checkpoint)?;
    let mut position_bias: Option<String> = None;
    build_speech_graph(checkpoint, config, indices, &mut |g, _layer, prefix, x| {
        let p = format!("{prefix}.attention");
        let bias = match &position_bias {
            Some(bias) => bias.clone(),
            // Layer 0 (the first built) owns the table and computes the bias.
            None => {
                let embed = checkpoint.tensor(
                    &format!("{p}.rel_attn_embed.weight"),
                    &[positions.num_buckets, config.num_attention_heads],
                )?;
                let bias = relative_position_bias(g, &embed, &positions, &p, x)?;
                position_bias = Some(bias.clone());
                bias
            }
        };
        let gated = gated_bias(checkpoint, g, config, &p, x, &bias)?;
        let weights = attention_weights(checkpoint, config, &p)?;
        Ok(g.self_attention_with_bias(&p, x, weights, Some(&gated))?)
    })
}

/// `[1, heads, T, T]`: the relative position bias for the frames of `x [1, T, …]`, from
/// `embed` (`{p}.rel_attn_embed.weight`, `[num_buckets, heads]`; see the module docs).
fn relative_position_bias(
    g: &mut GraphBuilder,
    embed: &FloatArray,
    positions: &RelativePositions,
    p: &str,
    x: &str,
) -> Result<String, ImportError> {
    let heads = embed.shape().get(1).copied().unwrap_or(0);
    let buckets = positions.bucket_table();
    let width = buckets.len();
    // table[h, r + L] = embed[bucket(r), h]
    let mut table = vec![0f32; heads * width];
    for (column, &bucket) in buckets.iter().enumerate() {
        for h in 0..heads {
            table[h * width + column] = embed.data()[bucket * heads + h];
        }
    }
    let name = format!("{p}.rel_attn_embed");
    let table = g.initializer(
        &format!("{name}.by_distance"),
        FloatArray::new(vec![heads, width], table)?,
    );

    // Frame positions 0..T, from x's time axis.
    let frames = g.node(
        "Shape",
        &format!("{name}.frames"),
        &[x],
        vec![("start", Attr::Int(1)), ("end", Attr::Int(2))],
    );
    let axis0 = g.const_i64(&format!("{name}.axis0"), &[0]);
    let frames = g.node(
        "Squeeze",
        &format!("{name}.frames.scalar"),
        &[&frames, &axis0],
        vec![],
    );
    let zero = g.const_i64(&format!("{name}.zero"), &[0]);
    let zero = g.node(
        "Squeeze",
        &format!("{name}.zero.scalar"),
        &[&zero, &axis0],
        vec![],
    );
    let one = g.const_i64(&format!("{name}.one"), &[1]);
    let one = g.node(
        "Squeeze",
        &format!("{name}.one.scalar"),
        &[&one, &axis0],
        vec![],
    );
    let position = g.node(
        "Range",
        &format!("{name}.positions"),
        &[&zero, &frames, &one],
        vec![],
    );
    let query = g.unsqueeze(&format!("{name}.query_positions"), &position, &[1]);
    let key = g.unsqueeze(&format!("{name}.key_positions"), &position, &[0]);
    // [T, T]: j − i, clipped to ±L, shifted to 0..=2L.
    let relative = g.node("Sub", &format!("{name}.relative"), &[&key, &query], vec![]);
    let l = positions.saturation as i64;
    let upper = g.const_i64(&format!("{name}.max_distance"), &[l]);
    let lower = g.const_i64(&format!("{name}.min_distance"), &[-l]);
    let relative = g.node(
        "Min",
        &format!("{name}.clip_upper"),
        &[&relative, &upper],
        vec![],
    );
    let relative = g.node(
        "Max",
        &format!("{name}.clip_lower"),
        &[&relative, &lower],
        vec![],
    );
    let index = g.node(
        "Add",
        &format!("{name}.index"),
        &[&relative, &upper],
        vec![],
    );
    // [heads, T, T] → [1, heads, T, T]
    let bias = g.node(
        "Gather",
        &format!("{name}.bias"),
        &[&table, &index],
        vec![("axis", Attr::Int(1))],
    );
    Ok(g.unsqueeze(&format!("{name}.bias.batch"), &bias, &[0]))
}

/// `[1, heads, T, T]`: `bias` scaled by this layer's gate for each head and query frame
/// (see the module docs), from `x [1, T, hidden]` and `{p}.gru_rel_pos_linear`,
/// `{p}.gru_rel_pos_const`.
fn gated_bias(
    checkpoint: &EncoderCheckpoint,
    g: &mut GraphBuilder,
    config: &SpeechConfig,
    p: &str,
    x: &str,
    bias: &str,
) -> Result<String, ImportError> {
    let (hidden, heads) = (config.hidden_size, config.num_attention_heads);
    let head_dim = hidden / heads;
    let name = format!("{p}.gru_rel_pos");
    let linear = checkpoint.linear_weights(&format!("{name}_linear"), 8, head_dim)?;
    let constant = checkpoint.tensor(&format!("{name}_const"), &[1, heads, 1, 1])?;
    let (weight, linear_bias) = (linear.weight.data(), linear.bias.as_ref());

    // Gate half `half` (0: outputs 0..4, `a`; 1: outputs 4..8, `b`) as one block-diagonal
    // product [hidden, heads]: column h reads head h's slice of x.
    let mut gate_input = |half: usize, label: &str| -> Result<String, ImportError> {
        let rows = half * 4..half * 4 + 4;
        let mut w = vec![0f32; hidden * heads];
        for k in 0..head_dim {
            let summed: f64 = rows
                .clone()
                .map(|o| f64::from(weight[o * head_dim + k]))
                .sum();
            for h in 0..heads {
                w[(h * head_dim + k) * heads + h] = summed as f32;
            }
        }
        let b: f64 = match linear_bias {
            Some(b) => rows.clone().map(|o| f64::from(b.data()[o])).sum(),
            None => 0.0,
        };
        let y = g.linear_in_out(
            &format!("{name}.{label}"),
            x,
            FloatArray::new(vec![hidden, heads], w)?,
            Some(FloatArray::new(vec![heads], vec![b as f32; heads])?),
        )?;
        Ok(g.node("Sigmoid", &format!("{name}.{label}.sigmoid"), &[&y], vec![]))
    };
    let a = gate_input(0, "gate_a")?;
    let b = gate_input(1, "gate_b")?;

    // g = a · (b · c − 1) + 2, [1, T, heads]
    let c = g.initializer(
        &format!("{name}_const"),
        FloatArray::new(vec![heads], constant.into_data())?,
    );
    let one = g.scalar_f32(&format!("{name}.one"), 1.0);
    let two = g.scalar_f32(&format!("{name}.two"), 2.0);
    let bc = g.node("Mul", &format!("{name}.b_const"), &[&b, &c], vec![]);
    let bc = g.node(
        "Sub",
        &format!("{name}.b_const_minus_1"),
        &[&bc, &one],
        vec![],
    );
    let gate = g.node("Mul", &format!("{name}.a_times"), &[&a, &bc], vec![]);
    let gate = g.node("Add", &format!("{name}.gate"), &[&gate, &two], vec![]);
    // [1, heads, T, 1] × [1, heads, T, T]
    let gate = g.transpose(&format!("{name}.gate.heads"), &gate, &[0, 2, 1]);
    let gate = g.unsqueeze(&format!("{name}.gate.column"), &gate, &[3]);
    Ok(g.node("Mul", &format!("{name}.bias"), &[&gate, bias], vec![]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buckets PyTorch gives for HF's defaults (320 buckets, max distance 800), computed
    /// with transformers' `_relative_positions_bucket` on torch 2.x (CPU, f32).
    #[test]
    fn buckets_match_pytorch_at_the_defaults() {
        let cases: &[(i64, usize)] = &[
            (0, 0),
            (1, 161),
            (-1, 1),
            (79, 239),
            (-79, 79),
            (80, 240),
            (-80, 80),
            (100, 247),
            (-100, 87),
            (200, 271),
            (400, 295),
            (-776, 158),
            (799, 319),
            (800, 319),
            (-5000, 159),
        ];
        for &(r, want) in cases {
            assert_eq!(
                relative_position_bucket(r, DEFAULT_NUM_BUCKETS, DEFAULT_MAX_BUCKET_DISTANCE),
                want,
                "distance {r}"
            );
        }
    }

    /// The bias subgraph equals `embed[bucket(j − i), h]` at every frame count, including
    /// ones far beyond the saturation distance (where the distances are clipped).
    #[test]
    fn bias_graph_matches_the_definition_at_any_length() {
        use onnx_build::graph::{Dim, ElemType};
        use tract_onnx::prelude::*;

        let (buckets, max_distance, heads) = (12, 9, 3);
        let positions =
            RelativePositions::new(buckets, max_distance, Path::new("config.json")).expect("ok");
        let embed: Vec<f32> = (0..buckets * heads)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let embed = FloatArray::new(vec![buckets, heads], embed).expect("shape");
        let mut g = GraphBuilder::new("t");
        let x = g.input(
            "x",
            ElemType::F32,
            &[Dim::Fixed(1), Dim::sym("frames"), Dim::Fixed(2)],
        );
        let bias = relative_position_bias(&mut g, &embed, &positions, "a", &x).expect("graph");
        g.output(
            "bias",
            &bias,
            ElemType::F32,
            &[
                Dim::Fixed(1),
                Dim::Fixed(heads as i64),
                Dim::sym("frames"),
                Dim::sym("frames"),
            ],
        )
        .expect("output");
        let bytes = g.into_bytes();
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .expect("reads")
            .into_optimized()
            .expect("optimises")
            .into_runnable()
            .expect("runnable");
        let l = positions.saturation;
        for frames in [1, 2, l, l + 1, 2 * l + 5, 40] {
            let input = Tensor::zero::<f32>(&[1, frames, 2]).expect("input");
            let out = model.run(tvec!(input.into())).expect("runs");
            let out = out[0].to_plain_array_view::<f32>().expect("f32");
            assert_eq!(out.shape(), &[1, heads, frames, frames]);
            for h in 0..heads {
                for i in 0..frames {
                    for j in 0..frames {
                        let bucket =
                            relative_position_bucket(j as i64 - i as i64, buckets, max_distance);
                        assert_eq!(
                            out[[0, h, i, j]],
                            embed.data()[bucket * heads + h],
                            "T {frames} h {h} i {i} j {j}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn table_saturates_and_is_symmetric_in_magnitude() {
        let p = Path::new("config.json");
        let rel = RelativePositions::new(320, 800, p).expect("defaults are valid");
        assert!(rel.saturation > 700 && rel.saturation <= 800, "{rel:?}");
        let table = rel.bucket_table();
        assert_eq!(table.len(), 2 * rel.saturation + 1);
        let l = rel.saturation;
        assert_eq!(table[l], 0);
        assert_eq!(table[0], 159);
        assert_eq!(table[2 * l], 319);
        // Beyond the table every distance has the table's end bucket.
        for r in l..l + 2000 {
            assert_eq!(relative_position_bucket(r as i64, 320, 800), 319);
            assert_eq!(relative_position_bucket(-(r as i64), 320, 800), 159);
        }
        // Monotone in each direction.
        assert!(table[l..].windows(2).all(|w| w[0] <= w[1]));
        assert!(table[..=l].windows(2).all(|w| w[0] >= w[1]));

        assert!(matches!(
            RelativePositions::new(2, 800, p),
            Err(ImportError::InvalidConfig { .. })
        ));
        assert!(matches!(
            RelativePositions::new(320, 80, p),
            Err(ImportError::InvalidConfig { .. })
        ));
        assert!(matches!(
            RelativePositions::new(320, 1_000_000, p),
            Err(ImportError::UnsupportedConfig { .. })
        ));
        let small = RelativePositions::new(4, 3, p).expect("tiny settings");
        // 2 buckets per direction, 1 exact: distance 0 → 0, ±1 and beyond → the last.
        assert_eq!(small.saturation, 1);
        assert_eq!(small.bucket_table(), vec![1, 0, 3]);
    }
}
