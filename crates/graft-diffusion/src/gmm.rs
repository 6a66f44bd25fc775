//! The exact Gaussian-mixture oracle (spec §7.1): data `Σ_k π_k N(m_k, s_k² I)`
//! pushed through any process has the marginal `Σ_k π_k N(a_k, c_k² I)` with
//! `a_k = α m_k + (1−α)μ` and `c_k² = α² s_k² + σ²`, so the score, ε̂, x̂0, v and
//! the DLG level posterior are exact.

use crate::model::Model;
use crate::noise::normals;
use crate::param::{Coeffs, Parameterization, output_from};
use crate::process::Process;
use crate::{Error, Result};
use graft_tensor::tch::{Kind, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// An isotropic Gaussian mixture in d dimensions (s_k = 0 is a Dirac).
#[derive(Debug)]
pub struct Gmm {
    weights: Vec<f64>,
    means: Tensor,
    stds: Vec<f64>,
}

impl Clone for Gmm {
    fn clone(&self) -> Self {
        Self {
            weights: self.weights.clone(),
            means: self.means.copy(),
            stds: self.stds.clone(),
        }
    }
}

impl Gmm {
    /// A mixture with weights (normalised here), means `[K, d]` and stds `[K]`.
    pub fn new(weights: Vec<f64>, means: Tensor, stds: Vec<f64>) -> Result<Self> {
        let size = means.size();
        if size.len() != 2 || size[0] as usize != weights.len() || stds.len() != weights.len() {
            return Err(Error::ShapeMismatch {
                what: "GMM means [K, d] vs weights and stds [K]",
                expected: vec![weights.len() as i64, -1],
                actual: size,
            });
        }
        let total: f64 = weights.iter().sum();
        if weights.iter().any(|w| !(*w >= 0.0)) || !(total > 0.0) {
            return Err(Error::Config(format!(
                "GMM weights must be non-negative with a positive sum: {weights:?}"
            )));
        }
        if let Some(s) = stds.iter().find(|s| !(**s >= 0.0)) {
            return Err(Error::Invalid {
                name: "std",
                value: *s,
                reason: "component stds must be >= 0",
            });
        }
        Ok(Self {
            weights: weights.iter().map(|w| w / total).collect(),
            means: means.to_kind(Kind::Double),
            stds,
        })
    }
    /// Mixture weights π_k (summing to 1).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
    /// Means `[K, d]` (f64).
    pub fn means(&self) -> &Tensor {
        &self.means
    }
    /// Component stds s_k.
    pub fn stds(&self) -> &[f64] {
        &self.stds
    }
    /// The dimension d.
    pub fn dim(&self) -> i64 {
        self.means.size()[1]
    }
    /// Checks that `x` is `[n, d]` for this mixture's `d`.
    fn check_points(&self, x: &Tensor) -> Result<()> {
        let (d, xs) = (self.dim(), x.size());
        if xs.len() != 2 || xs[1] != d {
            return Err(Error::ShapeMismatch {
                what: "x vs GMM dimension [n, d]",
                expected: vec![-1, d],
                actual: xs,
            });
        }
        Ok(())
    }
    /// The number of components K.
    pub fn components(&self) -> usize {
        self.weights.len()
    }
    fn pick(&self, rng: &mut ChaCha8Rng) -> usize {
        let u: f64 = rng.random();
        let mut acc = 0.0;
        for (k, w) in self.weights.iter().enumerate() {
            acc += w;
            if u < acc {
                return k;
            }
        }
        self.weights.len() - 1
    }
    /// `n` exact samples of the marginal at `t` of `process` (t at its clean end
    /// gives the data), `[n, d]` f64. μ must broadcast to `[d]` or `[n, d]`.
    pub fn sample_marginal(
        &self,
        process: &dyn Process,
        t: f64,
        n: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor> {
        let c = Coeffs::at(process, t);
        let d = self.dim() as usize;
        let comps: Vec<i64> = (0..n).map(|_| self.pick(rng) as i64).collect();
        let idx = Tensor::from_slice(&comps);
        let m = self.means.index_select(0, &idx);
        let s: Vec<f64> = comps
            .iter()
            .map(|&k| {
                (c.alpha * c.alpha * self.stds[k as usize].powi(2) + c.sigma * c.sigma).sqrt()
            })
            .collect();
        let sd = Tensor::from_slice(&s).unsqueeze(1);
        let z = Tensor::from_slice(&normals(rng, n * d)).reshape([n as i64, d as i64]);
        let mut x = m * c.alpha + z * sd;
        if let Some(mu) = process.mu() {
            x += mu.to_kind(Kind::Double) * (1.0 - c.alpha);
        }
        Ok(x)
    }
    /// `n` exact data samples (x0), `[n, d]`.
    pub fn sample_data(&self, n: usize, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let d = self.dim() as usize;
        let comps: Vec<i64> = (0..n).map(|_| self.pick(rng) as i64).collect();
        let idx = Tensor::from_slice(&comps);
        let m = self.means.index_select(0, &idx);
        let s: Vec<f64> = comps.iter().map(|&k| self.stds[k as usize]).collect();
        let z = Tensor::from_slice(&normals(rng, n * d)).reshape([n as i64, d as i64]);
        Ok(m + z * Tensor::from_slice(&s).unsqueeze(1))
    }

    /// Per-component pieces at `(x, t)`: `(log r_k [n,K] normalised, a_k − x [n,K,d], c_k² [K], log p_t(x) [n])`.
    fn pieces(
        &self,
        process: &dyn Process,
        x: &Tensor,
        t: f64,
    ) -> Result<(Tensor, Tensor, Vec<f64>, Tensor)> {
        let c = Coeffs::at(process, t);
        let d = self.dim();
        self.check_points(x)?;
        let x = x.to_kind(Kind::Double);
        let mut a = (&self.means * c.alpha).unsqueeze(0); // [1,K,d]
        if let Some(mu) = process.mu() {
            a += mu.to_kind(Kind::Double).unsqueeze(-2) * (1.0 - c.alpha);
        }
        let diff = a - x.unsqueeze(1); // [n,K,d]
        let c2: Vec<f64> = self
            .stds
            .iter()
            .map(|s| c.alpha * c.alpha * s * s + c.sigma * c.sigma)
            .collect();
        if let Some(bad) = c2.iter().find(|v| !(**v > 0.0)) {
            return Err(Error::Invalid {
                name: "c_k^2",
                value: *bad,
                reason: "a Dirac component at sigma = 0 has no density",
            });
        }
        let c2t = Tensor::from_slice(&c2);
        let logw = Tensor::from_slice(&self.weights.iter().map(|w| w.ln()).collect::<Vec<_>>());
        let sq = diff.square().sum_dim_intlist(-1, false, Kind::Double); // [n,K]
        let logn =
            -(sq / (&c2t * 2.0)) - (&c2t * (2.0 * std::f64::consts::PI)).log() * (d as f64 / 2.0);
        let joint = logn + logw;
        let logp = joint.logsumexp(-1, false);
        let logr = &joint - logp.unsqueeze(-1);
        Ok((logr, diff, c2, logp))
    }

    /// `ln p_t(x)` for `x` `[n, d]`.
    pub fn log_density(&self, process: &dyn Process, x: &Tensor, t: f64) -> Result<Tensor> {
        Ok(self.pieces(process, x, t)?.3)
    }
    /// Responsibilities `r_k(x)` at t, `[n, K]`.
    pub fn responsibilities(&self, process: &dyn Process, x: &Tensor, t: f64) -> Result<Tensor> {
        Ok(self.pieces(process, x, t)?.0.exp())
    }
    /// The exact score `Σ_k r_k (a_k − x)/c_k²`.
    pub fn score(&self, process: &dyn Process, x: &Tensor, t: f64) -> Result<Tensor> {
        let (logr, diff, c2, _) = self.pieces(process, x, t)?;
        let w = logr.exp() / Tensor::from_slice(&c2);
        Ok((diff * w.unsqueeze(-1)).sum_dim_intlist(1, false, Kind::Double))
    }
    /// The exact posterior mean x̂0 in the per-component form
    /// `Σ_k r_k [m_k + α s_k²/c_k² (x − a_k)]` (uncentered).
    pub fn data(&self, process: &dyn Process, x: &Tensor, t: f64) -> Result<Tensor> {
        let alpha = process.alpha(t);
        let (logr, diff, c2, _) = self.pieces(process, x, t)?;
        let gain: Vec<f64> = self
            .stds
            .iter()
            .zip(&c2)
            .map(|(s, c)| alpha * s * s / c)
            .collect();
        let comp = self.means.unsqueeze(0) - diff * Tensor::from_slice(&gain).view([1, -1, 1]);
        Ok((comp * logr.exp().unsqueeze(-1)).sum_dim_intlist(1, false, Kind::Double))
    }
    /// The exact ε̂ = −σ s.
    pub fn noise(&self, process: &dyn Process, x: &Tensor, t: f64) -> Result<Tensor> {
        Ok(self.score(process, x, t)? * (-process.sigma(t)))
    }
    /// The log posterior over noise levels for DLG, `ln c(j|x) ∝ ln p(j) + ln p_{t_j}(x)`,
    /// `[n, J]` normalised, for level times `ts` with prior weights `log_prior` (uniform if `None`).
    /// All levels at once: `‖x − a_k‖²` is expanded in the level-independent
    /// `‖y‖²`, `⟨y, m_k − μ⟩` and `‖m_k − μ‖²` (y = x − μ).
    pub fn level_log_posterior(
        &self,
        process: &dyn Process,
        x: &Tensor,
        ts: &[f64],
        log_prior: Option<&[f64]>,
    ) -> Result<Tensor> {
        let d = self.dim();
        self.check_points(x)?;
        if let Some(p) = log_prior {
            if p.len() != ts.len() {
                return Err(Error::ShapeMismatch {
                    what: "level prior vs levels",
                    expected: vec![ts.len() as i64],
                    actual: vec![p.len() as i64],
                });
            }
        }
        let x = x.to_kind(Kind::Double);
        let (y, mc) = match process.mu() {
            Some(mu) => {
                let mu = mu.to_kind(Kind::Double);
                (&x - &mu, self.means.unsqueeze(0) - mu.unsqueeze(-2)) // [n,d], [1|n,K,d]
            }
            None => (x.shallow_clone(), self.means.unsqueeze(0)),
        };
        let yy = y
            .square()
            .sum_dim_intlist(-1, true, Kind::Double)
            .unsqueeze(-1); // [n,1,1]
        let ym = (y.unsqueeze(1) * &mc)
            .sum_dim_intlist(-1, false, Kind::Double)
            .unsqueeze(-1); // [n,K,1]
        let mm = mc
            .square()
            .sum_dim_intlist(-1, false, Kind::Double)
            .unsqueeze(-1); // [.,K,1]
        let alpha: Vec<f64> = ts.iter().map(|&t| process.alpha(t)).collect();
        let sigma: Vec<f64> = ts.iter().map(|&t| process.sigma(t)).collect();
        let a = Tensor::from_slice(&alpha).view([1, 1, -1]);
        let c2: Vec<f64> = self
            .stds
            .iter()
            .flat_map(|s| {
                alpha
                    .iter()
                    .zip(&sigma)
                    .map(move |(a, sg)| a * a * s * s + sg * sg)
            })
            .collect();
        if let Some(bad) = c2.iter().find(|v| !(**v > 0.0)) {
            return Err(Error::Invalid {
                name: "c_k^2",
                value: *bad,
                reason: "a Dirac component at sigma = 0 has no density",
            });
        }
        let c2 = Tensor::from_slice(&c2).view([1, self.components() as i64, ts.len() as i64]);
        let sq = (yy - ym * &a * 2.0 + mm * a.square()).clamp_min(0.0); // [n,K,J]
        let logw = Tensor::from_slice(&self.weights.iter().map(|w| w.ln()).collect::<Vec<_>>())
            .view([1, -1, 1]);
        let logn = -(sq / (&c2 * 2.0))
            - (&c2 * (2.0 * std::f64::consts::PI)).log() * (d as f64 / 2.0)
            + logw;
        let mut lp = logn.logsumexp(1, false); // [n,J]
        if let Some(p) = log_prior {
            lp += Tensor::from_slice(p).unsqueeze(0);
        }
        let norm = lp.logsumexp(-1, true);
        Ok(lp - norm)
    }
}

/// The GMM oracle as a [`Model`] under a process, predicting in a chosen parameterization.
pub struct GmmModel {
    gmm: Gmm,
    process: Arc<dyn Process>,
    param: Parameterization,
}

impl GmmModel {
    /// The exact model of `gmm` under `process`, predicting `param`.
    pub fn new(gmm: Gmm, process: Arc<dyn Process>, param: Parameterization) -> Self {
        Self {
            gmm,
            process,
            param,
        }
    }
    /// The mixture.
    pub fn gmm(&self) -> &Gmm {
        &self.gmm
    }
    /// The process.
    pub fn process(&self) -> &Arc<dyn Process> {
        &self.process
    }
}

impl Model for GmmModel {
    fn parameterization(&self) -> Parameterization {
        self.param
    }
    fn eval(&self, x: &Tensor, t: f64) -> Result<Tensor> {
        let p = &*self.process;
        let kind = x.kind();
        let out = match self.param {
            Parameterization::Score => self.gmm.score(p, x, t)?,
            Parameterization::Noise => self.gmm.noise(p, x, t)?,
            Parameterization::Data => self.gmm.data(p, x, t)?,
            Parameterization::Velocity => {
                let c = Coeffs::at(p, t);
                let eps = self.gmm.noise(p, x, t)?;
                let x0c = crate::process::centered(p, &self.gmm.data(p, x, t)?);
                output_from(Parameterization::Velocity, &eps, &x0c, c)
            }
        };
        Ok(out.to_kind(kind))
    }
}
