//! The inference pipeline over a bundle, with tract: 16 kHz samples (and optionally a
//! keyword or transcript) in, the seven probabilities and per-stage timings out.
//!
//! ```text
//! samples ─ front-end (normalise) ─ speech encoder ─ combine layers ─┬──────────┐
//!                                       keyword spotter (optional) ─┘          │
//! keyword ─ keyword table ─────────────────────────────────────────────────────┼─ head ─ softmax
//!   or transcript ─ tokenizer ─ text encoder ─ combine layers ─────────────────┘
//! ```
//!
//! Which keyword ([`TextInput::Auto`]): the kiosk's prompt word when there is one, else
//! the word the bundle's keyword spotter heard when it is sure enough, else none. An
//! open-set spotter can also say that no vocabulary word was said
//! ([`KeywordSource::NoWordHeard`]): then there is no keyword, never a guess.
//! Which head answers: the one asked for, else fusion when text features are at hand
//! and the bundle has a fusion head, else speech-only. The result says which head
//! answered, where the keyword and the text came from, so a fallback is never silent.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::bundle::{Bundle, BundleError, KeywordTable};
use crate::encoder::{EncoderError, EncoderGraph, EncoderInput, Modality};
use crate::features::{Features, combine_layers};
use crate::head_graph::{HeadError, HeadGraph, ModelKind};
use crate::keyword_spotter::{KeywordSpotter, SpotOutcome, Spotted, SpotterThresholds};
use crate::onnx_model::{DecodeFailure, OnnxModel, decode_model};
use crate::scores::{argmax, softmax};
use crate::tokenizer::{TokenizerError, TranscriptTokenizer};
use crate::{AudioError, Emotion, Frontend, TranscriptTemplate};

/// How to load a pipeline.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The variant to load (`fp32`, `int8`, …); the bundle's default when `None`.
    pub variant: Option<String>,
    /// Threads for tract's matrix products.
    pub threads: usize,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            variant: None,
            threads: 1,
        }
    }
}

/// The text given with an utterance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextInput<'a> {
    /// No text: the speech-only head answers.
    None,
    /// A keyword, filled into the bundle's transcript template.
    Keyword(&'a str),
    /// A whole transcript.
    Transcript(&'a str),
    /// The fallback chain: the prompt word if given, else the keyword spotter's word if
    /// it is confident, else no text.
    Auto {
        /// The word the kiosk asked the speaker to say.
        prompt: Option<&'a str>,
    },
}

/// Where the keyword came from. Serialised as its [`name`](Self::name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeywordSource {
    /// No keyword (no text, or a whole transcript).
    None,
    /// Given by the caller ([`TextInput::Keyword`]).
    Given,
    /// The kiosk's prompt ([`TextInput::Auto`] with a prompt).
    Prompt,
    /// The bundle's keyword spotter, confident enough.
    Spotter,
    /// No keyword: the bundle's open-set keyword spotter heard no vocabulary word ("no
    /// word heard"). Set on every head's result (the speech-only head answers).
    #[serde(rename = "no_word_heard")]
    NoWordHeard,
}

impl KeywordSource {
    /// The lowercase name used in output.
    pub fn name(self) -> &'static str {
        match self {
            KeywordSource::None => "none",
            KeywordSource::Given => "given",
            KeywordSource::Prompt => "prompt",
            KeywordSource::Spotter => "spotter",
            KeywordSource::NoWordHeard => "no_word_heard",
        }
    }
}

impl std::fmt::Display for KeywordSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the text features came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextSource {
    /// No text was used.
    None,
    /// The bundle's keyword table (no text encoder ran).
    KeywordTable,
    /// The bundle's text encoder ran on the transcript.
    TextEncoder,
}

impl std::fmt::Display for TextSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TextSource::None => "none",
            TextSource::KeywordTable => "keyword table",
            TextSource::TextEncoder => "text encoder",
        })
    }
}

/// Time spent in each stage of one classification.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    /// Decoding, resampling and normalisation.
    pub frontend: Duration,
    /// The speech encoder and the layer combination.
    pub speech_encoder: Duration,
    /// Keyword spotting, keyword lookup, or tokenizer and text encoder.
    pub text: Duration,
    /// The head and the softmax.
    pub head: Duration,
}

impl StageTimings {
    /// All stages together.
    pub fn total(&self) -> Duration {
        self.frontend + self.speech_encoder + self.text + self.head
    }
}

/// One utterance classified.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The most probable emotion.
    pub emotion: Emotion,
    /// Its probability.
    pub confidence: f32,
    /// Softmax over the seven emotions, in [`Emotion::ALL`] order.
    pub probabilities: [f32; Emotion::COUNT],
    /// The head's raw logits.
    pub logits: [f32; Emotion::COUNT],
    /// The head that answered.
    pub model: ModelKind,
    /// The keyword whose transcript was used, if any.
    pub keyword: Option<String>,
    /// Where that keyword came from ([`KeywordSource::NoWordHeard`]: the spotter heard
    /// none).
    pub keyword_source: KeywordSource,
    /// What the keyword spotter heard, when it ran (also when it was not sure enough
    /// and its word was not used).
    pub spotted: Option<Spotted>,
    /// The transcript whose features were used, if any.
    pub transcript: Option<String>,
    /// Where the text features came from.
    pub text_source: TextSource,
    /// Seconds of audio (after the front-end).
    pub audio_seconds: f32,
    /// Per-stage timings.
    pub timings: StageTimings,
}

/// Why an utterance could not be classified.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The audio is unusable.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// An encoder failed.
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    /// A head failed.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// The transcript cannot be tokenised.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// Text outside the keyword table, and the bundle has no text encoder.
    #[error(
        "`{text}` is not one of the bundle's {known} keywords and the bundle has no text encoder: use a known keyword (e.g. {examples}) or no transcript"
    )]
    UnknownText {
        /// The keyword or transcript.
        text: String,
        /// How many keywords the table has.
        known: usize,
        /// A few of them.
        examples: String,
    },
    /// The head asked for is not in the bundle.
    #[error("the bundle has no {0} head; it has: {1}")]
    NoHead(ModelKind, String),
    /// The head asked for needs text, and none was given.
    #[error("the {0} head needs a keyword or a transcript")]
    NeedsText(ModelKind),
    /// The bundle's text encoder, loaded at the first transcript outside the keyword
    /// table, cannot be loaded (reported again for every such transcript; the pipeline
    /// does not read the files a second time).
    #[error("the bundle's text encoder cannot be loaded: {0}")]
    TextEncoder(Arc<BundleError>),
}

/// A bundle loaded for inference.
#[derive(Debug, Clone)]
pub struct Pipeline {
    bundle: Bundle,
    variant: String,
    frontend: Frontend,
    speech: EncoderGraph,
    heads: Vec<HeadGraph>,
    keywords: KeywordTable,
    template: TranscriptTemplate,
    /// The text encoder, when the bundle has one: loaded at first use.
    text_encoder: Option<LazyTextEncoder>,
    /// The keyword spotter and its thresholds.
    spotter: Option<(KeywordSpotter, SpotterThresholds)>,
}

/// A tokenizer and text encoder graph, loaded.
type TextEncoder = (TranscriptTokenizer, EncoderGraph);

/// The bundle's text encoder, loaded the first time a transcript outside the keyword
/// table needs it (a base-size BERT is most of a pipeline's memory, and a board that
/// only hears the corpus words never needs it). Clones of the pipeline share the slot,
/// so it is loaded once per process; a failed load is kept and reported each time.
#[derive(Debug, Clone)]
struct LazyTextEncoder {
    /// The graph file.
    file: String,
    threads: usize,
    slot: Arc<OnceLock<Result<Arc<TextEncoder>, Arc<BundleError>>>>,
}

/// The text of one utterance once the fallback chain has run.
struct ResolvedText<'a> {
    text: TextInput<'a>,
    keyword_source: KeywordSource,
    spotted: Option<Spotted>,
}

impl Pipeline {
    /// Opens the bundle in `dir`, checks it and loads the variant's graphs (every file
    /// read is checked against its SHA-256).
    pub fn load(dir: &Path, options: &PipelineOptions) -> Result<Self, BundleError> {
        let bundle = Bundle::open(dir)?;
        let manifest = bundle.manifest().clone();
        let variant = manifest.variant(options.variant.as_deref())?.clone();
        let threads = options.threads.max(1);
        let manifest_path = dir.join(crate::bundle::MANIFEST_FILE);
        let template = TranscriptTemplate::new(&manifest.transcript_template).map_err(|e| {
            BundleError::Corrupt {
                path: manifest_path.clone(),
                detail: e.to_string(),
            }
        })?;

        let speech = load_encoder(&bundle, &variant.speech_encoder, Modality::Speech, threads)?;
        check_layers(
            &bundle,
            &variant.speech_encoder,
            &speech,
            &manifest.speech.layers,
        )?;
        let mut heads = Vec::new();
        for head in &variant.heads {
            let bytes = bundle.read(&head.file)?;
            let graph = HeadGraph::from_bytes(&bytes, &head.file, threads).map_err(|e| {
                BundleError::Corrupt {
                    path: dir.join(&head.file),
                    detail: e.to_string(),
                }
            })?;
            if graph.kind() != head.model {
                return Err(BundleError::Mismatch {
                    path: dir.join(&head.file),
                    detail: format!(
                        "a {} head where the manifest lists the {} head",
                        graph.kind(),
                        head.model
                    ),
                });
            }
            heads.push(graph);
        }
        let keywords = bundle.keyword_table()?;
        let spotter = match (&variant.keyword_spotter, &manifest.keyword_spotter) {
            (Some(file), Some(spec)) => {
                Some(load_spotter(&bundle, file, spec, &keywords, threads)?)
            }
            _ => None,
        };
        let text_encoder = variant.text_encoder(&manifest).map(|file| LazyTextEncoder {
            file: file.to_string(),
            threads,
            slot: Arc::default(),
        });
        Ok(Self {
            frontend: Frontend::new(manifest.frontend.clone()),
            variant: variant.name,
            bundle,
            speech,
            heads,
            keywords,
            template,
            text_encoder,
            spotter,
        })
    }

    /// The opened bundle (manifest, directory).
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// The speech encoder's graph (e.g. to count its work).
    pub fn speech_encoder(&self) -> &EncoderGraph {
        &self.speech
    }

    /// The variant loaded.
    pub fn variant(&self) -> &str {
        &self.variant
    }

    /// The front-end the bundle asks for (to decode and resample files the same way).
    pub fn frontend(&self) -> &Frontend {
        &self.frontend
    }

    /// The heads loaded.
    pub fn models(&self) -> Vec<ModelKind> {
        self.heads.iter().map(|h| h.kind()).collect()
    }

    /// The keyword table.
    pub fn keywords(&self) -> &KeywordTable {
        &self.keywords
    }

    /// The keyword spotter's words, when the variant has a spotter.
    pub fn spotter_words(&self) -> Option<&[String]> {
        self.spotter.as_ref().map(|(s, _)| s.words())
    }

    /// The keyword spotter's thresholds (with a keyword threshold when it is an
    /// open-set spotter), when the variant has a spotter.
    pub fn spotter_thresholds(&self) -> Option<SpotterThresholds> {
        self.spotter.as_ref().map(|(_, t)| *t)
    }

    /// True when `text` can be turned into text features (a known keyword, or any text
    /// when the bundle has a text encoder).
    pub fn knows_text(&self, text: &str) -> bool {
        self.text_encoder.is_some() || self.keywords.lookup(text).is_some()
    }

    /// Loads the bundle's text encoder and its tokenizer now, instead of at the first
    /// transcript outside the keyword table (to check them up front, or to keep the
    /// load out of an utterance's latency). Without a text encoder: nothing to do.
    pub fn load_text_encoder(&self) -> Result<(), PipelineError> {
        match &self.text_encoder {
            Some(lazy) => self.loaded_text_encoder(lazy).map(drop),
            None => Ok(()),
        }
    }

    /// True once the text encoder is loaded (by [`Pipeline::load_text_encoder`] or a
    /// transcript outside the keyword table, in this pipeline or a clone of it).
    pub fn text_encoder_loaded(&self) -> bool {
        self.text_encoder
            .as_ref()
            .and_then(|lazy| lazy.slot.get())
            .is_some_and(Result::is_ok)
    }

    /// The text encoder, loaded on first call (other threads wait for that load).
    fn loaded_text_encoder(
        &self,
        lazy: &LazyTextEncoder,
    ) -> Result<Arc<TextEncoder>, PipelineError> {
        lazy.slot
            .get_or_init(|| {
                load_text_encoder(&self.bundle, &lazy.file, lazy.threads)
                    .map(Arc::new)
                    .map_err(Arc::new)
            })
            .clone()
            .map_err(PipelineError::TextEncoder)
    }

    /// The head that answers when none is asked for: fusion when there is text and the
    /// bundle has a fusion head, else speech-only.
    pub fn default_model(&self, has_text: bool) -> ModelKind {
        if has_text && self.head(ModelKind::Fusion).is_some() {
            ModelKind::Fusion
        } else {
            ModelKind::Speech
        }
    }

    /// Classifies mono samples at the bundle's rate (16 kHz), normalised here as the
    /// bundle asks. `model` picks a head; `None` lets the pipeline choose.
    pub fn classify(
        &self,
        samples: &[f32],
        text: TextInput<'_>,
        model: Option<ModelKind>,
    ) -> Result<Classification, PipelineError> {
        let start = Instant::now();
        let rate = self.frontend.config().target_rate;
        let samples = self
            .frontend
            .process_samples(samples, rate, "the utterance")?;
        self.classify_prepared(&samples, start.elapsed(), text, model)
    }

    /// Classifies a WAV file held in memory: the full front-end (decode, mix, resample,
    /// normalise), then the encoder and the head; `name` is used in errors.
    pub fn classify_wav(
        &self,
        bytes: &[u8],
        name: &str,
        text: TextInput<'_>,
        model: Option<ModelKind>,
    ) -> Result<Classification, PipelineError> {
        let start = Instant::now();
        let samples = self.frontend.process_bytes(bytes, name)?;
        self.classify_prepared(&samples, start.elapsed(), text, model)
    }

    /// As [`Pipeline::classify_wav`] for the WAV file at `path`, read through its header:
    /// a file whose header says it is longer than the front-end's limit, or that is no
    /// WAV (`/dev/zero`, a multi-gigabyte file), is refused before its samples are read.
    pub fn classify_file(
        &self,
        path: &std::path::Path,
        text: TextInput<'_>,
        model: Option<ModelKind>,
    ) -> Result<Classification, PipelineError> {
        let start = Instant::now();
        let samples = self.frontend.process_file(path)?;
        self.classify_prepared(&samples, start.elapsed(), text, model)
    }

    /// As [`Pipeline::classify_wav`] with every head in `models`, the encoders run once.
    pub fn classify_wav_each(
        &self,
        bytes: &[u8],
        name: &str,
        text: TextInput<'_>,
        models: &[ModelKind],
    ) -> Result<Vec<Classification>, PipelineError> {
        let start = Instant::now();
        let samples = self.frontend.process_bytes(bytes, name)?;
        let mut timings = StageTimings {
            frontend: start.elapsed(),
            ..StageTimings::default()
        };
        let mut speech = None;
        let resolved = self.resolve_text(&samples, text, &mut speech, &mut timings)?;
        self.classify_each(&samples, timings, resolved, speech, models)
    }

    fn classify_prepared(
        &self,
        samples: &[f32],
        frontend: Duration,
        text: TextInput<'_>,
        model: Option<ModelKind>,
    ) -> Result<Classification, PipelineError> {
        let mut timings = StageTimings {
            frontend,
            ..StageTimings::default()
        };
        let mut speech = None;
        let resolved = self.resolve_text(samples, text, &mut speech, &mut timings)?;
        let model = model.unwrap_or_else(|| self.default_model(resolved.text != TextInput::None));
        let mut results = self.classify_each(samples, timings, resolved, speech, &[model])?;
        results
            .pop()
            .ok_or(PipelineError::NoHead(model, String::new()))
    }

    /// Runs the fallback chain of [`TextInput::Auto`] (other inputs pass through). The
    /// spotter needs the speech features, so they are computed here and kept.
    fn resolve_text<'a>(
        &'a self,
        samples: &[f32],
        text: TextInput<'a>,
        speech: &mut Option<Features>,
        timings: &mut StageTimings,
    ) -> Result<ResolvedText<'a>, PipelineError> {
        let resolved = |text, keyword_source, spotted| ResolvedText {
            text,
            keyword_source,
            spotted,
        };
        let prompt = match text {
            TextInput::Auto { prompt } => prompt.map(str::trim).filter(|p| !p.is_empty()),
            TextInput::Keyword(_) => return Ok(resolved(text, KeywordSource::Given, None)),
            other => return Ok(resolved(other, KeywordSource::None, None)),
        };
        if let Some(word) = prompt {
            return Ok(resolved(
                TextInput::Keyword(word),
                KeywordSource::Prompt,
                None,
            ));
        }
        let Some((spotter, thresholds)) = &self.spotter else {
            return Ok(resolved(TextInput::None, KeywordSource::None, None));
        };
        let features = self.speech_features(samples, speech, timings)?;
        let start = Instant::now();
        let spotted = spotter.spot(features)?;
        timings.text += start.elapsed();
        match thresholds.outcome(&spotted) {
            SpotOutcome::Word => {}
            SpotOutcome::Unsure => {
                return Ok(resolved(
                    TextInput::None,
                    KeywordSource::None,
                    Some(spotted),
                ));
            }
            SpotOutcome::NotAKeyword => {
                return Ok(resolved(
                    TextInput::None,
                    KeywordSource::NoWordHeard,
                    Some(spotted),
                ));
            }
        }
        // The spotter's words are checked against the keyword table on load.
        let word = self
            .keywords
            .lookup(&spotted.word)
            .map(|entry| entry.word.as_str())
            .unwrap_or_default();
        Ok(resolved(
            TextInput::Keyword(word),
            KeywordSource::Spotter,
            Some(spotted),
        ))
    }

    /// The speech features, computed once.
    fn speech_features<'s>(
        &self,
        samples: &[f32],
        speech: &'s mut Option<Features>,
        timings: &mut StageTimings,
    ) -> Result<&'s Features, PipelineError> {
        if speech.is_none() {
            let start = Instant::now();
            let states = self.speech.run(EncoderInput::Audio(samples))?;
            *speech = Some(combine_layers(
                &states,
                self.bundle.manifest().speech.combination,
            ));
            timings.speech_encoder = start.elapsed();
        }
        Ok(speech.as_ref().expect("set above"))
    }

    /// Samples already through the front-end (and speech features when the spotter
    /// needed them), every head in `models`.
    fn classify_each(
        &self,
        samples: &[f32],
        mut timings: StageTimings,
        resolved: ResolvedText<'_>,
        mut speech: Option<Features>,
        models: &[ModelKind],
    ) -> Result<Vec<Classification>, PipelineError> {
        let text = resolved.text;
        let mut heads = Vec::with_capacity(models.len());
        for &model in models {
            let head = self.head(model).ok_or_else(|| {
                let names: Vec<&str> = self.models().iter().map(|m| m.name()).collect();
                PipelineError::NoHead(model, names.join(", "))
            })?;
            if model.uses_text() && text == TextInput::None {
                return Err(PipelineError::NeedsText(model));
            }
            heads.push(head);
        }
        let start = Instant::now();
        let (transcript, text_features, text_source) = if models.iter().any(|m| m.uses_text()) {
            self.text_features(text)?
        } else {
            (None, None, TextSource::None)
        };
        timings.text += start.elapsed();
        if models.iter().any(|m| m.uses_speech()) {
            self.speech_features(samples, &mut speech, &mut timings)?;
        }
        let keyword = match text {
            TextInput::Keyword(word) => Some(word.to_string()),
            _ => None,
        };

        let audio_seconds = samples.len() as f32 / self.frontend.config().target_rate as f32;
        let mut results = Vec::with_capacity(heads.len());
        for head in heads {
            let model = head.kind();
            let start = Instant::now();
            let speech = if model.uses_speech() {
                speech.as_ref()
            } else {
                None
            };
            let text = if model.uses_text() {
                text_features.as_ref()
            } else {
                None
            };
            let logits = head.logits(speech, text)?;
            let probabilities: [f32; Emotion::COUNT] = std::array::from_fn({
                let p = softmax(&logits);
                move |i| p[i]
            });
            let (index, confidence) = argmax(&probabilities);
            let mut own = timings;
            own.head = start.elapsed();
            if !model.uses_speech() {
                own.speech_encoder = Duration::ZERO;
            }
            let uses_text = model.uses_text();
            results.push(Classification {
                emotion: Emotion::ALL[index],
                confidence,
                probabilities,
                logits,
                model,
                keyword: if uses_text { keyword.clone() } else { None },
                keyword_source: if uses_text
                    || resolved.keyword_source == KeywordSource::NoWordHeard
                {
                    resolved.keyword_source
                } else {
                    KeywordSource::None
                },
                spotted: resolved.spotted.clone(),
                transcript: if uses_text { transcript.clone() } else { None },
                text_source: if uses_text {
                    text_source.clone()
                } else {
                    TextSource::None
                },
                audio_seconds,
                timings: own,
            });
        }
        Ok(results)
    }

    fn head(&self, model: ModelKind) -> Option<&HeadGraph> {
        self.heads.iter().find(|h| h.kind() == model)
    }

    /// The text features for `text`: from the keyword table when it is there, else from
    /// the text encoder when the bundle has one.
    fn text_features(
        &self,
        text: TextInput<'_>,
    ) -> Result<(Option<String>, Option<Features>, TextSource), PipelineError> {
        let (given, transcript) = match text {
            // `Auto` is resolved to one of the others before this point.
            TextInput::None | TextInput::Auto { .. } => return Ok((None, None, TextSource::None)),
            TextInput::Keyword(word) => (word, self.template.fill(word.trim())),
            TextInput::Transcript(t) => (t, t.trim().to_string()),
        };
        if let Some(entry) = self.keywords.lookup(given) {
            let features = self.keywords.features(entry);
            return Ok((
                Some(entry.transcript.clone()),
                Some(features),
                TextSource::KeywordTable,
            ));
        }
        let Some(lazy) = &self.text_encoder else {
            let examples: Vec<&str> = self.keywords.words().take(4).collect();
            return Err(PipelineError::UnknownText {
                text: given.to_string(),
                known: self.keywords.entries.len(),
                examples: examples.join(", "),
            });
        };
        let loaded = self.loaded_text_encoder(lazy)?;
        let (tokenizer, graph) = &*loaded;
        let ids = tokenizer.encode(&transcript)?;
        let states = graph.run(EncoderInput::TokenIds(&ids))?;
        let features = combine_layers(&states, self.bundle.manifest().text.combination);
        Ok((Some(transcript), Some(features), TextSource::TextEncoder))
    }
}

/// The tokenizer and the text encoder graph `file`, checked against the manifest.
fn load_text_encoder(
    bundle: &Bundle,
    file: &str,
    threads: usize,
) -> Result<TextEncoder, BundleError> {
    let manifest = bundle.manifest();
    let tokenizer_bytes = bundle.read(&manifest.tokenizer)?;
    let tokenizer = TranscriptTokenizer::from_bytes(&tokenizer_bytes, &manifest.tokenizer)
        .map_err(|e| BundleError::Corrupt {
            path: bundle.dir().join(&manifest.tokenizer),
            detail: e.to_string(),
        })?;
    drop(tokenizer_bytes);
    let graph = load_encoder(bundle, file, Modality::Text, threads)?;
    check_layers(bundle, file, &graph, &manifest.text.layers)?;
    Ok((tokenizer, graph))
}

/// Decodes the graph `file` of the bundle as it is read (its bytes are never held
/// whole), and checks its size and SHA-256 before anything is built from it. The inner
/// error is the decoder's, for a file that is intact but not an ONNX graph.
fn read_graph(bundle: &Bundle, file: &str) -> Result<Result<OnnxModel, String>, BundleError> {
    let mut checked = bundle.open_file(file)?;
    let len = checked.len();
    let decoded = match decode_model(&mut checked, len) {
        Ok(proto) => Ok(proto),
        Err(DecodeFailure::Decode(detail)) => Err(detail),
        // A file shorter than recorded: the size check below says so.
        Err(DecodeFailure::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(e.to_string())
        }
        Err(DecodeFailure::Io(e)) => return Err(checked.io_error(e)),
    };
    checked.finish()?;
    Ok(decoded)
}

fn load_encoder(
    bundle: &Bundle,
    file: &str,
    modality: Modality,
    threads: usize,
) -> Result<EncoderGraph, BundleError> {
    let path = bundle.dir().join(file);
    let corrupt = |e: EncoderError| BundleError::Corrupt {
        path: path.clone(),
        detail: e.to_string(),
    };
    let graph = read_graph(bundle, file)?
        .map_err(|detail| EncoderError::Load {
            name: file.to_string(),
            detail,
        })
        .and_then(|proto| EncoderGraph::from_proto(proto, file, threads))
        .map_err(corrupt)?;
    if graph.modality() != modality {
        return Err(BundleError::Mismatch {
            path,
            detail: format!(
                "a {:?} encoder where a {modality:?} one belongs",
                graph.modality()
            ),
        });
    }
    Ok(graph)
}

/// Loads the keyword spotter and checks that its words are the manifest's, that each
/// has keyword-table features, and that the graph and the manifest agree on whether it
/// is an open-set spotter; returns it with its thresholds.
fn load_spotter(
    bundle: &Bundle,
    file: &str,
    spec: &crate::bundle::KeywordSpotterSpec,
    keywords: &KeywordTable,
    threads: usize,
) -> Result<(KeywordSpotter, SpotterThresholds), BundleError> {
    let path = bundle.dir().join(file);
    let bytes = bundle.read(file)?;
    let spotter =
        KeywordSpotter::from_bytes(&bytes, file, threads).map_err(|e| BundleError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
    let mismatch = |detail: String| BundleError::Mismatch {
        path: path.clone(),
        detail,
    };
    if spotter.words() != spec.words.as_slice() {
        return Err(mismatch(format!(
            "it spots {:?}, the manifest lists {:?}",
            spotter.words(),
            spec.words
        )));
    }
    if let Some(word) = spec.words.iter().find(|w| keywords.lookup(w).is_none()) {
        return Err(mismatch(format!(
            "it spots `{word}`, which the keyword table does not have"
        )));
    }
    if !(0.0..=1.0).contains(&spec.min_confidence) {
        return Err(mismatch(format!(
            "min_confidence {} is not a probability",
            spec.min_confidence
        )));
    }
    let keyword_threshold = spec.open_set.as_ref().map(|o| o.keyword_threshold);
    match (spotter.is_open_set(), keyword_threshold) {
        (true, None) => {
            return Err(mismatch(format!(
                "its last output is `{}` (not a keyword), but the manifest gives no keyword threshold for it",
                crate::keyword_spotter::NONE_CLASS
            )));
        }
        (false, Some(_)) => {
            return Err(mismatch(format!(
                "the manifest gives it a keyword threshold, but it has no `{}` output",
                crate::keyword_spotter::NONE_CLASS
            )));
        }
        (_, Some(t)) if !(0.0..=1.0).contains(&t) => {
            return Err(mismatch(format!(
                "keyword_threshold {t} is not a probability"
            )));
        }
        _ => {}
    }
    let thresholds = SpotterThresholds {
        min_confidence: spec.min_confidence,
        keyword_threshold,
    };
    Ok((spotter, thresholds))
}

fn check_layers(
    bundle: &Bundle,
    file: &str,
    graph: &EncoderGraph,
    layers: &[usize],
) -> Result<(), BundleError> {
    if graph.hidden_indices() != layers {
        return Err(BundleError::Mismatch {
            path: bundle.dir().join(file),
            detail: format!(
                "it gives layers {:?}, the heads were trained on layers {layers:?}",
                graph.hidden_indices()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_sources_serialise_as_their_names() {
        for source in [
            KeywordSource::None,
            KeywordSource::Given,
            KeywordSource::Prompt,
            KeywordSource::Spotter,
            KeywordSource::NoWordHeard,
        ] {
            let json = serde_json::to_value(source).unwrap();
            assert_eq!(json, source.name(), "{source:?}");
        }
    }
}
