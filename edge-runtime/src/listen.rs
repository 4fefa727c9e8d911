//! `emotion-edge listen`: audio in, emotions shown, until the source ends or a signal
//! stops it.
//!
//! ```text
//! source ─ ring (lock-free) ─ resample to 16 kHz ─ segmenter ─ queue ─ worker ─ displays
//! (mic callback, file/stdin thread)       (this thread)        (bounded)  (pipeline)
//! ```
//!
//! The capture side never waits on the rest. Utterances wait in a bounded queue; when
//! inference falls behind a live source, the oldest waiting utterance is dropped and
//! counted, so memory stays bounded. A file or stdin read as fast as possible waits for
//! room instead, so nothing is lost. A microphone that fails is reopened with backoff; a file or
//! stdin that fails ends the run with its error.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use models::heads::ModelKind;
use models::pipeline::{Classification, Pipeline, TextInput};
use serde_json::{Map, json};

use crate::audio::resample::StreamResampler;
use crate::audio::source::{self, Capture, ReadOutcome, SourceError, SourceSpec};
use crate::display::{Display, Reading};
use crate::segmenter::{Segmenter, SegmenterConfig, Utterance};

/// How long one read waits for audio before the loop checks for a stop.
const POLL: Duration = Duration::from_millis(20);
/// First and longest wait before reopening a failed microphone.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// Which word the kiosk asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// No prompt: the keyword spotter, or no text.
    None,
    /// Always this word.
    Fixed(String),
    /// The bundle's keywords in turn, the next one after each utterance.
    Cycle,
}

/// Everything `listen` needs besides the pipeline.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Where the audio comes from.
    pub source: SourceSpec,
    /// How utterances are cut from the stream.
    pub segmenter: SegmenterConfig,
    /// The kiosk's prompt.
    pub prompt: Prompt,
    /// Use no text at all (the speech-only head answers).
    pub no_text: bool,
    /// The head to use; the pipeline chooses when `None`.
    pub model: Option<ModelKind>,
    /// Utterances that may wait for the worker; beyond that the oldest is dropped.
    pub queue: usize,
    /// Seconds of audio the capture ring holds.
    pub ring_seconds: f32,
}

/// One utterance as `listen` reports it to its caller.
#[derive(Debug, Clone)]
pub struct Heard {
    /// 1-based count of utterances found.
    pub number: u64,
    /// Where it starts in the stream, seconds (at the bundle's rate, pre-roll included).
    pub start_s: f64,
    /// Where it ends, seconds.
    pub end_s: f64,
    /// The classification, or why there is none.
    pub result: Result<Classification, String>,
    /// From the end of speech until every display had drawn it.
    pub latency: Duration,
}

/// What a run did, printed when it ends (with `--json`, also as a `{"summary": …}` line).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ListenSummary {
    /// Utterances the segmenter found.
    pub utterances: u64,
    /// Utterances classified and shown.
    pub classified: u64,
    /// Utterances that could not be classified (each error was printed).
    pub failed: u64,
    /// Utterances dropped because the worker was behind (oldest first).
    pub dropped_busy: u64,
    /// Utterances still queued when a signal stopped the run.
    pub dropped_at_stop: u64,
    /// Bursts too short to be speech.
    pub too_short: u64,
    /// Utterances cut at the maximum length.
    pub cut: u64,
    /// Samples the capture ring had no room for.
    pub overruns: u64,
    /// Times the source was reopened.
    pub reopened: u64,
    /// Seconds of audio read.
    pub audio_seconds: f64,
    /// Largest end-of-speech → shown latency, seconds.
    pub max_latency: f64,
    /// Mean end-of-speech → shown latency, seconds.
    pub mean_latency: f64,
    /// True when a signal ended the run.
    pub interrupted: bool,
}

impl std::fmt::Display for ListenSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} utterances in {:.1} s of audio: {} classified, {} failed, {} dropped (busy), {} dropped at stop; {} too short, {} cut at max length; {} samples overrun; source reopened {} times; latency mean {:.0} ms, max {:.0} ms{}",
            self.utterances,
            self.audio_seconds,
            self.classified,
            self.failed,
            self.dropped_busy,
            self.dropped_at_stop,
            self.too_short,
            self.cut,
            self.overruns,
            self.reopened,
            self.mean_latency * 1e3,
            self.max_latency * 1e3,
            if self.interrupted {
                " (stopped by signal)"
            } else {
                ""
            }
        )
    }
}

/// One utterance waiting for the worker.
struct Job {
    number: u64,
    utterance: Utterance,
    prompt: Option<String>,
}

/// What the worker sends back.
struct Done {
    number: u64,
    start_s: f64,
    end_s: f64,
    speech_seconds: f32,
    end_of_speech: Instant,
    result: Result<Classification, String>,
}

/// A queue of at most `capacity` jobs that drops the oldest when full.
struct JobQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
    capacity: usize,
}

struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
    dropped: u64,
}

impl JobQueue {
    fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                closed: false,
                dropped: 0,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // A panic while holding this lock cannot leave the queue inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a job. When full: with `wait`, waits for room (a file read as fast as
    /// possible must lose nothing); otherwise drops the oldest job and counts it.
    fn push(&self, job: Job, wait: bool) {
        let mut state = self.lock();
        while wait && state.jobs.len() >= self.capacity && !state.closed {
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.jobs.len() >= self.capacity {
            state.jobs.pop_front();
            state.dropped += 1;
        }
        state.jobs.push_back(job);
        self.ready.notify_all();
    }

    /// The next job; `None` once closed and empty.
    fn pop(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                // A producer may be waiting for room.
                self.ready.notify_all();
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// No more jobs; with `discard`, the waiting ones are dropped (returns how many).
    fn close(&self, discard: bool) -> u64 {
        let mut state = self.lock();
        state.closed = true;
        let discarded = if discard {
            let n = state.jobs.len() as u64;
            state.jobs.clear();
            n
        } else {
            0
        };
        self.ready.notify_all();
        discarded
    }

    fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

/// Opens the audio source of a run; called again, with backoff, when a live one is lost.
pub type Opener<'a> = dyn FnMut() -> Result<Capture, SourceError> + 'a;

/// Listens until the source ends or `stop` is set; shows each utterance on every
/// display, then hands it to `heard`. Returns what happened.
pub fn listen(
    pipeline: Pipeline,
    options: &ListenOptions,
    displays: &mut [Box<dyn Display>],
    stop: Arc<AtomicBool>,
    heard: &mut dyn FnMut(&Heard),
) -> anyhow::Result<ListenSummary> {
    let mut open = || source::open(&options.source, options.ring_seconds);
    listen_from(pipeline, options, &mut open, displays, stop, heard)
}

/// [`listen`] with the audio from `open` instead of `options.source` (which then only
/// names it in errors): how tests inject sources that fail on cue.
pub fn listen_from(
    pipeline: Pipeline,
    options: &ListenOptions,
    open: &mut Opener<'_>,
    displays: &mut [Box<dyn Display>],
    stop: Arc<AtomicBool>,
    heard: &mut dyn FnMut(&Heard),
) -> anyhow::Result<ListenSummary> {
    let rate = pipeline.frontend().config().target_rate;
    let prompts = prompt_words(&pipeline, &options.prompt)?;
    let mut capture = open()
        .with_context(|| format!("cannot open the audio source {}", describe(&options.source)))?;
    let mut resampler = StreamResampler::new(capture.sample_rate(), rate)?;
    let mut segmenter = Segmenter::new(options.segmenter.clone(), rate)
        .map_err(|e| anyhow::anyhow!("segmenter settings: {e}"))?;
    eprintln!(
        "listening: {} -> {rate} Hz; bundle variant {} (Ctrl-C to stop)",
        capture.describe(),
        pipeline.variant()
    );

    let queue = Arc::new(JobQueue::new(options.queue));
    let wait_for_room = capture.waits_for_reader();
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let worker = {
        let queue = Arc::clone(&queue);
        let no_text = options.no_text;
        let model = options.model;
        thread::Builder::new()
            .name("inference".into())
            .spawn(move || work(&pipeline, &queue, &done_tx, no_text, model))
            .context("cannot start the inference thread")?
    };

    let mut summary = ListenSummary::default();
    let mut shower = Shower::new(displays, heard);
    let mut prompt_index = 0usize;
    shower.prompt(prompts.get(prompt_index).map(String::as_str));
    let mut native = Vec::new();
    let mut resampled = Vec::new();
    let mut utterances = Vec::new();
    let mut native_samples = 0u64;
    let mut retry = FIRST_RETRY;
    let mut source_error = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            summary.interrupted = true;
            break;
        }
        native.clear();
        let ended = match capture.read(&mut native, POLL) {
            Ok(ReadOutcome::Samples(_)) => false,
            Ok(ReadOutcome::Ended) => true,
            Err(error) if capture.is_live() => {
                match reopen(open, &error, &mut retry, &stop, &mut shower) {
                    Some(new) => {
                        // The lost capture's count; the last capture's is added at the end.
                        summary.overruns += capture.overruns();
                        capture = new;
                        summary.reopened += 1;
                        resampler = StreamResampler::new(capture.sample_rate(), rate)?;
                        segmenter.finish(&mut utterances);
                        shower.idle("listening");
                        continue;
                    }
                    None => {
                        summary.interrupted = true;
                        break;
                    }
                }
            }
            Err(error) => {
                source_error = Some(error);
                break;
            }
        };
        retry = FIRST_RETRY;
        native_samples += native.len() as u64;
        let arrived = Instant::now();
        resampled.clear();
        resampler.process(&native, &mut resampled)?;
        if ended {
            resampler.flush(&mut resampled)?;
        }
        segmenter.push(&resampled, arrived, &mut utterances);
        if ended {
            segmenter.finish(&mut utterances);
        }
        for utterance in utterances.drain(..) {
            summary.utterances += 1;
            let prompt = prompts.get(prompt_index).cloned();
            if options.prompt == Prompt::Cycle && !prompts.is_empty() {
                prompt_index = (prompt_index + 1) % prompts.len();
                shower.prompt(prompts.get(prompt_index).map(String::as_str));
            }
            queue.push(
                Job {
                    number: summary.utterances,
                    utterance,
                    prompt,
                },
                wait_for_room,
            );
        }
        while let Ok(done) = done_rx.try_recv() {
            shower.show(done, &mut summary);
        }
        if ended {
            break;
        }
    }

    summary.dropped_at_stop = queue.close(summary.interrupted);
    // The worker finishes what it holds (all of it unless interrupted), then hangs up.
    for done in done_rx.iter() {
        shower.show(done, &mut summary);
    }
    if worker.join().is_err() {
        anyhow::bail!("the inference thread panicked");
    }
    summary.dropped_busy = queue.dropped();
    summary.overruns += capture.overruns();
    summary.audio_seconds = native_samples as f64 / f64::from(capture.sample_rate().max(1));
    let counts = segmenter.stats();
    summary.too_short = counts.dropped_short;
    summary.cut = counts.cut;
    if let Some(error) = source_error {
        return Err(anyhow::Error::new(error).context(format!(
            "the audio source failed after {} utterances ({summary})",
            summary.utterances
        )));
    }
    Ok(summary)
}

/// A source as the user named it.
fn describe(spec: &SourceSpec) -> String {
    match spec {
        SourceSpec::Microphone { device: None } => "the default microphone".into(),
        SourceSpec::Microphone { device: Some(d) } => format!("microphone `{d}`"),
        SourceSpec::File { path, .. } => path.display().to_string(),
        SourceSpec::Stdin { .. } => "stdin".into(),
    }
}

/// The prompt words of a run, checked against the bundle.
fn prompt_words(pipeline: &Pipeline, prompt: &Prompt) -> anyhow::Result<Vec<String>> {
    match prompt {
        Prompt::None => Ok(Vec::new()),
        Prompt::Fixed(word) => {
            if !pipeline.knows_text(word) {
                let known: Vec<&str> = pipeline.keywords().words().collect();
                anyhow::bail!(
                    "the prompt word `{word}` is not in the bundle's keyword table and the bundle has no text encoder; known words: {}",
                    known.join(", ")
                );
            }
            Ok(vec![word.clone()])
        }
        Prompt::Cycle => Ok(pipeline.keywords().words().map(str::to_string).collect()),
    }
}

/// Waits with backoff and reopens the source; `None` when stopped meanwhile.
fn reopen(
    open: &mut Opener<'_>,
    error: &SourceError,
    retry: &mut Duration,
    stop: &AtomicBool,
    shower: &mut Shower<'_>,
) -> Option<Capture> {
    let mut last = error.to_string();
    loop {
        let message = format!(
            "audio source lost ({last}); retrying in {:.1} s",
            retry.as_secs_f64()
        );
        eprintln!("{message}");
        shower.idle(&message);
        let deadline = Instant::now() + *retry;
        while Instant::now() < deadline {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            thread::sleep(POLL);
        }
        *retry = (*retry * 2).min(MAX_RETRY);
        match open() {
            Ok(capture) => {
                eprintln!("audio source back: {}", capture.describe());
                return Some(capture);
            }
            Err(e) => last = e.to_string(),
        }
    }
}

/// The inference thread: classifies queued utterances until the queue closes.
fn work(
    pipeline: &Pipeline,
    queue: &JobQueue,
    done: &mpsc::Sender<Done>,
    no_text: bool,
    model: Option<ModelKind>,
) {
    let rate = f64::from(pipeline.frontend().config().target_rate);
    while let Some(job) = queue.pop() {
        let text = if no_text {
            TextInput::None
        } else {
            TextInput::Auto {
                prompt: job.prompt.as_deref(),
            }
        };
        let u = &job.utterance;
        let result = pipeline
            .classify(&u.samples, text, model)
            .map_err(|e| e.to_string());
        let sent = done.send(Done {
            number: job.number,
            start_s: u.start_sample as f64 / rate,
            end_s: (u.start_sample + u.samples.len() as u64) as f64 / rate,
            speech_seconds: (u.speech_end_sample.saturating_sub(u.start_sample)) as f32
                / rate as f32,
            end_of_speech: u.end_of_speech,
            result,
        });
        if sent.is_err() {
            return;
        }
    }
}

/// Shows results on the displays, hands them on, and keeps the latency figures.
struct Shower<'a> {
    displays: &'a mut [Box<dyn Display>],
    heard: &'a mut dyn FnMut(&Heard),
    latency_sum: f64,
}

impl<'a> Shower<'a> {
    fn new(displays: &'a mut [Box<dyn Display>], heard: &'a mut dyn FnMut(&Heard)) -> Self {
        Self {
            displays,
            heard,
            latency_sum: 0.0,
        }
    }

    fn each(
        &mut self,
        mut draw: impl FnMut(&mut dyn Display) -> Result<(), crate::display::DisplayError>,
    ) {
        for display in self.displays.iter_mut() {
            // A display that fails must not stop the others or the listening.
            if let Err(e) = draw(display.as_mut()) {
                eprintln!("display error: {e}");
            }
        }
    }

    fn prompt(&mut self, word: Option<&str>) {
        self.each(|d| d.prompt(word));
    }

    fn idle(&mut self, message: &str) {
        self.each(|d| d.idle(message));
    }

    fn show(&mut self, done: Done, summary: &mut ListenSummary) {
        if let Ok(result) = &done.result {
            let reading = Reading {
                emotion: result.emotion,
                confidence: result.confidence,
                probabilities: result.probabilities,
                keyword: result.keyword.clone(),
                keyword_source: result.keyword_source.name(),
                speech_seconds: done.speech_seconds,
                latency: done.end_of_speech.elapsed(),
            };
            self.each(|d| d.show(&reading));
        }
        // The run's figures include the drawing (an OLED takes milliseconds).
        let latency = done.end_of_speech.elapsed();
        if done.result.is_ok() {
            summary.classified += 1;
            self.latency_sum += latency.as_secs_f64();
            summary.max_latency = summary.max_latency.max(latency.as_secs_f64());
            summary.mean_latency = self.latency_sum / summary.classified as f64;
        } else {
            summary.failed += 1;
        }
        (self.heard)(&Heard {
            number: done.number,
            start_s: done.start_s,
            end_s: done.end_s,
            result: done.result,
            latency,
        });
    }
}

/// `heard` for the command line: one JSON object per utterance, or one line of text on
/// stderr (the terminal display has stdout).
pub fn report(heard: &Heard, json: bool) {
    let mut extra = Map::new();
    extra.insert("utterance".into(), json!(heard.number));
    extra.insert("start_s".into(), json!(heard.start_s));
    extra.insert("end_s".into(), json!(heard.end_s));
    match (&heard.result, json) {
        (Err(error), true) => {
            extra.insert("error".into(), json!(error));
            println!("{}", serde_json::Value::Object(extra));
        }
        (Err(error), false) => eprintln!("utterance {}: {error}", heard.number),
        (Ok(result), true) => {
            extra.insert(
                "shown_after_ms".into(),
                json!(heard.latency.as_secs_f64() * 1e3),
            );
            println!("{}", crate::output::json(extra, result));
        }
        (Ok(result), false) => eprintln!(
            "utterance {} ({:.1}-{:.1} s): {}; shown {:.0} ms after the end of speech",
            heard.number,
            heard.start_s,
            heard.end_s,
            crate::output::line(result),
            heard.latency.as_secs_f64() * 1e3
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(number: u64) -> Job {
        Job {
            number,
            utterance: Utterance {
                samples: vec![0.0; 4],
                start_sample: 0,
                speech_end_sample: 4,
                end_of_speech: Instant::now(),
                cut: false,
            },
            prompt: None,
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts() {
        let q = JobQueue::new(2);
        for n in 1..=5 {
            q.push(job(n), false);
        }
        assert_eq!(q.dropped(), 3);
        assert_eq!(q.pop().map(|j| j.number), Some(4));
        assert_eq!(q.close(false), 0);
        assert_eq!(q.pop().map(|j| j.number), Some(5));
        assert!(q.pop().is_none(), "closed and empty");
    }

    #[test]
    fn a_waiting_push_loses_nothing() {
        let q = Arc::new(JobQueue::new(1));
        let consumer = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut got = Vec::new();
                while let Some(j) = q.pop() {
                    thread::sleep(Duration::from_millis(2));
                    got.push(j.number);
                }
                got
            })
        };
        for n in 1..=20 {
            q.push(job(n), true);
        }
        q.close(false);
        assert_eq!(consumer.join().unwrap(), (1..=20).collect::<Vec<_>>());
        assert_eq!(q.dropped(), 0);
    }

    #[test]
    fn closing_with_discard_empties_the_queue() {
        let q = JobQueue::new(4);
        q.push(job(1), false);
        q.push(job(2), false);
        assert_eq!(q.close(true), 2);
        assert!(q.pop().is_none());
    }
}
