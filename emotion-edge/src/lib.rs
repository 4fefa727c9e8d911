//! emotion-edge: the board's program. It links `emotion-core` (the front-end and the tract
//! pipeline shared with the host) and never burn, plotters or hf-hub.
//!
//! - [`classify`]: WAV files through the bundle's pipeline.
//! - [`listen`]: the live loop: source, segmenter, inference thread, displays.
//! - [`bench`]: per-stage latency, real-time factor and memory of a bundle.
//! - [`cpu`]: this machine's CPU as tract sees it (from `emotion-core`, re-exported here).
//! - [`variant_choice`]: which bundle variant this machine runs, and why.
//! - [`inspect`]: run the shared front-end over WAV files and describe what it saw.
//! - [`locate`]: where the bundle is when none is named; [`output`]: result formats.
//! - [`audio`]: microphone, file and stdin sources, the capture ring, resampling.
//! - [`segmenter`]: voice-activity segmentation of the stream into utterances.
//! - [`segmentation_bench`]: segmenters measured on real speech in noise (streams, noises,
//!   SNR mixing, scoring; the `segmentation_table` example prints the table).
//! - [`display`]: the terminal, the kiosk page, an RGB LED and an OLED.
//! - [`mqtt`]: readings published over MQTT, with Home Assistant discovery.
//! - [`board`]: the Raspberry Pi profiles `--board` applies.
//! - [`settings`]: the command line and a board profile resolved to what a command runs
//!   with (flag, else board, else default).

pub mod audio;
pub mod bench;
pub mod board;
pub mod classify;
pub use emotion_core::cpu;
pub mod display;
pub mod inspect;
pub mod listen;
pub mod locate;
pub mod mqtt;
pub mod output;
pub mod segmentation_bench;
pub mod segmenter;
pub mod settings;
pub mod variant_choice;
