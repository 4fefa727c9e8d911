//! `emotion-edge bench`: how long each stage of the pipeline takes on this machine, the
//! real-time factor, and the peak memory, for 1..N threads, each row stamped with the CPU
//! it ran on. It prints figures; it asserts nothing. `bench --choose` measures every
//! variant of the bundle and records the fastest for [`crate::variant_choice`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use emotion_core::bundle::{Bundle, BundleManifest, MANIFEST_FILE, sha256_hex};
use emotion_core::head_graph::ModelKind;
use emotion_core::pipeline::{Pipeline, PipelineOptions, TextInput};
use serde::Serialize;

use crate::cpu::{self, CpuInfo};
use crate::variant_choice::{
    BundleIdentity, ChoiceRecord, RECORD_FORMAT, VariantTiming, fastest_qualified, utc_timestamp,
};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The variant; the bundle's default when `None`.
    pub variant: Option<String>,
    /// Thread counts to measure, each with a freshly loaded pipeline.
    pub threads: Vec<usize>,
    /// A WAV file to classify; a synthetic clip of `seconds` when `None`.
    pub file: Option<PathBuf>,
    /// Length of the synthetic clip.
    pub seconds: f32,
    /// Sample rate of the synthetic clip (a microphone's, so resampling is measured).
    pub rate: u32,
    /// Untimed runs first.
    pub warmup: usize,
    /// Timed runs; the median is reported.
    pub repeats: usize,
}

/// Medians of one thread count.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// The CPU it ran on: model, SIMD features (after `TRACT_CPU_ISA`), class, and
    /// `TRACT_CPU_ISA` when set.
    pub cpu: CpuInfo,
    /// The variant measured.
    pub variant: String,
    /// tract threads.
    pub threads: usize,
    /// Seconds of audio per run.
    pub audio_seconds: f64,
    /// Loading the bundle (read, check, optimise the graphs), ms.
    pub load_ms: f64,
    /// Decode, resample, normalise, ms.
    pub frontend_ms: f64,
    /// Speech encoder and layer combination, ms.
    pub speech_encoder_ms: f64,
    /// Keyword-table lookup, ms.
    pub text_ms: f64,
    /// The keyword spotter, ms (when the bundle has one).
    pub spotter_ms: Option<f64>,
    /// Each head, ms.
    pub heads_ms: Vec<(String, f64)>,
    /// Front-end, encoder, text and the default head with text (fusion when present), ms.
    pub total_ms: f64,
    /// The same without the front-end (which is the same for every variant): speech
    /// encoder, text and default head, ms. What `bench --choose` compares.
    pub inference_ms: f64,
    /// `total / audio`: below 1 keeps up with real time.
    pub real_time_factor: f64,
    /// Peak resident memory of this process so far, MB (`VmHWM`).
    pub peak_rss_mb: Option<f64>,
    /// Work of the speech encoder on this clip, counted from its graph: GMAC (one
    /// multiply-accumulate is 2 FLOP).
    pub encoder_gmac: Option<f64>,
    /// `2 · encoder_gmac / encoder time`: the arithmetic rate the encoder reached.
    pub encoder_gflops: Option<f64>,
}

/// Runs the benchmark; `progress` hears about each thread count as it starts.
pub fn run(
    bundle: &Path,
    options: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<BenchRow>> {
    if options.repeats == 0 {
        anyhow::bail!("--repeats must be at least 1");
    }
    let (wav, name) = match &options.file {
        Some(path) => (read_clip(path)?, path.display().to_string()),
        None => (
            synthetic_wav(options.seconds, options.rate)?,
            format!(
                "{:.1} s synthetic clip at {} Hz",
                options.seconds, options.rate
            ),
        ),
    };
    let cpu = cpu::detect();
    let mut rows = Vec::new();
    for &threads in &options.threads {
        progress(&format!(
            "{}, {threads} thread(s), {name}",
            options
                .variant
                .as_deref()
                .unwrap_or("the bundle's default variant")
        ));
        let start = Instant::now();
        let pipeline = Pipeline::load(
            bundle,
            &PipelineOptions {
                variant: options.variant.clone(),
                threads,
            },
        )?;
        let load_ms = ms(start.elapsed());
        rows.push(measure(
            &pipeline, &wav, &name, threads, load_ms, options, &cpu,
        )?);
    }
    Ok(rows)
}

/// `bench --choose`: every variant of the bundle at `threads` threads (`options.variant`
/// and `options.threads` are ignored), one row each in the bundle's order. The peak
/// memory is reset before each variant where Linux allows it, so each row's is its own.
pub fn run_each_variant(
    bundle: &Path,
    options: &BenchOptions,
    threads: usize,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<BenchRow>> {
    let opened = Bundle::open(bundle)?;
    let mut rows = Vec::new();
    for variant in &opened.manifest().variants {
        reset_peak_rss();
        let each = BenchOptions {
            variant: Some(variant.name.clone()),
            threads: vec![threads],
            ..options.clone()
        };
        rows.extend(run(bundle, &each, progress)?);
    }
    Ok(rows)
}

/// The bytes of `bench --file`'s clip, read only once its header says it is a WAV no
/// longer than the front-end takes and the file is not much more than that audio: a
/// multi-gigabyte file or `/dev/zero` is refused before it is read.
fn read_clip(path: &Path) -> anyhow::Result<Vec<u8>> {
    let info = emotion_core::frontend::probe_wav(path)?;
    let limit = emotion_core::frontend::FrontendConfig::default().max_seconds;
    if info.duration_seconds > f64::from(limit) {
        anyhow::bail!(
            "{}: {:.1} s of audio, longer than the {limit} s an utterance may be",
            path.display(),
            info.duration_seconds
        );
    }
    let audio = info.frames * u64::from(info.channels) * u64::from(info.bits).div_ceil(8);
    let most = audio + emotion_core::frontend::limits::MAX_HEADER_BYTES;
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len > most {
        anyhow::bail!(
            "{}: {len} bytes, far more than its {:.1} s of audio: not a clip to measure with",
            path.display(),
            info.duration_seconds
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// SHA-256 of the bundle's `manifest.bin`: what a record of it is keyed on.
pub fn manifest_digest(bundle: &Path) -> anyhow::Result<String> {
    let path = bundle.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "cannot read {} (is {} a bundle?)",
            path.display(),
            bundle.display()
        )
    })?;
    Ok(sha256_hex(&bytes))
}

/// The record `bench --choose` writes from its rows (one per variant).
pub fn choice_record(
    bundle: &Path,
    manifest: &BundleManifest,
    rows: &[BenchRow],
    repeats: usize,
) -> anyhow::Result<ChoiceRecord> {
    let first = rows.first().context("no variant was measured")?;
    let variants: Vec<VariantTiming> = rows
        .iter()
        .map(|r| VariantTiming {
            variant: r.variant.clone(),
            median_ms: r.inference_ms,
            speech_encoder_ms: r.speech_encoder_ms,
            peak_rss_mb: r.peak_rss_mb,
        })
        .collect();
    let fastest = fastest_qualified(&variants, manifest)
        .context("no measured variant passes the accuracy bar of the bundle's quantisation report: pick one with --variant")?
        .variant
        .clone();
    Ok(ChoiceRecord {
        format: RECORD_FORMAT,
        created_by: format!("emotion-edge {}", env!("CARGO_PKG_VERSION")),
        date: utc_timestamp(SystemTime::now()),
        cpu: first.cpu.clone(),
        bundle: BundleIdentity {
            dir: bundle.display().to_string(),
            manifest_sha256: manifest_digest(bundle)?,
            created_by: manifest.created_by.clone(),
            default_variant: manifest.default_variant.clone(),
        },
        threads: first.threads,
        audio_seconds: first.audio_seconds,
        repeats,
        variants,
        fastest,
    })
}

fn measure(
    pipeline: &Pipeline,
    wav: &[u8],
    name: &str,
    threads: usize,
    load_ms: f64,
    options: &BenchOptions,
    cpu: &CpuInfo,
) -> anyhow::Result<BenchRow> {
    let models = pipeline.models();
    let word = pipeline
        .keywords()
        .words()
        .next()
        .context("the bundle's keyword table is empty")?
        .to_string();
    let default_model = pipeline.default_model(true);
    let has_spotter = pipeline.spotter_words().is_some();
    let mut samples: Vec<Sample> = Vec::new();
    for run in 0..options.warmup + options.repeats {
        let results = pipeline.classify_wav_each(wav, name, TextInput::Keyword(&word), &models)?;
        let spotter = if has_spotter {
            let r = pipeline.classify_wav(
                wav,
                name,
                TextInput::Auto { prompt: None },
                Some(ModelKind::Speech),
            )?;
            Some(r.timings.text)
        } else {
            None
        };
        if run < options.warmup {
            continue;
        }
        let first = results.first().context("the bundle has no heads")?;
        let default = results
            .iter()
            .find(|r| r.model == default_model)
            .unwrap_or(first);
        samples.push(Sample {
            audio_seconds: f64::from(first.audio_seconds),
            frontend: first.timings.frontend,
            encoder: first.timings.speech_encoder,
            text: results
                .iter()
                .map(|r| r.timings.text)
                .max()
                .unwrap_or_default(),
            spotter,
            heads: results.iter().map(|r| (r.model, r.timings.head)).collect(),
            total: default.timings.total(),
        });
    }
    let median = |f: &dyn Fn(&Sample) -> Duration| {
        let mut v: Vec<Duration> = samples.iter().map(f).collect();
        v.sort();
        ms(v[v.len() / 2])
    };
    let audio_seconds = samples[0].audio_seconds;
    let total_ms = median(&|s| s.total);
    let speech_encoder_ms = median(&|s| s.encoder);
    let input_samples =
        (audio_seconds * f64::from(pipeline.frontend().config().target_rate)) as usize;
    let encoder_gmac = pipeline
        .speech_encoder()
        .multiply_accumulates(input_samples)
        .map(|macs| macs / 1e9);
    Ok(BenchRow {
        cpu: cpu.clone(),
        variant: pipeline.variant().to_string(),
        threads,
        audio_seconds,
        load_ms,
        frontend_ms: median(&|s| s.frontend),
        speech_encoder_ms,
        text_ms: median(&|s| s.text),
        spotter_ms: has_spotter.then(|| median(&|s| s.spotter.unwrap_or_default())),
        heads_ms: models
            .iter()
            .map(|&m| {
                let head = median(&|s| {
                    s.heads
                        .iter()
                        .find(|(k, _)| *k == m)
                        .map(|(_, d)| *d)
                        .unwrap_or_default()
                });
                (m.name().to_string(), head)
            })
            .collect(),
        total_ms,
        inference_ms: median(&|s| s.total.saturating_sub(s.frontend)),
        real_time_factor: total_ms / 1e3 / audio_seconds.max(1e-9),
        peak_rss_mb: peak_rss_mb(),
        encoder_gmac,
        encoder_gflops: encoder_gmac.map(|g| 2.0 * g / (speech_encoder_ms / 1e3).max(1e-9)),
    })
}

/// One timed run.
struct Sample {
    audio_seconds: f64,
    frontend: Duration,
    encoder: Duration,
    text: Duration,
    spotter: Option<Duration>,
    heads: Vec<(ModelKind, Duration)>,
    total: Duration,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Peak resident set size of this process in MB, from `/proc/self/status` (Linux).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets the peak resident memory (`VmHWM`) to the current one, where the kernel
/// allows it (`/proc/self/clear_refs`, Linux 4.0+); silently nothing elsewhere.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A deterministic speech-like clip: a voiced tone with harmonics and a syllable-rate
/// envelope over low noise, as 16-bit mono WAV bytes.
pub fn synthetic_wav(seconds: f32, rate: u32) -> anyhow::Result<Vec<u8>> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 60.0) {
        anyhow::bail!("--seconds must be within (0, 60], got {seconds}");
    }
    let n = (seconds * rate as f32) as usize;
    let mut noise = 0x2545_f491_u32;
    let samples = (0..n).map(|i| {
        let t = i as f32 / rate as f32;
        let envelope = 0.5 - 0.5 * (2.0 * std::f32::consts::PI * 4.0 * t).cos();
        let f0 = 140.0 + 30.0 * (2.0 * std::f32::consts::PI * 0.7 * t).sin();
        let voiced: f32 = (1..=8)
            .map(|h| (2.0 * std::f32::consts::PI * f0 * h as f32 * t).sin() / h as f32)
            .sum();
        noise ^= noise << 13;
        noise ^= noise >> 17;
        noise ^= noise << 5;
        let hiss = (noise as f32 / u32::MAX as f32 - 0.5) * 0.02;
        ((0.3 * envelope * voiced + hiss).clamp(-1.0, 1.0) * 32767.0) as i16
    });
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = std::io::Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut bytes, spec)?;
    for s in samples {
        writer.write_sample(s)?;
    }
    writer.finalize()?;
    Ok(bytes.into_inner())
}

/// The rows as an aligned table, under a line naming the CPU they ran on.
pub fn table(rows: &[BenchRow]) -> String {
    let mut out = String::new();
    if let Some(first) = rows.first() {
        out.push_str(&format!("cpu {}\n", first.cpu.summary()));
    }
    let head_names: Vec<&str> = rows
        .first()
        .map(|r| r.heads_ms.iter().map(|(n, _)| n.as_str()).collect())
        .unwrap_or_default();
    out.push_str("variant threads  audio s  load ms  front-end ms  encoder ms  spotter ms");
    for name in &head_names {
        out.push_str(&format!("  {name} ms"));
    }
    out.push_str("  total ms    RTF  peak RSS MB  encoder GMAC  GFLOP/s\n");
    for r in rows {
        out.push_str(&format!(
            "{:<7} {:>7} {:>8.2} {:>8.0} {:>13.1} {:>11.1} {:>11}",
            r.variant,
            r.threads,
            r.audio_seconds,
            r.load_ms,
            r.frontend_ms,
            r.speech_encoder_ms,
            r.spotter_ms.map_or("-".into(), |s| format!("{s:.2}")),
        ));
        for (name, head) in &r.heads_ms {
            out.push_str(&format!(" {:>w$.2}", head, w = name.len() + 5));
        }
        out.push_str(&format!(
            " {:>9.1} {:>6.3} {:>12} {:>13} {:>8}\n",
            r.total_ms,
            r.real_time_factor,
            r.peak_rss_mb.map_or("-".into(), |m| format!("{m:.0}")),
            r.encoder_gmac.map_or("-".into(), |g| format!("{g:.2}")),
            r.encoder_gflops.map_or("-".into(), |g| format!("{g:.1}")),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_clip_has_the_length_and_rate_asked_for() {
        let bytes = synthetic_wav(1.5, 48_000).unwrap();
        let reader = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(reader.spec().sample_rate, 48_000);
        assert_eq!(reader.duration(), 72_000);
        let peak = reader
            .into_samples::<i16>()
            .map(|s| s.unwrap().unsigned_abs())
            .max()
            .unwrap();
        assert!(peak > 3_000, "audible: {peak}");
        assert!(synthetic_wav(0.0, 16_000).is_err());
        assert!(synthetic_wav(f32::NAN, 16_000).is_err());
    }

    #[test]
    fn the_table_and_the_json_name_the_cpu() {
        let cpu = CpuInfo::from_cpuinfo(
            "model name : Test CPU\nflags : avx avx2 fma f16c\n",
            "x86_64",
            Some("-fma"),
        );
        let row = BenchRow {
            cpu,
            variant: "int8".into(),
            threads: 1,
            audio_seconds: 2.0,
            load_ms: 1.0,
            frontend_ms: 1.0,
            speech_encoder_ms: 1.0,
            text_ms: 0.1,
            spotter_ms: None,
            heads_ms: vec![("speech".into(), 0.5)],
            total_ms: 2.6,
            inference_ms: 1.6,
            real_time_factor: 0.0013,
            peak_rss_mb: Some(50.0),
            encoder_gmac: None,
            encoder_gflops: None,
        };
        let table = table(std::slice::from_ref(&row));
        let first = table.lines().next().unwrap();
        assert_eq!(
            first,
            "cpu Test CPU (x86_64); SIMD avx,avx2,f16c; class other; TRACT_CPU_ISA=-fma"
        );
        let json: serde_json::Value = serde_json::to_value(&row).unwrap();
        assert_eq!(json["cpu"]["model"], "Test CPU");
        assert_eq!(
            json["cpu"]["features"],
            serde_json::json!(["avx", "avx2", "f16c"])
        );
        assert_eq!(json["cpu"]["tract_cpu_isa"], "-fma");
        assert_eq!(json["cpu"]["class"], "other");
    }

    #[test]
    fn peak_rss_is_read_on_linux() {
        let mb = peak_rss_mb().expect("/proc/self/status has VmHWM");
        assert!(mb > 1.0 && mb < 100_000.0, "{mb}");
    }
}
