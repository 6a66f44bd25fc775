//! Diffusion processes in one notation (spec §1): the marginal is
//! `x_t = α_t·x0 + (1−α_t)·μ + σ_t·ε`, t running from the clean end to T.
//!
//! Every schedule scalar (α, σ, λ, f, g²) is computed in f64 from ln α, the
//! one interpolated quantity of a table (spec §8.4).

use crate::{Error, Result};
use graft_tensor::tch::Tensor;

/// A diffusion process with an affine drift; `Send + Sync`, so a model
/// holding one (`Arc<dyn Process>`) can move between and serve threads.
pub trait Process: Send + Sync {
    /// `ln α_t`.
    fn log_alpha(&self, t: f64) -> f64;
    /// `σ_t` (the noise standard deviation of the marginal).
    fn sigma(&self, t: f64) -> f64;
    /// Drift rate `f(t) = −d ln α_t / dt`.
    fn drift_rate(&self, t: f64) -> f64;
    /// Squared diffusion coefficient `g²(t) = dσ²/dt + 2fσ²`.
    fn g2(&self, t: f64) -> f64;
    /// Stationary standard deviation σ∞ (1 for VP, VE and EDM).
    fn sigma_inf(&self) -> f64;
    /// The mean the process reverts to (`None`: zero).
    fn mu(&self) -> Option<&Tensor>;
    /// The valid time range `(t_min, t_max)`; σ may be 0 at `t_min`.
    fn t_range(&self) -> (f64, f64);

    /// `α_t`.
    fn alpha(&self, t: f64) -> f64 {
        self.log_alpha(t).exp()
    }
    /// Half log-SNR `λ_t = ln α_t − ln σ_t` (strictly decreasing in t).
    fn lambda(&self, t: f64) -> f64 {
        self.log_alpha(t) - self.sigma(t).ln()
    }
    /// The time whose λ is `lambda` (bisection in f64).
    fn t_of_lambda(&self, lambda: f64) -> Result<f64> {
        let (lo_t, hi_t) = self.t_range();
        let (l_hi, l_lo) = (self.lambda(lo_t), self.lambda(hi_t));
        if !(lambda >= l_lo && lambda <= l_hi) {
            return Err(Error::LambdaOutOfRange {
                lambda,
                lo: l_lo,
                hi: l_hi,
            });
        }
        let (mut a, mut b) = (lo_t, hi_t);
        for _ in 0..200 {
            let m = 0.5 * (a + b);
            if m <= a || m >= b {
                break;
            }
            if self.lambda(m) > lambda {
                a = m;
            } else {
                b = m;
            }
        }
        Ok(0.5 * (a + b))
    }
    /// Checks that `t` is inside the valid range.
    fn check_t(&self, t: f64) -> Result<()> {
        let (lo, hi) = self.t_range();
        if t.is_finite() && t >= lo - 1e-12 * hi.abs().max(1.0) && t <= hi * (1.0 + 1e-12) {
            Ok(())
        } else {
            Err(Error::TimeOutOfRange { t, lo, hi })
        }
    }
}

/// The mean-reversion rate schedule θ_t of a mean-reverting process, given by
/// its integral Θ_t (so ln α_t = −Θ_t).
#[derive(Debug, Clone)]
pub enum ThetaSchedule {
    /// A reference discrete table over indices 0..=T (time in index units),
    /// Θ interpolated linearly between indices.
    Table(ThetaTable),
    /// The continuous cosine schedule on [0, 1] (spec §2).
    Cosine(ContinuousCosine),
    /// Song et al.'s VP linear β: θ = β/2, β(t) = β0 + t(β1 − β0), t ∈ [0, 1].
    LinearBeta {
        /// β at t = 0.
        beta0: f64,
        /// β at t = 1.
        beta1: f64,
    },
}

impl ThetaSchedule {
    /// Θ_t.
    pub fn big_theta(&self, t: f64) -> f64 {
        match self {
            Self::Table(tab) => tab.big_theta(t),
            Self::Cosine(c) => c.big_theta(t),
            Self::LinearBeta { beta0, beta1 } => 0.25 * t * t * (beta1 - beta0) + 0.5 * t * beta0,
        }
    }
    /// θ_t = dΘ/dt.
    pub fn theta(&self, t: f64) -> f64 {
        match self {
            Self::Table(tab) => tab.theta_rate(t),
            Self::Cosine(c) => c.theta(t),
            Self::LinearBeta { beta0, beta1 } => 0.5 * (beta0 + t * (beta1 - beta0)),
        }
    }
    /// The time range.
    pub fn t_range(&self) -> (f64, f64) {
        match self {
            Self::Table(tab) => (0.0, tab.steps() as f64),
            Self::Cosine(_) | Self::LinearBeta { .. } => (0.0, 1.0),
        }
    }
}

/// Which θ table the reference code builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// `θ_j = 1 − c((j+1)/(T+2))/c(0)`, c(u) = cos²(π/2·(u+s)/(1+s)), s = 0.008.
    Cosine,
    /// DDPM's linear betas (1e−4 to 0.02) scaled by 1000/(T+1).
    Linear,
    /// θ_j = 1.
    Constant,
}

/// The reference discrete θ table: θ_j for j = 0..=T, the inclusive cumulative
/// sum `Θ_j = dt·Σ_{i≤j} θ_i` with `dt = −ln(eps)/Σθ`, so α_T = eps.
#[derive(Debug, Clone)]
pub struct ThetaTable {
    thetas: Vec<f64>,
    cumsum: Vec<f64>,
    dt: f64,
}

impl ThetaTable {
    /// Builds the table with `steps` = T and α_T = `eps`.
    pub fn new(kind: TableKind, steps: usize, eps: f64) -> Result<Self> {
        if steps < 1 {
            return Err(Error::Invalid {
                name: "steps",
                value: steps as f64,
                reason: "a table needs T >= 1",
            });
        }
        if !(eps > 0.0 && eps < 1.0) {
            return Err(Error::Invalid {
                name: "eps",
                value: eps,
                reason: "alpha_T must lie in (0, 1)",
            });
        }
        let n = steps + 1;
        let thetas: Vec<f64> = match kind {
            TableKind::Cosine => {
                let s = 0.008;
                let c = |u: f64| {
                    ((u + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                let c0 = c(0.0);
                (0..n)
                    .map(|j| 1.0 - c((j + 1) as f64 / (steps + 2) as f64) / c0)
                    .collect()
            }
            TableKind::Linear => {
                let scale = 1000.0 / n as f64;
                let (b0, b1) = (scale * 1e-4, scale * 0.02);
                (0..n)
                    .map(|j| {
                        if n == 1 {
                            b0
                        } else {
                            b0 + (b1 - b0) * j as f64 / (n - 1) as f64
                        }
                    })
                    .collect()
            }
            TableKind::Constant => vec![1.0; n],
        };
        let total: f64 = thetas.iter().sum();
        let dt = -eps.ln() / total;
        let mut acc = 0.0;
        let cumsum = thetas
            .iter()
            .map(|th| {
                acc += th;
                acc * dt
            })
            .collect();
        Ok(Self { thetas, cumsum, dt })
    }
    /// T (the last index).
    pub fn steps(&self) -> usize {
        self.thetas.len() - 1
    }
    /// The raw θ_j.
    pub fn thetas(&self) -> &[f64] {
        &self.thetas
    }
    /// The time step dt of the reference code.
    pub fn dt(&self) -> f64 {
        self.dt
    }
    /// Θ_j at the table's indices.
    pub fn cumsum(&self) -> &[f64] {
        &self.cumsum
    }
    fn big_theta(&self, t: f64) -> f64 {
        let tmax = self.steps() as f64;
        let t = t.clamp(0.0, tmax);
        let j = (t.floor() as usize).min(self.steps() - 1);
        let w = t - j as f64;
        self.cumsum[j] + w * (self.cumsum[j + 1] - self.cumsum[j])
    }
    /// dΘ/dt of the linear interpolant: dt·θ_j on (j−1, j], dt·θ_0 at 0.
    fn theta_rate(&self, t: f64) -> f64 {
        let j = (t.max(0.0).ceil() as usize).min(self.steps());
        self.dt * self.thetas[j]
    }
}

/// The continuous cosine schedule `θ(t) = κ(1 − cos²(at+b)/cos²(b))` on [0, 1],
/// a = π/(2(1+s)), b = a·s, κ such that Θ(1) = −ln eps.
#[derive(Debug, Clone, Copy)]
pub struct ContinuousCosine {
    a: f64,
    b: f64,
    kappa: f64,
}

impl ContinuousCosine {
    /// The schedule with α_1 = `eps` (s = 0.008).
    pub fn new(eps: f64) -> Result<Self> {
        if !(eps > 0.0 && eps < 1.0) {
            return Err(Error::Invalid {
                name: "eps",
                value: eps,
                reason: "alpha_1 must lie in (0, 1)",
            });
        }
        let s = 0.008;
        let a = std::f64::consts::PI / (2.0 * (1.0 + s));
        let b = a * s;
        let unit = Self { a, b, kappa: 1.0 };
        let kappa = -eps.ln() / unit.big_theta(1.0);
        Ok(Self { a, b, kappa })
    }
    /// κ.
    pub fn kappa(&self) -> f64 {
        self.kappa
    }
    fn big_theta(&self, t: f64) -> f64 {
        let (a, b) = (self.a, self.b);
        let cb2 = b.cos().powi(2);
        self.kappa
            * (t - (t / 2.0 + ((2.0 * (a * t + b)).sin() - (2.0 * b).sin()) / (4.0 * a)) / cb2)
    }
    fn theta(&self, t: f64) -> f64 {
        self.kappa * (1.0 - (self.a * t + self.b).cos().powi(2) / self.b.cos().powi(2))
    }
}

/// The mean-reverting SDE `dx = θ_t(μ − x)dt + g_t dW`, g² = 2σ∞²θ (IR-SDE);
/// VP is the case θ = β/2, σ∞ = 1, μ = 0.
#[derive(Debug)]
pub struct MeanReverting {
    theta: ThetaSchedule,
    sigma_inf: f64,
    mu: Option<graft_tensor::shared::SharedTensor>,
}

impl MeanReverting {
    /// A process with schedule `theta`, stationary std `sigma_inf` and mean `mu`.
    pub fn new(theta: ThetaSchedule, sigma_inf: f64, mu: Option<Tensor>) -> Result<Self> {
        if !(sigma_inf > 0.0 && sigma_inf.is_finite()) {
            return Err(Error::Invalid {
                name: "sigma_inf",
                value: sigma_inf,
                reason: "must be positive and finite",
            });
        }
        Ok(Self {
            theta,
            sigma_inf,
            mu: mu.map(graft_tensor::shared::SharedTensor::new),
        })
    }
    /// The reference discrete cosine table (T, eps) with σ∞ and μ.
    pub fn cosine_table(
        steps: usize,
        eps: f64,
        sigma_inf: f64,
        mu: Option<Tensor>,
    ) -> Result<Self> {
        Self::new(
            ThetaSchedule::Table(ThetaTable::new(TableKind::Cosine, steps, eps)?),
            sigma_inf,
            mu,
        )
    }
    /// The continuous cosine schedule on [0, 1] with α_1 = eps.
    pub fn continuous_cosine(eps: f64, sigma_inf: f64, mu: Option<Tensor>) -> Result<Self> {
        Self::new(
            ThetaSchedule::Cosine(ContinuousCosine::new(eps)?),
            sigma_inf,
            mu,
        )
    }
    /// Song et al.'s VP SDE (β0 = 0.1, β1 = 20) as a mean-reverting process.
    pub fn vp() -> Self {
        Self {
            theta: ThetaSchedule::LinearBeta {
                beta0: 0.1,
                beta1: 20.0,
            },
            sigma_inf: 1.0,
            mu: None,
        }
    }
    /// The θ schedule.
    pub fn schedule(&self) -> &ThetaSchedule {
        &self.theta
    }
    /// θ_t.
    pub fn theta(&self, t: f64) -> f64 {
        self.theta.theta(t)
    }
    /// The same schedule with another σ∞ and μ (the reduction identity's VP twin: σ∞ = 1, μ = None).
    pub fn with(&self, sigma_inf: f64, mu: Option<Tensor>) -> Result<Self> {
        Self::new(self.theta.clone(), sigma_inf, mu)
    }
}

impl Process for MeanReverting {
    fn log_alpha(&self, t: f64) -> f64 {
        -self.theta.big_theta(t)
    }
    fn sigma(&self, t: f64) -> f64 {
        self.sigma_inf * (-(-2.0 * self.theta.big_theta(t)).exp_m1()).max(0.0).sqrt()
    }
    fn drift_rate(&self, t: f64) -> f64 {
        self.theta.theta(t)
    }
    fn g2(&self, t: f64) -> f64 {
        2.0 * self.sigma_inf * self.sigma_inf * self.theta.theta(t)
    }
    fn sigma_inf(&self) -> f64 {
        self.sigma_inf
    }
    fn mu(&self) -> Option<&Tensor> {
        self.mu.as_deref()
    }
    fn t_range(&self) -> (f64, f64) {
        self.theta.t_range()
    }
}

/// Song et al.'s VE SDE: α = 1, σ_t = σ_min(σ_max/σ_min)^t on [0, 1].
#[derive(Debug, Clone, Copy)]
pub struct Ve {
    /// σ at t = 0.
    pub sigma_min: f64,
    /// σ at t = 1.
    pub sigma_max: f64,
}

impl Ve {
    /// A VE process; requires 0 < σ_min < σ_max.
    pub fn new(sigma_min: f64, sigma_max: f64) -> Result<Self> {
        if !(sigma_min > 0.0 && sigma_max > sigma_min && sigma_max.is_finite()) {
            return Err(Error::Invalid {
                name: "sigma_min",
                value: sigma_min,
                reason: "need 0 < sigma_min < sigma_max",
            });
        }
        Ok(Self {
            sigma_min,
            sigma_max,
        })
    }
}

impl Process for Ve {
    fn log_alpha(&self, _t: f64) -> f64 {
        0.0
    }
    fn sigma(&self, t: f64) -> f64 {
        self.sigma_min * (self.sigma_max / self.sigma_min).powf(t)
    }
    fn drift_rate(&self, _t: f64) -> f64 {
        0.0
    }
    fn g2(&self, t: f64) -> f64 {
        2.0 * self.sigma(t).powi(2) * (self.sigma_max / self.sigma_min).ln()
    }
    fn sigma_inf(&self) -> f64 {
        1.0
    }
    fn mu(&self) -> Option<&Tensor> {
        None
    }
    fn t_range(&self) -> (f64, f64) {
        (0.0, 1.0)
    }
}

/// Karras et al.'s EDM process: α = 1, σ(t) = t on [0, σ_max].
#[derive(Debug, Clone, Copy)]
pub struct Edm {
    /// The largest σ (= t).
    pub sigma_max: f64,
}

impl Process for Edm {
    fn log_alpha(&self, _t: f64) -> f64 {
        0.0
    }
    fn sigma(&self, t: f64) -> f64 {
        t
    }
    fn drift_rate(&self, _t: f64) -> f64 {
        0.0
    }
    fn g2(&self, t: f64) -> f64 {
        2.0 * t
    }
    fn sigma_inf(&self) -> f64 {
        1.0
    }
    fn mu(&self) -> Option<&Tensor> {
        None
    }
    fn t_range(&self) -> (f64, f64) {
        (0.0, self.sigma_max)
    }
    fn t_of_lambda(&self, lambda: f64) -> Result<f64> {
        let t = (-lambda).exp();
        if t > self.sigma_max * (1.0 + 1e-12) {
            return Err(Error::LambdaOutOfRange {
                lambda,
                lo: -self.sigma_max.ln(),
                hi: f64::INFINITY,
            });
        }
        Ok(t.min(self.sigma_max))
    }
}

/// `x − μ` (or `x` when μ is zero).
pub fn centered(process: &dyn Process, x: &Tensor) -> Tensor {
    match process.mu() {
        Some(mu) => x - mu,
        None => x.shallow_clone(),
    }
}

/// `y + μ` (or `y` when μ is zero).
pub fn uncentered(process: &dyn Process, y: &Tensor) -> Tensor {
    match process.mu() {
        Some(mu) => y + mu,
        None => y.shallow_clone(),
    }
}
