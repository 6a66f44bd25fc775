//! Karras et al.'s Heun sampler (EDM Alg. 1-2) in the EDM view of any process
//! (spec §1): `ŷ = (x − μ)/α` is a VE process at level `σ̂ = σ/α = e^{−λ}` with
//! denoiser `D̂ = x̂0 − μ`.

use super::{Sampler, Stats};
use crate::Result;
use crate::grid::check_start;
use crate::model::{Evaluator, Model};
use crate::noise::NoiseSource;
use crate::process::{Process, centered, uncentered};
use graft_tensor::fused::lincomb;
use graft_tensor::tch::Tensor;

/// EDM's stochastic churn (Alg. 2): γ = min(S_churn/N, √2 − 1) on levels in [S_tmin, S_tmax].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Churn {
    /// S_churn.
    pub s_churn: f64,
    /// S_tmin.
    pub s_tmin: f64,
    /// S_tmax.
    pub s_tmax: f64,
    /// S_noise.
    pub s_noise: f64,
}

impl Churn {
    /// The VE setting (80, 0.05, 1, 1.007) that DMCMC uses.
    pub fn ve() -> Self {
        Self {
            s_churn: 80.0,
            s_tmin: 0.05,
            s_tmax: 1.0,
            s_noise: 1.007,
        }
    }
}

/// Heun's method over the grid's levels; with `final_zero` a last Euler step to σ̂ = 0.
/// NFE = 2N − 1 for N grid points and `final_zero`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EdmHeun {
    /// Stochastic churn (None: deterministic).
    pub churn: Option<Churn>,
    /// Append σ̂ = 0 and end with an Euler step (returns the x0 estimate).
    pub final_zero: bool,
}

impl EdmHeun {
    /// The deterministic sampler ending at σ̂ = 0.
    pub fn deterministic() -> Self {
        Self {
            churn: None,
            final_zero: true,
        }
    }
}

impl Sampler for EdmHeun {
    fn name(&self) -> String {
        if self.churn.is_some() {
            "EDM Heun (churn)".into()
        } else {
            "EDM Heun".into()
        }
    }
    fn steps_for_nfe(&self, nfe: usize) -> usize {
        if self.final_zero {
            nfe.saturating_sub(1) / 2
        } else {
            nfe / 2
        }
    }
    fn sample(
        &self,
        process: &dyn Process,
        model: &dyn Model,
        x: &Tensor,
        grid: &[f64],
        noise: &mut dyn NoiseSource,
    ) -> Result<(Tensor, Stats)> {
        check_start(process, x, grid)?;
        let ev = Evaluator::new(process, model);
        let n = grid.len();
        // levels (σ̂, t); the final zero has no time.
        let mut levels: Vec<(f64, Option<f64>)> = grid
            .iter()
            .map(|&t| ((-process.lambda(t)).exp(), Some(t)))
            .collect();
        if self.final_zero {
            levels.push((0.0, None));
        }
        let shat_max = (-process.lambda(process.t_range().1)).exp();
        let a0 = process.alpha(grid[0]);
        let mut yh = centered(process, x) / a0;
        let denoise = |yh: &Tensor, t: f64| -> Result<Tensor> {
            let y = lincomb(&[(process.alpha(t), yh)])?;
            ev.data(&y, t)
        };
        for i in 0..levels.len() - 1 {
            let (sig, t_i) = levels[i];
            let t_i = t_i.unwrap_or(0.0);
            let (sig_next, t_next) = levels[i + 1];
            let (mut sig_hat, mut t_hat) = (sig, t_i);
            if let Some(ch) = self.churn {
                if sig >= ch.s_tmin && sig <= ch.s_tmax {
                    let gamma = (ch.s_churn / n as f64).min(std::f64::consts::SQRT_2 - 1.0);
                    sig_hat = ((1.0 + gamma) * sig).min(shat_max);
                    if sig_hat > sig {
                        t_hat = process.t_of_lambda(-sig_hat.ln())?;
                        let z = noise.standard_normal(&yh, t_hat, t_i)?;
                        yh = &yh + z * ((sig_hat * sig_hat - sig * sig).sqrt() * ch.s_noise);
                    } else {
                        sig_hat = sig;
                    }
                }
            }
            // d = (ŷ − D̂)/σ̂; the Euler and Heun updates fold d into one pass each.
            let den = denoise(&yh, t_hat)?;
            let dt = sig_next - sig_hat;
            let y_euler = lincomb(&[(1.0 + dt / sig_hat, &yh), (-dt / sig_hat, &den)])?;
            yh = match t_next {
                Some(tn) if sig_next > 0.0 => {
                    let den2 = denoise(&y_euler, tn)?;
                    let (k1, k2) = (0.5 * dt / sig_hat, 0.5 * dt / sig_next);
                    lincomb(&[(1.0 + k1, &yh), (-k1, &den), (k2, &y_euler), (-k2, &den2)])?
                }
                _ => y_euler,
            };
        }
        let y = match levels.last().and_then(|l| l.1) {
            Some(t_last) => yh * process.alpha(t_last),
            None => yh,
        };
        Ok((uncentered(process, &y), Stats::model_only(ev.nfe())))
    }
}
