//! `emotion-edge`: the board's command line, a thin layer over the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use edge_runtime::inspect::inspect_file;
use models::{Frontend, FrontendConfig};

/// Recognise emotion from speech on the board.
///
/// Today it checks audio through the front-end the models are trained with; the
/// `classify` and `listen` commands come with the model bundle.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Put WAV files through the shared front-end (decode, mono, resample to 16 kHz,
    /// normalise) and describe each; a bad file is reported and the rest go on.
    Inspect {
        /// WAV files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Longest clip accepted, in seconds.
        #[arg(long, default_value_t = FrontendConfig::default().max_seconds)]
        max_seconds: f32,
    },
}

fn main() {
    let cli = Cli::parse();
    let Command::Inspect {
        files,
        json,
        max_seconds,
    } = cli.command;
    let frontend = Frontend::new(FrontendConfig {
        max_seconds,
        ..FrontendConfig::default()
    });
    let mut failures = 0;
    for file in &files {
        match inspect_file(&frontend, file) {
            Ok(found) if json => println!("{}", found.to_json(file)),
            Ok(found) => println!("{}: {found}", file.display()),
            Err(err) => {
                failures += 1;
                eprintln!("error: {err}");
            }
        }
    }
    if failures > 0 {
        eprintln!("{failures} of {} files could not be read", files.len());
        std::process::exit(1);
    }
}
