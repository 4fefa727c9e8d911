//! Where `listen` shows what it heard: the terminal (default), and behind the
//! `hardware` feature an RGB LED and an SSD1306 OLED driven through embedded-hal.
//!
//! Every display gets the same [`Reading`]: the emotion, its confidence, the seven
//! probabilities and the keyword used, so each display decides only how to draw it.

use std::time::Duration;

use emotion_core::{Emotion, KeywordSource};

#[cfg(feature = "hardware")]
pub mod led;
#[cfg(feature = "hardware")]
pub mod linux;
#[cfg(feature = "hardware")]
pub mod oled;
pub mod terminal;
pub mod web;
pub mod wiring;

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
    /// Where the keyword came from ([`KeywordSource::NoWordHeard`]: the spotter heard
    /// no vocabulary word, and the displays say [`NO_WORD_HEARD`]).
    pub keyword_source: KeywordSource,
    /// Seconds of speech in the utterance.
    pub speech_seconds: f32,
    /// From the end of speech to the emotion being shown.
    pub latency: Duration,
}

/// What every display writes when the keyword spotter heard no vocabulary word
/// ([`KeywordSource::NoWordHeard`]): never a guessed word.
pub const NO_WORD_HEARD: &str = "no word heard";

impl Reading {
    /// True when the keyword spotter said that no vocabulary word was said.
    pub fn no_word_heard(&self) -> bool {
        self.keyword.is_none() && self.keyword_source == KeywordSource::NoWordHeard
    }
}

/// A colour as 8-bit sRGB-like levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb {
    /// Red level.
    pub r: u8,
    /// Green level.
    pub g: u8,
    /// Blue level.
    pub b: u8,
}

impl Rgb {
    /// A colour from its three levels.
    pub const fn new(r: u8, g: u8, b: u8) -> Self {
        Rgb { r, g, b }
    }

    /// As CSS writes it: `#rrggbb`.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }
}

/// The fixed colour of each emotion, shared by the LED and the kiosk page. Chosen so
/// that no two emotions are easy to confuse across a room (sRGB, before any
/// brightness or gamma):
///
/// | emotion           | colour       | R   | G   | B   |
/// |-------------------|--------------|-----|-----|-----|
/// | angry             | red          | 255 | 0   | 0   |
/// | disgust           | olive green  | 100 | 160 | 0   |
/// | fear              | purple       | 140 | 0   | 255 |
/// | happy             | yellow       | 255 | 190 | 0   |
/// | neutral           | dim white    | 150 | 150 | 150 |
/// | pleasant surprise | cyan         | 0   | 220 | 255 |
/// | sad               | blue         | 0   | 40  | 255 |
pub const fn color(emotion: Emotion) -> Rgb {
    match emotion {
        Emotion::Angry => Rgb::new(255, 0, 0),
        Emotion::Disgust => Rgb::new(100, 160, 0),
        Emotion::Fear => Rgb::new(140, 0, 255),
        Emotion::Happy => Rgb::new(255, 190, 0),
        Emotion::Neutral => Rgb::new(150, 150, 150),
        Emotion::PleasantSurprise => Rgb::new(0, 220, 255),
        Emotion::Sad => Rgb::new(0, 40, 255),
    }
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
