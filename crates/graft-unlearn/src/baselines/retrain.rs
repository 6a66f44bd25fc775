//! Retraining from scratch on the retain set: what unlearning approximates.

use crate::unlearner::{ForgetRequest, UnlearnReport, Unlearner};
use crate::{Error, Result};
use graft_nn::models::{ModelConfig, build};
use graft_nn::train::{TrainConfig, train_classifier};
use graft_tensor::tch::nn::VarStore;
use graft_tensor::tch::{Device, no_grad};
use std::time::Instant;

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
        Ok(UnlearnReport {
            method: self.name(),
            wall_s: started.elapsed().as_secs_f64(),
            details: serde_json::json!({ "steps": report.steps }),
        })
    }
}
