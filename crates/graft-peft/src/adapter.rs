//! The one contract every adapter method keeps on one layer (spec `peft.md`
//! §0): an output added to the frozen layer's, a merge into its weights and
//! the exact inverse, and its tensors under PEFT's key suffixes.

use crate::Result;
use crate::layer::BaseLayer;
use graft_tensor::tch::Tensor;
use std::fmt::Debug;

/// A layer's weight and bias after a merge, and what the unmerge needs
/// (DoRA: the row scale it applied).
#[derive(Debug)]
pub struct Merged {
    /// The merged weight.
    pub weight: Tensor,
    /// The merged bias (`None`: unchanged).
    pub bias: Option<Tensor>,
    /// State for [`Adapter::unmerge`].
    pub cache: Option<Tensor>,
}

/// One adapter on one layer. Implementations hold their own trainable
/// tensors; the layer's weights stay frozen.
pub trait Adapter: Debug + Send {
    /// PEFT's `peft_type` (`LORA`).
    fn peft_type(&self) -> &'static str;

    /// The term added to the base layer's output for `x` (dropout only when
    /// `train`).
    fn output(&self, base: &BaseLayer, x: &Tensor, train: bool) -> Result<Tensor>;

    /// The weight (and bias) with the adapter merged, from the layer's
    /// current ones, in the layer's dtype.
    fn merge(&self, base: &BaseLayer) -> Result<Merged>;

    /// The weight and bias before [`merge`](Adapter::merge), from the merged
    /// ones now in `base` and the merge's `cache`.
    fn unmerge(&self, base: &BaseLayer, cache: Option<&Tensor>)
    -> Result<(Tensor, Option<Tensor>)>;

    /// The tensors, each with its key suffix in PEFT's files
    /// (`lora_A.weight`, `lora_embedding_B`, `lora_magnitude_vector`).
    fn tensors(&self) -> Vec<(&'static str, &Tensor)>;

    /// Multiplies the scale by `factor` (PEFT's `set_scale` uses `factor · α / r`).
    fn set_scale_factor(&mut self, factor: f64);

    /// The adapter as LoRA, if it is one (for combinations).
    fn as_lora(&self) -> Option<&crate::lora::Lora> {
        None
    }
}
