//! Random labels ("amnesiac" unlearning): train on the forget set with
//! wrong labels mixed into the retain set.

use crate::unlearner::{ForgetRequest, UnlearnReport, Unlearner};
use crate::{Error, Result};
use graft_nn::train::{Optimizer, TrainConfig, train_classifier};
use graft_tensor::tch::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// Relabels every forget sample uniformly to one of the other classes and
/// trains on the relabelled forget set together with the retain set.
#[derive(Debug, Clone)]
pub struct RandomLabels {
    /// The recipe (spec defaults: Adam lr 1e-4, 3 epochs, batch 128).
    pub train: TrainConfig,
    /// Seed of the new labels.
    pub seed: u64,
}

impl Default for RandomLabels {
    fn default() -> Self {
        Self {
            train: TrainConfig {
                epochs: 3,
                batch_size: 128,
                lr: 1e-4,
                weight_decay: 0.0,
                optimizer: Optimizer::Adam,
                seed: 0,
            },
            seed: 0,
        }
    }
}

impl Unlearner for RandomLabels {
    fn name(&self) -> String {
        format!("random-labels({} epochs)", self.train.epochs)
    }

    fn unlearn(&self, request: &ForgetRequest<'_>) -> Result<UnlearnReport> {
        let started = Instant::now();
        let forget = request.forget;
        let classes = forget.num_classes;
        if classes < 2 {
            return Err(Error::data(
                &forget.name,
                "random labels need at least two classes",
            ));
        }
        let labels: Vec<i64> = Vec::<i64>::try_from(&forget.labels.to_device(Device::Cpu))?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let wrong: Vec<i64> = labels
            .iter()
            .map(|&y| {
                let k = rng.random_range(0..classes - 1);
                if k >= y { k + 1 } else { k }
            })
            .collect();
        let relabelled =
            forget.relabelled(Tensor::from_slice(&wrong).f_to_device(forget.labels.device())?)?;
        let mixed = request
            .retain
            .concat(&relabelled, "retain+relabelled forget")?;
        let report = train_classifier(request.model, request.vs, &mixed, None, &self.train)?;
        Ok(UnlearnReport::since(
            self.name(),
            started,
            serde_json::json!({ "steps": report.steps }),
        ))
    }
}
