//! The MQTT thread: keeps one connection to the broker (rumqttc), reconnecting with
//! backoff as the microphone does; on each connection announces the device (Home
//! Assistant discovery, `online`), then sends the outbox in order and drops each reading
//! once acknowledged. The listen loop never waits on it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rumqttc::{
    Client, ConnectReturnCode, Connection, ConnectionError, Event, Incoming, Outgoing, QoS,
    RecvTimeoutError,
};

use super::message::{OFFLINE, ONLINE, Topics};
use super::outbox::{Outbox, Queued};
use super::spool::Spool;

/// First and longest wait before connecting again (as the microphone's).
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest wait between attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(10);
/// Readings handed to the client before their acknowledgements.
pub const WINDOW: usize = 16;
/// How long one wait for the broker lasts before the outbox is looked at again.
const TICK: Duration = Duration::from_millis(25);
/// How long the goodbye (`offline`, DISCONNECT) may take.
const GOODBYE: Duration = Duration::from_secs(5);

/// What the thread and the listen loop share.
pub struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// The outbox and the thread's condition.
pub struct State {
    /// Readings waiting for the broker.
    pub outbox: Outbox,
    /// Set by `finish`: send what waits until this instant, then say goodbye.
    pub closing: Option<Instant>,
    /// Times a connection was made.
    pub connections: u64,
    /// Failed attempts and dropped connections.
    pub failures: u64,
    /// Readings still waiting when the thread ended (lost unless spooled).
    pub unsent_at_exit: u64,
    /// Where readings wait on disk, when spooled.
    pub spool: Option<Spool>,
}

impl State {
    /// Queues a reading (on disk first, when spooled); the id of one dropped because
    /// the buffer was full.
    pub fn push(&mut self, reading: Queued) -> Option<u64> {
        if let Some(spool) = self.spool.as_mut() {
            spool.write(reading.id, &reading.payload);
        }
        let dropped = self.outbox.push(reading);
        if let (Some(id), Some(spool)) = (dropped, self.spool.as_mut()) {
            spool.remove(id);
        }
        dropped
    }

    /// The broker acknowledged packet `packet`: a reading is done with.
    fn acknowledged(&mut self, packet: u16) {
        if let (Some(id), Some(spool)) = (self.outbox.acknowledged(packet), self.spool.as_mut()) {
            spool.remove(id);
        }
    }
}

impl Shared {
    /// A new shared state around an outbox of `capacity` readings.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                outbox: Outbox::new(capacity),
                closing: None,
                connections: 0,
                failures: 0,
                unsent_at_exit: 0,
                spool: None,
            }),
            wake: Condvar::new(),
        }
    }

    /// The state, locked. A panic elsewhere cannot leave it inconsistent.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the thread (a reading came, or `finish` was called).
    pub fn wake(&self) {
        self.wake.notify_all();
    }

    /// Waits `timeout`, or less when closing is asked for meanwhile (then one more
    /// try may still deliver what waits). New readings do not cut it short: the
    /// broker is not asked more often than the backoff says.
    fn sleep(&self, timeout: Duration) {
        let end = Instant::now() + timeout;
        let mut state = self.lock();
        let closing_before = state.closing.is_some();
        loop {
            let now = Instant::now();
            if now >= end || (!closing_before && state.closing.is_some()) {
                return;
            }
            state = self
                .wake
                .wait_timeout(state, end - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// What the thread announces on each connection.
pub struct Announce {
    /// The device's topics.
    pub topics: Topics,
    /// Home Assistant's discovery configs, `(topic, JSON)`.
    pub discovery: Vec<(String, String)>,
    /// The broker, for messages.
    pub broker: String,
    /// Where the login came from, for the message when the broker refuses it.
    pub credentials: Option<String>,
}

/// Runs the connection until `finish` and the outbox say so.
pub fn run(mut connection: Connection, client: Client, shared: Arc<Shared>, announce: Announce) {
    let mut connected = false;
    let mut retry = FIRST_RETRY;
    loop {
        let (closing, empty) = {
            let state = shared.lock();
            (state.closing, state.outbox.is_empty())
        };
        if closing.is_some_and(|deadline| empty || Instant::now() >= deadline) {
            break;
        }
        let event = if connected {
            match connection.recv_timeout(TICK) {
                Ok(event) => Some(event),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            // Connecting is not interrupted (an interrupted TLS handshake starts over);
            // rumqttc gives up on a silent broker after 5 s.
            match connection.recv() {
                Ok(event) => Some(event),
                Err(_) => break,
            }
        };
        match event {
            None => {}
            Some(Ok(Event::Incoming(Incoming::ConnAck(_)))) => {
                connected = true;
                retry = FIRST_RETRY;
                let waiting = {
                    let mut state = shared.lock();
                    state.connections += 1;
                    state.outbox.disconnected();
                    state.outbox.len()
                };
                eprintln!(
                    "MQTT: connected to {} as {} ({waiting} readings waiting)",
                    announce.broker, announce.topics.device
                );
                hello(&client, &shared, &announce);
            }
            Some(Ok(Event::Outgoing(Outgoing::Publish(id)))) => shared.lock().outbox.sent(id),
            Some(Ok(Event::Incoming(Incoming::PubAck(ack)))) => {
                shared.lock().acknowledged(ack.pkid);
            }
            Some(Ok(Event::Incoming(Incoming::Publish(p))))
                if p.topic == announce.topics.ha_status()
                    && p.payload.as_ref() == ONLINE.as_bytes() =>
            {
                eprintln!("MQTT: Home Assistant came online; discovery sent again");
                discovery(&client, &shared, &announce);
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                connected = false;
                let waiting = {
                    let mut state = shared.lock();
                    state.failures += 1;
                    state.outbox.disconnected();
                    state.outbox.len()
                };
                eprintln!(
                    "MQTT: {}; retrying in {:.1} s ({waiting} readings waiting)",
                    explain(&error, &announce),
                    retry.as_secs_f64()
                );
                let deadline = shared.lock().closing;
                let pause = match deadline {
                    Some(d) => retry.min(d.saturating_duration_since(Instant::now())),
                    None => retry,
                };
                shared.sleep(pause);
                retry = (retry * 2).min(MAX_RETRY);
                continue;
            }
        }
        if connected {
            pump(&client, &shared, &announce.topics);
        }
    }
    if connected {
        goodbye(&mut connection, &client, &announce.topics);
    }
    let mut state = shared.lock();
    state.unsent_at_exit = state.outbox.len() as u64;
}

/// On each connection: the discovery configs, `online`, and Home Assistant's status.
fn hello(client: &Client, shared: &Shared, announce: &Announce) {
    let topics = &announce.topics;
    // Failures here surface as the connection's next error.
    let _ = client.try_subscribe(topics.ha_status(), QoS::AtLeastOnce);
    discovery(client, shared, announce);
    publish(client, shared, &topics.availability(), true, ONLINE, None);
}

fn discovery(client: &Client, shared: &Shared, announce: &Announce) {
    for (topic, config) in &announce.discovery {
        publish(client, shared, topic, true, config, None);
    }
}

/// Hands the client what the window allows: each reading once as an event and once as
/// the retained state.
fn pump(client: &Client, shared: &Shared, topics: &Topics) {
    loop {
        let next = shared.lock().outbox.next_to_send(WINDOW);
        let Some(reading) = next else { return };
        publish(
            client,
            shared,
            &topics.reading(),
            false,
            &reading.payload,
            Some(reading.id),
        );
        publish(
            client,
            shared,
            &topics.state(),
            true,
            &reading.payload,
            None,
        );
    }
}

/// One QoS 1 publish, recorded in the outbox's order. The client's queue is far larger
/// than the window, so `try_publish` does not refuse; if it ever did, the reading stays
/// unacknowledged and goes again on the next connection.
fn publish(
    client: &Client,
    shared: &Shared,
    topic: &str,
    retain: bool,
    payload: &str,
    reading: Option<u64>,
) {
    let mut state = shared.lock();
    if client
        .try_publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec())
        .is_ok()
    {
        state.outbox.handed(reading);
    }
}

/// `offline` (retained) and a clean DISCONNECT, so the broker does not send the will.
/// It reads on until the broker closes the connection: leaving the broker's last
/// acknowledgement unread would make the close a reset, and each wait lasts the whole
/// goodbye, since a wait cut short can leave the DISCONNECT unflushed in the client.
fn goodbye(connection: &mut Connection, client: &Client, topics: &Topics) {
    let _ = client.try_publish(topics.availability(), QoS::AtLeastOnce, true, OFFLINE);
    let _ = client.try_disconnect();
    let end = Instant::now() + GOODBYE;
    let mut disconnect_sent = false;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => disconnect_sent = true,
            Ok(Ok(_)) => {}
            // The broker closes the connection once it has the DISCONNECT.
            Ok(Err(_)) if disconnect_sent => return,
            Ok(Err(error)) => {
                eprintln!("MQTT: the goodbye failed ({error}); the broker sends the last will");
                return;
            }
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => break,
        }
    }
    eprintln!(
        "MQTT: the broker did not close within {} s of the goodbye{}",
        GOODBYE.as_secs(),
        if disconnect_sent {
            ""
        } else {
            "; it sends the last will"
        }
    );
}

/// A connection error as a person can act on it.
fn explain(error: &ConnectionError, announce: &Announce) -> String {
    let broker = &announce.broker;
    match error {
        ConnectionError::ConnectionRefused(code) => {
            // Mosquitto answers a wrong password with "not authorised" under MQTT 3.1.1.
            let why = match (code, &announce.credentials) {
                (
                    ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
                    Some(file),
                ) => format!(
                    "refused the login from {file} (wrong user name or password, or not \
                     allowed to connect)"
                ),
                (
                    ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
                    None,
                ) => "wants a login: give a credentials file with --mqtt-credentials FILE"
                    .to_string(),
                (other, _) => format!("refused the connection ({other:?})"),
            };
            format!("the broker {broker} {why}")
        }
        ConnectionError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("nothing accepts connections at {broker} (is the broker running?)")
        }
        ConnectionError::Tls(e) => format!("TLS with {broker} failed: {e}"),
        ConnectionError::NetworkTimeout => format!("{broker} did not answer within 5 s"),
        other => format!("connection to {broker} lost: {other}"),
    }
}
