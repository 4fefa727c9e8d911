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
//!
//! This module holds the inputs, the checks and the writing; one file per kind of figure
//! draws it: `scatter.rs` (embedding maps), `confusion.rs` (confusion heatmaps),
//! `lines.rs` (training curves, the layer probe) and `bars.rs` (grouped bars), over the
//! shared theme, text, ticks, markers, legends and axes of `style.rs`.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, FontTransform, RGBAColor, register_font};

mod bars;
mod confusion;
mod lines;
mod scatter;
mod style;
#[cfg(test)]
mod tests;

use style::*;

/// The font family every text of every figure uses (the embedded DejaVu Sans).
pub const FONT_FAMILY: &str = "sans-serif";

/// DejaVu Sans, embedded so PNG text renders without any system font.
static DEJAVU_SANS: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

/// Pixel size (width, height) of a [`scatter`] figure.
pub const SCATTER_SIZE: (u32, u32) = (900, 720);
/// Pixel size (width, height) of a [`confusion_heatmap`] figure.
pub const HEATMAP_SIZE: (u32, u32) = (720, 640);
/// Pixel size (width, height) of a [`line_plot`] figure.
pub const LINE_SIZE: (u32, u32) = (900, 540);
/// Pixel size (width, height) of a [`grouped_bars`] figure.
pub const BAR_SIZE: (u32, u32) = (900, 540);

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
