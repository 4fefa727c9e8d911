//! From what the command line gave and a board profile to the settings a command runs
//! with. Each setting is the flag when given, else the board's, else the default; the
//! functions here are pure (no files, no devices), so that precedence is tested here and
//! `main` only parses, resolves and dispatches.
//!
//! (The variant has its own precedence, with this machine's measurement in it:
//! [`crate::variant_choice::choose`].)

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use emotion_core::head_graph::ModelKind;

use crate::audio::source::{Pace, SourceSpec};
use crate::board::{BoardProfile, DisplayKind};
use crate::classify::TextChoice;
use crate::display::wiring::{
    DEFAULT_LED_FREQUENCY_HZ, DEFAULT_OLED_ADDRESS, HardwareDisplays, LedWiring, OledWiring, PwmPin,
};
use crate::listen::{ListenOptions, Prompt};
use crate::mqtt::MqttSettings;
use crate::mqtt::config::{BrokerUrl, DEFAULT_BUFFER, DEFAULT_DISCOVERY_PREFIX};
use crate::mqtt::message::valid_device_id;
use crate::segmenter::{SegmenterConfig, SegmenterKind};

/// The source `listen` reads when neither the flag nor a board names one.
pub const DEFAULT_SOURCE: &str = "mic";
/// The kiosk page's port when neither the flag nor a board names one.
pub const DEFAULT_WEB_PORT: u16 = 8080;
/// The OLED's I2C bus when neither the flag nor a board names one.
pub const DEFAULT_OLED_BUS: u32 = 1;
/// Most threads used by default (more rarely pays on the boards).
pub const MAX_DEFAULT_THREADS: usize = 4;
pub use crate::board::MAX_THREADS;

/// `--threads N` and each of `--threads-list`: a whole number from 1 to
/// [`MAX_THREADS`], or an error that says so (clap prints it, exit status 2).
pub fn thread_count(text: &str) -> Result<usize, String> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of threads"))?;
    if (1..=MAX_THREADS).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "{n} threads: give 1 to {MAX_THREADS} (more threads than cores only slow the \
             matrix products down)"
        ))
    }
}

/// A setting that cannot be resolved; the message says what to give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// An LED output that is not `CHIP:CHANNEL`.
    #[error("{0}")]
    LedPin(String),
    /// The LED display asked for with no outputs from the flags or the board.
    #[error(
        "the LED display needs its outputs: --led CHIP:CHANNEL,CHIP:CHANNEL,CHIP:CHANNEL \
         (red,green,blue)"
    )]
    LedUnwired,
    /// `--segmenter silero` with a bundle that carries no VAD.
    #[error(
        "--segmenter silero: the bundle carries no voice-activity model (bundles exported \
         with `host-trainer export --vad` do); use --segmenter energy or auto"
    )]
    NoVad,
    /// The MQTT output's settings do not make sense.
    #[error("{0}")]
    Mqtt(String),
}

/// Whether `listen` runs the bundle's neural VAD: `--segmenter`, given whether the
/// bundle carries one.
pub fn use_vad(kind: SegmenterKind, bundle_has_vad: bool) -> Result<bool, SettingsError> {
    match kind {
        SegmenterKind::Energy => Ok(false),
        SegmenterKind::Auto => Ok(bundle_has_vad),
        SegmenterKind::Silero if bundle_has_vad => Ok(true),
        SegmenterKind::Silero => Err(SettingsError::NoVad),
    }
}

/// Threads for the matrix products: the flag, else the board's, else the `cores` up to
/// [`MAX_DEFAULT_THREADS`]; at least 1.
pub fn threads(flag: Option<usize>, board: Option<&BoardProfile>, cores: usize) -> usize {
    flag.or(board.map(|b| b.threads))
        .unwrap_or(cores.min(MAX_DEFAULT_THREADS))
        .max(1)
}

/// What `classify` was told about the text (`None`/false: not given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextFlags {
    /// `--prompt`.
    pub prompt: Option<String>,
    /// `--keyword`.
    pub keyword: Option<String>,
    /// `--transcript`.
    pub transcript: Option<String>,
    /// `--no-text`.
    pub no_text: bool,
    /// `--keyword-from-name`.
    pub keyword_from_name: bool,
}

/// The text for `classify`: the word in the file name, a keyword, a transcript, none,
/// or else the automatic chain (with the prompt, if any). clap keeps these exclusive.
pub fn text_choice(flags: &TextFlags) -> TextChoice {
    if flags.keyword_from_name {
        TextChoice::FromFileName
    } else if let Some(keyword) = &flags.keyword {
        TextChoice::Keyword(keyword.clone())
    } else if let Some(transcript) = &flags.transcript {
        TextChoice::Transcript(transcript.clone())
    } else if flags.no_text {
        TextChoice::None
    } else {
        TextChoice::Auto {
            prompt: flags.prompt.clone(),
        }
    }
}

/// Thread counts `bench` measures: the list given, else 1 up to `cores`.
pub fn bench_threads(list: Vec<usize>, cores: usize) -> Vec<usize> {
    if list.is_empty() {
        (1..=cores.max(1)).collect()
    } else {
        list
    }
}

/// Timed runs per row of `bench`: the flag, else 5 when choosing a variant, else 10.
pub fn bench_repeats(flag: Option<usize>, choose: bool) -> usize {
    flag.unwrap_or(if choose { 5 } else { 10 })
}

/// What `listen` was given on the command line (`None`, empty or false: not given).
#[derive(Debug, Clone, PartialEq)]
pub struct ListenFlags {
    /// `--source`.
    pub source: Option<String>,
    /// `--fast`.
    pub fast: bool,
    /// `--prompt`.
    pub prompt: Option<String>,
    /// `--prompt-cycle`.
    pub prompt_cycle: bool,
    /// `--no-text`.
    pub no_text: bool,
    /// `--model`.
    pub model: Option<ModelKind>,
    /// `--json`.
    pub json: bool,
    /// `--display`.
    pub display: Vec<DisplayKind>,
    /// `--web-port`.
    pub web_port: Option<u16>,
    /// `--web-bind`.
    pub web_bind: IpAddr,
    /// `--oled-bus`.
    pub oled_bus: Option<u32>,
    /// `--oled-address`.
    pub oled_address: Option<u8>,
    /// `--led` (red, green, blue).
    pub led: Vec<String>,
    /// `--led-common-anode`.
    pub led_common_anode: bool,
    /// `--threshold-db`, `--hangover-ms`, `--min-utterance-ms`, `--max-utterance-ms`.
    pub segmenter: SegmenterConfig,
    /// `--segmenter`.
    pub segmenter_kind: SegmenterKind,
    /// `--queue`.
    pub queue: usize,
    /// `--ring-seconds`.
    pub ring_seconds: f32,
    /// `--mqtt`, `--mqtt-credentials`, `--mqtt-ca`, `--mqtt-device`, `--mqtt-buffer`.
    pub mqtt: MqttFlags,
}

/// What the command line said about the MQTT output (`None`: not given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MqttFlags {
    /// `--mqtt URL`.
    pub url: Option<String>,
    /// `--mqtt-credentials FILE`.
    pub credentials: Option<PathBuf>,
    /// `--mqtt-ca FILE`.
    pub ca_file: Option<PathBuf>,
    /// `--mqtt-device ID`.
    pub device_id: Option<String>,
    /// `--mqtt-buffer N`.
    pub buffer: Option<usize>,
    /// `--mqtt-spool DIR`.
    pub spool: Option<PathBuf>,
}

/// Where `listen` shows the emotion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplaySettings {
    /// The terminal display (never with `--json`: stdout carries the JSON lines).
    pub terminal: bool,
    /// The kiosk page's address.
    pub web: Option<SocketAddr>,
    /// The OLED and LED, with their wiring.
    pub hardware: HardwareDisplays,
}

/// Everything `listen` runs with, besides the bundle.
#[derive(Debug, Clone)]
pub struct ListenSettings {
    /// The loop's options (`vad` is filled in once the bundle is open: [`use_vad`]).
    pub options: ListenOptions,
    /// Which detector was asked for.
    pub segmenter_kind: SegmenterKind,
    /// The displays.
    pub displays: DisplaySettings,
    /// One JSON object per utterance on stdout.
    pub json: bool,
    /// The MQTT output, when a broker is named.
    pub mqtt: Option<MqttSettings>,
}

/// `listen`'s settings: the flags, else the board's, else the defaults.
pub fn listen(
    flags: &ListenFlags,
    board: Option<&BoardProfile>,
) -> Result<ListenSettings, SettingsError> {
    let pace = if flags.fast {
        Pace::Fast
    } else {
        Pace::RealTime
    };
    let prompt = match (&flags.prompt, flags.prompt_cycle) {
        (Some(word), _) => Prompt::Fixed(word.clone()),
        (None, true) => Prompt::Cycle,
        (None, false) => Prompt::None,
    };
    let source = flags
        .source
        .as_deref()
        .or(board.map(|b| b.audio.source.as_str()))
        .unwrap_or(DEFAULT_SOURCE);
    Ok(ListenSettings {
        options: ListenOptions {
            source: SourceSpec::from_arg(source, pace),
            segmenter: flags.segmenter.clone(),
            vad: None,
            prompt,
            no_text: flags.no_text,
            model: flags.model,
            queue: flags.queue,
            ring_seconds: flags.ring_seconds,
        },
        displays: displays(flags, board)?,
        segmenter_kind: flags.segmenter_kind,
        json: flags.json,
        mqtt: mqtt(&flags.mqtt, board)?,
    })
}

/// The MQTT output: each setting the flag, else the board's `[mqtt]`, else the default;
/// none without a broker URL from either.
fn mqtt(
    flags: &MqttFlags,
    board: Option<&BoardProfile>,
) -> Result<Option<MqttSettings>, SettingsError> {
    let profile = board.and_then(|b| b.mqtt.as_ref());
    let Some(url) = flags.url.as_deref().or(profile.map(|p| p.url.as_str())) else {
        let given = flags.credentials.is_some()
            || flags.ca_file.is_some()
            || flags.device_id.is_some()
            || flags.buffer.is_some()
            || flags.spool.is_some();
        return if given {
            Err(SettingsError::Mqtt(
                "the --mqtt-… settings need a broker: --mqtt URL (or `url` in the board's [mqtt])"
                    .into(),
            ))
        } else {
            Ok(None)
        };
    };
    let device_id = flags
        .device_id
        .clone()
        .or(profile.and_then(|p| p.device_id.clone()));
    if let Some(id) = device_id.as_deref().filter(|id| !valid_device_id(id)) {
        return Err(SettingsError::Mqtt(format!(
            "the MQTT device id `{id}` must be 1-64 of A-Z a-z 0-9 _ - (it is a topic level)"
        )));
    }
    let url: BrokerUrl = url
        .parse()
        .map_err(|e: crate::mqtt::config::MqttConfigError| SettingsError::Mqtt(e.to_string()))?;
    let path =
        |flag: &Option<PathBuf>, board: Option<&String>| flag.clone().or(board.map(PathBuf::from));
    let buffer = flags
        .buffer
        .or(profile.and_then(|p| p.buffer))
        .unwrap_or(DEFAULT_BUFFER);
    if buffer == 0 {
        return Err(SettingsError::Mqtt(
            "the MQTT buffer must hold at least 1 reading".into(),
        ));
    }
    Ok(Some(MqttSettings {
        url,
        credentials: path(
            &flags.credentials,
            profile.and_then(|p| p.credentials.as_ref()),
        ),
        ca_file: path(&flags.ca_file, profile.and_then(|p| p.ca_file.as_ref())),
        device_id,
        buffer,
        discovery_prefix: profile
            .and_then(|p| p.discovery_prefix.clone())
            .unwrap_or_else(|| DEFAULT_DISCOVERY_PREFIX.to_string()),
        spool: path(&flags.spool, profile.and_then(|p| p.spool.as_ref())),
    }))
}

/// The displays: `--display`, else the board's, else the terminal; the OLED and the LED
/// also when a flag gives their wiring.
fn displays(
    flags: &ListenFlags,
    board: Option<&BoardProfile>,
) -> Result<DisplaySettings, SettingsError> {
    let mut kinds = match (&flags.display[..], board) {
        ([], Some(board)) => board.display.kinds.clone(),
        ([], None) => vec![DisplayKind::Terminal],
        (given, _) => given.to_vec(),
    };
    if (flags.oled_bus.is_some() || flags.oled_address.is_some())
        && !kinds.contains(&DisplayKind::Oled)
    {
        kinds.push(DisplayKind::Oled);
    }
    if !flags.led.is_empty() && !kinds.contains(&DisplayKind::Led) {
        kinds.push(DisplayKind::Led);
    }
    let web = kinds.contains(&DisplayKind::Web).then(|| {
        let port = flags
            .web_port
            .or(board.map(|b| b.display.web_port))
            .unwrap_or(DEFAULT_WEB_PORT);
        SocketAddr::new(flags.web_bind, port)
    });
    let board_oled = board.and_then(|b| b.display.oled.as_ref());
    let oled = kinds.contains(&DisplayKind::Oled).then(|| OledWiring {
        bus: flags
            .oled_bus
            .or(board_oled.map(|o| o.bus))
            .unwrap_or(DEFAULT_OLED_BUS),
        address: flags
            .oled_address
            .or(board_oled.map(|o| o.address))
            .unwrap_or(DEFAULT_OLED_ADDRESS),
    });
    let led = if kinds.contains(&DisplayKind::Led) {
        Some(led_wiring(flags, board)?)
    } else {
        None
    };
    Ok(DisplaySettings {
        terminal: kinds.contains(&DisplayKind::Terminal) && !flags.json,
        web,
        hardware: HardwareDisplays { oled, led },
    })
}

/// The LED's outputs: all three from `--led`, else the board's.
fn led_wiring(
    flags: &ListenFlags,
    board: Option<&BoardProfile>,
) -> Result<LedWiring, SettingsError> {
    let pin = |text: &str| text.parse::<PwmPin>().map_err(SettingsError::LedPin);
    let board_led = board.and_then(|b| b.display.led.as_ref());
    if !matches!(flags.led.len(), 0 | 3) {
        return Err(SettingsError::LedPin(format!(
            "--led takes the three outputs red,green,blue as CHIP:CHANNEL (e.g. --led 0:0,0:1,0:2), not {}: {}",
            flags.led.len(),
            flags.led.join(",")
        )));
    }
    let (red, green, blue, common_anode) = if let [r, g, b] = &flags.led[..] {
        (r, g, b, flags.led_common_anode)
    } else if let Some(wired) = board_led {
        (
            &wired.red,
            &wired.green,
            &wired.blue,
            flags.led_common_anode || wired.common_anode,
        )
    } else {
        return Err(SettingsError::LedUnwired);
    };
    Ok(LedWiring {
        red: pin(red)?,
        green: pin(green)?,
        blue: pin(blue)?,
        common_anode,
        frequency_hz: DEFAULT_LED_FREQUENCY_HZ,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board;

    fn flags() -> ListenFlags {
        ListenFlags {
            source: None,
            fast: false,
            prompt: None,
            prompt_cycle: false,
            no_text: false,
            model: None,
            json: false,
            display: Vec::new(),
            web_port: None,
            web_bind: IpAddr::from([127, 0, 0, 1]),
            oled_bus: None,
            oled_address: None,
            led: Vec::new(),
            led_common_anode: false,
            segmenter: SegmenterConfig::default(),
            segmenter_kind: SegmenterKind::default(),
            queue: 4,
            ring_seconds: 2.0,
            mqtt: MqttFlags::default(),
        }
    }

    /// A shipped profile with an OLED and an LED wired.
    fn wired_board() -> BoardProfile {
        let wired = board::built_in()
            .into_iter()
            .find(|b| b.display.oled.is_some() && b.display.led.is_some());
        wired.expect("a shipped profile wires an OLED and an LED")
    }

    fn pin(chip: u32, channel: u32) -> PwmPin {
        PwmPin { chip, channel }
    }

    #[test]
    fn thread_counts_are_whole_numbers_from_one_to_the_cap() {
        assert_eq!(thread_count("3"), Ok(3));
        assert_eq!(thread_count(&MAX_THREADS.to_string()), Ok(MAX_THREADS));
        for bad in [
            "0",
            "65",
            "1000000",
            "-1",
            "two",
            "",
            "99999999999999999999999",
        ] {
            let err = thread_count(bad).unwrap_err();
            assert!(err.contains("threads"), "{bad}: {err}");
        }
    }

    #[test]
    fn threads_flag_then_board_then_cores_up_to_four() {
        let pi = wired_board();
        assert_eq!(threads(Some(3), Some(&pi), 16), 3);
        assert_eq!(threads(None, Some(&pi), 16), pi.threads);
        assert_eq!(threads(None, None, 16), 4);
        assert_eq!(threads(None, None, 2), 2);
        assert_eq!(threads(Some(0), None, 2), 1, "at least one");
    }

    #[test]
    fn text_flags_pick_one_choice() {
        let auto = text_choice(&TextFlags::default());
        assert_eq!(auto, TextChoice::Auto { prompt: None });
        let given = |f: TextFlags| text_choice(&f);
        assert_eq!(
            given(TextFlags {
                prompt: Some("dog".into()),
                ..TextFlags::default()
            }),
            TextChoice::Auto {
                prompt: Some("dog".into())
            }
        );
        assert_eq!(
            given(TextFlags {
                keyword: Some("back".into()),
                ..TextFlags::default()
            }),
            TextChoice::Keyword("back".into())
        );
        assert_eq!(
            given(TextFlags {
                transcript: Some("say the word back".into()),
                ..TextFlags::default()
            }),
            TextChoice::Transcript("say the word back".into())
        );
        assert_eq!(
            given(TextFlags {
                no_text: true,
                ..TextFlags::default()
            }),
            TextChoice::None
        );
        assert_eq!(
            given(TextFlags {
                keyword_from_name: true,
                ..TextFlags::default()
            }),
            TextChoice::FromFileName
        );
    }

    #[test]
    fn bench_defaults() {
        assert_eq!(bench_threads(Vec::new(), 3), vec![1, 2, 3]);
        assert_eq!(bench_threads(vec![2, 4], 3), vec![2, 4]);
        assert_eq!(bench_threads(Vec::new(), 0), vec![1]);
        assert_eq!(bench_repeats(None, false), 10);
        assert_eq!(bench_repeats(None, true), 5);
        assert_eq!(bench_repeats(Some(3), true), 3);
    }

    #[test]
    fn without_flags_or_board_listen_reads_the_mic_onto_the_terminal() {
        let settings = listen(&flags(), None).unwrap();
        let options = &settings.options;
        assert_eq!(options.source, SourceSpec::Microphone { device: None });
        assert!(matches!(options.prompt, Prompt::None));
        assert_eq!(
            settings.displays,
            DisplaySettings {
                terminal: true,
                web: None,
                hardware: HardwareDisplays::default(),
            }
        );
    }

    #[test]
    fn the_board_fills_what_the_flags_leave_out() {
        let pi = wired_board();
        let settings = listen(&flags(), Some(&pi)).unwrap();
        assert_eq!(
            settings.options.source,
            SourceSpec::from_arg(&pi.audio.source, Pace::RealTime)
        );
        let displays = &settings.displays;
        assert_eq!(
            displays.terminal,
            pi.display.kinds.contains(&DisplayKind::Terminal)
        );
        let want_web = pi.display.kinds.contains(&DisplayKind::Web);
        assert_eq!(
            displays.web,
            want_web.then(|| SocketAddr::new(IpAddr::from([127, 0, 0, 1]), pi.display.web_port))
        );
        let oled = pi.display.oled.as_ref().unwrap();
        if pi.display.kinds.contains(&DisplayKind::Oled) {
            assert_eq!(
                displays.hardware.oled,
                Some(OledWiring {
                    bus: oled.bus,
                    address: oled.address
                })
            );
        }
    }

    #[test]
    fn flags_win_over_the_board() {
        let pi = wired_board();
        let given = ListenFlags {
            source: Some("take.wav".into()),
            fast: true,
            prompt: Some("chair".into()),
            prompt_cycle: true,
            display: vec![DisplayKind::Web, DisplayKind::Oled, DisplayKind::Led],
            web_port: Some(9000),
            oled_bus: Some(7),
            oled_address: Some(0x3D),
            led: vec!["1:0".into(), "1:1".into(), "2:0".into()],
            ..flags()
        };
        let settings = listen(&given, Some(&pi)).unwrap();
        assert_eq!(
            settings.options.source,
            SourceSpec::File {
                path: "take.wav".into(),
                pace: Pace::Fast
            }
        );
        assert!(matches!(&settings.options.prompt, Prompt::Fixed(w) if w == "chair"));
        let displays = settings.displays;
        assert!(!displays.terminal, "--display replaces the board's list");
        assert_eq!(displays.web.map(|a| a.port()), Some(9000));
        assert_eq!(
            displays.hardware.oled,
            Some(OledWiring {
                bus: 7,
                address: 0x3D
            })
        );
        let led = displays.hardware.led.unwrap();
        assert_eq!(
            (led.red, led.green, led.blue),
            (pin(1, 0), pin(1, 1), pin(2, 0))
        );
        assert!(!led.common_anode);
    }

    #[test]
    fn wiring_flags_turn_their_display_on_and_json_turns_the_terminal_off() {
        let settings = listen(
            &ListenFlags {
                oled_bus: Some(3),
                led: vec!["0:0".into(), "0:1".into(), "0:2".into()],
                led_common_anode: true,
                json: true,
                ..flags()
            },
            None,
        )
        .unwrap();
        let displays = settings.displays;
        assert!(!displays.terminal);
        assert_eq!(
            displays.hardware.oled,
            Some(OledWiring {
                bus: 3,
                address: DEFAULT_OLED_ADDRESS
            })
        );
        let led = displays.hardware.led.unwrap();
        assert!(led.common_anode);
        assert_eq!(led.frequency_hz, DEFAULT_LED_FREQUENCY_HZ);
        // Without a board, the web page's port is the default.
        let web = listen(
            &ListenFlags {
                display: vec![DisplayKind::Web],
                ..flags()
            },
            None,
        )
        .unwrap();
        assert_eq!(web.displays.web.map(|a| a.port()), Some(DEFAULT_WEB_PORT));
        assert!(matches!(
            listen(
                &ListenFlags {
                    prompt_cycle: true,
                    ..flags()
                },
                None
            )
            .unwrap()
            .options
            .prompt,
            Prompt::Cycle
        ));
    }

    #[test]
    fn an_unwired_or_miswired_led_is_an_error_that_says_what_to_give() {
        let led_only = ListenFlags {
            display: vec![DisplayKind::Led],
            ..flags()
        };
        let error = listen(&led_only, None).unwrap_err();
        assert_eq!(error, SettingsError::LedUnwired);
        assert!(error.to_string().contains("--led CHIP:CHANNEL"), "{error}");
        let bad = ListenFlags {
            led: vec!["0:0".into(), "zero".into(), "0:2".into()],
            ..flags()
        };
        let error = listen(&bad, None).unwrap_err();
        assert!(error.to_string().contains("got `zero`"), "{error}");
        // The board's LED, with the flag's common anode added.
        let pi = wired_board();
        let settings = listen(
            &ListenFlags {
                led_common_anode: true,
                ..led_only
            },
            Some(&pi),
        )
        .unwrap();
        let led = settings.displays.hardware.led.unwrap();
        let wired = pi.display.led.as_ref().unwrap();
        assert_eq!(led.red, wired.red.parse().unwrap());
        assert!(led.common_anode);
    }

    #[test]
    fn the_neural_vad_runs_when_asked_for_or_when_the_bundle_carries_one() {
        assert!(use_vad(SegmenterKind::Auto, true).unwrap());
        assert!(!use_vad(SegmenterKind::Auto, false).unwrap());
        assert!(!use_vad(SegmenterKind::Energy, true).unwrap());
        assert!(use_vad(SegmenterKind::Silero, true).unwrap());
        let err = use_vad(SegmenterKind::Silero, false).unwrap_err();
        assert!(err.to_string().contains("--segmenter energy"), "{err}");
    }

    #[test]
    fn led_outputs_come_three_or_not_at_all() {
        for led in [
            vec!["0:0"],
            vec!["0:0", "0:1"],
            vec!["0:0", "0:1", "0:2", "0:3"],
        ] {
            let flags = ListenFlags {
                led: led.iter().map(|s| s.to_string()).collect(),
                ..flags()
            };
            let err = listen(&flags, Some(&wired_board()))
                .unwrap_err()
                .to_string();
            assert!(err.contains("three outputs"), "{led:?}: {err}");
        }
    }

    #[test]
    fn mqtt_settings_come_from_the_flags_then_the_board() {
        assert_eq!(listen(&flags(), None).unwrap().mqtt, None, "off by default");
        let mut pi = wired_board();
        pi.mqtt = Some(crate::board::MqttProfile {
            url: "mqtts://ha.local".into(),
            credentials: Some("/etc/emotion-edge/mqtt.credentials".into()),
            ca_file: None,
            device_id: Some("hall".into()),
            buffer: Some(50),
            discovery_prefix: Some("ha".into()),
            spool: Some("/var/lib/emotion-edge-mqtt".into()),
        });
        let from_board = listen(&flags(), Some(&pi)).unwrap().mqtt.unwrap();
        assert_eq!(from_board.url.to_string(), "mqtts://ha.local:8883");
        assert_eq!(
            from_board.credentials,
            Some(PathBuf::from("/etc/emotion-edge/mqtt.credentials"))
        );
        assert_eq!(
            (from_board.buffer, from_board.discovery_prefix.as_str()),
            (50, "ha")
        );
        assert_eq!(
            from_board.spool,
            Some(PathBuf::from("/var/lib/emotion-edge-mqtt"))
        );
        let given = ListenFlags {
            mqtt: MqttFlags {
                url: Some("mqtt://127.0.0.1:1999".into()),
                device_id: Some("kiosk".into()),
                ..MqttFlags::default()
            },
            ..flags()
        };
        let mixed = listen(&given, Some(&pi)).unwrap().mqtt.unwrap();
        assert_eq!(mixed.url.to_string(), "mqtt://127.0.0.1:1999");
        assert_eq!(mixed.device_id.as_deref(), Some("kiosk"));
        assert_eq!(mixed.buffer, 50, "the board's, as no flag gave one");
        let alone = listen(&given, None).unwrap().mqtt.unwrap();
        assert_eq!(
            (alone.buffer, alone.discovery_prefix.as_str()),
            (DEFAULT_BUFFER, DEFAULT_DISCOVERY_PREFIX)
        );
    }

    #[test]
    fn mqtt_flags_without_a_broker_or_with_a_bad_one_are_errors() {
        let orphan = ListenFlags {
            mqtt: MqttFlags {
                buffer: Some(10),
                ..MqttFlags::default()
            },
            ..flags()
        };
        let error = listen(&orphan, None).unwrap_err().to_string();
        assert!(error.contains("--mqtt URL"), "{error}");
        let secret = ListenFlags {
            mqtt: MqttFlags {
                url: Some("mqtt://kiosk:hunter2@broker".into()),
                ..MqttFlags::default()
            },
            ..flags()
        };
        let error = listen(&secret, None).unwrap_err().to_string();
        assert!(error.contains("credentials file"), "{error}");
        let empty = ListenFlags {
            mqtt: MqttFlags {
                url: Some("mqtt://broker".into()),
                buffer: Some(0),
                ..MqttFlags::default()
            },
            ..flags()
        };
        assert!(listen(&empty, None).is_err());
        let slash = ListenFlags {
            mqtt: MqttFlags {
                url: Some("mqtt://broker".into()),
                device_id: Some("hall/1".into()),
                ..MqttFlags::default()
            },
            ..flags()
        };
        let error = listen(&slash, None).unwrap_err().to_string();
        assert!(error.contains("`hall/1`"), "{error}");
    }
}
