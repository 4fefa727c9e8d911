//! `extract`: front-end and encoders over a manifest, into the feature cache.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use emotion_core::FrontendConfig;

use crate::data::manifest::CorpusManifest;
use crate::features::cache::{FeatureCache, FeatureDtype, FeatureIndex, LayerCombination};
use crate::features::extract::{ExtractSettings, Extractor, extract};

/// `extract`.
pub fn run(args: ExtractArgs) -> Result<()> {
    let settings = ExtractSettings {
        frontend: FrontendConfig {
            normalize: !args.no_normalize,
            ..ExtractSettings::default().frontend
        },
        combination: args.combination,
        dtype: args.dtype,
    };
    let text = args.text_encoder.as_deref().zip(args.tokenizer.as_deref());
    extract_features(
        &args.manifest,
        &args.speech_encoder,
        text,
        &args.cache,
        settings,
        args.jobs,
    )
}

#[derive(Args)]
pub struct ExtractArgs {
    /// The manifest written by `data scan`.
    #[arg(long, default_value = "out/manifest.csv")]
    manifest: PathBuf,
    /// Speech encoder graph (from `encoders import`).
    #[arg(long)]
    speech_encoder: PathBuf,
    /// Text encoder graph; without it only speech features are extracted.
    #[arg(long, requires = "tokenizer")]
    text_encoder: Option<PathBuf>,
    /// The tokenizer.json of the text encoder.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// The feature cache folder; `features.json` in it indexes the features.
    #[arg(long, default_value = "out/features")]
    cache: PathBuf,
    /// Mean of the selected layers (the study), or every layer kept for a learned weighted sum.
    #[arg(long, value_enum, default_value = "mean")]
    combination: LayerCombination,
    /// Storage precision of the features.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: FeatureDtype,
    /// Parallel workers [default: all cores].
    #[arg(long)]
    jobs: Option<usize>,
    /// Skip the zero-mean / unit-variance normalisation (only for encoders trained without it).
    #[arg(long)]
    no_normalize: bool,
}

pub(crate) fn extract_features(
    manifest_path: &Path,
    speech_encoder: &Path,
    text: Option<(&Path, &Path)>,
    cache_dir: &Path,
    settings: ExtractSettings,
    jobs: Option<usize>,
) -> Result<()> {
    let manifest = CorpusManifest::read_csv(manifest_path).context("cannot read the manifest")?;
    let extractor = Extractor::new(speech_encoder, text, settings)?;
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let cache = FeatureCache::new(cache_dir);
    let progress = super::progress_bars();
    let (index, report) = extract(&extractor, &manifest, &[], &cache, jobs, progress)?;
    if report.stale_temp_files > 0 {
        println!(
            "removed {} unfinished temporary file(s) left in {} by an interrupted run",
            report.stale_temp_files,
            cache_dir.display()
        );
    }
    if report.repaired > 0 {
        eprintln!(
            "warning: {} cached feature file(s) did not decode and were computed again",
            report.repaired
        );
    }
    for (id, reason) in &report.failures {
        eprintln!("warning: {id} skipped: {reason}");
    }
    println!(
        "features of {} utterances in {:.1} s with {jobs} workers: speech {} computed ({:.1} s of audio, real-time factor {:.3}), {} cached; transcripts {} computed, {} cached{}",
        index.entries.len(),
        report.seconds,
        report.speech_computed,
        report.audio_seconds,
        report.seconds / report.audio_seconds.max(1e-9),
        report.speech_cached,
        report.text_computed,
        report.text_cached,
        if report.failures.is_empty() {
            String::new()
        } else {
            format!("; {} failed", report.failures.len())
        },
    );
    println!("index: {}", FeatureIndex::path_in(cache_dir).display());
    if !report.failures.is_empty() {
        anyhow::bail!(
            "{} utterances could not be extracted (named above); fix or remove them and run again: finished features are kept",
            report.failures.len()
        );
    }
    Ok(())
}
