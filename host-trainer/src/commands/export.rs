//! `export`: a split's trained heads and their encoders packed into a bundle, and a few
//! held-out files classified through it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use emotion_core::pipeline::{KeywordSource, TextInput};
use emotion_core::{Pipeline, PipelineOptions};

use super::encoders::EncoderGraphs;
use super::{RunInputs, corpus_of, read_inputs};
use crate::data::label_map::applied;
use crate::data::manifest::CorpusManifest;
use crate::export::bundle::{ExportOptions, ExportRequest, default_bundle_dir, export_bundle_with};
use crate::export::request::Precision;
use crate::export::signing::SigningKey;
use crate::export::vad::{COMMITTED_VAD, default_vad_file};

/// `export`.
pub fn run(args: ExportArgs) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_bundle_dir(&args.inputs.runs));
    let encoders = EncoderGraphs {
        speech: args.speech_encoder.clone(),
        text: args.text_encoder.clone(),
        tokenizer: args.tokenizer.clone(),
    };
    // A wrong password or a missing key fails now, not after the export's minutes.
    let key = args
        .sign
        .as_deref()
        .map(|key| SigningKey::read(key, args.sign_password_file.as_deref()))
        .transpose()?;
    let options = ExportOptions {
        skip_keyword_spotter: args.no_keyword_spotter,
        vad: vad_choice(args.vad.clone(), args.no_vad),
    };
    export(
        &args.inputs,
        &args.split,
        &encoders,
        args.with_text_encoder,
        &args.variants,
        &options,
        &out,
    )?;
    match key {
        Some(key) => super::bundle::sign(&out, &key),
        None => Ok(()),
    }
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    inputs: RunInputs,
    /// The split whose trained models are exported.
    #[arg(long, default_value = "random")]
    split: String,
    /// The speech encoder graph the features were extracted with.
    #[arg(long)]
    speech_encoder: PathBuf,
    /// The text encoder graph the features were extracted with.
    #[arg(long)]
    text_encoder: PathBuf,
    /// Its tokenizer.json.
    #[arg(long)]
    tokenizer: PathBuf,
    /// Also put the text encoder in the bundle, for transcripts outside the corpus
    /// vocabulary (the keyword table covers the vocabulary without it).
    #[arg(long)]
    with_text_encoder: bool,
    /// Variants to write and measure; fp32 is always written.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "fp32,int8")]
    variants: Vec<Precision>,
    /// Leave out the keyword spotter trained for the split (`host-trainer keywords`); the
    /// board then takes its text from the kiosk prompt only.
    #[arg(long)]
    no_keyword_spotter: bool,
    /// The Silero VAD graph to put in the bundle as the board's voice-activity detector
    /// (checked to load at 16 kHz first; a graph other than the pinned silero-vad 6.2.3
    /// one goes in with a note) [default: the committed data/vad/silero_vad_op18_ifless.onnx].
    #[arg(long, value_name = "FILE", conflicts_with = "no_vad")]
    vad: Option<PathBuf>,
    /// Leave the voice-activity detector out of the bundle.
    #[arg(long)]
    no_vad: bool,
    /// The bundle directory (replaced whole) [default: beside RUNS, `bundle`].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Sign the bundle with this secret key (NAME.key from `host-trainer keygen`),
    /// opened before anything is exported: boards that trust its public key run only
    /// bundles it signed.
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
    /// The signing key's password: the first line of this file [default: asked on the
    /// terminal].
    #[arg(long, value_name = "FILE", requires = "sign")]
    sign_password_file: Option<PathBuf>,
}

/// Exports the runs of `split` to a bundle in `out` and prints the quantisation report.
pub(crate) fn export(
    inputs: &RunInputs,
    split: &str,
    encoders: &EncoderGraphs,
    include_text_encoder: bool,
    precisions: &[Precision],
    options: &ExportOptions,
    out: &Path,
) -> Result<()> {
    let (manifest, splits) = read_inputs(inputs)?;
    let request = ExportRequest {
        manifest: &manifest,
        split: splits.get(split)?,
        splits_id: &splits.id,
        seed: splits.config.seed,
        data: bundle_data(&manifest),
        features: &inputs.features,
        runs: &inputs.runs,
        speech_encoder: &encoders.speech,
        text_encoder: &encoders.text,
        tokenizer: &encoders.tokenizer,
        include_text_encoder,
        precisions: precisions.to_vec(),
        out,
        progress: super::progress_bars(),
    };
    let outcome = export_bundle_with(&request, options)?;
    println!("{}", outcome.report);
    match (&outcome.keyword_spotter, options.skip_keyword_spotter) {
        (Some(spotter), _) => {
            let fp32 = spotter.variants.first().map(|v| &v.evaluation);
            println!(
                "keyword spotter included from {}: {} words, min confidence {:.2}, fp32 test accuracy {:.1}% ({} utterances), max |Δlogit| vs burn {:.1e}",
                spotter.run.display(),
                spotter.words.len(),
                spotter.min_confidence,
                100.0 * fp32.map_or(0.0, |e| e.accuracy),
                fp32.map_or(0, |e| e.utterances),
                spotter.parity.max_logit_difference
            );
            if let Some(o) = spotter.variants.first().and_then(|v| v.open_set.as_ref()) {
                println!(
                    "keyword spotter, fp32 through tract: {}",
                    crate::train::keyword_spotter::open_set_line(o)
                );
            }
        }
        (None, true) => println!(
            "keyword spotter left out (--no-keyword-spotter): the board will rely on the kiosk prompt only"
        ),
        (None, false) => println!(
            "no keyword spotter for split {split} (train one with `host-trainer keywords --split {split}`): the board will rely on the kiosk prompt only"
        ),
    }
    if let Some(vad) = &outcome.vad {
        println!("{}", vad.describe());
    }
    let size: u64 = outcome.manifest.files.iter().map(|f| f.bytes).sum();
    println!(
        "bundle: {} ({} files, {:.1} MB; default variant {}; report in quantization.md)",
        out.display(),
        outcome.manifest.files.len() + 2,
        size as f64 / 1e6,
        outcome.manifest.default_variant
    );
    Ok(())
}

/// The VAD graph an export puts in the bundle: `--vad FILE`; none with `--no-vad`; else
/// the committed one when it can be found ([`default_vad_file`]), and a note when not.
pub(crate) fn vad_choice(given: Option<PathBuf>, no_vad: bool) -> Option<PathBuf> {
    if no_vad {
        println!("voice-activity detector left out (--no-vad): the bundle has no neural VAD");
        return None;
    }
    given.or_else(|| {
        let found = default_vad_file();
        if found.is_none() {
            println!(
                "note: no voice-activity detector in the bundle: {COMMITTED_VAD} is neither in the source tree this program was built from nor under the current directory; pass --vad FILE (silero-vad's silero_vad_op18_ifless.onnx) to include one"
            );
        }
        found
    })
}

/// Classifies the first `count` test utterances of `split` through the bundle, one line each.
pub(crate) fn classify_held_out(
    inputs: &RunInputs,
    split: &str,
    bundle: &Path,
    count: usize,
) -> Result<()> {
    let (manifest, splits) = read_inputs(inputs)?;
    let pipeline = Pipeline::load(bundle, &PipelineOptions::default())?;
    println!(
        "\nheld-out files through the bundle ({} variant, tract, 1 thread):",
        pipeline.variant()
    );
    for id in splits.get(split)?.test.iter().take(count) {
        let Some(entry) = manifest.get(id) else {
            continue;
        };
        let bytes = std::fs::read(&entry.path)
            .with_context(|| format!("cannot read {}", entry.path.display()))?;
        let name = entry.path.display().to_string();
        let result = pipeline.classify_wav(&bytes, &name, TextInput::Keyword(&entry.word), None)?;
        println!(
            "  {:<28} truth {:<17} -> {:<17} {:5.1}%  [{} head, text \"{}\" via {}]  {:.0} ms",
            entry
                .path
                .file_name()
                .map_or(name.clone(), |n| n.to_string_lossy().into_owned()),
            entry.emotion.name(),
            result.emotion.name(),
            100.0 * result.confidence,
            result.model,
            result.transcript.as_deref().unwrap_or(""),
            result.text_source,
            result.timings.total().as_secs_f64() * 1e3
        );
        if pipeline.spotter_words().is_none() {
            continue;
        }
        // The same file without a prompt: the keyword spotter's word, if it is sure.
        let auto = pipeline.classify_wav(&bytes, &name, TextInput::Auto { prompt: None }, None)?;
        if auto.keyword_source == KeywordSource::NoWordHeard {
            println!(
                "  {:<28} without a prompt: no word heard -> {} {:.1}% [{} head]",
                "",
                auto.emotion.name(),
                100.0 * auto.confidence,
                auto.model
            );
        } else if let Some(spotted) = &auto.spotted {
            println!(
                "  {:<28} without a prompt: spotter heard \"{}\" ({:.0}%, {}) -> {} {:.1}% [{} head]",
                "",
                spotted.word,
                100.0 * spotted.confidence,
                if auto.keyword_source == KeywordSource::Spotter {
                    "used"
                } else {
                    "not sure enough: no text"
                },
                auto.emotion.name(),
                100.0 * auto.confidence,
                auto.model
            );
        }
    }
    Ok(())
}

/// The bundle's `data` provenance: the corpus folders and, when the label map trained a
/// label as an emotion of another name, which (`… (labels calm → neutral)`). The binary
/// manifest has no field of its own for it (a new field would be a new format).
fn bundle_data(manifest: &CorpusManifest) -> String {
    let data = corpus_of(manifest);
    match applied(manifest) {
        map if map.is_empty() => data,
        map => format!("{data} (labels {map})"),
    }
}
