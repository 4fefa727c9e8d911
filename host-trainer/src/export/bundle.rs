//! `host-trainer export`: the trained heads of one split and the encoders they were
//! trained over, packed into a bundle for the board, one variant per precision, with
//! the quantisation report that picks the default variant.
//!
//! Steps: check that the encoder graphs are the ones the features came from; export
//! each head, and the keyword spotter when one was trained for the split, to ONNX; make
//! the int8 variant (dynamic quantisation of every weight matrix product: encoder,
//! heads, spotter); build the keyword table from the cached text features of the corpus
//! vocabulary; stage the bundle; classify the split's test part through each variant
//! (tract, from the WAV files), compare with the burn models and with fp32, time 2 s of
//! audio; run each variant's spotter over the test part's cached speech features
//! (exactly what the board computes) against burn and fp32; choose the default variant;
//! write the report into the bundle and put the bundle in place.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use models::bundle::{
    Bundle, BundleManifest, BundleProvenance, BundleWriter, EncoderSpec, FORMAT_VERSION, HeadFile,
    KeywordEntry, KeywordSpotterSpec, KeywordTable, ModelMetrics, Variant, VariantReport,
};
use models::keyword_spotter::KeywordSpotter;
use models::pipeline::TextInput;
use models::{Emotion, Pipeline, PipelineOptions};

use crate::data::manifest::Manifest;
use crate::data::splits::Split;
use crate::evaluate::through_bundle::{BundlePredictions, predict_through_bundle};
use crate::export::heads::{export_head, export_keyword_spotter};
use crate::features::cache::{FeatureCache, FeatureIndex, digest};
use crate::train::dataset::{SplitData, load_split};
use crate::train::heads::ModelKind;
use crate::train::keyword_spotter::{KeywordEvaluation, KeywordModel, evaluate, keyword_run_dir};
use crate::train::runs::run_dir;
use crate::train::trainer::{TrainedModel, argmax, softmax};
use onnx_build::calibration::calibrate;
use onnx_build::quantize::{ActivationRanges, QuantizeOptions, quantize_dynamic};

use models::bundle::{MAX_MACRO_F1_LOSS, accuracy_problems};

/// How much smaller than fp32 a variant must be to become the default (memory is what a
/// Pi Zero 2 W lacks first).
pub const MIN_SIZE_RATIO: f64 = 2.0;

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

    fn description(self) -> &'static str {
        match self {
            Precision::Fp32 => "32-bit float throughout, as trained",
            Precision::Int8 => {
                "int8 weight matrix products (MatMulInteger; weights per output channel) in the speech encoder's transformer, with activation scales calibrated on training utterances, and in the heads' larger projections, with activations quantised symmetrically per run; the speech encoder's conv feature encoder and positional conv, the heads' Conv1d and LSTMs stay float"
            }
        }
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest<'a> {
    /// The corpus manifest (test utterances, vocabulary).
    pub manifest: &'a Manifest,
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
}

/// How the fp32 bundle compares with the burn models on the test part.
#[derive(Debug, Clone, PartialEq)]
pub struct Parity {
    /// The model.
    pub model: ModelKind,
    /// Test utterances.
    pub utterances: usize,
    /// Utterances predicted the same.
    pub same_predictions: usize,
    /// Largest absolute logit difference.
    pub max_logit_difference: f32,
}

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

/// What an export did.
#[derive(Debug, Clone)]
pub struct ExportOutcome {
    /// The manifest as written.
    pub manifest: BundleManifest,
    /// fp32 bundle vs burn, per model.
    pub parity: Vec<Parity>,
    /// The keyword spotter, when the bundle has one.
    pub keyword_spotter: Option<SpotterExport>,
    /// The quantisation report as Markdown (also `quantization.md` in the bundle).
    pub report: String,
}

/// Exports the runs of `request.split` into a bundle, the keyword spotter included when
/// one was trained for the split.
pub fn export_bundle(request: &ExportRequest<'_>) -> anyhow::Result<ExportOutcome> {
    export_bundle_with(request, &ExportOptions::default())
}

/// [`export_bundle`] with [`ExportOptions`].
pub fn export_bundle_with(
    request: &ExportRequest<'_>,
    options: &ExportOptions,
) -> anyhow::Result<ExportOutcome> {
    let index = FeatureIndex::read(request.features)?;
    let speech_bytes = read(request.speech_encoder)?;
    if digest(&[&speech_bytes]) != index.speech_encoder {
        bail!(
            "{} is not the speech encoder the features in {} came from: pass the graph given to `extract`",
            request.speech_encoder.display(),
            request.features.display()
        );
    }
    let text_bytes = read(request.text_encoder)?;
    if index.text_encoder.as_deref() != Some(digest(&[&text_bytes]).as_str()) {
        bail!(
            "{} is not the text encoder the features in {} came from (or they hold no text features)",
            request.text_encoder.display(),
            request.features.display()
        );
    }
    let tokenizer = read(request.tokenizer)?;

    let mut trained = Vec::new();
    for kind in ModelKind::ALL {
        let dir = run_dir(request.runs, kind, &request.split.name).join("model");
        match TrainedModel::load(&dir) {
            Ok(model) => trained.push(model),
            Err(_) if kind != ModelKind::Speech => {}
            Err(e) => bail!(
                "no trained speech model for split {} in {} ({e}): run `host-trainer train --model speech --split {}` first",
                request.split.name,
                dir.display(),
                request.split.name
            ),
        }
    }
    let models: Vec<ModelKind> = trained.iter().map(TrainedModel::kind).collect();
    let keywords = keyword_table(request.manifest, &index, request.features)?;
    let spotter = if options.skip_keyword_spotter {
        None
    } else {
        trained_spotter(request, &keywords)?
    };

    let mut precisions = request.precisions.clone();
    precisions.push(Precision::Fp32);
    precisions.sort();
    precisions.dedup();

    let mut writer = BundleWriter::new(request.out)?;
    writer.add("tokenizer.json", &tokenizer)?;
    writer.add_keywords("keywords.bin", &keywords)?;
    let text_encoder = if request.include_text_encoder {
        writer.add("text_encoder.onnx", &text_bytes)?;
        Some("text_encoder.onnx".to_string())
    } else {
        None
    };
    // Each head exported once; the variants are made from these fp32 graphs.
    let mut head_graphs = Vec::new();
    for model in &trained {
        let kind = model.kind();
        let graph =
            export_head(model.head()).with_context(|| format!("cannot export the {kind} head"))?;
        head_graphs.push((kind, graph));
    }
    let spotter_graph = match &spotter {
        Some((_, model)) => Some(
            export_keyword_spotter(model.classifier(), model.words())
                .context("cannot export the keyword spotter")?,
        ),
        None => None,
    };
    let quantize = QuantizeOptions::default();
    let speech_quantize = QuantizeOptions {
        keep_float: vec![SPEECH_FLOAT_PREFIX.to_string()],
        ..quantize.clone()
    };
    let speech_quantize = if precisions.contains(&Precision::Int8) {
        QuantizeOptions {
            ranges: calibration_ranges(request, &index, &speech_bytes, &speech_quantize)?,
            ..speech_quantize
        }
    } else {
        speech_quantize
    };
    let mut variants = Vec::new();
    for &precision in &precisions {
        let name = precision.name();
        let encoder_file = format!("speech_encoder.{name}.onnx");
        let encoder = match precision {
            Precision::Fp32 => speech_bytes.clone(),
            Precision::Int8 => {
                quantize_dynamic(&speech_bytes, &speech_quantize)
                    .context("cannot quantise the speech encoder")?
                    .0
            }
        };
        writer.add(&encoder_file, &encoder)?;
        let mut heads = Vec::new();
        for (kind, fp32) in &head_graphs {
            let kind = *kind;
            let file = format!("head_{kind}.{name}.onnx");
            let bytes = match precision {
                Precision::Fp32 => fp32.clone(),
                Precision::Int8 => {
                    quantize_dynamic(fp32, &quantize)
                        .with_context(|| format!("cannot quantise the {kind} head"))?
                        .0
                }
            };
            writer.add(&file, &bytes)?;
            heads.push(HeadFile { model: kind, file });
        }
        // The int8 variant carries its own text encoder, quantised as the heads are
        // (weights per output channel, activations per run: a text graph reads token
        // ids, so the speech encoder's calibrated scales have nothing to measure); its
        // embedding tables stay float. fp32 and the keyword table use the fp32 one.
        let (own_text_encoder, description) = match precision {
            Precision::Int8 if request.include_text_encoder => {
                let file = format!("text_encoder.{name}.onnx");
                let bytes = quantize_dynamic(&text_bytes, &quantize)
                    .context("cannot quantise the text encoder")?
                    .0;
                writer.add(&file, &bytes)?;
                (
                    Some(file),
                    format!(
                        "{}; the text encoder's weight matrix products likewise, activations quantised per run, its embedding tables float",
                        precision.description()
                    ),
                )
            }
            _ => (None, precision.description().to_string()),
        };
        let keyword_spotter = match &spotter_graph {
            Some(fp32) => {
                let file = format!("keyword_spotter.{name}.onnx");
                let bytes = match precision {
                    Precision::Fp32 => fp32.clone(),
                    Precision::Int8 => {
                        quantize_dynamic(fp32, &quantize)
                            .context("cannot quantise the keyword spotter")?
                            .0
                    }
                };
                writer.add(&file, &bytes)?;
                Some(file)
            }
            None => None,
        };
        variants.push(Variant {
            name: name.to_string(),
            description,
            speech_encoder: encoder_file,
            heads,
            keyword_spotter,
            text_encoder: own_text_encoder,
        });
    }

    let mut manifest = BundleManifest {
        format: FORMAT_VERSION,
        created_by: format!("host-trainer {}", env!("CARGO_PKG_VERSION")),
        labels: Emotion::ALL.iter().map(|e| e.name().to_string()).collect(),
        frontend: index.frontend.clone(),
        transcript_template: keywords.template.clone(),
        speech: EncoderSpec {
            layers: index.speech_layers.clone(),
            combination: index.combination,
            dim: index.speech_dim,
        },
        text: EncoderSpec {
            layers: index.text_layers.clone(),
            combination: index.combination,
            dim: index.text_dim,
        },
        tokenizer: "tokenizer.json".into(),
        keywords: "keywords.bin".into(),
        text_encoder,
        keyword_spotter: spotter.as_ref().map(|(_, model)| KeywordSpotterSpec {
            words: model.words().to_vec(),
            min_confidence: model.min_confidence(),
            test_accuracy: None,
            test_utterances: 0,
        }),
        variants,
        default_variant: Precision::Fp32.name().into(),
        default_reason: "measuring".into(),
        files: Vec::new(),
        provenance: BundleProvenance {
            data: request.data.clone(),
            split: request.split.name.clone(),
            splits_id: request.splits_id.to_string(),
            seed: request.seed,
            encoders: format!(
                "speech {} layers {:?}, text {} layers {:?}",
                short(&index.speech_encoder),
                index.speech_layers,
                index.text_encoder.as_deref().map_or("none", short),
                index.text_layers
            ),
            metrics: Vec::new(),
            variants: Vec::new(),
        },
    };
    let staged = writer.stage(&manifest)?;

    // Every variant over the test part, from the WAV files.
    let ids = &request.split.test;
    let mut measured: BTreeMap<Precision, Vec<BundlePredictions>> = BTreeMap::new();
    let mut latency: BTreeMap<Precision, f64> = BTreeMap::new();
    let default_model = if models.contains(&ModelKind::Fusion) {
        ModelKind::Fusion
    } else {
        ModelKind::Speech
    };
    for &precision in &precisions {
        let options = PipelineOptions {
            variant: Some(precision.name().to_string()),
            threads: 1,
        };
        let pipeline = Pipeline::load(staged.dir(), &options)?;
        let predictions = predict_through_bundle(
            &pipeline,
            request.manifest,
            ids,
            &request.split.name,
            &models,
            request.progress,
        )?;
        latency.insert(
            precision,
            latency_ms_2s(&pipeline, request.manifest, ids, default_model)?,
        );
        measured.insert(precision, predictions);
    }
    let fp32 = &measured[&Precision::Fp32];
    let data = load_split(request.manifest, request.split, request.features, true)?;
    let parity = burn_parity(&data, &trained, fp32)?;
    let spotter = match spotter {
        Some((run, model)) => {
            let measured = measure_spotter(request.manifest, &data, &staged, run, &model)?;
            let tested = measured
                .variants
                .first()
                .map(|v| &v.evaluation)
                .context("internal error: the fp32 keyword spotter was not measured")?;
            manifest.keyword_spotter = Some(KeywordSpotterSpec {
                words: model.words().to_vec(),
                min_confidence: model.min_confidence(),
                test_accuracy: (tested.utterances > 0).then_some(tested.accuracy),
                test_utterances: tested.utterances,
            });
            Some(measured)
        }
        None => None,
    };
    manifest.provenance.metrics = fp32
        .iter()
        .map(|p| {
            let report = p.evaluation.report();
            ModelMetrics {
                model: p.model,
                utterances: p.logits.len(),
                accuracy: report.accuracy,
                macro_f1: report.macro_f1(),
            }
        })
        .collect();
    let mut rows = Vec::new();
    for (&precision, predictions) in &measured {
        let variant = manifest.variant(Some(precision.name()))?;
        let bytes = variant_bytes(&staged, variant);
        for (p, reference) in predictions.iter().zip(fp32) {
            let report = p.evaluation.report();
            let same = p
                .evaluation
                .predictions
                .iter()
                .zip(&reference.evaluation.predictions)
                .filter(|(a, b)| a.predicted() == b.predicted())
                .count();
            rows.push(VariantReport {
                name: precision.name().into(),
                model: p.model,
                bytes,
                latency_ms_2s: latency[&precision],
                agreement_with_fp32: same as f64 / p.logits.len().max(1) as f64,
                accuracy: report.accuracy,
                macro_f1: report.macro_f1(),
            });
        }
    }
    let (default, reason) = choose_default(&rows);
    manifest.default_variant = default;
    manifest.default_reason = reason;
    manifest.provenance.variants = rows;
    let report = quantization_markdown(&manifest, &parity, spotter.as_ref(), ids.len());
    writer.add("quantization.md", report.as_bytes())?;
    drop(staged);
    let bundle = writer.finish(&manifest)?;
    Ok(ExportOutcome {
        manifest: bundle.manifest().clone(),
        parity,
        keyword_spotter: spotter,
        report,
    })
}

/// The variant to load by default, with the reason in words. A variant qualifies when
/// it passes the accuracy bar against fp32 for every model ([`accuracy_problems`]) and
/// is at least [`MIN_SIZE_RATIO`] times smaller; the smallest one that qualifies is
/// chosen, fp32 when none does. Speed is not part of the rule: it is a property of the
/// board's CPU, not of the machine that exports (int8 beat fp32 on an AVX-512 VNNI
/// export machine and ran at half its speed on an AVX2 one), so the board decides it
/// (`emotion-edge bench --choose`, and int8 graphs compute in float where integer
/// kernels do not pay).
pub fn choose_default(rows: &[VariantReport]) -> (String, String) {
    let Some(reference) = rows.iter().find(|r| r.name == "fp32") else {
        return ("fp32".into(), "fp32: no quantisation report".into());
    };
    let mut names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    names.dedup();
    let mut best: Option<(&str, u64, String)> = None;
    let mut refused = Vec::new();
    for name in names.into_iter().filter(|n| *n != "fp32") {
        let own: Vec<&VariantReport> = rows.iter().filter(|r| r.name == name).collect();
        let problems = accuracy_problems(rows, name);
        if !problems.is_empty() {
            refused.push(format!("{name} not chosen: {}", problems.join("; ")));
            continue;
        }
        let Some(first) = own.first() else { continue };
        let smaller = reference.bytes as f64 / first.bytes.max(1) as f64;
        if smaller < MIN_SIZE_RATIO {
            refused.push(format!(
                "{name} passes on accuracy but is only {smaller:.1}x smaller (< {MIN_SIZE_RATIO:.0}x)"
            ));
            continue;
        }
        let agreement = own
            .iter()
            .map(|r| r.agreement_with_fp32)
            .fold(1.0, f64::min);
        let why = format!(
            "{name}: predictions agree with fp32 on at least {:.1}% of the test part for every model, macro-F1 within {:.0} point, {:.1}x smaller ({:.1} MB vs {:.1} MB); speed is the board's to measure (`emotion-edge bench --choose`)",
            100.0 * agreement,
            100.0 * MAX_MACRO_F1_LOSS,
            smaller,
            first.bytes as f64 / 1e6,
            reference.bytes as f64 / 1e6,
        );
        if best.as_ref().is_none_or(|b| first.bytes < b.1) {
            best = Some((name, first.bytes, why));
        }
    }
    match best {
        Some((name, _, why)) => (name.to_string(), why),
        None if refused.is_empty() => ("fp32".into(), "fp32: the only variant".into()),
        None => (
            "fp32".into(),
            format!("fp32, the reference: {}", refused.join("; ")),
        ),
    }
}

/// The text features of each word of the vocabulary, read from the cache (exactly what
/// the heads were trained on).
fn keyword_table(
    manifest: &Manifest,
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
fn trained_spotter(
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
fn measure_spotter(
    manifest: &Manifest,
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
        let spotted: Vec<usize> = logits.iter().map(|row| argmax(row)).collect();
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

/// The fp32 bundle against the burn models on the test part.
fn burn_parity(
    data: &SplitData,
    trained: &[TrainedModel],
    fp32: &[BundlePredictions],
) -> anyhow::Result<Vec<Parity>> {
    let mut out = Vec::new();
    for (model, bundle) in trained.iter().zip(fp32) {
        let burn = model.logits(&data.test)?;
        let (same_predictions, max_logit_difference) = agreement(&burn, &bundle.logits);
        let parity = Parity {
            model: model.kind(),
            utterances: burn.len(),
            same_predictions,
            max_logit_difference,
        };
        if burn.len() != bundle.logits.len() {
            bail!(
                "{} burn predictions but {} through the bundle",
                burn.len(),
                bundle.logits.len()
            );
        }
        out.push(parity);
    }
    Ok(out)
}

/// How many rows of two sets of logits predict the same class, and the largest absolute
/// difference between them.
fn agreement<A: AsRef<[f32]>, B: AsRef<[f32]>>(a: &[A], b: &[B]) -> (usize, f32) {
    let mut same = 0;
    let mut largest = 0f32;
    for (a, b) in a.iter().zip(b) {
        let (a, b) = (a.as_ref(), b.as_ref());
        same += usize::from(argmax(a) == argmax(b));
        for (x, y) in a.iter().zip(b) {
            largest = largest.max((x - y).abs());
        }
    }
    (same, largest)
}

/// Median time (ms) of the whole pipeline on 2 s of audio: the first test utterance
/// repeated to 2 s, its keyword as text.
fn latency_ms_2s(
    pipeline: &Pipeline,
    manifest: &Manifest,
    ids: &[String],
    model: ModelKind,
) -> anyhow::Result<f64> {
    let Some(entry) = ids.first().and_then(|id| manifest.get(id)) else {
        bail!("the split has no test utterances");
    };
    let clip = pipeline.frontend().process_file(&entry.path)?;
    let rate = pipeline.frontend().config().target_rate as usize;
    let samples: Vec<f32> = clip.iter().copied().cycle().take(2 * rate).collect();
    let text = TextInput::Keyword(&entry.word);
    pipeline.classify(&samples, text, Some(model))?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        pipeline.classify(&samples, text, Some(model))?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn variant_bytes(bundle: &models::bundle::Bundle, variant: &Variant) -> u64 {
    let manifest = bundle.manifest();
    std::iter::once(&variant.speech_encoder)
        .chain(variant.heads.iter().map(|h| &h.file))
        .chain(&variant.keyword_spotter)
        .filter_map(|f| manifest.file(f))
        .map(|f| f.bytes)
        .sum()
}

/// `quantization.md`: the variants side by side, the parity with burn, the choice, and
/// the keyword spotter (or a note that there is none).
pub fn quantization_markdown(
    manifest: &BundleManifest,
    parity: &[Parity],
    spotter: Option<&SpotterExport>,
    utterances: usize,
) -> String {
    let p = &manifest.provenance;
    let mut out = format!(
        "# Quantisation report\n\nSplit `{}` ({} test utterances), seed {}, encoders: {}.\n\
         Latency: median of 5 runs of the whole pipeline with the default head (front-end, speech \
         encoder, head) on 2 s of audio, tract, one thread, this machine.\n\n\
         | variant | model | size (MB) | latency 2 s (ms) | agreement with fp32 | accuracy | macro-F1 |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
        p.split, utterances, p.seed, p.encoders
    );
    for r in &p.variants {
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {:.1} | {:.1}% | {:.1}% | {:.1}% |",
            r.name,
            r.model,
            r.bytes as f64 / 1e6,
            r.latency_ms_2s,
            100.0 * r.agreement_with_fp32,
            100.0 * r.accuracy,
            100.0 * r.macro_f1
        );
    }
    let _ = write!(
        out,
        "\n**Default variant: {}.** {}\n\n## fp32 bundle vs the burn models\n\n\
         | model | test utterances | same prediction | max abs logit difference |\n|---|---:|---:|---:|\n",
        manifest.default_variant, manifest.default_reason
    );
    for r in parity {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2e} |",
            r.model, r.utterances, r.same_predictions, r.max_logit_difference
        );
    }
    out.push_str(&spotter_markdown(spotter));
    out.push_str("\n## Variants\n\n");
    for v in &manifest.variants {
        let _ = writeln!(out, "- **{}**: {}.", v.name, v.description);
    }
    out
}

/// The keyword spotter's section of `quantization.md`.
fn spotter_markdown(spotter: Option<&SpotterExport>) -> String {
    let Some(s) = spotter else {
        return "\n## Keyword spotter\n\nNone in this bundle: the board takes its text from the kiosk prompt only.\n"
            .into();
    };
    let p = &s.parity;
    let mut out = format!(
        "\n## Keyword spotter\n\n{} words; the board takes the spotted word when its probability is at least \
         {:.2} (chosen on the validation part). Test part, cached speech features, tract.\n\n\
         | variant | size (KB) | accuracy | top-3 | agreement with fp32 | answers (≥ {:.2}) | right when answering |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
        s.words.len(),
        s.min_confidence,
        s.min_confidence
    );
    for v in &s.variants {
        let e = &v.evaluation;
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
            v.name,
            v.bytes as f64 / 1e3,
            100.0 * e.accuracy,
            100.0 * e.top3_accuracy,
            100.0 * v.agreement_with_fp32,
            100.0 * e.accepted.coverage,
            100.0 * e.accepted.precision
        );
    }
    let _ = writeln!(
        out,
        "\nfp32 graph vs the burn spotter: same word for {} of {} utterances, max abs logit difference {:.2e}.",
        p.same_predictions, p.utterances, p.max_logit_difference
    );
    out
}

/// The speech encoder's products that stay float in the int8 variant: the conv feature
/// encoder's. With one int8 scale per activation tensor its random-weight layers lose
/// 4–9 % of their signal each (peaks 20 × the RMS), and the transformer amplifies that to
/// a ~50 % error in the hidden states (measured on the base-size random encoder: int8
/// agreed with fp32 on 54 % of the test part). Its transformer, quantised, loses ~3 %.
pub const SPEECH_FLOAT_PREFIX: &str = "feature_extractor.";

/// Utterances of the training part the int8 speech encoder's activation ranges are
/// measured on ([`onnx_build::calibration`]).
pub const CALIBRATION_UTTERANCES: usize = 32;

/// The activation ranges of the speech encoder over up to [`CALIBRATION_UTTERANCES`]
/// training utterances, spread evenly over the (sorted) training part, through the
/// front-end the features were extracted with.
fn calibration_ranges(
    request: &ExportRequest<'_>,
    index: &FeatureIndex,
    speech_encoder: &[u8],
    options: &QuantizeOptions,
) -> anyhow::Result<ActivationRanges> {
    let mut ids = request.split.train.clone();
    ids.sort();
    let step = ids.len().div_ceil(CALIBRATION_UTTERANCES).max(1);
    let frontend = models::Frontend::new(index.frontend.clone());
    let mut inputs = Vec::new();
    for id in ids.iter().step_by(step) {
        let entry = request
            .manifest
            .get(id)
            .with_context(|| format!("{id} is in the split but not in the manifest"))?;
        let samples = frontend
            .process_file(&entry.path)
            .with_context(|| format!("cannot read {} for calibration", entry.path.display()))?;
        inputs.push(tract_onnx::prelude::Tensor::from_shape(
            &[1, samples.len()],
            &samples,
        )?);
    }
    calibrate(speech_encoder, options, &inputs)
        .context("cannot calibrate the speech encoder's int8 activations")
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// Where `export` writes by default, beside the runs.
pub fn default_bundle_dir(runs: &Path) -> PathBuf {
    runs.parent().unwrap_or(runs).join("bundle")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        name: &str,
        model: ModelKind,
        bytes: u64,
        ms: f64,
        agree: f64,
        f1: f64,
    ) -> VariantReport {
        VariantReport {
            name: name.into(),
            model,
            bytes,
            latency_ms_2s: ms,
            agreement_with_fp32: agree,
            accuracy: f1,
            macro_f1: f1,
        }
    }

    fn fp32() -> Vec<VariantReport> {
        vec![
            row("fp32", ModelKind::Speech, 300, 100.0, 1.0, 0.80),
            row("fp32", ModelKind::Fusion, 300, 100.0, 1.0, 0.85),
        ]
    }

    #[test]
    fn int8_is_chosen_when_it_agrees_and_is_much_smaller() {
        let mut rows = fp32();
        rows.push(row("int8", ModelKind::Speech, 80, 120.0, 1.0, 0.80));
        rows.push(row("int8", ModelKind::Fusion, 80, 120.0, 0.995, 0.845));
        let (name, why) = choose_default(&rows);
        assert_eq!(name, "int8", "{why}");
        assert!(
            why.contains("3.8x smaller") && why.contains("bench --choose"),
            "{why}"
        );
    }

    #[test]
    fn int8_is_refused_when_it_disagrees_or_loses_f1() {
        let mut rows = fp32();
        rows.push(row("int8", ModelKind::Speech, 80, 50.0, 0.98, 0.80));
        rows.push(row("int8", ModelKind::Fusion, 80, 50.0, 1.0, 0.83));
        let (name, why) = choose_default(&rows);
        assert_eq!(name, "fp32");
        assert!(why.contains("speech agrees with fp32 on 98.0%"), "{why}");
        assert!(why.contains("fusion loses 2.0 points"), "{why}");
    }

    #[test]
    fn int8_that_gains_nothing_is_not_chosen_however_fast_it_ran_here() {
        let mut rows = fp32();
        rows.push(row("int8", ModelKind::Speech, 270, 125.0, 1.0, 0.80));
        rows.push(row("int8", ModelKind::Fusion, 270, 125.0, 1.0, 0.85));
        let (name, why) = choose_default(&rows);
        assert_eq!(name, "fp32");
        assert!(why.contains("only 1.1x smaller"), "{why}");
        // The export machine's speed does not decide: the board's CPU may differ.
        for r in rows.iter_mut().filter(|r| r.name == "int8") {
            r.latency_ms_2s = 60.0;
        }
        assert_eq!(choose_default(&rows).0, "fp32");
        assert_eq!(choose_default(&fp32()).0, "fp32");
    }
}
