//! `host-trainer`: the host's command line. A thin layer over the library: it parses
//! arguments, calls the library and adds context a user can act on to its errors.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use host_trainer::corpus::default_corpus_dir;
use host_trainer::manifest::Manifest;
use host_trainer::splits::{SplitConfig, SplitSet};
use host_trainer::tess::{ScanOptions, scan};
use models::TranscriptTemplate;

/// Train speech + text emotion models on the host and prepare them for the board.
///
/// Start with `host-trainer demo`: it runs the job on the synthetic corpus that ships
/// with the source. Point it at the real TESS with `--data DIR`.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the job end to end on the embedded synthetic corpus (today: scan and split).
    Demo(DemoArgs),
    /// Corpus work: scan a TESS folder into a manifest, split it.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Args)]
struct DemoArgs {
    /// Where every output goes.
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
    /// A corpus folder laid out like the TESS download [default: the embedded synthetic corpus].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seed of the splits.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Find every TESS WAV under DIR and write a manifest (CSV) and a count table.
    ///
    /// Speaker, word and emotion come from each file name (OAF_back_angry.wav), never
    /// from the folder. A file seen twice (the download's duplicated top folder) counts
    /// once; a file whose name does not parse is reported and skipped.
    Scan(ScanArgs),
    /// Make the random, speaker-independent and word-disjoint splits of a manifest.
    Split(SplitArgs),
}

#[derive(Args)]
struct ScanArgs {
    /// The corpus folder [default: the embedded synthetic corpus].
    dir: Option<PathBuf>,
    /// The manifest to write.
    #[arg(long, default_value = "out/manifest.csv")]
    out: PathBuf,
    /// How a word becomes the transcript the text encoder reads; must contain {word}.
    /// The reference study uses the word alone; TESS's carrier phrase is "say the word {word}".
    #[arg(long, default_value = TranscriptTemplate::WORD_ONLY)]
    transcript: TranscriptTemplate,
}

#[derive(Args)]
struct SplitArgs {
    /// The manifest written by `data scan`.
    #[arg(long, default_value = "out/manifest.csv")]
    manifest: PathBuf,
    /// The splits file to write [default: splits.json beside the manifest].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of every shuffle: the same seed gives the same splits on any machine.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Train, validation and test proportions, e.g. 70,15,15 or 0.8,0.1,0.1.
    #[arg(long, default_value = "70,15,15", value_parser = parse_ratios)]
    ratios: [f64; 3],
}

fn main() {
    if let Err(err) = run(Cli::parse()) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => demo(args),
        Command::Data(DataCommand::Scan(args)) => {
            scan_corpus(args.dir, &args.out, args.transcript).map(drop)
        }
        Command::Data(DataCommand::Split(args)) => {
            let out = args
                .out
                .unwrap_or_else(|| args.manifest.with_file_name("splits.json"));
            let config = SplitConfig {
                seed: args.seed,
                ratios: args.ratios,
            };
            split_manifest(&args.manifest, &out, config).map(drop)
        }
    }
}

fn demo(args: DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create output folder {}", args.out.display()))?;
    println!("== 1/2 scan the corpus");
    let manifest_path = args.out.join("manifest.csv");
    scan_corpus(args.data, &manifest_path, TranscriptTemplate::default())?;
    println!("\n== 2/2 split it");
    let config = SplitConfig {
        seed: args.seed,
        ..SplitConfig::default()
    };
    split_manifest(&manifest_path, &args.out.join("splits.json"), config)?;
    println!("\nEverything is in {}.", args.out.display());
    Ok(())
}

fn scan_corpus(
    dir: Option<PathBuf>,
    out: &Path,
    transcript: TranscriptTemplate,
) -> Result<Manifest> {
    let dir = match dir {
        Some(dir) => dir,
        None => default_corpus_dir().map_err(anyhow::Error::msg)?,
    };
    let options = ScanOptions {
        transcript,
        progress: std::io::stderr().is_terminal(),
    };
    let report = scan(&dir, &options)?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    let manifest = report.manifest;
    manifest
        .write_csv(out)
        .with_context(|| format!("cannot write the manifest to {}", out.display()))?;

    let mut rates: BTreeMap<u32, usize> = BTreeMap::new();
    for entry in manifest.entries() {
        *rates.entry(entry.sample_rate).or_default() += 1;
    }
    let rates: Vec<String> = rates
        .iter()
        .map(|(r, n)| format!("{n} at {r} Hz"))
        .collect();
    let durations = manifest.entries().iter().map(|e| e.duration_s);
    let shortest = durations.clone().fold(f64::INFINITY, f64::min);
    let longest = durations.fold(0.0, f64::max);
    println!(
        "{}: {} utterances ({}; {shortest:.2}–{longest:.2} s), {} duplicate files counted once, {} skipped",
        dir.display(),
        manifest.len(),
        rates.join(", "),
        report.duplicates,
        report.warnings.len(),
    );
    println!("\n{}", manifest.counts().to_markdown());
    println!("manifest: {}", out.display());
    Ok(manifest)
}

fn split_manifest(manifest_path: &Path, out: &Path, config: SplitConfig) -> Result<SplitSet> {
    let manifest = Manifest::read_csv(manifest_path).context("cannot read the manifest")?;
    let set = SplitSet::make(&manifest, config)?;
    set.check(&manifest)
        .context("internal error: the splits just made break a promise")?;
    set.write_json(out)
        .with_context(|| format!("cannot write the splits to {}", out.display()))?;
    println!(
        "splits {} (seed {}, ratios {:?}) of {} utterances:\n",
        set.id,
        config.seed,
        config.ratios,
        manifest.len()
    );
    println!("{}", set.summary_markdown(&manifest));
    println!("splits: {}", out.display());
    Ok(set)
}

/// Parses `70,15,15`, `70/15/15` or `0.7,0.15,0.15`.
fn parse_ratios(text: &str) -> Result<[f64; 3], String> {
    let parts: Vec<&str> = text.split([',', '/', ':']).map(str::trim).collect();
    let numbers: Vec<f64> = parts
        .iter()
        .map(|p| p.parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("'{text}' is not three numbers like 70,15,15"))?;
    let ratios: [f64; 3] = numbers
        .try_into()
        .map_err(|_| format!("'{text}' needs exactly three numbers: train,val,test"))?;
    if ratios.iter().any(|r| !r.is_finite() || *r < 0.0) || ratios.iter().sum::<f64>() <= 0.0 {
        return Err(format!(
            "'{text}': ratios must be non-negative and not all zero"
        ));
    }
    Ok(ratios)
}
