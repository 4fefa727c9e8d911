//! `fetch`: the reference encoder checkpoints from the Hub (or a copy made by hand) into
//! the encoder cache.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::short;
use crate::encoders::fetch::{
    BERT_BASE, DEFAULT_ENDPOINT, FetchError, FetchOptions, HUBERT_BASE, KNOWN_MODELS, RemoteModel,
    fetch,
};

#[derive(Args)]
pub struct FetchArgs {
    /// The models to fetch, as owner/name [default: facebook/hubert-base-ls960 and
    /// google-bert/bert-base-uncased].
    #[arg(value_name = "MODEL")]
    models: Vec<String>,
    /// Where the models go (one sub-folder each) [default: $EMOTION_ENCODERS, else ~/.cache/emotion-edge/hf].
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Branch, tag, commit or pull-request ref (e.g. refs/pr/2) of the MODELs named
    /// [default: what the folder holds, else main].
    #[arg(long)]
    revision: Option<String>,
    /// Hub URL [default: $HF_ENDPOINT, else https://huggingface.co].
    #[arg(long)]
    endpoint: Option<String>,
    /// Take the files from this folder (copied by hand from a machine with network)
    /// instead of the network: FROM/owner--name/ as `fetch` writes it, or the Hugging Face
    /// cache (FROM/models--owner--name/). Checked, then copied into the cache.
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    /// Download again even when the files are there.
    #[arg(long, conflicts_with = "from")]
    force: bool,
}

pub fn run(args: FetchArgs) -> Result<()> {
    let cache = args.cache.unwrap_or_else(default_encoder_cache);
    let known = || {
        KNOWN_MODELS
            .iter()
            .map(RemoteModel::repo_id)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let models: Vec<RemoteModel> = if args.models.is_empty() {
        if let Some(revision) = &args.revision {
            anyhow::bail!(
                "--revision {revision} names a revision of one repository: name the model too, \
                 e.g. `host-trainer fetch {} --revision {revision}`",
                HUBERT_BASE.repo_id()
            );
        }
        vec![HUBERT_BASE, BERT_BASE]
    } else {
        args.models
            .iter()
            .map(|id| {
                RemoteModel::find(id)
                    .with_context(|| format!("`fetch` knows {}, not {id}", known()))
            })
            .collect::<Result<_>>()?
    };
    let endpoint = args
        .endpoint
        .or_else(|| std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    let options = FetchOptions {
        endpoint,
        token: std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()),
        revision: args.revision,
        from: args.from,
        force: args.force,
        progress: super::progress_bars(),
        ..FetchOptions::default()
    };
    // Every model is tried, so that one message lists everything to fetch by hand.
    let mut failures: Vec<FetchError> = Vec::new();
    for model in models {
        match fetch(&model, &cache, &options) {
            Ok(fetched) => {
                let record = &fetched.record;
                let checked: Vec<String> = record
                    .files
                    .iter()
                    .map(|f| format!("{} ({})", f.name, f.checked.describe()))
                    .collect();
                println!(
                    "{} at {}{}: {} — {}",
                    record.repo,
                    record.revision.as_deref().unwrap_or("an unknown revision"),
                    record
                        .commit
                        .as_deref()
                        .map_or(String::new(), |c| format!(" ({})", short(c))),
                    fetched.dir.display(),
                    checked.join(", ")
                );
            }
            Err(e) => failures.push(e),
        }
    }
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0).into()),
        _ => {
            let text: Vec<String> = failures.iter().map(ToString::to_string).collect();
            anyhow::bail!("{}", text.join("\n\n"))
        }
    }
}

/// `$EMOTION_ENCODERS`, else `$XDG_CACHE_HOME/emotion-edge/hf`, else `~/.cache/emotion-edge/hf`.
fn default_encoder_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("EMOTION_ENCODERS") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("emotion-edge").join("hf")
}
