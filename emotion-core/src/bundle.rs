//! The model bundle: one directory that holds everything the board needs, and the
//! checks that make a broken bundle an error that names the file, never a wrong answer.
//!
//! ```text
//! bundle/
//!   manifest.bin          magic "EMOBNDL1", format version (u32 LE), postcard BundleManifest
//!   manifest.json         the same manifest, readable; must agree with manifest.bin
//!   speech_encoder.fp32.onnx, speech_encoder.int8.onnx   pruned HuBERT, one per variant
//!   head_speech.fp32.onnx, head_fusion.fp32.onnx, ...   heads, one per model and variant
//!   tokenizer.json, keywords.bin                          text side: tokenizer, keyword table
//!   text_encoder.onnx     optional: BERT, for transcripts outside the keyword table
//!   text_encoder.int8.onnx  optional (format 3): the int8 variant's own, quantised BERT
//!   vad.silero.onnx       optional (format 4): the neural voice-activity detector
//! ```
//!
//! The manifest records the labels, the front-end settings, the transcript template,
//! the encoders' layers and widths, the variants (fp32, int8, …) and the default one with
//! the reason it was chosen, the SHA-256 and size of every file, and provenance (data,
//! split, seed, metrics, the quantisation report).
//!
//! [`Bundle::open`] reads the manifest, refuses a newer format, checks that the JSON copy
//! agrees, that every file the manifest names is listed and present with its recorded
//! size; [`Bundle::read`] checks a file's SHA-256 as it reads it (the pipeline reads every
//! file it uses through it, [`Bundle::vad_model`] the VAD), and [`Bundle::verify`] hashes
//! every file.

pub mod error;
pub mod keywords;
pub mod writer;

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::FrontendConfig;
use crate::features::LayerCombination;
use crate::head_graph::ModelKind;
use crate::labels::Emotion;
use crate::vad::{SILERO_KIND, VadModel};

pub use error::BundleError;
pub use keywords::{KeywordEntry, KeywordTable};
pub use writer::BundleWriter;

/// The bundle format this program writes and the newest it reads.
/// Format 2 added the keyword-spotting head; format 3 a text encoder per variant
/// ([`Variant::text_encoder`], the int8 variant's quantised BERT); format 4 the neural
/// voice-activity detector ([`BundleManifest::vad`]) and the open-set spotter's "not a
/// keyword" threshold and measured rates ([`KeywordSpotterSpec::open_set`]).
pub const FORMAT_VERSION: u32 = 4;
/// The oldest bundle format this program reads: a format-2 bundle loads as it is (every
/// variant uses the manifest's text encoder), a format-2 or 3 bundle has no VAD and a
/// closed-set spotter, and an older manifest is written back in its own format.
pub const OLDEST_FORMAT: u32 = 2;
/// The manifest, binary (authoritative).
pub const MANIFEST_FILE: &str = "manifest.bin";
/// The manifest, readable copy.
pub const MANIFEST_JSON: &str = "manifest.json";
/// First bytes of [`MANIFEST_FILE`].
pub const MAGIC: &[u8; 8] = b"EMOBNDL1";

/// Everything about a bundle except the file contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleManifest {
    /// Bundle format version ([`FORMAT_VERSION`] when written by this program).
    pub format: u32,
    /// The program that wrote it (`host-trainer 0.1.0`).
    pub created_by: String,
    /// Emotion names in logit order; must equal [`Emotion::ALL`].
    pub labels: Vec<String>,
    /// How audio must be prepared.
    pub frontend: FrontendConfig,
    /// The transcript template (`{word}`, `say the word {word}`).
    pub transcript_template: String,
    /// The speech encoder's outputs as the heads read them.
    pub speech: EncoderSpec,
    /// The text encoder's outputs as the heads read them.
    pub text: EncoderSpec,
    /// The tokenizer file (for open transcripts).
    pub tokenizer: String,
    /// The keyword table file.
    pub keywords: String,
    /// The text encoder file, if open transcripts are supported (the variants without
    /// their own [`Variant::text_encoder`] use it).
    pub text_encoder: Option<String>,
    /// The keyword-spotting head's words and threshold, if the bundle has one.
    pub keyword_spotter: Option<KeywordSpotterSpec>,
    /// The neural voice-activity detector (format 4), if the bundle has one; loaded by
    /// [`Bundle::vad_model`]. Absent from a format-3 JSON copy.
    #[serde(default)]
    pub vad: Option<VadSpec>,
    /// The variants, e.g. fp32 and int8.
    pub variants: Vec<Variant>,
    /// The variant used when none is asked for.
    pub default_variant: String,
    /// Why the default variant was chosen (from the quantisation report).
    pub default_reason: String,
    /// Every file of the bundle but the manifests, with its size and SHA-256.
    pub files: Vec<FileEntry>,
    /// Where the models come from and how good they are.
    pub provenance: BundleProvenance,
}

/// Which hidden states of an encoder, combined how, and how wide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderSpec {
    /// HF layer numbers.
    pub layers: Vec<usize>,
    /// How they are combined.
    pub combination: LayerCombination,
    /// Hidden size.
    pub dim: usize,
}

/// One precision variant: its speech encoder and its heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// `fp32`, `int8`, …
    pub name: String,
    /// What was quantised, in words.
    pub description: String,
    /// The speech encoder file.
    pub speech_encoder: String,
    /// One head file per model.
    pub heads: Vec<HeadFile>,
    /// The keyword-spotting head file (present when the manifest has a spotter).
    pub keyword_spotter: Option<String>,
    /// The variant's own text encoder file (format 3), e.g. the int8 variant's
    /// quantised BERT; `None`: the manifest's [`BundleManifest::text_encoder`], if any.
    /// Absent from a format-2 JSON copy.
    #[serde(default)]
    pub text_encoder: Option<String>,
}

impl Variant {
    /// The text encoder this variant runs on open transcripts: its own, else the
    /// manifest's, else none.
    pub fn text_encoder<'a>(&'a self, manifest: &'a BundleManifest) -> Option<&'a str> {
        self.text_encoder
            .as_deref()
            .or(manifest.text_encoder.as_deref())
    }
}

/// The keyword-spotting head: a head over the speech features whose outputs are the
/// corpus vocabulary, so the board can fill the transcript template without a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeywordSpotterSpec {
    /// The words, in the order of the graph's outputs; each is in the keyword table.
    pub words: Vec<String>,
    /// Below this probability the spotter abstains (chosen on the validation part);
    /// 1 means it never answers (no threshold was precise enough).
    pub min_confidence: f32,
    /// Accuracy on the split's test part when exported.
    pub test_accuracy: Option<f64>,
    /// How many test utterances that accuracy is over.
    pub test_utterances: usize,
    /// The open-set spotter's "not a keyword" threshold and what it lets through
    /// (format 4); `None`: a closed-set spotter, which always names a word. Absent from
    /// older JSON copies.
    #[serde(default)]
    pub open_set: Option<OpenSetSpec>,
}

/// An open-set spotter (its graph's last output is `<none>`, see
/// [`crate::keyword_spotter`]): the threshold on the probability that a vocabulary word
/// was said, and the rates measured at export with the fp32 variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenSetSpec {
    /// Below this probability that a vocabulary word was said (`1 − p(<none>)`), the
    /// board says "no word heard".
    pub keyword_threshold: f32,
    /// The false-accept rate the threshold was chosen for, on the calibration part.
    pub target_false_accept_rate: f64,
    /// Vocabulary words left out of the spotter's outputs and trained as "not a
    /// keyword" (the kiosk can still prompt them: the keyword table has them).
    pub held_out_words: Vec<String>,
    /// The variant the rates below were measured with.
    pub measured_variant: String,
    /// Where the threshold was chosen: false accepts at the threshold.
    pub calibration: MeasuredRate,
    /// False accepts on recorded speech of speakers the spotter never heard, none of it
    /// saying a vocabulary word; `None` when it was trained without recorded speech.
    pub false_accept: Option<MeasuredRate>,
    /// False accepts on the test part's utterances of the held-out words; `None`
    /// without held-out words.
    pub held_out_false_accept: Option<MeasuredRate>,
    /// False rejects ("no word heard") on the test part's utterances of the spotter's
    /// words.
    pub false_reject: MeasuredRate,
}

/// A rate measured on one part: `errors` of `utterances`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredRate {
    /// What the part holds, in words.
    pub part: String,
    /// Its speakers (`source/speaker` for recorded speech, corpus speakers otherwise).
    pub speakers: Vec<String>,
    /// Utterances (recorded speech: windows of at most a few seconds).
    pub utterances: usize,
    /// False accepts (or rejects).
    pub errors: usize,
    /// `errors / utterances` (0 when there are none).
    pub rate: f64,
}

impl MeasuredRate {
    /// `errors` of `utterances` on `part`.
    pub fn new(part: &str, speakers: Vec<String>, errors: usize, utterances: usize) -> Self {
        Self {
            part: part.to_string(),
            speakers,
            utterances,
            errors,
            rate: if utterances == 0 {
                0.0
            } else {
                errors as f64 / utterances as f64
            },
        }
    }
}

/// The voice-activity detector a bundle carries (format 4): which graph contract, which
/// file, at which rate the export checked that it loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VadSpec {
    /// The graph contract: [`SILERO_KIND`] (`silero-vad`) is the one this program runs.
    pub kind: String,
    /// The file ([`crate::vad::SILERO_FILE`] when host-trainer writes it).
    pub file: String,
    /// The sample rate the export loaded it at and the board feeds it (16000: the
    /// front-end's rate).
    pub rate_hz: u32,
}

/// A head graph of a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadFile {
    /// Which model.
    pub model: ModelKind,
    /// The file.
    pub file: String,
}

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Name inside the bundle directory.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// Where the bundle's models come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BundleProvenance {
    /// The corpus folder.
    pub data: String,
    /// The split the heads were trained on.
    pub split: String,
    /// Content id of the splits file.
    pub splits_id: String,
    /// Seed of splits and training.
    pub seed: u64,
    /// The encoders, in words (checkpoint, layers, digests).
    pub encoders: String,
    /// Test-split metrics of each model (burn, before export).
    pub metrics: Vec<ModelMetrics>,
    /// The quantisation report: one row per variant.
    pub variants: Vec<VariantReport>,
}

/// Test-split metrics of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetrics {
    /// Which model.
    pub model: ModelKind,
    /// Test utterances.
    pub utterances: usize,
    /// Accuracy in [0, 1].
    pub accuracy: f64,
    /// Macro-F1 in [0, 1].
    pub macro_f1: f64,
}

/// Measurements of one variant (the quantisation report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantReport {
    /// The variant.
    pub name: String,
    /// The model measured (the default model of the bundle).
    pub model: ModelKind,
    /// Speech encoder and heads, bytes.
    pub bytes: u64,
    /// Median tract latency (front-end, encoder, head) on 2 s of audio, one thread, ms.
    pub latency_ms_2s: f64,
    /// Fraction of test utterances predicted as the fp32 variant predicts them.
    pub agreement_with_fp32: f64,
    /// Test accuracy.
    pub accuracy: f64,
    /// Test macro-F1.
    pub macro_f1: f64,
}

/// Agreement with fp32, for every model, a quantised variant needs to be picked
/// automatically (the export's default, the board's choice).
pub const MIN_AGREEMENT: f64 = 0.99;
/// Macro-F1 a quantised variant may lose against fp32 and still be picked automatically.
pub const MAX_MACRO_F1_LOSS: f64 = 0.01;

/// How the variant `name` misses the accuracy bar ([`MIN_AGREEMENT`],
/// [`MAX_MACRO_F1_LOSS`]) against fp32 in these report rows; empty when it passes or
/// nothing is recorded for it.
pub fn accuracy_problems(rows: &[VariantReport], name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for row in rows.iter().filter(|r| r.name == name && name != "fp32") {
        let Some(reference) = rows
            .iter()
            .find(|r| r.name == "fp32" && r.model == row.model)
        else {
            continue;
        };
        if row.agreement_with_fp32 < MIN_AGREEMENT {
            problems.push(format!(
                "{} agrees with fp32 on {:.1}% (< {:.0}%)",
                row.model,
                100.0 * row.agreement_with_fp32,
                100.0 * MIN_AGREEMENT
            ));
        }
        if row.macro_f1 < reference.macro_f1 - MAX_MACRO_F1_LOSS {
            problems.push(format!(
                "{} loses {:.1} points of macro-F1",
                row.model,
                100.0 * (reference.macro_f1 - row.macro_f1)
            ));
        }
    }
    problems
}

impl BundleManifest {
    /// The variant called `name`, or the default one.
    pub fn variant(&self, name: Option<&str>) -> Result<&Variant, BundleError> {
        let name = name.unwrap_or(&self.default_variant);
        self.variants
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| BundleError::UnknownVariant {
                name: name.to_string(),
                available: self.variants.iter().map(|v| v.name.clone()).collect(),
            })
    }

    /// The listed file called `path`.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Every file the manifest refers to, with what it holds.
    pub fn referenced_files(&self) -> Vec<(&str, String)> {
        let mut files = vec![
            (self.tokenizer.as_str(), "the tokenizer".to_string()),
            (self.keywords.as_str(), "the keyword table".to_string()),
        ];
        if let Some(text) = &self.text_encoder {
            files.push((text.as_str(), "the text encoder".to_string()));
        }
        if let Some(vad) = &self.vad {
            files.push((
                vad.file.as_str(),
                format!(
                    "the voice-activity detector, {}; `host-trainer bundle add-vad --bundle DIR` puts one back",
                    vad.kind
                ),
            ));
        }
        for v in &self.variants {
            files.push((
                v.speech_encoder.as_str(),
                format!("the {} speech encoder", v.name),
            ));
            for h in &v.heads {
                files.push((h.file.as_str(), format!("the {} {} head", v.name, h.model)));
            }
            if let Some(file) = &v.keyword_spotter {
                files.push((file.as_str(), format!("the {} keyword spotter", v.name)));
            }
            if let Some(file) = &v.text_encoder {
                files.push((file.as_str(), format!("the {} text encoder", v.name)));
            }
        }
        files
    }

    /// The binary manifest: magic, format version, postcard payload.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BundleError> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&self.format.to_le_bytes());
        let payload = match self.format {
            4.. => postcard::to_stdvec(self),
            3 => postcard::to_stdvec(&legacy::ManifestV3::try_from(self)?),
            _ => postcard::to_stdvec(&legacy::ManifestV2::try_from(self)?),
        }
        .map_err(|e| BundleError::Write(format!("manifest: {e}")))?;
        bytes.extend_from_slice(&payload);
        Ok(bytes)
    }

    /// Parses a binary manifest; `path` is used in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, BundleError> {
        let not_a_bundle = |detail: String| BundleError::NotABundle {
            path: path.to_path_buf(),
            detail,
        };
        let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
            return Err(not_a_bundle(format!(
                "it does not start with {:?}",
                String::from_utf8_lossy(MAGIC)
            )));
        };
        let Some((version, payload)) = rest.split_first_chunk::<4>() else {
            return Err(not_a_bundle("it ends before the format version".into()));
        };
        let version = u32::from_le_bytes(*version);
        if version > FORMAT_VERSION {
            return Err(BundleError::NewerFormat {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if version < OLDEST_FORMAT {
            return Err(BundleError::OlderFormat {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let corrupt = |detail: String| BundleError::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        let manifest: BundleManifest = match version {
            4.. => postcard::from_bytes(payload),
            3 => postcard::from_bytes::<legacy::ManifestV3>(payload).map(BundleManifest::from),
            _ => postcard::from_bytes::<legacy::ManifestV2>(payload).map(BundleManifest::from),
        }
        .map_err(|e| corrupt(format!("the manifest does not decode ({e})")))?;
        if manifest.format != version {
            return Err(corrupt(format!(
                "the header says format {version}, the manifest {}",
                manifest.format
            )));
        }
        Ok(manifest)
    }
}

/// Formats 2 and 3, as postcard lays them out (postcard writes fields in order,
/// unnamed, so a field more is another layout): format 3 is format 4 without
/// [`BundleManifest::vad`] and [`KeywordSpotterSpec::open_set`]; format 2 is format 3
/// without [`Variant::text_encoder`].
mod legacy {
    use serde::{Deserialize, Serialize};

    use super::{
        BundleError, BundleManifest, BundleProvenance, EncoderSpec, FileEntry, HeadFile,
        KeywordSpotterSpec, Variant,
    };
    use crate::FrontendConfig;

    /// A voice-activity detector cannot be written in `m.format` (< 4).
    fn refuse_vad(m: &BundleManifest) -> Result<(), BundleError> {
        match &m.vad {
            Some(vad) => Err(BundleError::Write(format!(
                "the manifest has a voice-activity detector ({}), which bundle format {} cannot hold (format 4 can)",
                vad.file, m.format
            ))),
            None => Ok(()),
        }
    }

    /// The spotter of formats 2 and 3: closed set.
    #[derive(Serialize, Deserialize)]
    struct SpotterV3 {
        words: Vec<String>,
        min_confidence: f32,
        test_accuracy: Option<f64>,
        test_utterances: usize,
    }

    impl From<SpotterV3> for KeywordSpotterSpec {
        fn from(s: SpotterV3) -> Self {
            KeywordSpotterSpec {
                words: s.words,
                min_confidence: s.min_confidence,
                test_accuracy: s.test_accuracy,
                test_utterances: s.test_utterances,
                open_set: None,
            }
        }
    }

    fn spotter_v3(
        spec: &Option<KeywordSpotterSpec>,
        format: u32,
    ) -> Result<Option<SpotterV3>, BundleError> {
        let Some(s) = spec else {
            return Ok(None);
        };
        if s.open_set.is_some() {
            return Err(BundleError::Write(format!(
                "the keyword spotter is an open-set one, which bundle format {format} cannot hold (format 4 can)"
            )));
        }
        Ok(Some(SpotterV3 {
            words: s.words.clone(),
            min_confidence: s.min_confidence,
            test_accuracy: s.test_accuracy,
            test_utterances: s.test_utterances,
        }))
    }

    /// Format 3.
    #[derive(Serialize, Deserialize)]
    pub(super) struct ManifestV3 {
        format: u32,
        created_by: String,
        labels: Vec<String>,
        frontend: FrontendConfig,
        transcript_template: String,
        speech: EncoderSpec,
        text: EncoderSpec,
        tokenizer: String,
        keywords: String,
        text_encoder: Option<String>,
        keyword_spotter: Option<SpotterV3>,
        variants: Vec<Variant>,
        default_variant: String,
        default_reason: String,
        files: Vec<FileEntry>,
        provenance: BundleProvenance,
    }

    /// Format 2.
    #[derive(Serialize, Deserialize)]
    pub(super) struct ManifestV2 {
        format: u32,
        created_by: String,
        labels: Vec<String>,
        frontend: FrontendConfig,
        transcript_template: String,
        speech: EncoderSpec,
        text: EncoderSpec,
        tokenizer: String,
        keywords: String,
        text_encoder: Option<String>,
        keyword_spotter: Option<SpotterV3>,
        variants: Vec<VariantV2>,
        default_variant: String,
        default_reason: String,
        files: Vec<FileEntry>,
        provenance: BundleProvenance,
    }

    #[derive(Serialize, Deserialize)]
    struct VariantV2 {
        name: String,
        description: String,
        speech_encoder: String,
        heads: Vec<HeadFile>,
        keyword_spotter: Option<String>,
    }

    impl From<ManifestV3> for BundleManifest {
        fn from(m: ManifestV3) -> Self {
            BundleManifest {
                format: m.format,
                created_by: m.created_by,
                labels: m.labels,
                frontend: m.frontend,
                transcript_template: m.transcript_template,
                speech: m.speech,
                text: m.text,
                tokenizer: m.tokenizer,
                keywords: m.keywords,
                text_encoder: m.text_encoder,
                keyword_spotter: m.keyword_spotter.map(KeywordSpotterSpec::from),
                vad: None,
                variants: m.variants,
                default_variant: m.default_variant,
                default_reason: m.default_reason,
                files: m.files,
                provenance: m.provenance,
            }
        }
    }

    impl From<ManifestV2> for BundleManifest {
        fn from(m: ManifestV2) -> Self {
            BundleManifest {
                format: m.format,
                created_by: m.created_by,
                labels: m.labels,
                frontend: m.frontend,
                transcript_template: m.transcript_template,
                speech: m.speech,
                text: m.text,
                tokenizer: m.tokenizer,
                keywords: m.keywords,
                text_encoder: m.text_encoder,
                keyword_spotter: m.keyword_spotter.map(KeywordSpotterSpec::from),
                vad: None,
                variants: m
                    .variants
                    .into_iter()
                    .map(|v| Variant {
                        name: v.name,
                        description: v.description,
                        speech_encoder: v.speech_encoder,
                        heads: v.heads,
                        keyword_spotter: v.keyword_spotter,
                        text_encoder: None,
                    })
                    .collect(),
                default_variant: m.default_variant,
                default_reason: m.default_reason,
                files: m.files,
                provenance: m.provenance,
            }
        }
    }

    impl TryFrom<&BundleManifest> for ManifestV3 {
        type Error = BundleError;

        fn try_from(m: &BundleManifest) -> Result<Self, BundleError> {
            refuse_vad(m)?;
            let keyword_spotter = spotter_v3(&m.keyword_spotter, m.format)?;
            let m = m.clone();
            Ok(ManifestV3 {
                format: m.format,
                created_by: m.created_by,
                labels: m.labels,
                frontend: m.frontend,
                transcript_template: m.transcript_template,
                speech: m.speech,
                text: m.text,
                tokenizer: m.tokenizer,
                keywords: m.keywords,
                text_encoder: m.text_encoder,
                keyword_spotter,
                variants: m.variants,
                default_variant: m.default_variant,
                default_reason: m.default_reason,
                files: m.files,
                provenance: m.provenance,
            })
        }
    }

    impl TryFrom<&BundleManifest> for ManifestV2 {
        type Error = BundleError;

        fn try_from(m: &BundleManifest) -> Result<Self, BundleError> {
            let mut variants = Vec::with_capacity(m.variants.len());
            for v in &m.variants {
                if v.text_encoder.is_some() {
                    return Err(BundleError::Write(format!(
                        "variant `{}` has its own text encoder, which bundle format {} cannot hold (format 3 can)",
                        v.name, m.format
                    )));
                }
                variants.push(VariantV2 {
                    name: v.name.clone(),
                    description: v.description.clone(),
                    speech_encoder: v.speech_encoder.clone(),
                    heads: v.heads.clone(),
                    keyword_spotter: v.keyword_spotter.clone(),
                });
            }
            refuse_vad(m)?;
            let keyword_spotter = spotter_v3(&m.keyword_spotter, m.format)?;
            let m = m.clone();
            Ok(ManifestV2 {
                format: m.format,
                created_by: m.created_by,
                labels: m.labels,
                frontend: m.frontend,
                transcript_template: m.transcript_template,
                speech: m.speech,
                text: m.text,
                tokenizer: m.tokenizer,
                keywords: m.keywords,
                text_encoder: m.text_encoder,
                keyword_spotter,
                variants,
                default_variant: m.default_variant,
                default_reason: m.default_reason,
                files: m.files,
                provenance: m.provenance,
            })
        }
    }
}

/// An opened bundle: its directory and checked manifest.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
    manifest: BundleManifest,
}

impl Bundle {
    /// Opens the bundle in `dir`: reads and checks the manifest and its JSON copy, and
    /// checks that every file it refers to is listed, present and of the recorded size.
    /// Contents are checked by [`Bundle::read`] and [`Bundle::verify`].
    pub fn open(dir: &Path) -> Result<Self, BundleError> {
        if !dir.is_dir() {
            return Err(BundleError::Missing {
                path: dir.to_path_buf(),
                what: "the bundle directory".into(),
            });
        }
        let path = dir.join(MANIFEST_FILE);
        let bytes = read_file(&path, "the bundle manifest")?;
        let manifest = BundleManifest::from_bytes(&bytes, &path)?;

        let json_path = dir.join(MANIFEST_JSON);
        let json = read_file(&json_path, "the readable copy of the manifest")?;
        let copy: BundleManifest =
            serde_json::from_slice(&json).map_err(|e| BundleError::Corrupt {
                path: json_path.clone(),
                detail: format!("not a manifest ({e})"),
            })?;
        if copy != manifest {
            return Err(BundleError::Tampered {
                path: json_path,
                detail: format!("it no longer agrees with {MANIFEST_FILE}"),
            });
        }

        let labels: Vec<&str> = Emotion::ALL.iter().map(|e| e.name()).collect();
        if manifest.labels != labels {
            return Err(BundleError::Mismatch {
                path,
                detail: format!(
                    "labels {:?}, this program knows {labels:?}",
                    manifest.labels
                ),
            });
        }
        manifest.variant(None).map_err(|_| BundleError::Corrupt {
            path: path.clone(),
            detail: format!(
                "the default variant `{}` is not one of its variants",
                manifest.default_variant
            ),
        })?;
        if manifest.keyword_spotter.is_none()
            && let Some(v) = manifest
                .variants
                .iter()
                .find(|v| v.keyword_spotter.is_some())
        {
            return Err(BundleError::Corrupt {
                path: path.clone(),
                detail: format!(
                    "variant `{}` has a keyword spotter but the manifest lists no spotter words",
                    v.name
                ),
            });
        }
        for (file, what) in manifest.referenced_files() {
            let entry = manifest.file(file).ok_or_else(|| BundleError::Corrupt {
                path: path.clone(),
                detail: format!("it refers to {file} ({what}) but does not list it"),
            })?;
            let file_path = safe_join(dir, file).ok_or_else(|| BundleError::Corrupt {
                path: path.clone(),
                detail: format!("file name `{file}` leaves the bundle directory"),
            })?;
            let size = match std::fs::metadata(&file_path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(BundleError::Missing {
                        path: file_path,
                        what,
                    });
                }
                Err(source) => {
                    return Err(BundleError::Io {
                        path: file_path,
                        source,
                    });
                }
            };
            if size != entry.bytes {
                return Err(BundleError::Tampered {
                    path: file_path,
                    detail: format!("{size} bytes, the manifest says {}", entry.bytes),
                });
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> &BundleManifest {
        &self.manifest
    }

    /// Reads a listed file and checks its size and SHA-256.
    pub fn read(&self, file: &str) -> Result<Vec<u8>, BundleError> {
        let mut checked = self.open_file(file)?;
        let mut bytes = Vec::with_capacity(usize::try_from(checked.len()).unwrap_or(0));
        if let Err(source) = checked.read_to_end(&mut bytes) {
            return Err(checked.io_error(source));
        }
        checked.finish()?;
        Ok(bytes)
    }

    /// Opens a listed file to be read as a stream (a graph decoded as it is read, so
    /// that its bytes are never held whole); [`CheckedFile::finish`] checks its size and
    /// SHA-256 once it has been read, as [`Bundle::read`] does.
    pub fn open_file(&self, file: &str) -> Result<CheckedFile, BundleError> {
        let manifest_path = self.dir.join(MANIFEST_FILE);
        let entry = self
            .manifest
            .file(file)
            .ok_or_else(|| BundleError::Corrupt {
                path: manifest_path.clone(),
                detail: format!("{file} is not listed"),
            })?;
        let path = safe_join(&self.dir, file).ok_or_else(|| BundleError::Corrupt {
            path: manifest_path,
            detail: format!("file name `{file}` leaves the bundle directory"),
        })?;
        let handle = std::fs::File::open(&path).map_err(|source| file_error(&path, "", source))?;
        Ok(CheckedFile {
            path,
            file: handle,
            hasher: Sha256::new(),
            read: 0,
            expected_bytes: entry.bytes,
            expected_sha256: entry.sha256.clone(),
        })
    }

    /// Hashes every listed file (what [`Bundle::read`] does, for all of them).
    pub fn verify(&self) -> Result<(), BundleError> {
        for entry in &self.manifest.files {
            self.read(&entry.path)?;
        }
        Ok(())
    }

    /// Reads and checks the keyword table.
    pub fn keyword_table(&self) -> Result<KeywordTable, BundleError> {
        let file = &self.manifest.keywords;
        let path = self.dir.join(file);
        let bytes = self.read(file)?;
        let table: KeywordTable =
            postcard::from_bytes(&bytes).map_err(|e| BundleError::Corrupt {
                path: path.clone(),
                detail: format!("the keyword table does not decode ({e})"),
            })?;
        let spec = &self.manifest.text;
        let mismatch = |detail: String| BundleError::Mismatch {
            path: path.clone(),
            detail,
        };
        if table.layers != spec.layers
            || table.combination != spec.combination
            || table.dim != spec.dim
        {
            return Err(mismatch(format!(
                "keyword features of layers {:?} ({:?}, width {}), the heads read layers {:?} ({:?}, width {})",
                table.layers, table.combination, table.dim, spec.layers, spec.combination, spec.dim
            )));
        }
        if table.template != self.manifest.transcript_template {
            return Err(mismatch(format!(
                "keywords encoded with template `{}`, the bundle uses `{}`",
                table.template, self.manifest.transcript_template
            )));
        }
        table.check().map_err(mismatch)?;
        Ok(table)
    }

    /// The bundle's voice-activity detector, loaded and planned for samples at `rate_hz`
    /// (normally its [`VadSpec::rate_hz`], the front-end's 16000; Silero also runs at
    /// 8000), or `None` when the bundle has none (format 3, or exported with `--no-vad`).
    ///
    /// The file is read through [`Bundle::read`], so a changed file is
    /// [`BundleError::Tampered`]; a kind other than [`SILERO_KIND`] is
    /// [`BundleError::UnknownVad`]; a file that is intact but does not load (or a rate
    /// Silero has no branch for) is [`BundleError::Vad`] with the [`crate::vad::VadError`].
    pub fn vad_model(&self, rate_hz: u32) -> Result<Option<VadModel>, BundleError> {
        let Some(spec) = &self.manifest.vad else {
            return Ok(None);
        };
        let path = self.dir.join(&spec.file);
        if spec.kind != SILERO_KIND {
            return Err(BundleError::UnknownVad {
                path,
                kind: spec.kind.clone(),
            });
        }
        let bytes = self.read(&spec.file)?;
        VadModel::from_bytes(&bytes, &spec.file, rate_hz)
            .map(Some)
            .map_err(|error| BundleError::Vad { path, error })
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `dir/name` when `name` is a plain file name (no separators, not `..`).
fn safe_join(dir: &Path, name: &str) -> Option<PathBuf> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.contains('\0');
    plain.then(|| dir.join(name))
}

/// The largest manifest (or JSON copy) read: real ones are a few kilobytes, and a file
/// the size of a disk (or `/dev/zero` linked in its place) must not be read whole.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, BundleError> {
    crate::fs::read_at_most(path, MAX_MANIFEST_BYTES)
        .map_err(|source| file_error(path, what, source))?
        .ok_or_else(|| BundleError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "{what} is larger than {} MiB (a manifest is a few kilobytes)",
                MAX_MANIFEST_BYTES >> 20
            ),
        })
}

fn file_error(path: &Path, what: &str, source: std::io::Error) -> BundleError {
    if source.kind() == std::io::ErrorKind::NotFound {
        BundleError::Missing {
            path: path.to_path_buf(),
            what: what.to_string(),
        }
    } else {
        BundleError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A listed file of a bundle opened for reading ([`Bundle::open_file`]): what is read
/// through it is hashed, and [`CheckedFile::finish`] compares size and SHA-256 with the
/// manifest. Nothing read through it may be trusted before `finish` says so.
#[derive(Debug)]
pub struct CheckedFile {
    path: PathBuf,
    file: std::fs::File,
    hasher: Sha256,
    read: u64,
    expected_bytes: u64,
    expected_sha256: String,
}

impl CheckedFile {
    /// The size the manifest records (the file's size when the bundle was opened).
    pub fn len(&self) -> u64 {
        self.expected_bytes
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.expected_bytes == 0
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A read failure of this file as a bundle error.
    pub fn io_error(&self, source: std::io::Error) -> BundleError {
        file_error(&self.path, "", source)
    }

    /// Reads what is left of the file and checks its size and SHA-256 against the
    /// manifest ([`BundleError::Tampered`] when they differ).
    pub fn finish(mut self) -> Result<(), BundleError> {
        let mut rest = [0u8; 64 * 1024];
        loop {
            match self.read(&mut rest) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(self.io_error(source)),
            }
        }
        let found: String = self
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if self.read != self.expected_bytes || found != self.expected_sha256 {
            return Err(BundleError::Tampered {
                path: self.path,
                detail: format!(
                    "{} bytes with SHA-256 {}…, the manifest says {} bytes with {}…",
                    self.read,
                    &found[..12],
                    self.expected_bytes,
                    self.expected_sha256
                        .get(..12)
                        .unwrap_or(&self.expected_sha256)
                ),
            });
        }
        Ok(())
    }
}

impl std::io::Read for CheckedFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    //! The ways a bundle can break that need no real graph (graph-level mismatches are
    //! tested in host-trainer, on exported bundles).

    use super::*;
    use crate::features::LayerCombination;

    fn manifest() -> BundleManifest {
        let spec = EncoderSpec {
            layers: vec![1, 2],
            combination: LayerCombination::Mean,
            dim: 2,
        };
        BundleManifest {
            format: FORMAT_VERSION,
            created_by: "test".into(),
            labels: Emotion::ALL.iter().map(|e| e.name().to_string()).collect(),
            frontend: FrontendConfig::default(),
            transcript_template: "{word}".into(),
            speech: spec.clone(),
            text: spec,
            tokenizer: "tokenizer.json".into(),
            keywords: "keywords.bin".into(),
            text_encoder: None,
            keyword_spotter: None,
            vad: None,
            variants: vec![Variant {
                name: "fp32".into(),
                description: "float".into(),
                speech_encoder: "speech.onnx".into(),
                heads: vec![HeadFile {
                    model: ModelKind::Speech,
                    file: "head_speech.onnx".into(),
                }],
                keyword_spotter: None,
                text_encoder: None,
            }],
            default_variant: "fp32".into(),
            default_reason: "only one".into(),
            files: vec![],
            provenance: BundleProvenance::default(),
        }
    }

    fn keywords() -> KeywordTable {
        KeywordTable {
            template: "{word}".into(),
            layers: vec![1, 2],
            combination: LayerCombination::Mean,
            dim: 2,
            entries: vec![KeywordEntry {
                word: "back".into(),
                transcript: "back".into(),
                shape: vec![1, 2],
                data: vec![0.5, -0.5],
            }],
        }
    }

    /// A bundle with placeholder graph files (enough for `open`, not for a pipeline).
    fn write(dir: &Path, manifest: &BundleManifest) -> Result<Bundle, BundleError> {
        let mut w = BundleWriter::new(dir)?;
        w.add("tokenizer.json", b"{}")?;
        w.add_keywords("keywords.bin", &keywords())?;
        w.add("speech.onnx", b"speech graph bytes")?;
        w.add("head_speech.onnx", b"head graph bytes")?;
        w.finish(manifest)
    }

    fn fresh() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bundle");
        write(&dir, &manifest()).unwrap();
        (tmp, dir)
    }

    #[test]
    fn a_written_bundle_opens_verifies_and_round_trips() {
        let (_tmp, dir) = fresh();
        let bundle = Bundle::open(&dir).unwrap();
        bundle.verify().unwrap();
        assert_eq!(bundle.manifest().files.len(), 4);
        assert_eq!(bundle.read("speech.onnx").unwrap(), b"speech graph bytes");
        assert_eq!(bundle.keyword_table().unwrap(), keywords());
        assert_eq!(bundle.manifest().variant(None).unwrap().name, "fp32");
        // No staging directory is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("bundle")]);
    }

    #[test]
    /// Seen on a real export: without serde_json's `float_roundtrip` these parse back
    /// one ulp off, and the JSON copy no longer agrees with the binary manifest.
    fn metrics_with_awkward_floats_survive_the_json_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let mut m = manifest();
        for (i, x) in [
            0.1 + 0.2,
            1.0 / 3.0,
            378.66893600000003,
            0.9280045351473923,
            0.08022519352568615,
        ]
        .into_iter()
        .enumerate()
        {
            m.provenance.metrics.push(ModelMetrics {
                model: ModelKind::Speech,
                utterances: i,
                accuracy: x,
                macro_f1: 1.0 - x,
            });
        }
        let bundle = write(&tmp.path().join("b"), &m).unwrap();
        assert_eq!(bundle.manifest().provenance.metrics, m.provenance.metrics);
    }

    #[test]
    fn rewriting_replaces_the_old_bundle_whole() {
        let (_tmp, dir) = fresh();
        std::fs::write(dir.join("stray.txt"), b"old").unwrap();
        write(&dir, &manifest()).unwrap();
        assert!(!dir.join("stray.txt").exists());
        Bundle::open(&dir).unwrap().verify().unwrap();
    }

    #[test]
    fn missing_files_are_named() {
        let (_tmp, dir) = fresh();
        std::fs::remove_file(dir.join("head_speech.onnx")).unwrap();
        let err = Bundle::open(&dir).unwrap_err();
        assert!(matches!(err, BundleError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("head_speech.onnx"));
        assert!(err.to_string().contains("fp32 speech head"));

        let (_tmp, dir) = fresh();
        std::fs::remove_file(dir.join(MANIFEST_JSON)).unwrap();
        let err = Bundle::open(&dir).unwrap_err();
        assert!(matches!(err, BundleError::Missing { .. }), "{err}");

        let err = Bundle::open(&dir.join("nowhere")).unwrap_err();
        assert!(matches!(err, BundleError::Missing { .. }), "{err}");
    }

    #[test]
    fn a_changed_file_is_caught_by_size_or_by_hash() {
        let (_tmp, dir) = fresh();
        std::fs::write(dir.join("speech.onnx"), b"speech graph bytes!").unwrap();
        let err = Bundle::open(&dir).unwrap_err();
        assert!(matches!(err, BundleError::Tampered { .. }), "{err}");
        assert!(err.to_string().contains("speech.onnx"));

        let (_tmp, dir) = fresh();
        std::fs::write(dir.join("speech.onnx"), b"speech graph bytez").unwrap();
        let bundle = Bundle::open(&dir).unwrap();
        let err = bundle.read("speech.onnx").unwrap_err();
        assert!(matches!(err, BundleError::Tampered { .. }), "{err}");
        assert!(matches!(bundle.verify(), Err(BundleError::Tampered { .. })));
    }

    #[test]
    fn an_edited_json_copy_is_refused() {
        let (_tmp, dir) = fresh();
        let path = dir.join(MANIFEST_JSON);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"only one\"", "\"edited\"")).unwrap();
        let err = Bundle::open(&dir).unwrap_err();
        assert!(matches!(err, BundleError::Tampered { .. }), "{err}");
        std::fs::write(&path, b"not json").unwrap();
        assert!(matches!(
            Bundle::open(&dir),
            Err(BundleError::Corrupt { .. })
        ));
    }

    #[test]
    fn binary_manifest_damage_and_newer_formats() {
        let (_tmp, dir) = fresh();
        let path = dir.join(MANIFEST_FILE);
        let good = std::fs::read(&path).unwrap();

        std::fs::write(&path, b"PK\x03\x04 a zip file").unwrap();
        assert!(matches!(
            Bundle::open(&dir),
            Err(BundleError::NotABundle { .. })
        ));
        std::fs::write(&path, &good[..10]).unwrap();
        assert!(matches!(
            Bundle::open(&dir),
            Err(BundleError::NotABundle { .. })
        ));
        std::fs::write(&path, &good[..good.len() / 2]).unwrap();
        assert!(matches!(
            Bundle::open(&dir),
            Err(BundleError::Corrupt { .. })
        ));

        let mut newer = good.clone();
        newer[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        std::fs::write(&path, &newer).unwrap();
        let err = Bundle::open(&dir).unwrap_err();
        assert!(
            matches!(err, BundleError::NewerFormat { found, .. } if found == FORMAT_VERSION + 1)
        );
        assert!(err.to_string().contains("update emotion-edge"));

        let mut older = good.clone();
        older[8..12].copy_from_slice(&(OLDEST_FORMAT - 1).to_le_bytes());
        std::fs::write(&path, &older).unwrap();
        let err = Bundle::open(&dir).unwrap_err();
        assert!(
            matches!(err, BundleError::OlderFormat { found, .. } if found == OLDEST_FORMAT - 1)
        );
        assert!(err.to_string().contains("export the bundle again"), "{err}");
    }

    #[test]
    fn manifests_that_contradict_themselves_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut m = manifest();
        m.default_variant = "int8".into();
        assert!(matches!(
            write(&tmp.path().join("a"), &m),
            Err(BundleError::Corrupt { .. })
        ));
        let mut m = manifest();
        m.labels.swap(0, 1);
        assert!(matches!(
            write(&tmp.path().join("b"), &m),
            Err(BundleError::Mismatch { .. })
        ));
        let mut m = manifest();
        m.variants[0].heads[0].file = "../head_speech.onnx".into();
        assert!(matches!(
            write(&tmp.path().join("c"), &m),
            Err(BundleError::Write(_))
        ));
        let mut m = manifest();
        m.text.dim = 3;
        let bundle = write(&tmp.path().join("d"), &m).unwrap();
        assert!(matches!(
            bundle.keyword_table(),
            Err(BundleError::Mismatch { .. })
        ));
        let mut m = manifest();
        m.variants[0].keyword_spotter = Some("head_speech.onnx".into());
        let err = write(&tmp.path().join("e"), &m).unwrap_err();
        assert!(err.to_string().contains("no spotter words"), "{err}");
        let err = manifest().variant(Some("fp16")).unwrap_err();
        assert!(err.to_string().contains("fp32"), "{err}");
    }

    /// The Silero graph this project ships (`data/vad`).
    fn silero() -> Vec<u8> {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/vad/silero_vad_op18_ifless.onnx");
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn vad_spec() -> VadSpec {
        VadSpec {
            kind: SILERO_KIND.into(),
            file: crate::vad::SILERO_FILE.into(),
            rate_hz: 16_000,
        }
    }

    /// [`write`], with `vad_bytes` as the VAD file and `m` naming it.
    fn write_with_vad(
        dir: &Path,
        m: &BundleManifest,
        vad_bytes: &[u8],
    ) -> Result<Bundle, BundleError> {
        let mut w = BundleWriter::new(dir)?;
        w.add("tokenizer.json", b"{}")?;
        w.add_keywords("keywords.bin", &keywords())?;
        w.add("speech.onnx", b"speech graph bytes")?;
        w.add("head_speech.onnx", b"head graph bytes")?;
        w.add(crate::vad::SILERO_FILE, vad_bytes)?;
        w.finish(m)
    }

    fn with_vad() -> BundleManifest {
        BundleManifest {
            vad: Some(vad_spec()),
            ..manifest()
        }
    }

    #[test]
    fn a_bundle_with_a_vad_round_trips_and_loads_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("b");
        let bundle = write_with_vad(&dir, &with_vad(), &silero()).unwrap();
        assert_eq!(bundle.manifest().format, 4);
        assert_eq!(bundle.manifest().vad, Some(vad_spec()));
        let reopened = Bundle::open(&dir).unwrap();
        assert_eq!(reopened.manifest(), bundle.manifest());
        let bytes = reopened.manifest().to_bytes().unwrap();
        assert_eq!(
            BundleManifest::from_bytes(&bytes, Path::new("m")).unwrap(),
            *reopened.manifest()
        );
        let model = reopened.vad_model(16_000).unwrap().expect("a VAD");
        assert_eq!((model.rate_hz(), model.chunk_len()), (16_000, 512));
        let err = reopened.vad_model(44_100).unwrap_err();
        assert!(
            matches!(
                err,
                BundleError::Vad {
                    error: crate::vad::VadError::Rate(44_100),
                    ..
                }
            ),
            "{err}"
        );
        // Without one: None, not an error.
        let (_tmp, plain) = fresh();
        assert!(
            Bundle::open(&plain)
                .unwrap()
                .vad_model(16_000)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_format_3_manifest_loads_without_a_vad_and_cannot_be_given_one() {
        // Written by the format-3 program (the demo bundle's manifest before format 4).
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bundle/format-3-manifest.bin");
        let written = std::fs::read(&fixture).unwrap();
        let old = BundleManifest::from_bytes(&written, &fixture).unwrap();
        assert_eq!(old.format, 3);
        assert_eq!(old.vad, None);
        assert_eq!(old.to_bytes().unwrap(), written, "written back as format 3");
        // Its JSON copy has no `vad`: it reads as None.
        let mut json: serde_json::Value = serde_json::to_value(&old).unwrap();
        json.as_object_mut().unwrap().remove("vad");
        assert_eq!(serde_json::from_value::<BundleManifest>(json).unwrap(), old);

        // A format-3 bundle opens; a VAD cannot be written in format 3 (nor 2).
        let tmp = tempfile::tempdir().unwrap();
        let m = BundleManifest {
            format: 3,
            ..manifest()
        };
        let bundle = write(&tmp.path().join("v3"), &m).unwrap();
        assert_eq!(bundle.manifest().format, 3);
        assert!(bundle.vad_model(16_000).unwrap().is_none());
        for format in [3, 2] {
            let m = BundleManifest {
                format,
                ..with_vad()
            };
            let err = m.to_bytes().unwrap_err();
            assert!(matches!(err, BundleError::Write(_)), "{err}");
            assert!(err.to_string().contains("vad.silero.onnx"), "{err}");
            assert!(
                err.to_string().contains(&format!(
                    "bundle format {format} cannot hold (format 4 can)"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn a_vad_the_bundle_lacks_is_named() {
        // Named but never added: the writer refuses.
        let tmp = tempfile::tempdir().unwrap();
        let err = write(&tmp.path().join("a"), &with_vad()).unwrap_err();
        assert!(err.to_string().contains("vad.silero.onnx"), "{err}");
        assert!(err.to_string().contains("voice-activity detector"), "{err}");

        // Listed, then deleted: open names it and says what to do.
        let dir = tmp.path().join("b");
        write_with_vad(&dir, &with_vad(), &silero()).unwrap();
        std::fs::remove_file(dir.join("vad.silero.onnx")).unwrap();
        let err = Bundle::open(&dir).unwrap_err();
        assert!(matches!(err, BundleError::Missing { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("vad.silero.onnx"), "{message}");
        assert!(message.contains("voice-activity detector"), "{message}");
        assert!(message.contains("host-trainer bundle add-vad"), "{message}");

        // Named but not listed in `files`: a contradiction in the manifest.
        let dir = tmp.path().join("c");
        write(&dir, &manifest()).unwrap();
        std::fs::write(dir.join("vad.silero.onnx"), silero()).unwrap();
        let m = with_vad();
        let mut m = BundleManifest {
            files: Bundle::open(&dir).unwrap().manifest().files.clone(),
            ..m
        };
        m.files.retain(|f| f.path != "vad.silero.onnx");
        std::fs::write(dir.join(MANIFEST_FILE), m.to_bytes().unwrap()).unwrap();
        std::fs::write(dir.join(MANIFEST_JSON), serde_json::to_vec(&m).unwrap()).unwrap();
        let err = Bundle::open(&dir).unwrap_err();
        assert!(matches!(err, BundleError::Corrupt { .. }), "{err}");
        assert!(
            err.to_string().contains("refers to vad.silero.onnx"),
            "{err}"
        );
    }

    #[test]
    fn a_changed_vad_is_a_checksum_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("b");
        write_with_vad(&dir, &with_vad(), &silero()).unwrap();
        let mut bytes = silero();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(dir.join("vad.silero.onnx"), &bytes).unwrap();
        let bundle = Bundle::open(&dir).unwrap();
        let err = bundle.vad_model(16_000).unwrap_err();
        assert!(matches!(err, BundleError::Tampered { .. }), "{err}");
        assert!(err.to_string().contains("vad.silero.onnx"), "{err}");
        assert!(matches!(bundle.verify(), Err(BundleError::Tampered { .. })));
    }

    #[test]
    fn an_unknown_vad_kind_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let m = BundleManifest {
            vad: Some(VadSpec {
                kind: "webrtc-vad".into(),
                ..vad_spec()
            }),
            ..manifest()
        };
        let bundle = write_with_vad(&tmp.path().join("b"), &m, &silero()).unwrap();
        let err = bundle.vad_model(16_000).unwrap_err();
        assert!(matches!(err, BundleError::UnknownVad { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("`webrtc-vad`"), "{message}");
        assert!(
            message.contains("this program knows silero-vad"),
            "{message}"
        );
        assert!(message.contains("vad.silero.onnx"), "{message}");
    }

    #[test]
    fn an_intact_file_that_is_no_vad_is_a_load_error_not_a_panic() {
        // The manifest records the broken file's own digest: the checksum passes, the
        // graph does not load.
        let tmp = tempfile::tempdir().unwrap();
        let good = silero();
        let cases: [(&str, Vec<u8>); 3] = [
            ("cut", good[..good.len() / 2].to_vec()),
            (
                "garbage",
                (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
            ),
            ("empty", Vec::new()),
        ];
        for (name, bytes) in cases {
            let bundle = write_with_vad(&tmp.path().join(name), &with_vad(), &bytes).unwrap();
            bundle.verify().unwrap();
            let err = bundle.vad_model(16_000).unwrap_err();
            assert!(
                matches!(
                    err,
                    BundleError::Vad {
                        error: crate::vad::VadError::Load { .. } | crate::vad::VadError::Empty(_),
                        ..
                    }
                ),
                "{name}: {err}"
            );
            let message = err.to_string();
            assert!(message.contains("vad.silero.onnx"), "{message}");
            assert!(message.contains("host-trainer bundle add-vad"), "{message}");
        }
        // An ONNX graph of another contract (a head): a contract error.
        let head =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/demo-bundle/head_speech.fp32.onnx");
        let bundle = write_with_vad(
            &tmp.path().join("head"),
            &with_vad(),
            &std::fs::read(head).unwrap(),
        )
        .unwrap();
        let err = bundle.vad_model(16_000).unwrap_err();
        assert!(
            matches!(
                err,
                BundleError::Vad {
                    error: crate::vad::VadError::Contract { .. },
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn the_demo_bundle_carries_the_pinned_vad() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/demo-bundle");
        let bundle = Bundle::open(&dir).unwrap();
        bundle.verify().unwrap();
        let manifest = bundle.manifest();
        assert_eq!(manifest.format, FORMAT_VERSION);
        assert_eq!(manifest.vad, Some(vad_spec()));
        let entry = manifest.file(crate::vad::SILERO_FILE).unwrap();
        assert_eq!(entry.sha256, crate::vad::SILERO_SHA256);
        assert!(bundle.vad_model(16_000).unwrap().is_some());
    }

    fn spotter(open_set: Option<OpenSetSpec>) -> KeywordSpotterSpec {
        KeywordSpotterSpec {
            words: vec!["back".into(), "dog".into()],
            min_confidence: 0.5,
            test_accuracy: Some(0.75),
            test_utterances: 4,
            open_set,
        }
    }

    fn open_set() -> OpenSetSpec {
        OpenSetSpec {
            keyword_threshold: 0.62,
            target_false_accept_rate: 0.01,
            held_out_words: vec!["king".into()],
            measured_variant: "fp32".into(),
            calibration: MeasuredRate::new("calibration", vec!["a/b".into()], 0, 20),
            false_accept: Some(MeasuredRate::new("unseen", vec!["c/d".into()], 3, 700)),
            held_out_false_accept: None,
            false_reject: MeasuredRate::new("test words", vec!["OAF".into()], 1, 8),
        }
    }

    /// Format 4 holds an open-set spotter; a format-3 manifest (closed-set spotter)
    /// still reads and writes back in format 3, and cannot be given an open-set one.
    #[test]
    fn open_set_spotters_need_format_4_and_older_formats_still_load() {
        let path = Path::new("manifest.bin");
        let mut m = manifest();
        m.keyword_spotter = Some(spotter(Some(open_set())));
        let back = BundleManifest::from_bytes(&m.to_bytes().unwrap(), path).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            back.keyword_spotter
                .unwrap()
                .open_set
                .unwrap()
                .false_accept
                .unwrap()
                .rate,
            3.0 / 700.0
        );
        for format in [2, 3] {
            let mut old = manifest();
            old.format = format;
            old.keyword_spotter = Some(spotter(None));
            let bytes = old.to_bytes().unwrap();
            assert_eq!(BundleManifest::from_bytes(&bytes, path).unwrap(), old);
            // Format 4's layout is another one: the old bytes do not decode as it.
            let mut relabelled = bytes.clone();
            relabelled[8..12].copy_from_slice(&4u32.to_le_bytes());
            assert!(BundleManifest::from_bytes(&relabelled, path).is_err());
            old.keyword_spotter = Some(spotter(Some(open_set())));
            let err = old.to_bytes().unwrap_err();
            assert!(err.to_string().contains("open-set"), "{err}");
        }
        // A JSON copy written before format 4 has no `open_set`: read as closed set.
        let json = serde_json::to_string(&spotter(None)).unwrap();
        let without: String = json.replace(",\"open_set\":null", "");
        assert_ne!(json, without);
        let read: KeywordSpotterSpec = serde_json::from_str(&without).unwrap();
        assert_eq!(read, spotter(None));
    }

    #[test]
    fn file_names_cannot_leave_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = BundleWriter::new(&tmp.path().join("b")).unwrap();
        for bad in ["../x", "a/b", "", "..", MANIFEST_FILE] {
            assert!(w.add(bad, b"x").is_err(), "{bad}");
        }
        w.add("ok", b"x").unwrap();
        assert!(w.add("ok", b"y").is_err());
    }
}
