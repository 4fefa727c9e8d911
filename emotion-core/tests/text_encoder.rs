//! The text encoder of a bundle: loaded at the first transcript outside the keyword
//! table (never for keywords), shared by clones, a broken one an error at each use and
//! never a panic; the int8 variant's own text encoder (bundle format 3); format-2
//! bundles still load (fixtures/bundle/format-2-manifest.bin: the demo bundle's manifest
//! as the format-2 program wrote it).
//!
//! The bundles are the committed demo bundle with a text encoder added: a graph of the
//! encoder contract built here (token embeddings gathered, one per layer), so no
//! host-trainer is needed.

use std::path::{Path, PathBuf};

use emotion_core::bundle::{
    Bundle, BundleError, BundleManifest, MANIFEST_FILE, MANIFEST_JSON, OLDEST_FORMAT, sha256_hex,
};
use emotion_core::pipeline::{PipelineError, TextSource};
use emotion_core::{Pipeline, PipelineOptions, TextInput};
use prost::Message as _;
use tract_onnx::pb;

fn demo_bundle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/demo-bundle")
}

/// A text encoder graph of the encoder contract: `input_ids` → an embedding table of
/// `vocab × dim` (seeded values) → `hidden_states.{l}` for each of `layers`.
fn text_encoder_graph(vocab: usize, dim: usize, layers: &[usize], seed: u32) -> Vec<u8> {
    use pb::tensor_shape_proto::{Dimension, dimension};
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    let table: Vec<u8> = (0..vocab * dim)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            ((state % 2001) as f32 / 1000.0 - 1.0).to_le_bytes()
        })
        .collect();
    let tensor_type =
        |elem: pb::tensor_proto::DataType, dims: Vec<dimension::Value>| pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .into_iter()
                        .map(|value| Dimension {
                            value: Some(value),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        };
    let mut nodes = vec![pb::NodeProto {
        op_type: "Gather".into(),
        name: "embeddings".into(),
        input: vec!["table".into(), "input_ids".into()],
        output: vec!["embedded".into()],
        attribute: vec![pb::AttributeProto {
            name: "axis".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: 0,
            ..Default::default()
        }],
        ..Default::default()
    }];
    let mut outputs = Vec::new();
    for layer in layers {
        let name = format!("hidden_states.{layer}");
        nodes.push(pb::NodeProto {
            op_type: "Identity".into(),
            name: format!("layer{layer}"),
            input: vec!["embedded".into()],
            output: vec![name.clone()],
            ..Default::default()
        });
        outputs.push(pb::ValueInfoProto {
            name,
            r#type: Some(tensor_type(
                pb::tensor_proto::DataType::Float,
                vec![
                    dimension::Value::DimValue(1),
                    dimension::Value::DimParam("tokens".into()),
                    dimension::Value::DimValue(dim as i64),
                ],
            )),
            ..Default::default()
        });
    }
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(pb::GraphProto {
            name: "text encoder".into(),
            node: nodes,
            initializer: vec![pb::TensorProto {
                name: "table".into(),
                dims: vec![vocab as i64, dim as i64],
                data_type: pb::tensor_proto::DataType::Float as i32,
                raw_data: table,
                ..Default::default()
            }],
            input: vec![pb::ValueInfoProto {
                name: "input_ids".into(),
                r#type: Some(tensor_type(
                    pb::tensor_proto::DataType::Int64,
                    vec![
                        dimension::Value::DimValue(1),
                        dimension::Value::DimParam("tokens".into()),
                    ],
                )),
                ..Default::default()
            }],
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The demo bundle copied to `to`, with `files` added, the manifest edited by `edit`
/// and written back with checksums refreshed.
fn bundle_with(
    to: &Path,
    files: &[(&str, Vec<u8>)],
    edit: impl FnOnce(&mut BundleManifest),
) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(demo_bundle()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    let mut manifest = Bundle::open(to).unwrap().manifest().clone();
    for (name, bytes) in files {
        std::fs::write(to.join(name), bytes).unwrap();
        manifest.files.push(emotion_core::bundle::FileEntry {
            path: name.to_string(),
            bytes: 0,
            sha256: String::new(),
        });
    }
    edit(&mut manifest);
    for file in &mut manifest.files {
        let bytes = std::fs::read(to.join(&file.path)).unwrap();
        file.bytes = bytes.len() as u64;
        file.sha256 = sha256_hex(&bytes);
    }
    std::fs::write(to.join(MANIFEST_FILE), manifest.to_bytes().unwrap()).unwrap();
    std::fs::write(
        to.join(MANIFEST_JSON),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    to.to_path_buf()
}

/// The demo bundle's text width and layers, its tokenizer's vocabulary.
fn demo_text_encoder(seed: u32) -> Vec<u8> {
    let manifest = Bundle::open(&demo_bundle()).unwrap().manifest().clone();
    text_encoder_graph(30522, manifest.text.dim, &manifest.text.layers, seed)
}

fn load(dir: &Path, variant: &str) -> Pipeline {
    Pipeline::load(
        dir,
        &PipelineOptions {
            variant: Some(variant.into()),
            threads: 1,
        },
    )
    .unwrap()
}

/// One second of a voiced tone at 16 kHz.
fn samples() -> Vec<f32> {
    (0..16_000)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            0.3 * (t * 220.0 * std::f32::consts::TAU).sin() * (t * 4.0 * std::f32::consts::PI).sin()
        })
        .collect()
}

#[test]
fn the_text_encoder_is_loaded_at_the_first_transcript_outside_the_keyword_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = bundle_with(
        &tmp.path().join("b"),
        &[("text_encoder.onnx", demo_text_encoder(1))],
        |m| m.text_encoder = Some("text_encoder.onnx".into()),
    );
    let pipeline = load(&dir, "fp32");
    assert!(!pipeline.text_encoder_loaded());
    assert!(pipeline.knows_text("a sentence no table has"));
    let samples = samples();

    // Keywords, no text and the spotter never need it.
    let word = pipeline.keywords().words().next().unwrap().to_string();
    let keyword = pipeline
        .classify(&samples, TextInput::Keyword(&word), None)
        .unwrap();
    assert_eq!(keyword.text_source, TextSource::KeywordTable);
    pipeline
        .classify(&samples, TextInput::Auto { prompt: None }, None)
        .unwrap();
    pipeline.classify(&samples, TextInput::None, None).unwrap();
    assert!(!pipeline.text_encoder_loaded());

    // A clone made before the load shares it.
    let clone = pipeline.clone();
    let open = clone
        .classify(&samples, TextInput::Transcript("an unknown sentence"), None)
        .unwrap();
    assert_eq!(open.text_source, TextSource::TextEncoder);
    assert!(pipeline.text_encoder_loaded());
    let again = pipeline
        .classify(&samples, TextInput::Transcript("an unknown sentence"), None)
        .unwrap();
    assert_eq!(again.logits, open.logits);
    // A keyword spelled as a transcript still comes from the table.
    let entry = pipeline.keywords().entries[0].transcript.clone();
    let table = pipeline
        .classify(&samples, TextInput::Transcript(&entry), None)
        .unwrap();
    assert_eq!(table.text_source, TextSource::KeywordTable);
    pipeline.load_text_encoder().unwrap();
}

#[test]
fn a_broken_text_encoder_is_an_error_at_each_use_not_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let samples = samples();
    let manifest = Bundle::open(&demo_bundle()).unwrap().manifest().clone();
    // Changed after export (a byte flipped, checksums untouched), and intact but of
    // other layers than the heads were trained on.
    let flipped = bundle_with(
        &tmp.path().join("flipped"),
        &[("text_encoder.onnx", demo_text_encoder(2))],
        |m| m.text_encoder = Some("text_encoder.onnx".into()),
    );
    let path = flipped.join("text_encoder.onnx");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let layers = bundle_with(
        &tmp.path().join("layers"),
        &[(
            "text_encoder.onnx",
            text_encoder_graph(30522, manifest.text.dim, &[1, 2], 3),
        )],
        |m| m.text_encoder = Some("text_encoder.onnx".into()),
    );
    for (dir, expect) in [(flipped, "was changed after export"), (layers, "layers")] {
        let pipeline = load(&dir, "int8");
        let word = pipeline.keywords().words().next().unwrap().to_string();
        pipeline
            .classify(&samples, TextInput::Keyword(&word), None)
            .unwrap();
        let failures: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let pipeline = pipeline.clone();
                    let samples = &samples;
                    s.spawn(move || {
                        let err = pipeline
                            .classify(samples, TextInput::Transcript("open text"), None)
                            .unwrap_err();
                        assert!(matches!(err, PipelineError::TextEncoder(_)), "{err}");
                        err.to_string()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for message in &failures {
            assert!(message.contains("text_encoder.onnx"), "{message}");
            assert!(message.contains(expect), "{message}");
            assert_eq!(message, &failures[0]);
        }
        let err = pipeline.load_text_encoder().unwrap_err();
        assert_eq!(err.to_string(), failures[0]);
        assert!(!pipeline.text_encoder_loaded());
        // Keywords still work.
        pipeline
            .classify(&samples, TextInput::Keyword(&word), None)
            .unwrap();
    }
}

#[test]
fn the_int8_variant_runs_its_own_text_encoder() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = Bundle::open(&demo_bundle()).unwrap().manifest().clone();
    // The int8 variant's own file gives other layers: only it fails, so each variant
    // is seen to read its own.
    let dir = bundle_with(
        &tmp.path().join("b"),
        &[
            ("text_encoder.onnx", demo_text_encoder(4)),
            (
                "text_encoder.int8.onnx",
                text_encoder_graph(30522, manifest.text.dim, &[1], 5),
            ),
        ],
        |m| {
            m.format = emotion_core::bundle::FORMAT_VERSION;
            m.text_encoder = Some("text_encoder.onnx".into());
            m.variants
                .iter_mut()
                .find(|v| v.name == "int8")
                .unwrap()
                .text_encoder = Some("text_encoder.int8.onnx".into());
        },
    );
    let opened = Bundle::open(&dir).unwrap();
    assert_eq!(
        opened.manifest().format,
        emotion_core::bundle::FORMAT_VERSION
    );
    let samples = samples();
    let fp32 = load(&dir, "fp32");
    let result = fp32
        .classify(&samples, TextInput::Transcript("open text"), None)
        .unwrap();
    assert_eq!(result.text_source, TextSource::TextEncoder);
    let err = load(&dir, "int8")
        .classify(&samples, TextInput::Transcript("open text"), None)
        .unwrap_err();
    assert!(err.to_string().contains("text_encoder.int8.onnx"), "{err}");

    // Its file is one the bundle needs.
    std::fs::remove_file(dir.join("text_encoder.int8.onnx")).unwrap();
    let err = Bundle::open(&dir).unwrap_err();
    assert!(matches!(err, BundleError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("the int8 text encoder"), "{err}");

    // Format 2 cannot hold it.
    let mut old = opened.manifest().clone();
    old.format = OLDEST_FORMAT;
    let err = old.to_bytes().unwrap_err();
    assert!(err.to_string().contains("format 3"), "{err}");
}

#[test]
fn format_2_bundles_still_load_and_are_written_back_as_format_2() {
    // A manifest the format-2 program wrote reads and writes back byte for byte.
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bundle/format-2-manifest.bin");
    let written = std::fs::read(&fixture).unwrap();
    let old = BundleManifest::from_bytes(&written, &fixture).unwrap();
    assert_eq!(old.format, OLDEST_FORMAT);
    assert!(old.variants.iter().all(|v| v.text_encoder.is_none()));
    assert_eq!(old.to_bytes().unwrap(), written);

    // A format-2 bundle loads and runs; without a text encoder, the old message.
    let tmp = tempfile::tempdir().unwrap();
    let dir = bundle_with(&tmp.path().join("v2"), &[], |m| m.format = OLDEST_FORMAT);
    let demo = Bundle::open(&dir).unwrap();
    assert_eq!(demo.manifest().format, OLDEST_FORMAT);
    demo.verify().unwrap();
    let samples = samples();
    for variant in ["fp32", "int8"] {
        let pipeline = load(&dir, variant);
        pipeline
            .classify(&samples, TextInput::Auto { prompt: None }, None)
            .unwrap();
        let err = pipeline
            .classify(&samples, TextInput::Transcript("open text"), None)
            .unwrap_err();
        assert!(matches!(err, PipelineError::UnknownText { .. }), "{err}");
        assert!(!pipeline.knows_text("open text"));
        pipeline.load_text_encoder().unwrap();
    }
    let copy = bundle_with(
        &tmp.path().join("b"),
        &[("text_encoder.onnx", demo_text_encoder(6))],
        |m| {
            m.format = OLDEST_FORMAT;
            m.text_encoder = Some("text_encoder.onnx".into())
        },
    );
    let reopened = Bundle::open(&copy).unwrap();
    assert_eq!(reopened.manifest().format, OLDEST_FORMAT);
    assert!(
        reopened
            .manifest()
            .variants
            .iter()
            .all(|v| v.text_encoder.is_none())
    );
}
