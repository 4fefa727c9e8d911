//! Line plots: training curves, the layer probe.

use super::*;

impl Figure for LinePlot<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let top = title_band(root, self.title, "")?;
        let reference = self.reference.filter(|(_, v)| v.is_finite());
        let legend_h = legend_rows(root, &self.legend_entries(reference), top)?;
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
        self.draw_lines(root, &mut chart, (x_lo, x_hi), (y_lo, y_hi))?;
        draw_frame(root, &chart)?;
        Ok(())
    }
}

impl LinePlot<'_> {
    /// One legend entry per series (colour and marker), then the dashed reference line.
    fn legend_entries(&self, reference: Option<(&str, f64)>) -> Vec<(String, Swatch)> {
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
        entries
    }

    /// Every series as a line (broken at non-finite points, clamped to the y range) with
    /// a marker at each point inside the axes.
    fn draw_lines<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        chart: &mut ChartContext<'_, DB, Axes>,
        (x_lo, x_hi): (f64, f64),
        (y_lo, y_hi): (f64, f64),
    ) -> Drawn {
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
        Ok(())
    }
}
