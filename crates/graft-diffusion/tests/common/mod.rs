//! Helpers shared by graft-diffusion's integration tests.
#![allow(dead_code)]

use graft_diffusion::gmm::{Gmm, GmmModel};
use graft_diffusion::param::Parameterization;
use graft_diffusion::process::{MeanReverting, Process};
use graft_tensor::tch::{Kind, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// An f64 tensor `[n, d]` from rows.
pub fn t2(rows: &[Vec<f64>]) -> Tensor {
    let d = rows[0].len() as i64;
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Tensor::from_slice(&flat).reshape([rows.len() as i64, d])
}

/// An f64 vector tensor.
pub fn t1(v: &[f64]) -> Tensor {
    Tensor::from_slice(v)
}

/// max |a − b|.
pub fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

/// max |a|.
pub fn max_norm(a: &Tensor) -> f64 {
    a.to_kind(Kind::Double).abs().max().double_value(&[])
}

/// A seeded generator.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Standard normals `[n, d]` f64.
pub fn randn(rng: &mut ChaCha8Rng, n: i64, d: i64) -> Tensor {
    Tensor::from_slice(&graft_diffusion::noise::normals(rng, (n * d) as usize)).reshape([n, d])
}

/// The continuous-cosine MR process (eps 0.005) with σ∞ and μ.
pub fn cosine(sigma_inf: f64, mu: Option<Tensor>) -> Arc<MeanReverting> {
    Arc::new(MeanReverting::continuous_cosine(0.005, sigma_inf, mu).unwrap())
}

/// The exact model of `gmm` under `process`.
pub fn oracle(gmm: &Gmm, process: Arc<dyn Process>, p: Parameterization) -> GmmModel {
    GmmModel::new(gmm.clone(), process, p)
}

/// A Dirac at `m` (d = m.len()).
pub fn dirac(m: &[f64]) -> Gmm {
    Gmm::new(vec![1.0], t1(m).unsqueeze(0), vec![0.0]).unwrap()
}

/// The affine flow of a single Gaussian N(m, s²I) (spec §7.2) from x_T at `t_big` to `t`.
pub fn gaussian_flow(
    p: &dyn Process,
    m: &Tensor,
    s: f64,
    x_big: &Tensor,
    t_big: f64,
    t: f64,
) -> Tensor {
    let c = |t: f64| (p.alpha(t).powi(2) * s * s + p.sigma(t).powi(2)).sqrt();
    let mu = p
        .mu()
        .map(|m| m.to_kind(Kind::Double))
        .unwrap_or_else(|| Tensor::zeros_like(m));
    let mean = |t: f64| &mu + (m - &mu) * p.alpha(t);
    mean(t) + (x_big - mean(t_big)) * (c(t) / c(t_big))
}
