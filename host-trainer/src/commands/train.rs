//! `train` (one head on one split, resumable) and `keywords` (the keyword spotter).

use anyhow::Result;
use clap::Args;

use super::{RunInputs, read_inputs};
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
    let run = train_keyword_spotter(&args.inputs, &args.split, &config)?;
    println!("{}", keyword_spotter::summary_line(&run));
    Ok(())
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    inputs: RunInputs,
    /// Which model.
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

/// Trains the keyword spotter on `split` (one line per epoch) and saves it.
pub(crate) fn train_keyword_spotter(
    inputs: &RunInputs,
    split: &str,
    config: &TrainConfig,
) -> Result<keyword_spotter::KeywordRun> {
    let (manifest, splits) = read_inputs(inputs)?;
    keyword_spotter::train_keyword_run(
        &manifest,
        splits.get(split)?,
        &inputs.features,
        &inputs.runs,
        config,
    )
}
