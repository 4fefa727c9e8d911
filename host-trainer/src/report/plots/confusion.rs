//! The confusion-matrix heatmap.

use super::*;

/// The colour bar's title and tick labels.
const BAR_TITLE: &str = "fraction of true class";
const BAR_TICK_LABELS: [&str; 5] = ["0", "0.25", "0.5", "0.75", "1"];
/// Width of the colour bar.
const BAR_W: i32 = 16;
/// Length of the label ticks.
const TICK_LEN: i32 = 4;

impl Figure for Heatmap<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let top = title_band(root, self.title, "")?;
        let layout = HeatmapLayout::of(self, root.dim_in_pixel(), top)?;
        self.draw_cells(root, &layout)?;
        layout.draw_labels(root)?;
        layout.draw_colour_bar(root)?;
        Ok(())
    }
}

impl Heatmap<'_> {
    /// Every cell coloured by its fraction of the row, with its count; the grid's frame.
    fn draw_cells<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        layout: &HeatmapLayout,
    ) -> Drawn {
        let HeatmapLayout {
            n, cell, x0, y0, ..
        } = *layout;
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
            [(x0, y0), (x0 + layout.grid, y0 + layout.grid)],
            AXIS.stroke_width(1),
        ))?;
        Ok(())
    }
}

/// Where a heatmap's parts go: the square grid of `n` × `n` cells (rotated column labels
/// when they do not fit across a cell), its labels and the colour bar on its right.
struct HeatmapLayout {
    /// The class labels, shortened.
    labels: Vec<String>,
    n: usize,
    /// Label text size.
    tick: f64,
    label_w: i32,
    label_h: i32,
    desc_h: i32,
    bar_tick_w: i32,
    /// Column labels written upwards.
    vertical: bool,
    cell: i32,
    grid: i32,
    /// Top-left corner of the grid.
    x0: i32,
    y0: i32,
}

impl HeatmapLayout {
    /// The layout of `plot` on an area of `size` pixels whose title band ends at `top`.
    fn of(plot: &Heatmap, size: (u32, u32), top: i32) -> Result<Self, DrawFailure> {
        let (w, h) = (
            i32::try_from(size.0).unwrap_or(i32::MAX),
            i32::try_from(size.1).unwrap_or(i32::MAX),
        );
        let n = plot.labels.len().max(1);
        let labels: Vec<String> = plot.labels.iter().map(|l| shorten(l, 18)).collect();
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
        let bar_tick_w = max_text_width(BAR_TICK_LABELS, TICK_PT - 1.0)?;

        let left = 14 + desc_h + 12 + label_w + 8;
        let right = 24 + BAR_W + 6 + bar_tick_w + 12 + desc_h + 14;
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
        Ok(Self {
            labels,
            n,
            tick,
            label_w,
            label_h,
            desc_h,
            bar_tick_w,
            vertical,
            cell,
            grid,
            x0: left + (avail_w - grid) / 2,
            y0: grid_top,
        })
    }

    /// Row labels (true class) and column labels (predicted), with their ticks and the
    /// axis titles.
    fn draw_labels<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let (x0, y0, cell, grid, tick) = (self.x0, self.y0, self.cell, self.grid, self.tick);
        let row_style = anchored(&text_style(tick, INK), HPos::Right, VPos::Center);
        for (i, label) in self.labels.iter().enumerate() {
            let cy = y0 + i as i32 * cell + cell / 2;
            root.draw(&PathElement::new(
                vec![(x0 - TICK_LEN, cy), (x0, cy)],
                AXIS.stroke_width(1),
            ))?;
            root.draw_text(label, &row_style, (x0 - TICK_LEN - 4, cy))?;
        }
        let col_style = if self.vertical {
            anchored(&text_style(tick, INK), HPos::Right, VPos::Center)
                .transform(FontTransform::Rotate270)
        } else {
            anchored(&text_style(tick, INK), HPos::Center, VPos::Top)
        };
        let below = y0 + grid;
        for (j, label) in self.labels.iter().enumerate() {
            let cx = x0 + j as i32 * cell + cell / 2;
            root.draw(&PathElement::new(
                vec![(cx, below), (cx, below + TICK_LEN)],
                AXIS.stroke_width(1),
            ))?;
            root.draw_text(label, &col_style, (cx, below + TICK_LEN + 4))?;
        }
        let extent = if self.vertical {
            self.label_w
        } else {
            self.label_h
        };
        let desc = text_style(AXIS_DESC_PT, INK);
        root.draw_text(
            "predicted",
            &anchored(&desc, HPos::Center, VPos::Top),
            (x0 + grid / 2, below + TICK_LEN + 4 + extent + 10),
        )?;
        root.draw_text(
            "true",
            &anchored(&desc, HPos::Center, VPos::Center).transform(FontTransform::Rotate270),
            (14 + self.desc_h / 2, y0 + grid / 2),
        )?;
        Ok(())
    }

    /// The colour bar right of the grid, from 0 (bottom) to 1, with its ticks and title.
    fn draw_colour_bar<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let (y0, grid) = (self.y0, self.grid);
        let bx = self.x0 + grid + 24;
        let steps = 64;
        for s in 0..steps {
            let ya = y0 + grid * s / steps;
            let yb = y0 + grid * (s + 1) / steps;
            let fraction = 1.0 - (f64::from(s) + 0.5) / f64::from(steps);
            root.draw(&Rectangle::new(
                [(bx, ya), (bx + BAR_W, yb)],
                blues(fraction).filled(),
            ))?;
        }
        root.draw(&Rectangle::new(
            [(bx, y0), (bx + BAR_W, y0 + grid)],
            AXIS.stroke_width(1),
        ))?;
        let bar_tick = anchored(&text_style(TICK_PT - 1.0, INK), HPos::Left, VPos::Center);
        for (k, label) in BAR_TICK_LABELS.iter().enumerate() {
            let y = y0 + grid - grid * k as i32 / 4;
            root.draw(&PathElement::new(
                vec![(bx + BAR_W, y), (bx + BAR_W + 4, y)],
                AXIS.stroke_width(1),
            ))?;
            root.draw_text(label, &bar_tick, (bx + BAR_W + 7, y))?;
        }
        let desc = text_style(AXIS_DESC_PT, INK);
        root.draw_text(
            BAR_TITLE,
            &anchored(&desc, HPos::Center, VPos::Center).transform(FontTransform::Rotate270),
            (
                bx + BAR_W + 6 + self.bar_tick_w + 12 + self.desc_h / 2,
                y0 + grid / 2,
            ),
        )?;
        Ok(())
    }
}
