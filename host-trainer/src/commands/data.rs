//! `data scan` and `data split`: a corpus folder → manifest.csv → splits.json.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use emotion_core::TranscriptTemplate;

use crate::data::corpus::default_corpus_dir;
use crate::data::manifest::CorpusManifest;
use crate::data::splits::{SplitConfig, SplitSet};
use crate::data::tess::{ScanOptions, scan};

/// `data scan|split`.
pub fn run(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Scan(args) => scan_corpus(args.dir, &args.out, args.transcript).map(drop),
        DataCommand::Split(args) => {
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

#[derive(Subcommand)]
pub enum DataCommand {
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
pub struct ScanArgs {
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
pub struct SplitArgs {
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

pub(crate) fn scan_corpus(
    dir: Option<PathBuf>,
    out: &Path,
    transcript: TranscriptTemplate,
) -> Result<CorpusManifest> {
    let dir = match dir {
        Some(dir) => dir,
        None => default_corpus_dir().map_err(anyhow::Error::msg)?,
    };
    let options = ScanOptions {
        transcript,
        progress: super::progress_bars(),
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

pub(crate) fn split_manifest(
    manifest_path: &Path,
    out: &Path,
    config: SplitConfig,
) -> Result<SplitSet> {
    let manifest = CorpusManifest::read_csv(manifest_path).context("cannot read the manifest")?;
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
