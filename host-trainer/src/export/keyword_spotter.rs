//! The bundle's text side: the keyword table (text features of the vocabulary) and the
//! keyword spotter, checked against burn and measured per variant.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use emotion_core::bundle::{Bundle, KeywordEntry, KeywordSpotterSpec, KeywordTable, Variant};
use emotion_core::keyword_spotter::KeywordSpotter;

use super::measure::agreement;
use super::request::ExportRequest;
use super::request::Precision;
use crate::data::manifest::CorpusManifest;
use crate::features::cache::{FeatureCache, FeatureIndex};
use crate::train::dataset::SplitData;
use crate::train::keyword_spotter::{KeywordEvaluation, KeywordModel, evaluate, keyword_run_dir};
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
        Ok(KeywordSpotterSpec {
            words: self.words.clone(),
            min_confidence: self.min_confidence,
            test_accuracy: (tested.utterances > 0).then_some(tested.accuracy),
            test_utterances: tested.utterances,
        })
    }
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

/// Each variant's spotter graph (tract) over the test part's cached speech features:
/// the fp32 graph against burn, every variant against the true words and against fp32.
/// `run` is the folder `model` was read from.
pub(super) fn measure_spotter(
    manifest: &CorpusManifest,
    data: &SplitData,
    staged: &Bundle,
    run: PathBuf,
    model: &KeywordModel,
) -> anyhow::Result<SpotterExport> {
    let bundle_manifest = staged.manifest();
    let words = model.words();
    let truth = data
        .test
        .iter()
        .map(|e| {
            let word = manifest.get(&e.id).map(|entry| entry.word.as_str());
            words
                .iter()
                .position(|w| Some(w.as_str()) == word)
                .with_context(|| {
                    format!(
                        "the keyword spotter does not know the word of {} ({}): it was trained on another vocabulary; train it again",
                        e.id,
                        word.unwrap_or("not in the manifest")
                    )
                })
        })
        .collect::<anyhow::Result<Vec<usize>>>()?;
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
        let logits = data
            .test
            .iter()
            .map(|e| graph.logits(&e.speech))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("cannot run the keyword spotter {file}"))?;
        let spotted: Vec<usize> = logits.iter().map(|row| argmax(row).0).collect();
        if variants.is_empty() {
            (parity.same_predictions, parity.max_logit_difference) = agreement(&burn, &logits);
            fp32_words = spotted.clone();
        }
        let same = spotted
            .iter()
            .zip(&fp32_words)
            .filter(|(a, b)| a == b)
            .count();
        let probabilities: Vec<Vec<f32>> = logits.iter().map(|row| softmax(row)).collect();
        variants.push(SpotterVariant {
            name: variant.name.clone(),
            bytes: bundle_manifest.file(file).map_or(0, |f| f.bytes),
            evaluation: evaluate(words, &probabilities, &truth, model.min_confidence()),
            agreement_with_fp32: same as f64 / spotted.len().max(1) as f64,
        });
    }
    Ok(SpotterExport {
        run,
        words: words.to_vec(),
        min_confidence: model.min_confidence(),
        parity,
        variants,
    })
}
