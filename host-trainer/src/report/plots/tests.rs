use super::*;

const EMOTIONS: [&str; 7] = ["angry", "disgust", "fear", "happy", "neutral", "ps", "sad"];

/// A small deterministic generator (xorshift64*), uniform in [0, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-12), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn sample_points() -> Vec<ScatterPoint> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut points = Vec::new();
    for class in 0..7 {
        let angle = class as f64 / 7.0 * std::f64::consts::TAU;
        let (cx, cy) = (28.0 * angle.cos(), 22.0 * angle.sin());
        for k in 0..22 {
            let group = k % 3;
            points.push(ScatterPoint {
                x: cx + 5.0 * rng.normal() + group as f64 * 2.0,
                y: cy + 5.0 * rng.normal(),
                class,
                group,
                held_out: group == 2,
            });
        }
    }
    points
}

fn sample_scatter(points: &[ScatterPoint]) -> ScatterPlot<'_> {
    ScatterPlot {
        title: "t-SNE of HuBERT layer 9 (speaker-independent split)",
        subtitle: "silhouette 0.42 · held-out 0.31 · 154 utterances",
        x_label: "t-SNE 1",
        y_label: "t-SNE 2",
        class_names: &EMOTIONS,
        group_names: &["OAF", "YAF", "held-out speaker"],
        points,
    }
}

fn sample_counts() -> Vec<Vec<usize>> {
    let mut rng = Rng(42);
    (0..7)
        .map(|i| {
            (0..7)
                .map(|j| {
                    if i == j {
                        14 + (rng.next() * 8.0) as usize
                    } else if rng.next() < 0.3 {
                        (rng.next() * 5.0) as usize
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect()
}

fn training_curves() -> Vec<Series> {
    let epochs = 30;
    let curve = |start: f64, end: f64, rate: f64, noise: f64, seed: u64| {
        let mut rng = Rng(seed);
        (1..=epochs)
            .map(|e| {
                let t = f64::from(e);
                (
                    t,
                    end + (start - end) * (-rate * t).exp() + noise * (rng.next() - 0.5),
                )
            })
            .collect()
    };
    vec![
        Series {
            name: "train loss".into(),
            points: curve(1.95, 0.08, 0.15, 0.04, 1),
        },
        Series {
            name: "validation loss".into(),
            points: curve(1.9, 0.32, 0.12, 0.08, 2),
        },
    ]
}

fn probe_series() -> Vec<Series> {
    let hubert = [
        0.52, 0.61, 0.66, 0.72, 0.77, 0.83, 0.88, 0.91, 0.93, 0.92, 0.89, 0.86, 0.84,
    ];
    let bert = [0.31, 0.36, 0.39, 0.41, 0.40, 0.38, 0.37];
    vec![
        Series {
            name: "HuBERT-base (speech)".into(),
            points: hubert
                .iter()
                .enumerate()
                .map(|(i, &a)| (i as f64, a))
                .collect(),
        },
        Series {
            name: "BERT-base (transcript)".into(),
            points: bert
                .iter()
                .enumerate()
                .map(|(i, &a)| (i as f64, a))
                .collect(),
        },
    ]
}

fn f1_series() -> Vec<(String, Vec<f64>)> {
    vec![
        (
            "speech".into(),
            vec![0.95, 0.88, 0.91, 0.79, 1.0, 0.84, 0.93],
        ),
        ("text".into(), vec![0.21, 0.12, 0.18, 0.25, 0.3, 0.15, 0.2]),
        (
            "fusion".into(),
            vec![0.97, 0.9, 0.92, 0.83, 0.98, 0.86, 0.95],
        ),
    ]
}

/// A line plot with an automatic y range and no reference line.
fn lines<'a>(
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: &'a [Series],
) -> LinePlot<'a> {
    LinePlot {
        title,
        x_label,
        y_label,
        series,
        y_range: None,
        reference: None,
    }
}

/// Chance level of seven classes.
const CHANCE: Option<(&str, f64)> = Some(("chance", 1.0 / 7.0));

/// F1 bars per emotion.
fn bars<'a>(title: &'a str, series: &'a [(String, Vec<f64>)], y_range: Range<f64>) -> BarChart<'a> {
    BarChart {
        title,
        y_label: "F1",
        categories: &EMOTIONS,
        series,
        y_range,
    }
}

fn heatmap<'a>(title: &'a str, labels: &'a [&'a str], counts: &'a [Vec<usize>]) -> Heatmap<'a> {
    Heatmap {
        title,
        labels,
        counts,
    }
}

/// Width and height from the PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).expect("read png");
    assert!(bytes.len() > 24, "{} is too short", path.display());
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} has no PNG signature",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

fn read_svg(path: &Path) -> String {
    let svg = std::fs::read_to_string(path).expect("read svg");
    let head = svg.trim_start();
    assert!(
        head.starts_with("<svg") || head.starts_with("<?xml"),
        "{} does not start like an SVG",
        path.display()
    );
    assert!(svg.trim_end().ends_with("</svg>"));
    svg
}

fn check_files(files: &PlotFiles, size: (u32, u32), texts: &[&str]) {
    assert_eq!(png_size(&files.png), size);
    let svg = read_svg(&files.svg);
    for t in texts {
        assert!(svg.contains(t), "{} lacks {:?}", files.svg.display(), t);
    }
}

/// Draws a figure into memory with the bitmap backend (as the PNG is drawn).
fn rgb<F: Figure>(fig: &F, size: (u32, u32)) -> Vec<u8> {
    ensure_font().expect("font");
    let mut buf = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        render(fig, &root).expect("draw");
    }
    buf
}

/// Pixels darker than mid-grey in rows `rows` of an RGB buffer `width` wide.
fn dark_pixels(buf: &[u8], width: u32, rows: Range<usize>) -> usize {
    let stride = width as usize * 3;
    buf[rows.start * stride..rows.end * stride]
        .chunks_exact(3)
        .filter(|p| p.iter().all(|&c| c < 128))
        .count()
}

#[test]
fn scatter_writes_png_and_svg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let points = sample_points();
    let stem = dir.path().join("nested/folder/tsne.layer9");
    let files = scatter(&sample_scatter(&points), &stem).expect("scatter");
    assert_eq!(files.png, dir.path().join("nested/folder/tsne.layer9.png"));
    assert_eq!(files.svg, dir.path().join("nested/folder/tsne.layer9.svg"));
    check_files(
        &files,
        SCATTER_SIZE,
        &[
            "t-SNE of HuBERT layer 9",
            "silhouette 0.42",
            "disgust",
            "neutral",
            "OAF",
            "held out",
        ],
    );
}

#[test]
fn heatmap_writes_png_and_svg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let counts = sample_counts();
    let plot = heatmap("Confusion matrix: fusion", &EMOTIONS, &counts);
    let files = confusion_heatmap(&plot, &dir.path().join("confusion")).expect("heatmap");
    let diagonal = counts[3][3].to_string();
    check_files(
        &files,
        HEATMAP_SIZE,
        &[
            "Confusion matrix: fusion",
            "predicted",
            "true",
            "happy",
            "sad",
            &diagonal,
        ],
    );
}

#[test]
fn line_plot_writes_png_and_svg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let series = probe_series();
    let plot = LinePlot {
        reference: CHANCE,
        ..lines("Layer probe", "encoder layer", "accuracy", &series)
    };
    let files = line_plot(&plot, &dir.path().join("probe")).expect("line plot");
    check_files(
        &files,
        LINE_SIZE,
        &[
            "Layer probe",
            "encoder layer",
            "HuBERT-base (speech)",
            "chance (0.143)",
        ],
    );
}

#[test]
fn bars_write_png_and_svg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let series = f1_series();
    let plot = bars("Per-class F1", &series, 0.0..1.05);
    let files = grouped_bars(&plot, &dir.path().join("f1")).expect("bars");
    check_files(
        &files,
        BAR_SIZE,
        &["Per-class F1", "fusion", "angry", "disgust"],
    );
}

#[test]
fn png_title_is_rendered_with_the_embedded_font() {
    let series = training_curves();
    let plot = |title: &'static str| lines(title, "epoch", "loss", &series);
    let with = rgb(&plot("Training loss"), LINE_SIZE);
    let without = rgb(&plot(""), LINE_SIZE);
    // Title band: the top 44 rows hold nothing but the title.
    let band = 0..44;
    assert_eq!(dark_pixels(&without, LINE_SIZE.0, band.clone()), 0);
    let inked = dark_pixels(&with, LINE_SIZE.0, band.clone());
    assert!(inked > 150, "only {} dark pixels in the title band", inked);
    // Text elsewhere (legend, ticks) renders too: the rest of the figure is identical.
    let stride = LINE_SIZE.0 as usize * 3;
    assert_ne!(with[..band.end * stride], without[..band.end * stride]);
    assert_eq!(with[band.end * stride..], without[band.end * stride..]);
}

#[test]
fn heatmap_cells_show_counts() {
    // A cell holding a count has dark ink (or white on dark blue) in it.
    let counts = vec![vec![5, 0], vec![0, 0]];
    let plot = heatmap("", &["a", "b"], &counts);
    let buf = rgb(&plot, HEATMAP_SIZE);
    let white_ink = buf
        .chunks_exact(3)
        .filter(|p| p[0] > 240 && p[2] > 240)
        .count();
    assert!(white_ink > 0);
    // The diagonal cell of row 0 is the darkest blue (fraction 1).
    let dark_blue = buf
        .chunks_exact(3)
        .filter(|p| p[0] < 20 && p[1] < 60 && p[2] > 90)
        .count();
    assert!(dark_blue > 1000, "{} dark blue pixels", dark_blue);
}

#[test]
fn bad_input_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stem = dir.path().join("bad");

    let not_square = vec![vec![1, 2], vec![3]];
    let err = confusion_heatmap(&heatmap("t", &["a", "b"], &not_square), &stem)
        .expect_err("ragged counts");
    assert!(matches!(err, PlotError::Invalid { .. }), "{}", err);
    assert!(err.to_string().contains("row 1"), "{}", err);
    let too_few_rows = vec![vec![1, 2]];
    assert!(confusion_heatmap(&heatmap("t", &["a", "b"], &too_few_rows), &stem).is_err());
    assert!(matches!(
        confusion_heatmap(&heatmap("t", &[], &[]), &stem),
        Err(PlotError::Empty { .. })
    ));

    let mismatched = vec![("speech".to_string(), vec![0.5, 0.6])];
    let err = grouped_bars(&bars("t", &mismatched, 0.0..1.0), &stem).expect_err("length mismatch");
    assert!(err.to_string().contains("speech"), "{}", err);
    let ok_series = f1_series();
    assert!(grouped_bars(&bars("t", &ok_series, 1.0..0.0), &stem).is_err());

    let err = scatter(
        &ScatterPlot {
            points: &[],
            ..sample_scatter(&[])
        },
        &stem,
    )
    .expect_err("no points");
    assert!(matches!(err, PlotError::Empty { .. }), "{}", err);
    let nan_point = [ScatterPoint {
        x: f64::NAN,
        y: 1.0,
        class: 0,
        group: 0,
        held_out: false,
    }];
    assert!(scatter(&sample_scatter(&nan_point), &stem).is_err());

    let all_nan = vec![Series {
        name: "loss".into(),
        points: vec![(1.0, f64::NAN), (f64::INFINITY, 2.0)],
    }];
    let err = line_plot(&lines("t", "epoch", "loss", &all_nan), &stem).expect_err("all NaN");
    assert!(matches!(err, PlotError::Empty { .. }), "{}", err);
    assert!(line_plot(&lines("t", "", "", &[]), &stem).is_err());
    // Nothing was written for the failures.
    assert!(!dir.path().join("bad.png").exists());
}

#[test]
fn unwritable_folder_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a folder").expect("write");
    let series = f1_series();
    let err = grouped_bars(&bars("t", &series, 0.0..1.0), &file.join("f1"))
        .expect_err("parent is a file");
    assert!(matches!(err, PlotError::Io { .. }), "{}", err);
    assert!(err.to_string().contains("a-file"), "{}", err);
}

#[test]
fn lines_cope_with_odd_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let series = vec![
        Series {
            name: "one point".into(),
            points: vec![(3.0, 0.5)],
        },
        Series {
            name: "with gaps".into(),
            points: vec![
                (1.0, 0.2),
                (2.0, f64::NAN),
                (3.0, 0.4),
                (4.0, f64::INFINITY),
                (5.0, 0.45),
            ],
        },
        Series {
            name: "empty".into(),
            points: vec![],
        },
    ];
    let plot = LinePlot {
        y_range: Some(0.0..1.0),
        reference: Some(("chance", 0.25)),
        ..lines("odd", "x", "y", &series)
    };
    let files = line_plot(&plot, &dir.path().join("odd")).expect("line plot");
    check_files(&files, LINE_SIZE, &["one point", "with gaps"]);
    // A single point alone (zero x and y span) still gets axes.
    let single = vec![Series {
        name: "single".into(),
        points: vec![(0.0, 0.0)],
    }];
    let plot = lines("odd", "x", "y", &single);
    line_plot(&plot, &dir.path().join("single")).expect("single point");
}

#[test]
fn ticks_and_labels() {
    let (t, d) = nice_ticks(0.0, 1.0, 7, 0.0);
    assert_eq!(d, 1);
    assert_eq!(t.len(), 6);
    assert_eq!(format_tick(t[3], d), "0.6");
    let (t, d) = nice_ticks(-0.5, 12.5, 20, 1.0);
    assert_eq!(
        (t.first().copied(), t.last().copied(), d),
        (Some(0.0), Some(12.0), 0)
    );
    assert_eq!(format_tick(-0.0001, 2), "0.00");
    assert_eq!(format_value(1.0 / 7.0), "0.143");
    assert_eq!(format_value(2.0), "2");
    assert_eq!(shorten("pleasant surprise", 10), "pleasant …");
    assert_eq!(
        PlotFiles::for_stem(Path::new("a/b.c")).png,
        PathBuf::from("a/b.c.png")
    );
}

/// Realistic figures; written to `$PLOTS_SAMPLE_DIR` when set (to look at them),
/// else to a temporary folder.
#[test]
fn realistic_samples() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = std::env::var_os("PLOTS_SAMPLE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let points = sample_points();
    scatter(&sample_scatter(&points), &dir.join("scatter")).expect("scatter");

    // Many speakers (the legend rows shrink), no held-out points.
    let many: Vec<ScatterPoint> = points
        .iter()
        .enumerate()
        .map(|(i, p)| ScatterPoint {
            group: i % 12,
            held_out: false,
            ..*p
        })
        .collect();
    let speakers: Vec<String> = (0..12).map(|g| format!("speaker {:02}", g + 1)).collect();
    let speaker_refs: Vec<&str> = speakers.iter().map(String::as_str).collect();
    scatter(
        &ScatterPlot {
            title: "PCA of the text head's input",
            subtitle: "",
            x_label: "PC 1",
            y_label: "PC 2",
            group_names: &speaker_refs,
            ..sample_scatter(&many)
        },
        &dir.join("scatter_many"),
    )
    .expect("scatter");

    let counts = sample_counts();
    let title = "Confusion matrix: fusion head, speaker-independent test set";
    confusion_heatmap(&heatmap(title, &EMOTIONS, &counts), &dir.join("confusion"))
        .expect("heatmap");
    let long = EMOTIONS.map(|e| if e == "ps" { "pleasant surprise" } else { e });
    let plot = heatmap("Confusion matrix (long labels)", &long, &counts);
    confusion_heatmap(&plot, &dir.join("confusion_long")).expect("heatmap");

    let curves = training_curves();
    let plot = lines("Speech head: loss", "epoch", "cross-entropy loss", &curves);
    line_plot(&plot, &dir.join("loss")).expect("loss");
    let accuracy: Vec<Series> = curves
        .iter()
        .map(|s| Series {
            name: s.name.replace("loss", "accuracy"),
            points: s.points.iter().map(|&(x, y)| (x, 1.0 - y / 2.1)).collect(),
        })
        .collect();
    let plot = LinePlot {
        y_range: Some(0.0..1.0),
        reference: CHANCE,
        ..lines("Speech head: accuracy", "epoch", "accuracy", &accuracy)
    };
    line_plot(&plot, &dir.join("accuracy")).expect("accuracy");
    let probe = probe_series();
    let title = "Linear probe accuracy per encoder layer";
    let plot = LinePlot {
        reference: CHANCE,
        ..lines(title, "layer (0 = embeddings)", "probe accuracy", &probe)
    };
    line_plot(&plot, &dir.join("probe")).expect("probe");

    // As the report draws it: one series per modality and split, three splits.
    let per_split: Vec<Series> = ["random", "speaker-independent", "word-disjoint"]
        .iter()
        .enumerate()
        .flat_map(|(k, split)| {
            probe.iter().map(move |s| Series {
                name: format!("{} · {}", s.name.split(' ').next().unwrap_or(""), split),
                points: s
                    .points
                    .iter()
                    .map(|&(x, y)| (x, y - 0.07 * k as f64))
                    .collect(),
            })
        })
        .collect();
    let plot = LinePlot {
        y_range: Some(0.0..1.0),
        reference: CHANCE,
        ..lines(title, "layer", "test accuracy", &per_split)
    };
    line_plot(&plot, &dir.join("probe_splits")).expect("probe per split");

    let f1 = f1_series();
    let title = "Per-class F1 on the speaker-independent test set";
    grouped_bars(&bars(title, &f1, 0.0..1.0), &dir.join("f1")).expect("bars");
    for stem in ["scatter", "confusion", "loss", "accuracy", "probe", "f1"] {
        assert!(dir.join(format!("{stem}.png")).exists());
        assert!(dir.join(format!("{stem}.svg")).exists());
    }
}
