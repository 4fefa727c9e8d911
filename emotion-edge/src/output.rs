//! One classification as a line of text or as a JSON object, the same for `classify`
//! and `listen`.

use emotion_core::pipeline::Classification;
use emotion_core::{Emotion, KeywordSource};

use crate::display::NO_WORD_HEARD;
use serde_json::{Map, Value, json};

/// `angry 0.83 [ang .83 dis .02 …] fusion, keyword "back" (spotter 0.97), 41 ms`.
pub fn line(result: &Classification) -> String {
    let bars: Vec<String> = Emotion::ALL
        .iter()
        .zip(result.probabilities)
        .map(|(e, p)| format!("{} {:.2}", short_name(*e), p))
        .collect();
    let text = match (&result.keyword, &result.transcript) {
        (Some(word), _) => format!("keyword \"{word}\" ({})", keyword_origin(result)),
        (None, Some(t)) => format!("transcript \"{t}\""),
        (None, None) if result.keyword_source == KeywordSource::NoWordHeard => {
            NO_WORD_HEARD.to_string()
        }
        (None, None) => match &result.spotted {
            Some(s) => format!(
                "no keyword (spotter unsure: \"{}\" {:.2})",
                s.word, s.confidence
            ),
            None => "no keyword".to_string(),
        },
    };
    format!(
        "{} {:.2} [{}] {} head, {}, {:.0} ms",
        result.emotion.name(),
        result.confidence,
        bars.join(" "),
        result.model,
        text,
        result.timings.total().as_secs_f64() * 1e3
    )
}

/// The source of the keyword, with the spotter's confidence when it chose it.
fn keyword_origin(result: &Classification) -> String {
    match (&result.spotted, result.keyword_source) {
        (Some(s), KeywordSource::Spotter) => format!("spotter {:.2}", s.confidence),
        (_, source) => source.to_string(),
    }
}

/// What the keyword spotter heard: `null` when it did not run; `{"outcome": "no word
/// heard", "keyword_probability": p}` when it heard no vocabulary word (no guessed word);
/// else the word, its confidence, the keyword probability (open-set spotters) and
/// whether it was used (`"word"`) or not sure enough (`"unsure"`).
fn spotted_json(result: &Classification) -> Value {
    let Some(s) = &result.spotted else {
        return Value::Null;
    };
    match result.keyword_source {
        KeywordSource::NoWordHeard => json!({
            "outcome": NO_WORD_HEARD,
            "keyword_probability": s.keyword_probability,
        }),
        source => json!({
            "outcome": if source == KeywordSource::Spotter { "word" } else { "unsure" },
            "word": s.word,
            "confidence": s.confidence,
            "keyword_probability": s.keyword_probability,
        }),
    }
}

/// Three letters per emotion, for bars and compact lines.
pub fn short_name(emotion: Emotion) -> &'static str {
    match emotion {
        Emotion::Angry => "ang",
        Emotion::Disgust => "dis",
        Emotion::Fear => "fea",
        Emotion::Happy => "hap",
        Emotion::Neutral => "neu",
        Emotion::PleasantSurprise => "sur",
        Emotion::Sad => "sad",
    }
}

/// Every field of the result as JSON (`extra` fields first, e.g. the file name).
pub fn json(extra: Map<String, Value>, result: &Classification) -> Value {
    let mut object = extra;
    let probabilities: Map<String, Value> = Emotion::ALL
        .iter()
        .zip(result.probabilities)
        .map(|(e, p)| (e.name().to_string(), json!(p)))
        .collect();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let t = &result.timings;
    for (key, value) in [
        ("emotion", json!(result.emotion.name())),
        ("confidence", json!(result.confidence)),
        ("probabilities", Value::Object(probabilities)),
        ("logits", json!(result.logits)),
        ("model", json!(result.model.name())),
        ("keyword", json!(result.keyword)),
        ("keyword_source", json!(result.keyword_source.name())),
        ("spotted", spotted_json(result)),
        ("transcript", json!(result.transcript)),
        ("text_source", json!(result.text_source.to_string())),
        ("audio_seconds", json!(result.audio_seconds)),
        (
            "latency_ms",
            json!({
                "frontend": ms(t.frontend),
                "speech_encoder": ms(t.speech_encoder),
                "text": ms(t.text),
                "head": ms(t.head),
                "total": ms(t.total()),
            }),
        ),
    ] {
        object.insert(key.to_string(), value);
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use emotion_core::head_graph::ModelKind;
    use emotion_core::keyword_spotter::Spotted;
    use emotion_core::pipeline::{StageTimings, TextSource};

    fn no_word_heard() -> Classification {
        let mut probabilities = [0.05; Emotion::COUNT];
        probabilities[Emotion::Sad.index()] = 0.7;
        Classification {
            emotion: Emotion::Sad,
            confidence: 0.7,
            probabilities,
            logits: [0.0; Emotion::COUNT],
            model: ModelKind::Speech,
            keyword: None,
            keyword_source: KeywordSource::NoWordHeard,
            spotted: Some(Spotted {
                word: "king".into(),
                confidence: 0.9,
                probabilities: vec![0.9, 0.1],
                keyword_probability: Some(0.125),
            }),
            transcript: None,
            text_source: TextSource::None,
            audio_seconds: 1.0,
            timings: StageTimings::default(),
        }
    }

    #[test]
    fn no_word_heard_is_said_in_the_line_and_the_json_without_the_guess() {
        let r = no_word_heard();
        let text = line(&r);
        assert!(text.starts_with("sad 0.70 ["), "{text}");
        assert!(text.contains("speech head, no word heard,"), "{text}");
        assert!(!text.contains("king"), "{text}");
        let j = json(Map::new(), &r);
        assert_eq!(j["emotion"], "sad");
        assert_eq!(j["keyword"], Value::Null);
        assert_eq!(j["keyword_source"], "no_word_heard");
        assert_eq!(
            j["spotted"],
            json!({"outcome": "no word heard", "keyword_probability": 0.125})
        );
        assert!(!j.to_string().contains("king"), "{j}");
    }

    #[test]
    fn a_used_or_unsure_word_keeps_its_figures() {
        let mut r = no_word_heard();
        r.keyword_source = KeywordSource::None;
        assert!(line(&r).contains("no keyword (spotter unsure: \"king\" 0.90)"));
        assert_eq!(json(Map::new(), &r)["spotted"]["outcome"], "unsure");
        r.keyword = Some("king".into());
        r.keyword_source = KeywordSource::Spotter;
        assert!(
            line(&r).contains("keyword \"king\" (spotter 0.90)"),
            "{}",
            line(&r)
        );
        let j = json(Map::new(), &r);
        assert_eq!(j["spotted"]["outcome"], "word");
        assert_eq!(j["spotted"]["word"], "king");
    }
}
