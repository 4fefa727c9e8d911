//! `bundle`: work on a bundle that is already exported. `bundle add-vad` puts the Silero
//! voice-activity detector into one exported without it (format 3, or `--no-vad`),
//! without retraining or re-exporting: the models, metrics and report stay as they are.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};

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
    }
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
    if !outcome.left_out.is_empty() {
        println!(
            "left out (not listed in the manifest): {}; a variant-choice.json is of the old manifest: run `emotion-edge bench --choose` again",
            outcome.left_out.join(", ")
        );
    }
    Ok(())
}
