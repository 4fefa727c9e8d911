//! `emotion-edge`: the board's command line, a thin layer over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use emotion_core::bundle::Bundle;
use emotion_core::head_graph::ModelKind;
use emotion_core::{Frontend, FrontendConfig, Pipeline, PipelineOptions};
use emotion_edge::audio::source;
use emotion_edge::bench::{self, BenchOptions};
use emotion_edge::board::{self, BoardProfile, DisplayKind};
use emotion_edge::classify::{TextChoice, classify_file, wav_files};
use emotion_edge::cpu;
use emotion_edge::display::Display;
use emotion_edge::display::terminal::TerminalDisplay;
use emotion_edge::display::web::WebDisplay;
use emotion_edge::display::wiring::HardwareDisplays;
use emotion_edge::inspect::inspect_file;
use emotion_edge::listen::listen;
use emotion_edge::locate::{self, bundle_dir};
use emotion_edge::mqtt::{self, MqttOutput};
use emotion_edge::output;
use emotion_edge::segmenter::{SegmenterConfig, SegmenterKind};
use emotion_edge::settings::{self, DisplaySettings, ListenFlags, MqttFlags, TextFlags};
use emotion_edge::variant_choice::{self, Choice, ChoiceInputs, ChoiceSource};
use serde_json::{Map, json};

/// Recognise emotion from speech on the board: classify WAV files, or listen to a
/// microphone (or a file, or stdin) and show the emotion of each utterance live.
///
/// The models come from a bundle made by `host-trainer export` (or `host-trainer
/// demo`). Without --bundle it is looked for in $EMOTION_EDGE_BUNDLE, then
/// ./out/demo/bundle, then /var/lib/emotion-edge/bundle, then ./data/demo-bundle (the
/// repository's demo bundle).
///
/// On a Raspberry Pi, `--board pi4` (pi5, zero2w, pi3; see `emotion-edge boards`) sets
/// the threads, variant, microphone and displays that suit it; flags given win.
///
/// The variant (fp32, int8) is picked on this machine, never from the bundle's default
/// (which the export machine chose partly from its own timing): --variant, else the
/// board profile's, else the fastest measured here by `emotion-edge bench --choose`, else
/// a rule for this CPU's class. `classify` and `listen` say on stderr which and why.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify WAV files (folders are searched recursively): one line per file with
    /// the emotion, confidence, the 7 probabilities, the keyword used and the latency.
    Classify {
        /// WAV files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        bundle: BundleArgs,
        #[command(flatten)]
        text: TextArgs,
        /// Use the word in TESS-style file names (`OAF_back_angry.wav` → `back`).
        #[arg(long, conflicts_with_all = ["keyword", "transcript", "no_text", "prompt"])]
        keyword_from_name: bool,
        /// One JSON object per line (JSON Lines).
        #[arg(long)]
        json: bool,
    },
    /// Listen and show the emotion of each utterance until Ctrl-C (or the end of a
    /// file or stdin source).
    Listen(ListenArgs),
    /// List the audio input devices (needs the `mic` build feature).
    Devices,
    /// List the board profiles `--board` takes, or show one in full.
    Boards {
        /// A profile to show in full (its TOML, with the wiring comments).
        name: Option<String>,
    },
    /// Per-stage latency, real-time factor and peak memory of a bundle, 1..N threads,
    /// on this CPU (named above the table and in each JSON row). With --board, also
    /// whether the peak memory fits that board's service limit.
    ///
    /// With --choose: measure every variant of the bundle instead, at the board's
    /// threads (or --threads), and record the fastest in the choice file, which
    /// `listen` and `classify` then follow on this machine (unless --variant or a board
    /// profile pins a variant).
    Bench {
        #[command(flatten)]
        bundle: BundleArgs,
        /// Measure each variant and record the fastest for this CPU and bundle (in
        /// --choice-file, default variant-choice.json in the bundle directory).
        #[arg(long, conflicts_with_all = ["variant", "threads_list"])]
        choose: bool,
        /// Thread counts to measure (default: 1 up to the number of cores).
        #[arg(long = "threads-list", value_delimiter = ',', value_parser = settings::thread_count)]
        threads_list: Vec<usize>,
        /// A WAV file to classify instead of the synthetic clip.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Length of the synthetic clip in seconds.
        #[arg(long, default_value_t = 2.0)]
        seconds: f32,
        /// Sample rate of the synthetic clip (a microphone's rate, so resampling counts).
        #[arg(long, default_value_t = 48_000)]
        rate: u32,
        /// Timed runs per thread count or variant (the median is shown) [default: 10;
        /// 5 with --choose].
        #[arg(long)]
        repeats: Option<usize>,
        /// Untimed runs first.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// One JSON object per row instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Put WAV files through the shared front-end (decode, mono, resample to 16 kHz,
    /// normalise) and describe each; a bad file is reported and the rest go on.
    Inspect {
        /// WAV files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Longest clip accepted, in seconds.
        #[arg(long, default_value_t = FrontendConfig::default().max_seconds)]
        max_seconds: f32,
    },
}

/// Which board, which bundle, which variant, how many threads.
#[derive(Args)]
struct BundleArgs {
    /// A board profile (pi4, pi5, zero2w, pi3, or a .toml file): its threads, variant,
    /// microphone and displays become the defaults.
    #[arg(long)]
    board: Option<String>,
    /// The bundle directory (see the top-level help for where it is looked for).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// The variant (fp32, int8, …) [default: the board's, else the fastest measured
    /// here by `bench --choose`, else the rule for this CPU's class; never the bundle's
    /// default].
    #[arg(long)]
    variant: Option<String>,
    /// Threads for the matrix products, 1 to 64 [default: the board's, else the cores up
    /// to 4].
    #[arg(long, value_parser = settings::thread_count)]
    threads: Option<usize>,
    /// The variant measurement `bench --choose` writes and the others read [default:
    /// variant-choice.json in the bundle directory].
    #[arg(long, value_name = "PATH")]
    choice_file: Option<PathBuf>,
    /// Run only a bundle signed by one of the minisign public keys (*.pub) in DIR
    /// [default: /etc/emotion-edge/trusted-keys when it exists; without keys a bundle is
    /// held to its checksums only].
    #[arg(long, value_name = "DIR")]
    trusted_keys: Option<PathBuf>,
}

impl BundleArgs {
    /// The board profile, when one is named (a note goes to stderr when it is for
    /// another CPU than this binary's).
    fn board(&self) -> anyhow::Result<Option<BoardProfile>> {
        let Some(name) = &self.board else {
            return Ok(None);
        };
        let profile = board::load(name)?;
        if let Some(note) = profile.arch_note() {
            eprintln!("{note}");
        }
        Ok(Some(profile))
    }

    /// The bundle directory (see `locate`), its signature checked when this board
    /// trusts keys.
    fn dir(&self) -> anyhow::Result<PathBuf> {
        let dir = bundle_dir(self.bundle.as_deref()).map_err(anyhow::Error::msg)?;
        locate::trusted_keys(self.trusted_keys.as_deref())?.check_bundle(&dir)?;
        Ok(dir)
    }

    /// Threads: the flag, then the board, then the cores up to 4.
    fn threads(&self, board: Option<&BoardProfile>) -> usize {
        settings::threads(self.threads, board, cores())
    }

    /// The variant for the bundle in `dir` on this machine, and why (see
    /// `emotion_edge::variant_choice`).
    fn choose_variant(&self, dir: &Path, board: Option<&BoardProfile>) -> anyhow::Result<Choice> {
        let cpu = cpu::detect();
        if let Some(fatal) = cpu.fatal_isa() {
            anyhow::bail!("{fatal}");
        }
        for note in &cpu.notes {
            eprintln!("note: {note}");
        }
        let bundle = Bundle::open(dir)
            .with_context(|| format!("cannot load the bundle {}", dir.display()))?;
        let digest = bench::manifest_digest(dir)?;
        let record = variant_choice::read_record(&variant_choice::record_path(
            dir,
            self.choice_file.as_deref(),
        ));
        Ok(variant_choice::choose(&ChoiceInputs {
            flag: self.variant.as_deref(),
            board: board.map(|b| (b.name.as_str(), b.variant.as_deref())),
            cpu: &cpu,
            manifest: bundle.manifest(),
            manifest_sha256: &digest,
            record: &record,
        })?)
    }

    /// The variant (said on stderr, with why) and threads to load the bundle in `dir` with.
    fn options(&self, dir: &Path, board: Option<&BoardProfile>) -> anyhow::Result<PipelineOptions> {
        let choice = self.choose_variant(dir, board)?;
        eprintln!("{}", choice.line());
        Ok(PipelineOptions {
            variant: Some(choice.variant),
            threads: self.threads(board),
        })
    }
}

/// The text that goes with the speech.
#[derive(Args)]
struct TextArgs {
    /// The word the speaker was asked to say (filled into the bundle's transcript
    /// template). Without it the bundle's keyword spotter picks the word, or, when it
    /// is unsure, the speech-only head answers.
    #[arg(long)]
    prompt: Option<String>,
    /// This keyword for every utterance (no spotter).
    #[arg(long, conflicts_with_all = ["prompt", "transcript", "no_text"])]
    keyword: Option<String>,
    /// This whole transcript for every utterance (needs a bundle with a text encoder
    /// unless it is a known keyword's transcript).
    #[arg(long, conflicts_with_all = ["prompt", "no_text"])]
    transcript: Option<String>,
    /// No text at all: the speech-only head answers.
    #[arg(long, conflicts_with = "prompt")]
    no_text: bool,
    /// The head to use (speech, text, fusion); chosen from the text when absent.
    #[arg(long, value_enum)]
    model: Option<ModelKind>,
}

impl TextArgs {
    fn choice(&self, keyword_from_name: bool) -> TextChoice {
        settings::text_choice(&TextFlags {
            prompt: self.prompt.clone(),
            keyword: self.keyword.clone(),
            transcript: self.transcript.clone(),
            no_text: self.no_text,
            keyword_from_name,
        })
    }
}

#[derive(Args)]
struct ListenArgs {
    #[command(flatten)]
    bundle: BundleArgs,
    /// Where the audio comes from: `mic` (the default input), `mic:NAME` (a device
    /// whose name contains NAME; see `emotion-edge devices`), `-` (a WAV stream on
    /// stdin, e.g. from `arecord -t wav`), or a WAV file [default: the board's, else
    /// mic].
    #[arg(long)]
    source: Option<String>,
    /// Read a file or stdin as fast as possible instead of in real time.
    #[arg(long)]
    fast: bool,
    /// The word the kiosk asks for (the display shows it; the transcript uses it).
    #[arg(long, conflicts_with = "prompt_cycle")]
    prompt: Option<String>,
    /// Ask for the bundle's keywords in turn, the next one after each utterance.
    #[arg(long)]
    prompt_cycle: bool,
    /// No text at all: the speech-only head answers (no prompt, no keyword spotter).
    #[arg(long, conflicts_with_all = ["prompt", "prompt_cycle"])]
    no_text: bool,
    /// The head to use (speech, text, fusion); chosen from the text when absent.
    #[arg(long, value_enum)]
    model: Option<ModelKind>,
    /// One JSON object per utterance on stdout (instead of the terminal display).
    #[arg(long)]
    json: bool,
    /// Where the emotion is shown, a comma list [default: the board's, else terminal].
    /// `web` serves the kiosk page (see --web-port).
    #[arg(long, value_enum, value_delimiter = ',')]
    display: Vec<DisplayKind>,
    /// Port of the kiosk page (`--display web`); 0 picks a free one [default: the
    /// board's, else 8080].
    #[arg(long)]
    web_port: Option<u16>,
    /// Address the kiosk page listens on. Keep the loopback unless the page must be seen
    /// from other machines: it has no authentication.
    #[arg(long, default_value = "127.0.0.1")]
    web_bind: std::net::IpAddr,
    #[command(flatten)]
    hardware: HardwareArgs,
    /// How utterances are found: `silero` (the neural VAD the bundle carries), `energy`
    /// (a level above the noise floor; no model), or `auto` (silero when the bundle
    /// carries it, else energy).
    #[arg(long, value_enum, default_value_t = SegmenterKind::default())]
    segmenter: SegmenterKind,
    /// Energy segmenter: speech must be this many dB above the noise floor.
    #[arg(long, default_value_t = SegmenterConfig::default().threshold_db)]
    threshold_db: f32,
    /// Silence that ends an utterance, ms.
    #[arg(long, default_value_t = SegmenterConfig::default().hangover_ms)]
    hangover_ms: f32,
    /// Shortest utterance kept, ms.
    #[arg(long, default_value_t = SegmenterConfig::default().min_utterance_ms)]
    min_utterance_ms: f32,
    /// Longest utterance; longer speech is cut and classified in pieces, ms.
    #[arg(long, default_value_t = SegmenterConfig::default().max_utterance_ms)]
    max_utterance_ms: f32,
    /// Utterances that may wait for inference; beyond that the oldest is dropped.
    #[arg(long, default_value_t = 4)]
    queue: usize,
    /// Seconds of audio the capture ring holds.
    #[arg(long, default_value_t = 2.0)]
    ring_seconds: f32,
    #[command(flatten)]
    mqtt: MqttArgs,
}

/// Publishing each reading over MQTT, with Home Assistant discovery (see
/// docs/board-guide.md). A board profile's [mqtt] gives the same settings; flags win.
#[derive(Args)]
struct MqttArgs {
    /// Publish each reading to this broker: mqtt://HOST[:PORT] (1883) or
    /// mqtts://HOST[:PORT] (TLS, 8883). No user name or password here: see
    /// --mqtt-credentials [default: the board's [mqtt] url, else off].
    #[arg(long, value_name = "URL")]
    mqtt: Option<String>,
    /// A file holding the broker login, two TOML lines: username = "…" and
    /// password = "…" (chmod 600).
    #[arg(long, value_name = "FILE")]
    mqtt_credentials: Option<PathBuf>,
    /// The CA certificate(s) (PEM) that sign a TLS broker's certificate [default: the
    /// system's CA store].
    #[arg(long, value_name = "FILE")]
    mqtt_ca: Option<PathBuf>,
    /// This kiosk's id in the topics (emotion-edge/ID/…) and in Home Assistant, of
    /// A-Z a-z 0-9 _ - [default: the host name].
    #[arg(long, value_name = "ID")]
    mqtt_device: Option<String>,
    /// Readings kept, in order, while the broker is unreachable; beyond that the oldest
    /// waiting is dropped and counted [default: the board's, else 1000].
    #[arg(long, value_name = "N")]
    mqtt_buffer: Option<usize>,
    /// Also keep the waiting readings on disk in this folder, one file each until the
    /// broker has it, so a power cut or crash loses none; the next run sends them first
    /// [default: the board's, else memory only].
    #[arg(long, value_name = "DIR")]
    mqtt_spool: Option<PathBuf>,
}

/// The wiring of the OLED and LED (`--display oled,led`; the `hardware` build feature, on
/// by default). Giving one of these also turns its display on.
#[derive(Args)]
struct HardwareArgs {
    /// The SSD1306 OLED's I2C bus number (/dev/i2c-BUS) [default: the board's, else 1].
    #[arg(long)]
    oled_bus: Option<u32>,
    /// The OLED's I2C address, 0x3c or 0x3d [default: the board's, else 0x3c].
    #[arg(long, value_parser = parse_address)]
    oled_address: Option<u8>,
    /// The RGB LED's three sysfs PWM outputs, `CHIP:CHANNEL` each, red,green,blue
    /// (e.g. `0:0,0:1,0:2`) [default: the board's].
    #[arg(long, value_delimiter = ',')]
    led: Vec<String>,
    /// The LED's common leg is on 3.3 V (a channel lights when low).
    #[arg(long)]
    led_common_anode: bool,
}

fn parse_address(text: &str) -> Result<u8, String> {
    let digits = text.trim_start_matches("0x").trim_start_matches("0X");
    u8::from_str_radix(digits, 16).map_err(|_| format!("`{text}` is not an I2C address like 0x3c"))
}

/// This machine's cores.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`emotion-edge boards | head`)
    // would panic; the default action ends the process quietly, as other tools do.
    // SAFETY: called first thing, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Every large block a graph load frees goes back to the system at once, rather than
    // staying resident in the heap (docs/results/memory-levers.md). A threshold the
    // user set for glibc (`MALLOC_MMAP_THRESHOLD_`) wins.
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        emotion_core::memory::release_large_blocks();
    }
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Classify {
            paths,
            bundle,
            text,
            keyword_from_name,
            json,
        } => classify(
            &paths,
            &bundle,
            &text.choice(keyword_from_name),
            text.model,
            json,
        ),
        Command::Listen(args) => listen_command(args),
        Command::Devices => devices(),
        Command::Boards { name } => boards(name.as_deref()),
        Command::Bench {
            bundle,
            choose,
            threads_list,
            file,
            seconds,
            rate,
            repeats,
            warmup,
            json,
        } => bench_command(
            &bundle,
            choose,
            threads_list,
            BenchOptions {
                variant: None,
                threads: Vec::new(),
                file,
                seconds,
                rate,
                warmup,
                repeats: settings::bench_repeats(repeats, choose),
            },
            json,
        ),
        Command::Inspect {
            files,
            json,
            max_seconds,
        } => Ok(inspect(&files, json, max_seconds)),
    }
}

fn load(args: &BundleArgs, board: Option<&BoardProfile>) -> anyhow::Result<Pipeline> {
    let dir = args.dir()?;
    Pipeline::load(&dir, &args.options(&dir, board)?)
        .with_context(|| format!("cannot load the bundle {}", dir.display()))
}

/// `emotion-edge bench`: the chosen variant at each thread count, or with `choose` every
/// variant at one thread count, recorded; then, with --board, whether the memory fits.
fn bench_command(
    args: &BundleArgs,
    choose: bool,
    threads_list: Vec<usize>,
    mut options: BenchOptions,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let board = args.board()?;
    let dir = args.dir()?;
    let progress = &mut |what: &str| eprintln!("measuring {what}…");
    let mut chosen = None;
    let rows = if choose {
        let path = variant_choice::record_path(&dir, args.choice_file.as_deref());
        variant_choice::check_writable(&path)?;
        let threads = args.threads(board.as_ref());
        let rows = bench::run_each_variant(&dir, &options, threads, progress)?;
        let manifest = Bundle::open(&dir)
            .with_context(|| format!("cannot load the bundle {}", dir.display()))?
            .manifest()
            .clone();
        let record = bench::choice_record(&dir, &manifest, &rows, options.repeats)?;
        variant_choice::write_record(&path, &record)?;
        let medians: Vec<String> = record
            .variants
            .iter()
            .map(|t| format!("{} {:.1} ms", t.variant, t.median_ms))
            .collect();
        chosen = Some((
            format!(
                "{} ({}: medians of encoder, text and head)",
                record.fastest,
                medians.join(", ")
            ),
            path,
        ));
        rows
    } else {
        options.threads = settings::bench_threads(threads_list, cores());
        options.variant = args.options(&dir, board.as_ref())?.variant;
        bench::run(&dir, &options, progress)?
    };
    // Lines after the table go to stderr with --json, so stdout stays JSON Lines.
    let mut after: Vec<String> = Vec::new();
    if json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
    } else {
        println!("bundle {}", dir.display());
        print!("{}", bench::table(&rows));
    }
    let mut loaded: Option<String> = None;
    if let Some((fastest, path)) = &chosen {
        after.push(format!(
            "fastest here: {fastest}; recorded in {} for this CPU and bundle",
            path.display()
        ));
        // What `listen` and `classify` will now load, with the same flags.
        let picked = args.choose_variant(&dir, board.as_ref())?;
        loaded = Some(picked.variant.clone());
        match &picked.source {
            ChoiceSource::Measured(_) => after.push(format!(
                "`listen` and `classify` load {} here from now on{}",
                picked.variant,
                if args.choice_file.is_some() {
                    " when given the same --choice-file"
                } else {
                    ""
                }
            )),
            _ => after.push(picked.line()),
        }
    }
    if let Some(board) = &board {
        // The variant the board will run when `--choose` measured several, else them all.
        let runs = |r: &&bench::BenchRow| loaded.as_ref().is_none_or(|v| &r.variant == v);
        let peak = rows
            .iter()
            .filter(runs)
            .filter_map(|r| r.peak_rss_mb)
            .fold(None, |max: Option<f64>, mb| {
                Some(max.map_or(mb, |m| m.max(mb)))
            });
        after.push(match peak {
            Some(peak) => board.memory_fit(peak),
            None => "memory: the peak RSS could not be read here (no /proc/self/status)".into(),
        });
    }
    for line in after {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// SIGINT and SIGTERM set the returned flag; the loops look at it.
fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the signal handlers")?;
    }
    Ok(stop)
}

fn classify(
    paths: &[PathBuf],
    bundle: &BundleArgs,
    text: &TextChoice,
    model: Option<ModelKind>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (files, warnings) = wav_files(paths).map_err(anyhow::Error::msg)?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let pipeline = load(bundle, bundle.board()?.as_ref())?;
    let stop = stop_flag()?;
    let mut failures = 0;
    for (done, file) in files.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            eprintln!("stopped after {done} of {} files", files.len());
            return Ok(ExitCode::from(130));
        }
        match classify_file(&pipeline, file, text, model) {
            Ok(result) if json => {
                let mut extra = Map::new();
                extra.insert("file".into(), json!(file.display().to_string()));
                println!("{}", output::json(extra, &result));
            }
            Ok(result) => println!("{}: {}", file.display(), output::line(&result)),
            Err(error) => {
                failures += 1;
                // `classify_file`'s errors name the file.
                eprintln!("error: {error:#}");
            }
        }
    }
    if failures > 0 {
        eprintln!(
            "{failures} of {} files could not be classified",
            files.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

impl ListenArgs {
    /// What the command line gave, for [`settings::listen`].
    fn flags(&self) -> ListenFlags {
        ListenFlags {
            source: self.source.clone(),
            fast: self.fast,
            prompt: self.prompt.clone(),
            prompt_cycle: self.prompt_cycle,
            no_text: self.no_text,
            model: self.model,
            json: self.json,
            display: self.display.clone(),
            web_port: self.web_port,
            web_bind: self.web_bind,
            oled_bus: self.hardware.oled_bus,
            oled_address: self.hardware.oled_address,
            led: self.hardware.led.clone(),
            led_common_anode: self.hardware.led_common_anode,
            segmenter: SegmenterConfig {
                threshold_db: self.threshold_db,
                hangover_ms: self.hangover_ms,
                min_utterance_ms: self.min_utterance_ms,
                max_utterance_ms: self.max_utterance_ms,
                ..SegmenterConfig::default()
            },
            segmenter_kind: self.segmenter,
            queue: self.queue,
            ring_seconds: self.ring_seconds,
            mqtt: MqttFlags {
                url: self.mqtt.mqtt.clone(),
                credentials: self.mqtt.mqtt_credentials.clone(),
                ca_file: self.mqtt.mqtt_ca.clone(),
                device_id: self.mqtt.mqtt_device.clone(),
                buffer: self.mqtt.mqtt_buffer,
                spool: self.mqtt.mqtt_spool.clone(),
            },
        }
    }
}

fn listen_command(args: ListenArgs) -> anyhow::Result<ExitCode> {
    let board = args.bundle.board()?;
    let mut resolved = settings::listen(&args.flags(), board.as_ref())?;
    let pipeline = load(&args.bundle, board.as_ref())?;
    resolved.options.vad = bundle_vad(
        &args.bundle,
        resolved.segmenter_kind,
        pipeline.frontend().config().target_rate,
    )?;
    let mut displays = open_displays(&resolved.displays)?;
    let mut mqtt = match &resolved.mqtt {
        Some(settings) => {
            let output = MqttOutput::start(settings, &pipeline.bundle().manifest().labels)?;
            eprintln!(
                "MQTT: publishing to {} as {} (emotion-edge/{}/reading)",
                settings.url,
                output.device(),
                output.device()
            );
            Some(output)
        }
        None => None,
    };
    let stop = stop_flag()?;
    let json = resolved.json;
    let heard = listen(
        pipeline,
        &resolved.options,
        &mut displays,
        stop,
        &mut |heard| {
            emotion_edge::listen::report(heard, json);
            if let (Some(mqtt), Ok(result)) = (mqtt.as_mut(), &heard.result) {
                mqtt.publish(heard.number, heard.latency, result);
            }
        },
    );
    // Also when the source failed: what was heard still goes out (or to the spool).
    let mqtt = mqtt.map(|m| m.finish(mqtt::FLUSH_AT_EXIT));
    let mut summary = match heard {
        Ok(summary) => summary,
        Err(error) => {
            if let Some(mqtt) = &mqtt {
                eprintln!("{mqtt}");
            }
            return Err(error);
        }
    };
    summary.mqtt = mqtt;
    eprintln!("{summary}");
    if json {
        println!("{}", serde_json::json!({ "summary": summary }));
    }
    Ok(if summary.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// The bundle's neural VAD when `kind` asks for it ([`settings::use_vad`]), loaded for
/// the stream's rate through the bundle's checksummed read.
fn bundle_vad(
    args: &BundleArgs,
    kind: SegmenterKind,
    rate_hz: u32,
) -> anyhow::Result<Option<emotion_core::vad::VadModel>> {
    let dir = args.dir()?;
    let bundle =
        Bundle::open(&dir).with_context(|| format!("cannot open the bundle {}", dir.display()))?;
    if !settings::use_vad(kind, bundle.manifest().vad.is_some())? {
        return Ok(None);
    }
    let vad = bundle
        .vad_model(rate_hz)
        .with_context(|| format!("cannot load the voice-activity model of {}", dir.display()))?;
    Ok(vad)
}

/// Opens the displays `settings` names.
fn open_displays(settings: &DisplaySettings) -> anyhow::Result<Vec<Box<dyn Display>>> {
    let mut displays: Vec<Box<dyn Display>> = Vec::new();
    if settings.terminal {
        displays.push(Box::new(TerminalDisplay::stdout()));
    }
    if let Some(address) = settings.web {
        let web = WebDisplay::start(address)?;
        eprintln!("kiosk page: http://{}/", web.local_addr());
        displays.push(Box::new(web));
    }
    if !settings.hardware.is_empty() {
        displays.extend(hardware_displays(&settings.hardware)?);
    }
    Ok(displays)
}

#[cfg(feature = "hardware")]
fn hardware_displays(wiring: &HardwareDisplays) -> anyhow::Result<Vec<Box<dyn Display>>> {
    Ok(emotion_edge::display::linux::open(wiring)?)
}

#[cfg(not(feature = "hardware"))]
fn hardware_displays(_: &HardwareDisplays) -> anyhow::Result<Vec<Box<dyn Display>>> {
    anyhow::bail!(
        "this emotion-edge was built without the `hardware` feature: rebuild with `--features hardware` for the OLED and LED displays"
    )
}

fn boards(name: Option<&str>) -> anyhow::Result<ExitCode> {
    match name {
        Some(name) => {
            board::load(name)?; // checked before shown
            print!("{}", board::text(name)?.1);
        }
        None => {
            for profile in board::built_in() {
                println!("{}", profile.summary());
            }
            println!("\n`emotion-edge boards NAME` shows one in full; `--board NAME` applies it.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn devices() -> anyhow::Result<ExitCode> {
    let devices = source::list_devices()?;
    if devices.is_empty() {
        println!(
            "no audio input devices found (is a USB microphone plugged in? `arecord -l` lists what ALSA sees)"
        );
        return Ok(ExitCode::FAILURE);
    }
    for d in devices {
        println!(
            "{}{} [{}]: {}",
            if d.is_default { "* " } else { "  " },
            d.name,
            d.id,
            d.default_config
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(files: &[PathBuf], json: bool, max_seconds: f32) -> ExitCode {
    let frontend = Frontend::new(FrontendConfig {
        max_seconds,
        ..FrontendConfig::default()
    });
    let mut failures = 0;
    for file in files {
        match inspect_file(&frontend, file) {
            Ok(found) if json => println!("{}", found.to_json(file)),
            Ok(found) => println!("{}: {found}", file.display()),
            Err(err) => {
                failures += 1;
                eprintln!("error: {err}");
            }
        }
    }
    if failures > 0 {
        eprintln!("{failures} of {} files could not be read", files.len());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
