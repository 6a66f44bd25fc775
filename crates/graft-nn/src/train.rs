//! Training and evaluating classifiers.

use crate::data::Dataset;
use crate::{Error, Result};
use graft_tensor::seed::derive_seed;
use graft_tensor::tch::nn::{self, ModuleT, OptimizerConfig, VarStore};
use graft_tensor::tch::{Kind, Reduction, Tensor};
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
}

/// Where training stands, reported after every optimiser step (the library
/// draws nothing; a command or example turns these into a progress bar).
#[derive(Debug, Clone, Copy)]
pub struct TrainProgress<'a> {
    /// The training set's name.
    pub dataset: &'a str,
    /// Steps done so far.
    pub step: usize,
    /// Steps in all (`epochs × batches per epoch`).
    pub steps: usize,
    /// The current epoch (from 1).
    pub epoch: usize,
    /// At the last step of an epoch: its mean training loss and, with a
    /// validation set, the validation accuracy.
    pub epoch_end: Option<(f64, Option<f64>)>,
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
    model: &(impl ModuleT + ?Sized),
    vs: &VarStore,
    train: &Dataset,
    val: Option<&Dataset>,
    cfg: &TrainConfig,
) -> Result<TrainReport> {
    train_classifier_with_progress(model, vs, train, val, cfg, &mut |_| {})
}

/// [`train_classifier`], calling `progress` after every step.
pub fn train_classifier_with_progress(
    model: &(impl ModuleT + ?Sized),
    vs: &VarStore,
    train: &Dataset,
    val: Option<&Dataset>,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(TrainProgress<'_>),
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
    let total_steps = per_epoch * cfg.epochs;
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
            progress(TrainProgress {
                dataset: &train.name,
                step: steps,
                steps: total_steps,
                epoch,
                epoch_end: None,
            });
        }
        let train_loss = loss_sum / batches.max(1) as f64;
        if !train_loss.is_finite() {
            return Err(Error::Invalid(format!(
                "training `{}` diverged at epoch {epoch} (loss {train_loss}); lower the learning rate",
                train.name
            )));
        }
        let val_metrics = val.as_ref().map(|v| evaluate(model, v, 512)).transpose()?;
        match &val_metrics {
            Some(m) => {
                tracing::debug!(dataset = %train.name, epoch, train_loss, val_loss = m.loss, val_accuracy = m.accuracy, "epoch done");
            }
            None => {
                tracing::debug!(dataset = %train.name, epoch, train_loss, "epoch done");
            }
        }
        progress(TrainProgress {
            dataset: &train.name,
            step: steps,
            steps: total_steps,
            epoch,
            epoch_end: Some((train_loss, val_metrics.map(|m| m.accuracy))),
        });
        epochs.push(EpochStats {
            epoch,
            train_loss,
            val: val_metrics,
        });
    }
    Ok(TrainReport {
        epochs,
        steps,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// Mean cross-entropy and accuracy of `model` on `data` (on the model's
/// device), in eval mode, without gradients.
pub fn evaluate(
    model: &(impl ModuleT + ?Sized),
    data: &Dataset,
    batch_size: usize,
) -> Result<Metrics> {
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
pub fn predict(
    model: &(impl ModuleT + ?Sized),
    data: &Dataset,
    batch_size: usize,
) -> Result<Tensor> {
    graft_tensor::tch::no_grad(|| {
        let parts: Vec<Tensor> = data
            .batches(batch_size, None)?
            .map(|(xs, _)| model.forward_t(&xs, false).argmax(-1, false))
            .collect();
        Ok(Tensor::f_cat(&parts, 0)?)
    })
}
