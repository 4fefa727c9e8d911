//! The bundle's text side: the keyword table (text features of the vocabulary) and the
//! keyword spotter, checked against burn and measured per variant; an open-set
//! spotter's false-accept and false-reject rates measured again through each variant's
//! graph (tract) on the parts it was trained and calibrated apart from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use emotion_core::bundle::{
    Bundle, KeywordEntry, KeywordSpotterSpec, KeywordTable, MeasuredRate, OpenSetSpec, Variant,
};
use emotion_core::keyword_spotter::KeywordSpotter;
use emotion_core::real_speech::RealSpeech;

use super::measure::agreement;
use super::request::ExportRequest;
use super::request::Precision;
use crate::data::manifest::CorpusManifest;
use crate::data::negatives::RealNegatives;
use crate::features::cache::FeatureCache as Cache;
use crate::features::cache::{FeatureCache, FeatureIndex};
use crate::train::dataset::SplitData;
use crate::train::keyword_spotter::{
    KeywordEvaluation, KeywordModel, OpenSetChoice, OpenSetEvaluation, OpenSetParts,
    RecordedExamples, RecordedParts, TARGET_FALSE_ACCEPT_RATE, evaluate, extractor_for,
    keyword_probabilities, keyword_run_dir, open_set_rates, vocabulary,
};
use crate::train::trainer::Example;
use emotion_core::scores::{argmax, softmax};

/// The keyword spotter in the bundle, measured on the test part's cached speech features.
#[derive(Debug, Clone)]
pub struct SpotterExport {
    /// Where the burn spotter was read from.
    pub run: PathBuf,
    /// Its words, in output order.
    pub words: Vec<String>,
    /// Its threshold.
    pub min_confidence: f32,
    /// An open-set spotter's keyword threshold and negatives.
    pub open_set: Option<OpenSetChoice>,
    /// fp32 graph (tract) vs burn.
    pub parity: SpotterParity,
    /// Each variant's graph on the test part, fp32 first.
    pub variants: Vec<SpotterVariant>,
}

impl SpotterExport {
    /// The manifest's entry for the spotter, with its fp32 test accuracy.
    pub fn spec(&self) -> anyhow::Result<KeywordSpotterSpec> {
        let tested = self
            .variants
            .first()
            .map(|v| &v.evaluation)
            .context("internal error: the fp32 keyword spotter was not measured")?;
        let open_set = match (&self.open_set, self.variants.first()) {
            (Some(choice), Some(fp32)) => {
                let rates = fp32.open_set.as_ref().context(
                    "internal error: the fp32 open-set keyword spotter was not measured",
                )?;
                Some(open_set_spec(choice, &fp32.name, rates))
            }
            _ => None,
        };
        Ok(KeywordSpotterSpec {
            words: self.words.clone(),
            min_confidence: self.min_confidence,
            test_accuracy: (tested.utterances > 0).then_some(tested.accuracy),
            test_utterances: tested.utterances,
            open_set,
        })
    }
}

/// The manifest's open-set entry: `choice`'s threshold with the rates `variant` measured
/// (placeholders while the bundle is staged).
pub(super) fn open_set_spec(
    choice: &OpenSetChoice,
    variant: &str,
    rates: &OpenSetEvaluation,
) -> OpenSetSpec {
    OpenSetSpec {
        keyword_threshold: choice.keyword_threshold,
        target_false_accept_rate: TARGET_FALSE_ACCEPT_RATE,
        held_out_words: choice.held_out_words.clone(),
        measured_variant: variant.to_string(),
        calibration: rates.calibration.clone(),
        false_accept: rates.false_accept.clone(),
        held_out_false_accept: rates.held_out_false_accept.clone(),
        false_reject: rates.false_reject.clone(),
    }
}

/// The open-set entry a staged manifest carries before anything is measured (the board's
/// loader needs the threshold of a graph with a `<none>` output).
pub(super) fn staged_open_set_spec(choice: &OpenSetChoice) -> OpenSetSpec {
    let nothing = MeasuredRate::new("not measured yet", Vec::new(), 0, 0);
    open_set_spec(
        choice,
        "none yet",
        &OpenSetEvaluation {
            keyword_threshold: choice.keyword_threshold,
            held_out_words: choice.held_out_words.clone(),
            calibration: nothing.clone(),
            false_accept: None,
            held_out_false_accept: None,
            false_reject: nothing,
        },
    )
}

/// The fp32 spotter graph against the burn spotter.
#[derive(Debug, Clone, PartialEq)]
pub struct SpotterParity {
    /// Test utterances.
    pub utterances: usize,
    /// Utterances given the same word.
    pub same_predictions: usize,
    /// Largest absolute logit difference.
    pub max_logit_difference: f32,
}

/// One variant's spotter on the test part.
#[derive(Debug, Clone)]
pub struct SpotterVariant {
    /// The variant (`fp32`, `int8`).
    pub name: String,
    /// Size of its spotter graph.
    pub bytes: u64,
    /// Accuracy, top-3, what the threshold accepts, per word.
    pub evaluation: KeywordEvaluation,
    /// Fraction of utterances given the same word as the fp32 graph.
    pub agreement_with_fp32: f64,
    /// An open-set spotter's rates through this variant's graph.
    pub open_set: Option<OpenSetEvaluation>,
}

/// The text features of each word of the vocabulary, read from the cache (exactly what
/// the heads were trained on).
pub(super) fn keyword_table(
    manifest: &CorpusManifest,
    index: &FeatureIndex,
    features: &Path,
) -> anyhow::Result<KeywordTable> {
    let cache = FeatureCache::new(features);
    let mut template: Option<String> = None;
    let mut entries: BTreeMap<String, KeywordEntry> = BTreeMap::new();
    for entry in manifest.entries() {
        let Some(at) = entry.transcript.rfind(&entry.word) else {
            bail!(
                "the transcript of {} (`{}`) does not contain its word `{}`",
                entry.id,
                entry.transcript,
                entry.word
            );
        };
        let own = format!(
            "{}{{word}}{}",
            &entry.transcript[..at],
            &entry.transcript[at + entry.word.len()..]
        );
        match &template {
            None => template = Some(own),
            Some(t) if *t != own => bail!(
                "transcripts follow two templates (`{t}` and `{own}`): scan the corpus again with one --transcript"
            ),
            Some(_) => {}
        }
        if entries.contains_key(&entry.word) {
            continue;
        }
        let Some(path) = index.entries.get(&entry.id).and_then(|e| e.text.clone()) else {
            continue;
        };
        let f = cache.read(&path)?;
        entries.insert(
            entry.word.clone(),
            KeywordEntry {
                word: entry.word.clone(),
                transcript: entry.transcript.clone(),
                shape: f.shape,
                data: f.data,
            },
        );
    }
    if entries.is_empty() {
        bail!(
            "{} holds no text features: extract with --text-encoder and --tokenizer",
            features.display()
        );
    }
    Ok(KeywordTable {
        template: template.unwrap_or_else(|| "{word}".into()),
        layers: index.text_layers.clone(),
        combination: index.combination,
        dim: index.text_dim,
        entries: entries.into_values().collect(),
    })
}

/// The keyword spotter trained for the split (with the folder it came from), if there
/// is one; one that cannot be loaded, or that spots a word the keyword table lacks, is
/// an error.
pub(super) fn trained_spotter(
    request: &ExportRequest<'_>,
    keywords: &KeywordTable,
) -> anyhow::Result<Option<(PathBuf, KeywordModel)>> {
    let split = &request.split.name;
    let dir = keyword_run_dir(request.runs, split);
    if !KeywordModel::exists_in(&dir) {
        return Ok(None);
    }
    let again = format!(
        "train it again with `host-trainer keywords --split {split}`, or export with --no-keyword-spotter"
    );
    let model = KeywordModel::load(&dir).with_context(|| {
        format!(
            "cannot load the keyword spotter in {}: {again}",
            dir.display()
        )
    })?;
    let missing: Vec<&str> = model
        .words()
        .iter()
        .filter(|w| keywords.lookup(w).is_none())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        bail!(
            "the keyword spotter in {} spots {}, which the keyword table lacks (no text features for them in {}): {again}",
            dir.display(),
            missing.join(", "),
            request.features.display()
        );
    }
    Ok(Some((dir, model)))
}

/// Each of `examples`, by reference.
fn refs(examples: &[Example]) -> Vec<&Example> {
    examples.iter().collect()
}

/// The recorded negatives a spotter trained on, found again in the same cache by the
/// same rule, checked to be the same parts, with their features (cached at training).
fn recorded_examples(
    request: &ExportRequest<'_>,
    parts: &RecordedParts,
) -> anyhow::Result<RecordedExamples> {
    let set = RealSpeech::open(&parts.root).with_context(|| {
        format!(
            "the keyword spotter was trained with the real-speech set in {}, and the export measures its false-accept rate on it: fetch the set there again, or train the spotter with --no-real-speech",
            parts.root.display()
        )
    })?;
    let negatives = RealNegatives::split(&set, &vocabulary(request.manifest))?;
    let found = RecordedParts::of(&negatives);
    if found != *parts {
        bail!(
            "the real-speech set in {} no longer splits into the parts the keyword spotter was trained with (training {:?}, calibration {:?}, test {:?}; now {:?}, {:?}, {:?}): train it again",
            parts.root.display(),
            parts.train,
            parts.calibration,
            parts.test,
            found.train,
            found.calibration,
            found.test
        );
    }
    let extractor = extractor_for(request.features, request.speech_encoder)?;
    Ok(RecordedExamples::extract(
        &negatives,
        &extractor,
        &Cache::new(request.features),
    )?)
}

/// Each variant's spotter graph (tract) over the test part's cached speech features:
/// the fp32 graph against burn, every variant against the true words and against fp32;
/// an open-set spotter's rates on the calibration part, the unseen recorded speakers,
/// the held-out words and the spotter's words. `run` is the folder `model` was read
/// from.
pub(super) fn measure_spotter(
    request: &ExportRequest<'_>,
    data: &SplitData,
    staged: &Bundle,
    run: PathBuf,
    model: &KeywordModel,
) -> anyhow::Result<SpotterExport> {
    let manifest = request.manifest;
    let bundle_manifest = staged.manifest();
    let words = model.words();
    let choice = model.open_set();
    let held_out: Vec<&str> = choice.map_or(Vec::new(), |c| {
        c.held_out_words.iter().map(String::as_str).collect()
    });
    let word_of = |e: &Example| manifest.get(&e.id).map(|entry| entry.word.as_str());
    let mut keyword_test: Vec<&Example> = Vec::new();
    let mut held_test: Vec<&Example> = Vec::new();
    let mut truth: Vec<usize> = Vec::new();
    for e in &data.test {
        let word = word_of(e);
        if let Some(index) = words.iter().position(|w| Some(w.as_str()) == word) {
            keyword_test.push(e);
            truth.push(index);
        } else if word.is_some_and(|w| held_out.contains(&w)) {
            held_test.push(e);
        } else {
            bail!(
                "the keyword spotter does not know the word of {} ({}): it was trained on another vocabulary; train it again",
                e.id,
                word.unwrap_or("not in the manifest")
            );
        }
    }
    let held_val: Vec<&Example> = data
        .val
        .iter()
        .filter(|e| word_of(e).is_some_and(|w| held_out.contains(&w)))
        .collect();
    let recorded = match choice.and_then(|c| c.recorded.as_ref()) {
        Some(parts) => Some(recorded_examples(request, parts)?),
        None => None,
    };
    let speakers = |examples: &[&Example]| -> Vec<String> {
        let set: std::collections::BTreeSet<&str> = examples
            .iter()
            .filter_map(|e| manifest.get(&e.id).map(|entry| entry.speaker.as_str()))
            .collect();
        set.into_iter().map(String::from).collect()
    };

    let burn = model.logits(&data.test)?;
    let mut parity = SpotterParity {
        utterances: burn.len(),
        same_predictions: 0,
        max_logit_difference: 0.0,
    };
    let mut variants: Vec<SpotterVariant> = Vec::new();
    let mut fp32_words: Vec<usize> = Vec::new();
    // fp32 first: the others are compared with it.
    let mut order: Vec<&Variant> = bundle_manifest.variants.iter().collect();
    order.sort_by_key(|v| v.name != Precision::Fp32.name());
    for variant in order {
        let Some(file) = &variant.keyword_spotter else {
            continue;
        };
        let graph = KeywordSpotter::from_bytes(&staged.read(file)?, file, 1)
            .with_context(|| format!("the exported keyword spotter {file} does not load"))?;
        if graph.is_open_set() != choice.is_some() {
            bail!(
                "internal error: the exported keyword spotter {file} and the trained one disagree on `<none>`"
            );
        }
        let run_graph = |examples: &[&Example]| -> anyhow::Result<Vec<Vec<f32>>> {
            examples
                .iter()
                .map(|e| graph.logits(&e.speech))
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("cannot run the keyword spotter {file}"))
        };
        let all: Vec<&Example> = data.test.iter().collect();
        let logits = run_graph(&all)?;
        if variants.is_empty() {
            (parity.same_predictions, parity.max_logit_difference) = agreement(&burn, &logits);
        }
        let keyword_logits = run_graph(&keyword_test)?;
        let spotted: Vec<usize> = keyword_logits
            .iter()
            .map(|row| argmax(&row[..words.len()]).0)
            .collect();
        if variants.is_empty() {
            fp32_words = spotted.clone();
        }
        let same = spotted
            .iter()
            .zip(&fp32_words)
            .filter(|(a, b)| a == b)
            .count();
        let probabilities: Vec<Vec<f32>> = keyword_logits
            .iter()
            .map(|row| softmax(&row[..words.len()]))
            .collect();
        let open_set = match choice {
            Some(choice) => {
                let scores = |examples: &[&Example]| -> anyhow::Result<Vec<f32>> {
                    Ok(keyword_probabilities(words, &run_graph(examples)?))
                };
                let (calibration, what, calibration_speakers) = match &recorded {
                    Some(r) => (
                        scores(&refs(&r.calibration))?,
                        "recorded speech of calibration speakers, no vocabulary word",
                        r.parts.calibration.clone(),
                    ),
                    None => (
                        scores(&held_val)?,
                        "validation utterances of the held-out words",
                        speakers(&held_val),
                    ),
                };
                let recorded_test = match &recorded {
                    Some(r) => Some((scores(&refs(&r.test))?, r.parts.test.clone())),
                    None => None,
                };
                let held = if held_test.is_empty() {
                    None
                } else {
                    Some((scores(&held_test)?, speakers(&held_test)))
                };
                let keyword = (
                    keyword_probabilities(words, &keyword_logits),
                    speakers(&keyword_test),
                );
                Some(open_set_rates(
                    choice,
                    OpenSetParts {
                        calibration: (&calibration, what, &calibration_speakers),
                        recorded_test: recorded_test
                            .as_ref()
                            .map(|(s, g)| (s.as_slice(), g.as_slice())),
                        held_out_test: held.as_ref().map(|(s, g)| (s.as_slice(), g.as_slice())),
                        keyword_test: (&keyword.0, &keyword.1),
                    },
                ))
            }
            None => None,
        };
        variants.push(SpotterVariant {
            name: variant.name.clone(),
            bytes: bundle_manifest.file(file).map_or(0, |f| f.bytes),
            evaluation: evaluate(words, &probabilities, &truth, model.min_confidence()),
            agreement_with_fp32: same as f64 / spotted.len().max(1) as f64,
            open_set,
        });
    }
    Ok(SpotterExport {
        run,
        words: words.to_vec(),
        min_confidence: model.min_confidence(),
        open_set: choice.cloned(),
        parity,
        variants,
    })
}
