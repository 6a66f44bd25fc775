//! An SVG scatter of 2-D samples (the first two coordinates) over reference samples.

use crate::{Error, Result};
use graft_tensor::tch::{Kind, Tensor};
use plotters::prelude::*;
use std::path::Path;

fn points(x: &Tensor) -> Result<Vec<(f64, f64)>> {
    let s = x.size();
    if s.len() != 2 || s[1] < 1 {
        return Err(Error::ShapeMismatch {
            what: "scatter samples [n, d]",
            expected: vec![-1, 2],
            actual: s,
        });
    }
    let cols = if s[1] >= 2 {
        x.narrow(1, 0, 2)
    } else {
        Tensor::cat(&[x.shallow_clone(), x.zeros_like()], 1)
    };
    let v = Vec::<f64>::try_from(cols.to_kind(Kind::Double).contiguous().view([-1]))?;
    Ok(v.chunks(2)
        .map(|c| (c[0], c[1]))
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect())
}

/// Writes an SVG scatter of `samples` (blue) over `reference` (grey), first two
/// coordinates, atomically.
pub fn scatter_svg(
    path: &Path,
    title: &str,
    samples: &Tensor,
    reference: Option<&Tensor>,
) -> Result<()> {
    let pts = points(samples)?;
    let refs = reference.map(points).transpose()?.unwrap_or_default();
    let all = pts.iter().chain(&refs);
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in all {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        return Err(Error::Config(format!(
            "{}: no finite samples to plot",
            path.display()
        )));
    }
    let pad = |lo: f64, hi: f64| {
        let w = (hi - lo).max(1e-9);
        (lo - 0.05 * w, hi + 0.05 * w)
    };
    let ((x0, x1), (y0, y1)) = (pad(x0, x1), pad(y0, y1));
    let err = |e: String| Error::Config(format!("{}: {e}", path.display()));
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
            .x_desc("x[0]")
            .y_desc("x[1]")
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(
                refs.iter()
                    .map(|&p| Circle::new(p, 2, RGBColor(190, 190, 190).filled())),
            )
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(
                pts.iter()
                    .map(|&p| Circle::new(p, 2, RGBColor(31, 119, 180).filled())),
            )
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    graft_tensor::atomic::write_atomic(path, svg.as_bytes())?;
    Ok(())
}
