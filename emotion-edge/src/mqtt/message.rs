//! What goes over MQTT: the topics of one device and the JSON of a reading and of Home
//! Assistant's discovery configs. Pure (no broker), so the payloads are tested here and
//! the README's example is checked against [`discovery`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use emotion_core::Emotion;
use emotion_core::pipeline::Classification;
use serde_json::{Map, Value, json};

/// The availability topic's payload while the program runs (retained).
pub const ONLINE: &str = "online";
/// Its payload once the program has stopped or died (retained; the broker sends it as
/// the last will when the connection drops without a goodbye).
pub const OFFLINE: &str = "offline";
/// The first level of the device's own topics.
pub const TOPIC_ROOT: &str = "emotion-edge";

/// The topics of one device, all under `emotion-edge/<device>/` except discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// The device id, as in the topics.
    pub device: String,
    /// Home Assistant's discovery prefix (`homeassistant`).
    pub discovery_prefix: String,
}

impl Topics {
    /// Topics for `device` (checked by [`valid_device_id`]) under `discovery_prefix`.
    pub fn new(device: &str, discovery_prefix: &str) -> Self {
        Self {
            device: device.to_string(),
            discovery_prefix: discovery_prefix.to_string(),
        }
    }

    /// Every reading, once (not retained: each is an event).
    pub fn reading(&self) -> String {
        format!("{TOPIC_ROOT}/{}/reading", self.device)
    }

    /// The latest reading (retained, so a subscriber that comes later sees it).
    pub fn state(&self) -> String {
        format!("{TOPIC_ROOT}/{}/state", self.device)
    }

    /// `online` / `offline` (retained; `offline` is also the last will).
    pub fn availability(&self) -> String {
        format!("{TOPIC_ROOT}/{}/availability", self.device)
    }

    /// Where Home Assistant says it (re)started: `online` there asks for the configs again.
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.discovery_prefix)
    }

    /// The sensor's discovery config topic.
    pub fn sensor_config(&self) -> String {
        format!(
            "{}/sensor/{}/emotion/config",
            self.discovery_prefix, self.device
        )
    }

    /// The event entity's discovery config topic.
    pub fn event_config(&self) -> String {
        format!(
            "{}/event/{}/utterance/config",
            self.discovery_prefix, self.device
        )
    }
}

/// Whether `id` can stand in a topic level and a Home Assistant id: 1–64 of
/// `[A-Za-z0-9_-]` (no `/`, `+`, `#` or spaces).
pub fn valid_device_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `name` made into a device id: characters outside `[A-Za-z0-9_-]` become `-`
/// (a host name `kiosk.local` → `kiosk-local`); `None` when nothing usable is left.
pub fn device_id_from(name: &str) -> Option<String> {
    let id: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let id = id.trim_matches('-').to_string();
    valid_device_id(&id).then_some(id)
}

/// One classified utterance, as published: what the listen loop knew when it showed it.
#[derive(Debug, Clone)]
pub struct ReadingMessage {
    /// 1-based, contiguous over the run: a gap at the subscriber is a lost reading.
    pub seq: u64,
    /// The utterance's number in the run (utterances that failed or were dropped skip
    /// numbers).
    pub utterance: u64,
    /// When it was shown (UTC), not when it was sent: a reading that waited for the
    /// broker keeps its time.
    pub time: SystemTime,
    /// From the end of speech to the emotion being shown.
    pub latency: Duration,
}

/// The JSON of a reading (also the retained state): the device, the time, the emotion
/// and its confidence, the 7 probabilities, the head, the keyword and where it came
/// from, the latency. `event_type` repeats the emotion for Home Assistant's event entity.
pub fn reading_json(device: &str, reading: &ReadingMessage, result: &Classification) -> Value {
    let probabilities: Map<String, Value> = Emotion::ALL
        .iter()
        .zip(result.probabilities)
        .map(|(e, p)| (e.name().to_string(), json!(p)))
        .collect();
    json!({
        "device": device,
        "seq": reading.seq,
        "utterance": reading.utterance,
        "timestamp": rfc3339(reading.time),
        "emotion": result.emotion.name(),
        "event_type": result.emotion.name(),
        "confidence": result.confidence,
        "probabilities": probabilities,
        "head": result.model.name(),
        "keyword": result.keyword,
        "keyword_source": result.keyword_source.name(),
        "latency_ms": reading.latency.as_secs_f64() * 1e3,
        "inference_ms": result.timings.total().as_secs_f64() * 1e3,
    })
}

/// Home Assistant's discovery configs, `(topic, JSON)`: a `sensor` whose state is the
/// current emotion (an enum of `labels`, every field of the latest reading, the
/// confidence among them, as attributes) and an `event` entity that fires once per
/// reading with `labels` as its event types. Both follow the availability topic.
pub fn discovery(topics: &Topics, labels: &[String], version: &str) -> Vec<(String, Value)> {
    let device = &topics.device;
    let device_block = json!({
        "identifiers": [format!("emotion-edge_{device}")],
        "name": format!("emotion-edge {device}"),
        "model": "emotion-edge",
        "sw_version": version,
    });
    let origin = json!({ "name": "emotion-edge", "sw_version": version });
    let sensor = json!({
        "name": "Emotion",
        "unique_id": format!("emotion-edge_{device}_emotion"),
        "state_topic": topics.state(),
        "value_template": "{{ value_json.emotion }}",
        "json_attributes_topic": topics.state(),
        "device_class": "enum",
        "options": labels,
        "icon": "mdi:emoticon-outline",
        "availability_topic": topics.availability(),
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "qos": 1,
        "device": device_block,
        "origin": origin,
    });
    let event = json!({
        "name": "Utterance",
        "unique_id": format!("emotion-edge_{device}_utterance"),
        "state_topic": topics.reading(),
        "event_types": labels,
        "icon": "mdi:account-voice",
        "availability_topic": topics.availability(),
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "qos": 1,
        "device": device_block,
        "origin": origin,
    });
    vec![
        (topics.sensor_config(), sensor),
        (topics.event_config(), event),
    ]
}

/// `time` as RFC 3339 in UTC with milliseconds (`2026-12-03T17:20:01.123Z`).
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`), so no date crate is needed for one timestamp.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a century year) 12:34:56.789
        let t = UNIX_EPOCH + Duration::from_millis(951_827_696_789);
        assert_eq!(rfc3339(t), "2000-02-29T12:34:56.789Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_290_000);
        assert_eq!(rfc3339(t), "2026-12-03T09:26:40.000Z");
    }

    #[test]
    fn device_ids_fit_topics_and_home_assistant() {
        assert!(valid_device_id("kiosk-1_a"));
        for bad in ["", "a/b", "a+b", "a#", "a b", &"x".repeat(65)] {
            assert!(!valid_device_id(bad), "{bad:?}");
        }
        assert_eq!(
            device_id_from("kiosk.local\n").as_deref(),
            Some("kiosk-local")
        );
        assert_eq!(device_id_from("..."), None);
    }

    #[test]
    fn discovery_names_the_device_topics_and_the_labels() {
        let topics = Topics::new("kiosk", "homeassistant");
        let labels: Vec<String> = Emotion::ALL.iter().map(|e| e.name().into()).collect();
        let configs = discovery(&topics, &labels, "1.2.3");
        let (topic, sensor) = &configs[0];
        assert_eq!(topic, "homeassistant/sensor/kiosk/emotion/config");
        assert_eq!(sensor["state_topic"], "emotion-edge/kiosk/state");
        assert_eq!(sensor["json_attributes_topic"], "emotion-edge/kiosk/state");
        assert_eq!(sensor["options"], json!(labels));
        let (topic, event) = &configs[1];
        assert_eq!(topic, "homeassistant/event/kiosk/utterance/config");
        assert_eq!(event["state_topic"], "emotion-edge/kiosk/reading");
        assert_eq!(event["event_types"][5], "pleasant surprise");
        assert_eq!(
            event["availability_topic"],
            "emotion-edge/kiosk/availability"
        );
        assert_eq!(event["device"]["sw_version"], "1.2.3");
    }
}
