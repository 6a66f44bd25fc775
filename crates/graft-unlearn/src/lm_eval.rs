//! Evaluating a language model's forgetting: held-out losses (optionally
//! with the softmax restricted to one language's tokens), and MUSE's
//! privacy-leakage score from a Min-K% Prob membership attack.

use crate::mia::roc_auc;
use crate::sgtm::RoutedModel;
use crate::{Error, Result};
use graft_nn::data::lm_batch;
use graft_nn::models::Route;
use graft_tensor::tch::{Device, Kind, Reduction, Tensor, no_grad};

/// Mean next-token cross-entropy of `model` over `docs` (every target
/// token counts once). With `restrict`, the softmax runs over those token
/// ids only (targets outside them are an error): "how well does the model
/// still speak this language", free of the unigram mass other tokens took.
pub fn lm_eval_loss(
    model: &dyn RoutedModel,
    docs: &[Vec<i64>],
    context: usize,
    restrict: Option<&[i64]>,
) -> Result<f64> {
    if docs.is_empty() {
        return Err(Error::data("documents", "none to evaluate"));
    }
    no_grad(|| {
        let (mut sum, mut count) = (0.0, 0i64);
        for chunk in docs.chunks(256) {
            let refs: Vec<&[i64]> = chunk.iter().map(Vec::as_slice).collect();
            let (x, y) = lm_batch(&refs, context);
            let logits = model.forward_routed(&x, Route::Normal)?;
            let v = logits.size()[2];
            let (logits, y) = match restrict {
                None => (logits.f_reshape([-1, v])?, y.f_reshape([-1])?),
                Some(ids) => {
                    let idx = Tensor::from_slice(ids);
                    // Map every allowed token id to its place in `ids`.
                    let mut map = vec![-1i64; v as usize];
                    for (k, &id) in ids.iter().enumerate() {
                        if let Some(slot) = usize::try_from(id).ok().and_then(|i| map.get_mut(i)) {
                            *slot = k as i64;
                        }
                    }
                    let flat: Vec<i64> = Vec::try_from(&y.f_reshape([-1])?)?;
                    let mapped: Vec<i64> = flat
                        .iter()
                        .map(|&t| {
                            if t < 0 {
                                Ok(-100)
                            } else {
                                match map[t as usize] {
                                    -1 => Err(t),
                                    k => Ok(k),
                                }
                            }
                        })
                        .collect::<std::result::Result<_, i64>>()
                        .map_err(|t| {
                            Error::data(
                                "documents",
                                format!("target token {t} is outside the restricted vocabulary"),
                            )
                        })?;
                    (
                        logits.f_reshape([-1, v])?.f_index_select(1, &idx)?,
                        Tensor::from_slice(&mapped),
                    )
                }
            };
            let n = y.f_ne(-100)?.f_sum(Kind::Int64)?.f_int64_value(&[])?;
            let loss =
                logits.f_cross_entropy_loss::<Tensor>(&y, None, Reduction::Sum, -100, 0.0)?;
            sum += loss.f_double_value(&[])?;
            count += n;
        }
        Ok(sum / count.max(1) as f64)
    })
}

/// Min-K% Prob scores (Shi et al., 2024): per document, the mean of the
/// lowest `k` fraction of its target tokens' log-probabilities (higher =
/// more likely seen in training).
pub fn min_k_scores(
    model: &dyn RoutedModel,
    docs: &[Vec<i64>],
    context: usize,
    k: f64,
) -> Result<Vec<f64>> {
    if !(k > 0.0 && k <= 1.0) {
        return Err(Error::option("k", k, "must be in (0, 1]"));
    }
    no_grad(|| {
        let mut scores = Vec::with_capacity(docs.len());
        for chunk in docs.chunks(256) {
            let refs: Vec<&[i64]> = chunk.iter().map(Vec::as_slice).collect();
            let (x, y) = lm_batch(&refs, context);
            let logp = model
                .forward_routed(&x, Route::Normal)?
                .f_log_softmax(-1, Kind::Double)?;
            let valid = y.f_ne(-100)?;
            let picked = logp
                .f_gather(2, &y.f_clamp_min(0)?.f_unsqueeze(2)?, false)?
                .f_squeeze_dim(2)?
                .f_to_device(Device::Cpu)?;
            for i in 0..refs.len() as i64 {
                let row = picked.f_get(i)?.f_masked_select(&valid.f_get(i)?)?;
                let mut lp: Vec<f64> = Vec::try_from(&row)?;
                lp.sort_by(f64::total_cmp);
                let take = ((lp.len() as f64 * k).ceil() as usize).clamp(1, lp.len().max(1));
                scores.push(if lp.is_empty() {
                    f64::NAN
                } else {
                    lp[..take].iter().sum::<f64>() / take as f64
                });
            }
        }
        Ok(scores)
    })
}

/// The ROC-AUC of a Min-K% attack telling `members` from `holdout` documents.
pub fn min_k_auc(
    model: &dyn RoutedModel,
    members: &[Vec<i64>],
    holdout: &[Vec<i64>],
    context: usize,
    k: f64,
) -> Result<f64> {
    roc_auc(
        &min_k_scores(model, members, context, k)?,
        &min_k_scores(model, holdout, context, k)?,
    )
}

/// MUSE's PrivLeak: `(AUC − AUC_retrain) / AUC_retrain × 100`, ideal 0.
/// graft's AUC takes the forget (training) documents as the positive
/// class, so a positive PrivLeak means the forget set still looks more
/// like training data than under retraining (under-unlearning) and a
/// negative one over-unlearning. Third-party reports of MUSE read
/// under-unlearning as negative (the other class positive): flip the sign
/// to compare with them.
pub fn priv_leak(auc: f64, auc_retrain: f64) -> f64 {
    (auc - auc_retrain) / auc_retrain * 100.0
}
