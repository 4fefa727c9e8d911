//! `demo`: the whole host job, stage by stage, into one folder ([`OutputLayout`]).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::data::{scan_corpus, split_manifest};
use super::encoders::{EncoderChoice, EncoderGraphs, prepare_encoders};
use super::evaluate::{evaluate_models, probe_layers};
use super::export::{classify_held_out, export, vad_choice};
use super::extract::extract_features;
use super::report::report;
use super::train::{NegativeFlags, negative_sources, train_keyword_spotter, train_models};
use super::{OutputLayout, RunInputs, default_splits};
use crate::data::scan::ScanOptions;
use crate::data::splits::{SplitConfig, SplitSet};
use crate::evaluate::probe::ProbeConfig;
use crate::export::bundle::ExportOptions;
use crate::export::request::Precision;
use crate::features::extract::ExtractSettings;
use crate::train::heads::ModelKind;
use crate::train::keyword_spotter;
use crate::train::trainer::TrainConfig;

#[derive(Args)]
pub struct DemoArgs {
    /// Where every output goes.
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
    /// A corpus folder as its download lays it out (TESS, RAVDESS, CREMA-D, SAVEE,
    /// EmoDB; detected) or a CSV list; repeat for a multi-corpus run (`--data A --data B`:
    /// cross-corpus splits and tables) [default: the embedded synthetic corpus].
    #[arg(long, value_name = "DIR")]
    data: Vec<PathBuf>,
    /// Seed of the splits.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Real encoder checkpoints, laid out as `fetch` writes them [default: tiny random-weight
    /// encoders made on the spot].
    #[arg(long)]
    encoders: Option<PathBuf>,
    /// A speech checkpoint folder (HF layout: config.json and the weights; HuBERT,
    /// DistilHuBERT, wav2vec2 or WavLM), used instead of the speech encoder of --encoders
    /// or the tiny random one.
    #[arg(long, value_name = "DIR")]
    speech_encoder: Option<PathBuf>,
    /// A text checkpoint folder (HF layout: config.json, the weights and tokenizer.json;
    /// BERT, e.g. all-MiniLM-L6-v2 as `scripts/fetch-real-models.sh` unpacks it), used
    /// instead of the text encoder of --encoders or the tiny random one.
    #[arg(long, value_name = "DIR")]
    text_encoder: Option<PathBuf>,
}

/// The three models the demo trains and compares.
const MODELS: [ModelKind; 3] = [ModelKind::Speech, ModelKind::Text, ModelKind::Fusion];

/// The split the demo exports, spots keywords on and maps in the report.
const EXPORTED_SPLIT: &str = "random";

/// `demo`: scan → split → encoders → features → train → evaluate → probe → keyword
/// spotter → export → report, each stage printing what it did.
pub fn run(args: DemoArgs) -> Result<()> {
    let layout = OutputLayout::new(&args.out);
    std::fs::create_dir_all(layout.root())
        .with_context(|| format!("cannot create output folder {}", args.out.display()))?;
    println!("== 1/10 scan the corpus");
    scan_corpus(&args.data, &layout.manifest(), ScanOptions::default())?;

    println!("\n== 2/10 split it");
    let config = SplitConfig {
        seed: args.seed,
        ..SplitConfig::default()
    };
    split_manifest(&layout.manifest(), &layout.splits(), config)?;

    println!("\n== 3/10 import the encoders");
    let choice = EncoderChoice {
        real: args.encoders.as_deref(),
        speech: args.speech_encoder.as_deref(),
        text: args.text_encoder.as_deref(),
    };
    let (encoders, [speech_checkpoint, text_checkpoint]) =
        prepare_encoders(&choice, &layout.encoders())?;

    println!("\n== 4/10 extract features");
    let text = Some((encoders.text.as_path(), encoders.tokenizer.as_path()));
    extract_features(
        &layout.manifest(),
        &encoders.speech,
        text,
        &layout.features(),
        ExtractSettings::default(),
        None,
    )?;

    let inputs = layout.run_inputs();
    let split_names = trained_splits(&inputs)?;
    train_and_evaluate(&layout, &inputs, &split_names, args.seed)?;

    println!(
        "\n== 7/10 probe every encoder layer on {}",
        split_names.join(", ")
    );
    probe_layers(
        &inputs.manifest,
        &inputs.splits,
        &split_names,
        &speech_checkpoint,
        Some(&text_checkpoint),
        &layout.probe(),
        ProbeConfig::default(),
    )?;

    spot_keywords(&inputs, &encoders, args.seed)?;
    export_and_classify(&layout, &inputs, &encoders)?;

    println!("\n== 10/10 write the report");
    report(
        &inputs,
        &layout.evaluation(),
        Some(&layout.probe().join("probe.json")),
        &[EXPORTED_SPLIT.to_string()],
        &layout.report(),
    )?;
    println!("\nEverything is in {}.", args.out.display());
    Ok(())
}

/// The study's random split and every speaker-independent one (with TESS: both ways).
fn trained_splits(inputs: &RunInputs) -> Result<Vec<String>> {
    Ok(default_splits(&SplitSet::read_json(&inputs.splits)?))
}

/// Stages 5 and 6: the three models trained on every split, then compared on the tests.
fn train_and_evaluate(
    layout: &OutputLayout,
    inputs: &RunInputs,
    split_names: &[String],
    seed: u64,
) -> Result<()> {
    println!(
        "\n== 5/10 train the three models on {}",
        split_names.join(", ")
    );
    let config = TrainConfig {
        seed,
        ..TrainConfig::default()
    };
    train_models(inputs, &MODELS, split_names, &config, false)?;
    println!("\n== 6/10 evaluate on the test parts\n");
    evaluate_models(inputs, &MODELS, split_names, &layout.evaluation())?;
    println!(
        "These figures are this machine's: another x86 machine's kernels change the features' last bits, which training turns into other scores (the range measured: scripts/demo-spread.sh, docs/results/demo-spread-*.md)."
    );
    Ok(())
}

/// Stage 8: the keyword spotter on the exported split ("not a keyword" trained on
/// held-out words, and on the real-speech set when it is there), and its test figures.
fn spot_keywords(inputs: &RunInputs, encoders: &EncoderGraphs, seed: u64) -> Result<()> {
    println!("\n== 8/10 train the keyword spotter on the {EXPORTED_SPLIT} split");
    let config = TrainConfig {
        seed,
        ..keyword_spotter::default_config()
    };
    let (manifest, _) = super::read_inputs(inputs)?;
    let flags = NegativeFlags {
        speech_encoder: Some(encoders.speech.clone()),
        ..NegativeFlags::default()
    };
    let sources = negative_sources(
        keyword_spotter::vocabulary(&manifest).len(),
        &inputs.features,
        &flags,
    )?;
    let run = train_keyword_spotter(inputs, EXPORTED_SPLIT, &config, &sources)?;
    let t = &run.test;
    println!(
        "keyword spotter: {} words, test accuracy {:.1}% ({} utterances; top-3 {:.1}%, chance {:.1}%)",
        run.model.words().len(),
        100.0 * t.accuracy,
        t.utterances,
        100.0 * t.top3_accuracy,
        100.0 / run.model.words().len() as f64
    );
    if let Some(o) = &run.open_set {
        println!("{}", keyword_spotter::open_set_line(o));
    }
    Ok(())
}

/// Stage 9: the exported split's models as a bundle (fp32 and int8, with the committed
/// Silero VAD), and five held-out files classified through it.
fn export_and_classify(
    layout: &OutputLayout,
    inputs: &RunInputs,
    encoders: &EncoderGraphs,
) -> Result<()> {
    println!(
        "\n== 9/10 export the {EXPORTED_SPLIT} split's models to a bundle and classify through it\n"
    );
    let bundle: PathBuf = layout.bundle();
    export(
        inputs,
        EXPORTED_SPLIT,
        encoders,
        true,
        &[Precision::Fp32, Precision::Int8],
        &ExportOptions {
            vad: vad_choice(None, false),
            ..ExportOptions::default()
        },
        &bundle,
    )?;
    classify_held_out(inputs, EXPORTED_SPLIT, &bundle, 5)
}
