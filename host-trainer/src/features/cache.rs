//! The feature cache: encoder outputs stored as safetensors files named by a key that
//! hashes everything they depend on (the audio bytes or transcript, the encoder graph,
//! the front-end settings, the layer combination, the dtype). A change recomputes only
//! what it must; a file is written to a temporary name and renamed, so a killed run
//! never leaves a half-written feature behind. What a kill does leave, temporary files
//! (`.NAME.tmpPID-N`), is removed by the next run
//! ([`remove_stale_temp_files`](FeatureCache::remove_stale_temp_files)).
//!
//! `features.json` (the [`FeatureIndex`]) maps each utterance id to its speech and text
//! feature files; training reads it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use emotion_core::fs::write_atomically;

pub use emotion_core::features::{Features, LayerCombination};

/// Storage precision of the cached features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FeatureDtype {
    /// 32-bit float.
    F32,
    /// 16-bit float: half the disk, ~3 significant digits.
    F16,
}

/// A feature file or index that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// File-system trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a feature file of ours, or damaged.
    #[error(
        "{path}: not a usable feature file ({detail}); delete it and run `host-trainer extract` again"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// No `features.json` where expected.
    #[error("{0}: no feature index; run `host-trainer extract` first")]
    NoIndex(PathBuf),
}

/// Hex SHA-256 of `parts`, each length-prefixed so that no two lists collide.
pub fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A folder of feature files.
#[derive(Debug, Clone)]
pub struct FeatureCache {
    root: PathBuf,
}

impl FeatureCache {
    /// The cache in `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The cache folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the features with `key` live, relative to the root (`speech/ab/abcd….safetensors`).
    pub fn relative_path(kind: &str, key: &str) -> PathBuf {
        PathBuf::from(kind)
            .join(&key[..2.min(key.len())])
            .join(format!("{key}.safetensors"))
    }

    /// True when a complete file for `relative` is there.
    pub fn contains(&self, relative: &Path) -> bool {
        self.root.join(relative).is_file()
    }

    /// Writes features atomically: to a temporary name of its own (two workers may
    /// write the same features when two files hold the same audio), synced, renamed.
    pub fn write(
        &self,
        relative: &Path,
        features: &Features,
        dtype: FeatureDtype,
    ) -> Result<(), CacheError> {
        let path = self.root.join(relative);
        let bytes = encode(features, dtype).map_err(|detail| CacheError::Corrupt {
            path: path.clone(),
            detail,
        })?;
        write_atomically(&path, &bytes).map_err(|source| CacheError::Io { path, source })
    }

    /// Removes the temporary files that killed runs left in the cache (a file whose
    /// writer is still running is left alone); returns how many went. They are never
    /// read (no final name), only taking room.
    pub fn remove_stale_temp_files(&self) -> Result<usize, CacheError> {
        let mut removed = 0;
        let mut folders = vec![self.root.clone()];
        while let Some(folder) = folders.pop() {
            let entries = match std::fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(CacheError::Io {
                        path: folder,
                        source,
                    });
                }
            };
            for entry in entries {
                let entry = entry.map_err(|source| CacheError::Io {
                    path: folder.clone(),
                    source,
                })?;
                let path = entry.path();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if is_dir {
                    folders.push(path);
                    continue;
                }
                let name = entry.file_name();
                let Some(pid) = name.to_str().and_then(temp_writer) else {
                    continue;
                };
                if writer_is_gone(pid, &path) {
                    match std::fs::remove_file(&path) {
                        Ok(()) => removed += 1,
                        // Renamed or removed meanwhile by its writer: nothing left to do.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(source) => return Err(CacheError::Io { path, source }),
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Reads features (f16 files come back as f32).
    pub fn read(&self, relative: &Path) -> Result<Features, CacheError> {
        let path = self.root.join(relative);
        let bytes = std::fs::read(&path).map_err(|source| CacheError::Io {
            path: path.clone(),
            source,
        })?;
        decode(&bytes).map_err(|detail| CacheError::Corrupt { path, detail })
    }
}

/// The process id in a temporary file name of ours (`.NAME.tmpPID-N`, as
/// `emotion_core::fs::write_atomically` names them, or an older `.NAME.tmpPID`); `None` for any
/// other name.
fn temp_writer(name: &str) -> Option<u32> {
    if !name.starts_with('.') {
        return None;
    }
    let (_, suffix) = name.rsplit_once(".tmp")?;
    let (pid, counter) = suffix.split_once('-').unwrap_or((suffix, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(pid) && digits(counter)) {
        return None;
    }
    pid.parse().ok()
}

/// True when no running process can still be writing the temporary file `path` of
/// process `pid`: that process is gone (Linux: no `/proc/PID`), or, where that cannot
/// be told, the file has not changed for an hour.
fn writer_is_gone(pid: u32, path: &Path) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let proc = Path::new("/proc");
    if proc.join("self").exists() {
        return !proc.join(pid.to_string()).exists();
    }
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age > Duration::from_secs(3600))
}

fn encode(features: &Features, dtype: FeatureDtype) -> Result<Vec<u8>, String> {
    let bytes: Vec<u8> = match dtype {
        FeatureDtype::F32 => features.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        FeatureDtype::F16 => features
            .data
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
    };
    let st_dtype = match dtype {
        FeatureDtype::F32 => Dtype::F32,
        FeatureDtype::F16 => Dtype::F16,
    };
    let view =
        TensorView::new(st_dtype, features.shape.clone(), &bytes).map_err(|e| e.to_string())?;
    let layers: Vec<String> = features.layers.iter().map(|l| l.to_string()).collect();
    let metadata = HashMap::from([("layers".to_string(), layers.join(","))]);
    safetensors::serialize([("features", view)], Some(metadata)).map_err(|e| e.to_string())
}

fn decode(bytes: &[u8]) -> Result<Features, String> {
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let layers = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get("layers"))
        .ok_or("no layers in the metadata")?
        .split(',')
        .map(|l| l.parse::<usize>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let view = tensors.tensor("features").map_err(|e| e.to_string())?;
    let data: Vec<f32> = match view.dtype() {
        Dtype::F32 => view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => view
            .data()
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => return Err(format!("dtype {other:?}")),
    };
    let shape = view.shape().to_vec();
    if !(2..=3).contains(&shape.len()) {
        return Err(format!("shape {shape:?} is neither [T, H] nor [L, T, H]"));
    }
    Ok(Features {
        layers,
        shape,
        data,
    })
}

/// Version of the `features.json` layout.
pub const INDEX_FORMAT: u32 = 1;

/// Where each utterance's features are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Speech features, relative to the cache root.
    pub speech: PathBuf,
    /// Text features of the transcript, relative to the cache root (absent when no text
    /// encoder was given).
    pub text: Option<PathBuf>,
    /// Speech frames.
    pub frames: usize,
    /// Text tokens.
    pub tokens: usize,
}

/// `features.json`: what was extracted, with what, for which utterances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureIndex {
    /// Layout version.
    pub format: u32,
    /// How layers were combined.
    pub combination: LayerCombination,
    /// Storage precision.
    pub dtype: FeatureDtype,
    /// The front-end settings the speech features were computed with (older indexes
    /// lack it: they were made with the defaults).
    #[serde(default)]
    pub frontend: emotion_core::FrontendConfig,
    /// SHA-256 of the speech encoder graph.
    pub speech_encoder: String,
    /// HF layers of the speech features.
    pub speech_layers: Vec<usize>,
    /// Speech feature size.
    pub speech_dim: usize,
    /// SHA-256 of the text encoder graph, if any.
    pub text_encoder: Option<String>,
    /// HF layers of the text features.
    pub text_layers: Vec<usize>,
    /// Text feature size (0 without a text encoder).
    pub text_dim: usize,
    /// Per utterance id.
    pub entries: BTreeMap<String, IndexEntry>,
}

impl FeatureIndex {
    /// The index file of a cache.
    pub fn path_in(cache: &Path) -> PathBuf {
        cache.join("features.json")
    }

    /// Writes `features.json` atomically.
    pub fn write(&self, cache: &Path) -> Result<(), CacheError> {
        let path = Self::path_in(cache);
        let text = serde_json::to_string_pretty(self).map_err(|e| CacheError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        write_atomically(&path, text.as_bytes()).map_err(|source| CacheError::Io { path, source })
    }

    /// Reads `features.json` from a cache folder.
    pub fn read(cache: &Path) -> Result<Self, CacheError> {
        let path = Self::path_in(cache);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CacheError::NoIndex(path));
            }
            Err(source) => return Err(CacheError::Io { path, source }),
        };
        let index: FeatureIndex = serde_json::from_str(&text).map_err(|e| CacheError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if index.format > INDEX_FORMAT {
            return Err(CacheError::Corrupt {
                path,
                detail: format!(
                    "index format {} is newer than this program's {INDEX_FORMAT}; update host-trainer",
                    index.format
                ),
            });
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features() -> Features {
        Features {
            layers: vec![5, 6, 7],
            shape: vec![3, 2, 4],
            data: (0..24).map(|i| i as f32 * 0.37 - 3.0).collect(),
        }
    }

    #[test]
    fn f32_round_trips_exactly_and_f16_closely() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FeatureCache::new(dir.path());
        let rel = FeatureCache::relative_path("speech", "abcdef");
        assert!(!cache.contains(&rel));
        cache.write(&rel, &features(), FeatureDtype::F32).unwrap();
        assert!(cache.contains(&rel));
        assert_eq!(cache.read(&rel).unwrap(), features());
        assert_eq!(features().frames(), 2);
        assert_eq!(features().dim(), 4);

        let half = FeatureCache::relative_path("speech", "half");
        cache.write(&half, &features(), FeatureDtype::F16).unwrap();
        let back = cache.read(&half).unwrap();
        let worst = emotion_core::scores::max_abs_difference(&back.data, &features().data);
        assert!(worst < 5e-3, "{worst}");
        assert!(
            std::fs::metadata(dir.path().join(&half)).unwrap().len()
                < std::fs::metadata(dir.path().join(&rel)).unwrap().len()
        );
    }

    #[test]
    fn damaged_files_are_reported_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FeatureCache::new(dir.path());
        let rel = FeatureCache::relative_path("speech", "bad");
        std::fs::create_dir_all(dir.path().join(&rel).parent().unwrap()).unwrap();
        std::fs::write(dir.path().join(&rel), b"\x10\0\0\0\0\0\0\0{\"a\":").unwrap();
        assert!(matches!(cache.read(&rel), Err(CacheError::Corrupt { .. })));
        assert!(matches!(
            FeatureIndex::read(dir.path()),
            Err(CacheError::NoIndex(_))
        ));
    }

    #[test]
    fn temp_files_of_dead_writers_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FeatureCache::new(dir.path());
        assert_eq!(cache.remove_stale_temp_files().unwrap(), 0);
        let rel = FeatureCache::relative_path("speech", "abcdef");
        cache.write(&rel, &features(), FeatureDtype::F32).unwrap();
        let folder = dir.path().join(&rel).parent().unwrap().to_path_buf();
        // No temporary file is left by a write.
        let names = |folder: &Path| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(folder)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(&folder), ["abcdef.safetensors"]);

        // Above any pid Linux hands out (pid_max is at most 2^22): no such process.
        let dead = 4_000_000_000u32;
        let stale = [
            folder.join(format!(".abcdef.safetensors.tmp{dead}-3")),
            dir.path().join(format!(".features.json.tmp{dead}")),
        ];
        let alive = folder.join(format!(".ghij.safetensors.tmp{}-0", std::process::id()));
        let unrelated = [folder.join("ab.tmp1"), folder.join(".hidden")];
        for path in stale.iter().chain([&alive]).chain(&unrelated) {
            std::fs::write(path, b"half").unwrap();
        }
        let expected = if Path::new("/proc/self").exists() {
            2
        } else {
            0
        };
        assert_eq!(cache.remove_stale_temp_files().unwrap(), expected);
        if expected == 2 {
            assert!(stale.iter().all(|p| !p.exists()));
        }
        assert!(alive.exists() && unrelated.iter().all(|p| p.exists()));
        assert_eq!(cache.read(&rel).unwrap(), features());

        assert_eq!(temp_writer(".a.safetensors.tmp12-4"), Some(12));
        assert_eq!(temp_writer(".features.json.tmp7"), Some(7));
        assert_eq!(temp_writer("a.safetensors.tmp12"), None);
        assert_eq!(temp_writer(".a.tmp"), None);
        assert_eq!(temp_writer(".a.tmp1-x"), None);
    }

    #[test]
    fn digest_separates_its_parts() {
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
        assert_eq!(digest(&[b"x"]), digest(&[b"x"]));
    }
}
