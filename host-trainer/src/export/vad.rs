//! The voice-activity detector a bundle carries (bundle format 4): the Silero VAD graph,
//! checked to load and run at 16 kHz before it is written, copied in as
//! [`SILERO_FILE`] and named in the manifest ([`VadSpec`]). `export` adds it (`--vad`,
//! `--no-vad`); [`add_vad`] puts it into a bundle exported without it, without retraining
//! or re-exporting anything (`host-trainer bundle add-vad`).
//!
//! A graph whose SHA-256 is not [`SILERO_SHA256`] (the one this project pins) goes in
//! when it loads and runs, and the output says so: a user may bring a newer Silero.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use emotion_core::bundle::{
    Bundle, BundleManifest, BundleWriter, FORMAT_VERSION, MANIFEST_FILE, MANIFEST_JSON, VadSpec,
    sha256_hex,
};
use emotion_core::vad::{SILERO_FILE, SILERO_KIND, SILERO_SHA256, VadModel};

/// The committed Silero graph, relative to the repository's root.
pub const COMMITTED_VAD: &str = "data/vad/silero_vad_op18_ifless.onnx";
/// The rate the export checks the graph at and records: the front-end's.
pub const VAD_RATE_HZ: u32 = 16_000;

/// The committed graph ([`COMMITTED_VAD`]) when it can be found: in the source tree
/// this program was built from (as the embedded corpus is found), else under the
/// current directory; `None` for a binary moved away from both.
pub fn default_vad_file() -> Option<PathBuf> {
    let source_tree = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(COMMITTED_VAD);
    [source_tree, PathBuf::from(COMMITTED_VAD)]
        .into_iter()
        .find(|p| p.is_file())
        .map(|p| p.canonicalize().unwrap_or(p))
}

/// Where a VAD graph came from and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VadSource {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its lowercase hex SHA-256.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
}

impl VadSource {
    /// Whether it is the graph this project pins ([`SILERO_SHA256`]).
    pub fn is_pinned(&self) -> bool {
        self.sha256 == SILERO_SHA256
    }

    /// One line for the output: where it came from, and whether it is the pinned graph.
    pub fn describe(&self) -> String {
        let pin = if self.is_pinned() {
            "the graph this project pins (silero-vad 6.2.3's silero_vad_op18_ifless.onnx)"
                .to_string()
        } else {
            format!(
                "NOT the graph this project pins ({}…): it loads and runs at {} Hz, so it goes in; \
                 if it is a newer Silero, check the board's segments on your audio",
                &SILERO_SHA256[..12],
                VAD_RATE_HZ
            )
        };
        format!(
            "voice-activity detector {SILERO_FILE} from {} ({SILERO_KIND}, {:.1} MB, SHA-256 {}…, {pin})",
            self.path.display(),
            self.bytes as f64 / 1e6,
            &self.sha256[..12]
        )
    }
}

/// A VAD graph read and checked: it loads as a Silero VAD at [`VAD_RATE_HZ`] and runs a
/// chunk of silence.
#[derive(Debug, Clone)]
pub struct VadGraph {
    /// Where it came from.
    pub source: VadSource,
    bytes: Vec<u8>,
}

impl VadGraph {
    /// Reads `path` and checks that the board will be able to run it.
    pub fn read_checked(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the VAD graph {}", path.display()))?;
        let name = path.display().to_string();
        let not_silero = || {
            format!(
                "{name} cannot be the bundle's voice-activity detector: use silero-vad's \
                 silero_vad_op18_ifless.onnx (the repository has it at {COMMITTED_VAD})"
            )
        };
        let model = VadModel::from_bytes(&bytes, &name, VAD_RATE_HZ).with_context(not_silero)?;
        let silence = vec![0.0; model.chunk_len()];
        model
            .stream()
            .and_then(|mut s| s.push_chunk(&silence))
            .with_context(not_silero)?;
        Ok(Self {
            source: VadSource {
                path: path.to_path_buf(),
                sha256: sha256_hex(&bytes),
                bytes: bytes.len() as u64,
            },
            bytes,
        })
    }

    /// What the manifest records for it.
    pub fn spec(&self) -> VadSpec {
        VadSpec {
            kind: SILERO_KIND.to_string(),
            file: SILERO_FILE.to_string(),
            rate_hz: VAD_RATE_HZ,
        }
    }

    /// Adds it to a bundle being written, as [`SILERO_FILE`]; returns the manifest's entry.
    pub fn add_to(&self, writer: &mut BundleWriter) -> anyhow::Result<VadSpec> {
        writer.add(SILERO_FILE, &self.bytes)?;
        Ok(self.spec())
    }
}

/// What [`add_vad`] did.
#[derive(Debug, Clone)]
pub struct AddVadOutcome {
    /// The manifest as written (or as found, when nothing changed).
    pub manifest: BundleManifest,
    /// The bundle's format before.
    pub previous_format: u32,
    /// False when the bundle already had this graph in the current format.
    pub changed: bool,
    /// Files in the directory the manifest did not list, left out of the rewritten
    /// bundle (a `variant-choice.json` is of the old manifest anyway).
    pub left_out: Vec<String>,
}

/// Puts `vad` into the bundle in `dir`, replacing the VAD it has, if any: every listed
/// file is read back through the bundle's checksums and written unchanged, the VAD
/// added as [`SILERO_FILE`], and the manifest (both copies) rewritten in the current
/// format with [`BundleManifest::vad`] and `files` updated. Nothing is retrained: the
/// models, metrics and report stay as exported. The new bundle replaces the old one
/// whole, only once it opens and verifies ([`BundleWriter::finish`]); on any error the
/// old bundle is left as it was.
pub fn add_vad(dir: &Path, vad: &VadGraph) -> anyhow::Result<AddVadOutcome> {
    let bundle = Bundle::open(dir)?;
    let old = bundle.manifest().clone();
    let spec = vad.spec();
    let unchanged = old.format == FORMAT_VERSION
        && old.vad.as_ref() == Some(&spec)
        && old
            .file(&spec.file)
            .is_some_and(|f| f.sha256 == vad.source.sha256);
    if unchanged {
        bundle.read(&spec.file)?;
        return Ok(AddVadOutcome {
            manifest: old.clone(),
            previous_format: old.format,
            changed: false,
            left_out: Vec::new(),
        });
    }
    let replaced = old.vad.as_ref().map(|v| v.file.as_str());
    let mut listed: Vec<&str> = old.files.iter().map(|f| f.path.as_str()).collect();
    listed.extend([MANIFEST_FILE, MANIFEST_JSON]);
    let mut left_out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let name = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !listed.contains(&name.as_str()) {
            left_out.push(name);
        }
    }
    left_out.sort();

    // The writer stages beside the target, so it needs the directory's own name.
    let target = if dir.file_name().is_some() {
        dir.to_path_buf()
    } else {
        dir.canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.display()))?
    };
    let mut writer = BundleWriter::new(&target)?;
    for entry in &old.files {
        if Some(entry.path.as_str()) == replaced {
            continue;
        }
        if entry.path == SILERO_FILE {
            bail!(
                "{} already lists a file called {SILERO_FILE} that is not its VAD: rename it or export the bundle again",
                dir.display()
            );
        }
        let bytes = bundle.read(&entry.path)?;
        writer.add(&entry.path, &bytes)?;
    }
    let mut manifest = old.clone();
    manifest.format = FORMAT_VERSION;
    manifest.vad = Some(vad.add_to(&mut writer)?);
    drop(bundle);
    let written = writer.finish(&manifest)?;
    Ok(AddVadOutcome {
        manifest: written.manifest().clone(),
        previous_format: old.format,
        changed: true,
        left_out,
    })
}

#[cfg(test)]
mod tests {
    use emotion_core::Emotion;
    use emotion_core::FrontendConfig;
    use emotion_core::bundle::{
        BundleError, BundleProvenance, EncoderSpec, HeadFile, KeywordEntry, KeywordTable, Variant,
    };
    use emotion_core::features::LayerCombination;
    use emotion_core::head_graph::ModelKind;
    use prost::Message as _;

    use super::*;

    fn committed() -> PathBuf {
        default_vad_file().expect("the committed Silero graph")
    }

    /// A placeholder bundle of `format` (enough to open, not to run), written with the
    /// same writer the export uses.
    fn placeholder_bundle(dir: &Path, format: u32) -> Bundle {
        let spec = EncoderSpec {
            layers: vec![1],
            combination: LayerCombination::Mean,
            dim: 2,
        };
        let manifest = BundleManifest {
            format,
            created_by: "test".into(),
            labels: Emotion::ALL.iter().map(|e| e.name().to_string()).collect(),
            frontend: FrontendConfig::default(),
            transcript_template: "{word}".into(),
            speech: spec.clone(),
            text: spec,
            tokenizer: "tokenizer.json".into(),
            keywords: "keywords.bin".into(),
            text_encoder: None,
            keyword_spotter: None,
            vad: None,
            variants: vec![Variant {
                name: "fp32".into(),
                description: "float".into(),
                speech_encoder: "speech.onnx".into(),
                heads: vec![HeadFile {
                    model: ModelKind::Speech,
                    file: "head.onnx".into(),
                }],
                keyword_spotter: None,
                text_encoder: None,
            }],
            default_variant: "fp32".into(),
            default_reason: "only one".into(),
            files: vec![],
            provenance: BundleProvenance::default(),
        };
        let mut w = BundleWriter::new(dir).unwrap();
        w.add("tokenizer.json", b"{}").unwrap();
        w.add_keywords(
            "keywords.bin",
            &KeywordTable {
                template: "{word}".into(),
                layers: vec![1],
                combination: LayerCombination::Mean,
                dim: 2,
                entries: vec![KeywordEntry {
                    word: "back".into(),
                    transcript: "back".into(),
                    shape: vec![1, 2],
                    data: vec![0.5, -0.5],
                }],
            },
        )
        .unwrap();
        w.add("speech.onnx", b"speech graph").unwrap();
        w.add("head.onnx", b"head graph").unwrap();
        w.add("quantization.md", b"# report").unwrap();
        w.finish(&manifest).unwrap()
    }

    /// The committed graph with its `doc_string` changed: the same network under another
    /// SHA-256, as a newer Silero would be.
    fn another_silero() -> Vec<u8> {
        let bytes = std::fs::read(committed()).unwrap();
        let mut model = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).unwrap();
        model.doc_string = "a Silero from elsewhere".into();
        model.encode_to_vec()
    }

    #[test]
    fn the_committed_graph_is_found_checked_and_pinned() {
        let graph = VadGraph::read_checked(&committed()).unwrap();
        assert!(graph.source.is_pinned());
        assert!(
            graph
                .source
                .describe()
                .contains("the graph this project pins")
        );
        assert_eq!(graph.spec().kind, "silero-vad");
        assert_eq!(graph.spec().file, "vad.silero.onnx");
        assert_eq!(graph.spec().rate_hz, 16_000);
    }

    #[test]
    fn another_silero_goes_in_with_a_note_and_other_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let newer = tmp.path().join("newer.onnx");
        std::fs::write(&newer, another_silero()).unwrap();
        let graph = VadGraph::read_checked(&newer).unwrap();
        assert!(!graph.source.is_pinned());
        let line = graph.source.describe();
        assert!(line.contains("NOT the graph this project pins"), "{line}");
        assert!(line.contains("newer.onnx"), "{line}");

        let head =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/demo-bundle/head_speech.fp32.onnx");
        let half = tmp.path().join("half.onnx");
        let bytes = std::fs::read(committed()).unwrap();
        std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
        for bad in [head, half, tmp.path().join("missing.onnx")] {
            let err = format!("{:#}", VadGraph::read_checked(&bad).unwrap_err());
            assert!(err.contains(&bad.display().to_string()), "{err}");
            if bad.exists() {
                assert!(err.contains(COMMITTED_VAD), "{err}");
            }
        }
    }

    #[test]
    fn add_vad_upgrades_a_format_3_bundle_without_touching_its_models() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bundle");
        let before = placeholder_bundle(&dir, 3).manifest().clone();
        std::fs::write(dir.join("variant-choice.json"), b"{}").unwrap();

        let graph = VadGraph::read_checked(&committed()).unwrap();
        let outcome = add_vad(&dir, &graph).unwrap();
        assert!(outcome.changed);
        assert_eq!(outcome.previous_format, 3);
        assert_eq!(outcome.left_out, vec!["variant-choice.json".to_string()]);
        let bundle = Bundle::open(&dir).unwrap();
        bundle.verify().unwrap();
        let after = bundle.manifest();
        assert_eq!(after.format, FORMAT_VERSION);
        assert_eq!(after.vad, Some(graph.spec()));
        // Everything else as it was: every old file with its digest, then the VAD.
        assert_eq!(after.files[..before.files.len()], before.files[..]);
        let vad = after.files.last().unwrap();
        assert_eq!(
            (vad.path.as_str(), vad.sha256.as_str()),
            (SILERO_FILE, SILERO_SHA256)
        );
        let unchanged = BundleManifest {
            format: before.format,
            vad: None,
            files: before.files.clone(),
            ..after.clone()
        };
        assert_eq!(unchanged, before);
        assert!(bundle.vad_model(16_000).unwrap().is_some());
        assert!(!dir.join("variant-choice.json").exists());
        // No staging directory left behind.
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("bundle")]);

        // Again: nothing to do. Another graph: it replaces the first, listed once.
        assert!(!add_vad(&dir, &graph).unwrap().changed);
        let newer = tmp.path().join("newer.onnx");
        std::fs::write(&newer, another_silero()).unwrap();
        let other = VadGraph::read_checked(&newer).unwrap();
        let outcome = add_vad(&dir, &other).unwrap();
        assert!(outcome.changed);
        let bundle = Bundle::open(&dir).unwrap();
        let vads: Vec<_> = bundle
            .manifest()
            .files
            .iter()
            .filter(|f| f.path == SILERO_FILE)
            .collect();
        assert_eq!(vads.len(), 1);
        assert_eq!(vads[0].sha256, other.source.sha256);
        bundle.verify().unwrap();
    }

    #[test]
    fn add_vad_leaves_a_broken_bundle_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bundle");
        placeholder_bundle(&dir, 3);
        std::fs::write(dir.join("head.onnx"), b"head grapH").unwrap();
        let manifest_before = std::fs::read(dir.join(MANIFEST_FILE)).unwrap();
        let graph = VadGraph::read_checked(&committed()).unwrap();
        let err = add_vad(&dir, &graph).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("head.onnx"), "{message}");
        assert!(
            err.chain()
                .any(|e| matches!(e.downcast_ref(), Some(BundleError::Tampered { .. }))),
            "{message}"
        );
        assert_eq!(
            std::fs::read(dir.join(MANIFEST_FILE)).unwrap(),
            manifest_before
        );
        assert!(!dir.join(SILERO_FILE).exists());

        let err = add_vad(&tmp.path().join("nowhere"), &graph).unwrap_err();
        assert!(format!("{err:#}").contains("nowhere"), "{err:#}");
    }
}
