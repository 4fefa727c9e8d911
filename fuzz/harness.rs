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

/// The demo bundle the graph target starts from (both crates that include this file sit
/// one level under the workspace root).
fn demo_bundle() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/demo-bundle")
}

/// The demo bundle's graphs, by name: what [`onnx_graph`]'s first byte picks from.
pub fn demo_graphs() -> Vec<String> {
    let manifest = std::fs::read(demo_bundle().join(MANIFEST_FILE)).expect("the demo bundle");
    let manifest = BundleManifest::from_bytes(&manifest, Path::new(MANIFEST_FILE))
        .expect("the demo bundle's manifest");
    let mut graphs: Vec<String> = manifest
        .files
        .iter()
        .map(|f| f.path.clone())
        .filter(|p| p.ends_with(".onnx"))
        .collect();
    graphs.sort();
    graphs
}

/// The graph target's input for graph `index` of [`demo_graphs`] with these bytes.
pub fn graph_input(index: usize, graph: &[u8]) -> Vec<u8> {
    let mut input = vec![u8::try_from(index).expect("under 256 graphs")];
    input.extend_from_slice(graph);
    input
}

/// The ONNX graphs tract loads from a bundle: the input is `[graph: u8][ONNX bytes]`.
/// The demo bundle is copied with that graph replaced by the bytes and its manifest
/// entry re-hashed (so the checksums pass), loaded in the graph's variant, and run: a
/// clip through every head with the keyword spotter, and the VAD. Any error is fine; a
/// panic, or an answer that is not a probability distribution, is a crash.
pub fn onnx_graph(data: &[u8]) {
    let Some((&pick, graph)) = data.split_first() else {
        return;
    };
    let graphs = demo_graphs();
    let name = &graphs[usize::from(pick) % graphs.len()];
    let source = demo_bundle();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path();
    let mut manifest = BundleManifest::from_bytes(
        &std::fs::read(source.join(MANIFEST_FILE)).expect("the demo bundle"),
        Path::new(MANIFEST_FILE),
    )
    .expect("the demo bundle's manifest");
    for entry in &mut manifest.files {
        if entry.path == *name {
            std::fs::write(root.join(name), graph).expect("write");
            entry.bytes = graph.len() as u64;
            entry.sha256 = sha256_hex(graph);
        } else {
            std::fs::copy(source.join(&entry.path), root.join(&entry.path)).expect("copy");
        }
    }
    std::fs::write(
        root.join(MANIFEST_FILE),
        manifest.to_bytes().expect("writes"),
    )
    .expect("write");
    let json = serde_json::to_vec(&manifest).expect("JSON");
    std::fs::write(root.join(MANIFEST_JSON), json).expect("write");

    let variant = ["int8", "fp32"]
        .into_iter()
        .find(|v| name.contains(&format!(".{v}.")))
        .map(str::to_owned);
    let options = PipelineOptions {
        variant,
        threads: 1,
    };
    if let Ok(pipeline) = Pipeline::load(root, &options) {
        let clip = include_bytes!("../fixtures/conformance/say-the-word-back-16k.wav");
        let text = emotion_core::pipeline::TextInput::Auto { prompt: None };
        if let Ok(answers) = pipeline.classify_wav_each(clip, "clip.wav", text, &pipeline.models())
        {
            for answer in answers {
                let sum: f32 = answer.probabilities.iter().sum();
                assert!(
                    answer
                        .probabilities
                        .iter()
                        .all(|p| p.is_finite() && *p >= 0.0)
                        && (sum - 1.0).abs() < 1e-3,
                    "{:?} answered {:?}",
                    answer.model,
                    answer.probabilities
                );
            }
        }
    }
    let Ok(bundle) = Bundle::open(root) else {
        return;
    };
    if let Ok(Some(vad)) = bundle.vad_model(16_000)
        && let Ok(mut stream) = vad.stream()
    {
        let chunk = vec![0.1f32; stream.chunk_len()];
        for _ in 0..3 {
            match stream.push_chunk(&chunk) {
                Ok(p) => assert!((0.0..=1.0).contains(&p), "speech probability {p}"),
                Err(_) => break,
            }
        }
    }
}
