//! `quantization.md`: what the export measured, written into the bundle and printed.

use std::fmt::Write as _;

use emotion_core::bundle::{BundleManifest, MeasuredRate};

use super::keyword_spotter::SpotterExport;
use super::measure::Parity;

/// `quantization.md`: the variants side by side, the parity with burn, the choice, and
/// the keyword spotter (or a note that there is none).
pub fn quantization_markdown(
    manifest: &BundleManifest,
    parity: &[Parity],
    spotter: Option<&SpotterExport>,
    utterances: usize,
) -> String {
    let p = &manifest.provenance;
    let mut out = format!(
        "# Quantisation report\n\nSplit `{}` ({} test utterances), seed {}, encoders: {}.\n\
         Latency: median of 5 runs of the whole pipeline with the default head (front-end, speech \
         encoder, head) on 2 s of audio, tract, one thread, this machine.\n\n\
         | variant | model | size (MB) | latency 2 s (ms) | agreement with fp32 | accuracy | macro-F1 |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
        p.split, utterances, p.seed, p.encoders
    );
    for r in &p.variants {
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {:.1} | {:.1}% | {:.1}% | {:.1}% |",
            r.name,
            r.model,
            r.bytes as f64 / 1e6,
            r.latency_ms_2s,
            100.0 * r.agreement_with_fp32,
            100.0 * r.accuracy,
            100.0 * r.macro_f1
        );
    }
    let _ = write!(
        out,
        "\n**Default variant: {}.** {}\n\n## fp32 bundle vs the burn models\n\n\
         | model | test utterances | same prediction | max abs logit difference |\n|---|---:|---:|---:|\n",
        manifest.default_variant, manifest.default_reason
    );
    for r in parity {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2e} |",
            r.model, r.utterances, r.same_predictions, r.max_logit_difference
        );
    }
    out.push_str(&spotter_markdown(spotter));
    out.push_str("\n## Variants\n\n");
    for v in &manifest.variants {
        let _ = writeln!(out, "- **{}**: {}.", v.name, v.description);
    }
    out
}

/// The keyword spotter's section of `quantization.md`.
fn spotter_markdown(spotter: Option<&SpotterExport>) -> String {
    let Some(s) = spotter else {
        return "\n## Keyword spotter\n\nNone in this bundle: the board takes its text from the kiosk prompt only.\n"
            .into();
    };
    let p = &s.parity;
    let mut out = format!(
        "\n## Keyword spotter\n\n{} words; the board takes the spotted word when its probability is at least \
         {:.2} (chosen on the validation part). Test part, cached speech features, tract.\n\n\
         | variant | size (KB) | accuracy | top-3 | agreement with fp32 | answers (≥ {:.2}) | right when answering |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
        s.words.len(),
        s.min_confidence,
        s.min_confidence
    );
    for v in &s.variants {
        let e = &v.evaluation;
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
            v.name,
            v.bytes as f64 / 1e3,
            100.0 * e.accuracy,
            100.0 * e.top3_accuracy,
            100.0 * v.agreement_with_fp32,
            100.0 * e.accepted.coverage,
            100.0 * e.accepted.precision
        );
    }
    let _ = writeln!(
        out,
        "\nfp32 graph vs the burn spotter: same word for {} of {} utterances, max abs logit difference {:.2e}.",
        p.same_predictions, p.utterances, p.max_logit_difference
    );
    out.push_str(&open_set_markdown(s));
    out
}

/// An open-set spotter's rates per variant ("not a keyword"), or a note that it is a
/// closed-set one.
fn open_set_markdown(s: &SpotterExport) -> String {
    let Some(choice) = &s.open_set else {
        return "\nClosed set: no `<none>` output, so it always names one of its words (or abstains below the minimum confidence).\n".into();
    };
    let Some(first) = s.variants.first().and_then(|v| v.open_set.as_ref()) else {
        return String::new();
    };
    let rate =
        |r: &MeasuredRate| format!("{:.2}% ({} of {})", 100.0 * r.rate, r.errors, r.utterances);
    let held = if choice.held_out_words.is_empty() {
        "none".to_string()
    } else {
        choice.held_out_words.join(", ")
    };
    let mut out = format!(
        "\n### Not a keyword (open set)\n\nThe last output is `<none>`; the board says \"no word heard\" when \
         1 − p(<none>) is below the keyword threshold **{:.4}**, {}. Held-out vocabulary words \
         (trained as \"not a keyword\"): {held}. FAR: false accepts (a word named) on speech that \
         says no word of the spotter's; FRR: its own words' test utterances rejected.\n\n\
         - calibration: {}\n",
        choice.keyword_threshold,
        crate::train::keyword_spotter::keyword_threshold_rule(),
        describe(&first.calibration),
    );
    if let Some(r) = &first.false_accept {
        let _ = writeln!(out, "- unseen test speakers: {}", describe(r));
    }
    if let Some(r) = &first.held_out_false_accept {
        let _ = writeln!(out, "- held-out words: {}", describe(r));
    }
    let _ = writeln!(out, "- false rejects: {}", describe(&first.false_reject));
    out.push_str(
        "\n| variant | FAR calibration | FAR unseen speakers | FAR held-out words | FRR |\n|---|---:|---:|---:|---:|\n",
    );
    for v in &s.variants {
        let Some(o) = &v.open_set else { continue };
        let or_dash = |r: &Option<MeasuredRate>| r.as_ref().map_or("–".to_string(), rate);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            v.name,
            rate(&o.calibration),
            or_dash(&o.false_accept),
            or_dash(&o.held_out_false_accept),
            rate(&o.false_reject)
        );
    }
    out
}

/// `part (speakers): N utterances`.
fn describe(r: &MeasuredRate) -> String {
    format!(
        "{} ({}): {} utterances",
        r.part,
        if r.speakers.is_empty() {
            "speakers unknown".to_string()
        } else {
            r.speakers.join(", ")
        },
        r.utterances
    )
}
