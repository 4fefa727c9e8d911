//! The precision variants: each head, the spotter and the speech encoder exported once in
//! fp32, then written per precision (int8: weight products quantised, the speech
//! encoder's activation scales calibrated on training utterances).

use anyhow::Context as _;
use emotion_core::bundle::{BundleWriter, HeadFile, Variant};

use super::head_onnx::{export_head, export_keyword_spotter};
use super::request::{ExportRequest, Precision};
use crate::features::cache::FeatureIndex;
use crate::train::heads::ModelKind;
use crate::train::keyword_spotter::KeywordModel;
use crate::train::trainer::TrainedModel;
use onnx_build::calibration::calibrate;
use onnx_build::quantize::{ActivationRanges, QuantizeOptions, quantize_dynamic};

/// The precisions to write: those asked for, fp32 always (the reference), in order.
pub(super) fn with_fp32(asked: &[Precision]) -> Vec<Precision> {
    let mut precisions = asked.to_vec();
    precisions.push(Precision::Fp32);
    precisions.sort();
    precisions.dedup();
    precisions
}

/// The fp32 graphs every variant is made from.
pub(super) struct FloatGraphs<'a> {
    /// The speech encoder, as the features were extracted with it.
    pub speech_encoder: &'a [u8],
    /// The text encoder.
    pub text_encoder: &'a [u8],
    /// Each trained head, exported once.
    pub heads: Vec<(ModelKind, Vec<u8>)>,
    /// The keyword spotter, when the bundle has one.
    pub keyword_spotter: Option<Vec<u8>>,
}

impl<'a> FloatGraphs<'a> {
    /// Exports the trained heads and the spotter to ONNX beside the encoder graphs.
    pub fn export(
        speech_encoder: &'a [u8],
        text_encoder: &'a [u8],
        trained: &[TrainedModel],
        spotter: Option<&KeywordModel>,
    ) -> anyhow::Result<Self> {
        let mut heads = Vec::new();
        for model in trained {
            let kind = model.kind();
            let graph = export_head(model.head())
                .with_context(|| format!("cannot export the {kind} head"))?;
            heads.push((kind, graph));
        }
        let keyword_spotter = match spotter {
            Some(model) => Some(
                export_keyword_spotter(model.classifier(), &model.output_names())
                    .context("cannot export the keyword spotter")?,
            ),
            None => None,
        };
        Ok(Self {
            speech_encoder,
            text_encoder,
            heads,
            keyword_spotter,
        })
    }
}

/// How each graph is quantised in the int8 variant.
pub(super) struct Quantizers {
    /// Heads, spotter, text encoder: activations quantised per run.
    pub graphs: QuantizeOptions,
    /// The speech encoder: conv feature encoder kept float, calibrated activation scales
    /// (when int8 is written).
    pub speech: QuantizeOptions,
}

impl Quantizers {
    /// The options, calibrating the speech encoder only when an int8 variant is written.
    pub fn new(
        request: &ExportRequest<'_>,
        index: &FeatureIndex,
        graphs: &FloatGraphs<'_>,
        precisions: &[Precision],
    ) -> anyhow::Result<Self> {
        let quantize = QuantizeOptions::default();
        let speech = QuantizeOptions {
            keep_float: vec![SPEECH_FLOAT_PREFIX.to_string()],
            ..quantize.clone()
        };
        let speech = if precisions.contains(&Precision::Int8) {
            QuantizeOptions {
                ranges: calibration_ranges(request, index, graphs.speech_encoder, &speech)?,
                ..speech
            }
        } else {
            speech
        };
        Ok(Self {
            graphs: quantize,
            speech,
        })
    }
}

/// Writes one variant's graphs into the bundle and returns its manifest entry.
/// `with_text_encoder`: the bundle ships a text encoder (the int8 variant then carries
/// its own, quantised).
pub(super) fn write_variant(
    writer: &mut BundleWriter,
    precision: Precision,
    graphs: &FloatGraphs<'_>,
    quantizers: &Quantizers,
    with_text_encoder: bool,
) -> anyhow::Result<Variant> {
    let name = precision.name();
    // fp32 as exported; int8 through the quantiser, with what failed named.
    let convert = |fp32: &[u8], options: &QuantizeOptions, what: &str| -> anyhow::Result<Vec<u8>> {
        match precision {
            Precision::Fp32 => Ok(fp32.to_vec()),
            Precision::Int8 => Ok(quantize_dynamic(fp32, options)
                .with_context(|| format!("cannot quantise the {what}"))?
                .0),
        }
    };
    let encoder_file = format!("speech_encoder.{name}.onnx");
    let encoder = convert(graphs.speech_encoder, &quantizers.speech, "speech encoder")?;
    writer.add(&encoder_file, &encoder)?;
    let mut heads = Vec::new();
    for (kind, fp32) in &graphs.heads {
        let file = format!("head_{kind}.{name}.onnx");
        writer.add(
            &file,
            &convert(fp32, &quantizers.graphs, &format!("{kind} head"))?,
        )?;
        heads.push(HeadFile { model: *kind, file });
    }
    // The int8 variant carries its own text encoder, quantised as the heads are
    // (weights per output channel, activations per run: a text graph reads token
    // ids, so the speech encoder's calibrated scales have nothing to measure); its
    // embedding tables stay float. fp32 and the keyword table use the fp32 one.
    let (own_text_encoder, description) = match precision {
        Precision::Int8 if with_text_encoder => {
            let file = format!("text_encoder.{name}.onnx");
            let bytes = convert(graphs.text_encoder, &quantizers.graphs, "text encoder")?;
            writer.add(&file, &bytes)?;
            (
                Some(file),
                format!(
                    "{}; the text encoder's weight matrix products likewise, activations quantised per run, its embedding tables float",
                    precision.description()
                ),
            )
        }
        _ => (None, precision.description().to_string()),
    };
    let keyword_spotter = match &graphs.keyword_spotter {
        Some(fp32) => {
            let file = format!("keyword_spotter.{name}.onnx");
            writer.add(
                &file,
                &convert(fp32, &quantizers.graphs, "keyword spotter")?,
            )?;
            Some(file)
        }
        None => None,
    };
    Ok(Variant {
        name: name.to_string(),
        description,
        speech_encoder: encoder_file,
        heads,
        keyword_spotter,
        text_encoder: own_text_encoder,
    })
}

/// The bytes a variant loads: its speech encoder, heads and spotter.
pub(super) fn variant_bytes(bundle: &emotion_core::bundle::Bundle, variant: &Variant) -> u64 {
    let manifest = bundle.manifest();
    std::iter::once(&variant.speech_encoder)
        .chain(variant.heads.iter().map(|h| &h.file))
        .chain(&variant.keyword_spotter)
        .filter_map(|f| manifest.file(f))
        .map(|f| f.bytes)
        .sum()
}

/// The speech encoder's products that stay float in the int8 variant: the conv feature
/// encoder's. With one int8 scale per activation tensor its random-weight layers lose
/// 4–9 % of their signal each (peaks 20 × the RMS), and the transformer amplifies that to
/// a ~50 % error in the hidden states (measured on the base-size random encoder: int8
/// agreed with fp32 on 54 % of the test part). Its transformer, quantised, loses ~3 %.
pub const SPEECH_FLOAT_PREFIX: &str = "feature_extractor.";

/// Utterances of the training part the int8 speech encoder's activation ranges are
/// measured on ([`onnx_build::calibration`]).
pub const CALIBRATION_UTTERANCES: usize = 32;

/// The activation ranges of the speech encoder over up to [`CALIBRATION_UTTERANCES`]
/// training utterances, spread evenly over the (sorted) training part, through the
/// front-end the features were extracted with.
fn calibration_ranges(
    request: &ExportRequest<'_>,
    index: &FeatureIndex,
    speech_encoder: &[u8],
    options: &QuantizeOptions,
) -> anyhow::Result<ActivationRanges> {
    let mut ids = request.split.train.clone();
    ids.sort();
    let step = ids.len().div_ceil(CALIBRATION_UTTERANCES).max(1);
    let frontend = emotion_core::Frontend::new(index.frontend.clone());
    let mut inputs = Vec::new();
    for id in ids.iter().step_by(step) {
        let entry = request
            .manifest
            .get(id)
            .with_context(|| format!("{id} is in the split but not in the manifest"))?;
        let samples = frontend
            .process_file(&entry.path)
            .with_context(|| format!("cannot read {} for calibration", entry.path.display()))?;
        inputs.push(tract_onnx::prelude::Tensor::from_shape(
            &[1, samples.len()],
            &samples,
        )?);
    }
    calibrate(speech_encoder, options, &inputs)
        .context("cannot calibrate the speech encoder's int8 activations")
}
