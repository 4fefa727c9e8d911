//! Helpers shared by the board's CLI, fault and soak tests: the committed demo bundle, the embedded
//! corpus, and WAV streams made of corpus utterances with silence between them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The embedded corpus's sample rate (every file has it).
pub const CORPUS_RATE: u32 = 24_414;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("emotion-edge sits in the workspace")
        .to_path_buf()
}

pub fn demo_bundle() -> PathBuf {
    workspace().join("data/demo-bundle")
}

/// A copy of the demo bundle in `dir`, to damage, sign or tamper with.
pub fn demo_bundle_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("bundle");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(demo_bundle()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
        }
    }
    copy
}

/// One corpus file (OAF, "back", angry).
pub fn corpus_file() -> PathBuf {
    workspace().join(
        "data/synthetic-tess/TESS Toronto emotional speech set data/OAF_angry/OAF_back_angry.wav",
    )
}

/// `emotion-edge bench` on `bundle` at its quickest: 1 thread, one run of 0.5 s.
pub fn quick_bench_args(bundle: &Path) -> Vec<String> {
    [
        "bench",
        "--bundle",
        bundle.to_str().expect("a UTF-8 path"),
        "--threads-list",
        "1",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--seconds",
        "0.5",
    ]
    .map(String::from)
    .to_vec()
}

/// A finished command's stdout and stderr, as text.
pub fn output_text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every corpus WAV, sorted (by speaker and emotion folder).
pub fn corpus_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![workspace().join("data/synthetic-tess")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("corpus folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "wav") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `count` corpus files spread over every speaker and emotion.
pub fn spread(count: usize) -> Vec<PathBuf> {
    let files = corpus_files();
    let step = (files.len() / count.max(1)).max(1);
    files.into_iter().step_by(step).take(count).collect()
}

/// A corpus file's 16-bit samples.
pub fn pcm(path: &Path) -> Vec<i16> {
    let mut reader = hound::WavReader::open(path).expect("a corpus WAV");
    assert_eq!(reader.spec().sample_rate, CORPUS_RATE, "{}", path.display());
    reader
        .samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect()
}

/// `files` one after another, each followed by `gap_s` of silence (after `gap_s` of
/// lead-in): one utterance per file for the segmenter.
pub fn utterances(files: &[PathBuf], gap_s: f64) -> Vec<i16> {
    let gap = vec![0i16; (gap_s * f64::from(CORPUS_RATE)) as usize];
    let mut out = gap.clone();
    for file in files {
        out.extend(pcm(file));
        out.extend_from_slice(&gap);
    }
    out
}

/// A mono 16-bit WAV header at `rate`; `data_len` `None` writes the open-ended sizes a
/// streaming writer (arecord to a pipe) puts out.
pub fn wav_header(rate: u32, data_len: Option<u32>) -> Vec<u8> {
    let data = data_len.unwrap_or(u32::MAX);
    let riff = data_len.map_or(u32::MAX, |n| n + 36);
    let mut v = Vec::with_capacity(44);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&riff.to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes()); // PCM
    v.extend_from_slice(&1u16.to_le_bytes()); // mono
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * 2).to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data.to_le_bytes());
    v
}

/// Little-endian bytes of samples.
pub fn le_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// A complete WAV file of `samples` at the corpus rate.
pub fn wav_file(samples: &[i16]) -> Vec<u8> {
    let data = le_bytes(samples);
    let mut bytes = wav_header(CORPUS_RATE, Some(data.len() as u32));
    bytes.extend_from_slice(&data);
    bytes
}
