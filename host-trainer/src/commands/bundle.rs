//! `bundle`: work on a bundle that is already exported. `bundle add-vad` puts the Silero
//! voice-activity detector into one exported without it (format 3, or `--no-vad`),
//! without retraining or re-exporting: the models, metrics and report stay as they are.
//! `bundle sign` signs its manifest with a `keygen` (or minisign) key.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};
use emotion_core::signature::SIGNATURE_FILE;

use crate::export::signing::{SigningKey, sign_bundle};
use crate::export::vad::{COMMITTED_VAD, VadGraph, add_vad, default_vad_file};

/// `bundle …`.
#[derive(Subcommand)]
pub enum BundleCommand {
    /// Put the Silero voice-activity detector into an exported bundle, replacing the one it
    /// has: every file is read back through its checksum and kept as it is, the graph
    /// (checked to load at 16 kHz) is added as vad.silero.onnx, and the manifest is
    /// rewritten in the current format. The old bundle is replaced only once the new one
    /// opens and verifies. Files the manifest does not list (a variant-choice.json) are
    /// left out and named.
    AddVad(AddVadArgs),
    /// Sign the bundle's manifest (which lists every file's SHA-256) with a secret key
    /// from `host-trainer keygen` or `minisign -G`: manifest.bin.minisig, checked
    /// against the key's public half before this returns. Boards given that public key
    /// run only bundles it signed.
    Sign(SignArgs),
}

/// `bundle sign`.
#[derive(Args)]
pub struct SignArgs {
    /// The bundle directory.
    #[arg(long)]
    bundle: PathBuf,
    #[command(flatten)]
    key: SigningKeyArgs,
}

/// The secret key to sign with (`bundle sign`, `export --sign`).
#[derive(Args)]
pub struct SigningKeyArgs {
    /// The secret key file (NAME.key from `host-trainer keygen`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The encrypted key's password: the first line of this file [default: asked on the
    /// terminal].
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

impl SigningKeyArgs {
    /// The key, opened.
    pub fn open(&self) -> Result<SigningKey> {
        SigningKey::read(&self.key, self.password_file.as_deref())
    }
}

/// `bundle add-vad`.
#[derive(Args)]
pub struct AddVadArgs {
    /// The bundle directory (rewritten in place).
    #[arg(long)]
    bundle: PathBuf,
    /// The Silero VAD graph [default: the committed data/vad/silero_vad_op18_ifless.onnx].
    #[arg(long, value_name = "FILE")]
    vad: Option<PathBuf>,
}

/// Runs a `bundle` command.
pub fn run(command: BundleCommand) -> Result<()> {
    match command {
        BundleCommand::AddVad(args) => add(args),
        BundleCommand::Sign(args) => sign(&args.bundle, &args.key.open()?),
    }
}

/// Signs the bundle in `dir` and says with which key.
pub fn sign(dir: &Path, key: &SigningKey) -> Result<()> {
    let id = sign_bundle(dir, key)
        .with_context(|| format!("cannot sign the bundle {}", dir.display()))?;
    println!(
        "{}: signed with key {id} ({}); boards that trust {} run it",
        dir.join(SIGNATURE_FILE).display(),
        key.path.display(),
        key.path.with_extension("pub").display()
    );
    Ok(())
}

fn add(args: AddVadArgs) -> Result<()> {
    let path = args.vad.or_else(default_vad_file).ok_or_else(|| {
        anyhow!(
            "no --vad given and {COMMITTED_VAD} is neither in the source tree this program was built from nor under the current directory: pass --vad FILE (silero-vad's silero_vad_op18_ifless.onnx)"
        )
    })?;
    let graph = VadGraph::read_checked(&path)?;
    let outcome = add_vad(&args.bundle, &graph).with_context(|| {
        format!(
            "cannot add the VAD to {} (left as it was)",
            args.bundle.display()
        )
    })?;
    println!("{}", graph.source.describe());
    if !outcome.changed {
        println!(
            "{}: already has this voice-activity detector (format {}); nothing to do",
            args.bundle.display(),
            outcome.manifest.format
        );
        return Ok(());
    }
    println!(
        "{}: added; manifest format {} -> {}, {} files listed, every one verified; models, metrics and report unchanged",
        args.bundle.display(),
        outcome.previous_format,
        outcome.manifest.format,
        outcome.manifest.files.len()
    );
    if outcome.left_out.iter().any(|f| f == SIGNATURE_FILE) {
        println!(
            "{SIGNATURE_FILE} signed the old manifest and is left out: sign the bundle again (host-trainer bundle sign --bundle {} --key KEY)",
            args.bundle.display()
        );
    }
    if !outcome.left_out.is_empty() {
        println!(
            "left out (not listed in the manifest): {}; a variant-choice.json is of the old manifest: run `emotion-edge bench --choose` again",
            outcome.left_out.join(", ")
        );
    }
    Ok(())
}
