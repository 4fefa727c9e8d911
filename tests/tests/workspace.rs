//! Promises about the workspace as a whole: the board's binary stays lean, and the
//! embedded corpus is the one its script makes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `cargo tree ARGS --prefix none --offline`, one package per line.
fn cargo_tree(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(repo_root())
        .arg("tree")
        .args(args)
        .args(["--prefix", "none", "--offline"])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every dependency with the feature sets it is built with (a build dependency can have
/// its own), as `cargo tree` resolves them for `args`.
fn resolved_features(args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let tree = cargo_tree(&[args, &["-e", "normal,build", "-f", "{p} [{f}]"]].concat());
    let mut resolved: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in tree.lines() {
        if let Some((package, features)) = line.trim_end_matches(" (*)").split_once(" [") {
            let features = features.trim_end_matches(']').to_string();
            resolved
                .entry(package.to_string())
                .or_default()
                .insert(features);
        }
    }
    resolved
}

/// The README's first command (`cargo run -p host-trainer`) and its second (`cargo test
/// --workspace`) share every dependency build: the host program's graph has the
/// features the workspace turns on (else the second command rebuilds tract and burn).
#[test]
fn host_trainer_alone_builds_its_dependencies_as_the_workspace_does() {
    let alone = resolved_features(&["-p", "host-trainer"]);
    let workspace = resolved_features(&["--workspace"]);
    let drifted: Vec<String> = alone
        .iter()
        .filter_map(|(package, features)| {
            let unified = workspace.get(package)?;
            (unified != features)
                .then(|| format!("{package}: alone {features:?}, in the workspace {unified:?}"))
        })
        .collect();
    assert!(alone.len() > 100, "{} packages", alone.len());
    assert!(
        drifted.is_empty(),
        "declare these features in host-trainer/Cargo.toml:\n{}",
        drifted.join("\n")
    );
}

#[test]
fn emotion_edge_never_links_training_or_plotting_crates() {
    let tree = cargo_tree(&["-p", "emotion-edge", "-e", "normal"]);
    assert!(
        tree.lines().any(|l| l.starts_with("emotion-core ")),
        "sanity: {tree}"
    );
    for banned in ["burn", "plotters", "ureq", "host-trainer"] {
        let found: Vec<&str> = tree
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|name| name == banned || name.starts_with(&format!("{banned}-")))
            })
            .collect();
        assert!(found.is_empty(), "emotion-edge links {found:?}");
    }
}

/// `(relative path, sha256)` of every line in a `sha256sum` listing.
fn read_sums(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let (sum, file) = line.split_once("  ").expect("sha256sum format");
            (file.to_string(), sum.to_string())
        })
        .collect()
}

fn sha256(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn wavs_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(wavs_under(&path));
        } else if path.extension().is_some_and(|e| e == "wav") {
            out.push(path);
        }
    }
    out
}

#[test]
fn embedded_corpus_matches_its_checksums_and_size_budget() {
    let corpus = repo_root().join("data/synthetic-tess");
    let sums = read_sums(&corpus.join("SHA256SUMS"));
    assert_eq!(sums.len(), wavs_under(&corpus).len(), "every WAV is listed");
    let mut total = 0;
    for (file, expected) in &sums {
        let path = corpus.join(file);
        total += std::fs::metadata(&path).unwrap().len();
        assert_eq!(&sha256(&path), expected, "{file} changed");
    }
    assert!(
        total <= 15 * 1024 * 1024,
        "corpus is {total} bytes, over 15 MiB"
    );
}

/// Needs espeak-ng and sox (`apt-get install espeak-ng sox`); run with
/// `cargo test -p tests -- --ignored`. The bytes match only with the espeak-ng and sox
/// versions recorded in data/synthetic-tess/README.md.
#[test]
#[ignore = "needs espeak-ng and sox"]
fn corpus_script_remakes_the_committed_bytes() {
    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("corpus");
    let status = Command::new("bash")
        .arg(repo_root().join("scripts/make-synthetic-tess.sh"))
        .arg("--out")
        .arg(&target)
        .status()
        .expect("bash runs");
    assert!(status.success());
    let committed = read_sums(&repo_root().join("data/synthetic-tess/SHA256SUMS"));
    let remade = read_sums(&target.join("SHA256SUMS"));
    assert_eq!(committed, remade);
}

/// docs/metrics-json.md is the schema the code writes, word for word.
#[test]
fn docs_document_the_metrics_schema_the_code_writes() {
    let page = std::fs::read_to_string(repo_root().join("docs/metrics-json.md")).unwrap();
    let schema = host_trainer::evaluate::summary::metrics_schema_markdown();
    assert!(
        page.contains(schema),
        "docs/metrics-json.md differs from evaluate::summary::metrics_schema_markdown(); paste it again"
    );
}

/// No two modules of a crate import each other (scripts/check_module_loops.py; Python
/// reads the sources, nothing is built).
#[test]
fn no_import_loop_between_modules() {
    let crates = [
        "emotion-core/src",
        "onnx-build/src",
        "host-trainer/src",
        "emotion-edge/src",
    ];
    let out = match Command::new("python3")
        .current_dir(repo_root())
        .arg("scripts/check_module_loops.py")
        .args(crates)
        .output()
    {
        Ok(out) => out,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: python3 not found ({e})");
            return;
        }
        Err(e) => panic!("python3 is needed under CI: {e}"),
    };
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
