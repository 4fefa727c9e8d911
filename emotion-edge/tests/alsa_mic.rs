//! The real microphone path through ALSA, with no sound card: `emotion-edge devices` and
//! `emotion-edge listen --source mic:NAME` against `filemic`, an ALSA capture plugin that
//! plays a WAV file at real-time pace (`tests/alsa/pcm_filemic.c`; why it exists is at
//! its top). Each test compiles the plugin into a temporary folder, writes an
//! `asound.conf` there and hands it to the child process only (`ALSA_CONFIG_PATH`), so
//! nothing of the machine's ALSA set-up is used or changed.
//!
//! Real recordings (the real-speech cache: `scripts/fetch-real-speech.sh`) are joined with
//! 1.5 s of silence into one WAV file, so the device runs at the recordings' rate (8 kHz
//! telephone prompts, 48 kHz ALSA test voices) and `listen`'s stream resampler does real
//! work. A microphone run only ends at a signal, so each test stops it with SIGTERM once
//! it has heard what it waits for (exit status 130, as for a board's service).
//!
//! Outside CI a test skips, saying why, when `cc`, `pkg-config`, ALSA's headers or the
//! real-speech set are missing; under CI (`CI` set) that is a failure.

#![cfg(feature = "mic")]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::demo_bundle;
use emotion_core::real_speech::{Clip, ClipKind, RealSpeech, under_ci};
use serde_json::Value;

/// The silence before, between and after the recordings.
const GAP_S: f64 = 1.5;
/// How the plugin names the device (cpal shows the first line of the hint).
const DESCRIPTION: &str = "CI file-backed microphone";

/// Skips (outside CI) or fails (under CI) a test that cannot run here.
fn unavailable(what: &str, why: &str) {
    if under_ci() {
        panic!("{what}: required under CI: {why}");
    }
    eprintln!("skipped {what} (not under CI): {why}");
}

/// The plugin, compiled into a temporary folder that also holds the test's files.
struct Plugin {
    dir: tempfile::TempDir,
    lib: PathBuf,
}

impl Plugin {
    /// Compiles `tests/alsa/pcm_filemic.c`; `None` (after saying why) when this machine
    /// cannot, outside CI.
    fn build(what: &str) -> Option<Plugin> {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/alsa/pcm_filemic.c");
        let flags = match Command::new("pkg-config")
            .args(["--cflags", "--libs", "alsa"])
            .output()
        {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
            Ok(out) => {
                unavailable(
                    what,
                    &format!(
                        "`pkg-config --cflags --libs alsa` failed ({}): install libasound2-dev",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                );
                return None;
            }
            Err(e) => {
                unavailable(
                    what,
                    &format!("cannot run pkg-config ({e}): install pkg-config"),
                );
                return None;
            }
        };
        let dir = tempfile::tempdir().expect("a temporary folder");
        let lib = dir.path().join("libasound_module_pcm_filemic.so");
        let out = match Command::new("cc")
            .args(["-shared", "-fPIC", "-DPIC", "-O2", "-Wall", "-o"])
            .arg(&lib)
            .arg(&source)
            .args(flags.split_whitespace())
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                unavailable(what, &format!("cannot run cc ({e}): install gcc"));
                return None;
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            // Headers missing is this machine's lack; anything else is the plugin's bug.
            if ["alsa/asoundlib.h", "alsa/pcm_external.h"]
                .iter()
                .any(|h| stderr.contains(&format!("{h}: No such file")))
            {
                unavailable(what, &format!("ALSA's headers are missing: {stderr}"));
                return None;
            }
            panic!("{what}: cc cannot compile {}:\n{stderr}", source.display());
        }
        Some(Plugin { dir, lib })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `asound.conf` with the plugin type and `pcms`, and returns its path.
    fn config(&self, pcms: &str) -> PathBuf {
        let text = format!("pcm_type.filemic {{ lib {} }}\n{pcms}", quoted(&self.lib));
        let path = self.path("asound.conf");
        std::fs::write(&path, text).expect("write asound.conf");
        path
    }
}

/// A path as an ALSA config string.
fn quoted(path: &Path) -> String {
    let text = path.to_str().expect("a UTF-8 temporary path");
    assert!(
        !text.contains(['"', '\\']),
        "{text}: a path ALSA's config cannot quote"
    );
    format!("\"{text}\"")
}

/// A filemic PCM named `name` playing `wav`, with `options`, listed by `arecord -L` and
/// cpal (the hint is needed for that with a config of our own).
fn pcm(name: &str, wav: &Path, options: &str) -> String {
    format!(
        "pcm.{name} {{\n    type filemic\n    file {}\n    {options}\n    hint {{ show on description \"{DESCRIPTION}\" }}\n}}\n",
        quoted(wav)
    )
}

/// `count` recordings of `source` at `rate` Hz, mono 16-bit, of `kind`, between
/// `min_s` and `max_s` long, spread over the set's list.
fn recordings(
    set: &RealSpeech,
    source: &str,
    rate: u32,
    kind: ClipKind,
    (min_s, max_s): (f64, f64),
    count: usize,
) -> Vec<Clip> {
    let fitting: Vec<&Clip> = set
        .of_kind(kind)
        .filter(|c| c.source == source && c.rate_hz == rate && c.channels == 1)
        .filter(|c| (min_s..=max_s).contains(&c.duration_s))
        .collect();
    assert!(
        fitting.len() >= count,
        "the real-speech set has {} {source} {kind} clips at {rate} Hz of {min_s}-{max_s} s, \
         this test needs {count}; fetch it again with `bash scripts/fetch-real-speech.sh`",
        fitting.len()
    );
    let step = fitting.len() / count;
    fitting
        .into_iter()
        .step_by(step)
        .take(count)
        .cloned()
        .collect()
}

/// The recordings one after another, each after `GAP_S` of silence and with `GAP_S`
/// after the last: the samples, and where each recording lies, in seconds.
fn joined(clips: &[Clip], rate: u32) -> (Vec<i16>, Vec<(f64, f64)>) {
    let gap = vec![0i16; (GAP_S * f64::from(rate)) as usize];
    let mut samples = gap.clone();
    let mut spans = Vec::new();
    for clip in clips {
        let mut reader = hound::WavReader::open(&clip.path)
            .unwrap_or_else(|e| panic!("{}: {e}", clip.path.display()));
        let spec = reader.spec();
        assert_eq!(
            (
                spec.sample_rate,
                spec.channels,
                spec.bits_per_sample,
                spec.sample_format
            ),
            (rate, 1, 16, hound::SampleFormat::Int),
            "{}: not {rate} Hz mono 16-bit",
            clip.path.display()
        );
        let start = samples.len();
        for sample in reader.samples::<i16>() {
            samples.push(sample.unwrap_or_else(|e| panic!("{}: {e}", clip.path.display())));
        }
        let seconds = |n: usize| n as f64 / f64::from(rate);
        spans.push((seconds(start), seconds(samples.len())));
        samples.extend_from_slice(&gap);
    }
    (samples, spans)
}

fn write_wav(path: &Path, rate: u32, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create the WAV");
    for &s in samples {
        writer.write_sample(s).expect("write a sample");
    }
    writer.finalize().expect("finish the WAV");
}

/// One line from the child, and when it arrived.
#[derive(Debug, Clone)]
struct Line {
    at: Instant,
    stdout: bool,
    text: String,
}

/// `emotion-edge` running with our ALSA config; killed if the test ends early.
struct Run {
    child: Child,
    lines: Receiver<Line>,
    seen: Vec<Line>,
}

impl Run {
    fn start(config: &Path, args: &[&str]) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
            .args(args)
            .env("ALSA_CONFIG_PATH", config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("emotion-edge starts");
        let (tx, lines) = mpsc::channel();
        for (pipe, stdout) in [
            (
                Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
                true,
            ),
            (Box::new(child.stderr.take().expect("stderr")), false),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for text in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let line = Line {
                        at: Instant::now(),
                        stdout,
                        text,
                    };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Run {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Everything the child printed so far, for failure messages.
    fn log(&self) -> String {
        self.seen
            .iter()
            .map(|l| format!("{} {}\n", if l.stdout { "out:" } else { "err:" }, l.text))
            .collect()
    }

    /// Waits up to `limit` for a line that `wanted` accepts; panics with the log past it.
    fn wait_for(&mut self, what: &str, limit: Duration, wanted: impl Fn(&Line) -> bool) -> Line {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {what} within {limit:?}; the run so far:\n{}",
                        self.log()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().expect("wait");
                    panic!(
                        "emotion-edge ended ({status}) before {what}:\n{}",
                        self.log()
                    )
                }
            }
        }
    }

    /// The utterances printed so far (JSON lines with an `utterance` number).
    fn utterances(&self) -> Vec<(Instant, Value)> {
        self.seen
            .iter()
            .filter(|l| l.stdout)
            .filter_map(|l| Some((l.at, serde_json::from_str::<Value>(&l.text).ok()?)))
            .filter(|(_, v)| v.get("utterance").is_some())
            .collect()
    }

    /// SIGTERM, then everything until it exits: its status and the summary.
    fn stop(&mut self) -> (ExitStatus, Instant, Value) {
        let stopped = Instant::now();
        // SAFETY: a plain kill(2) of our own child.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(sent, 0, "kill failed");
        self.finish(stopped, Duration::from_secs(10))
    }

    /// Reads until the child closes its pipes (or `limit` passes), then waits for it.
    fn finish(&mut self, from: Instant, limit: Duration) -> (ExitStatus, Instant, Value) {
        let deadline = from + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("emotion-edge did not end within {limit:?}:\n{}", self.log())
                }
            }
        }
        let status = self.child.wait().expect("wait");
        let log = self.log();
        assert!(!log.contains("panicked"), "a panic:\n{log}");
        let summary = self
            .seen
            .iter()
            .filter(|l| l.stdout)
            .find_map(|l| {
                serde_json::from_str::<Value>(&l.text)
                    .ok()?
                    .get("summary")
                    .cloned()
            })
            .unwrap_or(Value::Null);
        (status, from, summary)
    }

    fn stderr_has(&self, text: &str) -> bool {
        self.seen.iter().any(|l| !l.stdout && l.text.contains(text))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn listen_args<'a>(bundle: &'a str, device: &'a str) -> Vec<&'a str> {
    vec!["listen", "--bundle", bundle, "--source", device, "--json"]
}

fn is_listening(line: &Line) -> bool {
    !line.stdout && line.text.starts_with("listening:")
}

/// Checks one utterance's JSON: classified, with finite probabilities that sum to 1.
fn assert_classified(utterance: &Value) {
    assert!(utterance.get("error").is_none(), "{utterance}");
    let probabilities = utterance["probabilities"]
        .as_object()
        .unwrap_or_else(|| panic!("no probabilities: {utterance}"));
    assert_eq!(probabilities.len(), 7, "{utterance}");
    // serde_json writes NaN and infinity as null, which as_f64 refuses.
    let values: Vec<f64> = probabilities
        .values()
        .map(|p| {
            p.as_f64()
                .unwrap_or_else(|| panic!("not a finite number: {utterance}"))
        })
        .collect();
    assert!(
        values.iter().all(|p| (0.0..=1.0).contains(p)),
        "{utterance}"
    );
    let sum: f64 = values.iter().sum();
    assert!(
        (sum - 1.0).abs() < 1e-3,
        "probabilities sum to {sum}: {utterance}"
    );
    assert!(
        utterance["confidence"].as_f64().is_some_and(f64::is_finite),
        "{utterance}"
    );
}

fn count(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in the summary {summary}"))
}

/// Plays `clips` (at `rate` Hz) through the file microphone into `listen`, stops it once
/// an utterance covers the last recording, and checks what it heard and how fast.
fn hear(plugin: &Plugin, clips: &[Clip], rate: u32) {
    let (samples, spans) = joined(clips, rate);
    let audio_s = samples.len() as f64 / f64::from(rate);
    let wav = plugin.path("speech.wav");
    write_wav(&wav, rate, &samples);
    let config = plugin.config(&pcm("cimic", &wav, "eof \"silence\""));
    let bundle = demo_bundle();
    let bundle = bundle.to_str().expect("a UTF-8 path");
    let mut run = Run::start(&config, &listen_args(bundle, "mic:cimic"));

    let listening = run.wait_for("`listening:` line", Duration::from_secs(60), is_listening);
    assert!(
        listening
            .text
            .contains(&format!("microphone 'cimic' ({rate} Hz, 1 ch, i16)")),
        "{}",
        listening.text
    );
    // Once an utterance reaches into the last recording, everything before it was heard.
    let last = spans.last().expect("recordings").0;
    run.wait_for(
        "utterance over the last recording",
        Duration::from_secs_f64(audio_s + 20.0),
        |l| {
            l.stdout
                && serde_json::from_str::<Value>(&l.text)
                    .ok()
                    .and_then(|v| v["end_s"].as_f64())
                    .is_some_and(|end| end > last)
        },
    );
    // Past the end of the file (silence from there on), so the whole file was read.
    let end = listening.at + Duration::from_secs_f64(audio_s + 0.5);
    std::thread::sleep(
        end.saturating_duration_since(Instant::now())
            .max(Duration::from_millis(500)),
    );
    let (status, stopped, summary) = run.stop();
    let log = run.log();
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(run.stderr_has("(stopped by signal)"), "{log}");

    // Real-time pace (a device that is not paced, as alsa-lib's `file` plugin over
    // `null`, delivers seconds of audio in no time):
    // - the audio read is the wall time the stream ran, from the `listening:` line (read
    //   a little after the stream started) to SIGTERM;
    // - each utterance is out after its end in the stream ("after" = since the
    //   `listening:` line, so up to that line's delay early), and by about the same
    //   time after it for the first as for the last (latency and one period of jitter),
    //   where an unpaced source would hand over all of them at once.
    let wall = (stopped - listening.at).as_secs_f64();
    let read = summary["audio_seconds"].as_f64().unwrap_or(f64::NAN);
    let pace = read / wall;
    let utterances = run.utterances();
    let leads: Vec<f64> = utterances
        .iter()
        .map(|(at, u)| (*at - listening.at).as_secs_f64() - u["end_s"].as_f64().expect("end_s"))
        .collect();
    let (first, last) = leads
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &l| {
            (lo.min(l), hi.max(l))
        });
    eprintln!(
        "{rate} Hz: {audio_s:.1} s of recordings; {} utterances; {read:.2} s of audio read \
         in {wall:.2} s of wall time (pace {pace:.4}); lines out {first:.2}-{last:.2} s \
         after their audio ended; summary {summary}",
        utterances.len()
    );
    for ((_, utterance), lead) in utterances.iter().zip(&leads) {
        assert_classified(utterance);
        assert!(
            *lead > -0.3,
            "utterance out {lead:.2} s before its end: {utterance}\n{log}"
        );
    }
    assert!(
        last - first < 1.5,
        "utterances out {first:.2}-{last:.2} s after their end\n{log}"
    );
    assert!(
        (0.93..=1.05).contains(&pace),
        "pace {pace:.3}: {summary}\n{log}"
    );
    assert!(
        read >= audio_s,
        "read {read:.2} s of {audio_s:.2} s: {summary}"
    );

    // Each recording overlaps an utterance and each utterance a recording. Not "one
    // utterance per recording": the segmenter may rightly split a phrase at a pause
    // longer than its hangover (400 ms), and then both parts still overlap it.
    let found: Vec<(f64, f64)> = utterances
        .iter()
        .map(|(_, u)| {
            (
                u["start_s"].as_f64().expect("start_s"),
                u["end_s"].as_f64().expect("end_s"),
            )
        })
        .collect();
    let overlap = |a: (f64, f64), b: (f64, f64)| a.0 < b.1 && b.0 < a.1;
    for (clip, span) in clips.iter().zip(&spans) {
        assert!(
            found.iter().any(|&u| overlap(u, *span)),
            "no utterance over {} ({:.2}-{:.2} s); found {found:?}\n{log}",
            clip.path.display(),
            span.0,
            span.1
        );
    }
    for &u in &found {
        assert!(
            spans.iter().any(|&s| overlap(u, s)),
            "utterance {u:?} lies in silence; recordings {spans:?}\n{log}"
        );
    }
    assert!(
        (clips.len()..=2 * clips.len()).contains(&found.len()),
        "{} utterances for {} recordings: {found:?}",
        found.len(),
        clips.len()
    );
    let heard = utterances.len() as u64;
    assert_eq!(count(&summary, "utterances"), heard, "{summary}");
    assert_eq!(count(&summary, "classified"), heard, "{summary}");
    for key in [
        "failed",
        "dropped_busy",
        "dropped_at_stop",
        "overruns",
        "reopened",
    ] {
        assert_eq!(count(&summary, key), 0, "{key}: {summary}\n{log}");
    }
}

#[test]
fn devices_lists_the_file_backed_microphones() {
    let what = "alsa_mic devices";
    let Some(plugin) = Plugin::build(what) else {
        return;
    };
    write_wav(&plugin.path("a8.wav"), 8_000, &[0; 800]);
    write_wav(&plugin.path("a48.wav"), 48_000, &[0; 4_800]);
    let config = plugin.config(&format!(
        "{}{}",
        pcm("cimic", &plugin.path("a8.wav"), ""),
        pcm("cimic48", &plugin.path("a48.wav"), "")
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
        .arg("devices")
        .env("ALSA_CONFIG_PATH", &config)
        .output()
        .expect("emotion-edge runs");
    let (stdout, stderr) = common::output_text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    // `  NAME [ID]: DEFAULT CONFIG`, each PCM with the one configuration its file has.
    for expected in [
        format!("  {DESCRIPTION} [cimic]: 8000 Hz, 1 ch, i16"),
        format!("  {DESCRIPTION} [cimic48]: 48000 Hz, 1 ch, i16"),
    ] {
        assert!(
            stdout.lines().any(|l| l == expected),
            "{expected:?} not in:\n{stdout}{stderr}"
        );
    }
}

#[test]
fn listen_hears_real_speech_from_an_8_khz_microphone_in_real_time() {
    let what = "alsa_mic 8 kHz listen";
    let Some(set) = RealSpeech::for_tests(what) else {
        return;
    };
    let Some(plugin) = Plugin::build(what) else {
        return;
    };
    // Five telephone prompts (asterisk, one speaker), 1.2-2.4 s: about 17 s in all.
    let clips = recordings(&set, "asterisk", 8_000, ClipKind::Phrase, (1.2, 2.4), 5);
    hear(&plugin, &clips, 8_000);
}

#[test]
fn listen_hears_real_speech_from_a_48_khz_microphone() {
    let what = "alsa_mic 48 kHz listen";
    let Some(set) = RealSpeech::for_tests(what) else {
        return;
    };
    let Some(plugin) = Plugin::build(what) else {
        return;
    };
    // Three of alsa-utils' speaker-test voices ("front left", ...): about 10 s.
    let clips = recordings(&set, "alsa", 48_000, ClipKind::Phrase, (1.0, 2.5), 3);
    hear(&plugin, &clips, 48_000);
}

#[test]
fn an_unplugged_microphone_is_reported_and_reopened_when_it_is_back() {
    let what = "alsa_mic unplug";
    let Some(set) = RealSpeech::for_tests(what) else {
        return;
    };
    let Some(plugin) = Plugin::build(what) else {
        return;
    };
    let clips = recordings(&set, "asterisk", 8_000, ClipKind::Phrase, (1.2, 2.4), 4);
    let (samples, _) = joined(&clips, 8_000);
    let wav = plugin.path("speech.wav");
    write_wav(&wav, 8_000, &samples);
    let spare = plugin.path("spare.wav");
    std::fs::copy(&wav, &spare).expect("copy the WAV");
    // Deleting the file unplugs the device; `exclusive` makes it one that can be open
    // only once at a time, as a card's hw: PCM is.
    let options = format!(
        "eof \"silence\"\n    unplug_if_missing true\n    exclusive {}",
        quoted(&plugin.path("cimic.lock"))
    );
    let config = plugin.config(&pcm("cimic", &wav, &options));
    let bundle = demo_bundle();
    let bundle = bundle.to_str().expect("a UTF-8 path");
    let mut run = Run::start(&config, &listen_args(bundle, "mic:cimic"));
    run.wait_for("`listening:` line", Duration::from_secs(60), is_listening);
    let is_utterance =
        |l: &Line| l.stdout && l.text.contains("\"utterance\"") && l.text.contains("\"emotion\"");
    for n in 1..=2 {
        run.wait_for(
            &format!("utterance {n}"),
            Duration::from_secs(20),
            is_utterance,
        );
    }

    // Unplugged: listen says so, with cpal's reason, and waits to retry.
    std::fs::remove_file(&wav).expect("unplug");
    let unplugged = Instant::now();
    let lost = run.wait_for("the loss reported", Duration::from_secs(5), |l| {
        !l.stdout && l.text.starts_with("audio source lost")
    });
    assert!(
        lost.text.contains("not available") && lost.text.contains("retrying in 0.5 s"),
        "{}",
        lost.text
    );
    let noticed = (lost.at - unplugged).as_secs_f64();

    // Plugged in again one second later (a new file under the same name).
    std::thread::sleep(Duration::from_secs(1));
    std::fs::rename(&spare, &wav).expect("plug in again");
    let back = run.wait_for("`audio source back`", Duration::from_secs(15), |l| {
        !l.stdout && l.text.starts_with("audio source back")
    });
    let before = run.utterances().len();
    for n in 1..=2 {
        run.wait_for(
            &format!("utterance {n} after the device came back"),
            Duration::from_secs(20),
            is_utterance,
        );
    }
    let (status, _, summary) = run.stop();
    let log = run.log();
    assert_eq!(status.code(), Some(130), "{log}");
    let utterances = run.utterances();
    for (_, u) in &utterances {
        assert_classified(u);
    }
    eprintln!(
        "unplug: noticed after {noticed:.2} s, back {:.2} s after the unplug; {} utterances \
         before, {} after; summary {summary}",
        (back.at - unplugged).as_secs_f64(),
        before,
        utterances.len() - before,
    );
    assert!(noticed < 2.0, "the loss took {noticed:.2} s to notice");
    assert_eq!(count(&summary, "reopened"), 1, "{summary}\n{log}");
    assert_eq!(count(&summary, "failed"), 0, "{summary}");
    assert_eq!(
        count(&summary, "classified") + count(&summary, "dropped_busy"),
        count(&summary, "utterances") - count(&summary, "dropped_at_stop"),
        "{summary}"
    );
}

#[test]
fn a_broken_alsa_setup_is_a_clear_error_not_a_panic() {
    let bundle = demo_bundle();
    let bundle = bundle.to_str().expect("a UTF-8 path");
    let dir = tempfile::tempdir().expect("a temporary folder");

    // A config ALSA cannot parse: cpal's default_host() would panic here.
    let broken = dir.path().join("broken.conf");
    std::fs::write(
        &broken,
        "pcm.cimic { type filemic\n this is not ALSA's syntax }}}\n",
    )
    .expect("write");
    for args in [vec!["devices"], listen_args(bundle, "mic:cimic")] {
        let out = Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
            .args(&args)
            .env("ALSA_CONFIG_PATH", &broken)
            .output()
            .expect("emotion-edge runs");
        let (stdout, stderr) = common::output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error: ") && stderr.contains("cannot start the audio system"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("ALSA_CONFIG_PATH"), "{args:?}: {stderr}");
    }

    // A plugin library that is not there: the device is listed but will not open.
    let wav = dir.path().join("a.wav");
    write_wav(&wav, 8_000, &[0; 800]);
    let missing_lib = dir.path().join("config-missing-lib.conf");
    std::fs::write(
        &missing_lib,
        format!(
            "pcm_type.filemic {{ lib {} }}\n{}",
            quoted(&dir.path().join("no-such-plugin.so")),
            pcm("cimic", &wav, "")
        ),
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
        .args(listen_args(bundle, "mic:cimic"))
        .env("ALSA_CONFIG_PATH", &missing_lib)
        .output()
        .expect("emotion-edge runs");
    let (stdout, stderr) = common::output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("error: cannot open the audio source microphone `cimic`")
            && stderr.contains("cannot open the input device 'cimic'"),
        "{stderr}"
    );
}
