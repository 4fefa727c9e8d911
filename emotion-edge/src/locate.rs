//! Where the bundle is when `--bundle` is not given, and the keys it must be signed by.
//!
//! In order: `$EMOTION_EDGE_BUNDLE`; `out/demo/bundle` under the current directory
//! (what `host-trainer demo` writes, so the README's commands chain); the installed
//! location [`INSTALLED_BUNDLE`] (the kiosk's systemd unit uses it); last the demo
//! bundle committed in the repository, [`EMBEDDED_BUNDLE`], so a fresh clone can try
//! the board's program before training anything.

use std::path::{Path, PathBuf};

use emotion_core::signature::{DEFAULT_TRUSTED_KEYS_DIR, TrustedKeys};

/// Environment variable naming the bundle directory.
pub const BUNDLE_ENV: &str = "EMOTION_EDGE_BUNDLE";
/// Where `host-trainer demo` writes its bundle, relative to the current directory.
pub const DEMO_BUNDLE: &str = "out/demo/bundle";
/// Where an installed board keeps its bundle.
pub const INSTALLED_BUNDLE: &str = "/var/lib/emotion-edge/bundle";
/// The demo bundle in the repository, relative to its root.
pub const EMBEDDED_BUNDLE: &str = "data/demo-bundle";

/// The bundle directory: `given`, else the first of the default places that exists.
pub fn bundle_dir(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(dir) = given {
        return Ok(dir.to_path_buf());
    }
    let from_env = std::env::var_os(BUNDLE_ENV).map(PathBuf::from);
    if let Some(dir) = from_env {
        // Named explicitly: use it even if it is missing, so the error names it.
        return Ok(dir);
    }
    let candidates = [DEMO_BUNDLE, INSTALLED_BUNDLE, EMBEDDED_BUNDLE].map(PathBuf::from);
    if let Some(found) = candidates.iter().find(|d| d.join("manifest.bin").is_file()) {
        return Ok(found.clone());
    }
    Err(format!(
        "no bundle given and none found at {DEMO_BUNDLE}, {INSTALLED_BUNDLE} or \
         {EMBEDDED_BUNDLE}: pass \
         --bundle DIR, set {BUNDLE_ENV}, or make one with `cargo run --release -p \
         host-trainer -- demo` (writes {DEMO_BUNDLE}) or `host-trainer export`"
    ))
}

/// The keys a bundle must be signed by: every `.pub` file in `given` (`--trusted-keys`),
/// else in [`DEFAULT_TRUSTED_KEYS_DIR`] when that folder exists; none otherwise (the
/// bundle is then held to its checksums only). A folder named on the command line must
/// hold a key: an empty or missing one is a mistake, not a wish to check nothing.
pub fn trusted_keys(given: Option<&Path>) -> anyhow::Result<TrustedKeys> {
    let dir = match given {
        Some(dir) => dir.to_path_buf(),
        None => {
            let default = PathBuf::from(DEFAULT_TRUSTED_KEYS_DIR);
            if !default.is_dir() {
                return Ok(TrustedKeys::default());
            }
            default
        }
    };
    let keys = TrustedKeys::read_dir(&dir)?;
    if keys.is_empty() && given.is_some() {
        anyhow::bail!(
            "--trusted-keys {}: no trusted key (*.pub) in it, the folder is empty of keys; \
             put the .pub file of the key that signs your bundles there",
            dir.display()
        );
    }
    Ok(keys)
}
