//! What an export is asked to do: which split's runs, which encoders, which variants.

use std::path::{Path, PathBuf};

use crate::data::manifest::CorpusManifest;
use crate::data::splits::Split;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest<'a> {
    /// The corpus manifest (test utterances, vocabulary).
    pub manifest: &'a CorpusManifest,
    /// The split whose runs are exported.
    pub split: &'a Split,
    /// Content id of the splits file.
    pub splits_id: &'a str,
    /// Seed of the splits.
    pub seed: u64,
    /// The corpus folder, for provenance.
    pub data: String,
    /// The feature cache the heads were trained on.
    pub features: &'a Path,
    /// Where the runs are (RUNS/{model}/{split}).
    pub runs: &'a Path,
    /// The speech encoder graph the features came from.
    pub speech_encoder: &'a Path,
    /// The text encoder graph the text features came from.
    pub text_encoder: &'a Path,
    /// Its tokenizer.json.
    pub tokenizer: &'a Path,
    /// Also put the text encoder in the bundle (for transcripts outside the vocabulary).
    pub include_text_encoder: bool,
    /// The variants to write (fp32 is always written: it is the reference).
    pub precisions: Vec<Precision>,
    /// The bundle directory to write (replaced whole).
    pub out: &'a Path,
    /// Progress bars.
    pub progress: bool,
}

/// Choices about what goes into the bundle beyond [`ExportRequest`], each off by default.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Leave the keyword spotter out even when one was trained for the split (the board
    /// then relies on the kiosk prompt for text).
    pub skip_keyword_spotter: bool,
    /// The Silero VAD graph to put in the bundle (checked to load at 16 kHz first;
    /// [`super::vad`]); `None` leaves the bundle without a neural VAD. The CLI's default
    /// is the committed graph ([`super::vad::default_vad_file`]).
    pub vad: Option<PathBuf>,
}

/// A precision variant of the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Precision {
    /// Everything in 32-bit float, as trained.
    Fp32,
    /// Weight matrix products (encoder transformer, head projections) in int8 with
    /// per-run symmetric activation quantisation ([`onnx_build::quantize`]); convolutions and
    /// LSTMs stay float.
    Int8,
}

impl Precision {
    /// The variant's name in the bundle.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        }
    }

    pub(super) fn description(self) -> &'static str {
        match self {
            Precision::Fp32 => "32-bit float throughout, as trained",
            Precision::Int8 => {
                "int8 weight matrix products (MatMulInteger; weights per output channel) in the speech encoder's transformer, with activation scales calibrated on training utterances, and in the heads' larger projections, with activations quantised symmetrically per run; the speech encoder's conv feature encoder and positional conv, the heads' Conv1d and LSTMs stay float"
            }
        }
    }
}
