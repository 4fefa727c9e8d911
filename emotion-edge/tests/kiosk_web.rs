//! The kiosk page end to end: the real `emotion-edge listen --display web`, fed one
//! corpus utterance as a WAV stream on stdin, serves the page; headless Chromium
//! renders it, and the page must show what the JSON line says (emotion, confidence,
//! all seven probabilities, one history entry), twice:
//!
//! - live: Chromium opens `/?close-after=1` before any audio is fed, and the test feeds
//!   the utterance only once the server counts the page's event stream. The reading
//!   reaches the page over the stream; the page draws it and closes the stream, so that
//!   Chromium's virtual time (`--virtual-time-budget`, which stands still while a
//!   request is open) runs out and it dumps the DOM. The page must have had no reading
//!   at load (`data-initial-readings="0"`) and one from the stream
//!   (`data-live-readings="1"`, `data-stream="closed"`).
//! - after the fact: a fresh load of `/`, the reading written into the page by the
//!   server (`data-initial-readings="1"`).
//!
//! Screenshots at 800×480 and 1280×800 are kept as artifacts
//! (`CARGO_TARGET_TMPDIR/kiosk/`, and `$EMOTION_EDGE_ARTIFACTS` when set).
//!
//! Chromium is `$CHROMIUM`, else `chromium` or `chromium-browser` on PATH. Without it
//! the browser half is skipped, unless `CI` is set: then it fails (Debian:
//! `apt-get install chromium fonts-dejavu-core`).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_emotion-edge");
/// Bundle loading and the first utterance, in a debug build on a slow machine.
const STARTUP: Duration = Duration::from_secs(120);
const UTTERANCE: Duration = Duration::from_secs(120);
const BROWSER: Duration = Duration::from_secs(90);
/// How long the page loaded before the audio may take to open its event stream.
const CONNECT: Duration = Duration::from_secs(60);
/// How long the live page may take, once the JSON line is out, to get the reading,
/// draw it, close its stream and be dumped.
const LIVE_DUMP: Duration = Duration::from_secs(30);
/// The live page's virtual time, in ms: it only runs once the page has closed its
/// event stream, and then at once (nothing on the page waits on a timer).
const VIRTUAL_TIME_MS: u32 = 5_000;
const EXIT: Duration = Duration::from_secs(30);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A child process that is killed (with its process group) if the test ends early.
struct Guard {
    child: Child,
    name: &'static str,
}

impl Guard {
    fn spawn(command: &mut Command, name: &'static str) -> Guard {
        use std::os::unix::process::CommandExt;
        // Its own group, so that a browser's helpers go with it.
        command.process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Guard { child, name }
    }

    /// Waits for the exit up to `limit`; kills and panics past it.
    fn wait(&mut self, limit: Duration, log: &dyn Fn() -> String) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!("{} did not exit within {limit:?}\n{}", self.name, log());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group])
                .stderr(Stdio::null())
                .status();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Lines of a child's pipe, on a thread: sent one by one and kept for messages.
fn lines(pipe: impl Read + Send + 'static) -> (Receiver<String>, Arc<Mutex<String>>) {
    let (tx, rx) = mpsc::channel();
    let all = Arc::new(Mutex::new(String::new()));
    let kept = Arc::clone(&all);
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            kept.lock().unwrap().push_str(&format!("{line}\n"));
            // Nobody may listen any more: keep draining so that the child never blocks.
            let _ = tx.send(line);
        }
    });
    (rx, all)
}

/// The first line for which `pick` says yes, within `limit`.
fn wait_for<T>(
    rx: &Receiver<String>,
    limit: Duration,
    what: &str,
    log: &dyn Fn() -> String,
    mut pick: impl FnMut(&str) -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(found) = pick(&line) {
                    return found;
                }
            }
            Err(RecvTimeoutError::Timeout) => panic!("no {what} within {limit:?}\n{}", log()),
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the output ended before {what}\n{}", log())
            }
        }
    }
}

/// A WAV stream as `arecord -t wav` writes it (sizes unknown: `0xFFFFFFFF`), so that
/// the stream lasts until stdin closes: 0.5 s of faint noise, the utterance, 2 s of
/// faint noise (the segmenter ends an utterance after 400 ms of silence).
fn wav_stream(path: &Path) -> Vec<u8> {
    let mut reader = hound::WavReader::open(path).expect("corpus wav");
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.bits_per_sample), (1, 16), "{spec:?}");
    let speech: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("samples");
    let rate = spec.sample_rate;
    let mut seed = 7u64;
    let mut noise = |seconds: f64| -> Vec<i16> {
        (0..(seconds * f64::from(rate)) as usize)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((seed >> 33) % 9) as i16 - 4
            })
            .collect()
    };
    let mut samples = noise(0.5);
    samples.extend_from_slice(&speech);
    samples.extend(noise(2.0));

    let mut v = common::wav_header(rate, None);
    v.extend(common::le_bytes(&samples));
    v
}

/// `GET path` on the kiosk server: status code and body.
fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: kiosk\r\n\r\n").as_bytes())
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok());
    (code.expect("a status"), body.to_string())
}

/// Chromium, or why the browser half does not run.
fn chromium() -> Result<PathBuf, String> {
    if let Some(given) = std::env::var_os("CHROMIUM").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(given));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(
        "no Chromium: set $CHROMIUM or put chromium or chromium-browser on PATH \
         (Debian: apt-get install --no-install-recommends chromium fonts-dejavu-core)"
            .into(),
    )
}

/// Headless Chromium on its way, its stdout and stderr read on threads.
struct Browser {
    guard: Guard,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Browser {
    /// Starts headless Chromium on `url` with `flags`.
    fn start(chromium: &Path, profile: &Path, url: &str, flags: &[String]) -> Browser {
        let mut command = Command::new(chromium);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(flags)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = Guard::spawn(&mut command, "chromium");
        let mut stdout = guard.child.stdout.take().unwrap();
        let (out_tx, out_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            let _ = out_tx.send(text);
        });
        let (_err_rx, stderr) = lines(guard.child.stderr.take().unwrap());
        Browser {
            guard,
            stdout: out_rx,
            stderr,
        }
    }

    fn log(&self) -> String {
        stderr_log(&self.stderr)
    }

    /// Panics (with its stderr) if it has already exited.
    fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.guard.child.try_wait().expect("try_wait") {
            panic!("chromium exited ({status}) before {what}\n{}", self.log());
        }
    }

    /// Waits up to `limit` for a successful exit; its stdout. `hint` goes with a
    /// timeout's message.
    fn finish(mut self, limit: Duration, hint: &str) -> String {
        let stderr = Arc::clone(&self.stderr);
        let status = self
            .guard
            .wait(limit, &|| format!("{hint}{}", stderr_log(&stderr)));
        assert!(
            status.success(),
            "chromium failed: {status}\n{}",
            self.log()
        );
        // Its helpers may hold the pipe a moment longer.
        self.stdout
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("chromium's output never ended\n{}", self.log()))
    }
}

fn stderr_log(stderr: &Mutex<String>) -> String {
    format!("chromium stderr:\n{}", stderr.lock().unwrap())
}

/// Runs headless Chromium on `url` with `flags` and the page taken at its load event;
/// its stdout.
fn browse(chromium: &Path, profile: &Path, url: &str, flags: &[String]) -> String {
    // The page's event stream never ends: the DOM and the screenshots are taken at the
    // load event (virtual time would wait on the open stream).
    let mut flags = flags.to_vec();
    flags.push("--timeout=30000".into());
    Browser::start(chromium, profile, url, &flags).finish(BROWSER, "")
}

/// The text of the element that opens with `open` (up to the next tag).
fn text_after<'a>(html: &'a str, open: &str) -> &'a str {
    let at = html
        .find(open)
        .unwrap_or_else(|| panic!("no {open} in the page"));
    let rest = &html[at..];
    let start = rest.find('>').expect("tag end") + 1;
    let end = rest[start..].find('<').expect("next tag");
    &rest[start..start + end]
}

/// The part of the page inside `<ol id="ID" …>…</ol>`.
fn list<'a>(html: &'a str, id: &str) -> &'a str {
    let open = format!("<ol id=\"{id}\"");
    let at = html
        .find(&open)
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let end = html[at..].find("</ol>").expect("list end");
    &html[at..at + end]
}

/// `95.5%` → 95.5.
fn percent(text: &str) -> f64 {
    text.trim()
        .strip_suffix('%')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a percentage: {text:?}"))
}

fn assert_percent(shown: &str, probability: f64, what: &str) {
    let shown = percent(shown);
    // One decimal on the page: within half a step of the value (and its rounding).
    assert!(
        (shown - probability * 100.0).abs() <= 0.051,
        "{what}: the page shows {shown}%, the JSON says {probability}"
    );
}

/// The value of `name` on the page's `<body>`.
fn body_data<'a>(dom: &'a str, name: &str) -> &'a str {
    let at = dom.find("<body").expect("a <body>");
    let tag = &dom[at..at + dom[at..].find('>').expect("the <body> tag's end")];
    let key = format!(" {name}=\"");
    let start = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} on {tag}"))
        + key.len();
    let end = tag[start..].find('"').expect("attribute end");
    &tag[start..start + end]
}

/// Checks the dumped DOM against the JSON line of the utterance.
fn check_page(dom: &str, heard: &Value) {
    let emotion = heard["emotion"].as_str().expect("emotion");
    assert_eq!(text_after(dom, "<div id=\"emotion\""), emotion, "#emotion");
    assert_percent(
        text_after(dom, "<div id=\"confidence\""),
        heard["confidence"].as_f64().expect("confidence"),
        "#confidence",
    );
    assert_eq!(
        text_after(dom, "<div id=\"status\""),
        "listening",
        "#status"
    );
    let bars = list(dom, "bars");
    let probabilities = heard["probabilities"].as_object().expect("probabilities");
    assert_eq!(probabilities.len(), 7);
    for (name, p) in probabilities {
        let open = format!("<li data-emotion=\"{name}\"");
        let row_at = bars
            .find(&open)
            .unwrap_or_else(|| panic!("no bar for {name}"));
        let row = &bars[row_at..];
        let row = &row[..row.find("</li>").expect("row end")];
        assert_eq!(
            row[..row.find('>').unwrap()].contains("win"),
            name == emotion,
            "only the winner is highlighted: {row}"
        );
        assert_percent(
            text_after(row, "<span class=\"pct\""),
            p.as_f64().unwrap(),
            name,
        );
    }
    let history = list(dom, "history");
    assert_eq!(
        history.matches("<li").count(),
        1,
        "one history entry: {history}"
    );
    assert!(
        history.contains(&format!("<li data-emotion=\"{emotion}\"")),
        "{history}"
    );
}

/// Saves the page at `width`×`height`; checks it is a real PNG; its path.
fn screenshot(chromium: &Path, profile: &Path, url: &str, (width, height): (u32, u32)) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kiosk");
    std::fs::create_dir_all(&dir).expect("artifact folder");
    let path = dir.join(format!("kiosk-{width}x{height}.png"));
    let _ = std::fs::remove_file(&path);
    browse(
        chromium,
        profile,
        url,
        &[
            format!("--screenshot={}", path.display()),
            format!("--window-size={width},{height}"),
        ],
    );
    let png =
        std::fs::read(&path).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", path.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 5_000,
        "a {}-byte screenshot is blank",
        png.len()
    );
    let ihdr = &png[16..24];
    let size = (
        u32::from_be_bytes(ihdr[..4].try_into().unwrap()),
        u32::from_be_bytes(ihdr[4..].try_into().unwrap()),
    );
    assert_eq!(size, (width, height), "screenshot size");
    eprintln!("kiosk screenshot: {}", path.display());
    if let Some(artifacts) = std::env::var_os("EMOTION_EDGE_ARTIFACTS").filter(|v| !v.is_empty()) {
        let artifacts = PathBuf::from(artifacts);
        std::fs::create_dir_all(&artifacts).expect("EMOTION_EDGE_ARTIFACTS");
        let copy = artifacts.join(path.file_name().unwrap());
        std::fs::copy(&path, &copy).expect("copy the screenshot");
        eprintln!("kiosk screenshot copied to {}", copy.display());
    }
    path
}

#[test]
fn the_kiosk_page_shows_what_listen_heard() {
    // Decided first, so that a missing browser on CI fails before the slow part.
    let browser = match chromium() {
        Ok(path) => Some(path),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{why}; CI must run the kiosk page test")
        }
        Err(why) => {
            eprintln!("skipping the browser half of the kiosk test: {why}");
            None
        }
    };
    let root = workspace();
    let wav = root.join(
        "data/synthetic-tess/TESS Toronto emotional speech set data/OAF_angry/OAF_back_angry.wav",
    );
    let stream = wav_stream(&wav);

    let mut command = Command::new(BIN);
    command
        .args(["listen", "--bundle"])
        .arg(root.join("data/demo-bundle"))
        .args([
            "--source",
            "-",
            "--display",
            "web",
            "--web-port",
            "0",
            "--json",
            "--no-text",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut listen = Guard::spawn(&mut command, "emotion-edge listen");
    let (out_rx, out) = lines(listen.child.stdout.take().unwrap());
    let (err_rx, err) = lines(listen.child.stderr.take().unwrap());
    let log = || {
        format!(
            "emotion-edge stdout:\n{}\nemotion-edge stderr:\n{}",
            out.lock().unwrap(),
            err.lock().unwrap()
        )
    };

    let address: SocketAddr = wait_for(&err_rx, STARTUP, "`kiosk page:` line", &log, |line| {
        let url = line.strip_prefix("kiosk page: http://")?;
        url.trim_end_matches('/').parse().ok()
    });
    assert!(address.ip().is_loopback(), "{address}");
    assert_ne!(address.port(), 0);
    let url = format!("http://{address}/");
    assert_eq!(get(address, "/healthz"), (200, "ok\n".to_string()));
    let state = |what: &str| -> Value {
        let (code, body) = get(address, "/state");
        assert_eq!(code, 200, "/state {what}: {body}");
        serde_json::from_str(&body).expect("state JSON")
    };

    // The live page: opened before any audio, it must get the reading over its event
    // stream. Its DOM is dumped once the page has closed the stream.
    let profile = tempfile::tempdir().expect("browser profile");
    let live = browser.as_ref().map(|chromium| {
        let started = Instant::now();
        let mut live = Browser::start(
            chromium,
            profile.path(),
            &format!("{url}?close-after=1"),
            &[
                "--dump-dom".to_string(),
                format!("--virtual-time-budget={VIRTUAL_TIME_MS}"),
            ],
        );
        let deadline = started + CONNECT;
        loop {
            live.assert_running("the page opened its event stream");
            let s = state("while the page loads");
            if s["event_streams"].as_u64().expect("event_streams") >= 1 {
                assert_eq!(s["readings"], 0, "a reading before any audio: {s}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the page opened no event stream within {CONNECT:?}\n{}",
                live.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        eprintln!("kiosk live page connected in {:?}", started.elapsed());
        live
    });

    // The audio goes in on a thread (stdin is paced in real time, the pipe is small);
    // stdin stays open afterwards, or listen (and the page) would end.
    let mut stdin: ChildStdin = listen.child.stdin.take().unwrap();
    let fed = Instant::now();
    let writer = thread::spawn(move || stdin.write_all(&stream).map(|()| stdin));

    let heard: Value = wait_for(&out_rx, UTTERANCE, "JSON line", &log, |line| {
        let value: Value = serde_json::from_str(line).ok()?;
        value.get("emotion").is_some().then_some(value)
    });
    assert_eq!(heard["utterance"], 1, "{heard}");
    eprintln!(
        "kiosk utterance heard {:?} after the audio began",
        fed.elapsed()
    );

    if let Some(live) = live {
        let dom = live.finish(
            LIVE_DUMP,
            "the live page never closed its event stream: it did not draw a reading \
             that came over /events\n",
        );
        eprintln!(
            "kiosk live page dumped {:?} after the audio began",
            fed.elapsed()
        );
        assert_eq!(body_data(&dom, "data-initial-readings"), "0", "at load");
        assert_eq!(
            body_data(&dom, "data-live-readings"),
            "1",
            "over the stream"
        );
        assert_eq!(body_data(&dom, "data-stream"), "closed");
        check_page(&dom, &heard);
    }

    let stdin = writer
        .join()
        .expect("writer thread")
        .unwrap_or_else(|e| panic!("writing the stream failed: {e}\n{}", log()));

    // The server's own state agrees with the JSON line.
    let state = state("after the utterance");
    assert_eq!(state["reading"]["emotion"], heard["emotion"], "{state}");
    assert_eq!(
        state["history"].as_array().map(Vec::len),
        Some(1),
        "{state}"
    );
    let served: HashMap<String, f64> = state["reading"]["probabilities"]
        .as_array()
        .expect("probabilities")
        .iter()
        .map(|p| {
            (
                p["emotion"].as_str().unwrap().to_string(),
                p["probability"].as_f64().unwrap(),
            )
        })
        .collect();
    for (name, p) in heard["probabilities"].as_object().unwrap() {
        assert!((served[name] - p.as_f64().unwrap()).abs() < 1e-6, "{name}");
    }

    // After the fact: a page loaded now has the reading written into it.
    if let Some(chromium) = browser {
        let started = Instant::now();
        let dom = browse(&chromium, profile.path(), &url, &["--dump-dom".to_string()]);
        eprintln!(
            "kiosk page loaded after the fact in {:?}",
            started.elapsed()
        );
        assert_eq!(body_data(&dom, "data-initial-readings"), "1", "at load");
        assert_eq!(
            body_data(&dom, "data-live-readings"),
            "0",
            "over the stream"
        );
        check_page(&dom, &heard);
        for size in [(800, 480), (1280, 800)] {
            screenshot(&chromium, profile.path(), &url, size);
        }
    }

    // Closing stdin ends the stream, listen, and the server.
    drop(stdin);
    let status = listen.wait(EXIT, &log);
    assert!(
        status.success(),
        "emotion-edge exited with {status}\n{}",
        log()
    );
    assert!(
        TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err(),
        "the kiosk server outlived listen"
    );
}

/// "No word heard", in a browser: the kiosk display shown a reading whose keyword
/// spotter heard no vocabulary word; the page loaded after it says so where the keyword
/// goes, and still shows the emotion.
#[test]
fn the_kiosk_page_says_no_word_heard() {
    use emotion_core::{Emotion, KeywordSource};
    use emotion_edge::display::web::WebDisplay;
    use emotion_edge::display::{Display, Reading};

    let chromium = match chromium() {
        Ok(path) => path,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{why}; CI must run the kiosk page test")
        }
        Err(why) => {
            eprintln!("skipping the kiosk page's \"no word heard\" in a browser: {why}");
            return;
        }
    };
    let mut web = WebDisplay::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut probabilities = [0.05; Emotion::COUNT];
    probabilities[Emotion::Sad.index()] = 0.7;
    web.show(&Reading {
        emotion: Emotion::Sad,
        confidence: 0.7,
        probabilities,
        keyword: None,
        keyword_source: KeywordSource::NoWordHeard,
        speech_seconds: 1.25,
        latency: Duration::from_millis(90),
    })
    .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/", web.local_addr());
    let dom = browse(&chromium, profile.path(), &url, &["--dump-dom".to_string()]);
    assert_eq!(text_after(&dom, "<div id=\"emotion\""), "sad");
    let detail = text_after(&dom, "<div id=\"detail\"");
    assert!(
        detail.starts_with("no word heard · 1.3 s of speech"),
        "{detail}"
    );
}
