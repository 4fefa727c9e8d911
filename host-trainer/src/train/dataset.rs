//! Training examples: for each utterance of a split's parts, its speech (and text)
//! features read back from the feature cache, with its label.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::data::manifest::CorpusManifest;
use crate::data::splits::Split;
use crate::features::cache::{CacheError, FeatureCache, FeatureIndex, Features};
use crate::train::trainer::Example;

/// The examples of one split.
#[derive(Debug, Clone)]
pub struct SplitData {
    /// Training examples.
    pub train: Vec<Example>,
    /// Validation examples (early stopping).
    pub val: Vec<Example>,
    /// Test examples.
    pub test: Vec<Example>,
}

/// Examples that cannot be assembled.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The cache is unreadable.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// An utterance of the split has no features.
    #[error("{id} has no features in {cache}: run `host-trainer extract` on this manifest first")]
    NotExtracted {
        /// The utterance.
        id: String,
        /// The cache folder.
        cache: PathBuf,
    },
    /// Text features were asked for, but the cache has none.
    #[error("{cache} holds no text features: extract with --text-encoder and --tokenizer")]
    NoText {
        /// The cache folder.
        cache: PathBuf,
    },
    /// An utterance of the split is not in the manifest.
    #[error("{0} is in the split but not in the manifest")]
    NotInManifest(String),
}

/// Reads the examples of `split` from the cache in `cache_dir`; `with_text` also loads the
/// transcript features (needed by the text and fusion models).
pub fn load_split(
    manifest: &CorpusManifest,
    split: &Split,
    cache_dir: &Path,
    with_text: bool,
) -> Result<SplitData, DatasetError> {
    let index = FeatureIndex::read(cache_dir)?;
    if with_text && index.text_encoder.is_none() {
        return Err(DatasetError::NoText {
            cache: cache_dir.to_path_buf(),
        });
    }
    let cache = FeatureCache::new(cache_dir);
    // Transcripts are shared by many utterances: read each text file once.
    let mut text_files: HashMap<PathBuf, Features> = HashMap::new();
    let mut load = |ids: &[String]| -> Result<Vec<Example>, DatasetError> {
        ids.iter()
            .map(|id| {
                let entry = manifest
                    .get(id)
                    .ok_or_else(|| DatasetError::NotInManifest(id.clone()))?;
                let features = index
                    .entries
                    .get(id)
                    .ok_or_else(|| DatasetError::NotExtracted {
                        id: id.clone(),
                        cache: cache_dir.to_path_buf(),
                    })?;
                let text = match (&features.text, with_text) {
                    (Some(path), true) => {
                        if !text_files.contains_key(path) {
                            text_files.insert(path.clone(), cache.read(path)?);
                        }
                        text_files.get(path).cloned()
                    }
                    _ => None,
                };
                Ok(Example {
                    id: id.clone(),
                    speech: cache.read(&features.speech)?,
                    text,
                    label: entry.emotion,
                })
            })
            .collect()
    };
    Ok(SplitData {
        train: load(&split.train)?,
        val: load(&split.val)?,
        test: load(&split.test)?,
    })
}
