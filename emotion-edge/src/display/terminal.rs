//! The default display: live bars of the seven probabilities and the last few
//! utterances, redrawn in place on a terminal; one line per utterance otherwise (a
//! pipe, a log file, systemd's journal).

use std::collections::VecDeque;
use std::io::Write;

use emotion_core::Emotion;

use super::{Display, DisplayError, NO_WORD_HEARD, Reading};

/// Utterances kept in the history under the bars.
const HISTORY: usize = 5;
/// Width of a full bar in characters.
const BAR_WIDTH: usize = 30;

/// Bars and history on a writer.
pub struct TerminalDisplay {
    out: Box<dyn Write + Send>,
    /// Redraw in place with ANSI escapes (a terminal) or append lines (anything else).
    live: bool,
    last: Option<Reading>,
    prompt: Option<String>,
    status: String,
    history: VecDeque<String>,
    /// Lines drawn last time, to move back up over them.
    drawn: usize,
}

impl TerminalDisplay {
    /// On standard output, live when it is a terminal.
    pub fn stdout() -> Self {
        use std::io::IsTerminal;
        let live = std::io::stdout().is_terminal();
        Self::new(Box::new(std::io::stdout()), live)
    }

    /// On any writer; `live` redraws in place.
    pub fn new(out: Box<dyn Write + Send>, live: bool) -> Self {
        Self {
            out,
            live,
            last: None,
            prompt: None,
            status: "listening".into(),
            history: VecDeque::new(),
            drawn: 0,
        }
    }

    fn write(&mut self, text: &str) -> Result<(), DisplayError> {
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(|e| DisplayError {
                display: "terminal",
                detail: e.to_string(),
            })
    }

    /// The whole live screen.
    fn screen(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let prompt = match &self.prompt {
            Some(word) => format!("  say: \"{word}\""),
            None => String::new(),
        };
        lines.push(format!("emotion-edge: {}{prompt}", self.status));
        for (i, emotion) in Emotion::ALL.iter().enumerate() {
            let p = self.last.as_ref().map_or(0.0, |r| r.probabilities[i]);
            let filled = ((p.clamp(0.0, 1.0) * BAR_WIDTH as f32).round() as usize).min(BAR_WIDTH);
            let marker = match &self.last {
                Some(r) if r.emotion == *emotion => "◀",
                _ => " ",
            };
            lines.push(format!(
                "  {:<18} {}{} {:>5.1}% {marker}",
                emotion.name(),
                "█".repeat(filled),
                "·".repeat(BAR_WIDTH - filled),
                p * 100.0
            ));
        }
        lines.push("  last utterances:".into());
        lines.extend(self.history.iter().map(|h| format!("    {h}")));
        lines
    }

    fn redraw(&mut self) -> Result<(), DisplayError> {
        let lines = self.screen();
        let mut text = String::new();
        if self.drawn > 0 {
            // Up over the previous screen, then clear to the end.
            text.push_str(&format!("\x1b[{}F\x1b[J", self.drawn));
        }
        for line in &lines {
            text.push_str(line);
            text.push('\n');
        }
        self.drawn = lines.len();
        self.write(&text)
    }
}

/// One history line: emotion, confidence, keyword and latency.
pub fn summary(reading: &Reading) -> String {
    let keyword = match &reading.keyword {
        Some(word) => format!("\"{word}\" ({})", reading.keyword_source),
        None if reading.no_word_heard() => NO_WORD_HEARD.into(),
        None => "no keyword".into(),
    };
    format!(
        "{} {:.0}%  {keyword}  {:.1} s of speech, shown {:.0} ms after it ended",
        reading.emotion.name(),
        reading.confidence * 100.0,
        reading.speech_seconds,
        reading.latency.as_secs_f64() * 1e3
    )
}

impl Display for TerminalDisplay {
    fn name(&self) -> &'static str {
        "terminal"
    }

    fn show(&mut self, reading: &Reading) -> Result<(), DisplayError> {
        let line = summary(reading);
        if !self.live {
            return self.write(&format!("{line}\n"));
        }
        self.history.push_front(line);
        self.history.truncate(HISTORY);
        self.last = Some(reading.clone());
        self.redraw()
    }

    fn prompt(&mut self, word: Option<&str>) -> Result<(), DisplayError> {
        self.prompt = word.map(str::to_string);
        match (self.live, word) {
            (true, _) => self.redraw(),
            (false, Some(word)) => self.write(&format!("say: \"{word}\"\n")),
            (false, None) => Ok(()),
        }
    }

    fn idle(&mut self, message: &str) -> Result<(), DisplayError> {
        self.status = message.to_string();
        if self.live {
            self.redraw()
        } else {
            self.write(&format!("{message}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn reading(emotion: Emotion, p: f32) -> Reading {
        let mut probabilities = [(1.0 - p) / 6.0; Emotion::COUNT];
        probabilities[emotion.index()] = p;
        Reading {
            emotion,
            confidence: p,
            probabilities,
            keyword: Some("back".into()),
            keyword_source: emotion_core::KeywordSource::Spotter,
            speech_seconds: 1.5,
            latency: Duration::from_millis(120),
        }
    }

    #[test]
    fn live_screen_draws_bars_and_redraws_in_place() {
        let out = Shared::default();
        let mut d = TerminalDisplay::new(Box::new(out.clone()), true);
        d.show(&reading(Emotion::Sad, 0.5)).unwrap();
        d.show(&reading(Emotion::Angry, 1.0)).unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let second = text.split("\x1b[").last().unwrap();
        assert!(
            second.starts_with("J"),
            "the second screen clears the first"
        );
        let angry = second.lines().find(|l| l.contains("angry")).unwrap();
        assert_eq!(angry.matches('█').count(), BAR_WIDTH, "{angry}");
        assert!(angry.contains("100.0%") && angry.ends_with('◀'), "{angry}");
        let sad = second.lines().find(|l| l.contains(" sad ")).unwrap();
        assert_eq!(sad.matches('█').count(), 0, "{sad}");
        assert_eq!(
            second.matches("shown 120 ms").count(),
            2,
            "history keeps both"
        );
    }

    #[test]
    fn no_word_heard_is_said_not_guessed() {
        let mut r = reading(Emotion::Sad, 0.6);
        r.keyword = None;
        r.keyword_source = emotion_core::KeywordSource::NoWordHeard;
        assert_eq!(
            summary(&r),
            "sad 60%  no word heard  1.5 s of speech, shown 120 ms after it ended"
        );
        r.keyword_source = emotion_core::KeywordSource::None;
        assert!(summary(&r).contains("  no keyword  "), "{}", summary(&r));
        let out = Shared::default();
        let mut d = TerminalDisplay::new(Box::new(out.clone()), true);
        r.keyword_source = emotion_core::KeywordSource::NoWordHeard;
        d.show(&r).unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("    sad 60%  no word heard  "), "{text}");
        // The speech-only emotion still shows.
        assert!(
            text.lines().any(|l| l.contains("sad") && l.ends_with('◀')),
            "{text}"
        );
    }

    #[test]
    fn a_pipe_gets_one_line_per_utterance() {
        let out = Shared::default();
        let mut d = TerminalDisplay::new(Box::new(out.clone()), false);
        d.prompt(Some("dog")).unwrap();
        d.show(&reading(Emotion::Happy, 0.75)).unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "say: \"dog\"\nhappy 75%  \"back\" (spotter)  1.5 s of speech, shown 120 ms after it ended\n"
        );
    }
}
