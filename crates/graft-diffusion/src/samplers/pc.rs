//! Song et al.'s predictor–corrector sampler: an Euler–Maruyama
//! (reverse-diffusion) predictor and `n_corr` Langevin corrector steps at each
//! time, with step `ε = 2a(r‖z‖/‖s‖)²`, a = (α_t/α_s)² (1 for VE).

use super::{Sampler, Stats};
use crate::Result;
use crate::grid::check_start;
use crate::model::{Evaluator, Model};
use crate::noise::NoiseSource;
use crate::process::{Process, centered, uncentered};
use graft_tensor::fused::lincomb;
use graft_tensor::tch::{Kind, Tensor};

/// Predictor–corrector with a Langevin corrector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictorCorrector {
    /// Corrector steps per time.
    pub n_corr: usize,
    /// The signal-to-noise ratio r (0.16 for CIFAR-10 VE).
    pub snr: f64,
    /// Norms per sample (true) or averaged over the batch as in the reference (false).
    pub per_sample_norms: bool,
}

impl Default for PredictorCorrector {
    fn default() -> Self {
        Self {
            n_corr: 1,
            snr: 0.16,
            per_sample_norms: true,
        }
    }
}

fn norms(t: &Tensor, per_sample: bool) -> Tensor {
    let n = t.size()[0];
    let nrm = t.reshape([n, -1]).norm_scalaropt_dim(2.0, [1], false);
    if per_sample {
        nrm.reshape([n])
    } else {
        nrm.mean(Kind::Double).to_kind(t.kind()).expand([n], false)
    }
}

impl Sampler for PredictorCorrector {
    fn name(&self) -> String {
        format!("PC (Langevin x{})", self.n_corr)
    }
    fn steps_for_nfe(&self, nfe: usize) -> usize {
        nfe / (1 + self.n_corr)
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
        let m = grid.len() - 1;
        let shape_b: Vec<i64> = std::iter::once(-1)
            .chain(std::iter::repeat_n(1, y.dim().saturating_sub(1)))
            .collect();
        for (i, w) in grid.windows(2).enumerate() {
            let (s, t) = (w[0], w[1]);
            let a = (process.alpha(t) / process.alpha(s)).powi(2);
            for _ in 0..self.n_corr {
                let score = ev.score(&y, s)?;
                let z = noise.independent_normal(&y)?;
                let ratio = norms(&z, self.per_sample_norms) / norms(&score, self.per_sample_norms);
                let eps = (ratio * self.snr).square() * (2.0 * a);
                let eps = eps.reshape(shape_b.as_slice());
                y = &y + &score * &eps + z * (eps * 2.0).sqrt();
            }
            let score = ev.score(&y, s)?;
            let (f, g2, delta) = (process.drift_rate(s), process.g2(s), s - t);
            // y + (−f y − g² s)(−Δ), plus √(g²Δ) z except at the last step.
            let drift = [(1.0 + f * delta, &y), (g2 * delta, &score)];
            y = if i + 1 < m {
                let z = noise.standard_normal(&y, s, t)?;
                lincomb(&[drift[0], drift[1], ((g2 * delta).sqrt(), &z)])?
            } else {
                lincomb(&drift)?
            };
        }
        Ok((uncentered(process, &y), Stats::model_only(ev.nfe())))
    }
}
