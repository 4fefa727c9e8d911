//! The default-variant rule: which precision variant a bundle loads unless told.

use emotion_core::bundle::{MAX_MACRO_F1_LOSS, VariantReport, accuracy_problems};

/// How much smaller than fp32 a variant must be to become the default (memory is what a
/// Pi Zero 2 W lacks first).
pub const MIN_SIZE_RATIO: f64 = 2.0;

/// The variant to load by default, with the reason in words. A variant qualifies when
/// it passes the accuracy bar against fp32 for every model ([`accuracy_problems`]) and
/// is at least [`MIN_SIZE_RATIO`] times smaller; the smallest one that qualifies is
/// chosen, fp32 when none does. Speed is not part of the rule: it is a property of the
/// board's CPU, not of the machine that exports (int8 beat fp32 on an AVX-512 VNNI
/// export machine and ran at half its speed on an AVX2 one), so the board decides it
/// (`emotion-edge bench --choose`, and int8 graphs compute in float where integer
/// kernels do not pay).
pub fn choose_default(rows: &[VariantReport]) -> (String, String) {
    let Some(reference) = rows.iter().find(|r| r.name == "fp32") else {
        return ("fp32".into(), "fp32: no quantisation report".into());
    };
    let mut names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    names.dedup();
    let mut best: Option<(&str, u64, String)> = None;
    let mut refused = Vec::new();
    for name in names.into_iter().filter(|n| *n != "fp32") {
        let own: Vec<&VariantReport> = rows.iter().filter(|r| r.name == name).collect();
        let problems = accuracy_problems(rows, name);
        if !problems.is_empty() {
            refused.push(format!("{name} not chosen: {}", problems.join("; ")));
            continue;
        }
        let Some(first) = own.first() else { continue };
        let smaller = reference.bytes as f64 / first.bytes.max(1) as f64;
        if smaller < MIN_SIZE_RATIO {
            refused.push(format!(
                "{name} passes on accuracy but is only {smaller:.1}x smaller (< {MIN_SIZE_RATIO:.0}x)"
            ));
            continue;
        }
        let agreement = own
            .iter()
            .map(|r| r.agreement_with_fp32)
            .fold(1.0, f64::min);
        let why = format!(
            "{name}: predictions agree with fp32 on at least {:.1}% of the test part for every model, macro-F1 within {:.0} point, {:.1}x smaller ({:.1} MB vs {:.1} MB); speed is the board's to measure (`emotion-edge bench --choose`)",
            100.0 * agreement,
            100.0 * MAX_MACRO_F1_LOSS,
            smaller,
            first.bytes as f64 / 1e6,
            reference.bytes as f64 / 1e6,
        );
        if best.as_ref().is_none_or(|b| first.bytes < b.1) {
            best = Some((name, first.bytes, why));
        }
    }
    match best {
        Some((name, _, why)) => (name.to_string(), why),
        None if refused.is_empty() => ("fp32".into(), "fp32: the only variant".into()),
        None => (
            "fp32".into(),
            format!("fp32, the reference: {}", refused.join("; ")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::heads::ModelKind;

    fn row(
        name: &str,
        model: ModelKind,
        bytes: u64,
        ms: f64,
        agree: f64,
        f1: f64,
    ) -> VariantReport {
        VariantReport {
            name: name.into(),
            model,
            bytes,
            latency_ms_2s: ms,
            agreement_with_fp32: agree,
            accuracy: f1,
            macro_f1: f1,
        }
    }

    fn fp32() -> Vec<VariantReport> {
        vec![
            row("fp32", ModelKind::Speech, 300, 100.0, 1.0, 0.80),
            row("fp32", ModelKind::Fusion, 300, 100.0, 1.0, 0.85),
        ]
    }

    #[test]
    fn int8_is_chosen_when_it_agrees_and_is_much_smaller() {
        let mut rows = fp32();
        rows.push(row("int8", ModelKind::Speech, 80, 120.0, 1.0, 0.80));
        rows.push(row("int8", ModelKind::Fusion, 80, 120.0, 0.995, 0.845));
        let (name, why) = choose_default(&rows);
        assert_eq!(name, "int8", "{why}");
        assert!(
            why.contains("3.8x smaller") && why.contains("bench --choose"),
            "{why}"
        );
    }

    #[test]
    fn int8_is_refused_when_it_disagrees_or_loses_f1() {
        let mut rows = fp32();
        rows.push(row("int8", ModelKind::Speech, 80, 50.0, 0.98, 0.80));
        rows.push(row("int8", ModelKind::Fusion, 80, 50.0, 1.0, 0.83));
        let (name, why) = choose_default(&rows);
        assert_eq!(name, "fp32");
        assert!(why.contains("speech agrees with fp32 on 98.0%"), "{why}");
        assert!(why.contains("fusion loses 2.0 points"), "{why}");
    }

    #[test]
    fn int8_that_gains_nothing_is_not_chosen_however_fast_it_ran_here() {
        let mut rows = fp32();
        rows.push(row("int8", ModelKind::Speech, 270, 125.0, 1.0, 0.80));
        rows.push(row("int8", ModelKind::Fusion, 270, 125.0, 1.0, 0.85));
        let (name, why) = choose_default(&rows);
        assert_eq!(name, "fp32");
        assert!(why.contains("only 1.1x smaller"), "{why}");
        // The export machine's speed does not decide: the board's CPU may differ.
        for r in rows.iter_mut().filter(|r| r.name == "int8") {
            r.latency_ms_2s = 60.0;
        }
        assert_eq!(choose_default(&rows).0, "fp32");
        assert_eq!(choose_default(&fp32()).0, "fp32");
    }
}
