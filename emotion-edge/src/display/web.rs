//! The kiosk page: a small HTTP server (std::net, one thread per client) that serves a
//! self-contained page and pushes every change to it as Server-Sent Events, for a
//! browser in kiosk mode on the board's own screen.
//!
//! | request        | answer                                                      |
//! |----------------|-------------------------------------------------------------|
//! | `GET /`        | the page (`display/kiosk.html`), the current state in it     |
//! | `GET /events`  | `text/event-stream`: the whole state at once, then one event per change (`reading`, `prompt`, `status`), a comment every 15 s |
//! | `GET /state`   | the state as JSON, with `event_streams`: the event streams open now |
//! | `GET /healthz` | `ok`                                                        |
//!
//! Other paths get 404, other methods 405. `show`, `prompt` and `idle` only update
//! the shared state under a mutex and wake the clients; every client thread writes on
//! its own, never while holding the lock, so a slow or dead client cannot hold up
//! listening. A client that stops reading is dropped when a write has waited
//! [`WRITE_TIMEOUT`]. At most [`MAX_CLIENTS`] are served at once; more get 503.
//! Dropping the [`WebDisplay`] stops the server and releases the port.
//!
//! The page's query parameters (`?cursor`, `?close-after=N` for tests and
//! screenshots) are read by its script; see `display/kiosk.html`.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use emotion_core::{Emotion, KeywordSource};
use serde::Serialize;

use super::{Display, DisplayError, NO_WORD_HEARD, Reading, color};

/// Clients served at once (page loads, event streams, state requests); more get 503.
pub const MAX_CLIENTS: usize = 16;
/// Readings kept in the history, newest first.
pub const HISTORY: usize = 8;
/// The largest request head (request line and headers) read; larger gets 431.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one write may wait on a client that does not read before it is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an event stream gets a comment when nothing changes.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often the accepting thread looks whether it should stop.
const ACCEPT_POLL: Duration = Duration::from_millis(50);
/// How long the accepting thread spends on a client it turns away (503).
const REJECT_LINGER: Duration = Duration::from_millis(200);
/// How long closing waits for the client threads to end.
const STOP_WAIT: Duration = Duration::from_secs(2);
/// The browser's delay before reconnecting a lost event stream.
const RETRY_MS: u32 = 2000;

/// The page, with its placeholders.
const PAGE: &str = include_str!("kiosk.html");
const COLORS_MARK: &str = "/*@EMOTION_COLORS@*/";
const BARS_MARK: &str = "<!--@BARS@-->";
const STATE_MARK: &str = "/*@STATE@*/";

/// The kiosk page display: a server on its own threads, fed by `show`, `prompt` and
/// `idle`.
pub struct WebDisplay {
    shared: Arc<Shared>,
    address: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl WebDisplay {
    /// Binds `address` (e.g. 127.0.0.1:8080; port 0 picks a free port) and serves in
    /// background threads.
    pub fn start(address: SocketAddr) -> Result<WebDisplay, DisplayError> {
        let error = |detail: String| DisplayError {
            display: "web",
            detail,
        };
        let listener = TcpListener::bind(address)
            .map_err(|e| error(format!("cannot listen on {address}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| error(format!("cannot read the address bound for {address}: {e}")))?;
        // Accept polls, so that the thread notices a stop without a connection.
        listener
            .set_nonblocking(true)
            .map_err(|e| error(format!("cannot configure the listener on {bound}: {e}")))?;
        let shared = Arc::new(Shared::new()?);
        let page = Arc::new(Page::new());
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("kiosk-accept".into())
                .spawn(move || accept(&listener, &shared, &page))
                .map_err(|e| error(format!("cannot start the server thread: {e}")))?
        };
        Ok(WebDisplay {
            shared,
            address: bound,
            acceptor: Some(acceptor),
        })
    }

    /// The address actually bound (for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }
}

impl Display for WebDisplay {
    fn name(&self) -> &'static str {
        "web"
    }

    fn show(&mut self, reading: &Reading) -> Result<(), DisplayError> {
        let view = ReadingView::new(reading, unix_ms());
        self.shared.update(Change::Reading, |state| {
            state.history.push_front(HistoryItem {
                emotion: view.emotion,
                confidence: view.confidence,
                color: view.color.clone(),
                keyword: view.keyword.clone(),
                unix_ms: view.unix_ms,
            });
            state.history.truncate(HISTORY);
            state.readings += 1;
            state.reading = Some(view);
        })
    }

    fn prompt(&mut self, word: Option<&str>) -> Result<(), DisplayError> {
        self.shared.update(Change::Prompt, |state| {
            state.prompt = word.map(str::to_string);
        })
    }

    fn idle(&mut self, message: &str) -> Result<(), DisplayError> {
        self.shared.update(Change::Status, |state| {
            state.status = message.to_string();
        })
    }
}

impl Drop for WebDisplay {
    fn drop(&mut self) {
        {
            let inner = self.shared.lock();
            // Under the lock, so that no client thread can miss it between looking and
            // waiting.
            self.shared.stop.store(true, Ordering::Relaxed);
            // Unblocks every client thread in a read or a write.
            for socket in inner.sockets.values() {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
        self.shared.changed.notify_all();
        // The listener closes (the port is free) when the accepting thread ends.
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let deadline = Instant::now() + STOP_WAIT;
        let mut inner = self.shared.lock();
        while inner.clients > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            inner = self
                .shared
                .changed
                .wait_timeout(inner, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// What the page shows; sent whole on every change (it is small).
#[derive(Debug, Clone, Serialize)]
struct PageState {
    /// What `idle` said last (`listening` until then).
    status: String,
    /// The word the speaker is asked to say.
    prompt: Option<String>,
    /// The latest reading.
    reading: Option<ReadingView>,
    /// The last [`HISTORY`] readings, newest first (the latest included).
    history: VecDeque<HistoryItem>,
    /// Readings shown since the start.
    readings: u64,
}

/// A reading as the page gets it.
#[derive(Debug, Clone, Serialize)]
struct ReadingView {
    emotion: &'static str,
    confidence: f32,
    /// The emotion's colour from the shared table, `#rrggbb`.
    color: String,
    /// All seven, in [`Emotion::ALL`] order.
    probabilities: Vec<Probability>,
    keyword: Option<String>,
    keyword_source: KeywordSource,
    /// Shown instead of a keyword: [`NO_WORD_HEARD`] when the keyword spotter heard no
    /// vocabulary word, else `null`.
    heard: Option<&'static str>,
    speech_seconds: f32,
    latency_ms: f64,
    /// When it was shown, milliseconds since the Unix epoch (the page shows local time).
    unix_ms: u64,
}

impl ReadingView {
    fn new(reading: &Reading, unix_ms: u64) -> Self {
        ReadingView {
            emotion: reading.emotion.name(),
            confidence: reading.confidence,
            color: color(reading.emotion).hex(),
            probabilities: Emotion::ALL
                .iter()
                .zip(reading.probabilities)
                .map(|(e, p)| Probability {
                    emotion: e.name(),
                    probability: p,
                })
                .collect(),
            keyword: reading.keyword.clone(),
            keyword_source: reading.keyword_source,
            heard: reading.no_word_heard().then_some(NO_WORD_HEARD),
            speech_seconds: reading.speech_seconds,
            latency_ms: reading.latency.as_secs_f64() * 1e3,
            unix_ms,
        }
    }
}

/// One emotion's probability.
#[derive(Debug, Clone, Serialize)]
struct Probability {
    emotion: &'static str,
    probability: f32,
}

/// One line of the history.
#[derive(Debug, Clone, Serialize)]
struct HistoryItem {
    emotion: &'static str,
    confidence: f32,
    color: String,
    keyword: Option<String>,
    unix_ms: u64,
}

/// What `GET /state` answers: the page's state, and how many event streams are open
/// (a test sees its browser connected before it feeds the audio).
#[derive(Serialize)]
struct StateReply<'a> {
    #[serde(flatten)]
    state: &'a PageState,
    /// Event streams being served. One whose client left is counted until the server
    /// notices, at the next event or keep-alive comment.
    event_streams: usize,
}

/// What changed, as the event's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Reading,
    Prompt,
    Status,
}

impl Change {
    fn event(self) -> &'static str {
        match self {
            Change::Reading => "reading",
            Change::Prompt => "prompt",
            Change::Status => "status",
        }
    }
}

/// The state and the clients, shared by the display and the server threads.
struct Shared {
    inner: Mutex<Inner>,
    /// Signalled on every change, and when a client ends.
    changed: Condvar,
    stop: AtomicBool,
}

struct Inner {
    /// Raised on every change; a client sends when it has seen an older one.
    version: u64,
    /// The latest change (`None`: nothing changed since the start).
    change: Option<Change>,
    state: PageState,
    /// `state` as JSON, made once per change.
    json: Arc<str>,
    /// Clients being served.
    clients: usize,
    /// Of them, event streams.
    event_streams: usize,
    next_client: u64,
    /// A handle on each client's socket, to shut it down on stop.
    sockets: HashMap<u64, TcpStream>,
}

impl Shared {
    fn new() -> Result<Self, DisplayError> {
        let state = PageState {
            status: "listening".into(),
            prompt: None,
            reading: None,
            history: VecDeque::new(),
            readings: 0,
        };
        let json = state_json(&state)?;
        Ok(Shared {
            inner: Mutex::new(Inner {
                version: 0,
                change: None,
                state,
                json,
                clients: 0,
                event_streams: 0,
                next_client: 0,
                sockets: HashMap::new(),
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent even if a thread panicked while holding it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state and wakes the clients. No I/O happens here.
    fn update(
        &self,
        change: Change,
        edit: impl FnOnce(&mut PageState),
    ) -> Result<(), DisplayError> {
        let mut inner = self.lock();
        edit(&mut inner.state);
        inner.json = state_json(&inner.state)?;
        inner.version += 1;
        inner.change = Some(change);
        drop(inner);
        self.changed.notify_all();
        Ok(())
    }

    /// The state as JSON and its version.
    fn snapshot(&self) -> (u64, Arc<str>) {
        let inner = self.lock();
        (inner.version, Arc::clone(&inner.json))
    }

    /// The answer to `GET /state`.
    fn state_reply(&self) -> Result<String, DisplayError> {
        let inner = self.lock();
        serde_json::to_string(&StateReply {
            state: &inner.state,
            event_streams: inner.event_streams,
        })
        .map_err(|e| DisplayError {
            display: "web",
            detail: format!("cannot write the page state as JSON: {e}"),
        })
    }
}

/// An event stream's place in [`Inner::event_streams`], while it is served.
struct StreamCount<'a>(&'a Shared);

impl<'a> StreamCount<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.lock().event_streams += 1;
        StreamCount(shared)
    }
}

impl Drop for StreamCount<'_> {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.event_streams = inner.event_streams.saturating_sub(1);
    }
}

fn state_json(state: &PageState) -> Result<Arc<str>, DisplayError> {
    serde_json::to_string(state)
        .map(Arc::from)
        .map_err(|e| DisplayError {
            display: "web",
            detail: format!("cannot write the page state as JSON: {e}"),
        })
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The page, cut around the place the state goes.
struct Page {
    before: String,
    after: String,
}

impl Page {
    /// Fills in the colour table and the bar rows, once.
    fn new() -> Self {
        let mut colors = String::new();
        let mut bars = String::new();
        for emotion in Emotion::ALL {
            let name = emotion.name();
            colors.push_str(&format!(
                "[data-emotion=\"{name}\"] {{ --c: {}; }}\n",
                color(emotion).hex()
            ));
            bars.push_str(&format!(
                "    <li data-emotion=\"{name}\"><span class=\"name\">{name}</span>\
                 <span class=\"track\"><span class=\"fill\"></span></span>\
                 <span class=\"pct\">–</span></li>\n"
            ));
        }
        let page = PAGE
            .replacen(COLORS_MARK, &colors, 1)
            .replacen(BARS_MARK, &bars, 1);
        let (before, after) = page.split_once(STATE_MARK).unwrap_or((&page, ""));
        Page {
            before: before.to_string(),
            after: after.to_string(),
        }
    }

    /// The page with `json` as its initial state.
    fn render(&self, json: &str) -> String {
        // Inside <script>, `</script>` in a string would end the element: JSON may
        // write `<` as `\u003c` instead.
        let json = json.replace('<', "\\u003c");
        let mut page = String::with_capacity(self.before.len() + json.len() + self.after.len());
        page.push_str(&self.before);
        page.push_str(&json);
        page.push_str(&self.after);
        page
    }
}

/// Accepts clients until told to stop; the listener closes when this returns.
fn accept(listener: &TcpListener, shared: &Arc<Shared>, page: &Arc<Page>) {
    while !shared.stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            // Nothing waiting, or out of file descriptors: look again soon.
            Err(_) => {
                thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        let admitted = {
            let mut inner = shared.lock();
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            if inner.clients >= MAX_CLIENTS {
                None
            } else {
                let id = inner.next_client;
                inner.next_client += 1;
                inner.clients += 1;
                if let Ok(handle) = stream.try_clone() {
                    inner.sockets.insert(id, handle);
                }
                Some(id)
            }
        };
        let Some(id) = admitted else {
            reject(stream);
            continue;
        };
        let slot = Slot {
            shared: Arc::clone(shared),
            id,
        };
        let page = Arc::clone(page);
        // If the thread cannot start, the closure (and the slot) is dropped.
        let _ = thread::Builder::new()
            .name("kiosk-client".into())
            .spawn(move || {
                let _ = serve(stream, &slot.shared, &page);
                drop(slot);
            });
    }
}

/// A client's place among the [`MAX_CLIENTS`]; given back when its thread ends.
struct Slot {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        inner.clients -= 1;
        inner.sockets.remove(&self.id);
        drop(inner);
        self.shared.changed.notify_all();
    }
}

/// Turns a client away: too many already.
fn reject(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(REJECT_LINGER));
    let _ = respond(
        &mut stream,
        Status::UNAVAILABLE,
        "text/plain; charset=utf-8",
        b"too many clients; try again\n",
        "Retry-After: 2\r\n",
    );
    finish(stream, REJECT_LINGER);
}

/// Ends a response: no more to send, then reads what the client still sends (a
/// request not read yet) for up to `linger`, so that closing does not reset the
/// connection before the client has read the answer.
fn finish(mut stream: TcpStream, linger: Duration) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(linger));
    let deadline = Instant::now() + linger;
    let mut sink = [0u8; 1024];
    let mut left: usize = 64 * 1024;
    while left > 0 && Instant::now() < deadline {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// An HTTP status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Status(u16, &'static str);

impl Status {
    const OK: Status = Status(200, "OK");
    const BAD_REQUEST: Status = Status(400, "Bad Request");
    const NOT_FOUND: Status = Status(404, "Not Found");
    const METHOD_NOT_ALLOWED: Status = Status(405, "Method Not Allowed");
    const TIMEOUT: Status = Status(408, "Request Timeout");
    const TOO_LARGE: Status = Status(431, "Request Header Fields Too Large");
    const INTERNAL: Status = Status(500, "Internal Server Error");
    const UNAVAILABLE: Status = Status(503, "Service Unavailable");
}

/// Writes a whole response (the connection closes after it).
fn respond(
    stream: &mut TcpStream,
    status: Status,
    content_type: &str,
    body: &[u8],
    headers: &str,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n{headers}\r\n",
        status.0,
        status.1,
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn respond_text(stream: &mut TcpStream, status: Status, text: &str) -> io::Result<()> {
    let headers = if status == Status::METHOD_NOT_ALLOWED {
        "Allow: GET\r\n"
    } else {
        ""
    };
    respond(
        stream,
        status,
        "text/plain; charset=utf-8",
        text.as_bytes(),
        headers,
    )
}

/// Why a request head could not be read.
#[derive(Debug, PartialEq, Eq)]
enum BadHead {
    /// The client closed before sending anything (a port probe).
    Closed,
    /// Not HTTP, or cut short.
    Malformed,
    /// Over [`MAX_HEAD`].
    TooLarge,
    /// Not all there within [`READ_TIMEOUT`].
    Timeout,
}

/// A request as far as the server cares.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    /// The path, without query or fragment.
    path: String,
}

/// Reads the request head, up to the blank line.
fn read_head(stream: &mut impl Read) -> Result<String, BadHead> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(BadHead::Timeout);
            }
            Err(_) => return Err(BadHead::Closed),
        };
        if n == 0 {
            return Err(if head.is_empty() {
                BadHead::Closed
            } else {
                BadHead::Malformed
            });
        }
        let searched_from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_blank_line(&head[searched_from..]) {
            head.truncate(searched_from + end);
            if head.len() > MAX_HEAD {
                return Err(BadHead::TooLarge);
            }
            return String::from_utf8(head).map_err(|_| BadHead::Malformed);
        }
        if head.len() > MAX_HEAD {
            return Err(BadHead::TooLarge);
        }
    }
}

/// Where the head ends: the first `\r\n\r\n` (or a bare `\n\n`).
fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = bytes.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Parses a request head: `METHOD /path HTTP/1.x` and `Name: value` lines.
fn parse_head(head: &str) -> Option<Request> {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
        || !matches!(version, "HTTP/1.0" | "HTTP/1.1")
    {
        return None;
    }
    for line in lines {
        let (name, _) = line.split_once(':')?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return None;
        }
    }
    let path = target
        .split(['?', '#'])
        .next()
        .unwrap_or(target)
        .to_string();
    Some(Request {
        method: method.to_string(),
        path,
    })
}

/// Serves one client: one request, then the connection closes (an event stream stays
/// open until the client goes or the server stops).
fn serve(mut stream: TcpStream, shared: &Shared, page: &Page) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let _ = stream.set_nodelay(true);
    let request = match read_head(&mut stream).map(|head| parse_head(&head)) {
        Ok(Some(request)) => request,
        Err(BadHead::Closed) => return Ok(()),
        Err(BadHead::Timeout) => {
            respond_text(&mut stream, Status::TIMEOUT, "request head too slow\n")?;
            return Ok(());
        }
        Err(BadHead::TooLarge) => {
            respond_text(&mut stream, Status::TOO_LARGE, "request head too large\n")?;
            finish(stream, Duration::from_millis(500));
            return Ok(());
        }
        Ok(None) | Err(BadHead::Malformed) => {
            respond_text(&mut stream, Status::BAD_REQUEST, "not an HTTP request\n")?;
            finish(stream, Duration::from_millis(500));
            return Ok(());
        }
    };
    if request.method != "GET" {
        respond_text(&mut stream, Status::METHOD_NOT_ALLOWED, "only GET\n")?;
        finish(stream, Duration::from_millis(500));
        return Ok(());
    }
    match request.path.as_str() {
        "/" | "/index.html" => {
            let (_, json) = shared.snapshot();
            let html = page.render(&json);
            respond(
                &mut stream,
                Status::OK,
                "text/html; charset=utf-8",
                html.as_bytes(),
                "",
            )?;
        }
        "/state" => match shared.state_reply() {
            Ok(json) => respond(
                &mut stream,
                Status::OK,
                "application/json",
                json.as_bytes(),
                "",
            )?,
            Err(e) => respond_text(&mut stream, Status::INTERNAL, &format!("{}\n", e.detail))?,
        },
        "/healthz" => respond_text(&mut stream, Status::OK, "ok\n")?,
        "/events" => return events(stream, shared),
        _ => respond_text(&mut stream, Status::NOT_FOUND, "not found\n")?,
    }
    finish(stream, Duration::from_millis(500));
    Ok(())
}

/// An event stream: the whole state at once (event `state`), then again after each
/// change, named after it; a comment when nothing changed for [`KEEP_ALIVE`].
fn events(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let _counted = StreamCount::new(shared);
    stream.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
             Connection: close\r\nX-Accel-Buffering: no\r\n\r\nretry: {RETRY_MS}\n\n"
        )
        .as_bytes(),
    )?;
    let mut seen: Option<u64> = None;
    loop {
        // Wait for a newer version; no I/O while the lock is held.
        let next = {
            let deadline = Instant::now() + KEEP_ALIVE;
            let mut inner = shared.lock();
            loop {
                if shared.stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                if seen != Some(inner.version) {
                    let event = match (seen, inner.change) {
                        (Some(_), Some(change)) => change.event(),
                        _ => "state",
                    };
                    break Some((inner.version, event, Arc::clone(&inner.json)));
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break None;
                }
                inner = shared
                    .changed
                    .wait_timeout(inner, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        if peer_closed(&stream) {
            return Ok(());
        }
        match next {
            // serde_json escapes newlines, so the JSON is one `data:` line.
            Some((version, event, json)) => {
                stream.write_all(
                    format!("event: {event}\nid: {version}\ndata: {json}\n\n").as_bytes(),
                )?;
                seen = Some(version);
            }
            None => stream.write_all(b": keep-alive\n\n")?,
        }
        stream.flush()?;
    }
}

/// Whether the client has closed its end (an event stream's client sends nothing
/// after its request, so a readable end of stream means it left).
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let closed = match stream.peek(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).is_err() || closed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::{IpAddr, Ipv4Addr};

    fn loopback() -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
    }

    fn reading(emotion: Emotion, p: f32) -> Reading {
        let mut probabilities = [(1.0 - p) / 6.0; Emotion::COUNT];
        probabilities[emotion.index()] = p;
        Reading {
            emotion,
            confidence: p,
            probabilities,
            keyword: Some("back".into()),
            keyword_source: KeywordSource::Prompt,
            speech_seconds: 1.25,
            latency: Duration::from_millis(42),
        }
    }

    fn connect(address: SocketAddr) -> TcpStream {
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// Sends `raw` and reads the whole answer: status code, head, body.
    fn exchange(address: SocketAddr, raw: &[u8]) -> (u16, String, String) {
        let mut stream = connect(address);
        stream.write_all(raw).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let code = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {answer:?}"));
        (code, head.to_string(), body.to_string())
    }

    fn get(address: SocketAddr, path: &str) -> (u16, String, String) {
        exchange(
            address,
            format!("GET {path} HTTP/1.1\r\nHost: kiosk\r\n\r\n").as_bytes(),
        )
    }

    fn state(address: SocketAddr) -> serde_json::Value {
        let (code, head, body) = get(address, "/state");
        assert_eq!(code, 200, "{head}");
        assert!(head.contains("Content-Type: application/json"), "{head}");
        serde_json::from_str(&body).unwrap()
    }

    /// An event stream being read: the response head is checked on opening.
    struct Events(BufReader<TcpStream>);

    impl Events {
        fn open(address: SocketAddr) -> Events {
            let mut stream = connect(address);
            stream
                .write_all(
                    b"GET /events HTTP/1.1\r\nHost: kiosk\r\nAccept: text/event-stream\r\n\r\n",
                )
                .unwrap();
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                assert!(reader.read_line(&mut line).unwrap() > 0, "closed: {head}");
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(head.contains("Content-Type: text/event-stream"), "{head}");
            Events(reader)
        }

        /// The next event's name and data (comments and `retry` skipped).
        fn next(&mut self) -> (String, serde_json::Value) {
            let (mut event, mut data) = (String::new(), String::new());
            loop {
                let mut line = String::new();
                assert!(self.0.read_line(&mut line).unwrap() > 0, "stream ended");
                let line = line.trim_end_matches('\n');
                if line.is_empty() {
                    if !data.is_empty() {
                        return (event, serde_json::from_str(&data).unwrap());
                    }
                } else if let Some(name) = line.strip_prefix("event: ") {
                    event = name.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
        }
    }

    #[test]
    fn the_page_is_served_self_contained_with_the_colours_and_seven_bars() {
        let web = WebDisplay::start(loopback()).unwrap();
        let (code, head, body) = get(web.local_addr(), "/");
        assert_eq!(code, 200);
        assert!(
            head.contains("Content-Type: text/html; charset=utf-8"),
            "{head}"
        );
        for emotion in Emotion::ALL {
            let row = format!("<li data-emotion=\"{}\">", emotion.name());
            assert!(body.contains(&row), "no bar row {row}");
            let css = format!(
                "[data-emotion=\"{}\"] {{ --c: {}; }}",
                emotion.name(),
                color(emotion).hex()
            );
            assert!(body.contains(&css), "no colour {css}");
        }
        for id in [
            "id=\"emotion\"",
            "id=\"confidence\"",
            "id=\"prompt\"",
            "id=\"status\"",
            "id=\"bars\"",
            "id=\"history\"",
        ] {
            assert!(body.contains(id), "no {id}");
        }
        assert!(body.contains("listening…"));
        // A kiosk on a touchscreen: no pointer, unless the URL asks for it.
        assert!(body.contains("html { cursor: none; }"), "the pointer shows");
        assert!(body.contains("html.cursor { cursor: auto; }"));
        assert!(
            !body.contains("@*/") && !body.contains("@-->"),
            "a placeholder is left"
        );
        // Nothing from elsewhere: the kiosk may be offline.
        for external in ["http://", "https://", "src=", "@import", "url("] {
            assert!(!body.contains(external), "the page loads {external}");
        }
        assert_eq!(color(Emotion::Sad).hex(), "#0028ff");
    }

    #[test]
    fn the_state_follows_show_prompt_and_idle() {
        let mut web = WebDisplay::start(loopback()).unwrap();
        let address = web.local_addr();
        let s = state(address);
        assert_eq!(s["status"], "listening");
        assert!(s["reading"].is_null() && s["prompt"].is_null());

        web.prompt(Some("back")).unwrap();
        web.show(&reading(Emotion::Angry, 0.75)).unwrap();
        let s = state(address);
        assert_eq!(s["prompt"], "back");
        let r = &s["reading"];
        assert_eq!(r["emotion"], "angry");
        assert_eq!(r["confidence"], 0.75);
        assert_eq!(r["color"], "#ff0000");
        assert_eq!(r["keyword"], "back");
        assert_eq!(r["keyword_source"], "prompt");
        assert_eq!(r["speech_seconds"], 1.25);
        assert!((r["latency_ms"].as_f64().unwrap() - 42.0).abs() < 1e-6);
        let names: Vec<&str> = r["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["emotion"].as_str().unwrap())
            .collect();
        let all: Vec<&str> = Emotion::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names, all);
        assert_eq!(r["probabilities"][0]["probability"], 0.75);

        for i in 0..10 {
            let emotion = Emotion::ALL[i % Emotion::COUNT];
            web.show(&reading(emotion, 0.5)).unwrap();
        }
        web.prompt(None).unwrap();
        web.idle("microphone lost — reconnecting…").unwrap();
        let s = state(address);
        assert_eq!(s["status"], "microphone lost — reconnecting…");
        assert!(s["prompt"].is_null());
        assert_eq!(s["readings"], 11);
        let history = s["history"].as_array().unwrap();
        assert_eq!(history.len(), HISTORY);
        // Newest first: the tenth show was ALL[9 % 7].
        assert_eq!(history[0]["emotion"], Emotion::ALL[2].name());
        assert_eq!(history[1]["emotion"], Emotion::ALL[1].name());
        assert!(history[0]["unix_ms"].as_u64().unwrap() > 1_600_000_000_000);

        // The page carries the state it was served with, `<` escaped.
        web.prompt(Some("</script>")).unwrap();
        let (_, _, body) = get(address, "/");
        assert!(
            body.contains("\"prompt\":\"\\u003c/script>\""),
            "state not embedded"
        );
        assert_eq!(
            body.matches("</script>").count(),
            2,
            "the state ended a script"
        );
    }

    /// The page says "no word heard" (from the state's `heard`) where a keyword would
    /// be, and still shows the emotion.
    #[test]
    fn no_word_heard_reaches_the_page() {
        let mut web = WebDisplay::start(loopback()).unwrap();
        let address = web.local_addr();
        let mut r = reading(Emotion::Sad, 0.6);
        web.show(&r).unwrap();
        assert!(state(address)["reading"]["heard"].is_null());
        r.keyword = None;
        r.keyword_source = KeywordSource::NoWordHeard;
        web.show(&r).unwrap();
        let s = state(address);
        let shown = &s["reading"];
        assert_eq!(shown["emotion"], "sad");
        assert!(shown["keyword"].is_null());
        assert_eq!(shown["keyword_source"], "no_word_heard");
        assert_eq!(shown["heard"], "no word heard");
        // The page's script puts `heard` where the keyword goes.
        assert!(
            PAGE.contains("else if (r.heard) parts.push(r.heard);"),
            "kiosk.html does not show `heard`"
        );
        let (_, _, body) = get(address, "/");
        assert!(
            body.contains("\"heard\":\"no word heard\""),
            "state not embedded"
        );
    }

    #[test]
    fn events_send_the_state_at_once_then_each_change() {
        let mut web = WebDisplay::start(loopback()).unwrap();
        web.prompt(Some("dog")).unwrap();
        let mut events = Events::open(web.local_addr());
        let (name, s) = events.next();
        assert_eq!(name, "state");
        assert_eq!(s["prompt"], "dog");
        assert!(s["reading"].is_null());

        web.show(&reading(Emotion::Sad, 0.9)).unwrap();
        let (name, s) = events.next();
        assert_eq!(name, "reading");
        assert_eq!(s["reading"]["emotion"], "sad");
        assert_eq!(s["history"].as_array().unwrap().len(), 1);

        web.idle("listening again").unwrap();
        let (name, s) = events.next();
        assert_eq!(name, "status");
        assert_eq!(s["status"], "listening again");
    }

    #[test]
    fn the_state_counts_the_open_event_streams() {
        let mut web = WebDisplay::start(loopback()).unwrap();
        let address = web.local_addr();
        assert_eq!(state(address)["event_streams"], 0);
        let mut first = Events::open(address);
        first.next();
        let mut second = Events::open(address);
        second.next();
        let s = state(address);
        assert_eq!(s["event_streams"], 2);
        // Still the page's state beside it.
        assert_eq!(s["status"], "listening");
        assert_eq!(s["readings"], 0);
        // A stream whose client left is noticed at the next event.
        drop(first);
        web.idle("one left").unwrap();
        second.next();
        let deadline = Instant::now() + Duration::from_secs(10);
        while state(address)["event_streams"] != 1 {
            assert!(
                Instant::now() < deadline,
                "the stream that left is still counted"
            );
            thread::sleep(Duration::from_millis(20));
        }
        // The page itself does not carry the count.
        let (_, _, body) = get(address, "/");
        assert!(!body.contains("event_streams"), "the count is in the page");
    }

    #[test]
    fn a_client_that_never_reads_does_not_hold_up_show() {
        let mut web = WebDisplay::start(loopback()).unwrap();
        let address = web.local_addr();
        // Asks for the event stream and never reads it.
        let mut stuck = connect(address);
        stuck.write_all(b"GET /events HTTP/1.1\r\n\r\n").unwrap();
        let mut reader = Events::open(address);
        reader.next();
        let started = Instant::now();
        for i in 0..2000 {
            let mut r = reading(Emotion::Happy, 0.6);
            r.keyword = Some(format!("word number {i} {}", "x".repeat(200)));
            web.show(&r).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "2000 shows took {:?}",
            started.elapsed()
        );
        // A reading client still gets the latest (it may skip some in between).
        loop {
            let (_, s) = reader.next();
            if s["readings"] == 2000 {
                break;
            }
        }
        drop(stuck);
    }

    #[test]
    fn too_many_clients_get_503_until_one_leaves() {
        let mut web = WebDisplay::start(loopback()).unwrap();
        let address = web.local_addr();
        let mut streams: Vec<Events> = (0..MAX_CLIENTS).map(|_| Events::open(address)).collect();
        for s in &mut streams {
            s.next();
        }
        let (code, head, _) = get(address, "/healthz");
        assert_eq!(code, 503, "{head}");
        // The clients that left are noticed at the next event.
        streams.clear();
        web.idle("still here").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (code, _, body) = get(address, "/healthz");
            if code == 200 {
                assert_eq!(body, "ok\n");
                break;
            }
            assert!(Instant::now() < deadline, "the slots never came back");
            thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn bad_requests_get_4xx_and_the_server_carries_on() {
        let web = WebDisplay::start(loopback()).unwrap();
        let address = web.local_addr();
        assert_eq!(exchange(address, b"\x16\x03\x01garbage\r\n\r\n").0, 400);
        assert_eq!(exchange(address, b"hello there\n\n").0, 400);
        assert_eq!(
            exchange(address, b"GET / HTTP/1.1\r\nno colon\r\n\r\n").0,
            400
        );
        assert_eq!(exchange(address, b"GET nowhere HTTP/1.1\r\n\r\n").0, 400);
        // Cut short: the client sends half a head and closes its side.
        {
            let mut stream = connect(address);
            stream.write_all(b"GET / HT").unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        }
        let huge = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(exchange(address, huge.as_bytes()).0, 431);
        let (code, head, _) = exchange(
            address,
            b"POST /state HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(code, 405);
        assert!(head.contains("Allow: GET"), "{head}");
        assert_eq!(exchange(address, b"HEAD / HTTP/1.1\r\n\r\n").0, 405);
        assert_eq!(get(address, "/nothing-here").0, 404);
        assert_eq!(get(address, "/state?x=1").0, 200);
        // A port probe: connect and leave.
        drop(connect(address));
        let (code, _, body) = get(address, "/healthz");
        assert_eq!((code, body.as_str()), (200, "ok\n"));
    }

    #[test]
    fn dropping_stops_the_server_and_frees_the_port() {
        let web = WebDisplay::start(loopback()).unwrap();
        let address = web.local_addr();
        assert_ne!(address.port(), 0);
        let mut events = Events::open(address);
        events.next();
        let started = Instant::now();
        drop(web);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // The open stream ends.
        let mut rest = Vec::new();
        let _ = events.0.read_to_end(&mut rest);
        assert!(TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err());
        let again = WebDisplay::start(address).unwrap();
        assert_eq!(again.local_addr(), address);
        assert_eq!(get(address, "/healthz").0, 200);
    }

    #[test]
    fn request_heads_are_parsed_strictly() {
        let r = parse_head("GET /state?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*").unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/state"));
        assert!(parse_head("GET / HTTP/2").is_none());
        assert!(parse_head("get / HTTP/1.1").is_none());
        assert!(parse_head("GET  / HTTP/1.1").is_none());
        assert!(parse_head("GET / HTTP/1.1\r\nBad Header: x").is_none());
        assert!(parse_head("").is_none());
        assert_eq!(find_blank_line(b"a\r\n\r\nb"), Some(1));
        assert_eq!(find_blank_line(b"a\n\nb"), Some(1));
        assert_eq!(find_blank_line(b"a\r\nb"), None);
    }
}
