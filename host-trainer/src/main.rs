//! `host-trainer`: the host's command line. It parses arguments and dispatches to the
//! workflows in `host_trainer::commands`, which add context a user can act on to errors.

use anyhow::Result;
use clap::{Parser, Subcommand};
use host_trainer::commands::{
    bundle, data, demo, encoders, evaluate, export, extract, fetch, keygen, report, train,
};

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
    /// Run the whole job on the embedded synthetic corpus: scan, split, import the encoders,
    /// extract features, train the three models, evaluate and compare, probe every encoder
    /// layer, train the keyword spotter, export a bundle, classify through it, report.
    Demo(demo::DemoArgs),
    /// Corpus work: scan corpora (TESS, RAVDESS, CREMA-D, SAVEE, EmoDB, CSV) into a manifest, split it.
    #[command(subcommand)]
    Data(data::DataCommand),
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
    Fetch(fetch::FetchArgs),
    /// Encoder graphs: import an HF checkpoint, run a graph, make random checkpoints.
    #[command(subcommand)]
    Encoders(encoders::EncodersCommand),
    /// Front-end + encoders over a manifest; features cached (only missing ones computed).
    Extract(extract::ExtractArgs),
    /// Train one model (speech, text or fusion) on one split; early stopping on validation macro-F1.
    Train(train::TrainArgs),
    /// Train the keyword spotter on one split: which vocabulary word was said, from the
    /// speech features, so the board needs no prompt; its threshold chosen on validation.
    /// "Not a keyword" is learnt from held-out vocabulary words and, when the real-speech
    /// set is there, recorded speech without a vocabulary word; its threshold is chosen
    /// for a false-accept rate of at most 1 % on recorded speech of other speakers.
    Keywords(train::KeywordArgs),
    /// Evaluate trained models on the test parts of their splits: reports, comparison, metrics.json.
    Evaluate(evaluate::EvaluateArgs),
    /// Probe every layer of the encoders with a linear classifier: which layers hold the
    /// emotion (HuBERT 1–12, BERT's layers), per split; writes probe.json.
    Probe(evaluate::ProbeArgs),
    /// Write the report (HTML, opens offline, and Markdown) comparing the three models: table,
    /// per-class F1, confusions, curves, errors, t-SNE/PCA maps, silhouettes, probe, provenance.
    Report(report::ReportArgs),
    /// Pack one split's trained heads (and keyword spotter, when trained), their encoders and
    /// the Silero VAD into a bundle for the board (fp32 and int8, measured; a default chosen).
    Export(export::ExportArgs),
    /// Work on an exported bundle: `add-vad` puts the voice-activity detector in, `sign`
    /// signs it.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Make a key pair to sign bundles with (minisign's format): the secret key stays
    /// here, boards given the public key run only bundles it signed.
    Keygen(keygen::KeygenArgs),
}

fn main() {
    if let Err(err) = run(Cli::parse()) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Data(command) => data::run(command),
        Command::Fetch(args) => fetch::run(args),
        Command::Encoders(command) => encoders::run(command),
        Command::Extract(args) => extract::run(args),
        Command::Train(args) => train::train(args),
        Command::Keywords(args) => train::keywords(args),
        Command::Evaluate(args) => evaluate::evaluate(args),
        Command::Probe(args) => evaluate::probe(args),
        Command::Report(args) => report::run(args),
        Command::Export(args) => export::run(args),
        Command::Bundle(command) => bundle::run(command),
        Command::Keygen(args) => keygen::run(args),
    }
}
