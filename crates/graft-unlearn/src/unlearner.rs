//! The one contract every unlearning method meets.

use crate::Result;
use graft_nn::Dataset;
use graft_tensor::tch::nn::{ModuleT, VarStore};
use serde::{Deserialize, Serialize};

/// A request to forget: the model (its parameters live in `vs` and are
/// edited in place), the samples to forget and the samples to keep.
pub struct ForgetRequest<'a> {
    /// The trained model, built on `vs`.
    pub model: &'a dyn ModuleT,
    /// The model's parameters.
    pub vs: &'a VarStore,
    /// `D_f`: the samples whose influence is to be removed.
    pub forget: &'a Dataset,
    /// `D_r`: the rest of the training data (in the corrective setting it
    /// still holds the manipulated samples nobody identified).
    pub retain: &'a Dataset,
}

/// What a method did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnlearnReport {
    /// The method's name with its settings (e.g. `ssd(alpha=2, lambda=1, batch)`).
    pub method: String,
    /// Wall time of the method itself, in seconds.
    pub wall_s: f64,
    /// Method-specific details (SSD: per-layer counts; baselines: steps).
    pub details: serde_json::Value,
}

impl UnlearnReport {
    /// The report of `method`, timed from `started`.
    pub fn since(method: String, started: std::time::Instant, details: serde_json::Value) -> Self {
        Self {
            method,
            wall_s: started.elapsed().as_secs_f64(),
            details,
        }
    }
}

/// An unlearning method: edits the request's model in place.
pub trait Unlearner {
    /// The method's name with its settings.
    fn name(&self) -> String;

    /// Forgets `request.forget`, editing the parameters in `request.vs`.
    fn unlearn(&self, request: &ForgetRequest<'_>) -> Result<UnlearnReport>;
}
