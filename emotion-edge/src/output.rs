//! One classification as a line of text or as a JSON object, the same for `classify`
//! and `listen`.

use emotion_core::Emotion;
use emotion_core::pipeline::Classification;
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
        (Some(s), emotion_core::KeywordSource::Spotter) => format!("spotter {:.2}", s.confidence),
        (_, source) => source.to_string(),
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
        (
            "spotted",
            match &result.spotted {
                Some(s) => json!({"word": s.word, "confidence": s.confidence}),
                None => Value::Null,
            },
        ),
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
