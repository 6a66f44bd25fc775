//! A multi-layer perceptron with ReLU activations.

use crate::{Error, Result};
use graft_tensor::tch::Tensor;
use graft_tensor::tch::nn::{self, Module, ModuleT};
use serde::{Deserialize, Serialize};

/// Sizes of an [`Mlp`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Flattened input size.
    pub input: i64,
    /// Hidden layer widths.
    pub hidden: Vec<i64>,
    /// Number of classes (output width).
    pub classes: i64,
}

/// Linear layers `hidden.{i}` with ReLU between them, then `head`; the input is flattened.
#[derive(Debug)]
pub struct Mlp {
    hidden: Vec<nn::Linear>,
    head: nn::Linear,
}

impl Mlp {
    /// Builds the layers under `path`.
    pub fn new(path: &nn::Path, config: &MlpConfig) -> Result<Self> {
        if config.input <= 0 || config.classes <= 0 || config.hidden.iter().any(|&h| h <= 0) {
            return Err(Error::Invalid(format!(
                "MLP sizes must be positive: {config:?}"
            )));
        }
        let mut width = config.input;
        let mut hidden = Vec::with_capacity(config.hidden.len());
        for (i, &h) in config.hidden.iter().enumerate() {
            hidden.push(nn::linear(
                path / "hidden" / i,
                width,
                h,
                Default::default(),
            ));
            width = h;
        }
        let head = nn::linear(path / "head", width, config.classes, Default::default());
        Ok(Self { hidden, head })
    }
}

impl ModuleT for Mlp {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        let mut h = xs.flatten(1, -1);
        for layer in &self.hidden {
            h = layer.forward(&h).relu();
        }
        self.head.forward(&h)
    }
}
