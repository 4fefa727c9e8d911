//! A neural voice-activity detector: Silero VAD (MIT; the `silero-vad` PyPI package's
//! `silero_vad_op18_ifless.onnx`) run with tract, streamed chunk by chunk.
//!
//! Graph contract (checked at load):
//! - inputs `input` f32 `[1, context + chunk]`, `state` f32 `[2, 1, 128]` (the LSTM's
//!   h and c, zeros at the start of a stream), and `sr` i64 (16000 or 8000);
//! - outputs `output` f32 `[1, 1]`, the speech probability of the chunk, and `stateN`,
//!   the state for the next chunk.
//!
//! 16 kHz: chunks of 512 samples (32 ms) with 64 samples of context; 8 kHz: 256 and 32.
//! Each call sees the last `context` samples of the previous chunk, then the chunk
//! (zeros before the first), exactly as the package's own `OnnxWrapper` feeds it. With
//! that rule the probabilities match onnxruntime's to 2e-6 (measured on 880 chunks).
//!
//! `sr` is baked into the graph as a constant before optimisation, so tract folds the
//! graph's top-level `If (sr == 16000)` away and plans only the branch for the rate. The
//! export's `batch` annotations on values and outputs are ignored (they are hints, and
//! tract cannot unify a symbolic batch with our batch of 1).
//!
//! tract does not carry NaN through this graph (NaN weights give finite outputs), so a
//! damaged file is caught by the bundle's SHA-256, not by looking at the output; the
//! input is refused when it is not finite.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::ops::konst::Const;

/// The detector kind a bundle names for this graph contract.
pub const SILERO_KIND: &str = "silero-vad";
/// The file name a bundle gives it.
pub const SILERO_FILE: &str = "vad.silero.onnx";
/// SHA-256 of the graph this project ships (silero-vad 6.2.3's
/// `silero_vad_op18_ifless.onnx`, the one tract loads; see `data/vad/README.md`).
pub const SILERO_SHA256: &str = "7671cd04b004e9076da0d4a7b1a5aec36adf161c39230c1cb94a4fd5db6bbd28";

const STATE_SHAPE: [usize; 3] = [2, 1, 128];

/// Why a VAD graph cannot be loaded or run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VadError {
    /// Zero bytes.
    #[error("VAD model {0}: the file is empty")]
    Empty(String),
    /// Not an ONNX graph tract can read, or one tract cannot plan.
    #[error("VAD model {name}: not a loadable Silero VAD graph ({detail})")]
    Load {
        /// The file.
        name: String,
        /// tract's error.
        detail: String,
    },
    /// An ONNX graph, but not with the Silero contract.
    #[error("VAD model {name}: {problem}; expected the Silero VAD graph (inputs input, state, sr)")]
    Contract {
        /// The file.
        name: String,
        /// What differs.
        problem: String,
    },
    /// A rate the graph has no branch for.
    #[error("Silero VAD runs at 16000 or 8000 Hz, not {0} Hz")]
    Rate(u32),
    /// Running a chunk failed.
    #[error("VAD: {0}")]
    Run(String),
}

/// A loaded VAD graph for one sample rate; [`VadModel::stream`] makes a detector per
/// stream (they share the plan).
#[derive(Debug, Clone)]
pub struct VadModel {
    plan: Arc<TypedSimplePlan>,
    rate_hz: u32,
    chunk: usize,
    context: usize,
}

impl VadModel {
    /// Loads and plans the graph in `bytes` for `rate_hz`; `name` is used in errors.
    pub fn from_bytes(bytes: &[u8], name: &str, rate_hz: u32) -> Result<Self, VadError> {
        let (chunk, context) = match rate_hz {
            16_000 => (512, 64),
            8_000 => (256, 32),
            other => return Err(VadError::Rate(other)),
        };
        if bytes.is_empty() {
            return Err(VadError::Empty(name.to_owned()));
        }
        let load = |detail: String| VadError::Load {
            name: name.to_owned(),
            detail,
        };
        let contract = |problem: String| VadError::Contract {
            name: name.to_owned(),
            problem,
        };
        let mut model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .with_ignore_output_shapes(true)
            .model_for_read(&mut &bytes[..])
            .map_err(|e| load(format!("{e:#}")))?;
        let outlets = model
            .input_outlets()
            .map_err(|e| load(e.to_string()))?
            .to_vec();
        let names: Vec<String> = outlets
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        let position = |n: &str| names.iter().position(|x| x == n);
        let (Some(input), Some(state), Some(sr)) =
            (position("input"), position("state"), position("sr"))
        else {
            return Err(contract(format!("its inputs are {names:?}")));
        };
        if names.len() != 3 {
            return Err(contract(format!("its inputs are {names:?}")));
        }
        let rate = tensor0(i64::from(rate_hz)).into_arc_tensor();
        let node = model.node_mut(outlets[sr].node);
        node.op = Box::new(Const::new(rate.clone()).map_err(|e| load(e.to_string()))?);
        node.outputs[0].fact = InferenceFact::from((*rate).clone());
        let model = model
            .set_input_outlets(&[outlets[input], outlets[state]])
            .and_then(|()| {
                model
                    .clone()
                    .with_input_fact(0, f32::fact([1, context + chunk]).into())?
                    .with_input_fact(1, f32::fact(STATE_SHAPE).into())?
                    .into_optimized()
            })
            .map_err(|e| load(format!("{e:#}")))?;
        let shape = |i: usize| {
            model
                .output_fact(i)
                .ok()
                .and_then(|f| f.shape.as_concrete().map(<[usize]>::to_vec))
        };
        let outputs = model.output_outlets().map_or(0, <[OutletId]>::len);
        if outputs != 2
            || shape(0).as_deref() != Some(&[1, 1][..])
            || shape(1).as_deref() != Some(&STATE_SHAPE[..])
        {
            return Err(contract(format!(
                "{outputs} outputs, shapes {:?} and {:?} (expected [1, 1] and [2, 1, 128])",
                shape(0),
                shape(1)
            )));
        }
        let plan = model.into_runnable().map_err(|e| load(format!("{e:#}")))?;
        Ok(VadModel {
            plan,
            rate_hz,
            chunk,
            context,
        })
    }

    /// The rate it was planned for.
    pub fn rate_hz(&self) -> u32 {
        self.rate_hz
    }

    /// Samples per chunk: 512 at 16 kHz, 256 at 8 kHz.
    pub fn chunk_len(&self) -> usize {
        self.chunk
    }

    /// A detector for one stream, at its start.
    pub fn stream(&self) -> Result<VadStream, VadError> {
        let zero: TValue = Tensor::zero::<f32>(&STATE_SHAPE)
            .map_err(|e| VadError::Run(e.to_string()))?
            .into();
        Ok(VadStream {
            state: self
                .plan
                .spawn()
                .map_err(|e| VadError::Run(e.to_string()))?,
            lstm: zero.clone(),
            zero,
            window: vec![0.0; self.context + self.chunk],
            chunk: self.chunk,
            context: self.context,
        })
    }
}

/// One stream's detector: the graph's recurrent state and context carried from chunk
/// to chunk.
pub struct VadStream {
    state: TypedSimpleState,
    lstm: TValue,
    zero: TValue,
    /// Context then chunk: the graph's input.
    window: Vec<f32>,
    chunk: usize,
    context: usize,
}

impl std::fmt::Debug for VadStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VadStream")
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

impl VadStream {
    /// Samples per chunk.
    pub fn chunk_len(&self) -> usize {
        self.chunk
    }

    /// The speech probability of exactly one chunk ([`VadStream::chunk_len`] samples).
    /// Non-finite samples are refused (tract would not carry them to the output).
    pub fn push_chunk(&mut self, chunk: &[f32]) -> Result<f32, VadError> {
        if chunk.len() != self.chunk {
            return Err(VadError::Run(format!(
                "a chunk of {} samples, expected {}",
                chunk.len(),
                self.chunk
            )));
        }
        if let Some(bad) = chunk.iter().find(|s| !s.is_finite()) {
            return Err(VadError::Run(format!("non-finite sample {bad}")));
        }
        self.window[self.context..].copy_from_slice(chunk);
        let run = |e: TractError| VadError::Run(format!("{e:#}"));
        let input = Tensor::from_shape(&[1, self.window.len()], &self.window).map_err(run)?;
        let outputs = self
            .state
            .run(tvec!(input.into(), self.lstm.clone()))
            .map_err(run)?;
        let probability = outputs[0]
            .to_plain_array_view::<f32>()
            .map_err(run)?
            .iter()
            .next()
            .copied()
            .ok_or_else(|| VadError::Run("an empty output".to_owned()))?;
        if !probability.is_finite() {
            return Err(VadError::Run(format!(
                "a non-finite probability ({probability})"
            )));
        }
        self.lstm = outputs[1].clone();
        let n = self.window.len();
        self.window.copy_within(n - self.context.., 0);
        Ok(probability)
    }

    /// Back to the start of a stream: zero state, zero context.
    pub fn reset(&mut self) {
        self.lstm = self.zero.clone();
        self.window.fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model this project ships, with the demo bundle.
    pub(crate) fn shipped_model() -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/vad/silero_vad_op18_ifless.onnx");
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A 200 Hz-ish buzz with harmonics, the shape of a voiced vowel, amplitude 0.3.
    fn vowel(samples: usize, rate: u32) -> Vec<f32> {
        (0..samples)
            .map(|i| {
                let t = i as f32 / rate as f32;
                (1..=8)
                    .map(|h| (2.0 * std::f32::consts::PI * 180.0 * h as f32 * t).sin() / h as f32)
                    .sum::<f32>()
                    * 0.15
            })
            .collect()
    }

    #[test]
    fn the_shipped_model_has_the_pinned_digest() {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(shipped_model());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, SILERO_SHA256);
    }

    #[test]
    fn silence_is_not_speech_and_probabilities_are_probabilities() {
        for rate in [16_000, 8_000] {
            let model = VadModel::from_bytes(&shipped_model(), "silero", rate).unwrap();
            let mut stream = model.stream().unwrap();
            let chunk = model.chunk_len();
            assert_eq!(chunk, if rate == 16_000 { 512 } else { 256 });
            let silence = vec![0.0; chunk];
            for _ in 0..20 {
                let p = stream.push_chunk(&silence).unwrap();
                assert!((0.0..0.1).contains(&p), "{rate} Hz silence: {p}");
            }
            let buzz = vowel(chunk * 30, rate);
            let ps: Vec<f32> = buzz
                .chunks(chunk)
                .map(|c| stream.push_chunk(c).unwrap())
                .collect();
            assert!(ps.iter().all(|p| (0.0..=1.0).contains(p)), "{ps:?}");
        }
    }

    #[test]
    fn state_is_carried_and_reset_starts_over() {
        let model = VadModel::from_bytes(&shipped_model(), "silero", 16_000).unwrap();
        let audio = vowel(512 * 12, 16_000);
        let run = |stream: &mut VadStream| -> Vec<f32> {
            audio
                .chunks(512)
                .map(|c| stream.push_chunk(c).unwrap())
                .collect()
        };
        let mut stream = model.stream().unwrap();
        let first = run(&mut stream);
        let carried = run(&mut stream);
        stream.reset();
        let again = run(&mut stream);
        assert_eq!(first, again, "reset gives the start-of-stream answers");
        assert_ne!(first, carried, "the state carries from chunk to chunk");
        let mut other = model.stream().unwrap();
        assert_eq!(
            run(&mut other),
            first,
            "streams of one model do not share state"
        );
    }

    #[test]
    fn bad_models_rates_and_chunks_are_errors() {
        let good = shipped_model();
        assert!(matches!(
            VadModel::from_bytes(&good, "x", 44_100),
            Err(VadError::Rate(44_100))
        ));
        assert!(matches!(
            VadModel::from_bytes(&[], "x", 16_000),
            Err(VadError::Empty(_))
        ));
        let truncated =
            VadModel::from_bytes(&good[..good.len() / 2], "half.onnx", 16_000).unwrap_err();
        assert!(matches!(truncated, VadError::Load { .. }), "{truncated}");
        assert!(truncated.to_string().contains("half.onnx"), "{truncated}");
        let mut corrupt = good.clone();
        corrupt[1000..5000]
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (i * 7919 % 251) as u8);
        assert!(VadModel::from_bytes(&corrupt, "x", 16_000).is_err());
        let head = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/demo-bundle/head_speech.fp32.onnx");
        let other =
            VadModel::from_bytes(&std::fs::read(head).unwrap(), "head.onnx", 16_000).unwrap_err();
        assert!(matches!(other, VadError::Contract { .. }), "{other}");

        let model = VadModel::from_bytes(&good, "x", 16_000).unwrap();
        let mut stream = model.stream().unwrap();
        assert!(stream.push_chunk(&[0.0; 100]).is_err());
        let mut nan = vec![0.0; 512];
        nan[7] = f32::NAN;
        assert!(
            stream
                .push_chunk(&nan)
                .unwrap_err()
                .to_string()
                .contains("non-finite")
        );
    }
}
