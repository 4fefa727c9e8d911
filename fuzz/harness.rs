//! What each fuzz target does with its input, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/`) and the stable regression test that replays the inputs
//! fuzzing found (`tests/tests/fuzz_regressions.rs`).
//!
//! Every function must return normally for any input: an error from the code under test
//! is fine, a panic (ours, or one of the checks below) is a crash. The checks catch
//! silent wrong answers: more samples than the bytes could hold, non-finite samples, a
//! manifest that does not survive its own round trip.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::Path;

use emotion_core::bundle::{Bundle, BundleManifest, MANIFEST_FILE, MANIFEST_JSON, sha256_hex};
use emotion_core::frontend::{
    AudioErrorKind, Frontend, FrontendConfig, SampleFormat, decode_bytes,
};
use emotion_core::pipeline::{Pipeline, PipelineOptions};
use emotion_edge::audio::wav::WavStream;

/// Frames the stream target asks for per read (10 ms at 16 kHz).
const STREAM_CHUNK: usize = 160;
/// Listed bundle files larger than this are not created (a missing-file error instead).
const MAX_SPARSE_FILE: u64 = 256 << 20;
/// The whole pipeline is loaded only when the listed files are this small in total.
const MAX_PIPELINE_BYTES: u64 = 1 << 20;

/// The shared front-end on an in-memory WAV file: decode, mono, resample, normalise.
pub fn wav_frontend(data: &[u8]) {
    let frontend = Frontend::new(FrontendConfig::default());
    if let Ok(decoded) = frontend.decode_bytes(data, "fuzz.wav") {
        // Every sample comes from at least one byte of the file.
        assert!(
            decoded.samples.len() <= data.len(),
            "more samples than bytes"
        );
        if decoded.format != SampleFormat::Float {
            assert!(
                decoded
                    .samples
                    .iter()
                    .all(|s| s.is_finite() && s.abs() <= 1.0),
                "an integer sample outside [-1, 1]"
            );
        }
    }
    if let Ok(samples) = frontend.process_bytes(data, "fuzz.wav") {
        let config = frontend.config();
        let most =
            (f64::from(config.max_seconds) * f64::from(config.target_rate)).ceil() as usize + 1;
        assert!(
            samples.len() <= most,
            "{} samples, more than max_seconds",
            samples.len()
        );
    }
}

/// The board's streaming WAV reader (stdin and files in `listen`), read to the end.
/// Read as a file, its header verdict must be the clip decoder's.
pub fn wav_stream(data: &[u8]) {
    let as_file = WavStream::new(Cursor::new(data), "fuzz.wav", Some(data.len() as u64))
        .err()
        .map(|e| e.kind());
    let as_clip = decode_bytes(data, "fuzz.wav", f32::INFINITY)
        .err()
        .map(|e| e.kind())
        // Found in the samples, not the header: the stream finds them as it reads.
        .filter(|kind| *kind != AudioErrorKind::NonFinite);
    assert_eq!(
        as_file, as_clip,
        "a file the clip decoder and the stream judge apart"
    );
    let Ok(mut stream) = WavStream::new(Cursor::new(data), "fuzz.wav", None) else {
        return;
    };
    let format = *stream.format();
    let channels = usize::from(format.channels);
    assert!(channels >= 1, "a stream with no channels was accepted");
    let mut out = Vec::new();
    let mut total = 0usize;
    // Each read either makes progress or ends the stream: bounded by the input's size.
    for _ in 0..=data.len() + 1 {
        out.clear();
        match stream.read_frames(&mut out, STREAM_CHUNK) {
            Ok(0) | Err(_) => return,
            Ok(frames) => {
                assert!(
                    frames <= STREAM_CHUNK,
                    "{frames} frames for {STREAM_CHUNK} asked"
                );
                assert_eq!(
                    out.len(),
                    frames * channels,
                    "samples do not fill whole frames"
                );
                assert!(out.iter().all(|s| s.is_finite()), "a non-finite sample");
                total += out.len();
                assert!(total <= data.len(), "more samples than bytes");
            }
        }
    }
    panic!("the stream never ended");
}

/// The bundle manifest parsers: the binary manifest and its JSON copy.
pub fn bundle_manifest(data: &[u8]) {
    let path = Path::new(MANIFEST_FILE);
    if let Ok(manifest) = BundleManifest::from_bytes(data, path) {
        round_trip(&manifest);
        let _ = manifest.variant(None);
        let _ = manifest.referenced_files();
    }
    if let Ok(manifest) = serde_json::from_slice::<BundleManifest>(data) {
        let _ = manifest.variant(None);
        let _ = manifest.referenced_files();
    }
}

/// What a manifest writes, it reads back, and writes again byte for byte.
fn round_trip(manifest: &BundleManifest) {
    let bytes = manifest.to_bytes().expect("a parsed manifest writes");
    let again = BundleManifest::from_bytes(&bytes, Path::new(MANIFEST_FILE))
        .expect("a written manifest parses");
    assert_eq!(
        again.to_bytes().expect("writes"),
        bytes,
        "the round trip changed it"
    );
}

/// The bundle loader on a directory made from the input: `[n: u16 LE][manifest.bin: n
/// bytes][keywords file: the rest]`. When the manifest parses, the harness writes its
/// JSON copy and fixes the keyword file's size and SHA-256, so that fuzzing gets past
/// the checksums to the loader's own checks; the other listed files are created as
/// zeros of their listed size (sparse, and only under plain names).
pub fn bundle_loader(data: &[u8]) {
    let (manifest_bytes, keywords) = split(data);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path();
    let write = |name: &str, bytes: &[u8]| std::fs::write(root.join(name), bytes).expect("write");
    let Ok(mut manifest) = BundleManifest::from_bytes(manifest_bytes, Path::new(MANIFEST_FILE))
    else {
        write(MANIFEST_FILE, manifest_bytes);
        assert!(Bundle::open(root).is_err(), "a bad manifest was accepted");
        return;
    };
    let keyword_file = manifest.keywords.clone();
    if let Some(entry) = manifest.files.iter_mut().find(|f| f.path == keyword_file) {
        entry.bytes = keywords.len() as u64;
        entry.sha256 = sha256_hex(keywords);
    }
    let mut listed_bytes = 0u64;
    for entry in &manifest.files {
        if !plain_name(&entry.path) || [MANIFEST_FILE, MANIFEST_JSON].contains(&entry.path.as_str())
        {
            continue;
        }
        if entry.path == keyword_file {
            write(&entry.path, keywords);
        } else if entry.bytes <= MAX_SPARSE_FILE {
            let file = std::fs::File::create(root.join(&entry.path)).expect("create");
            file.set_len(entry.bytes).expect("set_len");
        }
        listed_bytes = listed_bytes.saturating_add(entry.bytes);
    }
    let Ok(bytes) = manifest.to_bytes() else {
        return;
    };
    write(MANIFEST_FILE, &bytes);
    let Ok(json) = serde_json::to_vec(&manifest) else {
        return;
    };
    write(MANIFEST_JSON, &json);

    let Ok(bundle) = Bundle::open(root) else {
        return;
    };
    let _ = bundle.keyword_table();
    if listed_bytes <= MAX_PIPELINE_BYTES {
        let _ = bundle.verify();
        let _ = bundle.vad_model(16_000);
        let _ = Pipeline::load(root, &PipelineOptions::default());
    }
}

/// The loader input's two parts (see [`bundle_loader`]).
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((length, rest)) = data.split_first_chunk::<2>() else {
        return (data, &[]);
    };
    let length = usize::from(u16::from_le_bytes(*length)).min(rest.len());
    rest.split_at(length)
}

/// The loader input for a manifest and keyword file (how seeds are made).
pub fn loader_input(manifest: &[u8], keywords: &[u8]) -> Vec<u8> {
    let length = u16::try_from(manifest.len()).expect("a manifest under 64 KiB");
    let mut input = length.to_le_bytes().to_vec();
    input.extend_from_slice(manifest);
    input.extend_from_slice(keywords);
    input
}

/// A file name the harness may create inside the bundle directory.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}
