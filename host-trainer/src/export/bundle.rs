//! `host-trainer export`: the trained heads of one split and the encoders they were
//! trained over, packed into a bundle for the board, one variant per precision, with
//! the quantisation report that picks the default variant.
//!
//! Steps: check that the encoder graphs are the ones the features came from; export
//! each head, and the keyword spotter when one was trained for the split, to ONNX; make
//! the int8 variant (dynamic quantisation of every weight matrix product: encoder,
//! heads, spotter); build the keyword table from the cached text features of the corpus
//! vocabulary; add the voice-activity detector when asked (checked to load first);
//! stage the bundle; classify the split's test part through each variant
//! (tract, from the WAV files), compare with the burn models and with fp32, time 2 s of
//! audio; run each variant's spotter over the test part's cached speech features
//! (exactly what the board computes) against burn and fp32; choose the default variant;
//! write the report into the bundle and put the bundle in place.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use emotion_core::Emotion;
use emotion_core::bundle::{
    BundleManifest, BundleProvenance, BundleWriter, EncoderSpec, FORMAT_VERSION,
    KeywordSpotterSpec, KeywordTable, VadSpec, Variant,
};

use super::default_variant::choose_default;
use super::keyword_spotter::{
    SpotterExport, keyword_table, measure_spotter, staged_open_set_spec, trained_spotter,
};
use super::measure::{Parity, burn_parity, fp32_metrics, measure_variants, variant_rows};
use super::quantization_report::quantization_markdown;
use super::request::Precision;
pub use super::request::{ExportOptions, ExportRequest};
use super::vad::{VadGraph, VadSource};
use super::variants::{FloatGraphs, Quantizers, with_fp32, write_variant};
use crate::features::cache::{FeatureIndex, digest};
use crate::train::dataset::load_split;
use crate::train::heads::ModelKind;
use crate::train::keyword_spotter::KeywordModel;
use crate::train::runs::run_dir;
use crate::train::trainer::TrainedModel;

/// What an export did.
#[derive(Debug, Clone)]
pub struct ExportOutcome {
    /// The manifest as written.
    pub manifest: BundleManifest,
    /// fp32 bundle vs burn, per model.
    pub parity: Vec<Parity>,
    /// The keyword spotter, when the bundle has one.
    pub keyword_spotter: Option<SpotterExport>,
    /// The voice-activity detector's source, when the bundle has one.
    pub vad: Option<VadSource>,
    /// The quantisation report as Markdown (also `quantization.md` in the bundle).
    pub report: String,
}

/// Exports the runs of `request.split` into a bundle, the keyword spotter included when
/// one was trained for the split.
pub fn export_bundle(request: &ExportRequest<'_>) -> anyhow::Result<ExportOutcome> {
    export_bundle_with(request, &ExportOptions::default())
}

/// [`export_bundle`] with [`ExportOptions`]: the stages below, in order.
pub fn export_bundle_with(
    request: &ExportRequest<'_>,
    options: &ExportOptions,
) -> anyhow::Result<ExportOutcome> {
    let index = FeatureIndex::read(request.features)?;
    let encoders = EncoderFiles::read_checked(request, &index)?;
    let vad = options
        .vad
        .as_deref()
        .map(VadGraph::read_checked)
        .transpose()
        .context("the bundle's voice-activity detector (--vad FILE; --no-vad leaves it out)")?;
    let trained = load_trained_heads(request)?;
    let models: Vec<ModelKind> = trained.iter().map(TrainedModel::kind).collect();
    let keywords = keyword_table(request.manifest, &index, request.features)?;
    let spotter = if options.skip_keyword_spotter {
        None
    } else {
        trained_spotter(request, &keywords)?
    };
    let spotter_model = spotter.as_ref().map(|(_, model)| model);
    let precisions = with_fp32(&request.precisions);

    let mut writer = BundleWriter::new(request.out)?;
    writer.add("tokenizer.json", &encoders.tokenizer)?;
    writer.add_keywords("keywords.bin", &keywords)?;
    let text_encoder = if request.include_text_encoder {
        writer.add("text_encoder.onnx", &encoders.text)?;
        Some("text_encoder.onnx".to_string())
    } else {
        None
    };
    let vad_spec = vad.as_ref().map(|v| v.add_to(&mut writer)).transpose()?;
    let graphs = FloatGraphs::export(&encoders.speech, &encoders.text, &trained, spotter_model)?;
    let quantizers = Quantizers::new(request, &index, &graphs, &precisions)?;
    let variants = precisions
        .iter()
        .map(|&precision| {
            write_variant(
                &mut writer,
                precision,
                &graphs,
                &quantizers,
                request.include_text_encoder,
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let draft = DraftManifest {
        index: &index,
        keywords: &keywords,
        text_encoder,
        spotter: spotter_model,
        vad: vad_spec,
    };
    let mut manifest = draft.manifest(request, variants);
    let staged = writer.stage(&manifest)?;

    let measured = measure_variants(request, &staged, &precisions, &models)?;
    let fp32 = &measured[&Precision::Fp32].predictions;
    let data = load_split(request.manifest, request.split, request.features, true)?;
    let parity = burn_parity(&data, &trained, fp32)?;
    let spotter = match spotter {
        Some((run, model)) => {
            let measured = measure_spotter(request, &data, &staged, run, &model)?;
            manifest.keyword_spotter = Some(measured.spec()?);
            Some(measured)
        }
        None => None,
    };
    manifest.provenance.metrics = fp32_metrics(fp32);
    let rows = variant_rows(&manifest, &staged, &measured)?;
    (manifest.default_variant, manifest.default_reason) = choose_default(&rows);
    manifest.provenance.variants = rows;
    let report = quantization_markdown(
        &manifest,
        &parity,
        spotter.as_ref(),
        request.split.test.len(),
    );
    writer.add("quantization.md", report.as_bytes())?;
    drop(staged);
    let bundle = writer.finish(&manifest)?;
    Ok(ExportOutcome {
        manifest: bundle.manifest().clone(),
        parity,
        keyword_spotter: spotter,
        vad: vad.map(|v| v.source),
        report,
    })
}

/// The encoder files a bundle ships, read and checked to be the ones the features came
/// from (a head trained over other features would be silently wrong on the board).
struct EncoderFiles {
    speech: Vec<u8>,
    text: Vec<u8>,
    tokenizer: Vec<u8>,
}

impl EncoderFiles {
    fn read_checked(request: &ExportRequest<'_>, index: &FeatureIndex) -> anyhow::Result<Self> {
        let speech = read(request.speech_encoder)?;
        if digest(&[&speech]) != index.speech_encoder {
            bail!(
                "{} is not the speech encoder the features in {} came from: pass the graph given to `extract`",
                request.speech_encoder.display(),
                request.features.display()
            );
        }
        let text = read(request.text_encoder)?;
        if index.text_encoder.as_deref() != Some(digest(&[&text]).as_str()) {
            bail!(
                "{} is not the text encoder the features in {} came from (or they hold no text features)",
                request.text_encoder.display(),
                request.features.display()
            );
        }
        let tokenizer = read(request.tokenizer)?;
        Ok(Self {
            speech,
            text,
            tokenizer,
        })
    }
}

/// The split's trained heads: speech is required, text and fusion go in when trained.
fn load_trained_heads(request: &ExportRequest<'_>) -> anyhow::Result<Vec<TrainedModel>> {
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
    Ok(trained)
}

/// What the bundle manifest says before anything is measured.
struct DraftManifest<'a> {
    index: &'a FeatureIndex,
    keywords: &'a KeywordTable,
    text_encoder: Option<String>,
    spotter: Option<&'a KeywordModel>,
    vad: Option<VadSpec>,
}

impl DraftManifest<'_> {
    /// The manifest staged for measuring: fp32 default, no metrics yet.
    fn manifest(self, request: &ExportRequest<'_>, variants: Vec<Variant>) -> BundleManifest {
        let index = self.index;
        let spec = |layers: &[usize], dim| EncoderSpec {
            layers: layers.to_vec(),
            combination: index.combination,
            dim,
        };
        BundleManifest {
            format: FORMAT_VERSION,
            created_by: format!("host-trainer {}", env!("CARGO_PKG_VERSION")),
            labels: Emotion::ALL.iter().map(|e| e.name().to_string()).collect(),
            frontend: index.frontend.clone(),
            transcript_template: self.keywords.template.clone(),
            speech: spec(&index.speech_layers, index.speech_dim),
            text: spec(&index.text_layers, index.text_dim),
            tokenizer: "tokenizer.json".into(),
            keywords: "keywords.bin".into(),
            text_encoder: self.text_encoder,
            keyword_spotter: self.spotter.map(|model| KeywordSpotterSpec {
                words: model.words().to_vec(),
                min_confidence: model.min_confidence(),
                test_accuracy: None,
                test_utterances: 0,
                open_set: model.open_set().map(staged_open_set_spec),
            }),
            vad: self.vad,
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
        }
    }
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
