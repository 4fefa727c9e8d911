//! `encoders import|random|run|cost`, and the encoder graphs a job uses (imported from
//! real checkpoints, or tiny random-weight ones made on the spot).

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use emotion_core::FrontendConfig;
use emotion_core::encoder::EncoderGraph;

use crate::data::corpus::embedded_tokenizer;
use crate::encoders::cost::{CostOptions, graph_facts, int8_variant, measure};
use crate::encoders::fetch::{BERT_BASE, HUBERT_BASE};
use crate::encoders::hidden_dump::{DumpInput, dump_hidden_states};
use crate::encoders::random::{Preset, RandomCheckpoint, write_tiny_pair};
use crate::encoders::{EncoderKind, ImportedEncoder, import};

#[derive(Subcommand)]
pub enum EncodersCommand {
    /// Import an HF checkpoint folder (config.json + model.safetensors or pytorch_model.bin)
    /// as a pruned ONNX graph that outputs the selected hidden states and holds no later
    /// layer.
    Import(ImportArgs),
    /// Write a random-weight checkpoint in the HF layout (for tests and benchmarks).
    Random(RandomArgs),
    /// Run an encoder graph on one input and write every hidden state it exposes
    /// (`hidden_states.{i}`, [1, T, H], f32, plus the input) as safetensors.
    Run(RunArgs),
    /// Time speech encoder graphs with tract on synthetic speech: median ms per second
    /// of audio, fp32 and (with --int8) the int8 variant a bundle ships.
    Cost(CostArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// The checkpoint folder.
    checkpoint: PathBuf,
    /// The ONNX file to write.
    #[arg(long)]
    out: PathBuf,
    /// Hidden states to output, HF numbering (0 = embeddings), e.g. 5..9
    /// [default: 5..9 for HuBERT/wav2vec2/WavLM, 1..6 for BERT; every layer, 1..N, for
    /// a model with fewer layers, e.g. DistilHuBERT's 1..2].
    #[arg(long, value_parser = parse_layers)]
    layers: Option<RangeInclusive<usize>>,
}

#[derive(Args)]
pub struct RandomArgs {
    /// Architecture.
    #[arg(long, value_enum)]
    kind: KindArg,
    /// Size preset: tiny (hidden 32, for tests), base (the real HuBERT-base /
    /// WavLM-base-plus / BERT-base shape) or distil (DistilHuBERT, ntu-spml/distilhubert:
    /// base widths, 2 layers, no feature-projection LayerNorm; speech only).
    #[arg(long, value_enum, default_value = "tiny")]
    size: SizeArg,
    /// Transformer layers [default: the preset's].
    #[arg(long)]
    layers: Option<usize>,
    /// HuBERT-large layout: pre-LN transformer, layer-norm conv encoder.
    #[arg(long)]
    stable_layer_norm: bool,
    /// A tokenizer.json to copy beside a BERT checkpoint.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Seed of the weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The folder to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum KindArg {
    Hubert,
    Wav2vec2,
    Wavlm,
    Bert,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SizeArg {
    Tiny,
    Base,
    Distil,
}

#[derive(Args)]
pub struct RunArgs {
    /// The encoder graph (.onnx).
    graph: PathBuf,
    /// A WAV file (speech graphs); it goes through the shared front-end first.
    #[arg(long, conflicts_with = "text", required_unless_present = "text")]
    wav: Option<PathBuf>,
    /// A transcript (text graphs); needs --tokenizer.
    #[arg(long, requires = "tokenizer")]
    text: Option<String>,
    /// The tokenizer.json that goes with the text graph.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Where to write the hidden states.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct CostArgs {
    /// Speech encoder graphs (.onnx, from `encoders import`).
    #[arg(required = true)]
    graphs: Vec<PathBuf>,
    /// Clip lengths in seconds.
    #[arg(long, value_delimiter = ',', default_value = "2,4")]
    seconds: Vec<f64>,
    /// tract threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Timed runs per clip (the median is reported).
    #[arg(long, default_value_t = 7)]
    repeats: usize,
    /// Untimed runs first, per clip.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Also measure the int8 variant (calibrated on synthetic speech, as the export does).
    #[arg(long)]
    int8: bool,
    /// One JSON object per row instead of the table.
    #[arg(long)]
    json: bool,
}

/// `encoders import|random|run|cost`.
pub fn run(command: EncodersCommand) -> Result<()> {
    match command {
        EncodersCommand::Import(args) => {
            let imported = import(&args.checkpoint, args.layers)?;
            imported.write(&args.out)?;
            print_import(&imported, &args.out);
            Ok(())
        }
        EncodersCommand::Random(args) => write_random(args),
        EncodersCommand::Run(args) => run_encoder(args),
        EncodersCommand::Cost(args) => encoder_cost(args),
    }
}

/// `encoders random`: a random-weight checkpoint in the HF layout.
fn write_random(args: RandomArgs) -> Result<()> {
    let kind = match args.kind {
        KindArg::Hubert => EncoderKind::Hubert,
        KindArg::Wav2vec2 => EncoderKind::Wav2Vec2,
        KindArg::Wavlm => EncoderKind::WavLm,
        KindArg::Bert => EncoderKind::Bert,
    };
    let preset = match args.size {
        SizeArg::Tiny => Preset::Tiny,
        SizeArg::Base => Preset::Base,
        SizeArg::Distil if kind.is_speech() => Preset::Distil,
        SizeArg::Distil => anyhow::bail!(
            "--size distil is DistilHuBERT's layout, a speech encoder: use it with \
             --kind hubert (or wav2vec2, wavlm)"
        ),
    };
    let mut checkpoint = RandomCheckpoint::new(kind, preset)
        .with_seed(args.seed)
        .with_stable_layer_norm(args.stable_layer_norm);
    if let Some(layers) = args.layers {
        checkpoint = checkpoint.with_layers(layers);
    }
    if let Some(tokenizer) = &args.tokenizer {
        checkpoint = checkpoint.with_tokenizer(tokenizer);
    }
    checkpoint.write(&args.out)?;
    println!(
        "random {} checkpoint ({:.1} M parameters) in {}",
        kind.as_str(),
        checkpoint.parameter_count() as f64 / 1e6,
        args.out.display()
    );
    Ok(())
}

fn run_encoder(args: RunArgs) -> Result<()> {
    let graph = EncoderGraph::load(&args.graph)?;
    let input = match (&args.wav, &args.text, &args.tokenizer) {
        (Some(wav), _, _) => DumpInput::Wav(wav, FrontendConfig::default()),
        (None, Some(text), Some(tokenizer)) => DumpInput::Text(text, tokenizer),
        _ => anyhow::bail!("give --wav FILE, or --text \"...\" with --tokenizer FILE"),
    };
    let states = dump_hidden_states(&graph, input, &args.out)?;
    for state in &states {
        println!(
            "hidden_states.{}: [1, {}, {}]",
            state.index, state.frames, state.dim
        );
    }
    println!("written to {}", args.out.display());
    Ok(())
}

/// `encoders cost`: each graph (and its int8 variant) timed on each clip length.
fn encoder_cost(args: CostArgs) -> Result<()> {
    let options = CostOptions {
        seconds: args.seconds,
        threads: args.threads,
        warmup: args.warmup,
        repeats: args.repeats,
    };
    if !args.json {
        println!(
            "| graph | encoder | hidden states | M params | ONNX MB | variant | threads | audio s | median ms | ms per s of audio | GMAC per s |"
        );
        println!("|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|");
    }
    for path in &args.graphs {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path.display().to_string();
        let mut variants = vec![("fp32", bytes.clone())];
        if args.int8 {
            let int8 = int8_variant(&bytes).with_context(|| format!("{name}: int8 variant"))?;
            variants.push(("int8", int8));
        }
        for (variant, onnx) in &variants {
            let facts = graph_facts(onnx)?;
            let rows = measure(onnx, &name, variant, &options)?;
            for row in rows {
                if args.json {
                    let line = serde_json::json!({
                        "graph": name,
                        "facts": facts,
                        "row": row,
                    });
                    println!("{line}");
                } else {
                    println!(
                        "| {name} | {} | {} | {:.1} | {:.1} | {} | {} | {:.2} | {:.1} | {:.1} | {} |",
                        facts.encoder,
                        facts.hidden_states,
                        facts.parameters as f64 / 1e6,
                        facts.onnx_bytes as f64 / 1e6,
                        row.variant,
                        row.threads,
                        row.audio_seconds,
                        row.median_ms,
                        row.ms_per_audio_second,
                        row.gmac_per_audio_second
                            .map_or_else(|| "-".to_string(), |g| format!("{g:.2}")),
                    );
                }
            }
        }
    }
    Ok(())
}

fn print_import(imported: &ImportedEncoder, out: &Path) {
    if let Some(note) = &imported.layer_note {
        eprintln!("note: {note}");
    }
    println!(
        "{} ({}): {} of {} layers kept, outputs {} (hidden {}), {:.1} MB -> {}",
        imported.kind.as_str(),
        imported.source,
        imported.layers_in_graph,
        imported.num_hidden_layers,
        imported.output_names().join(", "),
        imported.hidden_size,
        imported.model_bytes.len() as f64 / 1e6,
        out.display()
    );
}

/// Parses `5..9`, `5..=9` or `5-9` (inclusive), or a single layer `7`.
fn parse_layers(text: &str) -> Result<RangeInclusive<usize>, String> {
    let bad = || format!("'{text}' is not a layer range like 5..9");
    let (start, end) = match text.split_once("..") {
        Some((a, b)) => (a, b.trim_start_matches('=')),
        None => text.split_once('-').unwrap_or((text, text)),
    };
    let start: usize = start.trim().parse().map_err(|_| bad())?;
    let end: usize = end.trim().parse().map_err(|_| bad())?;
    if start > end {
        return Err(format!("'{text}': the first layer comes after the last"));
    }
    Ok(start..=end)
}

/// Which encoder checkpoints the demo imports: `real` laid out as `fetch` writes them
/// (else tiny random-weight ones), each modality overridden by its own folder when given.
pub struct EncoderChoice<'a> {
    /// `--encoders`: the root `fetch` writes into.
    pub real: Option<&'a Path>,
    /// `--speech-encoder`: a speech checkpoint folder.
    pub speech: Option<&'a Path>,
    /// `--text-encoder`: a text checkpoint folder, with its tokenizer.json.
    pub text: Option<&'a Path>,
}

/// The encoder graphs a job's features come from, and the export packs.
pub struct EncoderGraphs {
    /// The speech encoder graph (.onnx).
    pub speech: PathBuf,
    /// The text encoder graph (.onnx).
    pub text: PathBuf,
    /// The text encoder's tokenizer.json.
    pub tokenizer: PathBuf,
}

/// Imports the real checkpoints found in `choice.real` (laid out as `fetch` writes them),
/// or tiny random-weight ones made here, into `dir`, with the speech or text checkpoint
/// replaced by `choice.speech` / `choice.text` when given; also returns the speech and
/// text checkpoint folders (the probe imports every layer of them).
pub(crate) fn prepare_encoders(
    choice: &EncoderChoice<'_>,
    dir: &Path,
) -> Result<(EncoderGraphs, [PathBuf; 2])> {
    // With both folders given, nothing of --encoders is used (nor checked).
    let real = choice
        .real
        .filter(|_| choice.speech.is_none() || choice.text.is_none());
    let (speech_checkpoint, text_checkpoint) = match real {
        Some(root) => {
            let pair = (HUBERT_BASE.local_dir(root), BERT_BASE.local_dir(root));
            for (model, dir) in [(HUBERT_BASE, &pair.0), (BERT_BASE, &pair.1)] {
                let missing = model.missing_files(dir);
                if !missing.is_empty() {
                    anyhow::bail!(
                        "{} lacks {} for {}: run `host-trainer fetch --cache {}`, or put the files there by hand (see `host-trainer fetch --help`, --from)",
                        dir.display(),
                        missing.join(", "),
                        model.repo_id(),
                        root.display()
                    );
                }
            }
            pair
        }
        None => match (choice.speech, choice.text) {
            (Some(speech), Some(text)) => (speech.to_path_buf(), text.to_path_buf()),
            _ => {
                let pair = write_tiny_pair(dir, &embedded_tokenizer())?;
                println!(
                    "random-weight tiny checkpoints (real layout, not trained) in {}",
                    dir.display()
                );
                pair
            }
        },
    };
    let speech_checkpoint = choice.speech.map_or(speech_checkpoint, Path::to_path_buf);
    let text_checkpoint = choice.text.map_or(text_checkpoint, Path::to_path_buf);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let speech = dir.join("speech.onnx");
    let imported = import(&speech_checkpoint, None).with_context(|| {
        format!(
            "cannot import the speech encoder {}",
            speech_checkpoint.display()
        )
    })?;
    if !imported.kind.is_speech() {
        anyhow::bail!(
            "{} is a {} checkpoint, not a speech encoder (HuBERT, DistilHuBERT, wav2vec2 or WavLM): pass it as --text-encoder",
            speech_checkpoint.display(),
            imported.kind.as_str()
        );
    }
    imported.write(&speech)?;
    print_import(&imported, &speech);
    let text = dir.join("text.onnx");
    let imported = import(&text_checkpoint, None).with_context(|| {
        format!(
            "cannot import the text encoder {}",
            text_checkpoint.display()
        )
    })?;
    if imported.kind.is_speech() {
        anyhow::bail!(
            "{} is a {} checkpoint, not a text encoder (BERT): pass it as --speech-encoder",
            text_checkpoint.display(),
            imported.kind.as_str()
        );
    }
    if !text_checkpoint.join("tokenizer.json").is_file() {
        anyhow::bail!(
            "{} holds no tokenizer.json: the text encoder needs the tokenizer it was trained with (HF's tokenizer.json, as `save_pretrained` writes it)",
            text_checkpoint.display()
        );
    }
    imported.write(&text)?;
    print_import(&imported, &text);
    let encoders = EncoderGraphs {
        speech,
        text,
        tokenizer: text_checkpoint.join("tokenizer.json"),
    };
    Ok((encoders, [speech_checkpoint, text_checkpoint]))
}
