//! What the `unlearn` experiments share: training a model, weight
//! snapshots, and summary statistics.

use crate::baselines::cnn_recipe;
use graft_nn::Dataset;
use graft_nn::models::{ModelConfig, build};
use graft_nn::train::train_classifier;
use graft_tensor::seed::seed_everything;
use graft_tensor::tch::nn::VarStore;
use graft_tensor::tch::{Device, Tensor, no_grad};
use std::collections::BTreeMap;

/// A model trained from `seed` on `train`.
pub struct Trained {
    /// Its parameters.
    pub vs: VarStore,
    /// The model on them.
    pub model: graft_nn::models::Model,
    /// Training wall time (s).
    pub train_s: f64,
}

/// Builds `config` from `seed` and trains it on `train` with [`cnn_recipe`].
pub fn train(
    config: &ModelConfig,
    train: &Dataset,
    epochs: usize,
    seed: u64,
) -> graft_nn::Result<Trained> {
    seed_everything(seed);
    let vs = VarStore::new(Device::Cpu);
    let model = build(&vs.root(), config)?;
    let report = train_classifier(&model, &vs, train, None, &cnn_recipe(epochs, seed))?;
    Ok(Trained {
        vs,
        model,
        train_s: report.wall_s,
    })
}

/// A copy of every variable of a store.
pub struct Snapshot(BTreeMap<String, Tensor>);

impl Snapshot {
    /// Copies the variables of `vs`.
    pub fn of(vs: &VarStore) -> Self {
        Self(
            vs.variables()
                .into_iter()
                .map(|(n, t)| (n, t.detach().copy()))
                .collect(),
        )
    }

    /// Writes the copied values back into `vs`.
    pub fn restore(&self, vs: &VarStore) {
        let mut vars = vs.variables();
        no_grad(|| {
            for (name, value) in &self.0 {
                if let Some(v) = vars.get_mut(name) {
                    v.copy_(value);
                }
            }
        });
    }
}

/// The median of `v` (mean of the middle two for even lengths; NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        0.5 * (s[m - 1] + s[m])
    }
}

/// The share of `v` satisfying `pred`.
pub fn share(v: &[f64], pred: impl Fn(f64) -> bool) -> f64 {
    v.iter().filter(|&&x| pred(x)).count() as f64 / v.len().max(1) as f64
}

/// Writes `value` as pretty JSON to `file` in the experiment's directory, atomically.
pub fn save_json(
    ctx: &graft_nn::experiment::ExperimentContext,
    file: &str,
    value: &impl serde::Serialize,
) -> Result<(), graft_nn::experiment::ExperimentError> {
    graft_tensor::atomic::write_atomic(ctx.path(file), &serde_json::to_vec_pretty(value)?)?;
    Ok(())
}
