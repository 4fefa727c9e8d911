//! The open-set keyword spotter's figures, measured again through the board's pipeline
//! on a demo's bundle, written as Markdown (`scripts/keyword-open-set.sh` runs the demo
//! and this, and writes `docs/results/keyword-open-set-2026-12-03.md`).
//!
//! ```sh
//! cargo run -p host-trainer --example keyword_open_set -- OUT RESULT.md [COMMAND]
//! ```
//!
//! `OUT` is a `host-trainer demo --out OUT` folder (manifest, splits, bundle); COMMAND is
//! the command line that made it, written at the top. Every figure is computed here from
//! the bundle (fp32 variant, one thread): each window of the recorded calibration and
//! unseen parts, and each test utterance of the corpus, classified with no prompt; a
//! false accept is an answer other than "no word heard", a false reject a word of the
//! spotter's answered "no word heard". They are compared with what the export recorded
//! in the manifest; a disagreement is an error (exit 1).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use emotion_core::bundle::MeasuredRate;
use emotion_core::pipeline::KeywordSource;
use emotion_core::real_speech::RealSpeech;
use emotion_core::{Pipeline, PipelineOptions, TextInput};
use host_trainer::data::manifest::CorpusManifest;
use host_trainer::data::negatives::{NegativePart, RealNegatives};
use host_trainer::data::splits::SplitSet;
use host_trainer::train::keyword_spotter::vocabulary;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The upper end of the one-sided 95 % Clopper-Pearson interval of `errors` of `n`.
fn upper_95(errors: usize, n: usize) -> f64 {
    if n == 0 || errors >= n {
        return 1.0;
    }
    // The p at which P(X <= errors) = 0.05, by bisection on the binomial CDF.
    let cdf = |p: f64| -> f64 {
        let mut term = (1.0 - p).powi(n as i32);
        let mut sum = term;
        for k in 0..errors {
            term *= (n - k) as f64 / (k + 1) as f64 * p / (1.0 - p);
            sum += term;
        }
        sum
    };
    let (mut lo, mut hi) = (errors as f64 / n as f64, 1.0);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if cdf(mid) > 0.05 { lo = mid } else { hi = mid }
    }
    hi
}

fn rate(errors: usize, n: usize) -> String {
    format!(
        "{:.2} % ({errors} of {n}; 95 % upper bound {:.1} %)",
        100.0 * errors as f64 / n.max(1) as f64,
        100.0 * upper_95(errors, n)
    )
}

/// Windows of `part` the pipeline does not answer "no word heard" for, and each speaker
/// group's false accepts and windows.
fn false_accepts(pipeline: &Pipeline, part: &NegativePart) -> Result<Accepted> {
    let rate = pipeline.frontend().config().target_rate;
    let mut accepted = Accepted::default();
    for clip in &part.clips {
        let samples = clip.samples(rate)?;
        for (window, samples) in clip.windows.iter().zip(samples) {
            let result = pipeline.classify(&samples, TextInput::Auto { prompt: None }, None)?;
            let group = accepted.per_group.entry(clip.group.clone()).or_default();
            group.1 += 1;
            if result.keyword_source != KeywordSource::NoWordHeard {
                group.0 += 1;
                accepted.windows.push(format!(
                    "`{}` ({:.4})",
                    window.id,
                    result
                        .spotted
                        .and_then(|s| s.keyword_probability)
                        .unwrap_or(f32::NAN)
                ));
            }
        }
    }
    Ok(accepted)
}

/// What [`false_accepts`] found.
#[derive(Default)]
struct Accepted {
    /// `id (score)` of each window accepted.
    windows: Vec<String>,
    /// Speaker group → (false accepts, windows).
    per_group: BTreeMap<String, (usize, usize)>,
}

impl Accepted {
    fn len(&self) -> usize {
        self.windows.len()
    }

    /// `id (score), …`, or `none`.
    fn list(&self) -> String {
        if self.windows.is_empty() {
            "none".to_string()
        } else {
            self.windows.join(", ")
        }
    }
}

fn check(what: &str, recorded: &MeasuredRate, errors: usize, n: usize) -> Result<()> {
    if recorded.errors != errors || recorded.utterances != n {
        bail!(
            "{what}: the bundle records {} of {}, the pipeline gives {errors} of {n}",
            recorded.errors,
            recorded.utterances
        );
    }
    Ok(())
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(out), Some(result)) = (args.first(), args.get(1)) else {
        bail!("usage: keyword_open_set OUT RESULT.md [COMMAND]");
    };
    let command = args.get(2).cloned().unwrap_or_default();
    let out = PathBuf::from(out);
    let bundle = out.join("bundle");
    let manifest = CorpusManifest::read_csv(&out.join("manifest.csv"))?;
    let splits = SplitSet::read_json(&out.join("splits.json"))?;
    let pipeline = Pipeline::load(
        &bundle,
        &PipelineOptions {
            variant: Some("fp32".into()),
            threads: 1,
        },
    )?;
    let bundle_manifest = pipeline.bundle().manifest().clone();
    let spec = bundle_manifest
        .keyword_spotter
        .clone()
        .context("the bundle has no keyword spotter")?;
    let open = spec
        .open_set
        .clone()
        .context("the bundle's keyword spotter is a closed-set one")?;
    let split = splits.get(&bundle_manifest.provenance.split)?;

    // The corpus's test utterances: the spotter's words (false rejects, and the word
    // named when accepted) and the held-out words (false accepts).
    let (mut rejected, mut keyword_n, mut right, mut shown) = (0, 0, 0, 0);
    let (mut held_accepted, mut held_n) = (0, 0);
    for id in &split.test {
        let entry = manifest.get(id).context("test id not in the manifest")?;
        let bytes = std::fs::read(&entry.path)?;
        let result = pipeline.classify_wav(
            &bytes,
            &entry.path.display().to_string(),
            TextInput::Auto { prompt: None },
            None,
        )?;
        let heard = result.keyword_source != KeywordSource::NoWordHeard;
        if spec.words.contains(&entry.word) {
            keyword_n += 1;
            if !heard {
                rejected += 1;
            } else if result
                .spotted
                .as_ref()
                .is_some_and(|s| s.word == entry.word)
            {
                right += 1;
            }
            if result.keyword_source == KeywordSource::Spotter {
                shown += 1;
            }
        } else {
            held_n += 1;
            held_accepted += usize::from(heard);
        }
    }
    check("false rejects", &open.false_reject, rejected, keyword_n)?;
    if let Some(recorded) = &open.held_out_false_accept {
        check("held-out words", recorded, held_accepted, held_n)?;
    }

    let set = RealSpeech::open(&RealSpeech::default_root())?;
    let negatives = RealNegatives::split(&set, &vocabulary(&manifest))?;
    let calibration = false_accepts(&pipeline, &negatives.calibration)?;
    check(
        "calibration",
        &open.calibration,
        calibration.len(),
        negatives.calibration.len(),
    )?;
    let unseen = false_accepts(&pipeline, &negatives.test)?;
    let recorded_unseen = open
        .false_accept
        .as_ref()
        .context("the bundle records no false-accept rate on recorded speech")?;
    check(
        "unseen speakers",
        recorded_unseen,
        unseen.len(),
        negatives.test.len(),
    )?;

    let mut md = String::new();
    let _ = writeln!(
        md,
        "# The open-set keyword spotter on the demo corpus (2026-12-03)\n\n```sh\n{command}\n```\n\n\
         Written by `host-trainer/examples/keyword_open_set.rs`: every figure below is measured \
         again here through the board's pipeline (`emotion_core::Pipeline`, bundle `{}`, fp32, one \
         thread, no prompt), and agrees with what `export` recorded in the bundle's manifest \
         (`keyword_spotter.open_set`).\n",
        bundle.display()
    );
    let _ = writeln!(
        md,
        "## Setting\n\n\
         - corpus: the embedded synthetic corpus ({} utterances, 2 espeak-ng voices, 12 words), \
         split `{}` (seed {}); speech features from the demo's **tiny random-weight** encoders;\n\
         - spotter: {} words ({}), plus `<none>`; held out as \"not a keyword\": {};\n\
         - recorded speech without a vocabulary word (`{}`), windows of at most 3 s, split by \
         speaker group:\n  - training: {}\n  - calibration (threshold): {}\n  - unseen test: {}\n  \
         - left out: {} clip(s) saying a vocabulary word, {} without a transcript;\n\
         - keyword threshold (1 − p(<none>)): **{:.4}**, chosen for a false-accept rate ≤ {:.0} % \
         on the calibration part; min confidence (word among words) {:.2}.\n",
        manifest.entries().len(),
        split.name,
        bundle_manifest.provenance.seed,
        spec.words.len(),
        spec.words.join(", "),
        open.held_out_words.join(", "),
        negatives.root.display(),
        negatives.train.describe(),
        negatives.calibration.describe(),
        negatives.test.describe(),
        negatives.left_out.vocabulary_word,
        negatives.left_out.no_transcript + negatives.left_out.too_long,
        open.keyword_threshold,
        100.0 * open.target_false_accept_rate,
        spec.min_confidence,
    );
    let _ = writeln!(
        md,
        "## Figures\n\n| part | speakers | utterances | rate |\n|---|---|---:|---|\n\
         | FAR, unseen speakers | {} | {} | {} |\n\
         | FAR, calibration | {} | {} | {} |\n\
         | FAR, held-out words (corpus test part) | {} | {} | {} |\n\
         | FRR, the spotter's words (corpus test part) | {} | {} | {} |\n",
        negatives.test.groups.join(", "),
        negatives.test.len(),
        rate(unseen.len(), negatives.test.len()),
        negatives.calibration.groups.join(", "),
        negatives.calibration.len(),
        rate(calibration.len(), negatives.calibration.len()),
        open.held_out_false_accept
            .as_ref()
            .map_or(String::new(), |r| r.speakers.join(", ")),
        held_n,
        rate(held_accepted, held_n),
        open.false_reject.speakers.join(", "),
        keyword_n,
        rate(rejected, keyword_n),
    );
    let _ = writeln!(
        md,
        "Of the {keyword_n} test utterances of the spotter's words, {} were heard as a word, {right} \
         of them as the right one, and {shown} were shown (the word's probability at least the \
         min confidence).\n",
        keyword_n - rejected
    );
    let _ = writeln!(
        md,
        "FAR of each speaker group (recorded speech the spotter never trained on):\n\n\
         | group | part | windows | FAR |\n|---|---|---:|---|"
    );
    for (part, accepted) in [("unseen", &unseen), ("calibration", &calibration)] {
        for (group, &(errors, n)) in &accepted.per_group {
            let _ = writeln!(md, "| {group} | {part} | {n} | {} |", rate(errors, n));
        }
    }
    let _ = writeln!(
        md,
        "\nFalse accepts among the unseen windows: {}.\n\nFalse accepts among the calibration \
         windows: {}.\n",
        unseen.list(),
        calibration.list(),
    );
    let _ = writeln!(
        md,
        "## What it says\n\n\
         - **FAR**: on the calibration voice ≤ 1 % by construction ({} of its {} windows pass; \
         the spotter never trained on it); on the speakers neither the spotter nor its threshold \
         met, {} of {} windows pass (95 % upper bound {:.1} %). The calibration part is the \
         biggest English speaker group (`{}`): choosing a threshold at 1 % needs hundreds of \
         windows. No speaker is in two parts.\n\
         - **FRR {:.0} %**: the price of that FAR with the demo's tiny random-weight encoders. \
         Their features barely carry the word (the spotter names the right one of {} words \
         for {:.0} % of its test utterances), nor separate the synthetic corpus voice from the \
         8 kHz calibration voice well: to refuse 99 % of that voice the threshold sits at \
         {:.4}, above the scores of {:.0} % of the corpus's own test words. The held-out words' test part has \
         {} utterance(s): their FAR says little. A speech encoder with real weights should \
         separate them far better (not measured here: no real speech encoder on this machine); \
         nothing else (outputs, negatives, calibration, measurement, board) changes with it.\n\
         - **The board**: below the threshold it shows \"no word heard\" and the speech-only \
         emotion: so for {:.0} % of the demo corpus's test words (above it, the word is shown \
         only when its probability among words reaches the min confidence, {:.2} here).\n",
        calibration.len(),
        negatives.calibration.len(),
        unseen.len(),
        negatives.test.len(),
        100.0 * upper_95(unseen.len(), negatives.test.len()),
        negatives.calibration.groups.join(", "),
        100.0 * rejected as f64 / keyword_n.max(1) as f64,
        spec.words.len(),
        100.0 * spec.test_accuracy.unwrap_or(0.0),
        open.keyword_threshold,
        100.0 * rejected as f64 / keyword_n.max(1) as f64,
        held_n,
        100.0 * rejected as f64 / keyword_n.max(1) as f64,
        spec.min_confidence,
    );
    let report = std::fs::read_to_string(bundle.join("quantization.md"))?;
    if let Some(at) = report.find("### Not a keyword (open set)") {
        let section = &report[at + 4..];
        let end = section.find("\n## ").unwrap_or(section.len());
        let _ = writeln!(
            md,
            "## The export's report (quantization.md)\n\n{}",
            section[..end].trim_end()
        );
    }
    std::fs::write(Path::new(result), md).with_context(|| format!("cannot write {result}"))?;
    println!(
        "{result}: FAR unseen {}, FRR {}",
        rate(unseen.len(), negatives.test.len()),
        rate(rejected, keyword_n)
    );
    Ok(())
}
