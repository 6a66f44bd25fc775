//! Fine-tuning on the retain set ("catastrophic forgetting").

use crate::Result;
use crate::unlearner::{ForgetRequest, UnlearnReport, Unlearner};
use graft_nn::train::{Optimizer, TrainConfig, train_classifier};
use std::time::Instant;

/// Continues training on the retain set only.
#[derive(Debug, Clone)]
pub struct Finetune {
    /// The recipe.
    pub train: TrainConfig,
}

impl Default for Finetune {
    /// The SSD code's: SGD momentum 0.9, weight decay 5e-4, lr 0.02, 5 epochs, batch 64.
    fn default() -> Self {
        Self {
            train: TrainConfig {
                epochs: 5,
                batch_size: 64,
                lr: 0.02,
                weight_decay: 5e-4,
                optimizer: Optimizer::Sgd {
                    momentum: 0.9,
                    nesterov: false,
                },
                seed: 0,
            },
        }
    }
}

impl Unlearner for Finetune {
    fn name(&self) -> String {
        format!("finetune({} epochs)", self.train.epochs)
    }

    fn unlearn(&self, request: &ForgetRequest<'_>) -> Result<UnlearnReport> {
        let started = Instant::now();
        let report =
            train_classifier(request.model, request.vs, request.retain, None, &self.train)?;
        Ok(UnlearnReport::since(
            self.name(),
            started,
            serde_json::json!({ "steps": report.steps }),
        ))
    }
}
