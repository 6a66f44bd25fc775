//! MNIST-1D: a small, procedurally generated 1-D analogue of MNIST.
//!
//! This is a Rust port of the data-set generator of the Python package
//! `mnist1d` 0.0.2 (Sam Greydanus and contributors, Apache-2.0 licence,
//! <https://github.com/greydanus/mnist1d>). Only the generator is ported; the
//! download of the published pickle and the pickle cache are not.
//!
//! Each example starts from one of ten hand-made 12-point templates (one per
//! digit) and goes through the same random pipeline as in the Python:
//!
//! 1. add `1e-8` to every template value (so the signal is never exactly 0),
//!    then append `p` zeros, `p` uniform in `padding[0]..=padding[1]`;
//! 2. resample linearly to `template_len + padding[1]` points ("dilation");
//! 3. multiply by `1 + scale_coeff * (u - 0.5)`, `u` uniform in `[0, 1)`;
//! 4. rotate right by `k` points, `k` uniform in `0..max_translation`
//!    (numpy slicing makes `k >= length` a no-op, and so does this port);
//! 5. replace every value that is exactly 0 (the padding) by correlated noise:
//!    `corr_noise_scale` times standard normals smoothed by a Gaussian filter
//!    of σ = 2 (the noise vector is drawn and filtered over the full length);
//! 6. add i.i.d. noise, `iid_noise_scale` times standard normals;
//! 7. shear: subtract `c * linspace(-0.5, 0.5, length)`, with
//!    `c = shear_scale * (u - 0.5)`;
//! 8. resample linearly to `final_seq_length` points.
//!
//! The data set holds `num_samples / 10` (rounded down) examples of each
//! class, generated class by class and then shuffled; optionally one random
//! permutation of the time axis is applied to every example (`shuffle_seq`);
//! finally all values are standardised together (minus the global mean,
//! divided by the global population standard deviation).
//!
//! The two scipy routines the Python calls are re-implemented here:
//!
//! - `scipy.ndimage.gaussian_filter(noise, 2)` with its defaults: order 0,
//!   `mode='reflect'` (the signal is mirrored about its edges with the edge
//!   value repeated, `d c b a | a b c d | d c b a`, periodically for lines
//!   shorter than the kernel), `truncate=4.0`, so the kernel radius is
//!   `int(4.0 * 2 + 0.5) = 8` and the weights are `exp(-x² / (2σ²))`
//!   normalised to sum 1;
//! - `scipy.interpolate.interp1d(linspace(0, 1, n), y, kind='linear')`
//!   evaluated at `linspace(0, 1, m)`. The Python keeps interp1d's default
//!   `bounds_error=None` with `fill_value=nan`, i.e. a point outside the data
//!   range would raise, but both grids span exactly `[0, 1]` (numpy's linspace
//!   sets the last point to the end value), so no point is ever out of range
//!   and there is no fill or extrapolation to reproduce. For 1-D float64
//!   input scipy delegates to `numpy.interp`, whose formula (exact value at a
//!   knot, `slope * (x - x_j) + y_j` in between) is used here, as is numpy's
//!   `linspace` (`i * step + start`, last point set to `stop`).
//!
//! What differs from the Python:
//!
//! - the random numbers come from [`ChaCha8Rng`] seeded with a `u64`, not from
//!   numpy's global Mersenne Twister, so the examples are not those of the
//!   Python for the same seed (the Python default seed is 42); the draws are
//!   made in the same order and from the same distributions;
//! - the result is one [`Dataset`] with all examples in the shuffled order;
//!   the Python cuts it into `x` (the first [`Mnist1dConfig::num_train`]
//!   examples) and `x_test` (the rest), which [`Dataset::select`] reproduces;
//! - the resampled time axis `t` that the Python returns for plotting is not
//!   produced.

use super::Dataset;
use crate::{Error, Result};
use graft_tensor::tch::Tensor;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// Number of digit classes (and templates).
const NUM_CLASSES: usize = 10;
/// Offset added to the templates so that only padding is exactly zero.
const EPS: f64 = 1e-8;
/// σ of the Gaussian filter applied to the correlated noise.
const NOISE_SIGMA: f64 = 2.0;
/// scipy's default `truncate` for `gaussian_filter`, in units of σ.
const FILTER_TRUNCATE: f64 = 4.0;
/// Largest per-example length (dilated or final) accepted, so that absurd
/// settings give an error rather than an allocation failure.
const MAX_POINTS: usize = 1 << 24;

/// The ten digit outlines before whitening, as drawn by the mnist1d author.
const RAW_TEMPLATES: [[f64; 12]; NUM_CLASSES] = [
    [5.0, 6.0, 6.5, 6.75, 7.0, 7.0, 7.0, 7.0, 6.75, 6.5, 6.0, 5.0],
    [5.0, 3.0, 3.0, 3.4, 3.8, 4.2, 4.6, 5.0, 5.4, 5.8, 5.0, 5.0],
    [5.0, 6.0, 6.5, 6.5, 6.0, 5.25, 4.75, 4.0, 3.5, 3.5, 4.0, 5.0],
    [5.0, 6.0, 6.5, 6.5, 6.0, 5.0, 5.0, 6.0, 6.5, 6.5, 6.0, 5.0],
    [5.0, 4.4, 3.8, 3.2, 2.6, 2.6, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0],
    [5.0, 3.0, 3.0, 3.0, 3.0, 5.0, 6.0, 6.5, 6.5, 6.0, 4.5, 5.0],
    [5.0, 4.0, 3.5, 3.25, 3.0, 3.0, 3.0, 3.0, 3.25, 3.5, 4.0, 5.0],
    [5.0, 7.0, 7.0, 6.6, 6.2, 5.8, 5.4, 5.0, 4.6, 4.2, 5.0, 5.0],
    [5.0, 4.0, 3.5, 3.5, 4.0, 5.0, 5.0, 4.0, 3.5, 3.5, 4.0, 5.0],
    [5.0, 4.0, 3.5, 3.5, 4.0, 5.0, 5.0, 5.0, 5.0, 4.7, 4.3, 5.0],
];

/// Settings of the MNIST-1D generator; [`Default`] gives the values of the
/// Python's `get_dataset_args()` (without its `seed`, 42, and download `url`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mnist1dConfig {
    /// Requested number of examples; `num_samples / 10` (rounded down) are made
    /// per class. Default 5000.
    pub num_samples: usize,
    /// Fraction of the shuffled examples the Python puts in its training part
    /// (see [`Mnist1dConfig::num_train`]); not used by the generator itself.
    /// Default 0.8.
    pub train_split: f64,
    /// Together with `padding[1]`, sets the length of the dilated signal
    /// (`template_len + padding[1]`); the templates themselves always have 12
    /// points. Default 12.
    pub template_len: usize,
    /// Inclusive range of the number of zeros appended to a template.
    /// Default `[36, 60]`.
    pub padding: [usize; 2],
    /// Amplitude factor is `1 + scale_coeff * (u - 0.5)`. Default 0.4.
    pub scale_coeff: f64,
    /// Circular shift drawn from `0..max_translation`; must be at least 1
    /// (1 means no shift). Default 48.
    pub max_translation: usize,
    /// Scale of the smoothed noise that replaces the padding. Default 0.25.
    pub corr_noise_scale: f64,
    /// Scale of the white noise added everywhere. Default 0.02.
    pub iid_noise_scale: f64,
    /// Shear slope is `shear_scale * (u - 0.5)`. Default 0.75.
    pub shear_scale: f64,
    /// Apply one random permutation of the time axis to all examples.
    /// Default false.
    pub shuffle_seq: bool,
    /// Points per example in the output. Default 40.
    pub final_seq_length: usize,
}

impl Default for Mnist1dConfig {
    fn default() -> Self {
        Self {
            num_samples: 5000,
            train_split: 0.8,
            template_len: 12,
            padding: [36, 60],
            scale_coeff: 0.4,
            max_translation: 48,
            corr_noise_scale: 0.25,
            iid_noise_scale: 2e-2,
            shear_scale: 0.75,
            shuffle_seq: false,
            final_seq_length: 40,
        }
    }
}

impl Mnist1dConfig {
    /// Checks that the settings describe a data set the Python could generate
    /// (it would fail or divide by zero otherwise).
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Invalid(format!("mnist1d: {msg}")));
        if self.num_samples < NUM_CLASSES {
            return bad(format!(
                "num_samples = {} gives no example per class (need at least {NUM_CLASSES})",
                self.num_samples
            ));
        }
        if self.final_seq_length == 0 || self.final_seq_length > MAX_POINTS {
            return bad(format!(
                "final_seq_length = {} is not in 1..={MAX_POINTS}",
                self.final_seq_length
            ));
        }
        let [low, high] = self.padding;
        if low > high {
            return bad(format!(
                "padding [{low}, {high}] has its low end above its high end"
            ));
        }
        match self.template_len.checked_add(high) {
            Some(len) if (2..=MAX_POINTS).contains(&len) => {}
            _ => {
                return bad(format!(
                    "template_len + padding[1] = {} + {high} is not in 2..={MAX_POINTS}",
                    self.template_len
                ));
            }
        }
        if self.max_translation == 0 {
            return bad("max_translation must be at least 1 (1 = no shift)".into());
        }
        if !(0.0..=1.0).contains(&self.train_split) {
            return bad(format!(
                "train_split = {} is not in [0, 1]",
                self.train_split
            ));
        }
        for (name, v) in [
            ("scale_coeff", self.scale_coeff),
            ("corr_noise_scale", self.corr_noise_scale),
            ("iid_noise_scale", self.iid_noise_scale),
            ("shear_scale", self.shear_scale),
        ] {
            if !v.is_finite() {
                return bad(format!("{name} = {v} is not finite"));
            }
        }
        Ok(())
    }

    /// Number of examples generated: `10 * (num_samples / 10)`.
    pub fn num_examples(&self) -> usize {
        NUM_CLASSES * (self.num_samples / NUM_CLASSES)
    }

    /// Size of the Python's training part, `int(num_examples * train_split)`:
    /// its `x` is the first `num_train` examples of the shuffled data set and
    /// `x_test` the rest.
    pub fn num_train(&self) -> usize {
        (self.num_examples() as f64 * self.train_split) as usize
    }

    /// One random draw of the MNIST-1D transform applied to `template` (any
    /// length; the built-in ones come from [`mnist1d_templates`]), in `f64`
    /// and before the data-set-wide standardisation; `final_seq_length`
    /// values. [`mnist1d_generate`] calls this once per example.
    pub fn transform<R: Rng + ?Sized>(&self, template: &[f64], rng: &mut R) -> Result<Vec<f64>> {
        self.validate()?;
        if template.len().saturating_add(self.padding[0]) < 2 {
            return Err(Error::Invalid(format!(
                "mnist1d: a {}-point template padded with at least {} zeros has fewer than 2 points to interpolate",
                template.len(),
                self.padding[0]
            )));
        }
        Ok(apply(template, self, &Draws::sample(self, rng)))
    }

    /// Length of the signal between the dilation and the final resampling.
    fn dilated_len(&self) -> usize {
        self.template_len + self.padding[1]
    }
}

/// The ten processed templates of MNIST-1D, index = digit: each raw outline
/// is centred, divided by its (population) standard deviation, shifted so it
/// starts (and ends) at 0, and divided by 6, with numpy's order of operations.
pub fn mnist1d_templates() -> Vec<[f64; 12]> {
    RAW_TEMPLATES
        .iter()
        .map(|raw| {
            let n = raw.len() as f64;
            let mut x = *raw;
            let mean = np_sum(&x) / n;
            x.iter_mut().for_each(|v| *v -= mean);
            // numpy's std recomputes the (now ~0) mean before squaring.
            let mean = np_sum(&x) / n;
            let sq: Vec<f64> = x.iter().map(|v| (v - mean) * (v - mean)).collect();
            let std = (np_sum(&sq) / n).sqrt();
            x.iter_mut().for_each(|v| *v /= std);
            let first = x[0];
            x.iter_mut().for_each(|v| *v = (*v - first) / 6.0);
            x
        })
        .collect()
}

/// Generates MNIST-1D with `config` and `seed`: inputs `[n, 1,
/// final_seq_length]` float32 (standardised over the whole data set), labels
/// `[n]` int64 in `0..10`, `n = 10 * (num_samples / 10)` examples with the
/// same count per class, in shuffled order; named `"mnist1d"`.
pub fn mnist1d_generate(config: &Mnist1dConfig, seed: u64) -> Result<Dataset> {
    config.validate()?;
    let per_class = config.num_samples / NUM_CLASSES;
    let n = config.num_examples();
    let len = config.final_seq_length;
    let total = n
        .checked_mul(len)
        .filter(|&t| i64::try_from(t).is_ok())
        .ok_or_else(|| Error::Invalid(format!("mnist1d: {n} x {len} values is too many")))?;
    let mut raw: Vec<f64> = Vec::new();
    raw.try_reserve_exact(total)
        .map_err(|e| Error::Invalid(format!("mnist1d: cannot hold {n} x {len} values: {e}")))?;
    let mut labels = Vec::with_capacity(n);

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (label, template) in mnist1d_templates().iter().enumerate() {
        for _ in 0..per_class {
            let draws = Draws::sample(config, &mut rng);
            raw.extend(apply(template, config, &draws));
            labels.push(label as i64);
        }
    }

    // Same order of draws as the Python: example order, then the time axis.
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let mut columns: Vec<usize> = (0..len).collect();
    if config.shuffle_seq {
        columns.shuffle(&mut rng);
    }
    let mut xs = Vec::with_capacity(total);
    for &i in &order {
        xs.extend(columns.iter().map(|&j| raw[i * len + j]));
    }
    drop(raw);
    let labels: Vec<i64> = order.iter().map(|&i| labels[i]).collect();

    let count = xs.len() as f64;
    let mean = np_sum(&xs) / count;
    let sq: Vec<f64> = xs.iter().map(|v| (v - mean) * (v - mean)).collect();
    let std = (np_sum(&sq) / count).sqrt();
    if !(std.is_finite() && std > 0.0) {
        return Err(Error::Invalid(format!(
            "mnist1d: the generated values have standard deviation {std}, cannot standardise"
        )));
    }
    let data: Vec<f32> = xs.iter().map(|v| ((v - mean) / std) as f32).collect();
    let inputs = Tensor::from_slice(&data).f_reshape([n as i64, 1, len as i64])?;
    Dataset::new(
        inputs,
        Tensor::from_slice(&labels),
        NUM_CLASSES as i64,
        "mnist1d",
    )
}

/// The random numbers one example consumes, in the Python's order.
#[derive(Debug, Clone)]
struct Draws {
    /// Uniform in `[0, 1)`, picks the padding length.
    u_pad: f64,
    /// Uniform in `[0, 1)`, picks the amplitude factor.
    u_scale: f64,
    /// The right rotation, in `0..max_translation`.
    shift: usize,
    /// Standard normals for the correlated noise, one per dilated point.
    corr: Vec<f64>,
    /// Standard normals for the white noise, one per dilated point.
    iid: Vec<f64>,
    /// Uniform in `[0, 1)`, picks the shear slope.
    u_shear: f64,
}

impl Draws {
    fn sample<R: Rng + ?Sized>(config: &Mnist1dConfig, rng: &mut R) -> Self {
        let len = config.dilated_len();
        let u_pad = rng.random::<f64>();
        let u_scale = rng.random::<f64>();
        let shift = rng.random_range(0..config.max_translation);
        let corr = (0..len).map(|_| rng.sample(StandardNormal)).collect();
        let iid = (0..len).map(|_| rng.sample(StandardNormal)).collect();
        let u_shear = rng.random::<f64>();
        Self {
            u_pad,
            u_scale,
            shift,
            corr,
            iid,
            u_shear,
        }
    }
}

/// The deterministic part of the transform, given the draws. Expects a
/// validated config, `template.len() + padding[0] >= 2` and noise vectors of
/// length `dilated_len`.
fn apply(template: &[f64], config: &Mnist1dConfig, d: &Draws) -> Vec<f64> {
    let [low, high] = config.padding;
    // Python: low + int(rand() * (high - low + 1)).
    let p = (low + (d.u_pad * (high - low + 1) as f64) as usize).min(high);
    let mut padded: Vec<f64> = template.iter().map(|v| v + EPS).collect();
    padded.resize(template.len() + p, 0.0);

    let mut x = interp_unit_grid(&padded, config.dilated_len());
    let factor = 1.0 + config.scale_coeff * (d.u_scale - 0.5);
    x.iter_mut().for_each(|v| *v *= factor);

    // concatenate([x[-k:], x[:-k]]): a right rotation, and no change for
    // k = 0 or k >= len (then x[-k:] is all of x and x[:-k] is empty).
    if d.shift > 0 && d.shift < x.len() {
        x.rotate_right(d.shift);
    }

    let corr: Vec<f64> = d.corr.iter().map(|z| config.corr_noise_scale * z).collect();
    let corr = gaussian_filter_reflect(&corr, NOISE_SIGMA);
    for ((v, c), z) in x.iter_mut().zip(&corr).zip(&d.iid) {
        if *v == 0.0 {
            *v = *c;
        }
        *v += config.iid_noise_scale * z;
    }

    let coeff = config.shear_scale * (d.u_shear - 0.5);
    for (v, t) in x.iter_mut().zip(linspace(-0.5, 0.5, config.dilated_len())) {
        *v -= coeff * t;
    }
    interp_unit_grid(&x, config.final_seq_length)
}

/// numpy's `linspace(start, stop, n)`: `i * step + start`, the last point
/// set to `stop` exactly, `[start]` for `n = 1`.
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (n - 1) as f64;
            let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
            v[n - 1] = stop;
            v
        }
    }
}

/// `y`, taken as samples at `linspace(0, 1, y.len())`, linearly interpolated
/// at `linspace(0, 1, n_out)` with `numpy.interp`'s formula (what scipy's
/// `interp1d(kind='linear')` uses for 1-D float64 data). Both grids cover
/// `[0, 1]`, so nothing is out of range. A single sample is held constant.
fn interp_unit_grid(y: &[f64], n_out: usize) -> Vec<f64> {
    if y.len() < 2 {
        return vec![y.first().copied().unwrap_or(0.0); n_out];
    }
    let xp = linspace(0.0, 1.0, y.len());
    let last = y.len() - 1;
    linspace(0.0, 1.0, n_out)
        .into_iter()
        .map(|x| {
            // j: the last knot with xp[j] <= x (xp[0] = 0 <= x always).
            let j = xp.partition_point(|&k| k <= x).saturating_sub(1);
            if j >= last {
                y[last]
            } else if xp[j] == x {
                y[j]
            } else {
                let slope = (y[j + 1] - y[j]) / (xp[j + 1] - xp[j]);
                slope * (x - xp[j]) + y[j]
            }
        })
        .collect()
}

/// `scipy.ndimage.gaussian_filter` on a 1-D array with its defaults: order 0,
/// `mode='reflect'`, `truncate=4.0` (kernel radius `int(4σ + 0.5)`).
fn gaussian_filter_reflect(x: &[f64], sigma: f64) -> Vec<f64> {
    let n = x.len();
    if n == 0 {
        return Vec::new();
    }
    let radius = (FILTER_TRUNCATE * sigma + 0.5) as i64;
    let mut weights: Vec<f64> = (-radius..=radius)
        .map(|i| (-0.5 / (sigma * sigma) * (i * i) as f64).exp())
        .collect();
    let total = np_sum(&weights);
    weights.iter_mut().for_each(|w| *w /= total);
    // 'reflect' extends d c b a | a b c d | d c b a, with period 2n.
    let period = 2 * n as i64;
    let at = |i: i64| {
        let m = i.rem_euclid(period);
        x[if m < n as i64 { m } else { period - 1 - m } as usize]
    };
    (0..n as i64)
        .map(|i| {
            weights
                .iter()
                .zip(-radius..=radius)
                .map(|(w, o)| w * at(i + o))
                .sum()
        })
        .collect()
}

/// numpy's pairwise summation of float64 (`add.reduce` of a contiguous
/// array): plain loop under 8 values, eight interleaved partial sums up to
/// 128, halving (at a multiple of 8) above.
fn np_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |s, v| s + v)
    } else if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            for (acc, v) in r.iter_mut().zip(chunk) {
                *acc += v;
            }
        }
        let mut s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &a[whole..] {
            s += v;
        }
        s
    } else {
        let mut half = n / 2;
        half -= half % 8;
        np_sum(&a[..half]) + np_sum(&a[half..])
    }
}

#[cfg(test)]
mod tests {
    //! The private helpers against scipy / the real mnist1d package, through
    //! `tests/fixtures/mnist1d/expected_stats.json` (made by `make.py` there).
    use super::*;
    use serde_json::Value;

    fn fixture() -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/mnist1d/expected_stats.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn floats(v: &Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn gaussian_filter_matches_scipy() {
        // Only the summation order differs from scipy's correlate1d: ~1e-16.
        for case in fixture()["gaussian_filter"].as_array().unwrap() {
            let got = gaussian_filter_reflect(&floats(&case["x"]), 2.0);
            let want = floats(&case["expected"]);
            assert!(max_abs_diff(&got, &want) < 1e-13, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn interpolation_matches_scipy_interp1d() {
        // Same formula as numpy.interp: equal up to rounding of exp-free
        // arithmetic, in practice bit for bit.
        for case in fixture()["interp"].as_array().unwrap() {
            let n_out = case["n_out"].as_u64().unwrap() as usize;
            let got = interp_unit_grid(&floats(&case["y"]), n_out);
            let want = floats(&case["expected"]);
            assert!(max_abs_diff(&got, &want) < 1e-14, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn scripted_transform_matches_python() {
        // mnist1d's transform() with numpy's draws replaced by the fixture's
        // (padding, scale, shift, both noise vectors, shear): the whole
        // pipeline, noise mask and filter included, agrees to rounding.
        let templates = mnist1d_templates();
        let cases = fixture()["scripted"].as_array().unwrap().clone();
        assert!(cases.len() >= 5);
        for case in cases {
            let config: Mnist1dConfig = serde_json::from_value(case["args"].clone()).unwrap();
            config.validate().unwrap();
            let draws = Draws {
                u_pad: case["u_pad"].as_f64().unwrap(),
                u_scale: case["u_scale"].as_f64().unwrap(),
                shift: case["shift"].as_u64().unwrap() as usize,
                corr: floats(&case["corr_normals"]),
                iid: floats(&case["iid_normals"]),
                u_shear: case["u_shear"].as_f64().unwrap(),
            };
            let label = case["label"].as_u64().unwrap() as usize;
            let got = apply(&templates[label], &config, &draws);
            let want = floats(&case["expected"]);
            let diff = max_abs_diff(&got, &want);
            eprintln!("scripted label {label}: max diff {diff:.1e}");
            assert!(diff < 1e-9, "label {label}: max diff {diff}");
        }
    }

    #[test]
    fn numpy_pairwise_sum_shapes() {
        let v: Vec<f64> = (0..1000).map(|i| i as f64 * 0.5).collect();
        for n in [0, 1, 7, 8, 12, 128, 129, 1000] {
            let exact: f64 = (0..n).map(|i| i as f64 * 0.5).sum();
            assert_eq!(np_sum(&v[..n]), exact);
        }
    }
}
