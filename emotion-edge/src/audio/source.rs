//! Where `listen` gets its audio: a microphone (cpal, behind the `mic` feature), a WAV
//! file, or a WAV stream on stdin. Every source writes mono `f32` at its own native rate
//! into a [`capture_ring`], and the listen loop reads from it through [`Capture`].
//!
//! Files and stdin are decoded on a thread of their own, either paced to the wall clock
//! (as if a microphone were speaking them) or as fast as the reader keeps up (for tests
//! and batch runs: then the thread waits for room in the ring instead of dropping).

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::device::{
    DeviceInfo, MAX_RING_SECONDS, MIN_RING_SECONDS, SourceError, chunk_frames, ring_capacity,
};
use super::ring::{CaptureReader, CaptureState, CaptureWriter, capture_ring};
use super::wav::WavStream;

/// The longest a paced or waiting thread sleeps before looking at the stop flag.
const MAX_SLEEP: Duration = Duration::from_millis(20);

/// How fast a file or stdin source delivers its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pace {
    /// As fast as the audio plays: like a microphone. Overruns are counted.
    RealTime,
    /// As fast as the reader takes them; nothing is dropped.
    Fast,
}

impl Pace {
    fn describe(self) -> &'static str {
        match self {
            Pace::RealTime => "real time",
            Pace::Fast => "fast",
        }
    }
}

/// A source of audio to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// An input device: the named one (case-insensitive substring of its name or id,
    /// or an ALSA PCM name like `hw:1,0`), or the default input.
    Microphone {
        /// Which device; `None` for the default input.
        device: Option<String>,
    },
    /// A WAV file.
    File {
        /// The file.
        path: PathBuf,
        /// How fast to play it.
        pace: Pace,
    },
    /// A WAV stream on standard input (e.g. `arecord -t wav | emotion-edge listen --source -`).
    Stdin {
        /// How fast to play it.
        pace: Pace,
    },
}

/// What [`Capture::read`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many samples were appended (0 when the timeout passed with none).
    Samples(usize),
    /// The source has ended and every sample was read.
    Ended,
}

impl SourceSpec {
    /// Reads a `--source` argument: `-` is stdin, `mic` or `mic:NAME` a microphone,
    /// anything else a WAV file.
    pub fn from_arg(arg: &str, pace: Pace) -> SourceSpec {
        match arg {
            "-" => SourceSpec::Stdin { pace },
            "mic" => SourceSpec::Microphone { device: None },
            _ => match arg.strip_prefix("mic:") {
                Some(name) if !name.is_empty() => SourceSpec::Microphone {
                    device: Some(name.to_owned()),
                },
                _ => SourceSpec::File {
                    path: PathBuf::from(arg),
                    pace,
                },
            },
        }
    }
}

/// An open source: read its samples, at [`sample_rate`](Self::sample_rate), mono.
///
/// Dropping it stops the stream or thread behind it.
pub struct Capture {
    reader: CaptureReader,
    description: String,
    sample_rate: u32,
    kind: Kind,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
    /// Whether Drop may wait for the worker (stdin's may sit in a blocking read).
    join_on_drop: bool,
    /// Whether the source waits for the reader instead of dropping (file or stdin read fast).
    waits_for_reader: bool,
    /// A file error already handed to the caller once.
    error_reported: bool,
    /// When samples last arrived (a live device that goes quiet has been lost).
    last_samples: Instant,
    #[cfg(feature = "mic")]
    _stream: Option<super::mic::MicStream>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Microphone { device: String },
    Stream { name: String },
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("description", &self.description)
            .field("sample_rate", &self.sample_rate)
            .finish_non_exhaustive()
    }
}

/// A live device that delivers nothing for this long is reported lost.
const STALL_TIMEOUT: Duration = Duration::from_secs(3);

impl Capture {
    /// For people, e.g. "file a.wav (24414 Hz, 1 ch, 16-bit) real time" or
    /// "microphone 'hw:1' (48000 Hz, 2 ch, i16)".
    pub fn describe(&self) -> String {
        self.description.clone()
    }

    /// The native sample rate of what [`read`](Self::read) returns, in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Whether this is a live device (whose loss is worth retrying).
    pub fn is_live(&self) -> bool {
        matches!(self.kind, Kind::Microphone { .. })
    }

    /// Whether the source waits for the reader instead of overrunning (a file or stdin
    /// read as fast as possible): then nothing downstream needs to drop either.
    pub fn waits_for_reader(&self) -> bool {
        self.waits_for_reader
    }

    /// Mono samples dropped because the reader fell behind (live and real-time sources).
    pub fn overruns(&self) -> u64 {
        self.reader.state().overruns()
    }

    /// Appends the mono samples waiting (waiting up to `timeout` for some) to `out`.
    ///
    /// `Samples(0)` means the timeout passed; `Ended` that a file or stdin is done.
    /// A lost device gives `Err(SourceError::Lost)` on every call: drop this capture and
    /// open the device again. A file that fails part way gives its error once, then `Ended`.
    pub fn read(
        &mut self,
        out: &mut Vec<f32>,
        timeout: Duration,
    ) -> Result<ReadOutcome, SourceError> {
        let taken = self.reader.read(out, timeout);
        if taken > 0 {
            self.last_samples = Instant::now();
            return Ok(ReadOutcome::Samples(taken));
        }
        let state = self.reader.state();
        match &self.kind {
            Kind::Microphone { device } => {
                if let Some(message) = state.failure() {
                    return Err(SourceError::Lost {
                        device: device.clone(),
                        message,
                    });
                }
                if state.is_ended() {
                    return Err(SourceError::Lost {
                        device: device.clone(),
                        message: "the stream stopped".to_owned(),
                    });
                }
                if self.last_samples.elapsed() > STALL_TIMEOUT {
                    state.fail(format!(
                        "no audio from it for {} s",
                        STALL_TIMEOUT.as_secs()
                    ));
                    return Err(SourceError::Lost {
                        device: device.clone(),
                        message: state.failure().unwrap_or_default(),
                    });
                }
                Ok(ReadOutcome::Samples(0))
            }
            Kind::Stream { name } => {
                if !self.error_reported
                    && let Some(message) = state.failure()
                {
                    self.error_reported = true;
                    return Err(SourceError::Read {
                        name: name.clone(),
                        message,
                    });
                }
                if self.reader.is_finished() {
                    Ok(ReadOutcome::Ended)
                } else {
                    Ok(ReadOutcome::Samples(0))
                }
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        #[cfg(feature = "mic")]
        drop(self._stream.take());
        if let Some(worker) = self.worker.take()
            && self.join_on_drop
        {
            let _ = worker.join();
        }
    }
}

/// Opens a source with a ring of `ring_seconds` of audio at its native rate.
pub fn open(spec: &SourceSpec, ring_seconds: f32) -> Result<Capture, SourceError> {
    check_ring(ring_seconds)?;
    match spec {
        SourceSpec::Microphone { device } => open_microphone(device.as_deref(), ring_seconds),
        SourceSpec::File { path, pace } => {
            let file = std::fs::File::open(path).map_err(|source| SourceError::Open {
                path: path.clone(),
                source,
            })?;
            let name = file_name(path);
            // A regular file's length is known (then its data must all be there, as for
            // `classify`); a FIFO's is not.
            let total_len = file
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            open_wav(
                BufReader::new(file),
                total_len,
                &name,
                &format!("file {name}"),
                *pace,
                ring_seconds,
                Behaves::Stream { join_on_drop: true },
            )
        }
        SourceSpec::Stdin { pace } => {
            // The header is read here, so this waits until the writer starts sending.
            open_wav(
                BufReader::new(io::stdin()),
                None,
                "stdin",
                "stdin",
                *pace,
                ring_seconds,
                Behaves::Stream {
                    join_on_drop: false,
                },
            )
        }
    }
}

/// Opens a WAV stream from any reader (what [`SourceSpec::Stdin`] does with stdin).
/// `name` appears in messages and in [`Capture::describe`]. The header is read before
/// this returns; the samples on a thread that ends with the stream.
pub fn open_stream<R: Read + Send + 'static>(
    reader: R,
    name: &str,
    pace: Pace,
    ring_seconds: f32,
) -> Result<Capture, SourceError> {
    check_ring(ring_seconds)?;
    open_wav(
        reader,
        None,
        name,
        name,
        pace,
        ring_seconds,
        Behaves::Stream { join_on_drop: true },
    )
}

/// Opens a WAV stream that behaves like a live input device named `name`: samples the
/// reader has no room for are overrun (counted, never waited for, even at
/// [`Pace::Fast`]), and the stream's end or failure is the device being lost, which
/// `listen` answers by reopening with backoff. For fault tests and soak runs: a real
/// device cannot be made to fail on cue.
pub fn open_stream_as_device<R: Read + Send + 'static>(
    reader: R,
    name: &str,
    pace: Pace,
    ring_seconds: f32,
) -> Result<Capture, SourceError> {
    check_ring(ring_seconds)?;
    open_wav(
        reader,
        None,
        name,
        name,
        pace,
        ring_seconds,
        Behaves::Device,
    )
}

/// Lists the input devices (needs the `mic` feature).
pub fn list_devices() -> Result<Vec<DeviceInfo>, SourceError> {
    #[cfg(feature = "mic")]
    {
        super::mic::list_devices()
    }
    #[cfg(not(feature = "mic"))]
    {
        Err(SourceError::NoMicSupport)
    }
}

fn check_ring(seconds: f32) -> Result<(), SourceError> {
    if (MIN_RING_SECONDS..=MAX_RING_SECONDS).contains(&seconds) {
        Ok(())
    } else {
        Err(SourceError::InvalidRing { seconds })
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn open_microphone(device: Option<&str>, ring_seconds: f32) -> Result<Capture, SourceError> {
    #[cfg(feature = "mic")]
    {
        let opened = super::mic::open(device, ring_seconds)?;
        Ok(Capture {
            reader: opened.reader,
            description: opened.description,
            sample_rate: opened.sample_rate,
            kind: Kind::Microphone {
                device: opened.device,
            },
            stop: Arc::new(AtomicBool::new(false)),
            worker: None,
            join_on_drop: false,
            waits_for_reader: false,
            error_reported: false,
            last_samples: Instant::now(),
            _stream: Some(opened.stream),
        })
    }
    #[cfg(not(feature = "mic"))]
    {
        let _ = (device, ring_seconds);
        Err(SourceError::NoMicSupport)
    }
}

/// How a WAV stream's capture behaves.
#[derive(Debug, Clone, Copy)]
enum Behaves {
    /// A file or stdin; Drop waits for its thread when `join_on_drop`.
    Stream { join_on_drop: bool },
    /// A live device (see [`open_stream_as_device`]).
    Device,
}

fn open_wav<R: Read + Send + 'static>(
    reader: R,
    total_len: Option<u64>,
    name: &str,
    label: &str,
    pace: Pace,
    ring_seconds: f32,
    behaves: Behaves,
) -> Result<Capture, SourceError> {
    let wav = WavStream::new(reader, name, total_len).map_err(SourceError::Wav)?;
    let format = *wav.format();
    let (writer, reader) = capture_ring(
        ring_capacity(ring_seconds, format.sample_rate),
        format.channels,
    );
    let (kind, join_on_drop, waits_for_reader) = match behaves {
        Behaves::Stream { join_on_drop } => (
            Kind::Stream {
                name: name.to_owned(),
            },
            join_on_drop,
            pace == Pace::Fast,
        ),
        Behaves::Device => (
            Kind::Microphone {
                device: name.to_owned(),
            },
            true,
            false,
        ),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = Arc::clone(&stop);
        let name = name.to_owned();
        std::thread::Builder::new()
            .name(format!("wav-{name}"))
            .spawn(move || pump(wav, writer, pace, waits_for_reader, &stop, &name))
            .map_err(SourceError::Thread)?
    };
    Ok(Capture {
        reader,
        description: format!("{label} ({}) {}", format.describe(), pace.describe()),
        sample_rate: format.sample_rate,
        kind,
        stop,
        worker: Some(worker),
        join_on_drop,
        waits_for_reader,
        error_reported: false,
        last_samples: Instant::now(),
        #[cfg(feature = "mic")]
        _stream: None,
    })
}

/// The file/stdin thread: decodes 10 ms at a time into the ring until the data ends,
/// the capture is dropped, or reading fails (the error goes to the shared state).
/// With `wait`, it waits for room in the ring; otherwise what does not fit is overrun.
/// Dropping the writer at the end marks the stream ended.
fn pump<R: Read>(
    mut wav: WavStream<R>,
    mut writer: CaptureWriter,
    pace: Pace,
    wait: bool,
    stop: &AtomicBool,
    name: &str,
) {
    let rate = wav.format().sample_rate;
    let chunk = chunk_frames(rate);
    let mut samples: Vec<f64> = Vec::with_capacity(chunk * usize::from(wav.format().channels));
    let start = Instant::now();
    let mut frames_done: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        if wait && !wait_for_room(&writer, chunk, stop) {
            break;
        }
        samples.clear();
        let frames = match wav.read_frames(&mut samples, chunk) {
            Ok(0) => break,
            Ok(frames) => frames,
            Err(error) => {
                fail(writer.state(), name, &error);
                break;
            }
        };
        frames_done += frames as u64;
        if pace == Pace::RealTime {
            // Deliver a chunk once it has "been recorded", like a device would.
            let due = start + Duration::from_secs_f64(frames_done as f64 / f64::from(rate));
            if !sleep_until(due, stop) {
                break;
            }
        }
        writer.write(&samples);
    }
}

fn fail(state: &CaptureState, name: &str, error: &io::Error) {
    state.fail(format!("{name}: {error}"));
}

/// Waits until `frames` fit in the ring; false if told to stop first.
fn wait_for_room(writer: &CaptureWriter, frames: usize, stop: &AtomicBool) -> bool {
    let frames = frames.min(writer.capacity());
    while writer.vacant() < frames {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Sleeps until `due`, in short naps that watch the stop flag; false if told to stop.
fn sleep_until(due: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        let Some(left) = due.checked_duration_since(now) else {
            return true;
        };
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(MAX_SLEEP));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::wav::wav_bytes;

    fn read_to_end(capture: &mut Capture) -> Vec<f32> {
        let mut out = Vec::new();
        let start = Instant::now();
        loop {
            match capture.read(&mut out, Duration::from_millis(50)) {
                Ok(ReadOutcome::Ended) => return out,
                Ok(ReadOutcome::Samples(_)) => {}
                Err(error) => panic!("{error}"),
            }
            assert!(start.elapsed() < Duration::from_secs(20), "never ended");
        }
    }

    #[test]
    fn source_arguments() {
        assert_eq!(
            SourceSpec::from_arg("-", Pace::Fast),
            SourceSpec::Stdin { pace: Pace::Fast }
        );
        assert_eq!(
            SourceSpec::from_arg("mic", Pace::Fast),
            SourceSpec::Microphone { device: None }
        );
        assert_eq!(
            SourceSpec::from_arg("mic:USB", Pace::Fast),
            SourceSpec::Microphone {
                device: Some("USB".to_owned())
            }
        );
        assert_eq!(
            SourceSpec::from_arg("a.wav", Pace::RealTime),
            SourceSpec::File {
                path: "a.wav".into(),
                pace: Pace::RealTime
            }
        );
    }

    #[test]
    fn a_stream_is_read_to_the_end_as_mono() {
        let data: Vec<u8> = (0..4_000i16)
            .flat_map(|i| [i, -i])
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let bytes = wav_bytes(1, 2, 16_000, 16, u32::MAX, &data);
        let mut capture =
            open_stream(io::Cursor::new(bytes), "pipe", Pace::Fast, 0.1).expect("opens");
        assert_eq!(capture.sample_rate(), 16_000);
        assert_eq!(capture.describe(), "pipe (16000 Hz, 2 ch, 16-bit) fast");
        let out = read_to_end(&mut capture);
        assert_eq!(out.len(), 4_000);
        assert!(out.iter().all(|&x| x == 0.0));
        assert_eq!(capture.overruns(), 0);
        // Ended stays ended.
        let mut more = Vec::new();
        assert_eq!(
            capture.read(&mut more, Duration::ZERO).expect("ended"),
            ReadOutcome::Ended
        );
    }

    #[test]
    fn fast_pace_waits_for_a_slow_reader_instead_of_dropping() {
        // 2 s of audio through a ring of 0.1 s, read slowly.
        let data: Vec<u8> = (0..32_000).flat_map(|i| (i as i16).to_le_bytes()).collect();
        let bytes = wav_bytes(1, 1, 16_000, 16, 64_000, &data);
        let mut capture =
            open_stream(io::Cursor::new(bytes), "slow", Pace::Fast, 0.1).expect("opens");
        let mut out = Vec::new();
        loop {
            std::thread::sleep(Duration::from_millis(2));
            match capture.read(&mut out, Duration::from_millis(5)) {
                Ok(ReadOutcome::Ended) => break,
                Ok(_) => {}
                Err(error) => panic!("{error}"),
            }
        }
        assert_eq!(out.len(), 32_000);
        assert_eq!(capture.overruns(), 0);
        let expected: Vec<f32> = (0..32_000)
            .map(|i| f32::from(i as i16) / 32_768.0)
            .collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn a_stream_failing_part_way_reports_once_then_ends() {
        struct Failing(io::Cursor<Vec<u8>>);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.read(buf)? {
                    0 => Err(io::Error::other("the cable came out")),
                    n => Ok(n),
                }
            }
        }
        let bytes = wav_bytes(1, 1, 16_000, 16, 0, &[0u8; 100]);
        let mut capture =
            open_stream(Failing(io::Cursor::new(bytes)), "flaky", Pace::Fast, 0.1).expect("opens");
        let mut out = Vec::new();
        let mut error = None;
        for _ in 0..1_000 {
            match capture.read(&mut out, Duration::from_millis(10)) {
                Ok(ReadOutcome::Ended) => break,
                Ok(_) => {}
                Err(e) => error = Some(e.to_string()),
            }
        }
        let error = error.expect("an error");
        assert!(error.contains("the cable came out"), "{error}");
        assert!(error.contains("flaky"), "{error}");
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let error = open(
            &SourceSpec::File {
                path: "/no/such/file.wav".into(),
                pace: Pace::Fast,
            },
            1.0,
        )
        .expect_err("missing");
        assert!(error.to_string().contains("check the path"), "{error}");
        let error = open_stream(io::Cursor::new(b"hello".to_vec()), "junk", Pace::Fast, 1.0)
            .expect_err("junk");
        assert!(
            error.to_string().contains("junk: not a readable WAV file"),
            "{error}"
        );
        let error =
            open_stream(io::Cursor::new(Vec::new()), "x", Pace::Fast, 0.0).expect_err("ring");
        assert!(matches!(error, SourceError::InvalidRing { .. }), "{error}");
        let error =
            open_stream(io::Cursor::new(Vec::new()), "x", Pace::Fast, f32::NAN).expect_err("ring");
        assert!(matches!(error, SourceError::InvalidRing { .. }), "{error}");
    }

    #[cfg(not(feature = "mic"))]
    #[test]
    fn without_the_mic_feature_the_message_says_how_to_get_it() {
        let error = open(&SourceSpec::Microphone { device: None }, 1.0).expect_err("no mic");
        let message = error.to_string();
        assert!(message.contains("--features mic"), "{message}");
        assert!(message.contains("libasound2-dev"), "{message}");
        assert!(message.contains("--source -"), "{message}");
        assert!(matches!(list_devices(), Err(SourceError::NoMicSupport)));
    }

    #[test]
    fn a_capture_can_move_to_the_listen_thread() {
        fn is_send<T: Send>() {}
        is_send::<Capture>();
    }

    #[test]
    fn dropping_a_real_time_capture_stops_its_thread() {
        let bytes = wav_bytes(1, 1, 16_000, 16, 0, &vec![0u8; 16_000 * 2 * 30]);
        let capture =
            open_stream(io::Cursor::new(bytes), "long", Pace::RealTime, 1.0).expect("opens");
        let start = Instant::now();
        drop(capture);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
