//! What every figure shares: the theme (colours, text sizes), text and its measuring,
//! ticks, markers, legends, axes and the frame.

use super::*;

/// Text, axes and grid colours (a matplotlib-like light theme).
pub(super) const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
pub(super) const MUTED: RGBColor = RGBColor(0x5a, 0x5a, 0x5a);
pub(super) const AXIS: RGBColor = RGBColor(0x40, 0x40, 0x40);
pub(super) const GRID: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);
pub(super) const ZERO_COUNT: RGBColor = RGBColor(0xa0, 0xa0, 0xa0);

/// Class colours (Okabe-Ito, colour-blind safe), ordered so the project's seven
/// emotions (angry, disgust, fear, happy, neutral, ps, sad) get fitting hues; cycles
/// beyond eight classes.
pub(super) const CLASS_COLOURS: [RGBColor; 8] = [
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
pub(super) const SERIES_COLOURS: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xb2),
    RGBColor(0xe6, 0x9f, 0x00),
    RGBColor(0x00, 0x9e, 0x73),
    RGBColor(0xd5, 0x5e, 0x00),
    RGBColor(0xcc, 0x79, 0xa7),
    RGBColor(0x56, 0xb4, 0xe9),
    RGBColor(0x22, 0x22, 0x22),
];

/// matplotlib's "Blues" colour map, sampled at 0, 1/8, …, 1.
pub(super) const BLUES: [(u8, u8, u8); 9] = [
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
pub(super) const TITLE_PT: f64 = 24.0;
pub(super) const SUBTITLE_PT: f64 = 16.0;
pub(super) const AXIS_DESC_PT: f64 = 18.0;
pub(super) const TICK_PT: f64 = 16.0;
pub(super) const LEGEND_PT: f64 = 16.0;

// ---------------------------------------------------------------------------------
// Text, ticks, markers, legends.

pub(super) fn font(size: f64) -> FontDesc<'static> {
    (FONT_FAMILY, size).into_font()
}

pub(super) fn text_style(size: f64, colour: RGBColor) -> TextStyle<'static> {
    font(size).color(&colour)
}

pub(super) fn anchored(style: &TextStyle<'static>, h: HPos, v: VPos) -> TextStyle<'static> {
    style.pos(Pos::new(h, v))
}

/// Width and height in pixels of `text` at `size`.
pub(super) fn text_size(text: &str, size: f64) -> Result<(i32, i32), DrawFailure> {
    let (w, h) = font(size).box_size(text)?;
    Ok((
        i32::try_from(w).unwrap_or(i32::MAX),
        i32::try_from(h).unwrap_or(i32::MAX),
    ))
}

pub(super) fn max_text_width<'s>(
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
pub(super) fn fit_size(text: &str, max: f64, min: f64, width: i32) -> Result<f64, DrawFailure> {
    let mut size = max;
    while size > min && text_size(text, size)?.0 > width {
        size -= 1.0;
    }
    Ok(size)
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
pub(super) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// Draws the title (and subtitle) centred on top; returns the band's height.
pub(super) fn title_band<DB: DrawingBackend>(
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
pub(super) fn nice_ticks(lo: f64, hi: f64, max_ticks: usize, min_step: f64) -> (Vec<f64>, usize) {
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

pub(super) fn format_tick(v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v);
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => s,
    }
}

/// A value for a label: at most three decimals, trailing zeros dropped.
pub(super) fn format_value(v: f64) -> String {
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
pub(super) fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
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

pub(super) fn min_max(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
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
pub(super) const MARKER_SHAPES: usize = 7;

/// The outline of marker `shape` of radius `r` around `(cx, cy)`; `None` for the
/// circle.
pub(super) fn marker_outline(
    shape: usize,
    (cx, cy): (i32, i32),
    r: f64,
) -> Option<Vec<(i32, i32)>> {
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
pub(super) fn draw_marker<DB: DrawingBackend>(
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
pub(super) enum Swatch {
    /// A short line, optionally dashed, optionally with a marker in its middle.
    Line {
        colour: RGBColor,
        marker: Option<usize>,
        dashed: bool,
    },
    /// A filled square.
    Block(RGBColor),
}

pub(super) const SWATCH_W: i32 = 32;

pub(super) fn draw_swatch<DB: DrawingBackend>(
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
pub(super) fn legend_rows<DB: DrawingBackend>(
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
pub(super) struct TickedAxis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl TickedAxis {
    pub(super) fn new(lo: f64, hi: f64, ticks: Vec<f64>) -> Self {
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

pub(super) type Axes = Cartesian2d<TickedAxis, TickedAxis>;

/// How a chart's mesh looks besides the fixed matplotlib-like styling: the axis
/// titles (empty for none), the tick label formatters, the x tick label size and
/// whether vertical grid lines are drawn.
pub(super) struct MeshStyle<'f> {
    pub(super) x_desc: &'f str,
    pub(super) y_desc: &'f str,
    pub(super) x_fmt: &'f dyn Fn(&f64) -> String,
    pub(super) y_fmt: &'f dyn Fn(&f64) -> String,
    pub(super) x_tick_pt: f64,
    pub(super) x_grid: bool,
}

/// Grid, axes, tick labels and axis titles, matplotlib-like.
pub(super) fn style_mesh<DB: DrawingBackend>(
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
pub(super) fn ticked_chart<'a, DB: DrawingBackend>(
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
pub(super) struct NumericAxis<'s> {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    decimals: usize,
    desc: &'s str,
}

impl<'s> NumericAxis<'s> {
    pub(super) fn nice(lo: f64, hi: f64, max_ticks: usize, min_step: f64, desc: &'s str) -> Self {
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
    pub(super) fn formatter(&self) -> impl Fn(&f64) -> String + use<> {
        let decimals = self.decimals;
        move |v: &f64| format_tick(*v, decimals)
    }

    /// The width a y label area needs for these tick labels and a rotated title.
    pub(super) fn y_label_area(&self) -> Result<i32, DrawFailure> {
        let labels: Vec<String> = self
            .ticks
            .iter()
            .map(|&v| format_tick(v, self.decimals))
            .collect();
        let widest = max_text_width(labels.iter().map(String::as_str), TICK_PT)?;
        Ok(widest + if self.desc.is_empty() { 16 } else { 38 })
    }

    pub(super) fn ticked(self) -> TickedAxis {
        TickedAxis::new(self.lo, self.hi, self.ticks)
    }
}

/// A chart with two numeric axes (tick labels and titles below and left), its mesh
/// drawn, inside `margins` (left, right, top, bottom) of `area`.
pub(super) fn numeric_chart<'a, DB: DrawingBackend>(
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
pub(super) fn draw_frame<DB: DrawingBackend>(
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

pub(super) fn class_colour(class: usize) -> RGBColor {
    CLASS_COLOURS[class % CLASS_COLOURS.len()]
}

pub(super) fn series_colour(k: usize) -> RGBColor {
    SERIES_COLOURS[k % SERIES_COLOURS.len()]
}

pub(super) fn blues(fraction: f64) -> RGBColor {
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

pub(super) fn is_dark(c: RGBColor) -> bool {
    0.299 * f64::from(c.0) + 0.587 * f64::from(c.1) + 0.114 * f64::from(c.2) < 150.0
}

pub(super) fn name_or(names: &[&str], i: usize, fallback: &str) -> String {
    match names.get(i) {
        Some(n) if !n.is_empty() => (*n).to_string(),
        _ => format!("{} {}", fallback, i),
    }
}
