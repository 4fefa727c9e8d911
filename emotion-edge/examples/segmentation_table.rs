//! The segmentation table: each segmenter on real word and phrase streams, clean and in
//! white, pink, babble and recorded noise at 20, 10, 5 and 0 dB SNR. Writes Markdown
//! (the command, the definitions, the streams, the table); prints a line per cell.
//!
//!   cargo run --release -p emotion-edge --example segmentation_table -- \
//!       --out docs/results/segmentation-DATE.md [--segmenters energy] [--seed 22] [--streams 6]
//!
//! `scripts/segmentation-table.sh` fetches the real-speech set and runs this. The
//! library part is `emotion_edge::segmentation_bench`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use emotion_core::real_speech::RealSpeech;
use emotion_edge::segmentation_bench::{
    self as bench, Cell, NoiseBank, NoiseKind, SEGMENTERS, SNRS_DB, StreamOptions, score, streams,
};

#[derive(Parser)]
#[command(about = "Segmenters measured on real speech in noise (Markdown table)")]
struct Args {
    /// Where the Markdown goes.
    #[arg(long)]
    out: PathBuf,
    /// Segmenters to run, by name (comma list).
    #[arg(long, value_delimiter = ',', default_value = "energy")]
    segmenters: Vec<String>,
    /// Seed of every random choice (clip order, gaps, noises, chunk sizes).
    #[arg(long, default_value_t = 22)]
    seed: u64,
    /// Number of streams (stream i from voice group i mod 3).
    #[arg(long, default_value_t = 6)]
    streams: usize,
    /// Length each stream is filled to, seconds.
    #[arg(long, default_value_t = 90.0)]
    seconds: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.streams == 0 || !(5.0..=600.0).contains(&args.seconds) {
        anyhow::bail!("--streams must be at least 1 and --seconds 5 to 600");
    }
    let chosen: Vec<&bench::NamedSegmenter> = args
        .segmenters
        .iter()
        .map(|name| {
            SEGMENTERS.iter().find(|s| s.name == name).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown segmenter `{name}`; known: {}",
                    SEGMENTERS
                        .iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    let set = RealSpeech::open(&RealSpeech::default_root())?;
    let options = StreamOptions {
        seconds: args.seconds,
        ..StreamOptions::default()
    };
    eprintln!("building {} streams of ~{} s", args.streams, args.seconds);
    let streams = streams::build_streams(&set, args.streams, args.seed, &options)?;
    for s in &streams {
        eprintln!(
            "  {}: {} clips, {:.1} s",
            s.name,
            s.truth.len(),
            s.seconds()
        );
    }
    let bank = NoiseBank::load(&set, &streams::target_speakers(&set))?;
    let mut noises: HashMap<NoiseKind, Vec<Vec<f32>>> = HashMap::new();
    for kind in NoiseKind::ALL {
        noises.insert(
            kind,
            streams
                .iter()
                .enumerate()
                .map(|(i, s)| bank.noise(kind, s.samples.len(), args.seed, i as u64))
                .collect(),
        );
    }

    let conditions: Vec<(Option<NoiseKind>, f64)> = std::iter::once((None, f64::INFINITY))
        .chain(NoiseKind::ALL.into_iter().flat_map(|k| {
            SNRS_DB
                .into_iter()
                .filter(|s| s.is_finite())
                .map(move |s| (Some(k), s))
        }))
        .collect();
    let total = conditions.len() * chosen.len();
    let mut rows: Vec<(&str, Option<NoiseKind>, f64, Cell)> = Vec::new();
    for named in &chosen {
        for &(kind, snr) in &conditions {
            let empty = Vec::new();
            let noise_set = kind.map(|k| &noises[&k]).unwrap_or(&empty);
            let cell = bench::evaluate(named, &streams, noise_set, snr, args.seed)
                .with_context(|| format!("{} {}", named.name, condition(kind, snr)))?;
            rows.push((named.name, kind, snr, cell));
            let cell = &rows.last().expect("pushed").3;
            eprintln!(
                "[{}/{total}] {} {}: F1 {:.3} (P {:.3}, R {:.3}; {} truths, {} detections, {} splits, {} merges), cost {:.1e}",
                rows.len(),
                named.name,
                condition(kind, snr),
                cell.score.f1(),
                cell.score.precision(),
                cell.score.recall(),
                cell.score.truths,
                cell.score.detections,
                cell.score.splits,
                cell.score.merges,
                cell.cost()
            );
        }
    }
    let markdown = render(
        &args,
        &chosen,
        &set,
        &streams,
        &bank,
        &rows,
        started.elapsed().as_secs_f64(),
    );
    emotion_core::fs::write_atomically(&args.out, markdown.as_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "wrote {} in {:.1} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn condition(kind: Option<NoiseKind>, snr: f64) -> String {
    match kind {
        None => "clean (SNR inf)".into(),
        Some(k) => format!("{} {snr} dB", k.name()),
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:+.0}"))
}

fn render(
    args: &Args,
    chosen: &[&bench::NamedSegmenter],
    set: &RealSpeech,
    streams: &[bench::Stream],
    bank: &NoiseBank,
    rows: &[(&str, Option<NoiseKind>, f64, Cell)],
    elapsed_s: f64,
) -> String {
    let mut md = String::new();
    let command = format!(
        "cargo run --release -p emotion-edge --example segmentation_table -- --out {} --segmenters {} --seed {} --streams {} --seconds {}",
        args.out.display(),
        args.segmenters.join(","),
        args.seed,
        args.streams,
        args.seconds
    );
    let _ = writeln!(md, "# Segmentation benchmark\n\nMade by:\n\n```sh");
    match std::env::var("SEGMENTATION_TABLE_COMMAND") {
        Ok(script) if !script.is_empty() => {
            let _ = writeln!(md, "{script}\n```\n\nwhich ran `{command}`.");
        }
        _ => {
            let _ = writeln!(md, "{command}\n```");
        }
    }
    let cpu = emotion_core::cpu::detect();
    let _ = writeln!(
        md,
        "\n{}CPU: {} ({}); {:.0} s for the whole run. Real-speech set: {} ({} clips).\n",
        std::env::var("SEGMENTATION_TABLE_REVISION")
            .map(|r| format!("Revision {r}. "))
            .unwrap_or_default(),
        cpu.model,
        cpu.arch,
        elapsed_s,
        set.root.display(),
        set.clips.len()
    );
    let _ = writeln!(md, "## Definitions\n");
    let bullets = [
        format!(
            "**Streams**: the set's `word` and `phrase` clips in three voice groups (asterisk words, asterisk phrases: one voice at 8 kHz; other voices: alsa 48 kHz, codec2 8/16 kHz, pocketsphinx 16 kHz), stream i from group i mod 3 in a seeded order; each clip decoded and resampled to 16 kHz by emotion-core's front-end (not normalised), cut to its speech extent ± {} ms, faded over {} ms, scaled so its speech part has an RMS of {} dBFS; {} s of silence first, then the clips with a seeded uniform {}–{} s between one clip's speech end and the next one's speech start, {} s after the last; clips are added while the stream is under {} s.",
            streams::MARGIN_MS,
            streams::FADE_MS,
            streams::SPEECH_LEVEL_DBFS,
            StreamOptions::default().lead_s,
            StreamOptions::default().gap_s.0,
            StreamOptions::default().gap_s.1,
            StreamOptions::default().tail_s,
            args.seconds
        ),
        format!(
            "**Truth** (one utterance per clip, pauses inside it included): found on the clean clip with {} ms frames: from the first to the last frame whose RMS is within {} dB of the clip's loudest frame and at least {} dB above its 10th-percentile frame.",
            streams::EXTENT_FRAME_MS,
            streams::EXTENT_BELOW_PEAK_DB,
            streams::EXTENT_ABOVE_FLOOR_DB
        ),
        "**SNR**: speech power / noise power in dB; speech power = mean square of the clean stream over the truth spans (speech only, not the silences between clips), noise power = mean square of the noise over the whole stream; the noise is scaled to the target and added. SNR inf = no noise.".to_owned(),
        format!(
            "**Noises**: white = Gaussian; pink = Voss-McCartney (16 rows + white, about -3 dB/octave); babble = the sum of {} other talkers at equal RMS, each looped from a seeded offset ({}); alsa-noise = `{}` looped with a 50 ms crossfade. Every noise is seeded per stream.",
            bank.talkers.len(),
            bank.talkers.iter().map(|(p, _)| format!("`{p}`")).collect::<Vec<_>>().join(", "),
            bank.alsa_noise.0
        ),
        format!(
            "**Detections**: each segmenter is fed the mixed 16 kHz stream in seeded pieces of {}–{} ms (as `listen` feeds its segmenter) and reports the SPEECH part of each utterance, without the pre- and post-roll it adds for the classifier. energy: `[start_sample + pre_roll, speech_end_sample)` of each `Utterance`, i.e. first voiced frame to the end of the last voiced frame.",
            bench::CHUNK_MS.0, bench::CHUNK_MS.1
        ),
        format!(
            "**Scores**: a detection hits a truth when IoU ≥ {}; one-to-one matching, pairs taken by falling IoU. precision = hits / detections, recall = hits / truths, F1 their harmonic mean (never NaN: no detections and no truths score 1; F1 is 0 when P + R = 0). A split is a truth with ≥ 2 detections each at least half inside it; a merge a detection with ≥ 2 truths each at least half inside it. Start / end Δ: detected minus true boundary of the hits, ms, median (and median of the absolute value); negative = early. Cost: the segmenter's own CPU seconds (its push and finish calls, this thread's clock) per second of audio; scores add up over all streams.",
            score::HIT_IOU
        ),
    ];
    for b in bullets {
        let _ = writeln!(md, "- {b}");
    }
    let _ = writeln!(md, "\nSegmenters:\n");
    for s in chosen {
        let _ = writeln!(md, "- `{}`: {}", s.name, s.what);
    }
    let _ = writeln!(
        md,
        "\n## Streams\n\n| stream | clips | seconds | speech s | speakers |\n|---|---:|---:|---:|---|"
    );
    for s in streams {
        let speech: u64 = s.truth.iter().map(|t| t.len()).sum();
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.1} | {} |",
            s.name,
            s.truth.len(),
            s.seconds(),
            speech as f64 / f64::from(bench::BENCH_RATE),
            s.speakers.join(", ")
        );
    }
    let _ = writeln!(
        md,
        "\n## Results\n\n| segmenter | noise | SNR dB | truths | detections | precision | recall | F1 | splits | merges | start Δ ms | end Δ ms | CPU s / audio s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (name, kind, snr, cell) in rows {
        let r = &cell.score;
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {:.3} | {:.3} | **{:.3}** | {} | {} | {} ({}) | {} ({}) | {:.1e} |",
            kind.map_or("none", NoiseKind::name),
            if snr.is_finite() {
                format!("{snr}")
            } else {
                "∞".into()
            },
            r.truths,
            r.detections,
            r.precision(),
            r.recall(),
            r.f1(),
            r.splits,
            r.merges,
            ms(r.median_start_ms()),
            ms(r.median_abs_start_ms()).trim_start_matches('+'),
            ms(r.median_end_ms()),
            ms(r.median_abs_end_ms()).trim_start_matches('+'),
            cell.cost()
        );
    }
    board_costs(&mut md, rows);
    md
}

/// Per-core fp32 peaks (GFLOP/s) the performance page scales by (docs/performance.md):
/// this machine's core, then the boards'.
const HOST_PEAK: f64 = 83.0;
const BOARD_PEAKS: [(&str, f64); 3] = [
    ("Pi Zero 2 W (A53)", 4.0),
    ("Pi 4 (A72)", 29.0),
    ("Pi 5 (A76)", 38.0),
];

/// Each segmenter's cost on the boards, estimated as the encoders' is: the median cost
/// here scaled by the ratio of per-core fp32 peaks (the Silero graph is fp32). Not
/// measured on a board.
fn board_costs(md: &mut String, rows: &[(&str, Option<NoiseKind>, f64, Cell)]) {
    let _ = writeln!(
        md,
        "\n## Estimated on the boards (not measured)\n\nThe median CPU s per audio s above, scaled by per-core fp32 peaks as docs/performance.md scales the encoders (this core {HOST_PEAK} GFLOP/s; {}), on one core. 0.01 is 1 % of one core.\n\n| segmenter | here |{}|\n|---|---:|{}|",
        BOARD_PEAKS.map(|(b, p)| format!("{b} {p}")).join(", "),
        BOARD_PEAKS.map(|(b, _)| format!(" {b} ")).join("|"),
        BOARD_PEAKS.map(|_| "---:").join("|"),
    );
    let mut names: Vec<&str> = rows.iter().map(|r| r.0).collect();
    names.dedup();
    for name in names {
        let mut costs: Vec<f64> = rows
            .iter()
            .filter(|r| r.0 == name)
            .map(|r| r.3.cost())
            .collect();
        costs.sort_by(f64::total_cmp);
        let median = costs[costs.len() / 2];
        let boards: Vec<String> = BOARD_PEAKS
            .iter()
            .map(|(_, peak)| format!(" {:.1e} ", median * HOST_PEAK / peak))
            .collect();
        let _ = writeln!(md, "| {name} | {median:.1e} |{}|", boards.join("|"));
    }
}
