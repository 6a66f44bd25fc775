//! Membership inference: does the model still treat forgotten samples as
//! training data? Always read beside retraining's value, which is the
//! target (not 0).
//!
//! - [`entropy_mia`]: the SSD code's attack: the softmax entropy of each
//!   sample, a balanced logistic regression fit on retain-train (members)
//!   vs test (non-members), reported as the share of forget samples called members;
//! - [`loss_mia`]: a loss-threshold attack: the threshold that best
//!   separates retain-train from test losses, the share of forget samples
//!   under it, and the ROC-AUC of forget vs test losses.

mod logistic;
mod roc;

pub use logistic::BalancedLogistic;
pub use roc::{best_loss_threshold, roc_auc};

use crate::Result;
use graft_nn::Dataset;
use graft_tensor::tch::nn::ModuleT;
use graft_tensor::tch::{Device, Kind, Reduction, Tensor, no_grad};
use serde::{Deserialize, Serialize};

/// Softmax entropy `−Σ p·log p` of the model's output for every sample (eval mode).
pub fn entropies(model: &dyn ModuleT, data: &Dataset) -> Result<Vec<f64>> {
    per_sample(model, data, |logits, _| {
        let logp = logits.f_log_softmax(-1, Kind::Double)?;
        Ok(logp
            .f_exp()?
            .f_mul(&logp)?
            .f_sum_dim_intlist(-1, false, Kind::Double)?
            .f_neg()?)
    })
}

/// Cross-entropy of every sample with its label (eval mode).
pub fn losses(model: &dyn ModuleT, data: &Dataset) -> Result<Vec<f64>> {
    per_sample(model, data, |logits, ys| {
        Ok(logits
            .f_to_kind(Kind::Double)?
            .f_cross_entropy_loss::<Tensor>(ys, None, Reduction::None, -100, 0.0)?)
    })
}

fn per_sample(
    model: &dyn ModuleT,
    data: &Dataset,
    f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Vec<f64>> {
    no_grad(|| {
        let mut out = Vec::with_capacity(data.len());
        for (xs, ys) in data.batches(256, None)? {
            let logits = model.forward_t(&xs, false);
            let ys = ys.f_to_device(logits.device())?;
            let v = f(&logits, &ys)?.f_to_device(Device::Cpu)?;
            out.extend(Vec::<f64>::try_from(&v)?);
        }
        Ok(out)
    })
}

/// The result of [`entropy_mia`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EntropyMia {
    /// Share of forget samples the attack calls members.
    pub member_share: f64,
    /// The fitted attack's weight on the entropy.
    pub coef: f64,
    /// Its intercept.
    pub intercept: f64,
}

/// The SSD code's attack (see the module docs).
pub fn entropy_mia(
    model: &dyn ModuleT,
    retain_train: &Dataset,
    test: &Dataset,
    forget_train: &Dataset,
) -> Result<EntropyMia> {
    let attack = BalancedLogistic::fit(
        &entropies(model, retain_train)?,
        &entropies(model, test)?,
        1.0,
    )?;
    let forget = entropies(model, forget_train)?;
    let members = forget.iter().filter(|&&x| attack.is_member(x)).count();
    Ok(EntropyMia {
        member_share: members as f64 / forget.len().max(1) as f64,
        coef: attack.coef,
        intercept: attack.intercept,
    })
}

/// The result of [`loss_mia`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossMia {
    /// Members are samples with loss ≤ this.
    pub threshold: f64,
    /// The threshold's balanced accuracy on retain-train vs test.
    pub balanced_accuracy: f64,
    /// Share of forget samples with loss ≤ threshold.
    pub member_share: f64,
    /// ROC-AUC of forget (positive) vs test losses, lower loss = member;
    /// 0.5 means forget samples look like unseen ones.
    pub auc: f64,
}

/// The loss-threshold attack (see the module docs).
pub fn loss_mia(
    model: &dyn ModuleT,
    retain_train: &Dataset,
    test: &Dataset,
    forget_train: &Dataset,
) -> Result<LossMia> {
    let test_losses = losses(model, test)?;
    let (threshold, balanced_accuracy) =
        best_loss_threshold(&losses(model, retain_train)?, &test_losses)?;
    let forget = losses(model, forget_train)?;
    let member_share =
        forget.iter().filter(|&&l| l <= threshold).count() as f64 / forget.len().max(1) as f64;
    let neg = |v: &[f64]| v.iter().map(|x| -x).collect::<Vec<f64>>();
    let auc = roc_auc(&neg(&forget), &neg(&test_losses))?;
    Ok(LossMia {
        threshold,
        balanced_accuracy,
        member_share,
        auc,
    })
}
