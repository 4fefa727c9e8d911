//! `report`: the HTML and Markdown report over evaluated runs (and the layer probe).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use super::RunInputs;
use crate::report::page::{ReportInputs, write_report};
use crate::report::representations::format_score;

/// `report`.
pub fn run(args: ReportArgs) -> Result<()> {
    let evaluation = args
        .evaluation
        .unwrap_or_else(|| args.inputs.runs.join("evaluation"));
    let probe = match args.probe {
        Some(path) => Some(path),
        None => Some(PathBuf::from("out/probe/probe.json")).filter(|p| p.is_file()),
    };
    report(
        &args.inputs,
        &evaluation,
        probe.as_deref(),
        &args.representation_splits,
        &args.out,
    )
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    inputs: RunInputs,
    /// The evaluation folder written by `evaluate` [default: RUNS/evaluation].
    #[arg(long)]
    evaluation: Option<PathBuf>,
    /// probe.json written by `probe` [default: out/probe/probe.json when it exists].
    #[arg(long)]
    probe: Option<PathBuf>,
    /// Splits whose models' representations are mapped (t-SNE and PCA of every stage).
    #[arg(
        long = "representations",
        value_delimiter = ',',
        default_value = "random"
    )]
    representation_splits: Vec<String>,
    /// Where report.html, report.md, report.json and figures/ go.
    #[arg(long, default_value = "out/report")]
    out: PathBuf,
}

/// Writes the report and says where it is.
pub(crate) fn report(
    inputs: &RunInputs,
    evaluation: &Path,
    probe: Option<&Path>,
    representation_splits: &[String],
    out: &Path,
) -> Result<()> {
    let outcome = write_report(
        &ReportInputs {
            manifest: &inputs.manifest,
            splits: &inputs.splits,
            features: &inputs.features,
            runs: &inputs.runs,
            evaluation,
            probe,
            representation_splits,
            out,
        },
        true,
    )?;
    for s in &outcome.summary.representations {
        println!(
            "{:<7} {:<10} {:<24} silhouette {:>5} (held out {:>5})",
            s.model,
            s.stage,
            s.split,
            format_score(s.silhouette),
            format_score(s.silhouette_held_out)
        );
    }
    if probe.is_none() {
        println!("no layer probe in the report: run `host-trainer probe` first to add one");
    }
    println!(
        "report: {} (opens offline), {}, {} figures in {}",
        outcome.html.display(),
        outcome.markdown.display(),
        outcome.summary.figures.len(),
        out.join("figures").display()
    );
    Ok(())
}
