//! graft's one SVG writer: line charts for the reproduce report, scatter
//! plots and image grids for `graft sample`. Every figure is drawn with
//! plotters into a string and written atomically; the data come in as plain
//! numbers, so method crates never draw (feature `plot`).

use crate::{Error, Result};
use plotters::prelude::*;
use std::path::Path;

/// One line of a chart: a label and its points.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points `(x, y)`.
    pub points: Vec<(f64, f64)>,
}

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Draws `series` as lines with markers into an SVG at `path` (written atomically).
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    let err = |e: String| Error::Plot {
        path: path.to_path_buf(),
        reason: e,
    };
    let ((x0, x1), (y0, y1)) = bounds(series.iter().flat_map(|s| s.points.iter()), 0.03)
        .ok_or_else(|| err("no finite points to plot".into()))?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| err(e.to_string()))?
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| err(e.to_string()))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    write_svg(path, &svg)
}

/// Draws `points` (blue) over `reference` points (grey) into a square SVG
/// at `path`; non-finite points are skipped.
pub fn scatter(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[(f64, f64)],
    reference: &[(f64, f64)],
) -> Result<()> {
    let err = |e: String| Error::Plot {
        path: path.to_path_buf(),
        reason: e,
    };
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let ((x0, x1), (y0, y1)) = bounds(points.iter().chain(reference), 0.05)
        .ok_or_else(|| err("no finite samples to plot".into()))?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for (pts, color) in [(reference, RGBColor(190, 190, 190)), (points, PALETTE[0])] {
            chart
                .draw_series(
                    pts.iter()
                        .filter(finite)
                        .map(|&p| Circle::new(p, 2, color.filled())),
                )
                .map_err(|e| err(e.to_string()))?;
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    write_svg(path, &svg)
}

/// Draws `count` square gray images of `side × side` pixels, eight to a row,
/// into an SVG at `path`: each image's panels side by side (e.g. a condition
/// and its sample), `panels[p]` holding `count · side²` values row-major.
/// One gray scale spans all shown values (black = smallest, white =
/// largest); non-finite pixels are black.
pub fn image_grid(
    path: &Path,
    title: &str,
    panels: &[&[f64]],
    count: usize,
    side: usize,
) -> Result<()> {
    let err = |e: String| Error::Plot {
        path: path.to_path_buf(),
        reason: e,
    };
    let d = side * side;
    if side == 0 || panels.is_empty() || panels.iter().any(|p| p.len() < count * d) {
        return Err(err(format!(
            "image grid needs {} panel(s) of {count} images of {side}x{side} pixels",
            panels.len().max(1)
        )));
    }
    let finite = panels
        .iter()
        .flat_map(|p| p[..count * d].iter())
        .filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
        (a.min(v), b.max(v))
    });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let (cell, gap, per_row) = (4usize, 6usize, 8usize);
    let img = side * cell;
    let group = panels.len() * img + (panels.len() - 1) * 2 + gap;
    let width = per_row * group + gap;
    let height = 40 + count.div_ceil(per_row) * (img + gap) + gap;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (width as u32, height as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        root.draw(&Text::new(
            title.to_string(),
            (gap as i32, 10),
            ("sans-serif", 14).into_font(),
        ))
        .map_err(|e| err(e.to_string()))?;
        for i in 0..count {
            let (gx, gy) = (
                gap + (i % per_row) * group,
                40 + (i / per_row) * (img + gap),
            );
            for (p, panel) in panels.iter().enumerate() {
                let ox = gx + p * (img + 2);
                for (j, &v) in panel[i * d..(i + 1) * d].iter().enumerate() {
                    let g = if v.is_finite() {
                        (((v - lo) / span).clamp(0.0, 1.0) * 255.0).round() as u8
                    } else {
                        0
                    };
                    let (cx, cy) = (
                        (ox + (j % side) * cell) as i32,
                        (gy + (j / side) * cell) as i32,
                    );
                    root.draw(&Rectangle::new(
                        [(cx, cy), (cx + cell as i32, cy + cell as i32)],
                        RGBColor(g, g, g).filled(),
                    ))
                    .map_err(|e| err(e.to_string()))?;
                }
            }
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    write_svg(path, &svg)
}

/// The padded x and y ranges of the finite points, `None` when there are none.
fn bounds<'a>(
    points: impl Iterator<Item = &'a (f64, f64)>,
    margin: f64,
) -> Option<((f64, f64), (f64, f64))> {
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        return None;
    }
    let pad = |lo: f64, hi: f64| {
        if hi - lo < 1e-12 {
            (lo - 0.5, hi + 0.5)
        } else {
            (lo - margin * (hi - lo), hi + margin * (hi - lo))
        }
    };
    Some((pad(x0, x1), pad(y0, y1)))
}

fn write_svg(path: &Path, svg: &str) -> Result<()> {
    graft_tensor::atomic::write_atomic(path, svg.as_bytes())?;
    Ok(())
}
