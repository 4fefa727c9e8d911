//! Soak: synthetic speech streamed into `emotion-edge listen --source - --fast` for a long
//! time, as fast as the program takes it. Checks that every utterance sent is accounted
//! for and that the resident memory stays flat once warm.
//!
//! The short run is part of `cargo test`; the hour is ignored (run it with
//! `cargo test -p emotion-edge --test soak -- --ignored --nocapture`, or set
//! `SOAK_AUDIO_SECONDS`). Both print their figures.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{CORPUS_RATE, corpus_files, demo_bundle, le_bytes, pcm, wav_header};

/// Silence after each utterance (the segmenter needs at least its hangover).
const GAP_SECONDS: f64 = 1.0;
/// How often the child's RSS is read.
const RSS_EVERY: Duration = Duration::from_millis(200);

/// What one soak run measured.
struct Soak {
    sent: u64,
    audio_seconds: f64,
    wall: Duration,
    summary: serde_json::Value,
    lines: u64,
    /// (seconds since start, RSS in kB).
    rss: Vec<(f64, u64)>,
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Streams corpus utterances (cycling through the corpus, a gap after each) until
/// `audio_seconds` of audio were sent, then closes the stream.
fn soak(audio_seconds: f64) -> Soak {
    let clips: Vec<Vec<i16>> = corpus_files().iter().map(|p| pcm(p)).collect();
    let gap = vec![0i16; (GAP_SECONDS * f64::from(CORPUS_RATE)) as usize];
    let mut child = Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
        .args([
            "listen",
            "--source",
            "-",
            "--fast",
            "--json",
            "--no-text",
            "--bundle",
        ])
        .arg(demo_bundle())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("emotion-edge starts");
    let pid = child.id();
    let start = Instant::now();

    let done = Arc::new(AtomicBool::new(false));
    let rss = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (done, rss) = (Arc::clone(&done), Arc::clone(&rss));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(kb) = rss_kb(pid) {
                    rss.lock()
                        .unwrap()
                        .push((start.elapsed().as_secs_f64(), kb));
                }
                std::thread::sleep(RSS_EVERY);
            }
        })
    };
    let mut stdin = child.stdin.take().expect("stdin");
    let target = (audio_seconds * f64::from(CORPUS_RATE)) as usize;
    let writer = std::thread::spawn(move || {
        stdin
            .write_all(&wav_header(CORPUS_RATE, None))
            .expect("header");
        stdin.write_all(&le_bytes(&gap)).expect("lead-in");
        let (mut samples, mut sent) = (gap.len(), 0u64);
        for clip in clips.iter().cycle() {
            if samples >= target {
                break;
            }
            stdin
                .write_all(&le_bytes(clip))
                .expect("emotion-edge takes the stream");
            stdin
                .write_all(&le_bytes(&gap))
                .expect("emotion-edge takes the stream");
            samples += clip.len() + gap.len();
            sent += 1;
        }
        (sent, samples as f64 / f64::from(CORPUS_RATE))
    });
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let (mut lines, mut summary) = (0u64, serde_json::Value::Null);
    for line in stdout.lines() {
        let line = line.expect("a line");
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON lines");
        match value.get("summary") {
            Some(s) => summary = s.clone(),
            None => lines += 1,
        }
    }
    let (sent, audio_seconds) = writer.join().expect("the writer");
    let output = child.wait_with_output().expect("it exits");
    let wall = start.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("the sampler");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let rss = rss.lock().unwrap().clone();
    Soak {
        sent,
        audio_seconds,
        wall,
        summary,
        lines,
        rss,
    }
}

/// Every utterance sent was found and classified (a stream read fast waits for the
/// worker, so nothing may be dropped), and each gave one line.
fn check_accounting(run: &Soak) {
    let s = &run.summary;
    assert_eq!(s["utterances"], run.sent, "{s}");
    assert_eq!(s["classified"], run.sent, "{s}");
    for counter in [
        "failed",
        "dropped_busy",
        "dropped_at_stop",
        "overruns",
        "cut",
    ] {
        assert_eq!(s[counter], 0, "{counter}: {s}");
    }
    assert_eq!(run.lines, run.sent, "one line per utterance");
}

/// RSS after warm-up (the first `warm_up` of the run): (at the end of warm-up, lowest,
/// highest), kB.
fn rss_after(run: &Soak, warm_up: f64) -> (u64, u64, u64) {
    let end = run.wall.as_secs_f64();
    let warm: Vec<u64> = run
        .rss
        .iter()
        .filter(|(t, _)| *t >= warm_up * end)
        .map(|(_, kb)| *kb)
        .collect();
    assert!(warm.len() >= 3, "too few RSS samples: {:?}", run.rss);
    (
        warm[0],
        *warm.iter().min().unwrap(),
        *warm.iter().max().unwrap(),
    )
}

fn report(run: &Soak) {
    let (first, low, high) = rss_after(run, 0.1);
    let peak = run.rss.iter().map(|(_, kb)| *kb).max().unwrap_or(0);
    println!(
        "soak: {:.0} s of audio ({} utterances) in {:.1} s ({:.0}x real time); {} classified; \
         RSS after warm-up {:.1}-{:.1} MB (first {:.1}, growth {:+.1} %), peak {:.1} MB, {} samples",
        run.audio_seconds,
        run.sent,
        run.wall.as_secs_f64(),
        run.audio_seconds / run.wall.as_secs_f64(),
        run.summary["classified"],
        low as f64 / 1024.0,
        high as f64 / 1024.0,
        first as f64 / 1024.0,
        100.0 * (high as f64 - first as f64) / first as f64,
        peak as f64 / 1024.0,
        run.rss.len()
    );
}

#[test]
fn five_minutes_streamed_fast_account_for_every_utterance() {
    let run = soak(300.0);
    report(&run);
    check_accounting(&run);
}

#[test]
#[ignore = "an hour of audio; run with --ignored (about ten minutes)"]
fn an_hour_streamed_fast_keeps_memory_flat_and_accounts_for_everything() {
    let seconds = std::env::var("SOAK_AUDIO_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3600.0);
    let run = soak(seconds);
    report(&run);
    check_accounting(&run);
    let (first, _, high) = rss_after(&run, 0.1);
    assert!(
        high as f64 <= first as f64 * 1.05,
        "RSS grew from {first} kB to {high} kB after warm-up"
    );
}
