//! The embedding scatter plot (t-SNE / PCA of a model's representations).

use super::*;

/// The legend's headers, and the labels of filled and hollow markers.
const HEADERS: [&str; 3] = ["emotion", "speaker", "split"];
const FILL_LABELS: [&str; 2] = ["held out", "training"];

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
        let (classes, groups) = self.legend_names(&points);
        // Legend panel on the right, outside the axes.
        let widest = max_text_width(
            classes
                .iter()
                .chain(&groups)
                .map(String::as_str)
                .chain(HEADERS)
                .chain(FILL_LABELS),
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
        let show_groups = !(self.group_names.is_empty() && groups.len() <= 1);
        draw_legend(
            &legend_area,
            &classes,
            show_groups.then_some(groups.as_slice()),
        )
    }
}

impl ScatterPlot<'_> {
    /// The names of the classes and of the groups (speakers), at least as many as
    /// `points` use; unnamed ones get a numbered name.
    fn legend_names(&self, points: &[&ScatterPoint]) -> (Vec<String>, Vec<String>) {
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
        (classes, groups)
    }
}

/// The legend panel: a colour per class, a shape per group (`None`: groups not shown),
/// filled or hollow for held out or training. Rows shrink (with their text) when many
/// groups would overflow the panel.
fn draw_legend<DB: DrawingBackend>(
    legend_area: &DrawingArea<DB, Shift>,
    classes: &[String],
    groups: Option<&[String]>,
) -> Drawn {
    let n_rows = classes.len() + groups.map_or(0, |groups| groups.len() + 1) + 4;
    let panel_h = i32::try_from(legend_area.dim_in_pixel().1).unwrap_or(i32::MAX);
    let row = ((panel_h - 50) / n_rows.max(1) as i32).clamp(12, 23);
    let legend_pt = LEGEND_PT.min(f64::from(row) * 0.72);
    let header = anchored(&text_style(legend_pt, MUTED), HPos::Left, VPos::Center);
    let entry = anchored(&text_style(legend_pt, INK), HPos::Left, VPos::Center);
    let marker_r = (f64::from(row) * 0.25).min(5.5);
    let (mx, tx) = (16, 34);
    let mut y = 22;
    legend_area.draw_text(HEADERS[0], &header, (6, y))?;
    y += row;
    for (c, name) in classes.iter().enumerate() {
        draw_marker(
            legend_area,
            (mx, y),
            0,
            marker_r,
            class_colour(c).to_rgba(),
            true,
        )?;
        legend_area.draw_text(name, &entry, (tx, y))?;
        y += row;
    }
    if let Some(groups) = groups {
        y += 10;
        legend_area.draw_text(HEADERS[1], &header, (6, y))?;
        y += row;
        for (g, name) in groups.iter().enumerate() {
            draw_marker(legend_area, (mx, y), g, marker_r, MUTED.to_rgba(), true)?;
            legend_area.draw_text(name, &entry, (tx, y))?;
            y += row;
        }
    }
    y += 10;
    legend_area.draw_text(HEADERS[2], &header, (6, y))?;
    y += row;
    for (filled, label) in [true, false].into_iter().zip(FILL_LABELS) {
        draw_marker(legend_area, (mx, y), 0, marker_r, MUTED.to_rgba(), filled)?;
        legend_area.draw_text(label, &entry, (tx, y))?;
        y += row;
    }
    Ok(())
}
