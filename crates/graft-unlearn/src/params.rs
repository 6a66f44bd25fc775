//! The parameters unlearning edits: a model's named trainable tensors.

use graft_tensor::tch::Tensor;
use graft_tensor::tch::nn::VarStore;

/// Named trainable parameters of `vs`, sorted by name, leaving out buffers
/// (variables without gradients, e.g. BatchNorm running statistics) and
/// every name that starts with one of `exclude`.
pub fn trainable_parameters(vs: &VarStore, exclude: &[String]) -> Vec<(String, Tensor)> {
    let mut params: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(name, t)| t.requires_grad() && !exclude.iter().any(|e| name.starts_with(e)))
        .collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    params
}
