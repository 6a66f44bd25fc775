//! Song et al.'s predictor–corrector sampler: an Euler–Maruyama
//! (reverse-diffusion) predictor and `n_corr` Langevin corrector steps at each
//! time, with step `ε = 2a(r‖z‖/‖s‖)²`, a = (α_t/α_s)² (1 for VE).

use super::{Sampler, Stats};
use crate::Result;
use crate::grid::check_start;
use crate::model::{Evaluator, Model};
use crate::noise::NoiseSource;
use crate::process::{Process, centered, uncentered};
use graft_tensor::fused::{lincomb, lincomb_rows, row_norms};
use graft_tensor::tch::Tensor;

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

/// Row norms of `t` (one per sample), or their batch mean for every row.
fn norms(t: &Tensor, per_sample: bool) -> Result<Vec<f64>> {
    let n = row_norms(t)?;
    Ok(if per_sample || n.is_empty() {
        n
    } else {
        vec![n.iter().sum::<f64>() / n.len() as f64; n.len()]
    })
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
        for (i, w) in grid.windows(2).enumerate() {
            let (s, t) = (w[0], w[1]);
            let a = (process.alpha(t) / process.alpha(s)).powi(2);
            for _ in 0..self.n_corr {
                let score = ev.score(&y, s)?;
                let z = noise.independent_normal(&y)?;
                // y + ε s + √(2ε) z with ε per sample, in one pass.
                let (nz, ns) = (
                    norms(&z, self.per_sample_norms)?,
                    norms(&score, self.per_sample_norms)?,
                );
                let eps: Vec<f64> = nz
                    .iter()
                    .zip(&ns)
                    .map(|(z, s)| (z / s * self.snr).powi(2) * (2.0 * a))
                    .collect();
                let root: Vec<f64> = eps.iter().map(|e| (2.0 * e).sqrt()).collect();
                y = lincomb_rows(&[(&[1.0], &y), (&eps, &score), (&root, &z)])?;
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
