//! The neural detector: Silero VAD's speech probability per 32 ms chunk, with
//! hysteresis: outside an utterance a chunk is voiced from `vad_onset`, inside one until
//! it falls below `vad_offset` (as Silero's own `get_speech_timestamps` does, 0.5 and
//! 0.35), so a soft syllable does not end the utterance.
//!
//! The probability does not depend on the level, so a loud steady background (fans,
//! babble) does not need a floor to be learnt first; the cost is the graph, about
//! 50 µs per 32 ms chunk on one x86 core.

use emotion_core::vad::{VadError, VadModel, VadStream};

use super::SegmenterConfig;

/// The Silero detector of one stream.
#[derive(Debug)]
pub(super) struct NeuralDetector {
    stream: VadStream,
    onset: f32,
    offset: f32,
    /// The last chunk's probability (for display and tests).
    last: Option<f32>,
}

impl NeuralDetector {
    pub(super) fn new(model: &VadModel, config: &SegmenterConfig) -> Result<Self, VadError> {
        Ok(NeuralDetector {
            stream: model.stream()?,
            onset: config.vad_onset,
            offset: config.vad_offset,
            last: None,
        })
    }

    /// Samples per frame: the graph's chunk.
    pub(super) fn frame_len(&self) -> usize {
        self.stream.chunk_len()
    }

    /// Whether a frame is voiced; `in_utterance` selects the threshold. Non-finite
    /// samples count as silence, as for the energy detector.
    pub(super) fn voiced(&mut self, frame: &[f32], in_utterance: bool) -> Result<bool, VadError> {
        let probability = if frame.iter().all(|x| x.is_finite()) {
            self.stream.push_chunk(frame)?
        } else {
            let clean: Vec<f32> = frame
                .iter()
                .map(|&x| if x.is_finite() { x } else { 0.0 })
                .collect();
            self.stream.push_chunk(&clean)?
        };
        self.last = Some(probability);
        let threshold = if in_utterance {
            self.offset
        } else {
            self.onset
        };
        Ok(probability >= threshold)
    }

    /// The last chunk's speech probability.
    pub(super) fn last_probability(&self) -> Option<f32> {
        self.last
    }

    /// A stream ended: the next one starts with fresh state.
    pub(super) fn reset(&mut self) {
        self.stream.reset();
        self.last = None;
    }
}
