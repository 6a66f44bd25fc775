//! Samplers: each runs a model over a time grid and counts its NFE.

mod baselines;
mod by_name;
mod dlg;
mod dpm_single;
mod edm;
mod mrs;
mod pc;

pub use baselines::{EulerMaruyama, EulerOde, Posterior};
pub use by_name::{SamplerName, SamplerOptions};
pub use dlg::{Chains, Dlg, ExactLevels, LevelChoice, LevelPosterior};
pub use dpm_single::DpmSolverSingle;
pub use edm::{Churn, EdmHeun};
pub use mrs::{Mrs, Variant};
pub use pc::PredictorCorrector;

use crate::Result;
use crate::model::Model;
use crate::noise::NoiseSource;
use crate::process::Process;
use graft_tensor::tch::Tensor;

/// What a sampling run cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Model calls per sample.
    pub nfe: usize,
    /// Noise-level classifier calls per sample (DLG).
    pub classifier_calls: usize,
}

impl Stats {
    /// The cost of a sampler that calls only the model: `nfe` calls, no classifier.
    pub fn model_only(nfe: usize) -> Self {
        Self {
            nfe,
            classifier_calls: 0,
        }
    }
}

/// A sampler: from `x_start` at `grid[0]` down the strictly decreasing `grid`.
pub trait Sampler {
    /// A short name for tables and plots.
    fn name(&self) -> String;
    /// The number of grid steps that spend `nfe` model calls (rounded down);
    /// by default one call per step.
    fn steps_for_nfe(&self, nfe: usize) -> usize {
        nfe
    }
    /// Runs the sampler; returns the final state and its cost.
    fn sample(
        &self,
        process: &dyn Process,
        model: &dyn Model,
        x_start: &Tensor,
        grid: &[f64],
        noise: &mut dyn NoiseSource,
    ) -> Result<(Tensor, Stats)>;
}
