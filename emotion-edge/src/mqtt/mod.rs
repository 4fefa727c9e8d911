//! The MQTT output of `listen` (`--mqtt URL`, or `[mqtt]` in the board's profile): each
//! reading published as JSON, the device's availability with a last will, and Home
//! Assistant's discovery, so a kiosk shows up in Home Assistant by itself.
//!
//! ```text
//! listen loop ─ publish() ─ outbox (bounded, in order) ─ MQTT thread ─ broker
//!                 never waits          kept until PUBACK     reconnects with backoff
//! ```
//!
//! - [`config`]: the broker URL, the credentials file, TLS.
//! - [`message`]: the topics and the JSON (readings, discovery).
//! - [`outbox`]: the readings waiting for the broker.
//! - [`spool`]: the same readings on disk, for the next run after a power cut.
//! - [`connection`]: the thread that keeps the connection.

pub mod config;
pub mod connection;
pub mod message;
pub mod outbox;
pub mod spool;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use emotion_core::pipeline::Classification;
use rumqttc::{Client, LastWill, MqttOptions, QoS, Transport};

use config::{BrokerUrl, MqttConfigError};
use connection::{Announce, Shared};
use message::{OFFLINE, ReadingMessage, Topics};
use outbox::Queued;

/// How long `finish` waits for the broker to take what is still queued.
pub const FLUSH_AT_EXIT: Duration = Duration::from_secs(5);

/// Everything the MQTT output runs with (resolved from the flags and the board by
/// `settings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSettings {
    /// The broker.
    pub url: BrokerUrl,
    /// The credentials file (TOML: `username`, `password`), if the broker wants a login.
    pub credentials: Option<PathBuf>,
    /// The CA certificate(s) of a TLS broker; the system's when `None`.
    pub ca_file: Option<PathBuf>,
    /// The device id in the topics; the host name when `None`.
    pub device_id: Option<String>,
    /// Readings kept while the broker is away.
    pub buffer: usize,
    /// Home Assistant's discovery prefix.
    pub discovery_prefix: String,
    /// A folder that keeps the waiting readings on disk, if any.
    pub spool: Option<PathBuf>,
}

/// What the MQTT output did, in `listen`'s summary.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MqttSummary {
    /// The broker.
    pub broker: String,
    /// The device id in the topics.
    pub device: String,
    /// Readings the broker acknowledged.
    pub published: u64,
    /// Readings dropped because the buffer was full while the broker was away.
    pub dropped_buffer_full: u64,
    /// Readings still unsent when the program stopped (in the spool, when there is
    /// one, for the next run).
    pub unsent_at_exit: u64,
    /// Readings an earlier run left in the spool, queued first in this one.
    pub from_spool: u64,
    /// Times a connection was made.
    pub connections: u64,
    /// Failed attempts and lost connections.
    pub connection_failures: u64,
}

impl std::fmt::Display for MqttSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MQTT {} as {}: {} readings published ({} from the spool), {} dropped (buffer full), {} unsent at exit; connected {} times, {} connection failures",
            self.broker,
            self.device,
            self.published,
            self.from_spool,
            self.dropped_buffer_full,
            self.unsent_at_exit,
            self.connections,
            self.connection_failures
        )
    }
}

/// The running output: hand it readings, then `finish` it.
pub struct MqttOutput {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    device: String,
    broker: String,
    next_seq: u64,
    next_id: u64,
    from_spool: u64,
}

impl MqttOutput {
    /// Checks the settings (credentials file, CA, device id), then starts the
    /// connection thread; the broker need not be up (the thread keeps trying).
    /// `labels` are the bundle's, for Home Assistant's event types.
    pub fn start(settings: &MqttSettings, labels: &[String]) -> Result<Self, MqttConfigError> {
        let device = match &settings.device_id {
            Some(id) if message::valid_device_id(id) => id.clone(),
            Some(id) => {
                return Err(MqttConfigError::DeviceId(format!(
                    "the MQTT device id `{id}` must be 1-64 of A-Z a-z 0-9 _ - (it is a topic level)"
                )));
            }
            None => config::host_device_id()?,
        };
        let topics = Topics::new(&device, &settings.discovery_prefix);
        let url = &settings.url;
        let mut options = MqttOptions::new(format!("emotion-edge-{device}"), &url.host, url.port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_inflight(connection::WINDOW as u16 * 2 + 8)
            .set_last_will(LastWill::new(
                topics.availability(),
                OFFLINE,
                QoS::AtLeastOnce,
                true,
            ));
        if let Some(path) = &settings.credentials {
            let login = config::read_credentials(path)?;
            options.set_credentials(login.username, login.password);
        }
        if url.tls {
            let tls = config::tls_config(settings.ca_file.as_deref())?;
            options.set_transport(Transport::tls_with_config(tls.into()));
        }
        let version = env!("CARGO_PKG_VERSION");
        let discovery = message::discovery(&topics, labels, version)
            .into_iter()
            .map(|(topic, config)| (topic, config.to_string()))
            .collect();
        // The client's queue holds a window of readings, their states and the
        // announcements with room to spare, so handing it one never blocks.
        let (client, connection) = Client::new(options, connection::WINDOW * 4 + 16);
        let shared = Arc::new(Shared::new(settings.buffer));
        let mut next_id = 1;
        let mut from_spool = 0;
        if let Some(dir) = &settings.spool {
            let (spool, left) = spool::Spool::open(dir)?;
            let mut state = shared.lock();
            state.spool = Some(spool);
            for (id, payload) in left {
                state.push(Queued { id, payload });
                next_id = id + 1;
                from_spool += 1;
            }
            if from_spool > 0 {
                eprintln!(
                    "MQTT: {from_spool} readings of an earlier run found in {}; they go first",
                    dir.display()
                );
            }
        }
        let announce = Announce {
            topics,
            discovery,
            broker: url.to_string(),
            credentials: settings
                .credentials
                .as_ref()
                .map(|p| p.display().to_string()),
        };
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("mqtt".into())
                .spawn(move || connection::run(connection, client, shared, announce))
                .map_err(|e| MqttConfigError::Tls(format!("cannot start the MQTT thread: {e}")))?
        };
        Ok(Self {
            shared,
            thread: Some(thread),
            device,
            broker: url.to_string(),
            next_seq: 0,
            next_id,
            from_spool,
        })
    }

    /// The device id in the topics.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Queues one classified utterance (numbered `utterance` in the run, shown
    /// `latency` after its end of speech); never waits for the broker.
    pub fn publish(&mut self, utterance: u64, latency: Duration, result: &Classification) {
        self.next_seq += 1;
        let reading = ReadingMessage {
            seq: self.next_seq,
            utterance,
            time: SystemTime::now(),
            latency,
        };
        let payload = message::reading_json(&self.device, &reading, result).to_string();
        let id = self.next_id;
        self.next_id += 1;
        let dropped = self.shared.lock().push(Queued { id, payload });
        if let Some(dropped) = dropped {
            eprintln!("MQTT: buffer full; the oldest waiting reading dropped (#{dropped})");
        }
        self.shared.wake();
    }

    /// Gives the broker up to `flush` to take what is queued, says goodbye (`offline`),
    /// and returns what was done.
    pub fn finish(mut self, flush: Duration) -> MqttSummary {
        self.shared.lock().closing = Some(Instant::now() + flush);
        self.shared.wake();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            eprintln!("MQTT: the connection thread panicked");
        }
        let state = self.shared.lock();
        MqttSummary {
            broker: self.broker.clone(),
            device: self.device.clone(),
            published: state.outbox.acknowledged,
            dropped_buffer_full: state.outbox.dropped_full,
            unsent_at_exit: state.unsent_at_exit,
            from_spool: self.from_spool,
            connections: state.connections,
            connection_failures: state.failures,
        }
    }
}
