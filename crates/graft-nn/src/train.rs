//! Training and evaluating classifiers.

use crate::data::Dataset;
use crate::{Error, Result};
use graft_tensor::seed::derive_seed;
use graft_tensor::tch::nn::{self, ModuleT, OptimizerConfig, VarStore};
use graft_tensor::tch::{Kind, Reduction, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The optimizer and its own hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Optimizer {
    /// Adam (PyTorch defaults β = (0.9, 0.999), ε = 1e-8), L2 weight decay.
    Adam,
    /// AdamW with decoupled weight decay.
    AdamW,
    /// SGD with momentum (and optional Nesterov).
    Sgd {
        /// Momentum coefficient.
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
    },
}

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Weight decay (L2 for Adam and SGD, decoupled for AdamW).
    pub weight_decay: f64,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Seed of the per-epoch shuffles (seed the model's initialisation
    /// yourself with `graft_tensor::seed::seed_everything` before building it).
    pub seed: u64,
    /// Show a progress bar (on a terminal only).
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 32,
            lr: 1e-3,
            weight_decay: 0.0,
            optimizer: Optimizer::Adam,
            seed: 0,
            progress: true,
        }
    }
}

/// Loss and accuracy over a data set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction of correct argmax predictions.
    pub accuracy: f64,
    /// Number of examples.
    pub n: usize,
}

/// One epoch of training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Validation metrics after the epoch, when a validation set was given.
    pub val: Option<Metrics>,
}

/// What a training run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Per-epoch statistics.
    pub epochs: Vec<EpochStats>,
    /// Optimizer steps taken.
    pub steps: usize,
    /// Wall time in seconds.
    pub wall_s: f64,
}

fn build_optimizer(vs: &VarStore, cfg: &TrainConfig) -> Result<nn::Optimizer> {
    let opt = match cfg.optimizer {
        Optimizer::Adam => nn::Adam {
            wd: cfg.weight_decay,
            ..Default::default()
        }
        .build(vs, cfg.lr)?,
        Optimizer::AdamW => nn::AdamW {
            wd: cfg.weight_decay,
            ..Default::default()
        }
        .build(vs, cfg.lr)?,
        Optimizer::Sgd { momentum, nesterov } => nn::Sgd {
            momentum,
            nesterov,
            wd: cfg.weight_decay,
            ..Default::default()
        }
        .build(vs, cfg.lr)?,
    };
    Ok(opt)
}

/// Trains `model` (whose parameters live in `vs`) on `train` with cross-entropy.
///
/// Each epoch visits the training set in a fresh order drawn from
/// `cfg.seed`; with the model initialised after
/// `graft_tensor::seed::seed_everything`, the same seed and thread count
/// give the same weights bit for bit.
pub fn train_classifier(
    model: &impl ModuleT,
    vs: &VarStore,
    train: &Dataset,
    val: Option<&Dataset>,
    cfg: &TrainConfig,
) -> Result<TrainReport> {
    if cfg.epochs == 0 || cfg.batch_size == 0 || !cfg.lr.is_finite() || cfg.lr <= 0.0 {
        return Err(Error::Invalid(format!(
            "training needs epochs > 0, batch_size > 0 and lr > 0 (got {}, {}, {})",
            cfg.epochs, cfg.batch_size, cfg.lr
        )));
    }
    if train.is_empty() {
        return Err(Error::Invalid(format!(
            "training set `{}` is empty",
            train.name
        )));
    }
    let device = vs.device();
    let train = train.to_device(device)?;
    let val = val.map(|v| v.to_device(device)).transpose()?;
    let mut opt = build_optimizer(vs, cfg)?;
    let per_epoch = train.batch_count(cfg.batch_size);
    let bar = if cfg.progress {
        ProgressBar::new((per_epoch * cfg.epochs) as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("train {}", train.name));
    let started = Instant::now();
    let mut epochs = Vec::with_capacity(cfg.epochs);
    let mut steps = 0;
    for epoch in 1..=cfg.epochs {
        let order = derive_seed(cfg.seed, &format!("epoch/{epoch}"));
        let mut loss_sum = 0.0;
        let mut batches = 0usize;
        for (xs, ys) in train.batches(cfg.batch_size, Some(order))? {
            let loss = model.forward_t(&xs, true).f_cross_entropy_loss::<Tensor>(
                &ys,
                None,
                Reduction::Mean,
                -100,
                0.0,
            )?;
            opt.backward_step(&loss);
            loss_sum += loss.f_double_value(&[])?;
            batches += 1;
            steps += 1;
            bar.inc(1);
        }
        let train_loss = loss_sum / batches.max(1) as f64;
        if !train_loss.is_finite() {
            bar.abandon();
            return Err(Error::Invalid(format!(
                "training `{}` diverged at epoch {epoch} (loss {train_loss}); lower the learning rate",
                train.name
            )));
        }
        let val_metrics = val.as_ref().map(|v| evaluate(model, v, 512)).transpose()?;
        match &val_metrics {
            Some(m) => {
                bar.set_message(format!("loss {train_loss:.4} val acc {:.4}", m.accuracy));
                tracing::debug!(dataset = %train.name, epoch, train_loss, val_loss = m.loss, val_accuracy = m.accuracy, "epoch done");
            }
            None => {
                bar.set_message(format!("loss {train_loss:.4}"));
                tracing::debug!(dataset = %train.name, epoch, train_loss, "epoch done");
            }
        }
        epochs.push(EpochStats {
            epoch,
            train_loss,
            val: val_metrics,
        });
    }
    bar.finish_and_clear();
    Ok(TrainReport {
        epochs,
        steps,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// Mean cross-entropy and accuracy of `model` on `data` (on the model's
/// device), in eval mode, without gradients.
pub fn evaluate(model: &impl ModuleT, data: &Dataset, batch_size: usize) -> Result<Metrics> {
    if data.is_empty() {
        return Err(Error::Invalid(format!(
            "evaluation set `{}` is empty",
            data.name
        )));
    }
    graft_tensor::tch::no_grad(|| {
        let mut loss_sum = 0.0;
        let mut correct = 0i64;
        for (xs, ys) in data.batches(batch_size, None)? {
            let logits = model.forward_t(&xs, false);
            let ys = ys.f_to_device(logits.device())?;
            let n = ys.size()[0] as f64;
            loss_sum += logits
                .f_cross_entropy_loss::<Tensor>(&ys, None, Reduction::Mean, -100, 0.0)?
                .f_double_value(&[])?
                * n;
            correct += logits
                .f_argmax(-1, false)?
                .f_eq_tensor(&ys)?
                .f_sum(Kind::Int64)?
                .f_int64_value(&[])?;
        }
        let n = data.len();
        Ok(Metrics {
            loss: loss_sum / n as f64,
            accuracy: correct as f64 / n as f64,
            n,
        })
    })
}

/// Predicted classes (argmax of the logits) for every example of `data`.
pub fn predict(model: &impl ModuleT, data: &Dataset, batch_size: usize) -> Result<Tensor> {
    graft_tensor::tch::no_grad(|| {
        let parts: Vec<Tensor> = data
            .batches(batch_size, None)?
            .map(|(xs, _)| model.forward_t(&xs, false).argmax(-1, false))
            .collect();
        Ok(Tensor::f_cat(&parts, 0)?)
    })
}
