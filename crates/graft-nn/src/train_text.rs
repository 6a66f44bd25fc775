//! Training and evaluating a BERT sentence classifier on texts (feature
//! `text`): tokenised per batch, AdamW over the given store (the whole
//! model, or an adapter store for parameter-efficient fine-tuning),
//! seeded shuffles, progress through a callback.

use crate::models::{BertForSequenceClassification, BertInput};
use crate::text::Tokenizer;
use crate::{Error, Result};
use graft_tensor::tch::nn::{self, OptimizerConfig};
use graft_tensor::tch::{Device, Kind, Tensor};
use std::time::Instant;

/// Texts with class indices.
#[derive(Debug, Clone)]
pub struct TextData {
    /// The texts.
    pub texts: Vec<String>,
    /// One class index per text.
    pub labels: Vec<i64>,
}

/// How to train.
#[derive(Debug, Clone)]
pub struct TextTrainConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Seed of the shuffles.
    pub seed: u64,
}

impl Default for TextTrainConfig {
    /// 3 epochs of batches of 32 at 2e-3 (adapters; full fine-tuning wants ~5e-5), seed 0.
    fn default() -> Self {
        Self {
            epochs: 3,
            batch_size: 32,
            lr: 2e-3,
            seed: 0,
        }
    }
}

/// Where training stands, after every step.
#[derive(Debug, Clone, Copy)]
pub struct TextProgress {
    /// Epoch (from 0).
    pub epoch: usize,
    /// Steps done in all.
    pub step: usize,
    /// Steps in all.
    pub steps: usize,
    /// Mean loss of this epoch so far.
    pub loss: f64,
    /// Training examples per second so far.
    pub examples_per_s: f64,
}

/// A tokenised batch of `texts[idx]` on `device`.
pub fn text_batch(
    tok: &Tokenizer,
    texts: &[String],
    idx: &[usize],
    device: Device,
) -> Result<BertInput> {
    let refs: Vec<&str> = idx.iter().map(|&i| texts[i].as_str()).collect();
    let b = tok.encode(&refs)?;
    Ok(BertInput {
        input_ids: b.input_ids.to_device(device),
        attention_mask: b.attention_mask.to_device(device),
        token_type_ids: b.token_type_ids.to_device(device),
    })
}

/// Trains `model` on `data`, updating the variables of `store`; calls
/// `end_of_epoch(epoch, mean loss)` after each epoch and `progress` after
/// each step. Returns the mean loss of each epoch.
pub fn train_text_classifier(
    model: &BertForSequenceClassification,
    store: &nn::VarStore,
    tok: &Tokenizer,
    data: &TextData,
    cfg: &TextTrainConfig,
    progress: &mut dyn FnMut(TextProgress),
    end_of_epoch: &mut dyn FnMut(usize, f64) -> Result<()>,
) -> Result<Vec<f64>> {
    if cfg.epochs == 0 || cfg.batch_size == 0 || !cfg.lr.is_finite() || cfg.lr <= 0.0 {
        return Err(Error::Invalid(format!(
            "training needs epochs > 0, batch_size > 0 and lr > 0 (got {}, {}, {})",
            cfg.epochs, cfg.batch_size, cfg.lr
        )));
    }
    if data.texts.is_empty() || data.texts.len() != data.labels.len() {
        return Err(Error::Invalid(format!(
            "{} texts and {} labels",
            data.texts.len(),
            data.labels.len()
        )));
    }
    let device = store.device();
    let mut opt = nn::AdamW::default().build(store, cfg.lr)?;
    let per_epoch = data.texts.len().div_ceil(cfg.batch_size);
    let steps = per_epoch * cfg.epochs;
    let started = Instant::now();
    let (mut step, mut seen) = (0usize, 0usize);
    let mut losses = Vec::with_capacity(cfg.epochs);
    for epoch in 0..cfg.epochs {
        graft_tensor::tch::manual_seed(graft_tensor::seed::derive_seed(
            cfg.seed,
            &format!("epoch {epoch}"),
        ) as i64);
        let perm = Tensor::randperm(data.texts.len() as i64, (Kind::Int64, Device::Cpu));
        let order: Vec<usize> = Vec::<i64>::try_from(&perm)?
            .into_iter()
            .map(|i| i as usize)
            .collect();
        let mut sum = 0.0;
        for (i, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let input = text_batch(tok, &data.texts, chunk, device)?;
            let y = Tensor::from_slice(&chunk.iter().map(|&j| data.labels[j]).collect::<Vec<_>>())
                .to_device(device);
            let loss = model.forward(&input, true)?.cross_entropy_for_logits(&y);
            opt.backward_step(&loss);
            let l = loss.double_value(&[]);
            if !l.is_finite() {
                return Err(Error::Invalid(format!(
                    "the training loss became {l} at epoch {} step {}; lower the learning rate",
                    epoch + 1,
                    i + 1
                )));
            }
            sum += l;
            step += 1;
            seen += chunk.len();
            progress(TextProgress {
                epoch,
                step,
                steps,
                loss: sum / (i + 1) as f64,
                examples_per_s: seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
            });
        }
        let mean = sum / per_epoch as f64;
        losses.push(mean);
        end_of_epoch(epoch, mean)?;
    }
    Ok(losses)
}

/// Predicted classes of `texts`, in batches of `batch_size`, no gradients.
pub fn predict_texts(
    model: &BertForSequenceClassification,
    tok: &Tokenizer,
    texts: &[String],
    batch_size: usize,
    device: Device,
) -> Result<Tensor> {
    let order: Vec<usize> = (0..texts.len()).collect();
    let mut out = Vec::new();
    for chunk in order.chunks(batch_size.max(1)) {
        let input = text_batch(tok, texts, chunk, device)?;
        let logits = graft_tensor::tch::no_grad(|| model.forward(&input, false))?;
        out.push(logits.argmax(-1, false).to_device(Device::Cpu));
    }
    Ok(Tensor::f_cat(&out, 0)?)
}

/// The share of `data` classified correctly.
pub fn text_accuracy(
    model: &BertForSequenceClassification,
    tok: &Tokenizer,
    data: &TextData,
    device: Device,
) -> Result<f64> {
    let pred = predict_texts(model, tok, &data.texts, 64, device)?;
    let want = Tensor::from_slice(&data.labels);
    let correct = pred.eq_tensor(&want).sum(Kind::Int64).int64_value(&[]);
    Ok(correct as f64 / data.texts.len().max(1) as f64)
}
