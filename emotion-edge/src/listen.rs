//! `emotion-edge listen`: audio in, emotions shown, until the source ends or a signal
//! stops it.
//!
//! ```text
//! source ─ ring (lock-free) ─ resample to 16 kHz ─ segmenter ─ queue ─ worker ─ displays
//! (mic callback, file/stdin thread)       (this thread)        (bounded)  (pipeline)
//! ```
//!
//! An utterance is classified and shown as soon as its post-roll of silence is complete
//! (an early answer, see [`Early`]), not after the segmenter's longer hangover.
//!
//! The capture side never waits on the rest. Utterances wait in a bounded queue; when
//! inference falls behind a live source, the oldest waiting utterance is dropped and
//! counted, so memory stays bounded. A file or stdin read as fast as possible waits for
//! room instead, so nothing is lost. A microphone that fails is reopened with backoff; a file or
//! stdin that fails ends the run with its error.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use emotion_core::head_graph::ModelKind;
use emotion_core::pipeline::{Classification, Pipeline, TextInput};
use serde_json::{Map, json};

use crate::audio::device::SourceError;
use crate::audio::source::{self, Capture, ReadOutcome, SourceSpec};
use crate::display::{Display, Reading};
use crate::segmenter::{Segmenter, SegmenterConfig, Utterance};
use emotion_core::frontend::StreamResampler;
use emotion_core::vad::VadModel;

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
    /// The neural voice-activity detector the segmenter runs; `None`: the energy one.
    pub vad: Option<VadModel>,
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
    /// Early answers withdrawn because the speech went on after the pause (the whole
    /// utterance was classified when it ended).
    pub withdrawn: u64,
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
    /// The MQTT output's figures, when it ran (filled in by the caller, which owns it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<crate::mqtt::MqttSummary>,
}

impl std::fmt::Display for ListenSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} utterances in {:.1} s of audio: {} classified, {} failed, {} dropped (busy), {} dropped at stop; {} early answers withdrawn; {} too short, {} cut at max length; {} samples overrun; source reopened {} times; latency mean {:.0} ms, max {:.0} ms{}",
            self.utterances,
            self.audio_seconds,
            self.classified,
            self.failed,
            self.dropped_busy,
            self.dropped_at_stop,
            self.withdrawn,
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
        )?;
        match &self.mqtt {
            Some(mqtt) => write!(f, "; {mqtt}"),
            None => Ok(()),
        }
    }
}

/// One utterance waiting for the worker.
struct Job {
    /// Unique per run (an utterance may have several jobs: previews, then itself).
    id: u64,
    number: u64,
    /// A preview: the early answer for an utterance not yet emitted.
    preview: bool,
    utterance: Utterance,
    prompt: Option<String>,
}

/// What the worker sends back.
struct Done {
    id: u64,
    number: u64,
    preview: bool,
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
}

impl JobQueue {
    fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                closed: false,
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
    /// possible must lose nothing); otherwise drops the oldest job and returns it.
    fn push(&self, job: Job, wait: bool) -> Option<Job> {
        let mut state = self.lock();
        while wait && state.jobs.len() >= self.capacity && !state.closed {
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        let dropped = if state.jobs.len() >= self.capacity {
            state.jobs.pop_front()
        } else {
            None
        };
        state.jobs.push_back(job);
        self.ready.notify_all();
        dropped
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

    /// No more jobs; with `discard`, the waiting ones are dropped (and returned).
    fn close(&self, discard: bool) -> Vec<Job> {
        let mut state = self.lock();
        state.closed = true;
        let discarded = if discard {
            state.jobs.drain(..).collect()
        } else {
            Vec::new()
        };
        self.ready.notify_all();
        discarded
    }
}

/// A preview submitted for classification.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Preview {
    job: u64,
    number: u64,
    start: u64,
    len: usize,
}

/// Early answers. The segmenter previews an utterance once its post-roll of silence is
/// complete ([`Segmenter::take_preview`]), while the hangover still waits to be sure the
/// speech has ended: `listen` classifies and shows the preview at once, which takes the
/// hangover out of the latency. When the utterance is then emitted with the same samples,
/// the early answer is its answer (classified once); when speech resumed, the early
/// answer is withdrawn and the whole utterance is classified when it ends.
#[derive(Default)]
struct Early {
    /// The latest preview, queued or being classified.
    latest: Option<Preview>,
    /// Preview jobs whose utterance was emitted as previewed: their answer counts.
    confirmed: HashSet<u64>,
    /// The latest preview's answer, shown, until its utterance is emitted.
    shown: Option<(Done, Duration)>,
}

/// What to do with a preview's answer.
enum EarlyAnswer {
    /// Its utterance was emitted as previewed: show and count it.
    Count,
    /// Its utterance is not emitted yet: show it and wait.
    Show,
    /// Withdrawn (speech went on): drop it.
    Drop,
}

impl Early {
    /// A new preview; an earlier one of the same utterance is withdrawn.
    fn previewed(&mut self, preview: Preview, summary: &mut ListenSummary) {
        if let Some(old) = self.latest.replace(preview) {
            self.withdraw(old, summary);
        }
    }

    /// Utterance `number` was emitted. `Some` when it is the latest preview, so it needs
    /// no job: with the answer when that was shown already. `None`: classify it.
    fn emitted(
        &mut self,
        number: u64,
        utterance: &Utterance,
        summary: &mut ListenSummary,
    ) -> Option<Option<(Done, Duration)>> {
        let latest = self.latest.take()?;
        let same = latest.number == number
            && latest.start == utterance.start_sample
            && latest.len == utterance.samples.len();
        if !same {
            self.withdraw(latest, summary);
            return None;
        }
        match self.shown.take() {
            Some((done, latency)) if done.id == latest.job => Some(Some((done, latency))),
            other => {
                self.shown = other;
                self.confirmed.insert(latest.job);
                Some(None)
            }
        }
    }

    fn withdraw(&mut self, preview: Preview, summary: &mut ListenSummary) {
        summary.withdrawn += 1;
        if self
            .shown
            .as_ref()
            .is_some_and(|(d, _)| d.id == preview.job)
        {
            self.shown = None;
        }
    }

    fn answered(&mut self, done: &Done) -> EarlyAnswer {
        if self.confirmed.remove(&done.id) {
            EarlyAnswer::Count
        } else if self.latest.is_some_and(|p| p.job == done.id) {
            EarlyAnswer::Show
        } else {
            EarlyAnswer::Drop
        }
    }

    /// A preview job that will never run (dropped from a full queue, or at a stop).
    /// True when its utterance had been emitted: then that utterance is lost with it.
    fn lost(&mut self, job: u64) -> bool {
        if self.latest.is_some_and(|p| p.job == job) {
            self.latest = None;
        }
        self.confirmed.remove(&job)
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
    let first = open()
        .with_context(|| format!("cannot open the audio source {}", describe(&options.source)))?;
    let mut native_rate = first.sample_rate();
    let mut resampler = StreamResampler::new(native_rate, rate)?;
    let mut segmenter = match &options.vad {
        Some(vad) => Segmenter::with_vad(options.segmenter.clone(), rate, vad)
            .map_err(|e| anyhow::anyhow!("segmenter: {e}"))?,
        None => Segmenter::new(options.segmenter.clone(), rate)
            .map_err(|e| anyhow::anyhow!("segmenter settings: {e}"))?,
    };
    eprintln!(
        "listening: {} -> {rate} Hz; {} segmenter; bundle variant {} (Ctrl-C to stop)",
        first.describe(),
        segmenter.detector_name(),
        pipeline.variant()
    );

    let queue = Arc::new(JobQueue::new(options.queue));
    let wait_for_room = first.waits_for_reader();
    // `None` only while a lost device is being reopened.
    let mut capture = Some(first);
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
    let mut early = Early::default();
    let mut jobs = 0u64;
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
        let Some(live) = capture.as_mut() else {
            break; // not reached: a failed reopen ends the loop below
        };
        let ended = match live.read(&mut native, POLL) {
            Ok(ReadOutcome::Samples(_)) => false,
            Ok(ReadOutcome::Ended) => true,
            Err(error) if live.is_live() => {
                // Close the lost device before opening it again: a card's PCM opens once
                // at a time, so a stream still holding it would keep every retry busy (and
                // a USB microphone plugged back in can take its old card number only once
                // nothing holds the old one). Its count; the last one's is added at the end.
                if let Some(lost) = capture.take() {
                    summary.overruns += lost.overruns();
                }
                match reopen(open, &error, &mut retry, &stop, &mut shower) {
                    Some(new) => {
                        native_rate = new.sample_rate();
                        capture = Some(new);
                        summary.reopened += 1;
                        resampler = StreamResampler::new(native_rate, rate)?;
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
        segmenter
            .push(&resampled, arrived, &mut utterances)
            .context("the voice-activity detector failed")?;
        if ended {
            segmenter.finish(&mut utterances);
        }
        for utterance in utterances.drain(..) {
            summary.utterances += 1;
            let number = summary.utterances;
            let prompt = prompts.get(prompt_index).cloned();
            if options.prompt == Prompt::Cycle && !prompts.is_empty() {
                prompt_index = (prompt_index + 1) % prompts.len();
                shower.prompt(prompts.get(prompt_index).map(String::as_str));
            }
            match early.emitted(number, &utterance, &mut summary) {
                Some(Some((done, latency))) => shower.count(done, latency, &mut summary),
                Some(None) => {}
                None => {
                    jobs += 1;
                    let job = Job {
                        id: jobs,
                        number,
                        preview: false,
                        utterance,
                        prompt,
                    };
                    enqueue(&queue, job, wait_for_room, &mut early, &mut summary);
                }
            }
        }
        if let Some(utterance) = segmenter.take_preview() {
            jobs += 1;
            let number = summary.utterances + 1;
            let preview = Preview {
                job: jobs,
                number,
                start: utterance.start_sample,
                len: utterance.samples.len(),
            };
            early.previewed(preview, &mut summary);
            let job = Job {
                id: jobs,
                number,
                preview: true,
                utterance,
                prompt: prompts.get(prompt_index).cloned(),
            };
            enqueue(&queue, job, wait_for_room, &mut early, &mut summary);
        }
        while let Ok(done) = done_rx.try_recv() {
            receive(done, &mut shower, &mut early, &mut summary);
        }
        if ended {
            break;
        }
    }

    for job in queue.close(summary.interrupted) {
        if !job.preview || early.lost(job.id) {
            summary.dropped_at_stop += 1;
        }
    }
    // The worker finishes what it holds (all of it unless interrupted), then hangs up.
    for done in done_rx.iter() {
        receive(done, &mut shower, &mut early, &mut summary);
    }
    if worker.join().is_err() {
        anyhow::bail!("the inference thread panicked");
    }
    // An early answer shown whose utterance the stop left unfinished: it was heard.
    if let Some((done, latency)) = early.shown.take() {
        summary.utterances += 1;
        shower.count(done, latency, &mut summary);
    }
    if let Some(capture) = &capture {
        summary.overruns += capture.overruns();
    }
    summary.audio_seconds = native_samples as f64 / f64::from(native_rate.max(1));
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

/// Queues a job; one dropped from a full queue is counted (a preview only when its
/// utterance was emitted already).
fn enqueue(queue: &JobQueue, job: Job, wait: bool, early: &mut Early, summary: &mut ListenSummary) {
    if let Some(dropped) = queue.push(job, wait)
        && (!dropped.preview || early.lost(dropped.id))
    {
        summary.dropped_busy += 1;
    }
}

/// Shows (and counts) an answer from the worker; previews as [`Early`] says.
fn receive(done: Done, shower: &mut Shower<'_>, early: &mut Early, summary: &mut ListenSummary) {
    let answer = if done.preview {
        early.answered(&done)
    } else {
        EarlyAnswer::Count
    };
    match answer {
        EarlyAnswer::Count => {
            let latency = shower.draw(&done);
            shower.count(done, latency, summary);
        }
        EarlyAnswer::Show => {
            let latency = shower.draw(&done);
            early.shown = Some((done, latency));
        }
        EarlyAnswer::Drop => {}
    }
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
            id: job.id,
            number: job.number,
            preview: job.preview,
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

    /// Draws an answer on every display; returns the latency it was shown with.
    fn draw(&mut self, done: &Done) -> Duration {
        if let Ok(result) = &done.result {
            let reading = Reading {
                emotion: result.emotion,
                confidence: result.confidence,
                probabilities: result.probabilities,
                keyword: result.keyword.clone(),
                keyword_source: result.keyword_source,
                speech_seconds: done.speech_seconds,
                latency: done.end_of_speech.elapsed(),
            };
            self.each(|d| d.show(&reading));
        }
        // The run's figures include the drawing (an OLED takes milliseconds).
        done.end_of_speech.elapsed()
    }

    /// Counts a drawn answer as its utterance's and hands it to `heard`.
    fn count(&mut self, done: Done, latency: Duration, summary: &mut ListenSummary) {
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

    fn utterance(start: u64, len: usize) -> Utterance {
        Utterance {
            samples: vec![0.0; len],
            start_sample: start,
            speech_end_sample: start + len as u64,
            end_of_speech: Instant::now(),
            cut: false,
        }
    }

    fn job(number: u64) -> Job {
        Job {
            id: number,
            number,
            preview: false,
            utterance: utterance(0, 4),
            prompt: None,
        }
    }

    fn done(id: u64, number: u64) -> Done {
        Done {
            id,
            number,
            preview: true,
            start_s: 0.0,
            end_s: 0.0,
            speech_seconds: 0.0,
            end_of_speech: Instant::now(),
            result: Err("not classified in this test".into()),
        }
    }

    fn preview(job: u64, number: u64, start: u64, len: usize) -> Preview {
        Preview {
            job,
            number,
            start,
            len,
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_returns_it() {
        let q = JobQueue::new(2);
        let dropped: Vec<u64> = (1..=5)
            .filter_map(|n| q.push(job(n), false))
            .map(|j| j.number)
            .collect();
        assert_eq!(dropped, [1, 2, 3]);
        assert_eq!(q.pop().map(|j| j.number), Some(4));
        assert!(q.close(false).is_empty());
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
        let dropped = (1..=20).filter(|&n| q.push(job(n), true).is_some()).count();
        q.close(false);
        assert_eq!(consumer.join().unwrap(), (1..=20).collect::<Vec<_>>());
        assert_eq!(dropped, 0);
    }

    #[test]
    fn closing_with_discard_empties_the_queue() {
        let q = JobQueue::new(4);
        q.push(job(1), false);
        q.push(job(2), false);
        assert_eq!(q.close(true).len(), 2);
        assert!(q.pop().is_none());
    }

    #[test]
    fn an_utterance_emitted_as_previewed_takes_the_early_answer() {
        let mut summary = ListenSummary::default();
        // Answer first, then the utterance: the shown answer is handed back to count.
        let mut early = Early::default();
        early.previewed(preview(7, 1, 100, 50), &mut summary);
        assert!(matches!(early.answered(&done(7, 1)), EarlyAnswer::Show));
        early.shown = Some((done(7, 1), Duration::ZERO));
        let taken = early.emitted(1, &utterance(100, 50), &mut summary);
        assert!(matches!(taken, Some(Some((d, _))) if d.id == 7));
        // The utterance first, then the answer: it counts when it arrives.
        let mut early = Early::default();
        early.previewed(preview(8, 2, 300, 60), &mut summary);
        assert!(matches!(
            early.emitted(2, &utterance(300, 60), &mut summary),
            Some(None)
        ));
        assert!(matches!(early.answered(&done(8, 2)), EarlyAnswer::Count));
        assert_eq!(summary.withdrawn, 0);
    }

    #[test]
    fn speech_going_on_withdraws_the_early_answer() {
        let mut summary = ListenSummary::default();
        let mut early = Early::default();
        early.previewed(preview(1, 1, 100, 50), &mut summary);
        early.shown = Some((done(1, 1), Duration::ZERO));
        // A second pause in the same utterance: the first preview is withdrawn.
        early.previewed(preview(2, 1, 100, 90), &mut summary);
        assert_eq!(summary.withdrawn, 1);
        assert!(
            early.shown.is_none(),
            "the withdrawn answer no longer waits"
        );
        assert!(matches!(early.answered(&done(1, 1)), EarlyAnswer::Drop));
        // Emitted longer than the last preview (speech went on again): classify it.
        assert!(
            early
                .emitted(1, &utterance(100, 120), &mut summary)
                .is_none()
        );
        assert_eq!(summary.withdrawn, 2);
        assert!(matches!(early.answered(&done(2, 1)), EarlyAnswer::Drop));
    }

    #[test]
    fn a_lost_preview_loses_its_utterance_only_once_emitted() {
        let mut summary = ListenSummary::default();
        let mut early = Early::default();
        early.previewed(preview(1, 1, 0, 10), &mut summary);
        assert!(
            !early.lost(1),
            "not emitted yet: its utterance gets a job of its own"
        );
        assert!(early.emitted(1, &utterance(0, 10), &mut summary).is_none());
        early.previewed(preview(2, 2, 50, 10), &mut summary);
        assert!(matches!(
            early.emitted(2, &utterance(50, 10), &mut summary),
            Some(None)
        ));
        assert!(
            early.lost(2),
            "emitted as previewed: the utterance goes with it"
        );
    }
}
