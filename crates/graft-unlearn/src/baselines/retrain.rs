//! Retraining from scratch on the retain set: what unlearning approximates.

use crate::unlearner::{ForgetRequest, UnlearnReport, Unlearner};
use crate::{Error, Result};
use graft_nn::models::{ModelConfig, build};
use graft_nn::train::{Optimizer, TrainConfig, train_classifier};
use graft_tensor::tch::nn::VarStore;
use graft_tensor::tch::{Device, no_grad};
use std::time::Instant;

/// The unlearning spec's recipe for its digits CNN (§1): SGD with momentum
/// 0.9, weight decay 5e-4, lr 0.05, batch 32, shuffles seeded with `seed`.
/// The `unlearn` experiments train and retrain with it.
pub fn cnn_recipe(epochs: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        lr: 0.05,
        weight_decay: 5e-4,
        optimizer: Optimizer::Sgd {
            momentum: 0.9,
            nesterov: false,
        },
        seed,
    }
}

/// Puts fresh initial values into a model's parameters.
pub type Reinit = Box<dyn Fn(&VarStore) -> Result<()> + Send + Sync>;

/// A [`Reinit`] for a graft-nn model: seeds libtorch with `seed`, builds
/// `config` in a fresh store and copies its values in by name.
pub fn reinit_from_config(config: ModelConfig, seed: u64) -> Reinit {
    Box::new(move |vs: &VarStore| {
        graft_tensor::seed::seed_everything(seed);
        let fresh = VarStore::new(Device::Cpu);
        build(&fresh.root(), &config)?;
        let fresh_vars = fresh.variables();
        let mut vars = vs.variables();
        no_grad(|| -> Result<()> {
            for (name, var) in vars.iter_mut() {
                let init = fresh_vars.get(name).ok_or_else(|| Error::Importance {
                    origin: "<reinit>".into(),
                    name: name.clone(),
                    reason: format!("the model built from {config:?} has no such parameter"),
                })?;
                var.f_copy_(&init.f_to_device(var.device())?)?;
            }
            Ok(())
        })
    })
}

/// Re-initialises the model and trains it on the retain set alone.
pub struct Retrain {
    /// The training recipe (the original model's).
    pub train: TrainConfig,
    reinit: Reinit,
}

impl Retrain {
    /// Retraining with `train`, starting from what `reinit` puts in.
    pub fn new(train: TrainConfig, reinit: Reinit) -> Self {
        Self { train, reinit }
    }
}

impl Unlearner for Retrain {
    fn name(&self) -> String {
        format!("retrain({} epochs)", self.train.epochs)
    }

    fn unlearn(&self, request: &ForgetRequest<'_>) -> Result<UnlearnReport> {
        let started = Instant::now();
        (self.reinit)(request.vs)?;
        let report =
            train_classifier(request.model, request.vs, request.retain, None, &self.train)?;
        Ok(UnlearnReport::since(
            self.name(),
            started,
            serde_json::json!({ "steps": report.steps }),
        ))
    }
}
