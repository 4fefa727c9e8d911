//! `listen --mqtt` against a real broker: Debian's Mosquitto, started by each test on a
//! free loopback port with a password file (and, in one test, TLS with a CA made here by
//! openssl). A subscriber (rumqttc) checks what arrives: Home Assistant's discovery
//! configs, every reading in order, availability and the last will of a killed process,
//! nothing lost while the broker restarts, a wrong password retried with a clear error.
//!
//! Without mosquitto these tests skip (saying so), except under CI (`CI` set), where they
//! fail: .ci/run installs it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{CORPUS_RATE, demo_bundle, le_bytes, spread, utterances, wav_header};
use emotion_core::bundle::Bundle;
use emotion_core::real_speech::under_ci;
use emotion_edge::mqtt::message::{Topics, discovery};
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
use serde_json::Value;

const USER: &str = "kiosk";
const PASSWORD: &str = "correct horse";

/// A program on the PATH or in /usr/sbin (Debian puts mosquitto there).
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// `None` (and a note) when `program` is missing outside CI; a failure under CI.
fn required(program: &str, what: &str) -> Option<PathBuf> {
    match find(program) {
        Some(path) => Some(path),
        None if under_ci() => {
            panic!("{what}: `{program}` is required under CI (apt-get install mosquitto)")
        }
        None => {
            eprintln!("skipped {what}: `{program}` is not installed (apt-get install mosquitto)");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    done()
}

fn run(command: &mut Command) {
    let out = command.output().expect("the tool runs");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Mosquitto of our own, in a temporary directory, with a password file and
/// persistence (so a restart keeps the subscriber's session).
struct Broker {
    dir: tempfile::TempDir,
    mosquitto: PathBuf,
    port: u16,
    tls_port: Option<u16>,
    child: Option<Child>,
}

impl Broker {
    /// Starts one; `tls` adds a TLS listener with a certificate for `localhost` signed by
    /// a CA made here (`ca.pem` in [`Broker::path`]).
    fn start(what: &str, tls: bool) -> Option<Broker> {
        let mosquitto = required("mosquitto", what)?;
        let passwd = required("mosquitto_passwd", what)?;
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        run(Command::new(passwd)
            .args(["-c", "-b"])
            .arg(d.join("passwd"))
            .args([USER, PASSWORD]));
        let user = String::from_utf8(
            Command::new("id")
                .arg("-un")
                .output()
                .expect("id runs")
                .stdout,
        )
        .expect("a user name");
        let port = free_port();
        let mut config = format!(
            "user {}\nper_listener_settings false\nallow_anonymous false\npassword_file {}\n\
             persistence true\npersistence_location {}/\nlog_dest file {}\nlog_type all\n\
             listener {port} 127.0.0.1\n",
            user.trim(),
            d.join("passwd").display(),
            d.display(),
            d.join("mosquitto.log").display(),
        );
        let tls_port = if tls {
            let openssl = required("openssl", what)?;
            make_certificates(&openssl, d);
            let tls_port = free_port();
            config.push_str(&format!(
                "listener {tls_port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n",
                d.display()
            ));
            Some(tls_port)
        } else {
            None
        };
        std::fs::write(d.join("mosquitto.conf"), config).expect("write the config");
        let mut broker = Broker {
            dir,
            mosquitto,
            port,
            tls_port,
            child: None,
        };
        broker.resume();
        Some(broker)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("mosquitto.log")).unwrap_or_default()
    }

    /// Starts it (again) and waits until its listeners accept connections.
    fn resume(&mut self) {
        let child = Command::new(&self.mosquitto)
            .arg("-c")
            .arg(self.path("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        for port in [Some(self.port), self.tls_port].into_iter().flatten() {
            let up = wait_until(Duration::from_secs(10), || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            assert!(up, "mosquitto did not listen on {port}: {}", self.log());
        }
    }

    /// Stops it as a service manager would (SIGTERM: it saves its sessions).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            child.wait().expect("mosquitto exits");
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A CA, and a certificate for `localhost` (and 127.0.0.1) signed by it.
fn make_certificates(openssl: &Path, dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new(openssl)
        .current_dir(dir)
        .args(["req", "-x509"])
        .args(ec)
        .args(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"])
        .args(["-subj", "/CN=emotion-edge test CA"]));
    run(Command::new(openssl)
        .current_dir(dir)
        .arg("req")
        .args(ec)
        .args([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]));
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write");
    run(Command::new(openssl).current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]));
}

/// One message as the subscriber got it.
#[derive(Debug, Clone)]
struct Message {
    topic: String,
    payload: String,
    retain: bool,
}

/// A client that subscribes to everything of the device and of discovery, and keeps
/// what arrives; it reconnects (with its session, unless `clean`) when the broker
/// comes back.
struct Subscriber {
    client: Client,
    got: Arc<Mutex<Vec<Message>>>,
}

impl Subscriber {
    fn connect(port: u16, id: &str, clean: bool) -> Subscriber {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_credentials(USER, PASSWORD)
            .set_clean_session(clean)
            .set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = Client::new(options, 16);
        let got = Arc::new(Mutex::new(Vec::new()));
        let subscribed = Arc::new(Mutex::new(false));
        {
            let got = Arc::clone(&got);
            let client = client.clone();
            let subscribed = Arc::clone(&subscribed);
            thread::spawn(move || {
                for event in connection.iter() {
                    match event {
                        Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                            // Subscribing again on a resumed session would replay the
                            // retained messages.
                            if !ack.session_present {
                                for filter in ["emotion-edge/#", "homeassistant/#"] {
                                    let _ = client.try_subscribe(filter, QoS::AtLeastOnce);
                                }
                            }
                        }
                        Ok(Event::Incoming(Incoming::SubAck(_))) => {
                            *subscribed.lock().unwrap() = true;
                        }
                        Ok(Event::Incoming(Incoming::Publish(p))) => {
                            got.lock().unwrap().push(Message {
                                topic: p.topic.clone(),
                                payload: String::from_utf8_lossy(&p.payload).into_owned(),
                                retain: p.retain,
                            });
                        }
                        Ok(_) => {}
                        Err(_) => thread::sleep(Duration::from_millis(100)),
                    }
                }
            });
        }
        assert!(
            wait_until(Duration::from_secs(10), || *subscribed.lock().unwrap()),
            "the test subscriber could not subscribe"
        );
        Subscriber { client, got }
    }

    fn on(&self, topic: &str) -> Vec<Message> {
        let got = self.got.lock().unwrap();
        got.iter().filter(|m| m.topic == topic).cloned().collect()
    }

    /// The readings received, as JSON, in arrival order.
    fn readings(&self, device: &str) -> Vec<Value> {
        self.on(&format!("emotion-edge/{device}/reading"))
            .iter()
            .map(|m| serde_json::from_str(&m.payload).expect("a reading is JSON"))
            .collect()
    }

    fn wait_for(&self, topic: &str, count: usize, within: Duration) -> Vec<Message> {
        let arrived = wait_until(within, || self.on(topic).len() >= count);
        let on = self.on(topic);
        assert!(arrived, "{} of {count} messages on {topic}", on.len());
        on
    }
}

/// `emotion-edge listen` publishing to the broker, its stdout (JSON lines) and stderr
/// collected as they come.
struct Device {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Device {
    /// [`Device::start`] publishing to `url` as `device`, logged in from `login`.
    fn logged_in(source: &str, url: &str, login: &Path, device: &str) -> Device {
        let login = login.to_str().unwrap();
        Device::start(
            source,
            &[
                "--mqtt",
                url,
                "--mqtt-credentials",
                login,
                "--mqtt-device",
                device,
            ],
        )
    }

    /// `listen` from `source` (a WAV file, or `-`: stdin, fed by [`Device::say`]).
    fn start(source: &str, mqtt: &[&str]) -> Device {
        let mut child = Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
            .args([
                "listen",
                "--json",
                "--fast",
                "--segmenter",
                "energy",
                "--bundle",
            ])
            .arg(demo_bundle())
            .args(["--source", source])
            .args(mqtt)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("emotion-edge starts");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let lines = Arc::clone(&stdout);
            let out = child.stdout.take().expect("stdout");
            thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
            let text = Arc::clone(&stderr);
            let err = child.stderr.take().expect("stderr");
            thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let mut text = text.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                }
            });
        }
        let mut stdin = child.stdin.take();
        if source == "-" {
            let header = wav_header(CORPUS_RATE, None);
            stdin.as_mut().unwrap().write_all(&header).expect("header");
        } else {
            stdin = None;
        }
        Device {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// Streams `count` corpus utterances (each followed by 1 s of silence) to stdin,
    /// starting at `from` in the spread.
    fn say(&mut self, from: usize, count: usize) {
        let files: Vec<PathBuf> = spread(16).into_iter().skip(from).take(count).collect();
        let samples = utterances(&files, 1.0);
        let stdin = self.stdin.as_mut().expect("a stdin source");
        stdin.write_all(&le_bytes(&samples)).expect("stdin");
        stdin.flush().expect("stdin");
    }

    /// The utterances shown so far (the JSON lines with an emotion).
    fn heard(&self) -> Vec<Value> {
        shown(&self.stdout.lock().unwrap())
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Ends stdin (if any) and waits for the exit; the status and the summary line.
    fn finish(mut self) -> (std::process::ExitStatus, Value) {
        drop(self.stdin.take());
        let end = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < end,
                "listen did not end: {}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(50));
        };
        // Let the reader threads take the last lines.
        thread::sleep(Duration::from_millis(200));
        // Shown when the test fails: the MQTT thread's account of the run.
        eprintln!("listen's stderr:\n{}", self.stderr());
        let lines = self.stdout.lock().unwrap().clone();
        let summary = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|v| v.get("summary").cloned())
            .unwrap_or_else(|| panic!("no summary in {lines:?}; stderr: {}", self.stderr()));
        (status, summary)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn credentials(dir: &Path, password: &str) -> PathBuf {
    let path = dir.join("mqtt.credentials");
    std::fs::write(
        &path,
        format!("username = \"{USER}\"\npassword = \"{password}\"\n"),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

fn labels() -> Vec<String> {
    Bundle::open(&demo_bundle())
        .expect("the demo bundle")
        .manifest()
        .labels
        .clone()
}

/// The seq numbers of `readings`, checked: each is a reading of `device`, and the
/// first arrivals run 1, 2, 3, … (a repeat is QoS 1's "at least once").
fn in_order(readings: &[Value], device: &str) -> Vec<u64> {
    let mut seen: Vec<u64> = Vec::new();
    for r in readings {
        assert_eq!(r["device"], device, "{r}");
        let seq = r["seq"].as_u64().expect("seq");
        if !seen.contains(&seq) {
            assert_eq!(
                seq,
                seen.len() as u64 + 1,
                "out of order or missing: {seen:?} then {seq}"
            );
            seen.push(seq);
        }
    }
    seen
}

#[test]
fn readings_and_discovery_reach_a_subscriber_in_order() {
    let Some(broker) = Broker::start("readings_and_discovery", false) else {
        return;
    };
    let subscriber = Subscriber::connect(broker.port, "checker-1", true);
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("speech.wav");
    std::fs::write(&wav, common::wav_file(&utterances(&spread(4), 1.0))).expect("write");
    let login = credentials(dir.path(), PASSWORD);
    let device = Device::logged_in(wav.to_str().unwrap(), &broker.url(), &login, "hall");
    let (status, (summary, heard)) = device_finish(device);
    assert!(status.success(), "{status}: {summary}");
    assert!(heard.len() >= 3, "{heard:?}");
    let mqtt = &summary["mqtt"];
    assert_eq!(mqtt["published"], heard.len(), "{summary}");
    assert_eq!(mqtt["dropped_buffer_full"], 0, "{summary}");
    assert_eq!(mqtt["unsent_at_exit"], 0, "{summary}");

    // Every reading, in order, and what the program showed.
    assert!(
        wait_until(Duration::from_secs(5), || subscriber.readings("hall").len()
            >= heard.len()),
        "{} readings of {}",
        subscriber.readings("hall").len(),
        heard.len()
    );
    let readings = subscriber.readings("hall");
    assert_eq!(in_order(&readings, "hall").len(), heard.len());
    for (reading, shown) in readings.iter().zip(&heard) {
        assert_eq!(reading["utterance"], shown["utterance"], "{reading}");
        assert_eq!(reading["emotion"], shown["emotion"], "{reading}");
        assert_eq!(reading["event_type"], shown["emotion"], "{reading}");
        assert_eq!(reading["confidence"], shown["confidence"], "{reading}");
        assert_eq!(
            reading["probabilities"], shown["probabilities"],
            "{reading}"
        );
        assert_eq!(reading["head"], shown["model"], "{reading}");
        assert_eq!(reading["keyword"], shown["keyword"], "{reading}");
        assert_eq!(
            reading["keyword_source"], shown["keyword_source"],
            "{reading}"
        );
        assert!(reading["latency_ms"].as_f64().unwrap() >= 0.0, "{reading}");
        assert!(
            reading["timestamp"].as_str().unwrap().ends_with('Z'),
            "{reading}"
        );
    }
    // The retained state is the last reading.
    let state = subscriber.on("emotion-edge/hall/state");
    let last: Value = serde_json::from_str(&state.last().expect("a state").payload).unwrap();
    assert_eq!(last["seq"], heard.len(), "{last}");

    // Home Assistant's discovery: exactly the configs the module makes, retained (a
    // subscriber that comes after the run still gets them, as Home Assistant would).
    let topics = Topics::new("hall", "homeassistant");
    let late = Subscriber::connect(broker.port, "checker-1-late", true);
    for (topic, config) in discovery(&topics, &labels(), env!("CARGO_PKG_VERSION")) {
        let live = subscriber.on(&topic);
        let first = live.first().unwrap_or_else(|| panic!("nothing on {topic}"));
        let sent: Value = serde_json::from_str(&first.payload).unwrap();
        assert_eq!(sent, config, "{topic}");
        let kept = late.wait_for(&topic, 1, Duration::from_secs(5));
        assert!(kept[0].retain, "{topic} is retained");
        assert_eq!(
            serde_json::from_str::<Value>(&kept[0].payload).unwrap(),
            config
        );
    }
    let kept = late.wait_for("emotion-edge/hall/state", 1, Duration::from_secs(5));
    assert!(kept[0].retain, "the state is retained");
    let event: Value =
        serde_json::from_str(&subscriber.on(&topics.event_config())[0].payload).unwrap();
    assert_eq!(event["event_types"], serde_json::json!(labels()));
    // Availability: online while it ran, offline (retained) once it stopped.
    let availability = subscriber.on("emotion-edge/hall/availability");
    let said: Vec<&str> = availability.iter().map(|m| m.payload.as_str()).collect();
    assert_eq!(said, ["online", "offline"], "{availability:?}");
    drop(subscriber.client);
}

/// [`Device::finish`] with the utterances it showed.
fn device_finish(device: Device) -> (std::process::ExitStatus, (Value, Vec<Value>)) {
    let stdout = Arc::clone(&device.stdout);
    let (status, summary) = device.finish();
    let heard = shown(&stdout.lock().unwrap());
    (status, (summary, heard))
}

/// The JSON lines with an emotion among `lines`.
fn shown(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("emotion").is_some())
        .collect()
}

#[test]
fn a_killed_process_goes_offline_by_its_last_will_and_discovery_follows_home_assistant() {
    let Some(broker) = Broker::start("last_will", false) else {
        return;
    };
    let subscriber = Subscriber::connect(broker.port, "checker-2", true);
    let dir = tempfile::tempdir().expect("temp dir");
    let login = credentials(dir.path(), PASSWORD);
    let device = Device::logged_in("-", &broker.url(), &login, "door");
    let availability = "emotion-edge/door/availability";
    let online = subscriber.wait_for(availability, 1, Duration::from_secs(15));
    assert_eq!(online[0].payload, "online", "{}", device.stderr());
    let config = "homeassistant/sensor/door/emotion/config";
    subscriber.wait_for(config, 1, Duration::from_secs(5));

    // Home Assistant restarted: it says `online`, and the configs come again.
    subscriber
        .client
        .publish("homeassistant/status", QoS::AtLeastOnce, false, "online")
        .expect("publish");
    subscriber.wait_for(config, 2, Duration::from_secs(5));
    subscriber.wait_for(
        "homeassistant/event/door/utterance/config",
        2,
        Duration::from_secs(5),
    );
    assert!(
        device.stderr().contains("Home Assistant came online"),
        "{}",
        device.stderr()
    );

    // Killed without a goodbye: the broker publishes the last will.
    let mut device = device;
    device.child.kill().expect("kill");
    device.child.wait().expect("it dies");
    let said = subscriber.wait_for(availability, 2, Duration::from_secs(10));
    assert_eq!(said[1].payload, "offline", "{said:?}");
    // And it is retained: a newcomer sees `offline`.
    let late = Subscriber::connect(broker.port, "checker-2-late", true);
    let seen = late.wait_for(availability, 1, Duration::from_secs(5));
    assert!(seen[0].retain && seen[0].payload == "offline", "{seen:?}");
}

#[test]
fn readings_wait_for_a_broker_that_restarts_and_none_is_lost() {
    let Some(mut broker) = Broker::start("broker_restart", false) else {
        return;
    };
    // A subscriber with a persistent session: the broker keeps what arrives for it
    // while it is away, so it can tell what the device sent.
    let subscriber = Subscriber::connect(broker.port, "checker-3", false);
    let dir = tempfile::tempdir().expect("temp dir");
    let login = credentials(dir.path(), PASSWORD);
    let mut device = Device::logged_in("-", &broker.url(), &login, "lab");
    device.say(0, 3);
    let before = device_waits(&device, 3);
    wait_until(Duration::from_secs(10), || {
        subscriber.readings("lab").len() >= before
    });
    assert_eq!(
        subscriber.readings("lab").len(),
        before,
        "{}",
        device.stderr()
    );

    // The broker goes away; the device hears on.
    broker.stop();
    device.say(3, 3);
    let during = device_waits(&device, before + 3);
    assert!(
        wait_until(Duration::from_secs(10), || device
            .stderr()
            .contains("readings waiting)")
            && device.stderr().contains("retrying in")),
        "{}",
        device.stderr()
    );
    thread::sleep(Duration::from_secs(1));
    broker.resume();
    device.say(6, 2);
    let total = device_waits(&device, during + 2);
    let (status, (summary, heard)) = device_finish(device);
    assert!(status.success(), "{status}: {summary}");
    assert_eq!(heard.len(), total);
    let mqtt = &summary["mqtt"];
    assert_eq!(mqtt["published"], total, "{summary}");
    assert_eq!(mqtt["unsent_at_exit"], 0, "{summary}");
    assert_eq!(mqtt["dropped_buffer_full"], 0, "{summary}");
    assert!(mqtt["connections"].as_u64().unwrap() >= 2, "{summary}");
    assert!(
        mqtt["connection_failures"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || in_order(
            &subscriber.readings("lab"),
            "lab"
        )
        .len()
            >= total),
        "{:?}",
        subscriber
            .readings("lab")
            .iter()
            .map(|r| r["seq"].clone())
            .collect::<Vec<_>>()
    );
    let seqs = in_order(&subscriber.readings("lab"), "lab");
    assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>());
    // The readings are the utterances shown, in order.
    let readings = subscriber.readings("lab");
    for shown in &heard {
        let sent = readings
            .iter()
            .find(|r| r["utterance"] == shown["utterance"])
            .unwrap_or_else(|| panic!("utterance {} not published", shown["utterance"]));
        assert_eq!(sent["emotion"], shown["emotion"]);
    }
}

/// Waits until the device has shown at least `count` utterances; how many it has.
fn device_waits(device: &Device, count: usize) -> usize {
    let shown = wait_until(Duration::from_secs(60), || device.heard().len() >= count);
    assert!(
        shown,
        "{} of {count} utterances shown: {}",
        device.heard().len(),
        device.stderr()
    );
    device.heard().len()
}

#[test]
fn a_wrong_password_is_a_clear_error_retried_without_crashing() {
    let Some(broker) = Broker::start("wrong_password", false) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let login = credentials(dir.path(), "wrong");
    let mut device = Device::logged_in("-", &broker.url(), &login, "attic");
    let refused = format!("refused the login from {}", login.display());
    let retried = wait_until(Duration::from_secs(15), || {
        device.stderr().matches(&refused).count() >= 3
    });
    assert!(retried, "{}", device.stderr());
    assert!(
        device.child.try_wait().expect("wait").is_none(),
        "it must keep listening"
    );
    // The waits grow: 0.5 s, 1 s, 2 s, …
    let stderr = device.stderr();
    for wait in [
        "retrying in 0.5 s",
        "retrying in 1.0 s",
        "retrying in 2.0 s",
    ] {
        assert!(stderr.contains(wait), "{stderr}");
    }
    assert!(
        !stderr.contains(PASSWORD) && !stderr.contains("\"wrong\""),
        "{stderr}"
    );
    device.say(0, 1);
    device_waits(&device, 1);
    let (status, (summary, _)) = device_finish(device);
    assert!(status.success(), "{status}: {summary}");
    let mqtt = &summary["mqtt"];
    assert_eq!(mqtt["connections"], 0, "{summary}");
    assert!(
        mqtt["connection_failures"].as_u64().unwrap() >= 3,
        "{summary}"
    );
    assert_eq!(mqtt["unsent_at_exit"], 1, "{summary}");
}

#[test]
fn tls_with_a_private_ca() {
    let Some(broker) = Broker::start("tls", true) else {
        return;
    };
    let tls_port = broker.tls_port.expect("a TLS listener");
    let subscriber = Subscriber::connect(broker.port, "checker-5", true);
    let dir = tempfile::tempdir().expect("temp dir");
    let login = credentials(dir.path(), PASSWORD);
    let wav = dir.path().join("speech.wav");
    std::fs::write(&wav, common::wav_file(&utterances(&spread(2), 1.0))).expect("write");
    let url = format!("mqtts://localhost:{tls_port}");
    let start_trusting = |ca: &Path, device: &str| {
        Device::start(
            wav.to_str().unwrap(),
            &[
                "--mqtt",
                &url,
                "--mqtt-credentials",
                login.to_str().unwrap(),
                "--mqtt-ca",
                ca.to_str().unwrap(),
                "--mqtt-device",
                device,
            ],
        )
    };
    let device = start_trusting(&broker.path("ca.pem"), "tls");
    let (status, (summary, heard)) = device_finish(device);
    assert!(status.success(), "{status}: {summary}");
    assert_eq!(summary["mqtt"]["published"], heard.len(), "{summary}");
    assert!(
        wait_until(Duration::from_secs(5), || subscriber.readings("tls").len()
            >= heard.len()),
        "{summary}"
    );
    assert_eq!(
        in_order(&subscriber.readings("tls"), "tls").len(),
        heard.len()
    );

    // With a CA that did not sign the broker's certificate: said, retried, not sent.
    let openssl = find("openssl").expect("found above");
    run(Command::new(openssl)
        .current_dir(dir.path())
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
            "-days",
            "2",
        ])
        .args(["-subj", "/CN=another CA"]));
    let device = start_trusting(&dir.path().join("other.pem"), "tls2");
    let stderr = Arc::clone(&device.stderr);
    let (status, (summary, heard)) = device_finish(device);
    let stderr = stderr.lock().unwrap().clone();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("TLS with mqtts://localhost"), "{stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    assert_eq!(summary["mqtt"]["published"], 0, "{summary}");
    assert_eq!(summary["mqtt"]["unsent_at_exit"], heard.len(), "{summary}");
}

#[test]
fn a_full_buffer_drops_the_oldest_and_counts_it() {
    // No broker at all at this port: everything waits, and the buffer holds 2.
    let port = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("speech.wav");
    std::fs::write(&wav, common::wav_file(&utterances(&spread(5), 1.0))).expect("write");
    let url = format!("mqtt://127.0.0.1:{port}");
    let device = Device::start(
        wav.to_str().unwrap(),
        &[
            "--mqtt",
            &url,
            "--mqtt-buffer",
            "2",
            "--mqtt-device",
            "full",
        ],
    );
    let stderr = Arc::clone(&device.stderr);
    let (status, (summary, heard)) = device_finish(device);
    let stderr = stderr.lock().unwrap().clone();
    assert!(status.success(), "{status}: {stderr}");
    assert!(heard.len() >= 4, "{heard:?}");
    let mqtt = &summary["mqtt"];
    assert_eq!(mqtt["dropped_buffer_full"], heard.len() - 2, "{summary}");
    assert_eq!(mqtt["unsent_at_exit"], 2, "{summary}");
    assert_eq!(mqtt["published"], 0, "{summary}");
    assert!(stderr.contains("is the broker running?"), "{stderr}");
    assert!(
        stderr.contains("buffer full; the oldest waiting reading dropped (#1)"),
        "{stderr}"
    );
    let text_summary = stderr
        .lines()
        .find(|l| l.contains("utterances in"))
        .unwrap_or("");
    assert!(text_summary.contains("dropped (buffer full)"), "{stderr}");
}

/// The README's discovery example is what the program sends for a device `kiosk` with
/// the demo bundle's labels (no broker needed).
#[test]
fn the_readme_shows_the_discovery_configs_the_program_sends() {
    let readme = std::fs::read_to_string(common::workspace().join("README.md")).expect("README");
    let block = readme
        .split_once("<!-- mqtt-discovery: begin -->")
        .and_then(|(_, rest)| rest.split_once("<!-- mqtt-discovery: end -->"))
        .map(|(block, _)| block)
        .expect("the README's mqtt-discovery markers");
    let json = block
        .trim()
        .strip_prefix("```json")
        .and_then(|b| b.strip_suffix("```"))
        .expect("a ```json block between the markers");
    let shown: Value = serde_json::from_str(json).expect("the README's example is JSON");
    let topics = Topics::new("kiosk", "homeassistant");
    let sent: serde_json::Map<String, Value> =
        discovery(&topics, &labels(), env!("CARGO_PKG_VERSION"))
            .into_iter()
            .collect();
    assert_eq!(
        shown,
        Value::Object(sent.clone()),
        "paste this into the README:\n{}",
        serde_json::to_string_pretty(&Value::Object(sent)).unwrap()
    );
}

fn spooled(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn spooled_readings_outlive_a_killed_process_and_go_first_in_the_next_run() {
    let Some(mut broker) = Broker::start("spool", false) else {
        return;
    };
    broker.stop(); // the first run finds no broker
    let dir = tempfile::tempdir().expect("temp dir");
    let login = credentials(dir.path(), PASSWORD);
    let spool = dir.path().join("spool");
    let url = broker.url();
    let args = [
        "--mqtt",
        &url,
        "--mqtt-credentials",
        login.to_str().unwrap(),
        "--mqtt-device",
        "porch",
        "--mqtt-spool",
        spool.to_str().unwrap(),
    ];
    let mut device = Device::start("-", &args);
    device.say(0, 3);
    let first = device_waits(&device, 3);
    // A power cut: no goodbye, no time to flush.
    device.child.kill().expect("kill");
    device.child.wait().expect("it dies");
    assert_eq!(spooled(&spool), first, "{}", device.stderr());
    drop(device);

    broker.resume();
    let subscriber = Subscriber::connect(broker.port, "checker-6", true);
    let wav = dir.path().join("speech.wav");
    std::fs::write(&wav, common::wav_file(&utterances(&spread(1), 1.0))).expect("write");
    let device = Device::start(wav.to_str().unwrap(), &args);
    let stderr = Arc::clone(&device.stderr);
    let (status, (summary, heard)) = device_finish(device);
    let stderr = stderr.lock().unwrap().clone();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains(&format!("{first} readings of an earlier run")),
        "{stderr}"
    );
    let mqtt = &summary["mqtt"];
    assert_eq!(mqtt["from_spool"], first, "{summary}");
    assert_eq!(mqtt["published"], first + heard.len(), "{summary}");
    assert_eq!(mqtt["unsent_at_exit"], 0, "{summary}");
    assert_eq!(spooled(&spool), 0, "acknowledged readings leave the spool");
    // The first run's readings first, as they were made (their own seq and time), then
    // this run's.
    let all = first + heard.len();
    assert!(
        wait_until(Duration::from_secs(5), || subscriber
            .readings("porch")
            .len()
            >= all),
        "{summary}"
    );
    let seqs: Vec<u64> = subscriber
        .readings("porch")
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=first as u64).chain(1..=heard.len() as u64).collect();
    assert_eq!(seqs, expected);
}
