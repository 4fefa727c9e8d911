//! Replays, on stable Rust, what the fuzz targets (`fuzz/`, cargo fuzz on nightly) do:
//! every input fuzzing ever crashed on (`fuzz/regressions/<target>/`) and the seeds
//! `scripts/fuzz.sh` starts from (the fixtures' WAV files and the demo bundle). A crash
//! fixed in the code under test stays fixed here.

#[path = "../../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// The files fuzzing crashed on for `target`, by name.
fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = repo_root().join("fuzz/regressions").join(target);
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            path.is_file() && name != "README.md" && !name.starts_with('.')
        })
        .map(|path| {
            let bytes = std::fs::read(&path).expect("readable");
            (path.display().to_string(), bytes)
        })
        .collect();
    found.sort();
    found
}

/// WAV files to start from: every format in `fuzz/seeds/wav`, the conformance clip and a
/// few corpus files.
fn wav_seeds() -> Vec<(String, Vec<u8>)> {
    let root = repo_root();
    let mut paths = walk(&root.join("fuzz/seeds/wav"));
    paths.sort();
    paths.push(root.join("fixtures/conformance/say-the-word-back-16k.wav"));
    let mut corpus: Vec<PathBuf> = walk(&root.join("data/synthetic-tess"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    corpus.sort();
    paths.extend(corpus.into_iter().step_by(50));
    paths
        .into_iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("readable"),
            )
        })
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Runs `check` on each input, naming the input that panicked.
fn replay(target: &str, inputs: Vec<(String, Vec<u8>)>, check: fn(&[u8])) -> usize {
    let count = inputs.len();
    for (name, bytes) in inputs {
        if std::panic::catch_unwind(|| check(&bytes)).is_err() {
            panic!("fuzz target {target} crashes on {name}");
        }
        // Every prefix too: a stream cut anywhere (a header cut short included).
        for cut in [0, 1, 4, 12, 36, 44, 45, bytes.len() / 2] {
            let prefix = &bytes[..cut.min(bytes.len())];
            if std::panic::catch_unwind(|| check(prefix)).is_err() {
                panic!("fuzz target {target} crashes on the first {cut} bytes of {name}");
            }
        }
    }
    count
}

#[test]
fn wav_inputs_never_crash_the_front_end_or_the_stream_reader() {
    for (target, check) in [
        ("wav_frontend", harness::wav_frontend as fn(&[u8])),
        ("wav_stream", harness::wav_stream),
    ] {
        let mut inputs = wav_seeds();
        inputs.extend(regressions(target));
        let replayed = replay(target, inputs, check);
        assert!(replayed > 15, "{target}: only {replayed} inputs");
    }
}

#[test]
fn bundle_inputs_never_crash_the_manifest_parser_or_the_loader() {
    let bundle = repo_root().join("data/demo-bundle");
    let manifest = std::fs::read(bundle.join("manifest.bin")).expect("the demo bundle");
    let json = std::fs::read(bundle.join("manifest.json")).expect("the demo bundle");
    let keywords = std::fs::read(bundle.join("keywords.bin")).expect("the demo bundle");

    let mut inputs = vec![
        ("manifest.bin".to_owned(), manifest.clone()),
        ("manifest.json".to_owned(), json),
    ];
    // The older layouts' manifests (each written back in its own format).
    for format in [2, 3] {
        let name = format!("fixtures/bundle/format-{format}-manifest.bin");
        let bytes =
            std::fs::read(repo_root().join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        inputs.push((name, bytes));
    }
    inputs.extend(regressions("bundle_manifest"));
    replay("bundle_manifest", inputs, harness::bundle_manifest);

    let mut inputs = vec![(
        "demo bundle".to_owned(),
        harness::loader_input(&manifest, &keywords),
    )];
    inputs.extend(regressions("bundle_loader"));
    replay("bundle_loader", inputs, harness::bundle_loader);
}

#[test]
fn bundle_graphs_never_crash_the_pipeline() {
    let bundle = repo_root().join("data/demo-bundle");
    let mut inputs = Vec::new();
    for (index, name) in harness::demo_graphs().iter().enumerate() {
        let graph = std::fs::read(bundle.join(name)).expect("the demo bundle");
        inputs.push((name.clone(), harness::graph_input(index, &graph)));
    }
    inputs.extend(regressions("onnx_graph"));
    let replayed = replay("onnx_graph", inputs, harness::onnx_graph);
    assert!(replayed >= 8, "only {replayed} graphs");
}

/// A mutation sweep over the demo bundle's graphs for machines without nightly Rust
/// (cargo fuzz): bytes flipped, ranges zeroed or repeated, the graph cut short. Ignored
/// in `cargo test` (slow: each input loads a pipeline);
/// `FUZZ_SWEEP_RUNS=500 cargo test -p tests --test fuzz_regressions -- --ignored`.
#[test]
#[ignore]
fn mutated_bundle_graphs_never_crash_the_pipeline() {
    let runs: usize = std::env::var("FUZZ_SWEEP_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let bundle = repo_root().join("data/demo-bundle");
    let graphs: Vec<Vec<u8>> = harness::demo_graphs()
        .iter()
        .map(|name| std::fs::read(bundle.join(name)).expect("the demo bundle"))
        .collect();
    // xorshift64*: the same sweep on every machine.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |below: usize| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % below.max(1) as u64) as usize
    };
    for run in 0..runs {
        let index = next(graphs.len());
        let mut graph = graphs[index].clone();
        for _ in 0..=next(4) {
            let at = next(graph.len());
            match next(5) {
                0 => graph[at] ^= 1 << next(8),
                1 => graph[at] = [0x00, 0xff, 0x7f, 0x80][next(4)],
                2 => {
                    let end = (at + next(64)).min(graph.len());
                    graph[at..end].fill(0);
                }
                3 => {
                    let end = (at + next(64)).min(graph.len());
                    let chunk = graph[at..end].to_vec();
                    graph.splice(at..at, chunk);
                }
                _ => graph.truncate(at),
            }
        }
        let input = harness::graph_input(index, &graph);
        if std::panic::catch_unwind(|| harness::onnx_graph(&input)).is_err() {
            let kept = std::env::temp_dir().join(format!("onnx_graph-crash-{run}"));
            std::fs::write(&kept, &input).expect("write");
            panic!(
                "run {run} crashed the pipeline; its input is {} (copy it to fuzz/regressions/onnx_graph/ once fixed)",
                kept.display()
            );
        }
    }
}
