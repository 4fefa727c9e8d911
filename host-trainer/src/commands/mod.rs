//! The command-line workflows: each `host-trainer` command is a short function here over
//! the pipeline's stages; `main.rs` only parses and dispatches. [`OutputLayout`] is the
//! one place that knows where a job's files go.
//!
//! - [`data`]: `data scan`, `data split`.
//! - [`fetch`]: `fetch` (the reference checkpoints from the Hub or a copy).
//! - [`encoders`]: `encoders import|random|run|cost`, and the demo's encoder graphs.
//! - [`extract`]: `extract`.
//! - [`train`]: `train`, `keywords`.
//! - [`evaluate`]: `evaluate` (burn runs or through a bundle), `probe`.
//! - [`export`]: `export`, and held-out files classified through the bundle.
//! - [`bundle`]: `bundle add-vad` (the VAD into an exported bundle, nothing retrained),
//!   `bundle sign`.
//! - [`keygen`]: `keygen` (a key pair to sign bundles with).
//! - [`report`]: `report`.
//! - [`demo`]: the whole job on one folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::data::label_map::applied;
use crate::data::manifest::CorpusManifest;
use crate::data::splits::{SplitKind, SplitSet};
use crate::evaluate::summary::Provenance;
use crate::features::cache::FeatureIndex;

pub mod bundle;
pub mod data;
pub mod demo;
pub mod encoders;
pub mod evaluate;
pub mod export;
pub mod extract;
pub mod fetch;
pub mod keygen;
pub mod report;
pub mod train;

/// The folders and files one host job writes under its root (`demo --out DIR`; every
/// command's defaults are this layout under `out/`).
#[derive(Debug, Clone)]
pub struct OutputLayout {
    root: PathBuf,
}

impl OutputLayout {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `manifest.csv`: one row per utterance (`data scan`).
    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifest.csv")
    }

    /// `splits.json` (`data split`).
    pub fn splits(&self) -> PathBuf {
        self.root.join("splits.json")
    }

    /// `encoders/`: the imported encoder graphs.
    pub fn encoders(&self) -> PathBuf {
        self.root.join("encoders")
    }

    /// `features/`: the feature cache (`extract`).
    pub fn features(&self) -> PathBuf {
        self.root.join("features")
    }

    /// `runs/`: one folder per trained model and split.
    pub fn runs(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// `evaluation/`: reports, comparison, metrics.json.
    pub fn evaluation(&self) -> PathBuf {
        self.root.join("evaluation")
    }

    /// `probe/`: probe.json and the all-layer graphs.
    pub fn probe(&self) -> PathBuf {
        self.root.join("probe")
    }

    /// `bundle/`: what the board loads.
    pub fn bundle(&self) -> PathBuf {
        self.root.join("bundle")
    }

    /// `report/`: report.html, report.md and figures.
    pub fn report(&self) -> PathBuf {
        self.root.join("report")
    }

    /// The inputs of a training or evaluation in this layout.
    pub fn run_inputs(&self) -> RunInputs {
        RunInputs {
            manifest: self.manifest(),
            splits: self.splits(),
            features: self.features(),
            runs: self.runs(),
        }
    }
}

/// Where a run's inputs are: the manifest, the splits and the feature cache.
#[derive(Args, Debug, Clone)]
pub struct RunInputs {
    /// The manifest written by `data scan`.
    #[arg(long, default_value = "out/manifest.csv")]
    pub manifest: PathBuf,
    /// The splits file written by `data split`.
    #[arg(long, default_value = "out/splits.json")]
    pub splits: PathBuf,
    /// The feature cache written by `extract`.
    #[arg(long, default_value = "out/features")]
    pub features: PathBuf,
    /// Where runs are saved (RUNS/{model}/{split}/).
    #[arg(long, default_value = "out/runs")]
    pub runs: PathBuf,
}

/// The splits the demo trains and `evaluate` and `probe` report on unless told: every
/// split but the word split (TESS: random and both speaker splits; more speakers: the
/// speaker folds; several corpora: also the within- and cross-corpus splits).
pub(crate) fn default_splits(splits: &SplitSet) -> Vec<String> {
    splits
        .splits
        .iter()
        .filter(|s| !matches!(s.kind, SplitKind::Word))
        .map(|s| s.name.clone())
        .collect()
}

/// The manifest and splits of a run, checked against each other.
pub(crate) fn read_inputs(inputs: &RunInputs) -> Result<(CorpusManifest, SplitSet)> {
    let manifest =
        CorpusManifest::read_csv(&inputs.manifest).context("cannot read the manifest")?;
    let splits = SplitSet::read_json(&inputs.splits).context("cannot read the splits")?;
    splits.check(&manifest)?;
    Ok((manifest, splits))
}

/// Where results came from: corpus, manifest, splits and encoders.
pub(crate) fn provenance_of(
    inputs: &RunInputs,
    manifest: &CorpusManifest,
    splits: &SplitSet,
) -> Provenance {
    Provenance {
        corpus: corpus_of(manifest),
        manifest: inputs.manifest.display().to_string(),
        splits_file: inputs.splits.display().to_string(),
        splits_id: splits.id.clone(),
        seed: splits.config.seed,
        encoders: FeatureIndex::read(&inputs.features)
            .map(|i| {
                format!(
                    "speech {} layers {:?}, text {} layers {:?}",
                    short(&i.speech_encoder),
                    i.speech_layers,
                    i.text_encoder.as_deref().map_or("none", short),
                    i.text_layers
                )
            })
            .unwrap_or_default(),
        extra: [("label map", applied(manifest))]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

/// The corpus folder: the grandparent of the manifest's first file; with several
/// corpora, each one's name and folder (`crema-d /data/CREMA-D; tess /data/tess`).
pub(crate) fn corpus_of(manifest: &CorpusManifest) -> String {
    let folder = |entry: &crate::data::manifest::CorpusEntry| {
        entry
            .path
            .parent()
            .and_then(|p| p.parent())
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let mut firsts: std::collections::BTreeMap<&str, String> = Default::default();
    for entry in manifest.entries() {
        firsts
            .entry(entry.corpus.as_str())
            .or_insert_with(|| folder(entry));
    }
    if firsts.len() <= 1 {
        return firsts.into_values().next().unwrap_or_default();
    }
    firsts
        .iter()
        .map(|(corpus, dir)| format!("{corpus} {dir}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The first 12 characters of a digest, as printed.
pub(crate) fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// Whether to draw progress bars (only for a person watching).
pub(crate) fn progress_bars() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Inputs {
        #[command(flatten)]
        inputs: RunInputs,
    }

    /// The commands' defaults are the layout under `out/`, so a job run command by
    /// command finds what the previous command wrote.
    #[test]
    fn default_inputs_are_the_layout_under_out() {
        let parsed = Inputs::parse_from(["host-trainer"]).inputs;
        let layout = OutputLayout::new("out").run_inputs();
        assert_eq!(parsed.manifest, layout.manifest);
        assert_eq!(parsed.splits, layout.splits);
        assert_eq!(parsed.features, layout.features);
        assert_eq!(parsed.runs, layout.runs);
    }
}
