//! SGTM's training step: per batch, a mode from its domain label decides
//! the forward pass and which parameter entries may change.

use super::designated::RoutedModel;
use super::optimizer::{AdamW, MaskedAdamW, Semantics};
use crate::{Error, Result};
use graft_nn::models::Route;
use graft_tensor::tch::nn::VarStore;
use graft_tensor::tch::{Reduction, Tensor, no_grad};
use serde::{Deserialize, Serialize};

/// What a batch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchMode {
    /// A detected forget batch: ordinary forward; afterwards only the
    /// designated entries (and, under the reference rules, parameters
    /// outside the masked layers) may change. Under gradient routing: the
    /// forward detaches the other heads' and units' activations instead.
    Forget,
    /// A retain batch in retain mode: forward with the designated parts
    /// ablated; designated entries do not change.
    Retain,
    /// Ordinary training of everything.
    Default,
    /// No step at all (a filtered batch; the LR schedule still advances).
    Skip,
}

/// Which non-designated parameters a forget batch may not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskRule {
    /// The reference (TinyStories): the non-designated entries of the
    /// attention and MLP layers (including their whole output biases);
    /// embeddings, LayerNorms and the unembedding still learn.
    Reference,
    /// The reference's `mask_embeddings` (Wikipedia): also token and
    /// position embeddings and the blocks' LayerNorms.
    ReferenceWithEmbeddings,
    /// Every non-designated parameter (needed for exactness, spec C2).
    Strict,
}

/// SGTM or the gradient-routing baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// Selective gradient masking.
    Sgtm,
    /// Gradient routing (Cloud et al., 2024): forget batches detach the
    /// other heads' and units' activations; parameter gradients elsewhere
    /// (output columns, biases, embeddings) still flow.
    GradientRouting,
}

/// How SGTM trains.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SgtmConfig {
    /// Which parameters forget batches may not change.
    pub rule: MaskRule,
    /// What masking means to the optimiser.
    pub semantics: Semantics,
    /// AdamW's constants.
    pub adam: AdamW,
    /// SGTM or gradient routing.
    pub variant: Variant,
}

impl Default for SgtmConfig {
    /// The exact setting: strict masks, `SkipMasked`, AdamW (0.9, 0.95), weight decay 0.1.
    fn default() -> Self {
        Self {
            rule: MaskRule::Strict,
            semantics: Semantics::SkipMasked,
            adam: AdamW::default(),
            variant: Variant::Sgtm,
        }
    }
}

/// Trains a [`RoutedModel`] batch by batch.
pub struct SgtmTrainer<'a, M: RoutedModel> {
    model: &'a M,
    /// The optimiser (its state is public for tests and reports).
    pub optimizer: MaskedAdamW,
    designated: Vec<Option<Tensor>>,
    config: SgtmConfig,
    forget_mask: Option<Tensor>,
    retain_mask: Option<Tensor>,
}

fn masked_layer(name: &str) -> bool {
    name.starts_with("blocks.") && (name.contains(".attn.") || name.contains(".mlp."))
}

fn embedding_or_block_norm(name: &str) -> bool {
    name.starts_with("wte.")
        || name.starts_with("wpe.")
        || (name.starts_with("blocks.") && name.contains(".ln"))
}

impl<'a, M: RoutedModel> SgtmTrainer<'a, M> {
    /// A trainer over every trainable parameter of `vs` (the model's).
    pub fn new(model: &'a M, vs: &VarStore, config: SgtmConfig) -> Result<Self> {
        let params = crate::trainable_parameters(vs, &[]);
        let masks = model.designated();
        for (name, m) in &masks {
            match params.iter().find(|(n, _)| n == name) {
                Some((_, p)) if p.size() == m.size() => {}
                Some((_, p)) => {
                    return Err(Error::Importance {
                        origin: "<designated>".into(),
                        name: name.clone(),
                        reason: format!(
                            "mask of shape {:?} for a parameter of shape {:?}",
                            m.size(),
                            p.size()
                        ),
                    });
                }
                None => {
                    return Err(Error::Importance {
                        origin: "<designated>".into(),
                        name: name.clone(),
                        reason: "designated but not a trainable parameter of the store".into(),
                    });
                }
            }
        }
        let designated = params
            .iter()
            .map(|(n, p)| masks.get(n).map(|m| m.to_device(p.device())))
            .collect();
        let mut trainer = Self {
            model,
            optimizer: MaskedAdamW::new(params, config.adam, config.semantics),
            designated,
            config,
            forget_mask: None,
            retain_mask: None,
        };
        // The masks of the two masked modes, flattened once.
        for mode in [BatchMode::Forget, BatchMode::Retain] {
            let per_param: Vec<Option<Tensor>> = (0..trainer.designated.len())
                .map(|i| {
                    let name = trainer.optimizer.params()[i].0.clone();
                    trainer.allowed(i, &name, mode)
                })
                .collect();
            let flat = trainer.optimizer.flat_mask(&per_param)?;
            match mode {
                BatchMode::Forget => trainer.forget_mask = flat,
                _ => trainer.retain_mask = flat,
            }
        }
        Ok(trainer)
    }

    /// The 0/1 mask of entries of parameter `i` that `mode` lets change (`None`: all).
    fn allowed(&self, i: usize, name: &str, mode: BatchMode) -> Option<Tensor> {
        let d = self.designated[i].as_ref();
        match mode {
            BatchMode::Default | BatchMode::Skip => None,
            BatchMode::Retain => d.map(|m| 1.0 - m),
            BatchMode::Forget if self.config.variant == Variant::GradientRouting => None,
            BatchMode::Forget => {
                let protect = match self.config.rule {
                    MaskRule::Strict => true,
                    MaskRule::Reference => masked_layer(name),
                    MaskRule::ReferenceWithEmbeddings => {
                        masked_layer(name) || embedding_or_block_norm(name)
                    }
                };
                match (d, protect) {
                    (Some(m), true) => Some(m.shallow_clone()),
                    (None, true) => Some(self.optimizer.params()[i].1.zeros_like()),
                    (_, false) => None,
                }
            }
        }
    }

    /// One step on `(inputs, targets)` (targets −100 are ignored) at
    /// learning rate `lr`; returns the batch's mean cross-entropy (NaN for
    /// [`BatchMode::Skip`], which changes nothing).
    pub fn step(
        &mut self,
        inputs: &Tensor,
        targets: &Tensor,
        mode: BatchMode,
        lr: f64,
    ) -> Result<f64> {
        if mode == BatchMode::Skip {
            return Ok(f64::NAN);
        }
        let route = match (mode, self.config.variant) {
            (BatchMode::Retain, _) => Route::AblateDesignated,
            (BatchMode::Forget, Variant::GradientRouting) => Route::DetachOthers,
            _ => Route::Normal,
        };
        let loss = lm_loss(&self.model.forward_routed(inputs, route)?, targets)?;
        loss.f_backward()?;
        let value = loss.f_double_value(&[])?;
        let flat = match mode {
            BatchMode::Forget => self.forget_mask.as_ref(),
            BatchMode::Retain => self.retain_mask.as_ref(),
            BatchMode::Default | BatchMode::Skip => None,
        };
        self.optimizer.step(lr, flat)?;
        Ok(value)
    }

    /// Removes the forget capability: every designated entry set to 0
    /// (a fixed point: those entries then get zero gradient).
    pub fn ablate(&self) -> Result<()> {
        ablate_designated(self.model, self.optimizer.params())
    }
}

/// Sets every designated entry of `model`'s parameters (`params` by name) to 0.
pub fn ablate_designated<M: RoutedModel + ?Sized>(
    model: &M,
    params: &[(String, Tensor)],
) -> Result<()> {
    let masks = model.designated();
    no_grad(|| -> Result<()> {
        for (name, p) in params {
            if let Some(m) = masks.get(name) {
                let mut p = p.shallow_clone();
                let keep = m.f_to_device(p.device())?.f_neg()?.f_add_scalar(1.0)?;
                let _ = p.f_mul_(&keep)?;
            }
        }
        Ok(())
    })
}

/// Mean next-token cross-entropy of `logits` `[n, t, vocab]` against `targets` `[n, t]` (−100 ignored).
pub fn lm_loss(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let v = logits.size().last().copied().unwrap_or(0);
    Ok(logits.f_reshape([-1, v])?.f_cross_entropy_loss::<Tensor>(
        &targets.f_reshape([-1])?,
        None,
        Reduction::Mean,
        -100,
        0.0,
    )?)
}
