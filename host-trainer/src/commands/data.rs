//! `data scan` and `data split`: a corpus folder (or CSV list) → manifest.csv →
//! splits.json.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use emotion_core::TranscriptTemplate;

use crate::data::corpus::default_corpus_dir;
use crate::data::label_map::LabelMap;
use crate::data::manifest::{CorpusEntry, CorpusManifest};
use crate::data::scan::{Corpus, ScanOptions, ScanReport, ScanWarning, scan};
use crate::data::splits::{SplitConfig, SplitSet};

/// `data scan|split`.
pub fn run(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Scan(args) => {
            let label_map = match &args.label_map {
                Some(path) => LabelMap::read(path)?,
                None => LabelMap::default(),
            };
            let options = ScanOptions {
                transcript: args.transcript,
                corpus: args.corpus,
                label_map,
                progress: false,
            };
            scan_corpus(&args.dirs, &args.out, options).map(drop)
        }
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
    /// Find every recording of a corpus and write a manifest (CSV) and a count table.
    ///
    /// Reads TESS, RAVDESS, CREMA-D, SAVEE and EmoDB as their downloads lay them out
    /// (the corpus is detected from the file names, or given with --corpus), and any
    /// other corpus listed in a CSV file (path,label,speaker[,transcript]; pass the
    /// file with --corpus csv). Speaker, label and sentence come from each file's name
    /// (SAVEE's speaker from its folder), never from a folder's spelling. A file seen
    /// twice counts once; a file that cannot be used (a name that does not parse, video,
    /// song, not WAV, an unreadable header) is named in a warning and skipped; labels
    /// without an emotion (calm, boredom) are left out unless --label-map maps them.
    Scan(ScanArgs),
    /// Make the random, speaker-independent and word-disjoint splits of a manifest.
    ///
    /// Each speaker is held out in turn with at most four speakers, else the speakers
    /// are split into five folds (per corpus); with several corpora also within-A (A
    /// alone, unseen speakers) and cross-A-to-B (train on A, test on B). All stratified
    /// by corpus and emotion, seeded, byte-identical on any machine.
    Split(SplitArgs),
}

#[derive(Args)]
pub struct ScanArgs {
    /// The corpus folder, or the CSV list for --corpus csv; several folders (one per
    /// corpus) make one manifest for a multi-corpus run [default: the embedded synthetic
    /// corpus].
    #[arg(value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// The corpus: tess, ravdess, crema-d, savee, emodb or csv [default: detected from
    /// the file names; a file is read as a CSV list]. Only with one DIR.
    #[arg(long, value_name = "NAME")]
    corpus: Option<Corpus>,
    /// Which corpus labels become which emotions: lines `label = emotion` or
    /// `label = drop` (`#` comments). Without it calm and boredom are left out, surprise
    /// is pleasant surprise, the other labels are the emotions of their names.
    #[arg(long, value_name = "FILE")]
    label_map: Option<PathBuf>,
    /// The manifest to write.
    #[arg(long, default_value = "out/manifest.csv")]
    out: PathBuf,
    /// How a word (or a corpus's sentence) becomes the transcript the text encoder
    /// reads; must contain {word}.
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
    dirs: &[PathBuf],
    out: &Path,
    options: ScanOptions,
) -> Result<CorpusManifest> {
    let dirs = if dirs.is_empty() {
        vec![default_corpus_dir().map_err(anyhow::Error::msg)?]
    } else {
        dirs.to_vec()
    };
    if dirs.len() > 1 && options.corpus.is_some() {
        bail!(
            "--corpus names the corpus of one folder; with {} folders each one's corpus is detected from its file names",
            dirs.len()
        );
    }
    let options = ScanOptions {
        progress: super::progress_bars(),
        ..options
    };
    let mut entries: Vec<CorpusEntry> = Vec::new();
    let mut corpora: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in &dirs {
        let report = scan(dir, &options)?;
        if let Some(first) = corpora.insert(report.corpus.name().to_string(), dir.clone()) {
            bail!(
                "{} and {} both hold {}: scan each corpus once (ids and speakers would collide)",
                first.display(),
                dir.display(),
                report.corpus
            );
        }
        print_warnings(&report.warnings);
        print_summary(dir, &report);
        entries.extend(report.manifest.entries().iter().cloned());
    }
    let manifest = CorpusManifest::new(entries);
    if let Some(pair) = manifest.entries().windows(2).find(|w| w[0].id == w[1].id) {
        bail!(
            "utterance id {} comes from two folders; scan each corpus once",
            pair[0].id
        );
    }
    manifest
        .write_csv(out)
        .with_context(|| format!("cannot write the manifest to {}", out.display()))?;
    let counts = manifest.counts();
    if counts.speakers.len() <= MAX_SPEAKER_COLUMNS {
        println!("\n{}", counts.to_markdown());
    } else {
        println!(
            "\n{} speakers; utterances per emotion:\n\n{}",
            counts.speakers.len(),
            manifest.counts_by_corpus().to_markdown()
        );
    }
    println!("manifest: {}", out.display());
    Ok(manifest)
}

/// One line per scanned folder: what was kept, skipped and left out, at which rates.
fn print_summary(dir: &Path, report: &ScanReport) {
    let manifest = &report.manifest;
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
    let skipped = report
        .warnings
        .iter()
        .filter(|w| {
            !matches!(
                w,
                ScanWarning::Duplicate { .. }
                    | ScanWarning::LabelDropped { .. }
                    | ScanWarning::Metadata { .. }
            )
        })
        .count();
    let left_out: usize = report
        .warnings
        .iter()
        .map(|w| match w {
            ScanWarning::LabelDropped { count, .. } => *count,
            _ => 0,
        })
        .sum();
    println!(
        "{} ({}): {} utterances ({}; {shortest:.2}–{longest:.2} s), {} duplicate files counted once, {skipped} skipped, {left_out} left out by the label map",
        dir.display(),
        report.corpus,
        manifest.len(),
        rates.join(", "),
        report.duplicates,
    );
    for note in &report.notes {
        println!("{note}");
    }
}

/// More speakers than this and the count table shows one column per corpus instead.
const MAX_SPEAKER_COLUMNS: usize = 12;

/// Warnings of one kind beyond this many are summed up after the first few.
const WARNINGS_SHOWN_PER_KIND: usize = 5;

/// Every warning on stderr; a kind with many (the video files of RAVDESS, TESS's
/// duplicated folder) shows its first few and a count of the rest.
fn print_warnings(warnings: &[ScanWarning]) {
    let mut per_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for warning in warnings {
        *per_kind.entry(warning.kind()).or_default() += 1;
    }
    let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
    for warning in warnings {
        let kind = warning.kind();
        let seen = shown.entry(kind).or_default();
        *seen += 1;
        let total = per_kind[kind];
        if total <= WARNINGS_SHOWN_PER_KIND || *seen <= 3 {
            eprintln!("warning: {warning}");
        } else if *seen == 4 {
            eprintln!(
                "warning: … and {} more {kind} warnings like these",
                total - 3
            );
        }
    }
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
