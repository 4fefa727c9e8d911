//! Board profiles (`boards/*.toml`): the threads, bundle variant, microphone and display
//! wiring that suit one Raspberry Pi, applied by `--board NAME`.
//!
//! The profiles are compiled in, so a board needs only the binary and a bundle; `--board`
//! also takes the path of a TOML file of the same shape for boards we do not ship.
//! Explicit command-line flags always win over the profile.

use std::path::Path;

use serde::Deserialize;

/// Most matrix-product threads anyone may ask for (a profile, `--threads`): tract starts
/// a pool of that many, and far past the cores they only cost memory (a million hung
/// `classify` creating them).
pub const MAX_THREADS: usize = 64;

/// The `variant` that leaves the choice to the machine (see [`crate::variant_choice`]).
pub const AUTO_VARIANT: &str = "auto";

/// The share of `memory_max_mb` a profile's `expected_memory_mb` may take: 15 % stays free.
pub const MAX_MEMORY_SHARE: f64 = 0.85;

/// The service cap (`memory_max_mb`) for a measured peak: 5/4 of it, rounded up to
/// 16 MB, so that `MemoryHigh` (4/5 of the cap, where the kernel starts reclaiming)
/// sits at or above the peak and the service is not throttled at its measured worst.
/// The shipped profiles' caps are this of docs/results/board-memory.json's peaks.
pub fn memory_cap_mb(peak_mb: f64) -> u32 {
    let cap = (peak_mb.max(1.0) * 5.0 / 4.0 / 16.0).ceil() * 16.0;
    cap as u32
}

/// The profiles shipped in `boards/`, by name.
const BUILT_IN: [(&str, &str); 4] = [
    ("pi4", include_str!("../../boards/pi4.toml")),
    ("pi5", include_str!("../../boards/pi5.toml")),
    ("zero2w", include_str!("../../boards/zero2w.toml")),
    ("pi3", include_str!("../../boards/pi3.toml")),
];

/// One board's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardProfile {
    /// Short name (`pi4`), what `--board` takes.
    pub name: String,
    /// The board's full name.
    pub board: String,
    /// Cores and clock, for people.
    pub cpu: String,
    /// SIMD extensions the CPU has (`neon`, `dotprod`, `fp16`).
    pub cpu_features: Vec<String>,
    /// The Rust target triple to build for.
    pub target: String,
    /// Memory of the smallest model, MB.
    pub memory_mb: u32,
    /// Peak resident memory of `emotion-edge listen` with this profile's variant and
    /// threads, MB (measured with `emotion-edge bench --board NAME`).
    pub expected_memory_mb: u32,
    /// The service's `MemoryMax`, MB (install.sh writes it, and `MemoryHigh` at 4/5 of
    /// it); at most `memory_mb`.
    pub memory_max_mb: u32,
    /// Matrix-product threads.
    pub threads: usize,
    /// The bundle variant (`int8`, `fp32`), or `auto` (the default): a `bench --choose`
    /// measurement of this machine, else the rule for its CPU class (see
    /// [`crate::variant_choice`]).
    #[serde(default)]
    pub variant: Option<String>,
    /// Where the audio comes from.
    pub audio: AudioProfile,
    /// What shows the emotion, and how it is wired.
    pub display: DisplayProfile,
    /// Where readings are published over MQTT (`listen --mqtt`), if anywhere.
    #[serde(default)]
    pub mqtt: Option<MqttProfile>,
}

/// The MQTT output: the broker and how to log in (the login itself stays in the
/// credentials file, never in the profile).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttProfile {
    /// `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`.
    pub url: String,
    /// A file with `username = "…"` and `password = "…"`.
    #[serde(default)]
    pub credentials: Option<String>,
    /// The CA certificate(s) of a TLS broker (PEM); the system's when absent.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The device id in the topics; the host name when absent.
    #[serde(default)]
    pub device_id: Option<String>,
    /// Readings kept while the broker is away.
    #[serde(default)]
    pub buffer: Option<usize>,
    /// Home Assistant's discovery prefix (`homeassistant`).
    #[serde(default)]
    pub discovery_prefix: Option<String>,
    /// A folder that keeps readings on disk until the broker has them.
    #[serde(default)]
    pub spool: Option<String>,
}

/// The microphone.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioProfile {
    /// `listen --source` default (`mic`, `mic:NAME`).
    pub source: String,
    /// What to plug in and how to check it.
    pub hint: String,
}

/// The displays and their wiring.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplayProfile {
    /// `listen --display` default.
    pub kinds: Vec<DisplayKind>,
    /// Port of the kiosk page.
    pub web_port: u16,
    /// The SSD1306 OLED, when the board has one wired.
    #[serde(default)]
    pub oled: Option<OledProfile>,
    /// The RGB LED, when the board has the PWM channels for one.
    #[serde(default)]
    pub led: Option<LedProfile>,
}

/// Something that shows the emotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DisplayKind {
    /// Live bars on the terminal; a line per utterance when not a terminal (the journal).
    Terminal,
    /// The kiosk page, served over HTTP with live updates.
    Web,
    /// An SSD1306 OLED on I2C.
    Oled,
    /// An RGB LED on three PWM channels.
    Led,
}

/// An SSD1306 on I2C.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OledProfile {
    /// `/dev/i2c-BUS`.
    pub bus: u32,
    /// 0x3C or 0x3D.
    pub address: u8,
}

/// An RGB LED on sysfs PWM, each colour `CHIP:CHANNEL`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedProfile {
    /// Red output.
    pub red: String,
    /// Green output.
    pub green: String,
    /// Blue output.
    pub blue: String,
    /// The common leg is on 3.3 V.
    #[serde(default)]
    pub common_anode: bool,
}

/// Why a profile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// Neither a shipped name nor a file.
    #[error("no board profile `{0}`: the shipped ones are {names} (or give the path of a .toml file)", names = names().join(", "))]
    Unknown(String),
    /// A file that could not be read.
    #[error("cannot read the board profile {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a profile.
    #[error("the board profile {path} is not valid: {detail}")]
    Invalid {
        /// The file or name.
        path: String,
        /// What is wrong, from the TOML parser or the checks.
        detail: String,
    },
}

/// The names of the shipped profiles.
pub fn names() -> Vec<&'static str> {
    BUILT_IN.iter().map(|(name, _)| *name).collect()
}

/// All shipped profiles, in `names()` order.
pub fn built_in() -> Vec<BoardProfile> {
    BUILT_IN
        .iter()
        .map(|(name, text)| parse(name, text).expect("shipped board profiles are checked by tests"))
        .collect()
}

/// A shipped profile by name, or a profile file by path.
pub fn load(name_or_path: &str) -> Result<BoardProfile, BoardError> {
    let (origin, text) = text(name_or_path)?;
    parse(&origin, &text)
}

/// The TOML of a shipped profile or a profile file, comments and all, with where it came
/// from.
pub fn text(name_or_path: &str) -> Result<(String, String), BoardError> {
    if let Some((name, text)) = BUILT_IN.iter().find(|(name, _)| *name == name_or_path) {
        return Ok((name.to_string(), text.to_string()));
    }
    let path = Path::new(name_or_path);
    if !path.is_file() {
        return Err(BoardError::Unknown(name_or_path.to_string()));
    }
    let text = std::fs::read_to_string(path).map_err(|source| BoardError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok((path.display().to_string(), text))
}

fn parse(origin: &str, text: &str) -> Result<BoardProfile, BoardError> {
    let invalid = |detail: String| BoardError::Invalid {
        path: origin.to_string(),
        detail,
    };
    let profile: BoardProfile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    if !(1..=MAX_THREADS).contains(&profile.threads) {
        return Err(invalid(format!(
            "threads must be 1 to {}, not {}",
            MAX_THREADS, profile.threads
        )));
    }
    if profile.memory_max_mb == 0 || profile.memory_max_mb > profile.memory_mb {
        return Err(invalid(format!(
            "memory_max_mb ({}) must be between 1 and the board's memory_mb ({})",
            profile.memory_max_mb, profile.memory_mb
        )));
    }
    if profile.variant.as_deref().is_some_and(str::is_empty) {
        return Err(invalid(
            "variant is empty: name one (int8, fp32) or write \"auto\"".into(),
        ));
    }
    if profile.display.kinds.contains(&DisplayKind::Oled) && profile.display.oled.is_none() {
        return Err(invalid(
            "`oled` is in display.kinds but [display.oled] is missing".into(),
        ));
    }
    if profile.display.kinds.contains(&DisplayKind::Led) && profile.display.led.is_none() {
        return Err(invalid(
            "`led` is in display.kinds but [display.led] is missing".into(),
        ));
    }
    if let Some(mqtt) = &profile.mqtt {
        mqtt.url
            .parse::<crate::mqtt::config::BrokerUrl>()
            .map_err(|e| invalid(format!("[mqtt] url: {e}")))?;
    }
    Ok(profile)
}

impl BoardProfile {
    /// The CPU architecture of the profile's target as Rust names it
    /// (`std::env::consts::ARCH`): `aarch64`, `arm`.
    pub fn arch(&self) -> &str {
        match self.target.split('-').next().unwrap_or_default() {
            arch if arch.starts_with("armv") => "arm",
            arch => arch,
        }
    }

    /// A note when this binary was built for another CPU than the board's (fine for a
    /// trial on a PC, worth knowing on a board).
    pub fn arch_note(&self) -> Option<String> {
        let here = std::env::consts::ARCH;
        (self.arch() != here).then(|| {
            format!(
                "note: the {} profile is for {} but this emotion-edge is built for {here}",
                self.name, self.target
            )
        })
    }

    /// The variant the profile pins, `None` for `auto` (or no `variant`).
    pub fn pinned_variant(&self) -> Option<&str> {
        self.variant
            .as_deref()
            .filter(|v| !v.eq_ignore_ascii_case(AUTO_VARIANT))
    }

    /// Whether a process that peaked at `peak_rss_mb` fits under this board's
    /// `MemoryMax`, and with how much room, in one line.
    pub fn memory_fit(&self, peak_rss_mb: f64) -> String {
        let max = f64::from(self.memory_max_mb);
        let room = max - peak_rss_mb;
        let share = 100.0 * room / max;
        let expected = format!(
            "the profile's expected_memory_mb is {} MB; memory_max_mb for this peak: {}",
            self.expected_memory_mb,
            memory_cap_mb(peak_rss_mb)
        );
        if room < 0.0 {
            format!(
                "memory: peak RSS {peak_rss_mb:.0} MB does NOT fit the {} profile's MemoryMax of {} MB ({:.0} MB over; {expected}): the service would be stopped by the OOM killer; use a smaller variant (--variant int8) or bundle, fewer --threads, or raise memory_max_mb if the board has the memory",
                self.name, self.memory_max_mb, -room
            )
        } else if share < 100.0 * (1.0 - MAX_MEMORY_SHARE) {
            format!(
                "memory: peak RSS {peak_rss_mb:.0} MB fits the {} profile's MemoryMax of {} MB, but with only {room:.0} MB ({share:.0} %) headroom, under the 15 % the profiles keep ({expected})",
                self.name, self.memory_max_mb
            )
        } else {
            format!(
                "memory: peak RSS {peak_rss_mb:.0} MB fits the {} profile's MemoryMax of {} MB with {room:.0} MB ({share:.0} %) headroom ({expected})",
                self.name, self.memory_max_mb
            )
        }
    }

    /// One line for `emotion-edge boards`.
    pub fn summary(&self) -> String {
        let displays: Vec<String> = self
            .display
            .kinds
            .iter()
            .map(|k| format!("{k:?}").to_lowercase())
            .collect();
        format!(
            "{:<7} {:<38} {:<31} {:>5} MB (service max {:>4} MB)  {} threads  variant {:<5} displays {}",
            self.name,
            self.board,
            self.target,
            self.memory_mb,
            self.memory_max_mb,
            self.threads,
            self.pinned_variant().unwrap_or(AUTO_VARIANT),
            displays.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_parses_and_is_named_after_its_file() {
        for (name, text) in BUILT_IN {
            let profile = parse(name, text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(profile.name, name);
            assert!(profile.threads >= 1 && profile.threads <= 4, "{name}");
            assert!(!profile.display.kinds.is_empty(), "{name}");
        }
    }

    #[test]
    fn the_profiles_say_what_the_issue_asks_of_each_board() {
        let pi4 = load("pi4").unwrap();
        assert_eq!(pi4.target, "aarch64-unknown-linux-gnu");
        assert!(
            !pi4.cpu_features
                .iter()
                .any(|f| f == "dotprod" || f == "fp16")
        );
        let pi5 = load("pi5").unwrap();
        assert!(pi5.cpu_features.iter().any(|f| f == "dotprod"));
        assert!(pi5.cpu_features.iter().any(|f| f == "fp16"));
        let zero = load("zero2w").unwrap();
        assert_eq!(zero.memory_mb, 512);
        assert_eq!(zero.pinned_variant(), Some("int8"), "memory is tight");
        assert_eq!(pi4.pinned_variant(), None, "measured or the CPU rule");
        assert_eq!(pi5.pinned_variant(), None, "measured or the CPU rule");
        let pi3 = load("pi3").unwrap();
        assert_eq!(pi3.target, "armv7-unknown-linux-gnueabihf");
        assert_eq!(pi3.arch(), "arm");
        assert_eq!(pi4.arch(), "aarch64");
    }

    #[test]
    fn every_shipped_profile_states_its_variant_and_memory() {
        for (name, text) in BUILT_IN {
            let profile = parse(name, text).unwrap();
            assert!(
                profile.variant.is_some(),
                "{name}: state `variant` (a name, or \"auto\")"
            );
            assert!(
                text.contains("docs/results/board-memory.md"),
                "{name}: say which measurement expected_memory_mb comes from"
            );
            let (expected, max, board) = (
                f64::from(profile.expected_memory_mb),
                f64::from(profile.memory_max_mb),
                profile.memory_mb,
            );
            assert!(expected > 0.0, "{name}");
            assert!(
                expected <= MAX_MEMORY_SHARE * max,
                "{name}: expected_memory_mb {expected} leaves under 15 % of memory_max_mb {max}"
            );
            assert!(
                profile.memory_max_mb <= board,
                "{name}: memory_max_mb {max} is more than the board's {board} MB"
            );
        }
    }

    /// The audit's hole: the caps were fractions of the board's memory, not measured.
    #[test]
    fn every_shipped_cap_comes_from_the_measured_peak() {
        let measured: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/results/board-memory.json"))
                .expect("docs/results/board-memory.json (scripts/board-memory.py)");
        let profiles = measured["profiles"].as_object().expect("profiles");
        let mut measured_names: Vec<&str> = profiles.keys().map(String::as_str).collect();
        measured_names.sort();
        let mut shipped: Vec<&str> = BUILT_IN.iter().map(|(name, _)| *name).collect();
        shipped.sort();
        assert_eq!(measured_names, shipped, "measure every shipped profile");
        for (name, text) in BUILT_IN {
            let profile = parse(name, text).unwrap();
            let record = &profiles[name];
            assert_eq!(
                record["threads"], profile.threads,
                "{name}: threads changed since the measurement: run scripts/board-memory.py"
            );
            assert_eq!(
                record["variant"].as_str(),
                Some(profile.pinned_variant().unwrap_or(AUTO_VARIANT)),
                "{name}: variant changed since the measurement: run scripts/board-memory.py"
            );
            let worst = record["peak_mb"]
                .as_object()
                .expect("peaks")
                .values()
                .map(|v| v.as_f64().expect("MB"))
                .reduce(f64::max)
                .expect("a peak per variant");
            assert!(worst > 0.0, "{name}: {record}");
            assert_eq!(
                profile.expected_memory_mb,
                worst.ceil() as u32,
                "{name}: expected_memory_mb is not the measured peak"
            );
            assert_eq!(
                profile.memory_max_mb,
                memory_cap_mb(worst.ceil()),
                "{name}: memory_max_mb is not memory_cap_mb(expected_memory_mb)"
            );
            assert!(
                f64::from(profile.memory_max_mb) * 4.0 / 5.0 >= worst,
                "{name}: MemoryHigh below the measured peak"
            );
        }
    }

    #[test]
    fn the_cap_keeps_memory_high_above_the_peak() {
        for peak in [1.0, 35.5, 209.6, 210.0, 476.4, 477.0, 4000.0] {
            let cap = memory_cap_mb(peak);
            assert_eq!(cap % 16, 0, "{peak}");
            assert!(f64::from(cap) * 4.0 / 5.0 >= peak, "{peak} -> {cap}");
            assert!(f64::from(cap) < peak * 5.0 / 4.0 + 16.0, "{peak} -> {cap}");
        }
        assert_eq!(memory_cap_mb(477.0), 608);
        assert_eq!(memory_cap_mb(210.0), 272);
    }

    #[test]
    fn the_memory_fit_says_whether_the_peak_fits_and_what_to_do() {
        let pi4 = load("pi4").unwrap();
        let max = pi4.memory_max_mb as f64;
        let fits = pi4.memory_fit(56.0);
        assert!(fits.contains("fits the pi4 profile's MemoryMax"), "{fits}");
        assert!(fits.contains(&format!("{:.0} MB", max - 56.0)), "{fits}");
        let tight = pi4.memory_fit(max * 0.9);
        assert!(tight.contains("but with only"), "{tight}");
        let over = pi4.memory_fit(max + 10.0);
        assert!(over.contains("does NOT fit"), "{over}");
        assert!(over.contains("10 MB over"), "{over}");
        assert!(over.contains("--variant int8"), "{over}");
    }

    #[test]
    fn an_mqtt_table_is_read_and_a_bad_url_or_key_named() {
        let dir = tempfile::tempdir().unwrap();
        let base = include_str!("../../boards/pi4.toml");
        let with = |table: &str| {
            let path = dir.path().join("mqtt.toml");
            std::fs::write(&path, format!("{base}\n[mqtt]\n{table}\n")).unwrap();
            load(path.to_str().unwrap())
        };
        let mqtt = with("url = \"mqtts://ha.local\"\nspool = \"/var/lib/emotion-edge-mqtt\"")
            .unwrap()
            .mqtt
            .unwrap();
        assert_eq!(mqtt.url, "mqtts://ha.local");
        assert_eq!(mqtt.spool.as_deref(), Some("/var/lib/emotion-edge-mqtt"));
        let error = with("url = \"http://ha.local\"").unwrap_err().to_string();
        assert!(
            error.contains("[mqtt] url") && error.contains("http"),
            "{error}"
        );
        let error = with("url = \"mqtt://ha\"\npassword = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("password"), "{error}");
        assert!(
            built_in().iter().all(|b| b.mqtt.is_none()),
            "shipped profiles publish nothing"
        );
    }

    #[test]
    fn a_profile_file_loads_by_path_and_a_typo_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("mine.toml");
        let text =
            include_str!("../../boards/pi4.toml").replace("name = \"pi4\"", "name = \"mine\"");
        std::fs::write(&good, &text).unwrap();
        assert_eq!(load(good.to_str().unwrap()).unwrap().name, "mine");

        let typo = dir.path().join("typo.toml");
        std::fs::write(&typo, text.replace("threads = 3", "thread = 3")).unwrap();
        let error = load(typo.to_str().unwrap()).unwrap_err().to_string();
        assert!(error.contains("thread"), "{error}");

        let oled_unwired = dir.path().join("unwired.toml");
        let cut = text.find("[display.oled]").unwrap();
        std::fs::write(
            &oled_unwired,
            text[..cut].replace("[\"web\", \"terminal\"]", "[\"oled\"]"),
        )
        .unwrap();
        let error = load(oled_unwired.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(error.contains("[display.oled] is missing"), "{error}");

        let too_much = dir.path().join("too_much.toml");
        std::fs::write(
            &too_much,
            text.replace("memory_max_mb = 608", "memory_max_mb = 4096"),
        )
        .unwrap();
        let error = load(too_much.to_str().unwrap()).unwrap_err().to_string();
        assert!(error.contains("memory_max_mb (4096)"), "{error}");
    }

    #[test]
    fn an_unknown_board_lists_the_shipped_ones() {
        let error = load("pi9").unwrap_err().to_string();
        for name in names() {
            assert!(error.contains(name), "{error}");
        }
    }
}
