//! Gradient ascent on the forget set (NegGrad), optionally with a descent
//! term on the retain set (NegGrad+, GradDiff).

use crate::unlearner::{ForgetRequest, UnlearnReport, Unlearner};
use crate::{Error, Result};
use graft_nn::train::evaluate;
use graft_tensor::seed::derive_seed;
use graft_tensor::tch::nn::{self, OptimizerConfig};
use graft_tensor::tch::{Reduction, Tensor};
use std::time::Instant;

/// Minimises `retain_weight·CE(D_r batch) − forget_weight·CE(D_f batch)`
/// with SGD, for at most `epochs` passes over `D_f`, stopping early once
/// the forget set's accuracy is at or below chance (`1/classes`).
#[derive(Debug, Clone)]
pub struct GradientAscent {
    /// The method's name in reports.
    pub label: String,
    /// Weight of the ascent term on the forget batch.
    pub forget_weight: f64,
    /// Weight of the descent term on a retain batch (0: pure ascent).
    pub retain_weight: f64,
    /// SGD learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Samples per batch (each of forget and retain).
    pub batch_size: usize,
    /// Passes over the forget set at most.
    pub epochs: usize,
    /// Stop once forget accuracy ≤ chance.
    pub stop_at_chance: bool,
    /// Seed of the batch orders.
    pub seed: u64,
}

impl GradientAscent {
    /// NegGrad: ascent on `D_f` alone, SGD lr 1e-3, until chance or one epoch (spec defaults).
    pub fn neg_grad() -> Self {
        Self {
            label: "neggrad".into(),
            forget_weight: 1.0,
            retain_weight: 0.0,
            lr: 1e-3,
            momentum: 0.9,
            batch_size: 32,
            epochs: 1,
            stop_at_chance: true,
            seed: 0,
        }
    }

    /// NegGrad+ (Kurmanji et al.): `0.999·CE(D_r) − 0.001·CE(D_f)`, lr 0.02, 5 epochs.
    pub fn neg_grad_plus() -> Self {
        Self {
            label: "neggrad+".into(),
            forget_weight: 0.001,
            retain_weight: 0.999,
            lr: 0.02,
            epochs: 5,
            stop_at_chance: false,
            ..Self::neg_grad()
        }
    }

    /// GradDiff (open-unlearning's defaults): `CE(D_r) − CE(D_f)`.
    pub fn grad_diff() -> Self {
        Self {
            label: "graddiff".into(),
            forget_weight: 1.0,
            retain_weight: 1.0,
            lr: 1e-2,
            epochs: 1,
            stop_at_chance: true,
            ..Self::neg_grad()
        }
    }
}

fn ce(logits: &Tensor, ys: &Tensor) -> Result<Tensor> {
    Ok(logits.f_cross_entropy_loss::<Tensor>(ys, None, Reduction::Mean, -100, 0.0)?)
}

impl Unlearner for GradientAscent {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn unlearn(&self, request: &ForgetRequest<'_>) -> Result<UnlearnReport> {
        if self.batch_size == 0 || self.epochs == 0 || self.lr.is_nan() || self.lr <= 0.0 {
            return Err(Error::option(
                &self.label,
                format!(
                    "batch_size {}, epochs {}, lr {}",
                    self.batch_size, self.epochs, self.lr
                ),
                "needs batch_size > 0, epochs > 0 and lr > 0",
            ));
        }
        if request.forget.is_empty() {
            return Err(Error::data(&request.forget.name, "the forget set is empty"));
        }
        if self.retain_weight > 0.0 && request.retain.is_empty() {
            return Err(Error::data(&request.retain.name, "the retain set is empty"));
        }
        let started = Instant::now();
        let device = request.vs.device();
        let forget = request.forget.to_device(device)?;
        let retain = request.retain.to_device(device)?;
        let mut opt = nn::Sgd {
            momentum: self.momentum,
            ..Default::default()
        }
        .build(request.vs, self.lr)?;
        let chance = 1.0 / forget.num_classes as f64;
        let mut steps = 0usize;
        let mut retain_epoch = 0u64;
        let mut retain_batches =
            retain.batches(self.batch_size, Some(derive_seed(self.seed, "retain/0")))?;
        let mut stopped_at_chance = false;
        'outer: for epoch in 0..self.epochs {
            let order = derive_seed(self.seed, &format!("forget/{epoch}"));
            for (xf, yf) in forget.batches(self.batch_size, Some(order))? {
                let mut loss = ce(&request.model.forward_t(&xf, true), &yf)?
                    .f_mul_scalar(-self.forget_weight)?;
                if self.retain_weight > 0.0 {
                    let (xr, yr) = match retain_batches.next() {
                        Some(b) => b,
                        None => {
                            retain_epoch += 1;
                            retain_batches = retain.batches(
                                self.batch_size,
                                Some(derive_seed(self.seed, &format!("retain/{retain_epoch}"))),
                            )?;
                            retain_batches
                                .next()
                                .ok_or_else(|| Error::data("retain", "is empty"))?
                        }
                    };
                    let lr_term = ce(&request.model.forward_t(&xr, true), &yr)?
                        .f_mul_scalar(self.retain_weight)?;
                    loss = loss.f_add(&lr_term)?;
                }
                opt.backward_step(&loss);
                steps += 1;
                if self.stop_at_chance && evaluate(request.model, &forget, 512)?.accuracy <= chance
                {
                    stopped_at_chance = true;
                    break 'outer;
                }
            }
        }
        Ok(UnlearnReport::since(
            self.name(),
            started,
            serde_json::json!({ "steps": steps, "stopped_at_chance": stopped_at_chance }),
        ))
    }
}
