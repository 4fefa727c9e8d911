//! What can be wrong with a bundle. Every error names the file and says what to do.

use std::path::PathBuf;

use crate::vad::{SILERO_KIND, VadError};

/// A bundle that cannot be written, opened or used.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file the bundle needs is not there.
    #[error("{path} is missing{}: export the bundle again with `host-trainer export`", hint(.what))]
    Missing {
        /// The file.
        path: PathBuf,
        /// What it holds, e.g. "the int8 speech encoder".
        what: String,
    },
    /// File-system trouble other than a missing file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The manifest is not a bundle manifest at all.
    #[error("{path} is not an emotion-edge bundle manifest ({detail})")]
    NotABundle {
        /// The manifest file.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },
    /// The bundle was written by a newer program.
    #[error(
        "{path} has bundle format {found}, but this program reads format {supported} at most: update emotion-edge (or export the bundle with this version of host-trainer)"
    )]
    NewerFormat {
        /// The manifest file.
        path: PathBuf,
        /// The format in the file.
        found: u32,
        /// The newest format this program reads.
        supported: u32,
    },
    /// The bundle was written by an older program, in a format this one no longer reads.
    #[error(
        "{path} has bundle format {found}, this program reads format {supported}: export the bundle again with this version of host-trainer"
    )]
    OlderFormat {
        /// The manifest file.
        path: PathBuf,
        /// The format in the file.
        found: u32,
        /// The format this program reads.
        supported: u32,
    },
    /// A file of the bundle cannot be decoded, or the manifest contradicts itself.
    #[error("{path} is damaged: {detail}; export the bundle again")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A file's size or SHA-256 is not the one the manifest recorded.
    #[error("{path} was changed after export ({detail}); restore it or export the bundle again")]
    Tampered {
        /// The file.
        path: PathBuf,
        /// Expected and found size or digest.
        detail: String,
    },
    /// A file is intact but does not fit the rest of the bundle (another model's head,
    /// an encoder with other layers, a keyword table of another width, wrong labels).
    #[error("{path} does not fit this bundle: {detail}; export the bundle again")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        detail: String,
    },
    /// A variant the bundle does not have.
    #[error("the bundle has no variant `{name}`; it has: {}", .available.join(", "))]
    UnknownVariant {
        /// The variant asked for.
        name: String,
        /// The variants it has.
        available: Vec<String>,
    },
    /// Something the exporter was given is not usable.
    #[error("cannot write the bundle: {0}")]
    Write(String),
    /// The bundle's voice-activity detector is of a kind this program does not run.
    #[error(
        "{path}: the bundle's voice-activity detector is of kind `{kind}`, and this program knows {}: update emotion-edge, or put the Silero VAD in the bundle with `host-trainer bundle add-vad --bundle DIR`",
        SILERO_KIND
    )]
    UnknownVad {
        /// The VAD file.
        path: PathBuf,
        /// The kind the manifest names.
        kind: String,
    },
    /// The bundle's voice-activity detector is intact (its SHA-256 is the manifest's) but
    /// does not load as a Silero VAD graph, or not at the rate asked for.
    #[error("{path}: {error}{}", vad_hint(.error))]
    Vad {
        /// The VAD file.
        path: PathBuf,
        /// What the VAD loader said.
        error: VadError,
    },
}

fn vad_hint(error: &VadError) -> &'static str {
    match error {
        VadError::Rate(_) => ": feed it 16 kHz samples, the front-end's rate",
        VadError::Run(_) => "",
        VadError::Empty(_) | VadError::Load { .. } | VadError::Contract { .. } => {
            "; put silero-vad's silero_vad_op18_ifless.onnx in the bundle with `host-trainer bundle add-vad --bundle DIR --vad FILE`, or export the bundle again"
        }
    }
}

fn hint(what: &str) -> String {
    if what.is_empty() {
        String::new()
    } else {
        format!(" ({what})")
    }
}
