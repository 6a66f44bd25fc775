//! DMCMC's cost per sample, start-up included. Chains are started (an
//! integrator run from σ_max), burnt in, then emit `K` samples each; a
//! sample costs `(start + burn-in + K · per-emission) / K` model calls, and
//! the plain sampler it is compared with gets at least that many.

use crate::Result;
use crate::model::Model;
use crate::noise::NoiseSource;
use crate::process::Process;
use crate::samplers::{Chains, Dlg, LevelPosterior, Sampler};
use graft_tensor::tch::Tensor;
use rand_chacha::ChaCha8Rng;

/// Emissions per chain in the DMCMC comparisons: the start-up is amortised
/// over this many samples.
pub(super) const EMISSIONS: [usize; 2] = [5, 20];

/// The model calls behind DLG's samples.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChainCost {
    /// Per chain: the run that starts it.
    pub start: usize,
    /// Per chain: burn-in iterations (one model call each).
    pub burn_in: usize,
    /// Per emitted sample: `n_skip` iterations and the integrator (+ Tweedie).
    pub per_emission: usize,
    /// Samples emitted per chain.
    pub k: usize,
}

impl ChainCost {
    /// Model calls per sample, start-up and burn-in included.
    pub fn per_sample(&self) -> f64 {
        (self.start + self.burn_in + self.k * self.per_emission) as f64 / self.k as f64
    }

    /// `"(39 + 20 + 5 × 10) / 5"`: how [`per_sample`](Self::per_sample) adds up.
    pub fn breakdown(&self) -> String {
        format!(
            "({} + {} + {} × {}) / {}",
            self.start, self.burn_in, self.k, self.per_emission, self.k
        )
    }
}

/// The fewest points of a Heun grid (`2·points − 1` model calls) whose cost
/// is at least `nfe`: the plain sampler is never given less than DLG.
pub(super) fn heun_points_at_least(nfe: f64) -> usize {
    (((nfe + 1.0) / 2.0).ceil() as usize).max(2)
}

/// The DLG configuration both DMCMC parts run: argmax levels, one Langevin
/// iteration between emissions, a Karras grid of `points` points to 0.
pub(super) fn argmax_dlg(eta: f64, levels: &[f64], points: usize, tweedie: Option<f64>) -> Dlg {
    Dlg {
        eta,
        n_skip: 1,
        levels: levels.to_vec(),
        choice: crate::samplers::LevelChoice::Argmax,
        grid: crate::grid::StepGrid::Karras { rho: 7.0 },
        steps: points - 1,
        t_end: 0.0,
        tweedie,
    }
}

/// Emits `k` samples from every chain in turn (the chains move on between
/// emissions), stacked chain-major per emission; returns them and the model
/// calls of one emission.
#[allow(clippy::too_many_arguments)]
pub(super) fn emit_k(
    cfg: &Dlg,
    process: &dyn Process,
    model: &dyn Model,
    post: &dyn LevelPosterior,
    integrator: &dyn Sampler,
    chains: &mut Chains,
    k: usize,
    noise: &mut dyn NoiseSource,
    rng: &mut ChaCha8Rng,
) -> Result<(Tensor, usize)> {
    let mut xs = Vec::with_capacity(k);
    let mut per_emission = 0;
    for _ in 0..k {
        let (x, st) = cfg.emit(process, model, post, integrator, chains, noise, rng)?;
        per_emission = st.nfe;
        xs.push(x);
    }
    Ok((Tensor::f_cat(&xs, 0)?, per_emission))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_per_sample_includes_the_start_up() {
        let c = ChainCost {
            start: 39,
            burn_in: 20,
            per_emission: 10,
            k: 5,
        };
        assert_eq!(c.per_sample(), 21.8);
        assert_eq!(c.breakdown(), "(39 + 20 + 5 × 10) / 5");
        // Heun gets at least as many calls: 12 points = 23 NFE ≥ 21.8.
        assert_eq!(heun_points_at_least(c.per_sample()), 12);
        assert_eq!(heun_points_at_least(9.0), 5);
        assert_eq!(heun_points_at_least(9.5), 6);
    }
}
