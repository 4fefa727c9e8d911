//! Where `listen` shows what it heard: the terminal (default), and behind the
//! `hardware` feature an RGB LED and an SSD1306 OLED driven through embedded-hal.
//!
//! Every display gets the same [`Reading`]: the emotion, its confidence, the seven
//! probabilities and the keyword used, so each display decides only how to draw it.

use std::time::Duration;

use models::Emotion;

#[cfg(feature = "hardware")]
pub mod led;
#[cfg(feature = "hardware")]
pub mod linux;
#[cfg(feature = "hardware")]
pub mod oled;
pub mod terminal;

/// One classified utterance, as a display sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The most probable emotion.
    pub emotion: Emotion,
    /// Its probability, in `[0, 1]`.
    pub confidence: f32,
    /// All seven, in [`Emotion::ALL`] order.
    pub probabilities: [f32; Emotion::COUNT],
    /// The keyword whose transcript was used, if any.
    pub keyword: Option<String>,
    /// Where the keyword came from: `prompt`, `spotted`, `given` or `none`.
    pub keyword_source: &'static str,
    /// Seconds of speech in the utterance.
    pub speech_seconds: f32,
    /// From the end of speech to the emotion being shown.
    pub latency: Duration,
}

/// Why a display could not draw (a bus error, a closed terminal).
#[derive(Debug, thiserror::Error)]
#[error("{display}: {detail}")]
pub struct DisplayError {
    /// Which display.
    pub display: &'static str,
    /// What went wrong.
    pub detail: String,
}

/// Something that shows readings.
pub trait Display {
    /// A short name for messages (`terminal`, `led`, `oled`).
    fn name(&self) -> &'static str;
    /// Shows a new reading.
    fn show(&mut self, reading: &Reading) -> Result<(), DisplayError>;
    /// Shows the word the kiosk asks the speaker to say (`None`: no prompt).
    fn prompt(&mut self, _word: Option<&str>) -> Result<(), DisplayError> {
        Ok(())
    }
    /// Shows that nothing is being classified (listening, or the source is lost).
    fn idle(&mut self, _message: &str) -> Result<(), DisplayError> {
        Ok(())
    }
}
