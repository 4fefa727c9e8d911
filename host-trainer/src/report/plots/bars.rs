//! Grouped bar charts: per-class F1 of the models.

use super::*;

/// Fraction of a category's width its group of bars takes.
const GROUP: f64 = 0.8;
/// Size of the value written above a bar.
const VALUE_PT: f64 = 13.0;

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
        let (y_lo, y_hi) = (self.y_range.start, self.y_range.end);
        let y_axis = NumericAxis::nice(y_lo, y_hi, 7, 0.0, self.y_label);
        let y_area = y_axis.y_label_area()?;
        let centres: Vec<f64> = (0..n).map(|i| i as f64 + 0.5).collect();

        let body_w = i32::try_from(body.dim_in_pixel().0).unwrap_or(i32::MAX);
        let group_px = (body_w - y_area - 40) / n.max(1) as i32;
        let (cat_pt, shown) = self.category_labels(group_px)?;

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
        self.draw_bars(root, &mut chart)?;
        draw_frame(root, &chart)?;
        Ok(())
    }
}

impl BarChart<'_> {
    /// The size and text of the category labels, which must fit their group of
    /// `group_px` pixels: shrunk first, then shortened.
    fn category_labels(&self, group_px: i32) -> Result<(f64, Vec<String>), DrawFailure> {
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
        let shown = self.categories.iter().map(|c| shorten(c, keep)).collect();
        Ok((cat_pt, shown))
    }

    /// The bars of every series, side by side in each category, from zero (or the
    /// bottom of the range), each with its value above it when the values fit a bar.
    fn draw_bars<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        chart: &mut ChartContext<'_, DB, Axes>,
    ) -> Drawn {
        let n = self.categories.len();
        let m = self.series.len().max(1);
        let (y_lo, y_hi) = (self.y_range.start, self.y_range.end);
        let base = if y_lo <= 0.0 && y_hi >= 0.0 {
            0.0
        } else {
            y_lo
        };
        let bar = GROUP / m as f64;
        let bar_px = {
            let a = chart.backend_coord(&(0.0, base)).0;
            let b = chart.backend_coord(&(bar, base)).0;
            b - a
        };
        let label_fits = max_text_width(
            self.series
                .iter()
                .flat_map(|(_, v)| v.iter())
                .filter(|v| v.is_finite())
                .map(|&v| format!("{:.2}", v))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
            VALUE_PT,
        )? + 2
            <= bar_px;
        for (k, (_, values)) in self.series.iter().enumerate() {
            let colour = series_colour(k);
            for (i, &v) in values.iter().enumerate().take(n) {
                if !v.is_finite() {
                    continue;
                }
                let x_a = i as f64 + (1.0 - GROUP) / 2.0 + k as f64 * bar;
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
                    let style = anchored(&text_style(VALUE_PT, INK), HPos::Center, VPos::Bottom);
                    root.draw_text(&format!("{:.2}", v), &style, (px, py - 3))?;
                }
            }
        }
        Ok(())
    }
}
