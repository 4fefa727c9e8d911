//! `evaluate` (saved runs with burn, or a bundle through tract) and `probe` (a linear
//! classifier per encoder layer).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use super::{RunInputs, default_splits, provenance_of, read_inputs};
use crate::data::manifest::CorpusManifest;
use crate::data::splits::SplitSet;
use crate::evaluate::corpora::corpora_view;
use crate::evaluate::probe::{ProbeConfig, ProbeRequest, run_probe};
use crate::evaluate::summary::{comparison_markdown, write_evaluation};
use crate::evaluate::through_bundle::predict_through_bundle;
use crate::train::heads::ModelKind;
use crate::train::runs::{FusionText, evaluate_run};
use emotion_core::Pipeline;
use emotion_core::PipelineOptions;

/// `evaluate`.
pub fn evaluate(args: EvaluateArgs) -> Result<()> {
    match &args.bundle {
        Some(bundle) => evaluate_bundle(&args, bundle),
        None => {
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| args.inputs.runs.join("evaluation"));
            let split_names = if args.split_names.is_empty() {
                default_splits(&SplitSet::read_json(&args.inputs.splits)?)
            } else {
                args.split_names.clone()
            };
            evaluate_models(&args.inputs, &args.models, &split_names, &out)
        }
    }
}

/// `probe`.
pub fn probe(args: ProbeArgs) -> Result<()> {
    let config = ProbeConfig {
        steps: args.steps,
        threads: args.threads.unwrap_or(ProbeConfig::default().threads),
        ..ProbeConfig::default()
    };
    let split_names = if args.split_names.is_empty() {
        default_splits(&SplitSet::read_json(&args.splits)?)
    } else {
        args.split_names.clone()
    };
    probe_layers(
        &args.manifest,
        &args.splits,
        &split_names,
        &args.speech_checkpoint,
        args.text_checkpoint.as_deref(),
        &args.out,
        config,
    )
}

#[derive(Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    inputs: RunInputs,
    /// Models to evaluate.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "speech,text,fusion"
    )]
    models: Vec<ModelKind>,
    /// Splits to evaluate on [default: every split but `word` (TESS: random and both
    /// speaker splits); with --bundle, the bundle's split].
    #[arg(long = "split", value_delimiter = ',')]
    split_names: Vec<String>,
    /// Where the reports go [default: RUNS/evaluation, or RUNS/evaluation-bundle-VARIANT].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Evaluate through an exported bundle (tract, from the WAV files, as the board runs
    /// it) instead of the burn models; the split defaults to the bundle's.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// The bundle variant to evaluate (fp32, int8) [default: the bundle's default].
    #[arg(long, requires = "bundle")]
    variant: Option<String>,
}

#[derive(Args)]
pub struct ProbeArgs {
    /// The manifest written by `data scan`.
    #[arg(long, default_value = "out/manifest.csv")]
    manifest: PathBuf,
    /// The splits file written by `data split`.
    #[arg(long, default_value = "out/splits.json")]
    splits: PathBuf,
    /// The speech encoder's checkpoint folder (HF layout: config.json, model.safetensors or
    /// pytorch_model.bin),
    /// e.g. as `fetch` writes it.
    #[arg(long)]
    speech_checkpoint: PathBuf,
    /// The text encoder's checkpoint folder, with its tokenizer.json [default: speech only].
    #[arg(long)]
    text_checkpoint: Option<PathBuf>,
    /// Splits to probe on (trained on train + val, scored on test) [default: every split
    /// but `word`].
    #[arg(long = "split", value_delimiter = ',')]
    split_names: Vec<String>,
    /// Where probe.json and the all-layer graphs go.
    #[arg(long, default_value = "out/probe")]
    out: PathBuf,
    /// Full-batch Adam steps per layer.
    #[arg(long, default_value_t = ProbeConfig::default().steps)]
    steps: usize,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
}

/// Evaluates saved runs, writes the reports and prints the comparison table.
pub(crate) fn evaluate_models(
    inputs: &RunInputs,
    models: &[ModelKind],
    split_names: &[String],
    out: &Path,
) -> Result<()> {
    let (manifest, splits) = read_inputs(inputs)?;
    let mut evaluations = Vec::new();
    for name in split_names {
        let split = splits.get(name)?;
        for &model in models {
            evaluations.push(evaluate_run(
                &manifest,
                split,
                &inputs.features,
                &inputs.runs,
                model,
            )?);
        }
    }
    let mut provenance = provenance_of(inputs, &manifest, &splits);
    // Whether each fusion run kept its text path, beside the numbers it explains.
    let mut texts = Vec::new();
    if models.contains(&ModelKind::Fusion) {
        for name in split_names {
            if let Some(text) = FusionText::read(&inputs.runs, name)? {
                texts.push(format!("fusion on {name}: {}", text.sentence()));
                provenance
                    .extra
                    .insert(format!("fusion text, {name}"), text.sentence());
            }
        }
    }
    let files = write_evaluation(out, &evaluations, &provenance)?;
    println!("{}", comparison_markdown(&evaluations));
    for text in texts {
        println!("{text}");
    }
    let corpus_of = |id: &str| manifest.get(id).map(|e| e.corpus.clone());
    if let Some(view) = corpora_view(&evaluations, &splits, corpus_of) {
        let [markdown, _] = view
            .write(out)
            .with_context(|| format!("cannot write the corpus tables into {}", out.display()))?;
        println!("{}", view.table_markdown());
        println!("per corpus: {}", markdown.display());
    }
    println!(
        "reports: {} (metrics.json, comparison.md, MODEL/SPLIT/report.md)",
        out.display()
    );
    drop(files);
    Ok(())
}

/// Runs the layer probe and prints its table; probe.json goes to `out`.
pub(crate) fn probe_layers(
    manifest: &Path,
    splits: &Path,
    split_names: &[String],
    speech_checkpoint: &Path,
    text_checkpoint: Option<&Path>,
    out: &Path,
    config: ProbeConfig,
) -> Result<()> {
    let manifest = CorpusManifest::read_csv(manifest)?;
    let splits = SplitSet::read_json(splits)?;
    let chosen = split_names
        .iter()
        .map(|name| splits.get(name))
        .collect::<Result<Vec<_>, _>>()?;
    let tokenizer = text_checkpoint.map(|dir| dir.join("tokenizer.json"));
    let request = ProbeRequest {
        manifest: &manifest,
        splits: chosen,
        speech_checkpoint,
        text_checkpoint: text_checkpoint.zip(tokenizer.as_deref()),
        work_dir: out,
        config,
        progress: super::progress_bars(),
    };
    let result = run_probe(&request)?;
    let path = out.join("probe.json");
    result.write(&path)?;
    for probe in &result.probes {
        let layers: Vec<String> = probe
            .layers
            .iter()
            .map(|l| format!("{}:{:.0}", l.layer, 100.0 * l.accuracy))
            .collect();
        let best = probe.best().map_or(String::new(), |b| {
            format!(" best layer {} ({:.1}%)", b.layer, 100.0 * b.accuracy)
        });
        println!(
            "{:<6} {:<20} test accuracy % per layer {}{best}",
            probe.modality,
            probe.split,
            layers.join(" ")
        );
    }
    println!(
        "chance {:.1}%; probe results: {}",
        100.0 * result.chance,
        path.display()
    );
    Ok(())
}

/// `evaluate --bundle`: the bundle's heads over the test part of its split (or those
/// named), through tract.
fn evaluate_bundle(args: &EvaluateArgs, bundle: &Path) -> Result<()> {
    let (manifest, splits) = read_inputs(&args.inputs)?;
    let options = PipelineOptions {
        variant: args.variant.clone(),
        threads: 1,
    };
    let pipeline = Pipeline::load(bundle, &options)?;
    let bundle_manifest = pipeline.bundle().manifest();
    let split_names = if args.split_names.is_empty() {
        vec![bundle_manifest.provenance.split.clone()]
    } else {
        args.split_names.clone()
    };
    let models: Vec<ModelKind> = pipeline
        .models()
        .into_iter()
        .filter(|m| args.models.contains(m))
        .collect();
    let mut evaluations = Vec::new();
    for name in &split_names {
        let split = splits.get(name)?;
        let predictions = predict_through_bundle(
            &pipeline,
            &manifest,
            &split.test,
            name,
            &models,
            super::progress_bars(),
        )?;
        evaluations.extend(predictions.into_iter().map(|p| p.evaluation));
    }
    let mut provenance = provenance_of(&args.inputs, &manifest, &splits);
    provenance
        .extra
        .insert("bundle".into(), bundle.display().to_string());
    provenance
        .extra
        .insert("bundle variant".into(), pipeline.variant().to_string());
    let out = args.out.clone().unwrap_or_else(|| {
        args.inputs
            .runs
            .join(format!("evaluation-bundle-{}", pipeline.variant()))
    });
    write_evaluation(&out, &evaluations, &provenance)?;
    println!("{}", comparison_markdown(&evaluations));
    println!(
        "through bundle {} ({} variant); reports: {}",
        bundle.display(),
        pipeline.variant(),
        out.display()
    );
    Ok(())
}
