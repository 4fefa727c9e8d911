//! Real recorded speech through the board's program, with the committed demo bundle: the
//! set `scripts/fetch-real-speech.sh` fetches (read through `emotion_core::real_speech`;
//! skipped when it is absent, a failure under CI).
//!
//! - `classify`: every clip gives one result with seven finite probabilities that sum to
//!   1, or, when the front-end refuses it, a clear error naming the file and why;
//! - the 8, 16 and 48 kHz clips meet the one resampler contract: `ceil(n · 16000 / rate)`
//!   samples at 16 kHz, and a clip classified at its own rate answers exactly as the same
//!   audio resampled by the front-end and written as a 16 kHz file;
//! - `listen`: the English word and phrase clips of each rate, joined with silence into one
//!   recording, are each heard (every clip overlaps an emitted utterance, no utterance
//!   lies in the silence) and the summary's counts add up.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{demo_bundle, output_text};
use emotion_core::bundle::Bundle;
use emotion_core::frontend::resampled_len;
use emotion_core::real_speech::{Clip, ClipKind, RealSpeech};
use emotion_core::{Emotion, Frontend, FrontendConfig};
use serde_json::Value;

/// The rate the bundle's front-end works at.
const TARGET_RATE: u32 = 16_000;
/// Silence before the first clip and after each, in a joined recording.
const GAP_SECONDS: f64 = 1.5;
/// `classify` runs at once (the machines that run the tests have 2 cores or more).
const BATCHES: usize = 2;

fn real_speech(what: &str) -> Option<RealSpeech> {
    RealSpeech::for_tests(&format!("real_clips: {what}"))
}

fn emotion_edge(args: &[&str], files: &[PathBuf]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emotion-edge"));
    command
        .args(args)
        .arg("--bundle")
        .arg(demo_bundle())
        .args(files)
        .env_remove("EMOTION_EDGE_BUNDLE");
    command
}

/// Runs the commands at once and waits for them all.
fn run_all(commands: Vec<Command>) -> Vec<Output> {
    let children: Vec<_> = commands
        .into_iter()
        .map(|mut c| {
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("emotion-edge starts")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("emotion-edge exits"))
        .collect()
}

fn no_panic(stderr: &str, what: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{what} panicked:\n{stderr}"
    );
}

/// A clip's frames, from its header.
fn frames(clip: &Clip) -> u32 {
    hound::WavReader::open(&clip.path)
        .unwrap_or_else(|e| panic!("{}: {e}", clip.path.display()))
        .duration()
}

/// A clip's 16-bit samples (every clip of the set is 16-bit mono).
fn samples(clip: &Clip) -> Vec<i16> {
    let mut reader = hound::WavReader::open(&clip.path)
        .unwrap_or_else(|e| panic!("{}: {e}", clip.path.display()));
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.bits_per_sample, spec.sample_rate),
        (1, 16, clip.rate_hz),
        "{}: the index says 16-bit mono at {} Hz",
        clip.path.display(),
        clip.rate_hz
    );
    reader
        .samples::<i16>()
        .map(|s| s.unwrap_or_else(|e| panic!("{}: {e}", clip.path.display())))
        .collect()
}

/// Checks one classification as `classify` and `listen` print it: seven probabilities,
/// each a finite number in [0, 1] (NaN would print as `null`), summing to 1; finite
/// logits; the emotion is the most probable one and the confidence its probability.
fn check_classification(value: &Value, what: &str) {
    let probabilities = value["probabilities"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}: no probabilities in {value}"));
    assert_eq!(probabilities.len(), Emotion::ALL.len(), "{what}: {value}");
    let mut sum = 0.0;
    let mut best: Option<(&str, f64)> = None;
    for emotion in Emotion::ALL {
        let p = probabilities
            .get(emotion.name())
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("{what}: {} is not a number in {value}", emotion.name()));
        assert!(
            p.is_finite() && (0.0..=1.0).contains(&p),
            "{what}: {} {p}",
            emotion.name()
        );
        sum += p;
        if best.is_none_or(|(_, b)| p > b) {
            best = Some((emotion.name(), p));
        }
    }
    assert!(
        (sum - 1.0).abs() <= 1e-4,
        "{what}: probabilities sum to {sum}"
    );
    let logits = value["logits"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no logits in {value}"));
    assert_eq!(logits.len(), Emotion::ALL.len(), "{what}: {value}");
    assert!(
        logits
            .iter()
            .all(|l| l.as_f64().is_some_and(f64::is_finite)),
        "{what}: logits {logits:?}"
    );
    let (name, p) = best.expect("seven probabilities");
    assert_eq!(value["emotion"], name, "{what}: {value}");
    let confidence = value["confidence"].as_f64().unwrap_or(f64::NAN);
    assert!((confidence - p).abs() <= 1e-6, "{what}: {value}");
}

/// The JSON lines of a command's stdout.
fn json_lines(stdout: &str, what: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: {e}: {l}")))
        .collect()
}

#[test]
fn every_real_clip_is_classified_or_refused_with_the_reason() {
    let Some(set) = real_speech("classify") else {
        return;
    };
    let bundle = Bundle::open(&demo_bundle()).expect("the demo bundle opens");
    let limit = f64::from(bundle.manifest().frontend.max_seconds);
    // The front-end refuses clips longer than the bundle's limit (a file is classified
    // whole; `listen` cuts long speech instead): those must be refused, and only those.
    let (too_long, accepted): (Vec<&Clip>, Vec<&Clip>) = set
        .clips
        .iter()
        .partition(|c| f64::from(frames(c)) / f64::from(c.rate_hz) > limit);
    let batch_len = accepted.len().div_ceil(BATCHES).max(1);
    let batches: Vec<Vec<PathBuf>> = accepted
        .chunks(batch_len)
        .map(|b| b.iter().map(|c| c.path.clone()).collect())
        .collect();
    let refused: Vec<PathBuf> = too_long.iter().map(|c| c.path.clone()).collect();
    let mut commands: Vec<Command> = batches
        .iter()
        .map(|b| emotion_edge(&["classify", "--json"], b))
        .collect();
    if !refused.is_empty() {
        commands.push(emotion_edge(&["classify", "--json"], &refused));
    }
    let outputs = run_all(commands);

    let mut classified = 0;
    for (batch, out) in batches.iter().zip(&outputs) {
        let (stdout, stderr) = output_text(out);
        no_panic(&stderr, "classify");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert!(
            out.status.success() && errors.is_empty(),
            "classify refused clips the front-end should take ({:?}):\n{}",
            out.status,
            errors.join("\n")
        );
        let lines = json_lines(&stdout, "classify");
        assert_eq!(lines.len(), batch.len(), "one result per file:\n{stdout}");
        for (file, line) in batch.iter().zip(&lines) {
            let name = file.display().to_string();
            assert_eq!(line["file"], name.as_str(), "results in the files' order");
            check_classification(line, &name);
            let seconds = line["audio_seconds"].as_f64().unwrap_or(f64::NAN);
            assert!(seconds.is_finite() && seconds > 0.0, "{name}: {line}");
        }
        classified += lines.len();
    }
    if let Some(out) = outputs.get(batches.len()) {
        let (stdout, stderr) = output_text(out);
        no_panic(&stderr, "classify");
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stdout.is_empty(), "no result for a refused file: {stdout}");
        for clip in &too_long {
            let name = clip.path.display().to_string();
            let line = stderr
                .lines()
                .find(|l| l.starts_with(&format!("error: {name}")))
                .unwrap_or_else(|| panic!("{name} refused without an error line:\n{stderr}"));
            assert!(
                line.contains("longer than the limit") && line.contains("max_seconds"),
                "{line}"
            );
            assert_eq!(
                line.matches(&name).count(),
                1,
                "the file named once: {line}"
            );
        }
        let count = format!(
            "{} of {} files could not be classified",
            too_long.len(),
            too_long.len()
        );
        assert!(stderr.contains(&count), "{stderr}");
    }
    assert_eq!(classified + too_long.len(), set.clips.len());
    let refused: Vec<String> = too_long
        .iter()
        .map(|c| format!("{} ({:.1} s)", c.path.display(), c.duration_s))
        .collect();
    println!(
        "real_clips: {classified} of {} clips classified; refused as longer than {limit} s: {}",
        set.clips.len(),
        if refused.is_empty() {
            "none".to_string()
        } else {
            refused.join(", ")
        }
    );
}

#[test]
fn eight_sixteen_and_forty_eight_khz_clips_meet_one_resampler_contract() {
    let Some(set) = real_speech("resampler contract") else {
        return;
    };
    // Every word and phrase clip: `inspect` says how many 16 kHz samples the front-end
    // made of it.
    let clips: Vec<&Clip> = set
        .clips
        .iter()
        .filter(|c| matches!(c.kind, ClipKind::Word | ClipKind::Phrase))
        .collect();
    let rates: BTreeSet<u32> = clips.iter().map(|c| c.rate_hz).collect();
    assert!(
        [8_000, 16_000, 48_000].iter().all(|r| rates.contains(r)),
        "the set has word or phrase clips at 8, 16 and 48 kHz, not only {rates:?}"
    );
    let files: Vec<PathBuf> = clips.iter().map(|c| c.path.clone()).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
        .args(["inspect", "--json"])
        .args(&files)
        .output()
        .expect("emotion-edge runs");
    let (stdout, stderr) = output_text(&out);
    no_panic(&stderr, "inspect");
    assert!(out.status.success(), "{stderr}");
    let lines = json_lines(&stdout, "inspect");
    assert_eq!(lines.len(), clips.len(), "one line per file:\n{stdout}");
    for (clip, line) in clips.iter().zip(&lines) {
        let name = clip.path.display().to_string();
        assert_eq!(line["file"], name.as_str());
        let n = u64::from(frames(clip));
        let rate = u64::from(clip.rate_hz);
        // ceil(n · 16000 / rate), in integers.
        let expected = (n * u64::from(TARGET_RATE)).div_ceil(rate);
        assert_eq!(
            expected,
            resampled_len(n as usize, clip.rate_hz, TARGET_RATE) as u64
        );
        if clip.rate_hz == TARGET_RATE {
            assert_eq!(expected, n);
        }
        assert_eq!(line["sample_rate"], rate, "{name}");
        assert_eq!(line["output_rate"], TARGET_RATE, "{name}");
        assert_eq!(
            line["output_samples"], expected,
            "{name}: {n} frames at {rate} Hz"
        );
    }

    // A clip classified at its own rate answers exactly as the same audio resampled by the
    // front-end (no trim, no normalisation: the pipeline does those after resampling) and
    // written as a 16 kHz float WAV, which the front-end passes through untouched.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let raw = Frontend::new(FrontendConfig {
        target_rate: TARGET_RATE,
        normalize: false,
        trim: None,
        ..FrontendConfig::default()
    });
    let mut pairs = Vec::new();
    for rate in [8_000, 48_000] {
        let clip = clips
            .iter()
            .find(|c| c.rate_hz == rate)
            .expect("a clip at this rate");
        let resampled = raw
            .process_file(&clip.path)
            .unwrap_or_else(|e| panic!("{e}"));
        let copy = dir.path().join(format!("resampled-from-{rate}.wav"));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: TARGET_RATE,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut writer = hound::WavWriter::create(&copy, spec).expect("a WAV writer");
        for x in &resampled {
            writer.write_sample(*x).expect("a sample written");
        }
        writer.finalize().expect("the WAV finished");
        pairs.push((clip.path.clone(), copy));
    }
    let files: Vec<PathBuf> = pairs
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let out = emotion_edge(&["classify", "--json"], &files)
        .output()
        .expect("emotion-edge runs");
    let (stdout, stderr) = output_text(&out);
    no_panic(&stderr, "classify");
    assert!(out.status.success(), "{stderr}");
    let lines = json_lines(&stdout, "classify");
    assert_eq!(lines.len(), files.len(), "{stdout}");
    for (pair, results) in pairs.iter().zip(lines.chunks(2)) {
        let (native, copy) = (&results[0], &results[1]);
        check_classification(native, &pair.0.display().to_string());
        for field in [
            "probabilities",
            "logits",
            "emotion",
            "keyword",
            "spotted",
            "model",
            "audio_seconds",
        ] {
            assert_eq!(
                native[field],
                copy[field],
                "{field}: {} and its 16 kHz copy differ",
                pair.0.display()
            );
        }
    }
}

/// One recording made of clips with silence between them.
struct Joined {
    rate: u32,
    path: PathBuf,
    /// Each clip's place in it, seconds, and the clip.
    clips: Vec<(f64, f64, Clip)>,
    seconds: f64,
}

/// `clips` (all at `rate`) one after another, [`GAP_SECONDS`] of silence before the first
/// and after each, as a 16-bit WAV at that rate.
fn join(dir: &Path, rate: u32, clips: &[&Clip]) -> Joined {
    let gap = vec![0i16; (GAP_SECONDS * f64::from(rate)).round() as usize];
    let path = dir.join(format!("joined-{rate}.wav"));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).expect("a WAV writer");
    let mut at = 0usize;
    let mut placed = Vec::new();
    let mut write = |samples: &[i16], at: &mut usize| {
        for s in samples {
            writer.write_sample(*s).expect("a sample written");
        }
        *at += samples.len();
    };
    write(&gap, &mut at);
    for clip in clips {
        let samples = samples(clip);
        let start = at as f64 / f64::from(rate);
        write(&samples, &mut at);
        placed.push((start, at as f64 / f64::from(rate), (*clip).clone()));
        write(&gap, &mut at);
    }
    writer.finalize().expect("the WAV finished");
    Joined {
        rate,
        path,
        clips: placed,
        seconds: at as f64 / f64::from(rate),
    }
}

fn overlaps(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[test]
fn word_and_phrase_clips_joined_per_rate_are_each_heard_by_listen() {
    let Some(set) = real_speech("listen") else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    // English voices: the French, Italian and Russian ones are there for the keyword
    // spotter's false accepts; joined, their 1,300 word clips would triple this test's
    // time, and some are shorter than an utterance can be (a 0.22 s Italian "a", below
    // the segmenter's 250 ms minimum) or a bare fricative the VAD does not call speech
    // (Russian "с", 0.36 s).
    let words: Vec<&Clip> = set
        .clips
        .iter()
        .filter(|c| matches!(c.kind, ClipKind::Word | ClipKind::Phrase))
        .filter(|c| c.is_english())
        .collect();
    let rates: BTreeSet<u32> = words.iter().map(|c| c.rate_hz).collect();
    let joined: Vec<Joined> = rates
        .iter()
        .map(|&rate| {
            let clips: Vec<&Clip> = words
                .iter()
                .copied()
                .filter(|c| c.rate_hz == rate)
                .collect();
            join(dir.path(), rate, &clips)
        })
        .collect();
    let commands = joined
        .iter()
        .map(|j| {
            let source = j.path.to_str().expect("a UTF-8 path");
            emotion_edge(&["listen", "--source", source, "--fast", "--json"], &[])
        })
        .collect();
    let outputs = run_all(commands);

    let mut report = Vec::new();
    for (joined, out) in joined.iter().zip(&outputs) {
        let what = format!(
            "listen on {} clips at {} Hz",
            joined.clips.len(),
            joined.rate
        );
        let (stdout, stderr) = output_text(out);
        no_panic(&stderr, &what);
        assert!(out.status.success(), "{what}: {:?}\n{stderr}", out.status);
        let mut lines = json_lines(&stdout, &what);
        let summary = lines
            .pop()
            .and_then(|l| l.get("summary").cloned())
            .unwrap_or_else(|| panic!("{what}: no summary as the last line:\n{stdout}"));
        let count = |key: &str| {
            summary[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{what}: {key} is not a count in {summary}"))
        };
        // A file read with --fast waits for the worker: nothing is dropped or lost.
        for key in [
            "failed",
            "dropped_busy",
            "dropped_at_stop",
            "overruns",
            "reopened",
        ] {
            assert_eq!(count(key), 0, "{what}: {key} in {summary}");
        }
        assert_eq!(summary["interrupted"], false, "{what}: {summary}");
        let found = count("utterances");
        assert_eq!(
            found,
            count("classified")
                + count("failed")
                + count("dropped_busy")
                + count("dropped_at_stop"),
            "{what}: every utterance found is classified, failed or dropped: {summary}"
        );
        assert_eq!(
            lines.len() as u64,
            count("classified") + count("failed"),
            "{what}: one line per answer"
        );
        let audio = summary["audio_seconds"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (audio - joined.seconds).abs() <= 1.0 / f64::from(joined.rate),
            "{what}: {audio} s read of {} s",
            joined.seconds
        );
        for key in ["mean_latency", "max_latency"] {
            let v = summary[key].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v >= 0.0, "{what}: {key} in {summary}");
        }

        let mut numbers = BTreeSet::new();
        let mut spans = Vec::new();
        for line in &lines {
            assert!(line.get("error").is_none(), "{what}: {line}");
            let number = line["utterance"].as_u64().unwrap_or(0);
            assert!(numbers.insert(number), "{what}: utterance {number} twice");
            let span = (
                line["start_s"].as_f64().unwrap_or(f64::NAN),
                line["end_s"].as_f64().unwrap_or(f64::NAN),
            );
            assert!(
                span.0.is_finite() && span.1.is_finite() && 0.0 <= span.0 && span.0 < span.1,
                "{what}: {line}"
            );
            check_classification(line, &format!("{what}, utterance {number}"));
            assert!(
                joined
                    .clips
                    .iter()
                    .any(|(s, e, _)| overlaps(span, (*s, *e))),
                "{what}: utterance {number} ({:.2}-{:.2} s) lies in silence",
                span.0,
                span.1
            );
            spans.push(span);
        }
        assert_eq!(
            numbers,
            (1..=found).collect(),
            "{what}: utterances numbered 1..={found}"
        );
        let missed: Vec<String> = joined
            .clips
            .iter()
            .filter(|(s, e, _)| !spans.iter().any(|span| overlaps(*span, (*s, *e))))
            .map(|(s, e, c)| {
                format!(
                    "{} ({s:.2}-{e:.2} s, \"{}\")",
                    c.path.display(),
                    c.transcript
                )
            })
            .collect();
        assert!(
            missed.is_empty(),
            "{what}: clips not heard:\n{}",
            missed.join("\n")
        );
        report.push(format!(
            "{} Hz: {} clips, {found} utterances ({} too short, {} cut, {} withdrawn) in {:.0} s",
            joined.rate,
            joined.clips.len(),
            count("too_short"),
            count("cut"),
            count("withdrawn"),
            joined.seconds
        ));
    }
    println!("real_clips listen: {}", report.join("; "));
}
