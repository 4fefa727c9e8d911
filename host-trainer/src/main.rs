//! `host-trainer`: the host's command line. A thin layer over the library: it parses
//! arguments, calls the library and adds context a user can act on to its errors.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use host_trainer::evaluate::through_bundle::predict_through_bundle;
use host_trainer::data::corpus::{default_corpus_dir, embedded_tokenizer};
use host_trainer::encoders::random::{Preset, RandomCheckpoint, write_tiny_pair};
use host_trainer::encoders::{EncoderKind, ImportedEncoder, import};
use host_trainer::evaluate::summary::{Provenance, comparison_markdown, write_evaluation};
use host_trainer::export::bundle::{
    ExportOptions, ExportRequest, Precision, default_bundle_dir, export_bundle_with,
};
use host_trainer::features::extract::{ExtractSettings, Extractor, extract};
use host_trainer::features::cache::{FeatureCache, FeatureDtype, FeatureIndex, LayerCombination};
use host_trainer::encoders::fetch::{
    BERT_BASE, DEFAULT_ENDPOINT, FetchError, FetchOptions, HUBERT_BASE, KNOWN_MODELS, RemoteModel,
    fetch,
};
use host_trainer::train::heads::ModelKind;
use host_trainer::encoders::hidden_dump::{DumpInput, dump_hidden_states};
use host_trainer::train::keyword_spotter;
use host_trainer::data::manifest::Manifest;
use host_trainer::evaluate::probe::{ProbeConfig, ProbeRequest, run_probe};
use host_trainer::report::page::{ReportInputs, write_report};
use host_trainer::report::representations::format_score;
use host_trainer::train::runs::{evaluate_run, run_dir, train_run};
use host_trainer::data::splits::{SplitConfig, SplitKind, SplitSet};
use host_trainer::data::tess::{ScanOptions, scan};
use host_trainer::train::trainer::{TrainConfig, remove_checkpoint};
use models::encoder::EncoderGraph;
use models::pipeline::{KeywordSource, TextInput};
use models::{FrontendConfig, Pipeline, PipelineOptions, TranscriptTemplate};

/// Train speech + text emotion models on the host and prepare them for the board.
///
/// Start with `host-trainer demo`: it runs the job on the synthetic corpus that ships
/// with the source. Point it at the real TESS with `--data DIR`.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole job on the embedded synthetic corpus: scan, split, import the
    /// encoders, extract features, train the three models, evaluate and compare, probe
    /// every encoder layer, train the keyword spotter, export a bundle (fp32 and int8),
    /// classify held-out files through it, and write the report.
    Demo(DemoArgs),
    /// Corpus work: scan a TESS folder into a manifest, split it.
    #[command(subcommand)]
    Data(DataCommand),
    /// Download the reference encoders (HuBERT-base, BERT-base) from the Hugging Face Hub,
    /// or check a copy made by hand (--from).
    ///
    /// Each model goes to CACHE/owner--name/: its config.json, its
    /// preprocessor_config.json or tokenizer.json, and the weights as the revision has
    /// them: model.safetensors when there is one, else pytorch_model.bin (both import).
    /// facebook/hubert-base-ls960 has only pytorch_model.bin on main; its model.safetensors
    /// is on `--revision refs/pr/2`.
    ///
    /// Downloads go to FILE.part and resume where they stopped (also in a later run); a
    /// file is put in place only once its size and, where the Hub publishes one, its
    /// SHA-256 match, and what was fetched is recorded in fetch.json beside the files.
    /// A later run re-checks the files against fetch.json and does not download again.
    /// HF_TOKEN is sent when set (private or gated repositories).
    ///
    /// Offline: copy the folder a `fetch` wrote on a machine with network (or the
    /// Hugging Face cache, models--owner--name/snapshots/...) and run `fetch --from COPY`:
    /// each file is checked against the copy's fetch.json where there is one, the weights
    /// for completeness in any case. Without network, the error lists the exact files of
    /// the revision, their URLs and where to put them.
    Fetch(FetchArgs),
    /// Encoder graphs: import an HF checkpoint, run a graph, make random checkpoints.
    #[command(subcommand)]
    Encoders(EncodersCommand),
    /// Front-end + encoders over a manifest; features cached (only missing ones computed).
    Extract(ExtractArgs),
    /// Train one model (speech, text or fusion) on one split; early stopping on validation macro-F1.
    Train(TrainArgs),
    /// Train the keyword spotter on one split: which vocabulary word was said, from the
    /// speech features, so the board needs no prompt; its threshold chosen on validation.
    Keywords(KeywordArgs),
    /// Evaluate trained models on the test parts of their splits: reports, comparison, metrics.json.
    Evaluate(EvaluateArgs),
    /// Probe every layer of the encoders with a linear classifier: which layers hold the
    /// emotion (HuBERT 1–12, BERT's layers), per split; writes probe.json.
    Probe(ProbeArgs),
    /// Write the report (HTML, opens offline, and Markdown) that compares the three models:
    /// comparison table, per-class F1, confusion matrices, training curves, error analysis,
    /// t-SNE/PCA maps of the representations with silhouettes, the layer probe, provenance.
    Report(ReportArgs),
    /// Pack the trained heads of one split (and its keyword spotter, when trained) and their
    /// encoders into a bundle for the board (fp32 and int8 variants, measured; the default
    /// variant chosen from the measurements).
    Export(ExportArgs),
}

/// The splits `evaluate` reports on unless told.
const DEFAULT_EVALUATION_SPLITS: &str = "random,speaker-OAF-to-YAF,speaker-YAF-to-OAF";

/// Where a run's inputs are: the manifest, the splits and the feature cache.
#[derive(Args)]
struct RunInputs {
    /// The manifest written by `data scan`.
    #[arg(long, default_value = "out/manifest.csv")]
    manifest: PathBuf,
    /// The splits file written by `data split`.
    #[arg(long, default_value = "out/splits.json")]
    splits: PathBuf,
    /// The feature cache written by `extract`.
    #[arg(long, default_value = "out/features")]
    features: PathBuf,
    /// Where runs are saved (RUNS/{model}/{split}/).
    #[arg(long, default_value = "out/runs")]
    runs: PathBuf,
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    inputs: RunInputs,
    /// Which model.
    #[arg(long, value_enum)]
    model: ModelKind,
    /// Which split (see splits.json): random, speaker-OAF-to-YAF, speaker-YAF-to-OAF, word.
    #[arg(long, default_value = "random")]
    split: String,
    /// Most epochs.
    #[arg(long, default_value_t = TrainConfig::default().max_epochs)]
    epochs: usize,
    /// Epochs without a better validation macro-F1 before stopping.
    #[arg(long, default_value_t = TrainConfig::default().patience)]
    patience: usize,
    /// Utterances per batch.
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    learning_rate: f64,
    /// Seed of the weights and of the batch order.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// Start from epoch 1: delete the run's checkpoint (RUNS/{model}/{split}/checkpoint)
    /// instead of resuming from it.
    #[arg(long)]
    fresh: bool,
}

#[derive(Args)]
struct KeywordArgs {
    #[command(flatten)]
    inputs: RunInputs,
    /// Which split: random or a speaker split (every word must be heard in training).
    #[arg(long, default_value = "random")]
    split: String,
    /// Most epochs.
    #[arg(long, default_value_t = keyword_spotter::default_config().max_epochs)]
    epochs: usize,
    /// Epochs without a better validation macro-F1 before stopping.
    #[arg(long, default_value_t = keyword_spotter::default_config().patience)]
    patience: usize,
    /// Seed of the weights and of the batch order.
    #[arg(long, default_value_t = keyword_spotter::default_config().seed)]
    seed: u64,
}

#[derive(Args)]
struct EvaluateArgs {
    #[command(flatten)]
    inputs: RunInputs,
    /// Models to evaluate.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "speech,text,fusion"
    )]
    models: Vec<ModelKind>,
    /// Splits to evaluate on.
    #[arg(
        long = "split",
        value_delimiter = ',',
        default_value = DEFAULT_EVALUATION_SPLITS
    )]
    split_names: Vec<String>,
    /// Where the reports go [default: RUNS/evaluation, or RUNS/evaluation-bundle-VARIANT].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Evaluate through an exported bundle (tract, from the WAV files, as the board runs
    /// it) instead of the burn models; the split defaults to the bundle's.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// The bundle variant to evaluate (fp32, int8) [default: the bundle's default].
    #[arg(long, requires = "bundle")]
    variant: Option<String>,
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    inputs: RunInputs,
    /// The split whose trained models are exported.
    #[arg(long, default_value = "random")]
    split: String,
    /// The speech encoder graph the features were extracted with.
    #[arg(long)]
    speech_encoder: PathBuf,
    /// The text encoder graph the features were extracted with.
    #[arg(long)]
    text_encoder: PathBuf,
    /// Its tokenizer.json.
    #[arg(long)]
    tokenizer: PathBuf,
    /// Also put the text encoder in the bundle, for transcripts outside the corpus
    /// vocabulary (the keyword table covers the vocabulary without it).
    #[arg(long)]
    with_text_encoder: bool,
    /// Variants to write and measure; fp32 is always written.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "fp32,int8")]
    variants: Vec<Precision>,
    /// Leave out the keyword spotter trained for the split (`host-trainer keywords`); the
    /// board then takes its text from the kiosk prompt only.
    #[arg(long)]
    no_keyword_spotter: bool,
    /// The bundle directory (replaced whole) [default: beside RUNS, `bundle`].
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct FetchArgs {
    /// The models to fetch, as owner/name [default: facebook/hubert-base-ls960 and
    /// google-bert/bert-base-uncased].
    #[arg(value_name = "MODEL")]
    models: Vec<String>,
    /// Where the models go (one sub-folder each) [default: $EMOTION_ENCODERS, else ~/.cache/emotion-edge/hf].
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Branch, tag, commit or pull-request ref (e.g. refs/pr/2) of the MODELs named
    /// [default: what the folder holds, else main].
    #[arg(long)]
    revision: Option<String>,
    /// Hub URL [default: $HF_ENDPOINT, else https://huggingface.co].
    #[arg(long)]
    endpoint: Option<String>,
    /// Take the files from this folder (copied by hand from a machine with network)
    /// instead of the network: FROM/owner--name/ as `fetch` writes it, or the Hugging Face
    /// cache (FROM/models--owner--name/). Checked, then copied into the cache.
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    /// Download again even when the files are there.
    #[arg(long, conflicts_with = "from")]
    force: bool,
}

#[derive(Subcommand)]
enum EncodersCommand {
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
struct CostArgs {
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

#[derive(Args)]
struct ImportArgs {
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
struct RandomArgs {
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
enum KindArg {
    Hubert,
    Wav2vec2,
    Wavlm,
    Bert,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SizeArg {
    Tiny,
    Base,
    Distil,
}

#[derive(Args)]
struct RunArgs {
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
struct ExtractArgs {
    /// The manifest written by `data scan`.
    #[arg(long, default_value = "out/manifest.csv")]
    manifest: PathBuf,
    /// Speech encoder graph (from `encoders import`).
    #[arg(long)]
    speech_encoder: PathBuf,
    /// Text encoder graph; without it only speech features are extracted.
    #[arg(long, requires = "tokenizer")]
    text_encoder: Option<PathBuf>,
    /// The tokenizer.json of the text encoder.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// The feature cache folder; `features.json` in it indexes the features.
    #[arg(long, default_value = "out/features")]
    cache: PathBuf,
    /// Mean of the selected layers (the study), or every layer kept for a learned weighted sum.
    #[arg(long, value_enum, default_value = "mean")]
    combination: LayerCombination,
    /// Storage precision of the features.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: FeatureDtype,
    /// Parallel workers [default: all cores].
    #[arg(long)]
    jobs: Option<usize>,
    /// Skip the zero-mean / unit-variance normalisation (only for encoders trained without it).
    #[arg(long)]
    no_normalize: bool,
}

#[derive(Args)]
struct ProbeArgs {
    /// The manifest written by `data scan`.
    #[arg(long, default_value = "out/manifest.csv")]
    manifest: PathBuf,
    /// The splits file written by `data split`.
    #[arg(long, default_value = "out/splits.json")]
    splits: PathBuf,
    /// The speech encoder's checkpoint folder (HF layout: config.json, model.safetensors or
    /// pytorch_model.bin),
    /// e.g. as `fetch` writes it.
    #[arg(long)]
    speech_checkpoint: PathBuf,
    /// The text encoder's checkpoint folder, with its tokenizer.json [default: speech only].
    #[arg(long)]
    text_checkpoint: Option<PathBuf>,
    /// Splits to probe on (trained on train + val, scored on test).
    #[arg(long = "split", value_delimiter = ',', default_value = DEFAULT_EVALUATION_SPLITS)]
    split_names: Vec<String>,
    /// Where probe.json and the all-layer graphs go.
    #[arg(long, default_value = "out/probe")]
    out: PathBuf,
    /// Full-batch Adam steps per layer.
    #[arg(long, default_value_t = ProbeConfig::default().steps)]
    steps: usize,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct ReportArgs {
    #[command(flatten)]
    inputs: RunInputs,
    /// The evaluation folder written by `evaluate` [default: RUNS/evaluation].
    #[arg(long)]
    evaluation: Option<PathBuf>,
    /// probe.json written by `probe` [default: out/probe/probe.json when it exists].
    #[arg(long)]
    probe: Option<PathBuf>,
    /// Splits whose models' representations are mapped (t-SNE and PCA of every stage).
    #[arg(
        long = "representations",
        value_delimiter = ',',
        default_value = "random"
    )]
    representation_splits: Vec<String>,
    /// Where report.html, report.md, report.json and figures/ go.
    #[arg(long, default_value = "out/report")]
    out: PathBuf,
}

#[derive(Args)]
struct DemoArgs {
    /// Where every output goes.
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
    /// A corpus folder laid out like the TESS download [default: the embedded synthetic corpus].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seed of the splits.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Real encoder checkpoints, laid out as `fetch` writes them [default: tiny random-weight
    /// encoders made on the spot].
    #[arg(long)]
    encoders: Option<PathBuf>,
    /// A speech checkpoint folder (HF layout: config.json and the weights; HuBERT,
    /// DistilHuBERT, wav2vec2 or WavLM), used instead of the speech encoder of --encoders
    /// or the tiny random one.
    #[arg(long, value_name = "DIR")]
    speech_encoder: Option<PathBuf>,
    /// A text checkpoint folder (HF layout: config.json, the weights and tokenizer.json;
    /// BERT, e.g. all-MiniLM-L6-v2 as `scripts/fetch-real-models.sh` unpacks it), used
    /// instead of the text encoder of --encoders or the tiny random one.
    #[arg(long, value_name = "DIR")]
    text_encoder: Option<PathBuf>,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Find every TESS WAV under DIR and write a manifest (CSV) and a count table.
    ///
    /// Speaker, word and emotion come from each file name (OAF_back_angry.wav), never
    /// from the folder. A file seen twice (the download's duplicated top folder) counts
    /// once; a file whose name does not parse is reported and skipped.
    Scan(ScanArgs),
    /// Make the random, speaker-independent and word-disjoint splits of a manifest.
    Split(SplitArgs),
}

#[derive(Args)]
struct ScanArgs {
    /// The corpus folder [default: the embedded synthetic corpus].
    dir: Option<PathBuf>,
    /// The manifest to write.
    #[arg(long, default_value = "out/manifest.csv")]
    out: PathBuf,
    /// How a word becomes the transcript the text encoder reads; must contain {word}.
    /// The reference study uses the word alone; TESS's carrier phrase is "say the word {word}".
    #[arg(long, default_value = TranscriptTemplate::WORD_ONLY)]
    transcript: TranscriptTemplate,
}

#[derive(Args)]
struct SplitArgs {
    /// The manifest written by `data scan`.
    #[arg(long, default_value = "out/manifest.csv")]
    manifest: PathBuf,
    /// The splits file to write [default: splits.json beside the manifest].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of every shuffle: the same seed gives the same splits on any machine.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Train, validation and test proportions, e.g. 70,15,15 or 0.8,0.1,0.1.
    #[arg(long, default_value = "70,15,15", value_parser = parse_ratios)]
    ratios: [f64; 3],
}

fn main() {
    if let Err(err) = run(Cli::parse()) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Fetch(args) => fetch_encoders(args),
        Command::Train(args) => {
            let config = TrainConfig {
                model: args.model,
                max_epochs: args.epochs,
                patience: args.patience,
                batch_size: args.batch_size,
                learning_rate: args.learning_rate,
                seed: args.seed,
                ..TrainConfig::default()
            };
            train_models(
                &args.inputs,
                &[args.model],
                &[args.split],
                &config,
                args.fresh,
            )
        }
        Command::Keywords(args) => {
            let config = TrainConfig {
                max_epochs: args.epochs,
                patience: args.patience,
                seed: args.seed,
                ..keyword_spotter::default_config()
            };
            let run = train_keyword_spotter(&args.inputs, &args.split, &config)?;
            println!("{}", keyword_spotter::summary_line(&run));
            Ok(())
        }
        Command::Evaluate(args) => match &args.bundle {
            Some(bundle) => evaluate_bundle(&args, bundle),
            None => {
                let out = args
                    .out
                    .unwrap_or_else(|| args.inputs.runs.join("evaluation"));
                evaluate_models(&args.inputs, &args.models, &args.split_names, &out)
            }
        },
        Command::Export(args) => {
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| default_bundle_dir(&args.inputs.runs));
            let encoders = DemoEncoders {
                speech: args.speech_encoder.clone(),
                text: args.text_encoder.clone(),
                tokenizer: args.tokenizer.clone(),
            };
            let options = ExportOptions {
                skip_keyword_spotter: args.no_keyword_spotter,
            };
            export(
                &args.inputs,
                &args.split,
                &encoders,
                args.with_text_encoder,
                &args.variants,
                &options,
                &out,
            )
            .map(drop)
        }
        Command::Encoders(EncodersCommand::Run(args)) => run_encoder(args),
        Command::Encoders(EncodersCommand::Cost(args)) => encoder_cost(args),
        Command::Encoders(EncodersCommand::Import(args)) => {
            let imported = import(&args.checkpoint, args.layers)?;
            imported.write(&args.out)?;
            print_import(&imported, &args.out);
            Ok(())
        }
        Command::Encoders(EncodersCommand::Random(args)) => {
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
        Command::Extract(args) => {
            let settings = ExtractSettings {
                frontend: FrontendConfig {
                    normalize: !args.no_normalize,
                    ..ExtractSettings::default().frontend
                },
                combination: args.combination,
                dtype: args.dtype,
            };
            let text = args.text_encoder.as_deref().zip(args.tokenizer.as_deref());
            extract_features(
                &args.manifest,
                &args.speech_encoder,
                text,
                &args.cache,
                settings,
                args.jobs,
            )
        }
        Command::Demo(args) => demo(args),
        Command::Probe(args) => {
            let config = ProbeConfig {
                steps: args.steps,
                threads: args.threads.unwrap_or(ProbeConfig::default().threads),
                ..ProbeConfig::default()
            };
            probe_layers(
                &args.manifest,
                &args.splits,
                &args.split_names,
                &args.speech_checkpoint,
                args.text_checkpoint.as_deref(),
                &args.out,
                config,
            )
        }
        Command::Report(args) => {
            let evaluation = args
                .evaluation
                .unwrap_or_else(|| args.inputs.runs.join("evaluation"));
            let probe = match args.probe {
                Some(path) => Some(path),
                None => Some(PathBuf::from("out/probe/probe.json")).filter(|p| p.is_file()),
            };
            report(
                &args.inputs,
                &evaluation,
                probe.as_deref(),
                &args.representation_splits,
                &args.out,
            )
        }
        Command::Data(DataCommand::Scan(args)) => {
            scan_corpus(args.dir, &args.out, args.transcript).map(drop)
        }
        Command::Data(DataCommand::Split(args)) => {
            let out = args
                .out
                .unwrap_or_else(|| args.manifest.with_file_name("splits.json"));
            let config = SplitConfig {
                seed: args.seed,
                ratios: args.ratios,
            };
            split_manifest(&args.manifest, &out, config).map(drop)
        }
    }
}

fn demo(args: DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create output folder {}", args.out.display()))?;
    println!("== 1/10 scan the corpus");
    let manifest_path = args.out.join("manifest.csv");
    scan_corpus(args.data, &manifest_path, TranscriptTemplate::default())?;

    println!("\n== 2/10 split it");
    let config = SplitConfig {
        seed: args.seed,
        ..SplitConfig::default()
    };
    split_manifest(&manifest_path, &args.out.join("splits.json"), config)?;

    println!("\n== 3/10 import the encoders");
    let choice = EncoderChoice {
        real: args.encoders.as_deref(),
        speech: args.speech_encoder.as_deref(),
        text: args.text_encoder.as_deref(),
    };
    let (encoders, [speech_checkpoint, text_checkpoint]) =
        prepare_encoders(&choice, &args.out.join("encoders"))?;

    println!("\n== 4/10 extract features");
    let text = Some((encoders.text.as_path(), encoders.tokenizer.as_path()));
    extract_features(
        &manifest_path,
        &encoders.speech,
        text,
        &args.out.join("features"),
        ExtractSettings::default(),
        None,
    )?;

    let inputs = RunInputs {
        manifest: manifest_path,
        splits: args.out.join("splits.json"),
        features: args.out.join("features"),
        runs: args.out.join("runs"),
    };
    let models = [ModelKind::Speech, ModelKind::Text, ModelKind::Fusion];
    // The study's random split and every speaker-independent one (with TESS: both ways).
    let split_names: Vec<String> = SplitSet::read_json(&inputs.splits)?
        .splits
        .iter()
        .filter(|s| !matches!(s.kind, SplitKind::Word))
        .map(|s| s.name.clone())
        .collect();
    println!(
        "\n== 5/10 train the three models on {}",
        split_names.join(", ")
    );
    train_models(
        &inputs,
        &models,
        &split_names,
        &TrainConfig {
            seed: args.seed,
            ..TrainConfig::default()
        },
        false,
    )?;
    println!("\n== 6/10 evaluate on the test parts\n");
    evaluate_models(&inputs, &models, &split_names, &args.out.join("evaluation"))?;

    println!(
        "\n== 7/10 probe every encoder layer on {}",
        split_names.join(", ")
    );
    let probe = args.out.join("probe");
    probe_layers(
        &inputs.manifest,
        &inputs.splits,
        &split_names,
        &speech_checkpoint,
        Some(&text_checkpoint),
        &probe,
        ProbeConfig::default(),
    )?;

    let split = "random".to_string();
    println!("\n== 8/10 train the keyword spotter on the {split} split");
    let config = TrainConfig {
        seed: args.seed,
        ..keyword_spotter::default_config()
    };
    let run = train_keyword_spotter(&inputs, &split, &config)?;
    let t = &run.test;
    println!(
        "keyword spotter: {} words, test accuracy {:.1}% ({} utterances; top-3 {:.1}%, chance {:.1}%)",
        run.model.words().len(),
        100.0 * t.accuracy,
        t.utterances,
        100.0 * t.top3_accuracy,
        100.0 / run.model.words().len() as f64
    );

    println!("\n== 9/10 export the random split's models to a bundle and classify through it\n");
    let bundle = args.out.join("bundle");
    export(
        &inputs,
        &split,
        &encoders,
        true,
        &[Precision::Fp32, Precision::Int8],
        &ExportOptions::default(),
        &bundle,
    )?;
    classify_held_out(&inputs, &split, &bundle, 5)?;

    println!("\n== 10/10 write the report");
    report(
        &inputs,
        &args.out.join("evaluation"),
        Some(&probe.join("probe.json")),
        &[split],
        &args.out.join("report"),
    )?;
    println!("\nEverything is in {}.", args.out.display());
    Ok(())
}

/// Exports the runs of `split` to a bundle in `out` and prints the quantisation report.
fn export(
    inputs: &RunInputs,
    split: &str,
    encoders: &DemoEncoders,
    include_text_encoder: bool,
    precisions: &[Precision],
    options: &ExportOptions,
    out: &Path,
) -> Result<()> {
    let (manifest, splits) = read_inputs(inputs)?;
    let request = ExportRequest {
        manifest: &manifest,
        split: splits.get(split)?,
        splits_id: &splits.id,
        seed: splits.config.seed,
        data: corpus_of(&manifest),
        features: &inputs.features,
        runs: &inputs.runs,
        speech_encoder: &encoders.speech,
        text_encoder: &encoders.text,
        tokenizer: &encoders.tokenizer,
        include_text_encoder,
        precisions: precisions.to_vec(),
        out,
        progress: std::io::stderr().is_terminal(),
    };
    let outcome = export_bundle_with(&request, options)?;
    println!("{}", outcome.report);
    match (&outcome.keyword_spotter, options.skip_keyword_spotter) {
        (Some(spotter), _) => {
            let fp32 = spotter.variants.first().map(|v| &v.evaluation);
            println!(
                "keyword spotter included from {}: {} words, min confidence {:.2}, fp32 test accuracy {:.1}% ({} utterances), max |Δlogit| vs burn {:.1e}",
                spotter.run.display(),
                spotter.words.len(),
                spotter.min_confidence,
                100.0 * fp32.map_or(0.0, |e| e.accuracy),
                fp32.map_or(0, |e| e.utterances),
                spotter.parity.max_logit_difference
            );
        }
        (None, true) => println!(
            "keyword spotter left out (--no-keyword-spotter): the board will rely on the kiosk prompt only"
        ),
        (None, false) => println!(
            "no keyword spotter for split {split} (train one with `host-trainer keywords --split {split}`): the board will rely on the kiosk prompt only"
        ),
    }
    let size: u64 = outcome.manifest.files.iter().map(|f| f.bytes).sum();
    println!(
        "bundle: {} ({} files, {:.1} MB; default variant {}; report in quantization.md)",
        out.display(),
        outcome.manifest.files.len() + 2,
        size as f64 / 1e6,
        outcome.manifest.default_variant
    );
    Ok(())
}

/// Classifies the first `count` test utterances of `split` through the bundle, one line each.
fn classify_held_out(inputs: &RunInputs, split: &str, bundle: &Path, count: usize) -> Result<()> {
    let (manifest, splits) = read_inputs(inputs)?;
    let pipeline = Pipeline::load(bundle, &PipelineOptions::default())?;
    println!(
        "\nheld-out files through the bundle ({} variant, tract, 1 thread):",
        pipeline.variant()
    );
    for id in splits.get(split)?.test.iter().take(count) {
        let Some(entry) = manifest.get(id) else {
            continue;
        };
        let bytes = std::fs::read(&entry.path)
            .with_context(|| format!("cannot read {}", entry.path.display()))?;
        let name = entry.path.display().to_string();
        let result = pipeline.classify_wav(&bytes, &name, TextInput::Keyword(&entry.word), None)?;
        println!(
            "  {:<28} truth {:<17} -> {:<17} {:5.1}%  [{} head, text \"{}\" via {}]  {:.0} ms",
            entry
                .path
                .file_name()
                .map_or(name.clone(), |n| n.to_string_lossy().into_owned()),
            entry.emotion.name(),
            result.emotion.name(),
            100.0 * result.confidence,
            result.model,
            result.transcript.as_deref().unwrap_or(""),
            result.text_source,
            result.timings.total().as_secs_f64() * 1e3
        );
        if pipeline.spotter_words().is_none() {
            continue;
        }
        // The same file without a prompt: the keyword spotter's word, if it is sure.
        let auto = pipeline.classify_wav(&bytes, &name, TextInput::Auto { prompt: None }, None)?;
        if let Some(spotted) = &auto.spotted {
            println!(
                "  {:<28} without a prompt: spotter heard \"{}\" ({:.0}%, {}) -> {} {:.1}% [{} head]",
                "",
                spotted.word,
                100.0 * spotted.confidence,
                if auto.keyword_source == KeywordSource::Spotter {
                    "used"
                } else {
                    "not sure enough: no text"
                },
                auto.emotion.name(),
                100.0 * auto.confidence,
                auto.model
            );
        }
    }
    Ok(())
}

/// `evaluate --bundle`: the bundle's heads over the test part of its split (or those
/// named), through tract.
fn evaluate_bundle(args: &EvaluateArgs, bundle: &Path) -> Result<()> {
    let (manifest, splits) = read_inputs(&args.inputs)?;
    let options = PipelineOptions {
        variant: args.variant.clone(),
        threads: 1,
    };
    let pipeline = Pipeline::load(bundle, &options)?;
    let bundle_manifest = pipeline.bundle().manifest();
    let split_names = if args.split_names == default_evaluation_splits() {
        vec![bundle_manifest.provenance.split.clone()]
    } else {
        args.split_names.clone()
    };
    let models: Vec<ModelKind> = pipeline
        .models()
        .into_iter()
        .filter(|m| args.models.contains(m))
        .collect();
    let mut evaluations = Vec::new();
    for name in &split_names {
        let split = splits.get(name)?;
        let predictions = predict_through_bundle(
            &pipeline,
            &manifest,
            &split.test,
            name,
            &models,
            std::io::stderr().is_terminal(),
        )?;
        evaluations.extend(predictions.into_iter().map(|p| p.evaluation));
    }
    let mut provenance = provenance_of(&args.inputs, &manifest, &splits);
    provenance
        .extra
        .insert("bundle".into(), bundle.display().to_string());
    provenance
        .extra
        .insert("bundle variant".into(), pipeline.variant().to_string());
    let out = args.out.clone().unwrap_or_else(|| {
        args.inputs
            .runs
            .join(format!("evaluation-bundle-{}", pipeline.variant()))
    });
    write_evaluation(&out, &evaluations, &provenance)?;
    println!("{}", comparison_markdown(&evaluations));
    println!(
        "through bundle {} ({} variant); reports: {}",
        bundle.display(),
        pipeline.variant(),
        out.display()
    );
    Ok(())
}

fn default_evaluation_splits() -> Vec<String> {
    DEFAULT_EVALUATION_SPLITS
        .split(',')
        .map(String::from)
        .collect()
}

/// The manifest and splits of a run, checked against each other.
fn read_inputs(inputs: &RunInputs) -> Result<(Manifest, SplitSet)> {
    let manifest = Manifest::read_csv(&inputs.manifest).context("cannot read the manifest")?;
    let splits = SplitSet::read_json(&inputs.splits).context("cannot read the splits")?;
    splits.check(&manifest)?;
    Ok((manifest, splits))
}

/// Trains every model on every split named. Each run checkpoints every epoch into its
/// folder and resumes from a checkpoint left by a killed run (`fresh`: deletes it
/// first); the checkpoint is removed once the model is saved.
fn train_models(
    inputs: &RunInputs,
    models: &[ModelKind],
    split_names: &[String],
    base: &TrainConfig,
    fresh: bool,
) -> Result<()> {
    let (manifest, splits) = read_inputs(inputs)?;
    for name in split_names {
        let split = splits.get(name)?;
        for &model in models {
            let checkpoint = run_dir(&inputs.runs, model, &split.name).join("checkpoint");
            if fresh && remove_checkpoint(&checkpoint)? {
                println!("--fresh: removed the checkpoint {}", checkpoint.display());
            }
            let config = TrainConfig {
                model,
                checkpoint: Some(checkpoint.clone()),
                ..base.clone()
            };
            train_run(&manifest, split, &inputs.features, &inputs.runs, &config)?;
            remove_checkpoint(&checkpoint)?;
        }
    }
    Ok(())
}

/// Trains the keyword spotter on `split` (one line per epoch) and saves it.
fn train_keyword_spotter(
    inputs: &RunInputs,
    split: &str,
    config: &TrainConfig,
) -> Result<keyword_spotter::KeywordRun> {
    let (manifest, splits) = read_inputs(inputs)?;
    keyword_spotter::train_keyword_run(
        &manifest,
        splits.get(split)?,
        &inputs.features,
        &inputs.runs,
        config,
    )
}

/// Evaluates saved runs, writes the reports and prints the comparison table.
fn evaluate_models(
    inputs: &RunInputs,
    models: &[ModelKind],
    split_names: &[String],
    out: &Path,
) -> Result<()> {
    let (manifest, splits) = read_inputs(inputs)?;
    let mut evaluations = Vec::new();
    for name in split_names {
        let split = splits.get(name)?;
        for &model in models {
            evaluations.push(evaluate_run(
                &manifest,
                split,
                &inputs.features,
                &inputs.runs,
                model,
            )?);
        }
    }
    let provenance = provenance_of(inputs, &manifest, &splits);
    let files = write_evaluation(out, &evaluations, &provenance)?;
    println!("{}", comparison_markdown(&evaluations));
    println!(
        "reports: {} (metrics.json, comparison.md, MODEL/SPLIT/report.md)",
        out.display()
    );
    drop(files);
    Ok(())
}

/// Runs the layer probe and prints its table; probe.json goes to `out`.
fn probe_layers(
    manifest: &Path,
    splits: &Path,
    split_names: &[String],
    speech_checkpoint: &Path,
    text_checkpoint: Option<&Path>,
    out: &Path,
    config: ProbeConfig,
) -> Result<()> {
    let manifest = Manifest::read_csv(manifest)?;
    let splits = SplitSet::read_json(splits)?;
    let chosen = split_names
        .iter()
        .map(|name| splits.get(name))
        .collect::<Result<Vec<_>, _>>()?;
    let tokenizer = text_checkpoint.map(|dir| dir.join("tokenizer.json"));
    let request = ProbeRequest {
        manifest: &manifest,
        splits: chosen,
        speech_checkpoint,
        text_checkpoint: text_checkpoint.zip(tokenizer.as_deref()),
        work_dir: out,
        config,
        progress: std::io::stderr().is_terminal(),
    };
    let result = run_probe(&request)?;
    let path = out.join("probe.json");
    result.write(&path)?;
    for probe in &result.probes {
        let layers: Vec<String> = probe
            .layers
            .iter()
            .map(|l| format!("{}:{:.0}", l.layer, 100.0 * l.accuracy))
            .collect();
        let best = probe.best().map_or(String::new(), |b| {
            format!(" best layer {} ({:.1}%)", b.layer, 100.0 * b.accuracy)
        });
        println!(
            "{:<6} {:<20} test accuracy % per layer {}{best}",
            probe.modality,
            probe.split,
            layers.join(" ")
        );
    }
    println!(
        "chance {:.1}%; probe results: {}",
        100.0 * result.chance,
        path.display()
    );
    Ok(())
}

/// Writes the report and says where it is.
fn report(
    inputs: &RunInputs,
    evaluation: &Path,
    probe: Option<&Path>,
    representation_splits: &[String],
    out: &Path,
) -> Result<()> {
    let outcome = write_report(
        &ReportInputs {
            manifest: &inputs.manifest,
            splits: &inputs.splits,
            features: &inputs.features,
            runs: &inputs.runs,
            evaluation,
            probe,
            representation_splits,
            out,
        },
        true,
    )?;
    for s in &outcome.summary.representations {
        println!(
            "{:<7} {:<10} {:<24} silhouette {:>5} (held out {:>5})",
            s.model,
            s.stage,
            s.split,
            format_score(s.silhouette),
            format_score(s.silhouette_held_out)
        );
    }
    if probe.is_none() {
        println!("no layer probe in the report: run `host-trainer probe` first to add one");
    }
    println!(
        "report: {} (opens offline), {}, {} figures in {}",
        outcome.html.display(),
        outcome.markdown.display(),
        outcome.summary.figures.len(),
        out.join("figures").display()
    );
    Ok(())
}

/// Where results came from: corpus, manifest, splits and encoders.
fn provenance_of(inputs: &RunInputs, manifest: &Manifest, splits: &SplitSet) -> Provenance {
    Provenance {
        corpus: corpus_of(manifest),
        manifest: inputs.manifest.display().to_string(),
        splits_file: inputs.splits.display().to_string(),
        splits_id: splits.id.clone(),
        seed: splits.config.seed,
        encoders: FeatureIndex::read(&inputs.features)
            .map(|i| {
                format!(
                    "speech {} layers {:?}, text {} layers {:?}",
                    short(&i.speech_encoder),
                    i.speech_layers,
                    i.text_encoder.as_deref().map_or("none", short),
                    i.text_layers
                )
            })
            .unwrap_or_default(),
        extra: Default::default(),
    }
}

/// The corpus folder: the grandparent of the manifest's first file.
fn corpus_of(manifest: &Manifest) -> String {
    manifest
        .entries()
        .first()
        .and_then(|e| e.path.parent()?.parent().map(|p| p.display().to_string()))
        .unwrap_or_default()
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// Which encoder checkpoints the demo imports: `real` laid out as `fetch` writes them
/// (else tiny random-weight ones), each modality overridden by its own folder when given.
struct EncoderChoice<'a> {
    /// `--encoders`: the root `fetch` writes into.
    real: Option<&'a Path>,
    /// `--speech-encoder`: a speech checkpoint folder.
    speech: Option<&'a Path>,
    /// `--text-encoder`: a text checkpoint folder, with its tokenizer.json.
    text: Option<&'a Path>,
}

/// The encoder graphs the demo uses.
struct DemoEncoders {
    speech: PathBuf,
    text: PathBuf,
    tokenizer: PathBuf,
}

/// Imports the real checkpoints found in `choice.real` (laid out as `fetch` writes them),
/// or tiny random-weight ones made here, into `dir`, with the speech or text checkpoint
/// replaced by `choice.speech` / `choice.text` when given; also returns the speech and
/// text checkpoint folders (the probe imports every layer of them).
fn prepare_encoders(
    choice: &EncoderChoice<'_>,
    dir: &Path,
) -> Result<(DemoEncoders, [PathBuf; 2])> {
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
    let encoders = DemoEncoders {
        speech,
        text,
        tokenizer: text_checkpoint.join("tokenizer.json"),
    };
    Ok((encoders, [speech_checkpoint, text_checkpoint]))
}

fn scan_corpus(
    dir: Option<PathBuf>,
    out: &Path,
    transcript: TranscriptTemplate,
) -> Result<Manifest> {
    let dir = match dir {
        Some(dir) => dir,
        None => default_corpus_dir().map_err(anyhow::Error::msg)?,
    };
    let options = ScanOptions {
        transcript,
        progress: std::io::stderr().is_terminal(),
    };
    let report = scan(&dir, &options)?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    let manifest = report.manifest;
    manifest
        .write_csv(out)
        .with_context(|| format!("cannot write the manifest to {}", out.display()))?;

    let mut rates: BTreeMap<u32, usize> = BTreeMap::new();
    for entry in manifest.entries() {
        *rates.entry(entry.sample_rate).or_default() += 1;
    }
    let rates: Vec<String> = rates
        .iter()
        .map(|(r, n)| format!("{n} at {r} Hz"))
        .collect();
    let durations = manifest.entries().iter().map(|e| e.duration_s);
    let shortest = durations.clone().fold(f64::INFINITY, f64::min);
    let longest = durations.fold(0.0, f64::max);
    println!(
        "{}: {} utterances ({}; {shortest:.2}–{longest:.2} s), {} duplicate files counted once, {} skipped",
        dir.display(),
        manifest.len(),
        rates.join(", "),
        report.duplicates,
        report.warnings.len(),
    );
    println!("\n{}", manifest.counts().to_markdown());
    println!("manifest: {}", out.display());
    Ok(manifest)
}

fn split_manifest(manifest_path: &Path, out: &Path, config: SplitConfig) -> Result<SplitSet> {
    let manifest = Manifest::read_csv(manifest_path).context("cannot read the manifest")?;
    let set = SplitSet::make(&manifest, config)?;
    set.check(&manifest)
        .context("internal error: the splits just made break a promise")?;
    set.write_json(out)
        .with_context(|| format!("cannot write the splits to {}", out.display()))?;
    println!(
        "splits {} (seed {}, ratios {:?}) of {} utterances:\n",
        set.id,
        config.seed,
        config.ratios,
        manifest.len()
    );
    println!("{}", set.summary_markdown(&manifest));
    println!("splits: {}", out.display());
    Ok(set)
}

fn fetch_encoders(args: FetchArgs) -> Result<()> {
    let cache = args.cache.unwrap_or_else(default_encoder_cache);
    let known = || {
        KNOWN_MODELS
            .iter()
            .map(RemoteModel::repo_id)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let models: Vec<RemoteModel> = if args.models.is_empty() {
        if let Some(revision) = &args.revision {
            anyhow::bail!(
                "--revision {revision} names a revision of one repository: name the model too, \
                 e.g. `host-trainer fetch {} --revision {revision}`",
                HUBERT_BASE.repo_id()
            );
        }
        vec![HUBERT_BASE, BERT_BASE]
    } else {
        args.models
            .iter()
            .map(|id| {
                RemoteModel::find(id)
                    .with_context(|| format!("`fetch` knows {}, not {id}", known()))
            })
            .collect::<Result<_>>()?
    };
    let endpoint = args
        .endpoint
        .or_else(|| std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    let options = FetchOptions {
        endpoint,
        token: std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()),
        revision: args.revision,
        from: args.from,
        force: args.force,
        progress: std::io::stderr().is_terminal(),
        ..FetchOptions::default()
    };
    // Every model is tried, so that one message lists everything to fetch by hand.
    let mut failures: Vec<FetchError> = Vec::new();
    for model in models {
        match fetch(&model, &cache, &options) {
            Ok(fetched) => {
                let record = &fetched.record;
                let checked: Vec<String> = record
                    .files
                    .iter()
                    .map(|f| format!("{} ({})", f.name, f.checked.describe()))
                    .collect();
                println!(
                    "{} at {}{}: {} — {}",
                    record.repo,
                    record.revision.as_deref().unwrap_or("an unknown revision"),
                    record
                        .commit
                        .as_deref()
                        .map_or(String::new(), |c| format!(" ({})", short(c))),
                    fetched.dir.display(),
                    checked.join(", ")
                );
            }
            Err(e) => failures.push(e),
        }
    }
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0).into()),
        _ => {
            let text: Vec<String> = failures.iter().map(ToString::to_string).collect();
            anyhow::bail!("{}", text.join("\n\n"))
        }
    }
}

/// `$EMOTION_ENCODERS`, else `$XDG_CACHE_HOME/emotion-edge/hf`, else `~/.cache/emotion-edge/hf`.
fn default_encoder_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("EMOTION_ENCODERS") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("emotion-edge").join("hf")
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

fn extract_features(
    manifest_path: &Path,
    speech_encoder: &Path,
    text: Option<(&Path, &Path)>,
    cache_dir: &Path,
    settings: ExtractSettings,
    jobs: Option<usize>,
) -> Result<()> {
    let manifest = Manifest::read_csv(manifest_path).context("cannot read the manifest")?;
    let extractor = Extractor::new(speech_encoder, text, settings)?;
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let cache = FeatureCache::new(cache_dir);
    let progress = std::io::stderr().is_terminal();
    let (index, report) = extract(&extractor, &manifest, &[], &cache, jobs, progress)?;
    if report.stale_temp_files > 0 {
        println!(
            "removed {} unfinished temporary file(s) left in {} by an interrupted run",
            report.stale_temp_files,
            cache_dir.display()
        );
    }
    if report.repaired > 0 {
        eprintln!(
            "warning: {} cached feature file(s) did not decode and were computed again",
            report.repaired
        );
    }
    for (id, reason) in &report.failures {
        eprintln!("warning: {id} skipped: {reason}");
    }
    println!(
        "features of {} utterances in {:.1} s with {jobs} workers: speech {} computed ({:.1} s of audio, real-time factor {:.3}), {} cached; transcripts {} computed, {} cached{}",
        index.entries.len(),
        report.seconds,
        report.speech_computed,
        report.audio_seconds,
        report.seconds / report.audio_seconds.max(1e-9),
        report.speech_cached,
        report.text_computed,
        report.text_cached,
        if report.failures.is_empty() {
            String::new()
        } else {
            format!("; {} failed", report.failures.len())
        },
    );
    println!("index: {}", FeatureIndex::path_in(cache_dir).display());
    if !report.failures.is_empty() {
        anyhow::bail!(
            "{} utterances could not be extracted (named above); fix or remove them and run again: finished features are kept",
            report.failures.len()
        );
    }
    Ok(())
}

/// `encoders cost`: each graph (and its int8 variant) timed on each clip length.
fn encoder_cost(args: CostArgs) -> Result<()> {
    use host_trainer::encoders::cost::{CostOptions, graph_facts, int8_variant, measure};
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

/// Parses `70,15,15`, `70/15/15` or `0.7,0.15,0.15`.
fn parse_ratios(text: &str) -> Result<[f64; 3], String> {
    let parts: Vec<&str> = text.split([',', '/', ':']).map(str::trim).collect();
    let numbers: Vec<f64> = parts
        .iter()
        .map(|p| p.parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("'{text}' is not three numbers like 70,15,15"))?;
    let ratios: [f64; 3] = numbers
        .try_into()
        .map_err(|_| format!("'{text}' needs exactly three numbers: train,val,test"))?;
    if ratios.iter().any(|r| !r.is_finite() || *r < 0.0) || ratios.iter().sum::<f64>() <= 0.0 {
        return Err(format!(
            "'{text}': ratios must be non-negative and not all zero"
        ));
    }
    Ok(ratios)
}
