//! `host-trainer extract`: the shared front-end and the frozen encoders over a manifest,
//! every result kept in the [`FeatureCache`]. Files run in parallel (one tract run per
//! worker, all cores by default); anything already cached is read, not recomputed; a
//! file that fails is named and the rest go on.
//!
//! A killed run loses only the files in flight: every feature is written under a
//! temporary name and renamed, so a rerun finds the finished ones complete and computes
//! the rest. It first removes the temporary files the kill left, and a cached file
//! that no longer decodes (damaged on disk) is computed again rather than trusted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use emotion_core::encoder::{EncoderError, EncoderGraph, EncoderInput, Modality};
use emotion_core::features::combine_layers;
use emotion_core::frontend::TrimConfig;
use emotion_core::tokenizer::{TokenizerError, TranscriptTokenizer};
use emotion_core::{Frontend, FrontendConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::manifest::{CorpusEntry, CorpusManifest};
use crate::features::cache::{
    CacheError, FeatureCache, FeatureDtype, FeatureIndex, Features, INDEX_FORMAT, IndexEntry,
    LayerCombination, digest,
};

/// What goes into every feature (and so into every cache key).
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractSettings {
    /// The front-end's settings.
    pub frontend: FrontendConfig,
    /// Mean of the layers, or kept apart.
    pub combination: LayerCombination,
    /// Storage precision.
    pub dtype: FeatureDtype,
}

impl Default for ExtractSettings {
    fn default() -> Self {
        Self {
            // Trimmed, so that the board's live utterances are framed like the files.
            frontend: FrontendConfig {
                trim: Some(TrimConfig::default()),
                ..FrontendConfig::default()
            },
            combination: LayerCombination::Mean,
            dtype: FeatureDtype::F32,
        }
    }
}

/// Extraction that cannot start or finish.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// An encoder graph does not load.
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    /// The tokenizer does not load.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The cache cannot be written.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A graph of the wrong modality was given.
    #[error("{path} is a {found:?} encoder, but a {expected:?} one is needed here")]
    WrongModality {
        /// The graph.
        path: PathBuf,
        /// What it is.
        found: Modality,
        /// What was asked for.
        expected: Modality,
    },
    /// An id that the manifest does not have.
    #[error("utterance {0} is not in the manifest")]
    UnknownId(String),
}

/// An encoder graph with the digest of its bytes.
#[derive(Debug, Clone)]
struct LoadedGraph {
    graph: EncoderGraph,
    digest: String,
}

impl LoadedGraph {
    fn load(path: &Path, expected: Modality) -> Result<Self, ExtractError> {
        let bytes = std::fs::read(path).map_err(|source| EncoderError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let graph = EncoderGraph::from_bytes(&bytes, &path.display().to_string())?;
        if graph.modality() != expected {
            return Err(ExtractError::WrongModality {
                path: path.to_path_buf(),
                found: graph.modality(),
                expected,
            });
        }
        Ok(Self {
            graph,
            digest: digest(&[&bytes]),
        })
    }
}

/// The encoders and settings that turn audio and transcripts into features.
#[derive(Debug, Clone)]
pub struct Extractor {
    frontend: Frontend,
    settings: ExtractSettings,
    /// What every feature depends on besides its input and graph.
    storage_key: String,
    /// What speech features also depend on: the front-end.
    frontend_key: String,
    speech: LoadedGraph,
    text: Option<(LoadedGraph, TranscriptTokenizer, String)>,
}

impl Extractor {
    /// Loads the speech graph and, optionally, the text graph with its `tokenizer.json`.
    pub fn new(
        speech_graph: &Path,
        text: Option<(&Path, &Path)>,
        settings: ExtractSettings,
    ) -> Result<Self, ExtractError> {
        let speech = LoadedGraph::load(speech_graph, Modality::Speech)?;
        let text = match text {
            Some((graph, tokenizer_path)) => {
                let graph = LoadedGraph::load(graph, Modality::Text)?;
                let tokenizer_bytes =
                    std::fs::read(tokenizer_path).map_err(|source| TokenizerError::Io {
                        path: tokenizer_path.to_path_buf(),
                        source,
                    })?;
                let tokenizer = TranscriptTokenizer::from_bytes(
                    &tokenizer_bytes,
                    &tokenizer_path.display().to_string(),
                )?;
                Some((graph, tokenizer, digest(&[&tokenizer_bytes])))
            }
            None => None,
        };
        let storage_key = format!("{:?}|{:?}", settings.combination, settings.dtype);
        let frontend_key = serde_json::to_string(&settings.frontend).unwrap_or_default();
        Ok(Self {
            frontend: Frontend::new(settings.frontend.clone()),
            settings,
            storage_key,
            frontend_key,
            speech,
            text,
        })
    }

    /// Cache path of the speech features of these audio bytes.
    pub fn speech_path(&self, audio_bytes: &[u8]) -> PathBuf {
        let key = digest(&[
            b"speech-v1",
            &digest(&[audio_bytes]).into_bytes(),
            self.speech.digest.as_bytes(),
            self.frontend_key.as_bytes(),
            self.storage_key.as_bytes(),
        ]);
        FeatureCache::relative_path("speech", &key)
    }

    /// Cache path of the text features of a transcript (None without a text encoder).
    pub fn text_path(&self, transcript: &str) -> Option<PathBuf> {
        let (graph, _, tokenizer_digest) = self.text.as_ref()?;
        let key = digest(&[
            b"text-v1",
            transcript.as_bytes(),
            graph.digest.as_bytes(),
            tokenizer_digest.as_bytes(),
            self.storage_key.as_bytes(),
        ]);
        Some(FeatureCache::relative_path("text", &key))
    }

    /// Front-end and speech encoder over WAV bytes; `name` is used in errors.
    pub fn speech_features(&self, audio_bytes: &[u8], name: &str) -> Result<Features, String> {
        let samples = self
            .frontend
            .process_bytes(audio_bytes, name)
            .map_err(|e| e.to_string())?;
        let states = self
            .speech
            .graph
            .run(EncoderInput::Audio(&samples))
            .map_err(|e| e.to_string())?;
        Ok(combine_layers(&states, self.settings.combination))
    }

    /// Tokenizer and text encoder over a transcript (None without a text encoder).
    pub fn text_features(&self, transcript: &str) -> Option<Result<Features, String>> {
        let (graph, tokenizer, _) = self.text.as_ref()?;
        Some((|| {
            let ids = tokenizer.encode(transcript).map_err(|e| e.to_string())?;
            let states = graph
                .graph
                .run(EncoderInput::TokenIds(&ids))
                .map_err(|e| e.to_string())?;
            Ok(combine_layers(&states, self.settings.combination))
        })())
    }
}

/// What one extraction did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExtractReport {
    /// Speech features computed by the encoder.
    pub speech_computed: usize,
    /// Speech features found in the cache.
    pub speech_cached: usize,
    /// Transcripts encoded.
    pub text_computed: usize,
    /// Transcripts found in the cache.
    pub text_cached: usize,
    /// Cached files that did not decode and were computed again (counted as computed).
    pub repaired: usize,
    /// Temporary files left by an interrupted run, removed before starting.
    pub stale_temp_files: usize,
    /// Utterances that failed, with the reason; they are left out of the index.
    pub failures: Vec<(String, String)>,
    /// Seconds of audio computed (not cached).
    pub audio_seconds: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Extracts the features of `ids` (all of the manifest when empty) into `cache` with
/// `jobs` workers, then writes `features.json`.
pub fn extract(
    extractor: &Extractor,
    manifest: &CorpusManifest,
    ids: &[String],
    cache: &FeatureCache,
    jobs: usize,
    progress: bool,
) -> Result<(FeatureIndex, ExtractReport), ExtractError> {
    let started = Instant::now();
    let entries = selected_entries(manifest, ids)?;
    let mut report = ExtractReport {
        stale_temp_files: cache.remove_stale_temp_files()?,
        ..ExtractReport::default()
    };
    // Transcripts first: few and shared by many utterances.
    let transcripts = Transcripts::encode(extractor, cache, &entries, &mut report);
    let results = speech_in_parallel(extractor, cache, &entries, jobs, progress);
    let mut index = empty_index(extractor);
    for (i, result) in results {
        add_to_index(
            &mut index,
            &mut report,
            extractor,
            &transcripts,
            entries[i],
            result,
        );
    }
    if let Some((path, _)) = transcripts.features.values().next() {
        index.text_dim = cache.read(path)?.dim();
    }
    index.write(cache.root())?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok((index, report))
}

/// The manifest entries of `ids`, in their order, or all of them when `ids` is empty.
fn selected_entries<'m>(
    manifest: &'m CorpusManifest,
    ids: &[String],
) -> Result<Vec<&'m CorpusEntry>, ExtractError> {
    if ids.is_empty() {
        return Ok(manifest.entries().iter().collect());
    }
    ids.iter()
        .map(|id| {
            manifest
                .get(id)
                .ok_or_else(|| ExtractError::UnknownId(id.clone()))
        })
        .collect()
}

/// Every distinct transcript, encoded (or found in the cache) once.
#[derive(Default)]
struct Transcripts<'a> {
    /// A transcript's cache path and its number of tokens.
    features: BTreeMap<&'a str, (PathBuf, usize)>,
    /// A transcript that failed, with the reason.
    failures: BTreeMap<&'a str, String>,
}

impl<'a> Transcripts<'a> {
    /// Encodes the transcripts of `entries` (nothing without a text encoder), counting
    /// in `report` what was cached, computed or repaired.
    fn encode(
        extractor: &Extractor,
        cache: &FeatureCache,
        entries: &[&'a CorpusEntry],
        report: &mut ExtractReport,
    ) -> Self {
        let mut transcripts = Self::default();
        for entry in entries {
            let transcript = entry.transcript.as_str();
            let Some(path) = extractor.text_path(transcript) else {
                break;
            };
            if transcripts.features.contains_key(transcript)
                || transcripts.failures.contains_key(transcript)
            {
                continue;
            }
            match text_for(extractor, cache, transcript, &path, report) {
                Ok(features) => {
                    transcripts
                        .features
                        .insert(transcript, (path, features.frames()));
                }
                Err(reason) => {
                    transcripts.failures.insert(transcript, reason);
                }
            }
        }
        transcripts
    }
}

/// The text features of `transcript`: read from `path` in the cache, or computed and
/// written there.
fn text_for(
    extractor: &Extractor,
    cache: &FeatureCache,
    transcript: &str,
    path: &Path,
    report: &mut ExtractReport,
) -> Result<Features, String> {
    let cached = match cached_features(cache, path) {
        Cached::Found(features) => Some(features),
        Cached::Missing => None,
        Cached::Damaged => {
            report.repaired += 1;
            None
        }
    };
    if let Some(cached) = cached {
        report.text_cached += 1;
        return cached;
    }
    report.text_computed += 1;
    extractor
        .text_features(transcript)
        .unwrap_or_else(|| Err("no text encoder".into()))
        .and_then(|f| {
            cache
                .write(path, &f, extractor.settings.dtype)
                .map(|()| f)
                .map_err(|e| e.to_string())
        })
}

/// The speech features of every entry, by `jobs` workers (with a progress bar when
/// `progress`): each entry's index with its result, in the entries' order.
fn speech_in_parallel(
    extractor: &Extractor,
    cache: &FeatureCache,
    entries: &[&CorpusEntry],
    jobs: usize,
    progress: bool,
) -> Vec<(usize, Result<SpeechResult, String>)> {
    let bar = if progress {
        ProgressBar::new(entries.len() as u64).with_style(
            ProgressStyle::with_template(
                "extracting {bar:30} {pos}/{len} files  {per_sec}  ETA {eta}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<SpeechResult, String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = entries.get(i) else { break };
                    let result = speech_for(extractor, cache, &entry.path);
                    bar.inc(1);
                    if let Ok(mut all) = results.lock() {
                        all.push((i, result));
                    }
                }
            });
        }
    });
    bar.finish_and_clear();

    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results
}

/// `features.json` of `extractor`'s settings and encoders, with no entries yet.
fn empty_index(extractor: &Extractor) -> FeatureIndex {
    FeatureIndex {
        format: INDEX_FORMAT,
        combination: extractor.settings.combination,
        dtype: extractor.settings.dtype,
        frontend: extractor.settings.frontend.clone(),
        speech_encoder: extractor.speech.digest.clone(),
        speech_layers: extractor.speech.graph.hidden_indices().to_vec(),
        speech_dim: 0,
        text_encoder: extractor.text.as_ref().map(|(g, _, _)| g.digest.clone()),
        text_layers: extractor
            .text
            .as_ref()
            .map(|(g, _, _)| g.graph.hidden_indices().to_vec())
            .unwrap_or_default(),
        text_dim: 0,
        entries: BTreeMap::new(),
    }
}

/// Adds `entry` to `index` when its speech (and, with a text encoder, its transcript)
/// succeeded; otherwise records the failure in `report`.
fn add_to_index(
    index: &mut FeatureIndex,
    report: &mut ExtractReport,
    extractor: &Extractor,
    transcripts: &Transcripts<'_>,
    entry: &CorpusEntry,
    result: Result<SpeechResult, String>,
) {
    let speech = match result {
        Ok(speech) => speech,
        Err(reason) => {
            report.failures.push((entry.id.clone(), reason));
            return;
        }
    };
    report.repaired += usize::from(speech.repaired);
    if speech.computed {
        report.speech_computed += 1;
        report.audio_seconds += entry.duration_s;
    } else {
        report.speech_cached += 1;
    }
    index.speech_dim = speech.dim;
    let text = match (
        extractor.text.is_some(),
        transcripts.features.get(entry.transcript.as_str()),
    ) {
        (false, _) => None,
        (true, Some(text)) => Some(text.clone()),
        (true, None) => {
            let reason = transcripts
                .failures
                .get(entry.transcript.as_str())
                .cloned()
                .unwrap_or_default();
            report.failures.push((
                entry.id.clone(),
                format!("transcript {:?}: {reason}", entry.transcript),
            ));
            return;
        }
    };
    index.entries.insert(
        entry.id.clone(),
        IndexEntry {
            speech: speech.path,
            tokens: text.as_ref().map_or(0, |(_, tokens)| *tokens),
            text: text.map(|(path, _)| path),
            frames: speech.frames,
        },
    );
}

struct SpeechResult {
    path: PathBuf,
    frames: usize,
    dim: usize,
    computed: bool,
    /// A cached file was there but did not decode.
    repaired: bool,
}

/// What the cache holds for one key.
enum Cached {
    /// Nothing: compute it.
    Missing,
    /// A file that does not decode: compute it again (the new file replaces it).
    Damaged,
    /// Features, or why the file could not be read at all (passed on as a failure).
    Found(Result<Features, String>),
}

fn cached_features(cache: &FeatureCache, relative: &Path) -> Cached {
    if !cache.contains(relative) {
        return Cached::Missing;
    }
    match cache.read(relative) {
        Ok(features) => Cached::Found(Ok(features)),
        Err(CacheError::Corrupt { .. }) => Cached::Damaged,
        Err(e) => Cached::Found(Err(e.to_string())),
    }
}

/// The speech features of one file: from the cache, or computed and cached.
fn speech_for(
    extractor: &Extractor,
    cache: &FeatureCache,
    wav: &Path,
) -> Result<SpeechResult, String> {
    let bytes = std::fs::read(wav).map_err(|e| format!("{}: {e}", wav.display()))?;
    let path = extractor.speech_path(&bytes);
    let repaired = match cached_features(cache, &path) {
        Cached::Found(features) => {
            let features = features?;
            return Ok(SpeechResult {
                frames: features.frames(),
                dim: features.dim(),
                path,
                computed: false,
                repaired: false,
            });
        }
        Cached::Missing => false,
        Cached::Damaged => true,
    };
    let features = extractor.speech_features(&bytes, &wav.display().to_string())?;
    cache
        .write(&path, &features, extractor.settings.dtype)
        .map_err(|e| e.to_string())?;
    Ok(SpeechResult {
        frames: features.frames(),
        dim: features.dim(),
        path,
        computed: true,
        repaired,
    })
}
