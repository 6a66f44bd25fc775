//! Euler–Maruyama, Euler ODE and the posterior (optimal reverse) sampler,
//! each with the true step size of the grid (spec §5, §8.5).

use super::{Sampler, Stats};
use crate::Result;
use crate::grid::check_start;
use crate::integrator::{Step, posterior_step};
use crate::model::{Evaluator, Model};
use crate::noise::NoiseSource;
use crate::process::{Process, centered, uncentered};
use graft_tensor::fused::lincomb;
use graft_tensor::tch::Tensor;

/// Euler–Maruyama on the reverse SDE: `x ← x − [b − g² s]Δ + g√Δ z`, b = −f(x − μ).
#[derive(Debug, Clone, Copy, Default)]
pub struct EulerMaruyama;

/// Euler on the probability-flow ODE: `x ← x − [b − ½g² s]Δ`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EulerOde;

/// The generalized posterior sampler (exact Gaussian transition given x̂0) for any jump.
#[derive(Debug, Clone, Copy, Default)]
pub struct Posterior;

fn euler(
    process: &dyn Process,
    model: &dyn Model,
    x: &Tensor,
    grid: &[f64],
    noise: Option<&mut dyn NoiseSource>,
) -> Result<(Tensor, Stats)> {
    check_start(process, x, grid)?;
    let ev = Evaluator::new(process, model);
    let mut y = centered(process, x);
    let mut noise = noise;
    for w in grid.windows(2) {
        let (s, t) = (w[0], w[1]);
        let delta = s - t;
        // With s = −ε/σ: x ← x(1 + fΔ) − (g²Δ/σ)ε [+ √(g²Δ) z]; ODE: half the ε term.
        let eps = ev.noise(&y, s)?;
        let (f, g2, sigma) = (process.drift_rate(s), process.g2(s), process.sigma(s));
        match noise.as_deref_mut() {
            Some(src) => {
                let z = src.standard_normal(&y, s, t)?;
                y = lincomb(&[
                    (1.0 + f * delta, &y),
                    (-g2 * delta / sigma, &eps),
                    ((g2 * delta).sqrt(), &z),
                ])?;
            }
            None => {
                y = lincomb(&[(1.0 + f * delta, &y), (-0.5 * g2 * delta / sigma, &eps)])?;
            }
        }
    }
    Ok((uncentered(process, &y), Stats::model_only(ev.nfe())))
}

impl Sampler for EulerMaruyama {
    fn name(&self) -> String {
        "Euler-Maruyama".into()
    }
    fn sample(
        &self,
        process: &dyn Process,
        model: &dyn Model,
        x: &Tensor,
        grid: &[f64],
        noise: &mut dyn NoiseSource,
    ) -> Result<(Tensor, Stats)> {
        euler(process, model, x, grid, Some(noise))
    }
}

impl Sampler for EulerOde {
    fn name(&self) -> String {
        "Euler ODE".into()
    }
    fn sample(
        &self,
        process: &dyn Process,
        model: &dyn Model,
        x: &Tensor,
        grid: &[f64],
        _noise: &mut dyn NoiseSource,
    ) -> Result<(Tensor, Stats)> {
        euler(process, model, x, grid, None)
    }
}

impl Sampler for Posterior {
    fn name(&self) -> String {
        "posterior".into()
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
        let mut y = centered(process, x);
        for w in grid.windows(2) {
            let (s, t) = (w[0], w[1]);
            let x0c = ev.data(&y, s)?;
            let z = noise.standard_normal(&y, s, t)?;
            y = posterior_step(&y, &x0c, &Step::new(process, s, t), Some(&z))?;
        }
        Ok((uncentered(process, &y), Stats::model_only(ev.nfe())))
    }
}
