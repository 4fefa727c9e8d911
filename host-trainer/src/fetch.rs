//! `host-trainer fetch`: download the reference encoders (HuBERT-base, BERT-base) from
//! the Hugging Face Hub with hf-hub into a local folder, one sub-folder per model, laid
//! out as `encoders import` reads it.
//!
//! Without network the error says which files to put where by hand, so a machine that
//! cannot reach the Hub can still be given the weights.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hf_hub::HFClient;

/// A model on the Hub and the files the project needs from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteModel {
    /// Hub organisation.
    pub owner: &'static str,
    /// Repository name.
    pub name: &'static str,
    /// Files to download, all required.
    pub files: &'static [&'static str],
}

/// The study's speech encoder.
pub const HUBERT_BASE: RemoteModel = RemoteModel {
    owner: "facebook",
    name: "hubert-base-ls960",
    files: &[
        "config.json",
        "preprocessor_config.json",
        "model.safetensors",
    ],
};

/// The study's text encoder.
pub const BERT_BASE: RemoteModel = RemoteModel {
    owner: "google-bert",
    name: "bert-base-uncased",
    files: &["config.json", "tokenizer.json", "model.safetensors"],
};

impl RemoteModel {
    /// `owner/name`.
    pub fn repo_id(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// Where this model lives under `cache`: `cache/owner--name`.
    pub fn local_dir(&self, cache: &Path) -> PathBuf {
        cache.join(format!("{}--{}", self.owner, self.name))
    }

    /// The files not yet in `dir` (missing or empty).
    pub fn missing_files(&self, dir: &Path) -> Vec<&'static str> {
        self.files
            .iter()
            .copied()
            .filter(|f| std::fs::metadata(dir.join(f)).map_or(true, |m| m.len() == 0))
            .collect()
    }
}

/// A download that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The Hub could not be reached or refused a file; the message tells how to place
    /// the files by hand.
    #[error("{0}")]
    Unavailable(String),
    /// The local folder cannot be created.
    #[error("cannot create {path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Where to download from.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Hub URL; default `HF_ENDPOINT` or huggingface.co.
    pub endpoint: Option<String>,
    /// Download again even if the files are there.
    pub force: bool,
}

/// Makes sure every file of `model` is in `model.local_dir(cache)`, downloading what is
/// missing, and returns that folder.
pub fn fetch(
    model: &RemoteModel,
    cache: &Path,
    options: &FetchOptions,
) -> Result<PathBuf, FetchError> {
    let dir = model.local_dir(cache);
    let wanted: Vec<&str> = if options.force {
        model.files.to_vec()
    } else {
        model.missing_files(&dir)
    };
    if wanted.is_empty() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(|source| FetchError::Io {
        path: dir.clone(),
        source,
    })?;
    let by_hand =
        |cause: String| FetchError::Unavailable(by_hand_instructions(model, &dir, &cause));

    let mut builder = HFClient::builder().retry_max_attempts(3);
    if let Some(endpoint) = &options.endpoint {
        builder = builder.endpoint(endpoint.clone());
    }
    let client = builder.build_sync().map_err(|e| by_hand(e.to_string()))?;
    let repo = client.model(model.owner, model.name);
    for file in wanted {
        eprintln!("downloading {}/{file} ...", model.repo_id());
        repo.download_file()
            .filename(file)
            .local_dir(dir.clone())
            .force_download(options.force)
            .send()
            .map_err(|e| by_hand(format!("{file}: {e}")))?;
    }
    Ok(dir)
}

/// The message for a machine that cannot download: what failed, and which files to put
/// where.
fn by_hand_instructions(model: &RemoteModel, dir: &Path, cause: &str) -> String {
    let mut text = format!(
        "cannot download {} from the Hugging Face Hub ({cause}).\n\
         On a machine with network, download these files from \
         https://huggingface.co/{}/tree/main and put them by hand in {}:\n",
        model.repo_id(),
        model.repo_id(),
        dir.display()
    );
    for file in model.files {
        let _ = writeln!(text, "  {}", dir.join(file).display());
    }
    text.push_str(
        "If the repository has only pytorch_model.bin, convert it to model.safetensors with\n  \
         python -c \"from transformers import AutoModel; \
         AutoModel.from_pretrained('DIR').save_pretrained('DIR', safe_serialization=True)\"\n\
         then run this command again: files already there are not downloaded again.",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_hub_gives_by_hand_instructions() {
        let cache = tempfile::tempdir().unwrap();
        // Nothing listens on port 9 of the loopback: the connection is refused at once.
        let options = FetchOptions {
            endpoint: Some("http://127.0.0.1:9".into()),
            force: false,
        };
        let err = fetch(&HUBERT_BASE, cache.path(), &options).unwrap_err();
        let text = err.to_string();
        let dir = cache.path().join("facebook--hubert-base-ls960");
        assert!(matches!(err, FetchError::Unavailable(_)));
        for file in HUBERT_BASE.files {
            assert!(
                text.contains(&dir.join(file).display().to_string()),
                "{text}"
            );
        }
        assert!(text.contains("save_pretrained"), "{text}");
    }

    #[test]
    fn files_already_there_are_not_downloaded() {
        let cache = tempfile::tempdir().unwrap();
        let dir = BERT_BASE.local_dir(cache.path());
        std::fs::create_dir_all(&dir).unwrap();
        for file in BERT_BASE.files {
            std::fs::write(dir.join(file), b"x").unwrap();
        }
        let options = FetchOptions {
            endpoint: Some("http://127.0.0.1:9".into()),
            force: false,
        };
        assert_eq!(fetch(&BERT_BASE, cache.path(), &options).unwrap(), dir);
        std::fs::write(dir.join("tokenizer.json"), b"").unwrap();
        assert_eq!(BERT_BASE.missing_files(&dir), ["tokenizer.json"]);
        assert!(fetch(&BERT_BASE, cache.path(), &options).is_err());
    }
}
