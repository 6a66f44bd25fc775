//! A seeded (1+1) evolution strategy for a few bounded real parameters,
//! used by "PCB + ES" to pick per-model scales on validation data (spec §4
//! step 8; the reference uses nevergrad's NGOpt with the same budgets).
//!
//! One parent; each step draws a child `x + σ·N(0, I)` clipped to the
//! bounds, keeps it if it scores at least as well, and adapts `σ` by the
//! one-fifth success rule (×1.5 on success, ×1.5^(−1/4) on failure).

use crate::{Error, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Budget, bounds and start of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct EsConfig {
    /// Score evaluations in all, the starting point included.
    pub budget: usize,
    /// Lower bound of every parameter.
    pub lower: f64,
    /// Upper bound of every parameter.
    pub upper: f64,
    /// Starting value of every parameter.
    pub init: f64,
    /// Starting step size `σ`.
    pub step: f64,
    /// Seed of the mutations.
    pub seed: u64,
}

impl EsConfig {
    /// The PCB paper's vision setting: 100 evaluations in [0.8, 1.3] from 1.0.
    pub fn vision() -> Self {
        Self {
            budget: 100,
            lower: 0.8,
            upper: 1.3,
            init: 1.0,
            step: 0.125,
            seed: 0,
        }
    }

    /// The PCB paper's NLP setting: 200 evaluations in [0.5, 3.0] from 1.0.
    pub fn nlp() -> Self {
        Self {
            budget: 200,
            lower: 0.5,
            upper: 3.0,
            init: 1.0,
            step: 0.625,
            seed: 0,
        }
    }
}

impl Default for EsConfig {
    fn default() -> Self {
        Self::vision()
    }
}

/// What a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct EsResult {
    /// The best parameters.
    pub best: Vec<f64>,
    /// Their score.
    pub best_score: f64,
    /// Evaluations made.
    pub evaluations: usize,
    /// The best score after each evaluation.
    pub trace: Vec<f64>,
}

/// Maximises `score` over `dim` parameters within the config's bounds.
pub fn maximize(
    dim: usize,
    config: &EsConfig,
    mut score: impl FnMut(&[f64]) -> Result<f64>,
) -> Result<EsResult> {
    let bad = |what: String| Error::BadParameter {
        tensor: "<search>".into(),
        what,
    };
    if config.budget == 0 {
        return Err(bad("the search budget must be at least 1 evaluation".into()));
    }
    if !(config.lower.is_finite() && config.upper.is_finite() && config.lower < config.upper) {
        return Err(bad(format!(
            "search bounds [{}, {}] must be finite and increasing",
            config.lower, config.upper
        )));
    }
    if !(config.lower..=config.upper).contains(&config.init) {
        return Err(bad(format!(
            "search start {} lies outside [{}, {}]",
            config.init, config.lower, config.upper
        )));
    }
    if !(config.step.is_finite() && config.step > 0.0) {
        return Err(bad(format!("search step {} must be positive", config.step)));
    }
    let mut evaluate = |x: &[f64], at: usize| -> Result<f64> {
        let s = score(x)?;
        if s.is_nan() {
            return Err(bad(format!(
                "the score of evaluation {at} is NaN (at {x:?})"
            )));
        }
        Ok(s)
    };
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut best = vec![config.init; dim];
    let mut best_score = evaluate(&best, 1)?;
    let mut trace = vec![best_score];
    let mut sigma = config.step;
    let max_sigma = config.upper - config.lower;
    for at in 2..=config.budget {
        let child: Vec<f64> = best
            .iter()
            .map(|x| {
                let z: f64 = StandardNormal.sample(&mut rng);
                (x + sigma * z).clamp(config.lower, config.upper)
            })
            .collect();
        let s = evaluate(&child, at)?;
        if s >= best_score {
            best = child;
            best_score = s;
            sigma = (sigma * 1.5).min(max_sigma);
        } else {
            sigma *= 1.5f64.powf(-0.25);
        }
        trace.push(best_score);
    }
    Ok(EsResult {
        best,
        best_score,
        evaluations: trace.len(),
        trace,
    })
}
