//! Which bundle variant (fp32, int8, …) this machine runs, and why.
//!
//! The export machine records a `default_variant` chosen partly from its own timing, and
//! the int8 kernels tract has differ from CPU to CPU (on an AVX2-only x86 and on a Pi 4's
//! Cortex-A72 int8 was measured far slower than fp32). So the board decides from its own
//! CPU, never from the export machine's timing. [`choose`] takes, in this order:
//!
//! 1. `--variant`;
//! 2. the board profile's `variant`, unless it says `auto`;
//! 3. a measurement recorded on this machine by `emotion-edge bench --choose` (a
//!    [`ChoiceRecord`], `variant-choice.json` in the bundle directory by default), when it
//!    was made on this CPU (model and features) for this bundle (manifest digest);
//!    otherwise it is ignored, with a note;
//! 4. the rule for this CPU's [`CpuClass`] ([`class_preference`]).
//!
//! The automatic steps (3, 4) skip a variant whose quantisation report shows it losing
//! accuracy against fp32 (the export's own bar); an explicit `--variant` or profile may
//! still ask for it.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use emotion_core::bundle::BundleManifest;
use serde::{Deserialize, Serialize};

use crate::cpu::{CpuClass, CpuInfo};

/// The record's file name, in the bundle directory, when `--choice-file` is not given.
pub const CHOICE_FILE: &str = "variant-choice.json";
/// Version of [`ChoiceRecord`]'s layout.
pub const RECORD_FORMAT: u32 = 1;
/// The variants each CPU class prefers, best first: the rule used when no measurement
/// for this machine is recorded. A class's list is what measurements on that class
/// showed (or, until measured, the plan); change it here when they show otherwise.
pub fn class_preference(class: CpuClass) -> &'static [&'static str] {
    match class {
        // AVX2 + FMA: tract's int8 kernels ran HuBERT-base at half fp32's speed; an int8
        // graph computes its products in float here (`emotion_core::int8`), so int8 is as fast
        // as fp32 (342 vs 341 ms per 2 s) with a quarter of the weight memory.
        CpuClass::X86Avx2 => &["int8", "fp32"],
        // Native int8 dot products (VNNI): int8 263 ms vs fp32 283 ms per 2 s.
        CpuClass::X86Avx512Vnni => &["int8", "fp32"],
        // Pi 4 and Zero 2 W: no SDOT; tract's int8 path widens to 16 bits (twice the lanes
        // of f32 NEON). Not yet timed on a board; int8 also quarters the weights.
        CpuClass::Armv8Neon => &["int8", "fp32"],
        // Pi 5: SDOT kernels.
        CpuClass::Armv82Dotprod => &["int8", "fp32"],
        CpuClass::Other => &["int8", "fp32"],
    }
}

/// How the variant was picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChoiceSource {
    /// `--variant`.
    Flag,
    /// The board profile's `variant`.
    Board(String),
    /// A `bench --choose` record of this machine.
    Measured(PathBuf),
    /// The rule for the CPU class.
    CpuRule(CpuClass),
}

/// The variant to load, why, and what the user should know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The variant to load.
    pub variant: String,
    /// Where the choice came from.
    pub source: ChoiceSource,
    /// Why, in words.
    pub why: String,
    /// The bundle's default when it differs, a measurement that disagrees, a record that
    /// was ignored, and the like.
    pub notes: Vec<String>,
}

impl Choice {
    /// The one line printed to stderr at start.
    pub fn line(&self) -> String {
        let mut line = format!("variant {}: {}", self.variant, self.why);
        for note in &self.notes {
            line.push_str("; ");
            line.push_str(note);
        }
        line
    }
}

/// What `bench --choose` recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceRecord {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// `emotion-edge 0.1.0`.
    pub created_by: String,
    /// When, UTC, RFC 3339 (`2026-12-03T10:11:12Z`).
    pub date: String,
    /// The CPU it was measured on (features after `TRACT_CPU_ISA`).
    pub cpu: CpuInfo,
    /// The bundle it was measured with.
    pub bundle: BundleIdentity,
    /// tract threads.
    pub threads: usize,
    /// Length of the clip, seconds.
    pub audio_seconds: f64,
    /// Timed runs per variant.
    pub repeats: usize,
    /// Each variant's figures, in the bundle's order.
    pub variants: Vec<VariantTiming>,
    /// The fastest variant that passes the accuracy bar (what the board will load).
    pub fastest: String,
}

/// Which bundle a record belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleIdentity {
    /// The bundle directory when measured (for people).
    pub dir: String,
    /// SHA-256 of `manifest.bin`: the bundle's identity (the manifest lists every file's
    /// digest).
    pub manifest_sha256: String,
    /// The program that exported it.
    pub created_by: String,
    /// The export's default, for comparison.
    pub default_variant: String,
}

/// One variant's measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantTiming {
    /// The variant.
    pub variant: String,
    /// Median of speech encoder, text and default head (the front-end, the same for
    /// every variant, left out), ms.
    pub median_ms: f64,
    /// Median of the speech encoder alone, ms.
    pub speech_encoder_ms: f64,
    /// Peak resident memory of the process after this variant, MB.
    pub peak_rss_mb: Option<f64>,
}

/// What was found where the record should be.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordLookup {
    /// No file there.
    Missing(PathBuf),
    /// A record.
    Found(PathBuf, Box<ChoiceRecord>),
    /// A file that is not a record (why).
    Unreadable(PathBuf, String),
}

/// Where the record lives: `--choice-file`, else `variant-choice.json` in the bundle.
pub fn record_path(bundle_dir: &Path, choice_file: Option<&Path>) -> PathBuf {
    choice_file.map_or_else(|| bundle_dir.join(CHOICE_FILE), Path::to_path_buf)
}

/// Reads the record at `path`; never fails (a bad file is reported, then ignored).
pub fn read_record(path: &Path) -> RecordLookup {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return RecordLookup::Missing(path.to_path_buf());
        }
        Err(e) => return RecordLookup::Unreadable(path.to_path_buf(), e.to_string()),
    };
    match serde_json::from_slice::<ChoiceRecord>(&bytes) {
        Ok(record) if record.format > RECORD_FORMAT => RecordLookup::Unreadable(
            path.to_path_buf(),
            format!(
                "record format {} is newer than this emotion-edge reads ({RECORD_FORMAT})",
                record.format
            ),
        ),
        Ok(record) => RecordLookup::Found(path.to_path_buf(), Box::new(record)),
        Err(e) => RecordLookup::Unreadable(path.to_path_buf(), format!("not a record ({e})")),
    }
}

/// What to do when the record cannot be written.
const WRITE_HINT: &str = "(the bundle directory of an installed board is root's: run with sudo, or give --choice-file PATH)";

/// Fails, saying what to do, when a record cannot be written at `path` (checked before
/// the measuring starts).
pub fn check_writable(path: &Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let tmp = emotion_core::fs::temporary_path(path);
    std::fs::write(&tmp, b"")
        .with_context(|| format!("cannot write {} {WRITE_HINT}", tmp.display()))?;
    let _ = std::fs::remove_file(&tmp);
    Ok(())
}

/// Writes `record` to `path` (through a temporary file, so a reader never sees half).
pub fn write_record(path: &Path, record: &ChoiceRecord) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let text = serde_json::to_string_pretty(record)? + "\n";
    emotion_core::fs::write_atomically(path, text.as_bytes())
        .with_context(|| format!("cannot write {} {WRITE_HINT}", path.display()))
}

/// Why the automatic choice must not pick `name`: its quantisation report row shows it
/// losing accuracy against fp32. `None` when it passes or nothing is recorded.
pub fn accuracy_problem(manifest: &BundleManifest, name: &str) -> Option<String> {
    let problems = emotion_core::bundle::accuracy_problems(&manifest.provenance.variants, name);
    (!problems.is_empty()).then(|| problems.join(", "))
}

/// The fastest variant of a record that this bundle has and that passes the accuracy
/// bar, with its median.
pub fn fastest_qualified<'a>(
    timings: &'a [VariantTiming],
    manifest: &BundleManifest,
) -> Option<&'a VariantTiming> {
    timings
        .iter()
        .filter(|t| t.median_ms.is_finite())
        .filter(|t| manifest.variants.iter().any(|v| v.name == t.variant))
        .filter(|t| accuracy_problem(manifest, &t.variant).is_none())
        .min_by(|a, b| a.median_ms.total_cmp(&b.median_ms))
}

/// Everything the choice depends on.
#[derive(Debug, Clone, Copy)]
pub struct ChoiceInputs<'a> {
    /// `--variant`.
    pub flag: Option<&'a str>,
    /// The board profile's name and its `variant` (`None` or `auto`: not pinned).
    pub board: Option<(&'a str, Option<&'a str>)>,
    /// This machine's CPU.
    pub cpu: &'a CpuInfo,
    /// The bundle's manifest.
    pub manifest: &'a BundleManifest,
    /// SHA-256 of its `manifest.bin`.
    pub manifest_sha256: &'a str,
    /// The `bench --choose` record, if any.
    pub record: &'a RecordLookup,
}

/// Why a choice could not be made.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ChoiceError {
    /// `--variant` names a variant the bundle lacks.
    #[error(
        "--variant {asked}: the bundle has no such variant; it has {available} (pick one of those)"
    )]
    FlagUnknown {
        /// Asked for.
        asked: String,
        /// What the bundle has.
        available: String,
    },
    /// The profile pins a variant the bundle lacks.
    #[error(
        "the {board} board profile pins variant {asked}, but the bundle has only {available}: pass --variant with one of those, or use a bundle exported with {asked}"
    )]
    BoardUnknown {
        /// The board.
        board: String,
        /// Its variant.
        asked: String,
        /// What the bundle has.
        available: String,
    },
    /// A bundle without variants.
    #[error("the bundle lists no variants: export it again with host-trainer export")]
    NoVariants,
}

/// The variant to load: `--variant` > the board profile > a matching `bench --choose`
/// record > the CPU class rule; never the bundle's `default_variant`.
pub fn choose(inputs: &ChoiceInputs<'_>) -> Result<Choice, ChoiceError> {
    let manifest = inputs.manifest;
    let names: Vec<&str> = manifest.variants.iter().map(|v| v.name.as_str()).collect();
    if names.is_empty() {
        return Err(ChoiceError::NoVariants);
    }
    let has = |name: &str| names.contains(&name);
    let available = names.join(", ");
    // A usable record of this machine and bundle, or why not.
    let (record, record_note) = matching_record(inputs);

    let mut notes = Vec::new();
    let (variant, source, why) = if let Some(asked) = inputs.flag {
        if !has(asked) {
            return Err(ChoiceError::FlagUnknown {
                asked: asked.to_string(),
                available,
            });
        }
        (
            asked.to_string(),
            ChoiceSource::Flag,
            "--variant".to_string(),
        )
    } else if let Some((board, Some(asked))) = inputs
        .board
        .map(|(b, v)| (b, v.filter(|v| !v.eq_ignore_ascii_case("auto"))))
    {
        if !has(asked) {
            return Err(ChoiceError::BoardUnknown {
                board: board.to_string(),
                asked: asked.to_string(),
                available,
            });
        }
        (
            asked.to_string(),
            ChoiceSource::Board(board.to_string()),
            format!("the {board} board profile pins it"),
        )
    } else if let Some((path, record, fastest)) = record.as_ref().and_then(|(path, record)| {
        fastest_qualified(&record.variants, manifest).map(|f| (path, record, f))
    }) {
        (
            fastest.variant.clone(),
            ChoiceSource::Measured(path.clone()),
            format!(
                "fastest on this CPU as measured by `emotion-edge bench --choose` ({})",
                describe_record(path, record)
            ),
        )
    } else {
        if let Some(note) = &record_note {
            notes.push(note.clone());
        }
        let class = inputs.cpu.class;
        let preference = class_preference(class);
        let mut skipped = Vec::new();
        let pick = preference
            .iter()
            .chain(names.iter())
            .find(|name| {
                if !has(name) {
                    return false;
                }
                match accuracy_problem(manifest, name) {
                    Some(problem) => {
                        skipped.push(format!(
                            "{name} skipped: its quantisation report shows {problem}"
                        ));
                        false
                    }
                    None => true,
                }
            })
            .copied()
            .or_else(|| has("fp32").then_some("fp32"))
            .unwrap_or(names[0]);
        skipped.dedup();
        notes.extend(skipped);
        let measured = if matches!(inputs.record, RecordLookup::Missing(_)) {
            " (no measurement recorded here; `emotion-edge bench --choose` records one)"
        } else {
            ""
        };
        (
            pick.to_string(),
            ChoiceSource::CpuRule(class),
            format!("the rule for {class} CPUs ({}){measured}", inputs.cpu.model),
        )
    };

    // A measurement of this machine that disagrees with an explicit choice.
    if let Some((path, record)) = &record
        && !matches!(source, ChoiceSource::Measured(_))
        && let Some(loaded) = record.variants.iter().find(|t| t.variant == variant)
        && let Some(faster) = record
            .variants
            .iter()
            .filter(|t| t.variant != variant && has(&t.variant))
            .min_by(|a, b| a.median_ms.total_cmp(&b.median_ms))
            .filter(|f| f.median_ms < loaded.median_ms)
    {
        notes.push(format!(
            "measured here, {variant} is slower than {} ({:.1} ms vs {:.1} ms; {})",
            faster.variant,
            loaded.median_ms,
            faster.median_ms,
            describe_record(path, record)
        ));
    }
    if variant != manifest.default_variant {
        notes.push(format!(
            "the bundle's default is {} (chosen at export from accuracy and size; which runs fastest is this machine's to say)",
            manifest.default_variant
        ));
    }
    Ok(Choice {
        variant,
        source,
        why,
        notes,
    })
}

/// The record when it describes this CPU and bundle, else a note saying why it is
/// ignored (`None` when there is no file).
fn matching_record(inputs: &ChoiceInputs<'_>) -> (Option<(PathBuf, ChoiceRecord)>, Option<String>) {
    let rerun = "run `emotion-edge bench --choose` again to measure this one";
    match inputs.record {
        RecordLookup::Missing(_) => (None, None),
        RecordLookup::Unreadable(path, why) => (
            None,
            Some(format!(
                "the measurement {} is ignored: {why}; {rerun}",
                path.display()
            )),
        ),
        RecordLookup::Found(path, record) => {
            let ignored = |why: String| {
                Some(format!(
                    "the measurement {} is ignored: {why}; {rerun}",
                    path.display()
                ))
            };
            if !record.cpu.same_cpu(inputs.cpu) {
                let what = if record.cpu.model == inputs.cpu.model {
                    format!(
                        "it was made with SIMD {} and this CPU now has {} (TRACT_CPU_ISA?)",
                        list(&record.cpu.features),
                        list(&inputs.cpu.features)
                    )
                } else {
                    format!("it was made on {}", record.cpu.model)
                };
                return (None, ignored(what));
            }
            if record.bundle.manifest_sha256 != inputs.manifest_sha256 {
                return (
                    None,
                    ignored(format!(
                        "it was made for another bundle (manifest {})",
                        short(&record.bundle.manifest_sha256)
                    )),
                );
            }
            if fastest_qualified(&record.variants, inputs.manifest).is_none() {
                return (
                    None,
                    ignored("it holds no variant of this bundle that may be picked".into()),
                );
            }
            (Some((path.clone(), (**record).clone())), None)
        }
    }
}

fn list(features: &[String]) -> String {
    if features.is_empty() {
        "none".into()
    } else {
        features.join(",")
    }
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// `PATH, DATE, N thread(s): fp32 9.1 ms, int8 12.3 ms`.
fn describe_record(path: &Path, record: &ChoiceRecord) -> String {
    let timings: Vec<String> = record
        .variants
        .iter()
        .map(|t| format!("{} {:.1} ms", t.variant, t.median_ms))
        .collect();
    format!(
        "{}, {}, {} thread{}: {}",
        path.display(),
        record.date.get(..10).unwrap_or(&record.date),
        record.threads,
        if record.threads == 1 { "" } else { "s" },
        timings.join(", ")
    )
}

/// `time` as RFC 3339 UTC, to the second.
pub fn utc_timestamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use emotion_core::bundle::{BundleProvenance, Variant, VariantReport};
    use emotion_core::head_graph::ModelKind;

    /// The demo bundle's manifest with these variants and default, no quantisation report.
    fn manifest(variants: &[&str], default: &str) -> BundleManifest {
        let mut m = demo_manifest();
        let template = m.variants[0].clone();
        m.variants = variants
            .iter()
            .map(|name| Variant {
                name: name.to_string(),
                ..template.clone()
            })
            .collect();
        m.default_variant = default.into();
        m.provenance = BundleProvenance::default();
        m
    }

    fn demo_manifest() -> BundleManifest {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/demo-bundle/manifest.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn cpu(class: CpuClass) -> CpuInfo {
        let (arch, features): (&str, &[&str]) = match class {
            CpuClass::X86Avx2 => ("x86_64", &["avx", "avx2", "fma", "f16c"]),
            CpuClass::X86Avx512Vnni => ("x86_64", &["avx", "avx2", "fma", "avx512f", "avx512vnni"]),
            CpuClass::Armv8Neon => ("aarch64", &["neon"]),
            CpuClass::Armv82Dotprod => ("aarch64", &["neon", "fp16", "dotprod"]),
            CpuClass::Other => ("arm", &["neon"]),
        };
        let features: Vec<String> = features.iter().map(|s| s.to_string()).collect();
        assert_eq!(CpuClass::of(arch, &features), class);
        CpuInfo {
            arch: arch.into(),
            model: format!("test {class}"),
            class,
            features,
            tract_cpu_isa: None,
            notes: vec![],
        }
    }

    fn record(cpu: &CpuInfo, digest: &str, timings: &[(&str, f64)]) -> ChoiceRecord {
        ChoiceRecord {
            format: RECORD_FORMAT,
            created_by: "emotion-edge test".into(),
            date: "2026-12-03T10:11:12Z".into(),
            cpu: cpu.clone(),
            bundle: BundleIdentity {
                dir: "bundle".into(),
                manifest_sha256: digest.into(),
                created_by: "test".into(),
                default_variant: "fp32".into(),
            },
            threads: 3,
            audio_seconds: 2.0,
            repeats: 5,
            variants: timings
                .iter()
                .map(|(v, ms)| VariantTiming {
                    variant: v.to_string(),
                    median_ms: *ms,
                    speech_encoder_ms: ms / 2.0,
                    peak_rss_mb: None,
                })
                .collect(),
            fastest: timings[0].0.into(),
        }
    }

    fn found(record: ChoiceRecord) -> RecordLookup {
        RecordLookup::Found(PathBuf::from("/b/variant-choice.json"), Box::new(record))
    }

    fn inputs<'a>(
        flag: Option<&'a str>,
        board: Option<(&'a str, Option<&'a str>)>,
        cpu: &'a CpuInfo,
        manifest: &'a BundleManifest,
        record: &'a RecordLookup,
    ) -> ChoiceInputs<'a> {
        ChoiceInputs {
            flag,
            board,
            cpu,
            manifest,
            manifest_sha256: "abc123",
            record,
        }
    }

    fn none() -> RecordLookup {
        RecordLookup::Missing(PathBuf::from("/b/variant-choice.json"))
    }

    #[test]
    fn every_class_takes_int8_when_the_bundle_has_it_and_fp32_otherwise() {
        let both = manifest(&["fp32", "int8"], "fp32");
        let only_fp32 = manifest(&["fp32"], "fp32");
        for class in CpuClass::ALL {
            let cpu = cpu(class);
            let choice = choose(&inputs(None, None, &cpu, &both, &none())).unwrap();
            assert_eq!(choice.variant, "int8", "{class}");
            assert_eq!(choice.source, ChoiceSource::CpuRule(class));
            assert!(choice.why.contains(&class.to_string()), "{}", choice.why);
            assert!(choice.why.contains("bench --choose"), "{}", choice.why);
            assert!(
                choice.line().contains("the bundle's default is fp32"),
                "{}",
                choice.line()
            );
            let choice = choose(&inputs(None, None, &cpu, &only_fp32, &none())).unwrap();
            assert_eq!(choice.variant, "fp32", "{class}");
            assert!(
                choice.notes.is_empty(),
                "default = picked: {:?}",
                choice.notes
            );
        }
    }

    #[test]
    fn the_bundle_default_never_decides() {
        // int8 default, but a class whose table says fp32 first would get fp32: emulate
        // with a bundle whose default is a variant no rule names.
        let m = manifest(&["fp32", "int8", "fp16"], "fp16");
        let cpu = cpu(CpuClass::Armv8Neon);
        let choice = choose(&inputs(None, None, &cpu, &m, &none())).unwrap();
        assert_eq!(choice.variant, "int8");
        assert!(choice.line().contains("the bundle's default is fp16"));
    }

    #[test]
    fn precedence_flag_then_board_then_record_then_rule() {
        let m = manifest(&["fp32", "int8"], "int8");
        let cpu = cpu(CpuClass::Armv8Neon);
        let rec = found(record(&cpu, "abc123", &[("fp32", 10.0), ("int8", 30.0)]));

        let c = choose(&inputs(
            Some("int8"),
            Some(("pi4", Some("fp32"))),
            &cpu,
            &m,
            &rec,
        ))
        .unwrap();
        assert_eq!(
            (c.variant.as_str(), &c.source),
            ("int8", &ChoiceSource::Flag)
        );
        assert!(
            c.line()
                .contains("measured here, int8 is slower than fp32 (30.0 ms vs 10.0 ms"),
            "{}",
            c.line()
        );

        let c = choose(&inputs(
            None,
            Some(("zero2w", Some("int8"))),
            &cpu,
            &m,
            &rec,
        ))
        .unwrap();
        assert_eq!(c.source, ChoiceSource::Board("zero2w".into()));
        assert_eq!(c.variant, "int8");
        assert!(c.line().contains("slower than fp32"), "{}", c.line());

        // `auto` (or no variant) leaves it to the measurement.
        for board in [Some(("pi4", Some("auto"))), Some(("pi4", None)), None] {
            let c = choose(&inputs(None, board, &cpu, &m, &rec)).unwrap();
            assert_eq!(c.variant, "fp32");
            assert_eq!(
                c.source,
                ChoiceSource::Measured("/b/variant-choice.json".into())
            );
            assert!(
                c.why.contains(
                    "/b/variant-choice.json, 2026-12-03, 3 threads: fp32 10.0 ms, int8 30.0 ms"
                ),
                "{}",
                c.why
            );
            assert!(
                c.line().contains("the bundle's default is int8"),
                "{}",
                c.line()
            );
            assert!(!c.line().contains("slower"), "{}", c.line());
        }

        // Without a record, the rule.
        let c = choose(&inputs(None, None, &cpu, &m, &none())).unwrap();
        assert_eq!(c.source, ChoiceSource::CpuRule(CpuClass::Armv8Neon));
        assert_eq!(c.variant, "int8");
        assert!(
            !c.line().contains("default"),
            "int8 is the default: {}",
            c.line()
        );
    }

    #[test]
    fn a_record_of_another_cpu_or_bundle_is_ignored_with_a_note() {
        let m = manifest(&["fp32", "int8"], "fp32");
        let here = cpu(CpuClass::X86Avx512Vnni);
        let mut elsewhere = cpu(CpuClass::X86Avx512Vnni);
        elsewhere.model = "another CPU".into();
        let rec = found(record(
            &elsewhere,
            "abc123",
            &[("fp32", 10.0), ("int8", 30.0)],
        ));
        let c = choose(&inputs(None, None, &here, &m, &rec)).unwrap();
        assert_eq!(c.source, ChoiceSource::CpuRule(CpuClass::X86Avx512Vnni));
        assert_eq!(c.variant, "int8");
        assert!(
            c.line().contains("is ignored: it was made on another CPU"),
            "{}",
            c.line()
        );
        assert!(c.line().contains("bench --choose` again"), "{}", c.line());

        // Same model, features edited by TRACT_CPU_ISA.
        let mut edited = here.clone();
        edited.features.retain(|f| !f.starts_with("avx512"));
        let rec = found(record(&edited, "abc123", &[("fp32", 10.0), ("int8", 30.0)]));
        let c = choose(&inputs(None, None, &here, &m, &rec)).unwrap();
        assert!(c.line().contains("TRACT_CPU_ISA?"), "{}", c.line());

        let rec = found(record(
            &here,
            "0123456789abcdef",
            &[("fp32", 10.0), ("int8", 30.0)],
        ));
        let c = choose(&inputs(None, None, &here, &m, &rec)).unwrap();
        assert!(
            c.line().contains("another bundle (manifest 0123456789ab)"),
            "{}",
            c.line()
        );
        assert_eq!(c.variant, "int8");

        let bad = RecordLookup::Unreadable("/x.json".into(), "not a record (EOF)".into());
        let c = choose(&inputs(None, None, &here, &m, &bad)).unwrap();
        assert!(
            c.line().contains("/x.json is ignored: not a record"),
            "{}",
            c.line()
        );

        // A flag wins and the ignored record is not worth a word.
        let c = choose(&inputs(Some("fp32"), None, &here, &m, &rec)).unwrap();
        assert!(!c.line().contains("ignored"), "{}", c.line());
    }

    #[test]
    fn unknown_variants_say_what_to_do() {
        let m = manifest(&["fp32"], "fp32");
        let cpu = cpu(CpuClass::Armv8Neon);
        let e = choose(&inputs(Some("int4"), None, &cpu, &m, &none())).unwrap_err();
        assert!(e.to_string().contains("it has fp32 (pick one"), "{e}");
        let e = choose(&inputs(
            None,
            Some(("zero2w", Some("int8"))),
            &cpu,
            &m,
            &none(),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("pass --variant"), "{e}");
        let e = choose(&inputs(None, None, &cpu, &manifest(&[], "fp32"), &none())).unwrap_err();
        assert_eq!(e, ChoiceError::NoVariants);
    }

    #[test]
    fn a_variant_that_loses_accuracy_is_never_picked_automatically() {
        let mut m = manifest(&["fp32", "int8"], "fp32");
        let row = |name: &str, agreement: f64, f1: f64| VariantReport {
            name: name.into(),
            model: ModelKind::Speech,
            bytes: 1,
            latency_ms_2s: 1.0,
            agreement_with_fp32: agreement,
            accuracy: f1,
            macro_f1: f1,
        };
        m.provenance.variants = vec![row("fp32", 1.0, 0.9), row("int8", 0.8, 0.7)];
        let cpu = cpu(CpuClass::Armv82Dotprod);
        let c = choose(&inputs(None, None, &cpu, &m, &none())).unwrap();
        assert_eq!(c.variant, "fp32");
        assert!(
            c.line().contains(
                "int8 skipped: its quantisation report shows speech agrees with fp32 on 80.0% (< 99%)"
            ),
            "{}",
            c.line()
        );
        // A measurement that found int8 faster does not override the accuracy bar.
        let rec = found(record(&cpu, "abc123", &[("fp32", 30.0), ("int8", 10.0)]));
        let c = choose(&inputs(None, None, &cpu, &m, &rec)).unwrap();
        assert_eq!(
            c.source,
            ChoiceSource::Measured("/b/variant-choice.json".into())
        );
        assert_eq!(c.variant, "fp32");
        // Asked for by name, it is loaded.
        let c = choose(&inputs(Some("int8"), None, &cpu, &m, &none())).unwrap();
        assert_eq!(c.variant, "int8");
    }

    #[test]
    fn records_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = record_path(dir.path(), None);
        assert_eq!(path, dir.path().join(CHOICE_FILE));
        assert_eq!(read_record(&path), RecordLookup::Missing(path.clone()));
        let cpu = cpu(CpuClass::X86Avx2);
        let rec = record(&cpu, "abc", &[("fp32", 1.5)]);
        write_record(&path, &rec).unwrap();
        assert_eq!(
            read_record(&path),
            RecordLookup::Found(path.clone(), Box::new(rec.clone()))
        );
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(read_record(&path), RecordLookup::Unreadable(..)));
        let mut newer = rec;
        newer.format = RECORD_FORMAT + 1;
        std::fs::write(&path, serde_json::to_string(&newer).unwrap()).unwrap();
        assert!(
            matches!(read_record(&path), RecordLookup::Unreadable(_, why) if why.contains("newer"))
        );
        // Under a file, where no folder can be made.
        let error = write_record(&path.join("x.json"), &newer).unwrap_err();
        assert!(format!("{error:#}").contains("--choice-file"), "{error:#}");
        let error = check_writable(&path.join("x.json")).unwrap_err();
        assert!(format!("{error:#}").contains("--choice-file"), "{error:#}");
        check_writable(&path).unwrap();
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0, "no temporary file left behind");
    }

    #[test]
    fn timestamps_are_utc_rfc_3339() {
        let at = |secs: u64| utc_timestamp(UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_292_672), "2026-12-03T10:11:12Z");
    }
}
