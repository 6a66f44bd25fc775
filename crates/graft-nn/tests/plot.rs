//! The one SVG writer: scatter plots and image grids (line charts are
//! covered with the experiment results).

use graft_nn::plot::{image_grid, scatter};

#[test]
fn image_grid_draws_every_pixel_on_one_gray_scale() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grid.svg");
    // Two images of 2x2 in two panels; values 0..16 span black to white.
    let a: Vec<f64> = (0..8).map(f64::from).collect();
    let b: Vec<f64> = (8..16).map(f64::from).collect();
    image_grid(&path, "t <&>", &[&a, &b], 2, 2).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    let grays: Vec<&str> = svg
        .match_indices("fill=\"#")
        .map(|(i, _)| &svg[i + 7..i + 13])
        .collect();
    // The background plus 2 images × 2 panels × 4 pixels.
    assert!(
        grays.contains(&"000000") && grays.contains(&"FFFFFF"),
        "{grays:?}"
    );
    assert!(grays.len() > 16, "{}", grays.len());
    let err = image_grid(&path, "t", &[&a[..3]], 2, 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("grid.svg") && err.contains("2x2"), "{err}");
}

#[test]
fn scatter_skips_non_finite_points_and_refuses_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.svg");
    scatter(
        &path,
        "s",
        "x",
        "y",
        &[(0.0, 1.0), (f64::NAN, 2.0)],
        &[(1.0, 1.0)],
    )
    .unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().contains("<circle"));
    let err = scatter(&path, "s", "x", "y", &[(f64::INFINITY, 0.0)], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("s.svg") && err.contains("no finite"), "{err}");
}
