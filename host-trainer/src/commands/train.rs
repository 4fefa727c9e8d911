//! `train` (one head on one split, resumable) and `keywords` (the keyword spotter).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;
use emotion_core::real_speech::RealSpeech;

use super::{RunInputs, read_inputs};
use crate::data::negatives::open_set;
use crate::train::heads::ModelKind;
use crate::train::keyword_spotter;
use crate::train::runs::{run_dir, train_run};
use crate::train::trainer::{TrainConfig, remove_checkpoint};

/// `train`.
pub fn train(args: TrainArgs) -> Result<()> {
    let config = TrainConfig {
        model: args.model,
        max_epochs: args.epochs,
        patience: args.patience,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        seed: args.seed,
        ..TrainConfig::default()
    };
    train_models(
        &args.inputs,
        &[args.model],
        &[args.split],
        &config,
        args.fresh,
    )
}

/// `keywords`.
pub fn keywords(args: KeywordArgs) -> Result<()> {
    let config = TrainConfig {
        max_epochs: args.epochs,
        patience: args.patience,
        seed: args.seed,
        ..keyword_spotter::default_config()
    };
    let (manifest, _) = read_inputs(&args.inputs)?;
    let sources = negative_sources(
        keyword_spotter::vocabulary(&manifest).len(),
        &args.inputs.features,
        &args.negatives,
    )?;
    let run = train_keyword_spotter(&args.inputs, &args.split, &config, &sources)?;
    println!("{}", keyword_spotter::summary_line(&run));
    Ok(())
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    inputs: RunInputs,
    /// Which model. Fusion starts from the split's trained speech model (train speech
    /// first) and keeps its text path only if that beats it on validation.
    #[arg(long, value_enum)]
    model: ModelKind,
    /// Which split (see splits.json): random, speaker-OAF-to-YAF, speaker-YAF-to-OAF, word;
    /// with more speakers speaker-fold-1-of-5 …; with several corpora within-A, cross-A-to-B.
    #[arg(long, default_value = "random")]
    split: String,
    /// Most epochs.
    #[arg(long, default_value_t = TrainConfig::default().max_epochs)]
    epochs: usize,
    /// Epochs without a better validation macro-F1 before stopping.
    #[arg(long, default_value_t = TrainConfig::default().patience)]
    patience: usize,
    /// Utterances per batch.
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    learning_rate: f64,
    /// Seed of the weights and of the batch order.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// Start from epoch 1: delete the run's checkpoint (RUNS/{model}/{split}/checkpoint)
    /// instead of resuming from it.
    #[arg(long)]
    fresh: bool,
}

#[derive(Args)]
pub struct KeywordArgs {
    #[command(flatten)]
    inputs: RunInputs,
    /// Which split: random or a speaker split (every word must be heard in training).
    #[arg(long, default_value = "random")]
    split: String,
    /// Most epochs.
    #[arg(long, default_value_t = keyword_spotter::default_config().max_epochs)]
    epochs: usize,
    /// Epochs without a better validation macro-F1 before stopping.
    #[arg(long, default_value_t = keyword_spotter::default_config().patience)]
    patience: usize,
    /// Seed of the weights and of the batch order.
    #[arg(long, default_value_t = keyword_spotter::default_config().seed)]
    seed: u64,
    #[command(flatten)]
    negatives: NegativeFlags,
}

/// Where the keyword spotter's "not a keyword" negatives come from.
#[derive(Args, Debug, Clone, Default)]
pub struct NegativeFlags {
    /// The real-speech set (scripts/fetch-real-speech.sh) whose clips without a
    /// vocabulary word train, calibrate and test "not a keyword" [default:
    /// $EMOTION_REAL_SPEECH, else /var/cache/emotion-edge/real-speech, used when there].
    #[arg(long, value_name = "DIR", conflicts_with = "no_real_speech")]
    pub real_speech: Option<PathBuf>,
    /// Train "not a keyword" without recorded speech (held-out words only); its
    /// false-accept rate on recorded speech is then not measured.
    #[arg(long)]
    pub no_real_speech: bool,
    /// Vocabulary words held out of the spotter's outputs and trained as "not a
    /// keyword" (0: none) [default: one in six, at least one].
    #[arg(long, value_name = "N")]
    pub held_out_words: Option<usize>,
    /// The speech encoder graph the features were extracted with, to run the recorded
    /// speech through [default: encoders/speech.onnx beside the features folder].
    #[arg(long, value_name = "GRAPH")]
    pub speech_encoder: Option<PathBuf>,
}

/// The negatives `flags` ask for, for a vocabulary of `words` words whose features are
/// in `features`; says on standard output where they come from, and why recorded speech
/// is not used when it is not.
pub(crate) fn negative_sources(
    words: usize,
    features: &Path,
    flags: &NegativeFlags,
) -> Result<keyword_spotter::NegativeSources> {
    let held_out_words = flags
        .held_out_words
        .unwrap_or_else(|| keyword_spotter::default_held_out_count(words));
    let sources = |recorded| keyword_spotter::NegativeSources {
        held_out_words,
        recorded,
    };
    if flags.no_real_speech {
        println!(
            "recorded speech for \"not a keyword\": off (--no-real-speech); false-accept rate on recorded speech not measured"
        );
        return Ok(sources(None));
    }
    let root = flags
        .real_speech
        .clone()
        .unwrap_or_else(RealSpeech::default_root);
    let set = match open_set(&root) {
        Ok(Some(set)) => set,
        Ok(None) if flags.real_speech.is_some() => bail!(
            "no real-speech set in {} (fetch it with `bash {} {}`), or train without it: --no-real-speech",
            root.display(),
            emotion_core::real_speech::FETCH_SCRIPT,
            root.parent()
                .map_or(String::new(), |p| p.display().to_string())
        ),
        Ok(None) => {
            println!(
                "no real-speech set at {} (fetch it with `bash {} {}`, or set {}): the keyword spotter learns \"not a keyword\" from held-out words only, and its false-accept rate on recorded speech is not measured",
                root.display(),
                emotion_core::real_speech::FETCH_SCRIPT,
                root.parent()
                    .map_or(String::new(), |p| p.display().to_string()),
                emotion_core::real_speech::CACHE_ENV
            );
            return Ok(sources(None));
        }
        Err(e) => bail!("cannot read the real-speech set: {e}"),
    };
    let encoder = match &flags.speech_encoder {
        Some(path) => path.clone(),
        None => {
            let beside = features
                .parent()
                .unwrap_or(Path::new("."))
                .join("encoders")
                .join("speech.onnx");
            if !beside.is_file() {
                bail!(
                    "the real-speech set in {} is run through the speech encoder the features came from, and {} is not there: pass --speech-encoder GRAPH (or --no-real-speech)",
                    root.display(),
                    beside.display()
                );
            }
            beside
        }
    };
    println!(
        "recorded speech for \"not a keyword\": {} ({} clips)",
        root.display(),
        set.clips.len()
    );
    Ok(sources(Some((set, encoder))))
}

/// Trains every model on every split named. Each run checkpoints every epoch into its
/// folder and resumes from a checkpoint left by a killed run (`fresh`: deletes it
/// first); the checkpoint is removed once the model is saved.
pub(crate) fn train_models(
    inputs: &RunInputs,
    models: &[ModelKind],
    split_names: &[String],
    base: &TrainConfig,
    fresh: bool,
) -> Result<()> {
    let (manifest, splits) = read_inputs(inputs)?;
    for name in split_names {
        let split = splits.get(name)?;
        for &model in models {
            let checkpoint = run_dir(&inputs.runs, model, &split.name).join("checkpoint");
            if fresh && remove_checkpoint(&checkpoint)? {
                println!("--fresh: removed the checkpoint {}", checkpoint.display());
            }
            let config = TrainConfig {
                model,
                checkpoint: Some(checkpoint.clone()),
                ..base.clone()
            };
            train_run(&manifest, split, &inputs.features, &inputs.runs, &config)?;
            remove_checkpoint(&checkpoint)?;
        }
    }
    Ok(())
}

/// Trains the keyword spotter on `split` (one line per epoch), with the negatives of
/// `sources`, and saves it.
pub(crate) fn train_keyword_spotter(
    inputs: &RunInputs,
    split: &str,
    config: &TrainConfig,
    sources: &keyword_spotter::NegativeSources,
) -> Result<keyword_spotter::KeywordRun> {
    let (manifest, splits) = read_inputs(inputs)?;
    keyword_spotter::train_keyword_run(
        &manifest,
        splits.get(split)?,
        &inputs.features,
        &inputs.runs,
        config,
        sources,
    )
}
