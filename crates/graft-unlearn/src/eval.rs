//! Accuracy on the splits unlearning is judged on.

use crate::Result;
use graft_nn::Dataset;
use graft_nn::train::evaluate;
use graft_tensor::tch::nn::ModuleT;
use serde::{Deserialize, Serialize};

/// The splits of a forgetting task.
pub struct EvalSets<'a> {
    /// `D_f`: the forgotten training samples.
    pub forget_train: &'a Dataset,
    /// `D_r`: the kept training samples.
    pub retain_train: &'a Dataset,
    /// `Dt_f`: test samples of what was forgotten (e.g. the forgotten class), if any.
    pub forget_test: Option<&'a Dataset>,
    /// `Dt_r`: the other test samples.
    pub retain_test: &'a Dataset,
}

/// Accuracy on every split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitAccuracy {
    /// On `D_f`.
    pub forget_train: f64,
    /// On `D_r`.
    pub retain_train: f64,
    /// On `Dt_f` (when given).
    pub forget_test: Option<f64>,
    /// On `Dt_r`.
    pub retain_test: f64,
}

/// Accuracy of `model` (eval mode) on each of `sets`.
pub fn split_accuracy(model: &dyn ModuleT, sets: &EvalSets<'_>) -> Result<SplitAccuracy> {
    let acc = |d: &Dataset| -> Result<f64> { Ok(evaluate(model, d, 512)?.accuracy) };
    Ok(SplitAccuracy {
        forget_train: acc(sets.forget_train)?,
        retain_train: acc(sets.retain_train)?,
        forget_test: sets.forget_test.map(acc).transpose()?,
        retain_test: acc(sets.retain_test)?,
    })
}
