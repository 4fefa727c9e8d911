//! The report's figures: embedding scatter plots (t-SNE / PCA of a model's
//! representations), confusion-matrix heatmaps, line plots (training curves, the
//! layer probe) and grouped bar charts (per-class F1 of the models).
//!
//! Every figure is drawn once per backend by the same code and written twice, as
//! `<stem>.png` (plotters' bitmap backend) and `<stem>.svg`. PNG text is rendered
//! with DejaVu Sans, compiled into the binary (`assets/DejaVuSans.ttf`) and registered
//! with plotters' `ab_glyph` renderer as the family `"sans-serif"`, so no system font
//! is needed; the SVG names the same family and leaves the choice to the viewer.
//!
//! Inputs are checked before anything is drawn: an empty or inconsistent input is a
//! [`PlotError`], never a panic.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, FontTransform, RGBAColor, register_font};

/// The font family every text of every figure uses (the embedded DejaVu Sans).
pub const FONT_FAMILY: &str = "sans-serif";

/// DejaVu Sans, embedded so PNG text renders without any system font.
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Pixel size (width, height) of a [`scatter`] figure.
pub const SCATTER_SIZE: (u32, u32) = (900, 720);
/// Pixel size (width, height) of a [`confusion_heatmap`] figure.
pub const HEATMAP_SIZE: (u32, u32) = (720, 640);
/// Pixel size (width, height) of a [`line_plot`] figure.
pub const LINE_SIZE: (u32, u32) = (900, 540);
/// Pixel size (width, height) of a [`grouped_bars`] figure.
pub const BAR_SIZE: (u32, u32) = (900, 540);

/// Text, axes and grid colours (a matplotlib-like light theme).
const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
const MUTED: RGBColor = RGBColor(0x5a, 0x5a, 0x5a);
const AXIS: RGBColor = RGBColor(0x40, 0x40, 0x40);
const GRID: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);
const ZERO_COUNT: RGBColor = RGBColor(0xa0, 0xa0, 0xa0);

/// Class colours (Okabe-Ito, colour-blind safe), ordered so the project's seven
/// emotions (angry, disgust, fear, happy, neutral, ps, sad) get fitting hues; cycles
/// beyond eight classes.
const CLASS_COLOURS: [RGBColor; 8] = [
    RGBColor(0xd5, 0x5e, 0x00), // vermillion
    RGBColor(0x00, 0x9e, 0x73), // bluish green
    RGBColor(0xcc, 0x79, 0xa7), // reddish purple
    RGBColor(0xe6, 0x9f, 0x00), // orange
    RGBColor(0x59, 0x59, 0x59), // dark grey
    RGBColor(0x56, 0xb4, 0xe9), // sky blue
    RGBColor(0x00, 0x72, 0xb2), // blue
    RGBColor(0xc9, 0xb2, 0x00), // dark yellow
];

/// Line and bar colours (Okabe-Ito again, in a blue / orange / green first order).
const SERIES_COLOURS: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xb2),
    RGBColor(0xe6, 0x9f, 0x00),
    RGBColor(0x00, 0x9e, 0x73),
    RGBColor(0xd5, 0x5e, 0x00),
    RGBColor(0xcc, 0x79, 0xa7),
    RGBColor(0x56, 0xb4, 0xe9),
    RGBColor(0x22, 0x22, 0x22),
];

/// matplotlib's "Blues" colour map, sampled at 0, 1/8, …, 1.
const BLUES: [(u8, u8, u8); 9] = [
    (247, 251, 255),
    (222, 235, 247),
    (198, 219, 239),
    (158, 202, 225),
    (107, 174, 214),
    (66, 146, 198),
    (33, 113, 181),
    (8, 81, 156),
    (8, 48, 107),
];

/// Text sizes (plotters "size" units: pixels of ascent + descent).
const TITLE_PT: f64 = 24.0;
const SUBTITLE_PT: f64 = 16.0;
const AXIS_DESC_PT: f64 = 18.0;
const TICK_PT: f64 = 16.0;
const LEGEND_PT: f64 = 16.0;

/// Why a figure could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The input has nothing that could be drawn.
    #[error("{plot}: nothing to draw: {what}")]
    Empty {
        /// Which figure (kind, title and stem).
        plot: String,
        /// What is missing.
        what: String,
    },
    /// The input is inconsistent (shapes that do not match, an empty range, …).
    #[error("{plot}: {reason}")]
    Invalid {
        /// Which figure (kind, title and stem).
        plot: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Creating the output folder or writing a file failed.
    #[error("writing {}: {source}", path.display())]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// plotters failed while drawing or encoding a file.
    #[error("drawing {}: {message}", path.display())]
    Draw {
        /// The file being drawn.
        path: PathBuf,
        /// plotters' message.
        message: String,
    },
    /// The embedded font could not be registered with plotters.
    #[error("the embedded DejaVu Sans font could not be registered with plotters")]
    Font,
}

impl PlotError {
    fn empty(plot: String, what: impl Into<String>) -> Self {
        Self::Empty {
            plot,
            what: what.into(),
        }
    }

    fn invalid(plot: String, reason: impl Into<String>) -> Self {
        Self::Invalid {
            plot,
            reason: reason.into(),
        }
    }
}

/// The two files a figure is written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotFiles {
    /// `<stem>.png`, the bitmap.
    pub png: PathBuf,
    /// `<stem>.svg`, the vector version of the same drawing.
    pub svg: PathBuf,
}

impl PlotFiles {
    /// The files for `stem`: `.png` and `.svg` appended (a dot already in the stem's
    /// name is kept, not replaced).
    pub fn for_stem(stem: &Path) -> Self {
        Self {
            png: with_suffix(stem, "png"),
            svg: with_suffix(stem, "svg"),
        }
    }
}

/// One point of a 2-D embedding (t-SNE or PCA of a model's representations).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScatterPoint {
    /// Horizontal coordinate.
    pub x: f64,
    /// Vertical coordinate.
    pub y: f64,
    /// Class index (emotion): picks the colour.
    pub class: usize,
    /// Group index (speaker): picks the marker shape.
    pub group: usize,
    /// Held out of training: drawn filled; training points are hollow.
    pub held_out: bool,
}

/// A scatter plot of an embedding: colour per class, marker shape per group, filled
/// markers for held-out points and hollow ones for training points.
#[derive(Debug, Clone, Copy)]
pub struct ScatterPlot<'a> {
    /// Big title on top.
    pub title: &'a str,
    /// Smaller line under the title (e.g. "silhouette 0.42 · held-out 0.31 · 168
    /// utterances"); empty for none.
    pub subtitle: &'a str,
    /// Horizontal axis title.
    pub x_label: &'a str,
    /// Vertical axis title.
    pub y_label: &'a str,
    /// Class names by class index (a missing name reads "class N").
    pub class_names: &'a [&'a str],
    /// Group names by group index (a missing name reads "group N").
    pub group_names: &'a [&'a str],
    /// The points; those with a non-finite coordinate are skipped.
    pub points: &'a [ScatterPoint],
}

/// A confusion matrix: rows true class, columns predicted.
#[derive(Debug, Clone, Copy)]
pub struct Heatmap<'a> {
    /// Title on top.
    pub title: &'a str,
    /// Class names, in row (and column) order.
    pub labels: &'a [&'a str],
    /// `counts[true][predicted]`, `labels.len()` × `labels.len()`.
    pub counts: &'a [Vec<usize>],
}

/// A named line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points in drawing order; non-finite points are skipped (the line is
    /// broken there).
    pub points: Vec<(f64, f64)>,
}

/// A line plot: one line with markers per series, a legend above the axes and an
/// optional dashed horizontal reference line.
#[derive(Debug, Clone)]
pub struct LinePlot<'a> {
    /// Title on top.
    pub title: &'a str,
    /// Horizontal axis title.
    pub x_label: &'a str,
    /// Vertical axis title.
    pub y_label: &'a str,
    /// The lines; they may differ in length.
    pub series: &'a [Series],
    /// Fixed vertical range; `None` fits the data (and the reference) with a margin.
    pub y_range: Option<Range<f64>>,
    /// A dashed horizontal line and its legend label, e.g. `("chance", 1.0 / 7.0)`.
    pub reference: Option<(&'a str, f64)>,
}

/// Groups of bars: one group per category (emotion), one bar per series (model).
#[derive(Debug, Clone)]
pub struct BarChart<'a> {
    /// Title on top.
    pub title: &'a str,
    /// Vertical axis title.
    pub y_label: &'a str,
    /// Category names, one group of bars each.
    pub categories: &'a [&'a str],
    /// `(name, one value per category)`; a non-finite value draws no bar.
    pub series: &'a [(String, Vec<f64>)],
    /// The vertical range.
    pub y_range: Range<f64>,
}

/// Writes an embedding scatter plot to `<stem>.png` and `<stem>.svg`
/// ([`SCATTER_SIZE`]). Errors if no point has finite coordinates.
pub fn scatter(plot: &ScatterPlot, stem: &Path) -> Result<PlotFiles, PlotError> {
    let id = || plot_id("scatter plot", plot.title, stem);
    if plot.points.is_empty() {
        return Err(PlotError::empty(id(), "no points"));
    }
    if !plot
        .points
        .iter()
        .any(|p| p.x.is_finite() && p.y.is_finite())
    {
        return Err(PlotError::empty(
            id(),
            format!(
                "none of the {} points has finite coordinates",
                plot.points.len()
            ),
        ));
    }
    write_figure(plot, stem, SCATTER_SIZE)
}

/// Writes a confusion-matrix heatmap to `<stem>.png` and `<stem>.svg`
/// ([`HEATMAP_SIZE`]): cell colour is the row-normalised fraction, the count is printed
/// in each cell. Errors unless `counts` is `labels.len()` × `labels.len()`.
pub fn confusion_heatmap(plot: &Heatmap, stem: &Path) -> Result<PlotFiles, PlotError> {
    let id = || plot_id("confusion heatmap", plot.title, stem);
    let n = plot.labels.len();
    if n == 0 {
        return Err(PlotError::empty(id(), "no labels"));
    }
    if plot.counts.len() != n {
        return Err(PlotError::invalid(
            id(),
            format!("{} labels but {} rows of counts", n, plot.counts.len()),
        ));
    }
    if let Some((i, row)) = plot.counts.iter().enumerate().find(|(_, r)| r.len() != n) {
        return Err(PlotError::invalid(
            id(),
            format!(
                "{} labels but row {} of counts has {} entries",
                n,
                i,
                row.len()
            ),
        ));
    }
    write_figure(plot, stem, HEATMAP_SIZE)
}

/// Writes a line plot to `<stem>.png` and `<stem>.svg` ([`LINE_SIZE`]). Errors if
/// there is no series, no finite point, or `y_range` is empty or not finite.
pub fn line_plot(plot: &LinePlot, stem: &Path) -> Result<PlotFiles, PlotError> {
    let id = || plot_id("line plot", plot.title, stem);
    if plot.series.is_empty() {
        return Err(PlotError::empty(id(), "no series"));
    }
    if !plot
        .series
        .iter()
        .flat_map(|s| &s.points)
        .any(|&p| finite_point(p))
    {
        return Err(PlotError::empty(id(), "no series has a finite point"));
    }
    if let Some(r) = &plot.y_range {
        check_range(r).map_err(|reason| PlotError::invalid(id(), reason))?;
    }
    write_figure(plot, stem, LINE_SIZE)
}

/// Writes a grouped bar chart to `<stem>.png` and `<stem>.svg` ([`BAR_SIZE`]).
/// Errors if there are no categories or series, a series' length differs from the
/// number of categories, or `y_range` is empty or not finite.
pub fn grouped_bars(plot: &BarChart, stem: &Path) -> Result<PlotFiles, PlotError> {
    let id = || plot_id("bar chart", plot.title, stem);
    if plot.categories.is_empty() {
        return Err(PlotError::empty(id(), "no categories"));
    }
    if plot.series.is_empty() {
        return Err(PlotError::empty(id(), "no series"));
    }
    if let Some((name, values)) = plot
        .series
        .iter()
        .find(|(_, v)| v.len() != plot.categories.len())
    {
        return Err(PlotError::invalid(
            id(),
            format!(
                "series '{}' has {} values for {} categories",
                name,
                values.len(),
                plot.categories.len()
            ),
        ));
    }
    check_range(&plot.y_range).map_err(|reason| PlotError::invalid(id(), reason))?;
    write_figure(plot, stem, BAR_SIZE)
}

// ---------------------------------------------------------------------------------
// Writing: one drawing routine, two backends.

/// A figure that can draw itself on any plotters backend (the input is already
/// checked).
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn;
}

/// A plotters failure, as text (the backend's error type differs per backend).
#[derive(Debug)]
struct DrawFailure(String);

impl<E: std::error::Error> From<E> for DrawFailure {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

type Drawn = Result<(), DrawFailure>;

/// Registers the embedded font (once per process).
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| register_font(FONT_FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok());
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

/// White background, the figure, flush.
fn render<DB: DrawingBackend, F: Figure>(fig: &F, root: &DrawingArea<DB, Shift>) -> Drawn {
    root.fill(&WHITE)?;
    fig.draw(root)?;
    root.present()?;
    Ok(())
}

fn write_figure<F: Figure>(fig: &F, stem: &Path, size: (u32, u32)) -> Result<PlotFiles, PlotError> {
    ensure_font()?;
    let files = PlotFiles::for_stem(stem);
    if let Some(parent) = stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| PlotError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    {
        let root = BitMapBackend::new(&files.png, size).into_drawing_area();
        render(fig, &root).map_err(|DrawFailure(message)| PlotError::Draw {
            path: files.png.clone(),
            message,
        })?;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        render(fig, &root).map_err(|DrawFailure(message)| PlotError::Draw {
            path: files.svg.clone(),
            message,
        })?;
    }
    std::fs::write(&files.svg, svg).map_err(|source| PlotError::Io {
        path: files.svg.clone(),
        source,
    })?;
    Ok(files)
}

fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_os_string();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

fn plot_id(kind: &str, title: &str, stem: &Path) -> String {
    format!("{} '{}' ({})", kind, title, stem.display())
}

fn finite_point((x, y): (f64, f64)) -> bool {
    x.is_finite() && y.is_finite()
}

fn check_range(r: &Range<f64>) -> Result<(), String> {
    if r.start.is_finite() && r.end.is_finite() && r.start < r.end {
        Ok(())
    } else {
        Err(format!(
            "y range {}..{} is empty or not finite",
            r.start, r.end
        ))
    }
}

// ---------------------------------------------------------------------------------
// Text, ticks, markers, legends.

fn font(size: f64) -> FontDesc<'static> {
    (FONT_FAMILY, size).into_font()
}

fn text_style(size: f64, colour: RGBColor) -> TextStyle<'static> {
    font(size).color(&colour)
}

fn anchored(style: &TextStyle<'static>, h: HPos, v: VPos) -> TextStyle<'static> {
    style.pos(Pos::new(h, v))
}

/// Width and height in pixels of `text` at `size`.
fn text_size(text: &str, size: f64) -> Result<(i32, i32), DrawFailure> {
    let (w, h) = font(size).box_size(text)?;
    Ok((
        i32::try_from(w).unwrap_or(i32::MAX),
        i32::try_from(h).unwrap_or(i32::MAX),
    ))
}

fn max_text_width<'s>(
    texts: impl IntoIterator<Item = &'s str>,
    size: f64,
) -> Result<i32, DrawFailure> {
    let mut widest = 0;
    for t in texts {
        widest = widest.max(text_size(t, size)?.0);
    }
    Ok(widest)
}

/// The largest size from `max` down to `min` at which `text` is at most `width` wide.
fn fit_size(text: &str, max: f64, min: f64, width: i32) -> Result<f64, DrawFailure> {
    let mut size = max;
    while size > min && text_size(text, size)?.0 > width {
        size -= 1.0;
    }
    Ok(size)
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// Draws the title (and subtitle) centred on top; returns the band's height.
fn title_band<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
) -> Result<i32, DrawFailure> {
    let width = i32::try_from(root.dim_in_pixel().0).unwrap_or(i32::MAX);
    let mut y = 16;
    if !title.is_empty() {
        let size = fit_size(title, TITLE_PT, 12.0, width - 40)?;
        let style = anchored(&text_style(size, INK), HPos::Center, VPos::Top);
        root.draw_text(title, &style, (width / 2, y))?;
    }
    y += 32;
    if !subtitle.is_empty() {
        let size = fit_size(subtitle, SUBTITLE_PT, 10.0, width - 40)?;
        let style = anchored(&text_style(size, MUTED), HPos::Center, VPos::Top);
        root.draw_text(subtitle, &style, (width / 2, y))?;
        y += 24;
    }
    Ok(y + 2)
}

/// Tick positions between `lo` and `hi` at a "nice" step (1, 2, 2.5 or 5 × 10^k),
/// at most about `max_ticks` of them, and the decimals their labels need.
fn nice_ticks(lo: f64, hi: f64, max_ticks: usize, min_step: f64) -> (Vec<f64>, usize) {
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let raw = span / max_ticks.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 2.5 {
        2.5
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    let step = (nice * magnitude).max(min_step);
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let ticks = (first..=last).map(|k| k as f64 * step).collect();
    let decimals = (0..=8)
        .find(|&d| {
            let scaled = step * 10f64.powi(d);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(8) as usize;
    (ticks, decimals)
}

fn format_tick(v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v);
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => s,
    }
}

/// A value for a label: at most three decimals, trailing zeros dropped.
fn format_value(v: f64) -> String {
    let s = format!("{:.3}", v);
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

/// `lo..hi` widened by `frac` of its span on both sides (or by a fixed amount when
/// the span is zero).
fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    let span = hi - lo;
    if span <= 1e-12 * lo.abs().max(1.0) {
        let d = if lo.abs() > 1e-12 {
            lo.abs() * 0.1
        } else {
            1.0
        };
        (lo - d, hi + d)
    } else {
        (lo - span * frac, hi + span * frac)
    }
}

fn min_max(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Marker shapes, cycled: circle, triangle, square, diamond, triangle down,
/// pentagon, star.
const MARKER_SHAPES: usize = 7;

/// The outline of marker `shape` of radius `r` around `(cx, cy)`; `None` for the
/// circle.
fn marker_outline(shape: usize, (cx, cy): (i32, i32), r: f64) -> Option<Vec<(i32, i32)>> {
    let regular = |n: usize, start_deg: f64, k: f64| -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let a = (start_deg + 360.0 * i as f64 / n as f64).to_radians();
                (k * a.cos(), k * a.sin())
            })
            .collect()
    };
    let unit = match shape % MARKER_SHAPES {
        0 => return None,
        1 => regular(3, -90.0, 1.35),
        2 => regular(4, 45.0, 1.2),
        3 => regular(4, -90.0, 1.35),
        4 => regular(3, 90.0, 1.35),
        5 => regular(5, -90.0, 1.2),
        _ => (0..10)
            .map(|i| {
                let a = (-90.0 + 36.0 * i as f64).to_radians();
                let k = if i % 2 == 0 { 1.5 } else { 0.65 };
                (k * a.cos(), k * a.sin())
            })
            .collect(),
    };
    Some(
        unit.into_iter()
            .map(|(x, y)| (cx + (x * r).round() as i32, cy + (y * r).round() as i32))
            .collect(),
    )
}

/// Draws a marker in the area's pixel coordinates; `filled` or an outline only.
fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    shape: usize,
    r: f64,
    colour: RGBAColor,
    filled: bool,
) -> Drawn {
    let outline_width = if filled { 1 } else { 2 };
    match marker_outline(shape, at, r) {
        None => {
            let radius = r.round() as i32;
            if filled {
                area.draw(&Circle::new(at, radius, colour.filled()))?;
            } else {
                area.draw(&Circle::new(at, radius, colour.stroke_width(outline_width)))?;
            }
        }
        Some(vertices) => {
            if filled {
                area.draw(&Polygon::new(vertices.clone(), colour.filled()))?;
            }
            let mut closed = vertices;
            if let Some(&first) = closed.first() {
                closed.push(first);
            }
            area.draw(&PathElement::new(
                closed,
                colour.stroke_width(outline_width),
            ))?;
        }
    }
    Ok(())
}

/// What a legend entry shows left of its text.
#[derive(Debug, Clone, Copy)]
enum Swatch {
    /// A short line, optionally dashed, optionally with a marker in its middle.
    Line {
        colour: RGBColor,
        marker: Option<usize>,
        dashed: bool,
    },
    /// A filled square.
    Block(RGBColor),
}

const SWATCH_W: i32 = 32;

fn draw_swatch<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    swatch: Swatch,
    (x, cy): (i32, i32),
) -> Drawn {
    match swatch {
        Swatch::Line {
            colour,
            marker,
            dashed,
        } => {
            let ends = vec![(x, cy), (x + SWATCH_W, cy)];
            if dashed {
                area.draw(&DashedPathElement::new(ends, 7, 4, colour.stroke_width(2)))?;
            } else {
                area.draw(&PathElement::new(ends, colour.stroke_width(2)))?;
            }
            if let Some(shape) = marker {
                draw_marker(
                    area,
                    (x + SWATCH_W / 2, cy),
                    shape,
                    4.0,
                    colour.to_rgba(),
                    true,
                )?;
            }
        }
        Swatch::Block(colour) => {
            area.draw(&Rectangle::new(
                [(x + 8, cy - 8), (x + SWATCH_W - 8, cy + 8)],
                colour.filled(),
            ))?;
        }
    }
    Ok(())
}

/// Lays legend entries out as a centred grid (as many columns as fit the width,
/// entries in reading order, columns aligned) from `top` down; returns the height
/// used.
fn legend_rows<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    entries: &[(String, Swatch)],
    top: i32,
) -> Result<i32, DrawFailure> {
    const GAP: i32 = 7;
    const SPACING: i32 = 28;
    const ROW_H: i32 = 26;
    if entries.is_empty() {
        return Ok(0);
    }
    let width = i32::try_from(root.dim_in_pixel().0).unwrap_or(i32::MAX);
    let max_total = width - 60;
    let mut widths = Vec::with_capacity(entries.len());
    for (label, _) in entries {
        widths.push(SWATCH_W + GAP + text_size(label, LEGEND_PT)?.0);
    }
    // The most columns whose widest entries fit side by side (one column at least).
    let column_widths = |cols: usize| -> Vec<i32> {
        (0..cols)
            .map(|c| {
                widths
                    .iter()
                    .skip(c)
                    .step_by(cols)
                    .copied()
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    };
    let total = |cols: &[i32]| cols.iter().sum::<i32>() + SPACING * (cols.len() as i32 - 1);
    let mut cols = column_widths(1);
    for n in (1..=entries.len()).rev() {
        let candidate = column_widths(n);
        if total(&candidate) <= max_total {
            cols = candidate;
            break;
        }
    }
    let left = (width - total(&cols)) / 2;
    let style = anchored(&text_style(LEGEND_PT, INK), HPos::Left, VPos::Center);
    let n_cols = cols.len().max(1);
    for (i, (label, swatch)) in entries.iter().enumerate() {
        let (r, c) = (i / n_cols, i % n_cols);
        let x = left + cols.iter().take(c).map(|w| w + SPACING).sum::<i32>();
        let cy = top + r as i32 * ROW_H + ROW_H / 2;
        draw_swatch(root, *swatch, (x, cy))?;
        root.draw_text(label, &style, (x + SWATCH_W + GAP, cy))?;
    }
    Ok(entries.len().div_ceil(n_cols) as i32 * ROW_H + 4)
}

/// A linear `f64` axis whose ticks (grid lines and labels) are exactly `ticks`.
#[derive(Debug, Clone)]
struct TickedAxis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl TickedAxis {
    fn new(lo: f64, hi: f64, ticks: Vec<f64>) -> Self {
        Self { lo, hi, ticks }
    }
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        if span.abs() < f64::MIN_POSITIVE || !v.is_finite() {
            return (limit.0 + limit.1) / 2;
        }
        let t = (v - self.lo) / span;
        let length = f64::from(limit.1 - limit.0);
        limit.0 + (length * t).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

type Axes = Cartesian2d<TickedAxis, TickedAxis>;

/// How a chart's mesh looks besides the fixed matplotlib-like styling: the axis
/// titles (empty for none), the tick label formatters, the x tick label size and
/// whether vertical grid lines are drawn.
struct MeshStyle<'f> {
    x_desc: &'f str,
    y_desc: &'f str,
    x_fmt: &'f dyn Fn(&f64) -> String,
    y_fmt: &'f dyn Fn(&f64) -> String,
    x_tick_pt: f64,
    x_grid: bool,
}

/// Grid, axes, tick labels and axis titles, matplotlib-like.
fn style_mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Axes>,
    style: &MeshStyle<'_>,
) -> Drawn {
    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(GRID.stroke_width(1))
        .light_line_style(WHITE.mix(0.0))
        .axis_style(AXIS.stroke_width(1))
        .label_style(text_style(TICK_PT, INK))
        .x_label_style(text_style(style.x_tick_pt, INK))
        .axis_desc_style(text_style(AXIS_DESC_PT, INK))
        .set_all_tick_mark_size(5)
        .x_label_formatter(style.x_fmt)
        .y_label_formatter(style.y_fmt);
    if !style.x_desc.is_empty() {
        mesh.x_desc(style.x_desc);
    }
    if !style.y_desc.is_empty() {
        mesh.y_desc(style.y_desc);
    }
    if !style.x_grid {
        mesh.disable_x_mesh();
    }
    mesh.draw()?;
    Ok(())
}

/// Builds a chart on `area` with `margins` (left, right, top, bottom) around it and
/// label areas `label_areas` (x below, y to the left), and draws its mesh.
fn ticked_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    [left, right, top, bottom]: [i32; 4],
    (x_area, y_area): (i32, i32),
    (x, y): (TickedAxis, TickedAxis),
    style: &MeshStyle<'_>,
) -> Result<ChartContext<'a, DB, Axes>, DrawFailure> {
    let mut chart = ChartBuilder::on(area)
        .margin_left(left)
        .margin_right(right)
        .margin_top(top)
        .margin_bottom(bottom)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x, y)?;
    style_mesh(&mut chart, style)?;
    Ok(chart)
}

/// A numeric axis from `lo` to `hi`, ticked by [`nice_ticks`], titled `desc` (empty
/// for none).
struct NumericAxis<'s> {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    decimals: usize,
    desc: &'s str,
}

impl<'s> NumericAxis<'s> {
    fn nice(lo: f64, hi: f64, max_ticks: usize, min_step: f64, desc: &'s str) -> Self {
        let (ticks, decimals) = nice_ticks(lo, hi, max_ticks, min_step);
        Self {
            lo,
            hi,
            ticks,
            decimals,
            desc,
        }
    }

    /// Tick labels to the axis' decimals.
    fn formatter(&self) -> impl Fn(&f64) -> String + use<> {
        let decimals = self.decimals;
        move |v: &f64| format_tick(*v, decimals)
    }

    /// The width a y label area needs for these tick labels and a rotated title.
    fn y_label_area(&self) -> Result<i32, DrawFailure> {
        let labels: Vec<String> = self
            .ticks
            .iter()
            .map(|&v| format_tick(v, self.decimals))
            .collect();
        let widest = max_text_width(labels.iter().map(String::as_str), TICK_PT)?;
        Ok(widest + if self.desc.is_empty() { 16 } else { 38 })
    }

    fn ticked(self) -> TickedAxis {
        TickedAxis::new(self.lo, self.hi, self.ticks)
    }
}

/// A chart with two numeric axes (tick labels and titles below and left), its mesh
/// drawn, inside `margins` (left, right, top, bottom) of `area`.
fn numeric_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    margins: [i32; 4],
    x: NumericAxis<'_>,
    y: NumericAxis<'_>,
) -> Result<ChartContext<'a, DB, Axes>, DrawFailure> {
    let x_area = if x.desc.is_empty() { 32 } else { 52 };
    let y_area = y.y_label_area()?;
    let (x_fmt, y_fmt) = (x.formatter(), y.formatter());
    let style = MeshStyle {
        x_desc: x.desc,
        y_desc: y.desc,
        x_fmt: &x_fmt,
        y_fmt: &y_fmt,
        x_tick_pt: TICK_PT,
        x_grid: true,
    };
    ticked_chart(
        area,
        margins,
        (x_area, y_area),
        (x.ticked(), y.ticked()),
        &style,
    )
}

/// Closes the box around the plotting area (matplotlib's four spines): the mesh
/// draws the left axis just left of the area and the bottom one just below it, this
/// adds the top and right ones.
fn draw_frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartContext<'_, DB, Axes>,
) -> Drawn {
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    root.draw(&PathElement::new(
        vec![
            (xs.start - 1, ys.start),
            (xs.end - 1, ys.start),
            (xs.end - 1, ys.end),
        ],
        AXIS.stroke_width(1),
    ))?;
    Ok(())
}

fn class_colour(class: usize) -> RGBColor {
    CLASS_COLOURS[class % CLASS_COLOURS.len()]
}

fn series_colour(k: usize) -> RGBColor {
    SERIES_COLOURS[k % SERIES_COLOURS.len()]
}

fn blues(fraction: f64) -> RGBColor {
    let t = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pos = t * (BLUES.len() - 1) as f64;
    let i = (pos.floor() as usize).min(BLUES.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (BLUES[i], BLUES[i + 1]);
    let lerp = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * f).round() as u8;
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

fn is_dark(c: RGBColor) -> bool {
    0.299 * f64::from(c.0) + 0.587 * f64::from(c.1) + 0.114 * f64::from(c.2) < 150.0
}

fn name_or(names: &[&str], i: usize, fallback: &str) -> String {
    match names.get(i) {
        Some(n) if !n.is_empty() => (*n).to_string(),
        _ => format!("{} {}", fallback, i),
    }
}

// ---------------------------------------------------------------------------------
// The figures.

impl Figure for ScatterPlot<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let (w, _) = root.dim_in_pixel();
        let w = i32::try_from(w).unwrap_or(i32::MAX);
        let top = title_band(root, self.title, self.subtitle)?;

        let points: Vec<&ScatterPoint> = self
            .points
            .iter()
            .filter(|p| p.x.is_finite() && p.y.is_finite())
            .collect();
        let n_classes = points
            .iter()
            .map(|p| p.class + 1)
            .max()
            .unwrap_or(0)
            .max(self.class_names.len());
        let n_groups = points
            .iter()
            .map(|p| p.group + 1)
            .max()
            .unwrap_or(0)
            .max(self.group_names.len());
        let classes: Vec<String> = (0..n_classes)
            .map(|c| name_or(self.class_names, c, "class"))
            .collect();
        let groups: Vec<String> = (0..n_groups)
            .map(|g| name_or(self.group_names, g, "group"))
            .collect();
        let headers = ["emotion", "speaker", "split"];
        let fill_labels = ["held out", "training"];

        // Legend panel on the right, outside the axes.
        let widest = max_text_width(
            classes
                .iter()
                .chain(&groups)
                .map(String::as_str)
                .chain(headers)
                .chain(fill_labels),
            LEGEND_PT,
        )?;
        let legend_w = (widest + 56).clamp(140, 320);
        let (_, body) = root.split_vertically(top);
        let (plot_area, legend_area) = body.split_horizontally(w - legend_w);

        let (x_lo, x_hi) = min_max(points.iter().map(|p| p.x)).unwrap_or((0.0, 1.0));
        let (y_lo, y_hi) = min_max(points.iter().map(|p| p.y)).unwrap_or((0.0, 1.0));
        let (x_lo, x_hi) = padded(x_lo, x_hi, 0.06);
        let (y_lo, y_hi) = padded(y_lo, y_hi, 0.06);
        let chart = numeric_chart(
            &plot_area,
            [10, 14, 8, 10],
            NumericAxis::nice(x_lo, x_hi, 8, 0.0, self.x_label),
            NumericAxis::nice(y_lo, y_hi, 8, 0.0, self.y_label),
        )?;

        // Training (hollow) first, held out (filled) on top.
        for held_out in [false, true] {
            for p in points.iter().filter(|p| p.held_out == held_out) {
                let at = chart.backend_coord(&(p.x, p.y));
                let colour = class_colour(p.class).mix(if held_out { 0.85 } else { 0.9 });
                draw_marker(root, at, p.group, 5.0, colour, held_out)?;
            }
        }
        draw_frame(root, &chart)?;

        // Legend: colour per class, shape per group, fill.
        // Rows shrink (with their text) when many groups would overflow the panel.
        let show_groups = !(self.group_names.is_empty() && n_groups <= 1);
        let n_rows = classes.len() + if show_groups { groups.len() + 1 } else { 0 } + 4;
        let panel_h = i32::try_from(legend_area.dim_in_pixel().1).unwrap_or(i32::MAX);
        let row = ((panel_h - 50) / n_rows.max(1) as i32).clamp(12, 23);
        let legend_pt = LEGEND_PT.min(f64::from(row) * 0.72);
        let header = anchored(&text_style(legend_pt, MUTED), HPos::Left, VPos::Center);
        let entry = anchored(&text_style(legend_pt, INK), HPos::Left, VPos::Center);
        let marker_r = (f64::from(row) * 0.25).min(5.5);
        let (mx, tx) = (16, 34);
        let mut y = 22;
        legend_area.draw_text(headers[0], &header, (6, y))?;
        y += row;
        for (c, name) in classes.iter().enumerate() {
            draw_marker(
                &legend_area,
                (mx, y),
                0,
                marker_r,
                class_colour(c).to_rgba(),
                true,
            )?;
            legend_area.draw_text(name, &entry, (tx, y))?;
            y += row;
        }
        if show_groups {
            y += 10;
            legend_area.draw_text(headers[1], &header, (6, y))?;
            y += row;
            for (g, name) in groups.iter().enumerate() {
                draw_marker(&legend_area, (mx, y), g, marker_r, MUTED.to_rgba(), true)?;
                legend_area.draw_text(name, &entry, (tx, y))?;
                y += row;
            }
        }
        y += 10;
        legend_area.draw_text(headers[2], &header, (6, y))?;
        y += row;
        for (filled, label) in [true, false].into_iter().zip(fill_labels) {
            draw_marker(&legend_area, (mx, y), 0, marker_r, MUTED.to_rgba(), filled)?;
            legend_area.draw_text(label, &entry, (tx, y))?;
            y += row;
        }
        Ok(())
    }
}

impl Figure for Heatmap<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let (w, h) = root.dim_in_pixel();
        let (w, h) = (
            i32::try_from(w).unwrap_or(i32::MAX),
            i32::try_from(h).unwrap_or(i32::MAX),
        );
        let top = title_band(root, self.title, "")?;
        let n = self.labels.len().max(1);
        let labels: Vec<String> = self.labels.iter().map(|l| shorten(l, 18)).collect();
        let tick = if n <= 8 {
            TICK_PT
        } else if n <= 14 {
            13.0
        } else {
            10.0
        };
        let label_w = max_text_width(labels.iter().map(String::as_str), tick)?;
        let label_h = text_size("Ag", tick)?.1;
        let desc_h = text_size("Ag", AXIS_DESC_PT)?.1;
        let bar_title = "fraction of true class";
        let bar_tick_labels = ["0", "0.25", "0.5", "0.75", "1"];
        let bar_tick_w = max_text_width(bar_tick_labels, TICK_PT - 1.0)?;

        let left = 14 + desc_h + 12 + label_w + 8;
        let bar_w = 16;
        let right = 24 + bar_w + 6 + bar_tick_w + 12 + desc_h + 14;
        let avail_w = (w - left - right).max(n as i32);
        let bottom_fixed = 8 + 10 + desc_h + 16;
        let grid_top = top + 6;
        let avail_h =
            |label_extent: i32| (h - grid_top - bottom_fixed - label_extent).max(n as i32);
        let mut cell = avail_w.min(avail_h(label_h)) / n as i32;
        let vertical = label_w + 8 > cell;
        if vertical {
            cell = avail_w.min(avail_h(label_w)) / n as i32;
        }
        let cell = cell.max(1);
        let grid = cell * n as i32;
        let x0 = left + (avail_w - grid) / 2;
        let y0 = grid_top;

        // Cells and counts.
        let count_pt = (f64::from(cell) * 0.3).clamp(9.0, 18.0);
        for (i, row) in self.counts.iter().enumerate().take(n) {
            let total: usize = row.iter().sum();
            for (j, &count) in row.iter().enumerate().take(n) {
                let fraction = if total > 0 {
                    count as f64 / total as f64
                } else {
                    0.0
                };
                let colour = blues(fraction);
                let (cx0, cy0) = (x0 + j as i32 * cell, y0 + i as i32 * cell);
                root.draw(&Rectangle::new(
                    [(cx0, cy0), (cx0 + cell, cy0 + cell)],
                    colour.filled(),
                ))?;
                let ink = if is_dark(colour) {
                    WHITE
                } else if count == 0 {
                    ZERO_COUNT
                } else {
                    INK
                };
                let style = anchored(&text_style(count_pt, ink), HPos::Center, VPos::Center);
                root.draw_text(&count.to_string(), &style, (cx0 + cell / 2, cy0 + cell / 2))?;
            }
        }
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + grid, y0 + grid)],
            AXIS.stroke_width(1),
        ))?;

        // Row labels (true class) and column labels (predicted).
        let row_style = anchored(&text_style(tick, INK), HPos::Right, VPos::Center);
        let tick_len = 4;
        for (i, label) in labels.iter().enumerate() {
            let cy = y0 + i as i32 * cell + cell / 2;
            root.draw(&PathElement::new(
                vec![(x0 - tick_len, cy), (x0, cy)],
                AXIS.stroke_width(1),
            ))?;
            root.draw_text(label, &row_style, (x0 - tick_len - 4, cy))?;
        }
        let col_style = if vertical {
            anchored(&text_style(tick, INK), HPos::Right, VPos::Center)
                .transform(FontTransform::Rotate270)
        } else {
            anchored(&text_style(tick, INK), HPos::Center, VPos::Top)
        };
        let below = y0 + grid;
        for (j, label) in labels.iter().enumerate() {
            let cx = x0 + j as i32 * cell + cell / 2;
            root.draw(&PathElement::new(
                vec![(cx, below), (cx, below + tick_len)],
                AXIS.stroke_width(1),
            ))?;
            root.draw_text(label, &col_style, (cx, below + tick_len + 4))?;
        }
        let extent = if vertical { label_w } else { label_h };
        let desc = text_style(AXIS_DESC_PT, INK);
        root.draw_text(
            "predicted",
            &anchored(&desc, HPos::Center, VPos::Top),
            (x0 + grid / 2, below + tick_len + 4 + extent + 10),
        )?;
        root.draw_text(
            "true",
            &anchored(&desc, HPos::Center, VPos::Center).transform(FontTransform::Rotate270),
            (14 + desc_h / 2, y0 + grid / 2),
        )?;

        // Colour bar.
        let bx = x0 + grid + 24;
        let steps = 64;
        for s in 0..steps {
            let ya = y0 + grid * s / steps;
            let yb = y0 + grid * (s + 1) / steps;
            let fraction = 1.0 - (f64::from(s) + 0.5) / f64::from(steps);
            root.draw(&Rectangle::new(
                [(bx, ya), (bx + bar_w, yb)],
                blues(fraction).filled(),
            ))?;
        }
        root.draw(&Rectangle::new(
            [(bx, y0), (bx + bar_w, y0 + grid)],
            AXIS.stroke_width(1),
        ))?;
        let bar_tick = anchored(&text_style(TICK_PT - 1.0, INK), HPos::Left, VPos::Center);
        for (k, label) in bar_tick_labels.iter().enumerate() {
            let y = y0 + grid - grid * k as i32 / 4;
            root.draw(&PathElement::new(
                vec![(bx + bar_w, y), (bx + bar_w + 4, y)],
                AXIS.stroke_width(1),
            ))?;
            root.draw_text(label, &bar_tick, (bx + bar_w + 7, y))?;
        }
        root.draw_text(
            bar_title,
            &anchored(&desc, HPos::Center, VPos::Center).transform(FontTransform::Rotate270),
            (bx + bar_w + 6 + bar_tick_w + 12 + desc_h / 2, y0 + grid / 2),
        )?;
        Ok(())
    }
}

impl Figure for LinePlot<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let top = title_band(root, self.title, "")?;

        let mut entries: Vec<(String, Swatch)> = self
            .series
            .iter()
            .enumerate()
            .map(|(k, s)| {
                (
                    s.name.clone(),
                    Swatch::Line {
                        colour: series_colour(k),
                        marker: Some(k % MARKER_SHAPES),
                        dashed: false,
                    },
                )
            })
            .collect();
        let reference = self.reference.filter(|(_, v)| v.is_finite());
        if let Some((label, value)) = reference {
            entries.push((
                format!("{} ({})", label, format_value(value)),
                Swatch::Line {
                    colour: MUTED,
                    marker: None,
                    dashed: true,
                },
            ));
        }
        let legend_h = legend_rows(root, &entries, top)?;
        let (_, body) = root.split_vertically(top + legend_h);

        let finite = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter().copied())
                .filter(|&p| finite_point(p))
        };
        let (x_lo, x_hi) = min_max(finite().map(|p| p.0)).unwrap_or((0.0, 1.0));
        let integer_x = finite().all(|p| p.0.fract() == 0.0);
        let (y_lo, y_hi) = match &self.y_range {
            Some(r) => (r.start, r.end),
            None => {
                let ys = finite().map(|p| p.1).chain(reference.map(|r| r.1));
                let (lo, hi) = min_max(ys).unwrap_or((0.0, 1.0));
                padded(lo, hi, 0.06)
            }
        };
        let (x_lo, x_hi) = if integer_x && x_hi - x_lo >= 1.0 {
            (x_lo - 0.5, x_hi + 0.5)
        } else {
            padded(x_lo, x_hi, 0.03)
        };
        let (x_max_ticks, x_min_step) = if integer_x && x_hi - x_lo <= 17.0 {
            (20, 1.0)
        } else {
            (10, if integer_x { 1.0 } else { 0.0 })
        };
        let mut chart = numeric_chart(
            &body,
            [12, 28, 6, 10],
            NumericAxis::nice(x_lo, x_hi, x_max_ticks, x_min_step, self.x_label),
            NumericAxis::nice(y_lo, y_hi, 7, 0.0, self.y_label),
        )?;

        if let Some((_, value)) = reference
            && value >= y_lo
            && value <= y_hi
        {
            chart.draw_series(std::iter::once(DashedPathElement::new(
                vec![(x_lo, value), (x_hi, value)],
                8,
                5,
                MUTED.stroke_width(2),
            )))?;
        }

        let inside = |(x, y): (f64, f64)| x >= x_lo && x <= x_hi && y >= y_lo && y <= y_hi;
        for (k, s) in self.series.iter().enumerate() {
            let colour = series_colour(k);
            // Break the line at non-finite points.
            for segment in s.points.split(|&p| !finite_point(p)) {
                if segment.len() >= 2 {
                    chart.draw_series(LineSeries::new(
                        segment.iter().map(|&(x, y)| (x, y.clamp(y_lo, y_hi))),
                        colour.stroke_width(2),
                    ))?;
                }
            }
            for &p in s.points.iter().filter(|&&p| finite_point(p) && inside(p)) {
                let at = chart.backend_coord(&p);
                draw_marker(root, at, k % MARKER_SHAPES, 4.0, colour.to_rgba(), true)?;
            }
        }
        draw_frame(root, &chart)?;
        Ok(())
    }
}

impl Figure for BarChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let top = title_band(root, self.title, "")?;
        let entries: Vec<(String, Swatch)> = self
            .series
            .iter()
            .enumerate()
            .map(|(k, (name, _))| (name.clone(), Swatch::Block(series_colour(k))))
            .collect();
        let legend_h = legend_rows(root, &entries, top)?;
        let (_, body) = root.split_vertically(top + legend_h);

        let n = self.categories.len();
        let m = self.series.len().max(1);
        let (y_lo, y_hi) = (self.y_range.start, self.y_range.end);
        let y_axis = NumericAxis::nice(y_lo, y_hi, 7, 0.0, self.y_label);
        let y_area = y_axis.y_label_area()?;
        let centres: Vec<f64> = (0..n).map(|i| i as f64 + 0.5).collect();

        // Category labels must fit their group: shrink, then shorten.
        let body_w = i32::try_from(body.dim_in_pixel().0).unwrap_or(i32::MAX);
        let group_px = (body_w - y_area - 40) / n.max(1) as i32;
        let mut cat_pt = TICK_PT;
        while cat_pt > 10.0
            && max_text_width(self.categories.iter().copied(), cat_pt)? > group_px - 6
        {
            cat_pt -= 1.0;
        }
        let max_chars = self
            .categories
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(0);
        let mut keep = max_chars;
        while keep > 3
            && max_text_width(
                self.categories
                    .iter()
                    .map(|c| shorten(c, keep))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str),
                cat_pt,
            )? > group_px - 6
        {
            keep -= 1;
        }
        let shown: Vec<String> = self.categories.iter().map(|c| shorten(c, keep)).collect();

        let x_fmt = |v: &f64| {
            let i = v.floor();
            if i >= 0.0 {
                shown.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let y_fmt = y_axis.formatter();
        let style = MeshStyle {
            x_desc: "",
            y_desc: self.y_label,
            x_fmt: &x_fmt,
            y_fmt: &y_fmt,
            x_tick_pt: cat_pt,
            x_grid: false,
        };
        let mut chart = ticked_chart(
            &body,
            [12, 28, 20, 10],
            (40, y_area),
            (TickedAxis::new(0.0, n as f64, centres), y_axis.ticked()),
            &style,
        )?;

        let base = if y_lo <= 0.0 && y_hi >= 0.0 {
            0.0
        } else {
            y_lo
        };
        let group = 0.8;
        let bar = group / m as f64;
        let bar_px = {
            let a = chart.backend_coord(&(0.0, base)).0;
            let b = chart.backend_coord(&(bar, base)).0;
            b - a
        };
        let value_pt = 13.0;
        let label_fits = max_text_width(
            self.series
                .iter()
                .flat_map(|(_, v)| v.iter())
                .filter(|v| v.is_finite())
                .map(|&v| format!("{:.2}", v))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
            value_pt,
        )? + 2
            <= bar_px;
        for (k, (_, values)) in self.series.iter().enumerate() {
            let colour = series_colour(k);
            for (i, &v) in values.iter().enumerate().take(n) {
                if !v.is_finite() {
                    continue;
                }
                let x_a = i as f64 + (1.0 - group) / 2.0 + k as f64 * bar;
                let x_b = x_a + bar;
                let v_shown = v.clamp(y_lo, y_hi);
                let inset = bar * 0.04;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x_a + inset, base), (x_b - inset, v_shown)],
                    colour.filled(),
                )))?;
                if label_fits {
                    // Above the bar; a bar reaching the top puts its label in the
                    // margin above the axes, kept free for that.
                    let (px, py) = chart.backend_coord(&((x_a + x_b) / 2.0, v_shown));
                    let style = anchored(&text_style(value_pt, INK), HPos::Center, VPos::Bottom);
                    root.draw_text(&format!("{:.2}", v), &style, (px, py - 3))?;
                }
            }
        }
        draw_frame(root, &chart)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
    fn bars<'a>(
        title: &'a str,
        series: &'a [(String, Vec<f64>)],
        y_range: Range<f64>,
    ) -> BarChart<'a> {
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
        let err =
            grouped_bars(&bars("t", &mismatched, 0.0..1.0), &stem).expect_err("length mismatch");
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
}
