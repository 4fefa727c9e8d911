//! `host-trainer encoders run`: every hidden state an encoder graph exposes, written as
//! safetensors in the layout HF conformance vectors use (`hidden_states.{i}`,
//! `[1, T, H]`, f32; plus `input_values` or `input_ids`), so an import can be checked
//! against a reference from the command line.

use std::collections::HashMap;
use std::path::Path;

use emotion_core::encoder::{EncoderGraph, EncoderInput, HiddenState};
use emotion_core::tokenizer::TranscriptTokenizer;
use emotion_core::{Frontend, FrontendConfig};
use safetensors::tensor::{Dtype, TensorView};

/// What to feed the encoder.
#[derive(Debug, Clone)]
pub enum DumpInput<'a> {
    /// A WAV file, through the shared front-end.
    Wav(&'a Path, FrontendConfig),
    /// A transcript and the tokenizer to read it with.
    Text(&'a str, &'a Path),
}

/// Runs `graph` on `input` and writes the hidden states to `out`; returns them.
pub fn dump_hidden_states(
    graph: &EncoderGraph,
    input: DumpInput<'_>,
    out: &Path,
) -> anyhow::Result<Vec<HiddenState>> {
    let (states, input_tensor) = match input {
        DumpInput::Wav(wav, config) => {
            let samples = Frontend::new(config).process_file(wav)?;
            let states = graph.run(EncoderInput::Audio(&samples))?;
            let bytes: Vec<u8> = samples.iter().flat_map(|x| x.to_le_bytes()).collect();
            (states, ("input_values", Dtype::F32, samples.len(), bytes))
        }
        DumpInput::Text(text, tokenizer) => {
            let ids = TranscriptTokenizer::from_file(tokenizer)?.encode(text)?;
            let states = graph.run(EncoderInput::TokenIds(&ids))?;
            let bytes: Vec<u8> = ids.iter().flat_map(|x| x.to_le_bytes()).collect();
            (states, ("input_ids", Dtype::I64, ids.len(), bytes))
        }
    };
    let state_bytes: Vec<Vec<u8>> = states
        .iter()
        .map(|s| s.data.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::new();
    for (state, bytes) in states.iter().zip(&state_bytes) {
        views.push((
            format!("hidden_states.{}", state.index),
            TensorView::new(Dtype::F32, vec![1, state.frames, state.dim], bytes)?,
        ));
    }
    let (name, dtype, len, bytes) = &input_tensor;
    views.push((
        name.to_string(),
        TensorView::new(*dtype, vec![1, *len], bytes)?,
    ));
    let metadata = HashMap::from([(
        "hidden_states".to_string(),
        states
            .iter()
            .map(|s| s.index.to_string())
            .collect::<Vec<_>>()
            .join(","),
    )]);
    let file = safetensors::serialize(views, Some(metadata))?;
    emotion_core::fs::write_atomically(out, &file)?;
    Ok(states)
}
