//! The built-in Gaussian-mixture problems of the reproduction (spec §7.5).

use crate::Result;
use crate::gmm::Gmm;
use crate::process::{Process, TableKind};
use crate::saved::ProcessSpec;
use graft_tensor::tch::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// A GMM under a process, with the time range to sample over.
pub struct Problem {
    /// Short name (`r1`, `r2`, `r3`).
    pub name: &'static str,
    /// The process (its μ is the mean it reverts to).
    pub process: Arc<dyn Process>,
    /// The process as a saved denoiser's configuration names it.
    pub process_spec: ProcessSpec,
    /// The data mixture.
    pub gmm: Gmm,
    /// Where sampling starts.
    pub t_start: f64,
    /// Where it ends (σ > 0).
    pub t_end: f64,
    /// The λ_min of uniform-λ grids (−5 on tables, none on continuous schedules).
    pub lambda_min: Option<f64>,
}

/// R1: a 2-D ring of 8 modes, radius 2, std 0.1, weights alternating 1:2,
/// μ = (0.5, −0.5), σ∞ = 1, continuous cosine, t_end = 1e−3.
pub fn r1() -> Result<Problem> {
    let k = 8;
    let mut means = Vec::new();
    for i in 0..k {
        let a = 2.0 * std::f64::consts::PI * i as f64 / k as f64;
        means.extend([2.0 * a.cos(), 2.0 * a.sin()]);
    }
    let weights = (0..k).map(|i| if i % 2 == 0 { 1.0 } else { 2.0 }).collect();
    let gmm = Gmm::new(
        weights,
        Tensor::from_slice(&means).reshape([k as i64, 2]),
        vec![0.1; k],
    )?;
    let mu = Tensor::from_slice(&[0.5, -0.5]);
    let spec = ProcessSpec::MeanRevertingCosine {
        eps: 0.005,
        sigma_inf: 1.0,
    };
    Ok(Problem {
        name: "r1",
        process: spec.build(Some(mu))?,
        process_spec: spec,
        gmm,
        t_start: 1.0,
        t_end: 1e-3,
        lambda_min: None,
    })
}

fn uniform_means(seed: u64, k: usize, d: usize, lo: f64, hi: f64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f64> = (0..k * d).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::from_slice(&v).reshape([k as i64, d as i64])
}

/// R2: 64-D, 10 equally weighted modes uniform in [−1, 1]⁶⁴, std 0.05,
/// μ = 0.3·𝟙, σ∞ = 1, continuous cosine, t_end = 1e−3. The means come from `seed`.
pub fn r2(seed: u64) -> Result<Problem> {
    let (k, d) = (10, 64);
    let gmm = Gmm::new(
        vec![1.0; k],
        uniform_means(seed, k, d, -1.0, 1.0),
        vec![0.05; k],
    )?;
    let mu = Tensor::full([d as i64], 0.3, crate::noise::F64);
    let spec = ProcessSpec::MeanRevertingCosine {
        eps: 0.005,
        sigma_inf: 1.0,
    };
    Ok(Problem {
        name: "r2",
        process: spec.build(Some(mu))?,
        process_spec: spec,
        gmm,
        t_start: 1.0,
        t_end: 1e-3,
        lambda_min: None,
    })
}

/// R3: the reference discrete cosine table (T = 100, eps = 0.005, σ∞ = 50/255),
/// data in [0, 1]: 16-D, 10 modes uniform in [0.2, 0.8]¹⁶, std 0.05, μ = 0.5·𝟙
/// (a fixed "degraded image"), from index T to index 0, λ_min = −5.
pub fn r3(seed: u64) -> Result<Problem> {
    let (k, d) = (10, 16);
    let gmm = Gmm::new(
        vec![1.0; k],
        uniform_means(seed, k, d, 0.2, 0.8),
        vec![0.05; k],
    )?;
    let mu = Tensor::full([d as i64], 0.5, crate::noise::F64);
    let spec = ProcessSpec::MeanRevertingTable {
        table: TableKind::Cosine,
        steps: 100,
        eps: 0.005,
        sigma_inf: 50.0 / 255.0,
    };
    Ok(Problem {
        name: "r3",
        process: spec.build(Some(mu))?,
        process_spec: spec,
        gmm,
        t_start: 100.0,
        t_end: 0.0,
        lambda_min: Some(-5.0),
    })
}
