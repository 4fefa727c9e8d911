//! Writing a bundle: files go to a staging directory beside the target, the manifest
//! last, then the staging directory replaces the target in one rename. A failed or
//! killed export leaves the previous bundle as it was.

use std::path::{Path, PathBuf};

use super::{
    Bundle, BundleError, BundleManifest, FileEntry, KeywordTable, MANIFEST_FILE, MANIFEST_JSON,
    safe_join, sha256_hex,
};

/// Collects the files of a bundle, then writes its manifest and puts it in place.
#[derive(Debug)]
pub struct BundleWriter {
    target: PathBuf,
    staging: PathBuf,
    files: Vec<FileEntry>,
}

impl BundleWriter {
    /// Starts a bundle that will replace `target` when [`finish`](Self::finish)ed.
    pub fn new(target: &Path) -> Result<Self, BundleError> {
        let name = target.file_name().ok_or_else(|| {
            BundleError::Write(format!("{} is not a directory name", target.display()))
        })?;
        let staging = target.with_file_name(format!(".{}.partial", name.to_string_lossy()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|source| io(&staging, source))?;
        }
        std::fs::create_dir_all(&staging).map_err(|source| io(&staging, source))?;
        Ok(Self {
            target: target.to_path_buf(),
            staging,
            files: Vec::new(),
        })
    }

    /// Adds a file called `name` (a plain file name) holding `bytes`.
    pub fn add(&mut self, name: &str, bytes: &[u8]) -> Result<(), BundleError> {
        if name == MANIFEST_FILE
            || name == MANIFEST_JSON
            || self.files.iter().any(|f| f.path == name)
        {
            return Err(BundleError::Write(format!(
                "file name `{name}` is used twice"
            )));
        }
        let path = safe_join(&self.staging, name)
            .ok_or_else(|| BundleError::Write(format!("`{name}` is not a plain file name")))?;
        std::fs::write(&path, bytes).map_err(|source| io(&path, source))?;
        self.files.push(FileEntry {
            path: name.to_string(),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        });
        Ok(())
    }

    /// Adds the keyword table as `name`.
    pub fn add_keywords(&mut self, name: &str, table: &KeywordTable) -> Result<(), BundleError> {
        table
            .check()
            .map_err(|e| BundleError::Write(format!("keyword table: {e}")))?;
        let bytes = postcard::to_stdvec(table)
            .map_err(|e| BundleError::Write(format!("keyword table: {e}")))?;
        self.add(name, &bytes)
    }

    /// Writes the manifest into the staging directory and opens the bundle there, so it
    /// can be loaded and measured before it replaces the target.
    pub fn stage(&self, manifest: &BundleManifest) -> Result<Bundle, BundleError> {
        self.write_manifest(manifest)?;
        Bundle::open(&self.staging)
    }

    /// Writes the manifest (its `files` are the files added here), opens the staged
    /// bundle and hashes every file, and only then replaces the target directory with it:
    /// a bundle that does not open never replaces a good one.
    pub fn finish(self, manifest: &BundleManifest) -> Result<Bundle, BundleError> {
        self.stage(manifest)?.verify()?;
        let old = self.staging.with_extension("old");
        if self.target.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(|source| io(&old, source))?;
            }
            std::fs::rename(&self.target, &old).map_err(|source| io(&self.target, source))?;
        }
        std::fs::rename(&self.staging, &self.target).map_err(|source| io(&self.target, source))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|source| io(&old, source))?;
        }
        Bundle::open(&self.target)
    }

    fn write_manifest(&self, manifest: &BundleManifest) -> Result<(), BundleError> {
        let mut manifest = manifest.clone();
        manifest.files = self.files.clone();
        for (file, what) in manifest.referenced_files() {
            if manifest.file(file).is_none() {
                return Err(BundleError::Write(format!(
                    "the manifest refers to {file} ({what}), which was not added"
                )));
            }
        }
        let binary = manifest.to_bytes()?;
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| BundleError::Write(format!("manifest JSON: {e}")))?;
        for (name, bytes) in [(MANIFEST_JSON, &json), (MANIFEST_FILE, &binary)] {
            let path = self.staging.join(name);
            std::fs::write(&path, bytes).map_err(|source| io(&path, source))?;
        }
        Ok(())
    }
}

fn io(path: &Path, source: std::io::Error) -> BundleError {
    BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Drop for BundleWriter {
    /// An export that did not finish leaves no staging directory behind.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.staging);
    }
}
