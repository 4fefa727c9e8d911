//! `listen` under faults: a device that is lost and comes back, a reader that falls
//! behind the device, inference that falls behind the speech, and SIGTERM. Each run
//! accounts for every utterance it found: classified, failed, or counted as dropped.

mod common;

use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{CORPUS_RATE, demo_bundle, spread, utterances, wav_header};
use emotion_core::pipeline::{Pipeline, PipelineOptions};
use emotion_edge::audio::device::{MIN_RING_SECONDS, SourceError};
use emotion_edge::audio::source::{self, Capture, Pace, SourceSpec};
use emotion_edge::display::{Display, DisplayError, Reading};
use emotion_edge::listen::{Heard, ListenOptions, ListenSummary, Prompt, listen_from};
use emotion_edge::segmenter::SegmenterConfig;

/// A device stream: open-ended sizes, so it runs until its reader ends or fails.
fn device_bytes(samples: &[i16]) -> Vec<u8> {
    let mut bytes = wav_header(CORPUS_RATE, None);
    bytes.extend(common::le_bytes(samples));
    bytes
}

/// Gives its bytes, then fails the way an unplugged USB device does.
struct UnpluggedAtEnd(Cursor<Vec<u8>>);

impl Read for UnpluggedAtEnd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(io::Error::other("device unplugged")),
            n => Ok(n),
        }
    }
}

/// Records what the displays were asked to show.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Display for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn show(&mut self, reading: &Reading) -> Result<(), DisplayError> {
        let shown = format!("shown {}", reading.emotion.name());
        self.0.lock().unwrap().push(shown);
        Ok(())
    }
    fn idle(&mut self, message: &str) -> Result<(), DisplayError> {
        self.0.lock().unwrap().push(message.to_owned());
        Ok(())
    }
}

fn options(queue: usize) -> ListenOptions {
    ListenOptions {
        source: SourceSpec::Microphone {
            device: Some("test device".into()),
        },
        segmenter: SegmenterConfig::default(),
        vad: None,
        prompt: Prompt::None,
        no_text: true,
        model: None,
        queue,
        ring_seconds: 60.0,
    }
}

/// Runs `listen` on the demo bundle with sources from `open`; returns the summary, what
/// was heard and what the displays showed.
fn run(
    queue: usize,
    stop: Arc<AtomicBool>,
    open: &mut dyn FnMut() -> Result<Capture, SourceError>,
) -> (ListenSummary, Vec<Heard>, Vec<String>) {
    let pipeline = Pipeline::load(&demo_bundle(), &PipelineOptions::default()).expect("bundle");
    let recorder = Recorder::default();
    let mut displays: Vec<Box<dyn Display>> = vec![Box::new(recorder.clone())];
    let mut heard = Vec::new();
    let summary = listen_from(
        pipeline,
        &options(queue),
        open,
        &mut displays,
        stop,
        &mut |h| heard.push(h.clone()),
    )
    .expect("listen ends without an error");
    let shown = recorder.0.lock().unwrap().clone();
    (summary, heard, shown)
}

/// Every utterance found is classified, failed, or counted as dropped.
fn assert_accounted(summary: &ListenSummary, heard: &[Heard]) {
    assert_eq!(
        summary.utterances,
        summary.classified + summary.failed + summary.dropped_busy + summary.dropped_at_stop,
        "utterances unaccounted for: {summary}"
    );
    assert_eq!(
        heard.len() as u64,
        summary.classified + summary.failed,
        "{summary}"
    );
}

/// The opener's last resort: the device is gone for good, so the test stops the run.
fn gone_for_good(stop: &AtomicBool) -> Result<Capture, SourceError> {
    stop.store(true, Ordering::SeqCst);
    Err(SourceError::NoDevice(
        "no input device (unplugged for good)".into(),
    ))
}

/// Runs `listen` on one capture from `first`; when it is lost, the device is gone for
/// good.
fn run_one_device(
    queue: usize,
    first: impl FnOnce() -> Result<Capture, SourceError>,
) -> (ListenSummary, Vec<Heard>, Vec<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    let mut first = Some(first);
    let mut open = move || match first.take() {
        Some(open_first) => open_first(),
        None => gone_for_good(&stop_flag),
    };
    run(queue, stop, &mut open)
}

#[test]
fn a_lost_device_is_reopened_with_backoff_and_nothing_heard_is_lost() {
    let files = spread(5);
    let before = device_bytes(&utterances(&files[..3], 1.0));
    let after = device_bytes(&utterances(&files[3..], 1.0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut attempts: Vec<Instant> = Vec::new();
    let (summary, heard, shown) = {
        let stop_flag = Arc::clone(&stop);
        let attempts = &mut attempts;
        let mut open = move || {
            attempts.push(Instant::now());
            match attempts.len() {
                1 => source::open_stream_as_device(
                    UnpluggedAtEnd(Cursor::new(before.clone())),
                    "usb mic",
                    Pace::Fast,
                    60.0,
                ),
                2 => Err(SourceError::NoDevice(
                    "no input device matches `usb mic`".into(),
                )),
                3 => source::open_stream_as_device(
                    Cursor::new(after.clone()),
                    "usb mic",
                    Pace::Fast,
                    60.0,
                ),
                _ => gone_for_good(&stop_flag),
            }
        };
        run(4, Arc::clone(&stop), &mut open)
    };

    assert_accounted(&summary, &heard);
    assert_eq!(summary.utterances, 5, "{summary}");
    assert_eq!(summary.classified, 5, "{summary}");
    assert_eq!(summary.reopened, 1, "{summary}");
    assert_eq!(summary.overruns, 0, "{summary}");
    assert!(summary.interrupted, "{summary}");
    let numbers: Vec<u64> = heard.iter().map(|h| h.number).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
    assert!(heard.iter().all(|h| h.result.is_ok()));

    // Backoff: 0.5 s, then doubled while the device stays away, then 0.5 s again once
    // it had delivered audio.
    assert_eq!(attempts.len(), 4, "{attempts:?}");
    let gaps: Vec<f64> = attempts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    assert!(gaps[0] >= 0.5, "first retry after {:.2} s", gaps[0]);
    assert!(
        gaps[1] >= 1.0,
        "second retry after {:.2} s (not doubled)",
        gaps[1]
    );
    assert!(
        gaps[2] >= 0.5,
        "retry after the device came back: {:.2} s",
        gaps[2]
    );
    // The displays said so, with the cause.
    let lost: Vec<&String> = shown
        .iter()
        .filter(|m| m.starts_with("audio source lost"))
        .collect();
    assert!(
        lost.iter()
            .any(|m| m.contains("device unplugged") && m.contains("0.5 s")),
        "{shown:?}"
    );
    assert!(
        lost.iter()
            .any(|m| m.contains("no input device") && m.contains("1.0 s")),
        "{shown:?}"
    );
    assert_eq!(
        shown.iter().filter(|m| m.starts_with("shown ")).count(),
        5,
        "{shown:?}"
    );
}

/// Gives its bytes, then hangs like a device that stopped delivering (for `hang`).
struct GoesQuiet(Cursor<Vec<u8>>, Duration);

impl Read for GoesQuiet {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf)? {
            0 => {
                std::thread::sleep(self.1);
                Ok(0)
            }
            n => Ok(n),
        }
    }
}

#[test]
fn a_device_that_goes_quiet_is_reported_lost_and_reopened() {
    let bytes = device_bytes(&utterances(&spread(2), 1.0));
    let (summary, heard, shown) = run_one_device(4, || {
        let quiet = GoesQuiet(Cursor::new(bytes), Duration::from_secs(4));
        source::open_stream_as_device(quiet, "quiet mic", Pace::Fast, 60.0)
    });
    assert_accounted(&summary, &heard);
    assert_eq!(summary.classified, 2, "{summary}");
    assert!(
        shown.iter().any(|m| m.contains("no audio from it for 3 s")),
        "{shown:?}"
    );
}

#[test]
fn a_reader_behind_the_device_counts_overruns_and_goes_on() {
    let samples = utterances(&spread(3), 1.0);
    let bytes = device_bytes(&samples);
    // The smallest ring, filled as fast as the file decodes: most of it cannot fit while
    // the loop is busy elsewhere.
    let (summary, heard, _) = run_one_device(4, || {
        source::open_stream_as_device(Cursor::new(bytes), "fast mic", Pace::Fast, MIN_RING_SECONDS)
    });
    assert_accounted(&summary, &heard);
    assert!(summary.overruns > 0, "{summary}");
    // Every sample the device produced was either read or counted as overrun.
    let read = (summary.audio_seconds * f64::from(CORPUS_RATE)).round() as u64;
    assert_eq!(read + summary.overruns, samples.len() as u64, "{summary}");
}

#[test]
fn when_inference_falls_behind_the_oldest_utterances_are_dropped_and_counted() {
    let files = spread(16);
    let bytes = device_bytes(&utterances(&files, 1.0));
    let (summary, heard, _) = run_one_device(1, || {
        let capture =
            source::open_stream_as_device(Cursor::new(bytes), "burst mic", Pace::Fast, 60.0);
        // Let the whole stream land in the ring: the loop then finds all sixteen
        // utterances at once, far faster than one worker classifies them.
        std::thread::sleep(Duration::from_millis(300));
        capture
    });
    assert_accounted(&summary, &heard);
    assert_eq!(summary.utterances, 16, "{summary}");
    assert!(
        summary.dropped_busy > 0,
        "nothing dropped with a queue of 1: {summary}"
    );
    assert_eq!(summary.overruns, 0, "{summary}");
    // What was shown is in order: dropping takes the oldest, never reorders.
    let numbers: Vec<u64> = heard.iter().map(|h| h.number).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
}

#[test]
fn sigterm_stops_listen_with_a_summary_and_exit_status_130() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("speech.wav");
    std::fs::write(&wav, common::wav_file(&utterances(&spread(6), 1.0))).expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
        .args(["listen", "--json", "--no-text", "--bundle"])
        .arg(demo_bundle())
        .arg("--source")
        .arg(&wav)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("emotion-edge starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    let mut line = String::new();
    // Real time: the first utterance ends after about 3.5 s of audio.
    stdout.read_line(&mut line).expect("a first utterance");
    assert!(line.contains("\"emotion\""), "{line}");
    lines.push(line.clone());
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0, "kill failed");
    let started = Instant::now();
    for rest in stdout.lines() {
        lines.push(rest.expect("a line"));
    }
    let output = child.wait_with_output().expect("it exits");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?} to stop",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("(stopped by signal)"), "{stderr}");
    let summary: serde_json::Value = lines
        .iter()
        .find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()?
                .get("summary")
                .cloned()
        })
        .unwrap_or_else(|| panic!("no summary line in {lines:?}"));
    assert_eq!(summary["interrupted"], true, "{summary}");
    let classified = lines.iter().filter(|l| l.contains("\"emotion\"")).count() as u64;
    assert_eq!(summary["classified"], classified, "{summary}");
    assert!(
        summary["audio_seconds"].as_f64().unwrap() < 20.0,
        "it read on: {summary}"
    );
}
