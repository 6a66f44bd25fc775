//! A multi-layer perceptron with ReLU activations.

use crate::layers::{LayerFactory, Plain};
use crate::{Error, Result};
use graft_tensor::tch::Tensor;
use graft_tensor::tch::nn::{self, ModuleT};
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
    hidden: Vec<Box<dyn ModuleT>>,
    head: Box<dyn ModuleT>,
}

impl Mlp {
    /// Builds the layers under `path` with tch's own layers.
    pub fn new(path: &nn::Path, config: &MlpConfig) -> Result<Self> {
        Self::with_layers(path, config, &Plain)
    }

    /// Builds the layers under `path` through `layers` (e.g. graft-peft's
    /// adaptable layers).
    pub fn with_layers(
        path: &nn::Path,
        config: &MlpConfig,
        layers: &dyn LayerFactory,
    ) -> Result<Self> {
        if config.input <= 0 || config.classes <= 0 || config.hidden.iter().any(|&h| h <= 0) {
            return Err(Error::Invalid(format!(
                "MLP sizes must be positive: {config:?}"
            )));
        }
        let mut width = config.input;
        let mut hidden = Vec::with_capacity(config.hidden.len());
        for (i, &h) in config.hidden.iter().enumerate() {
            hidden.push(layers.linear(&(path / "hidden" / i), width, h, true));
            width = h;
        }
        let head = layers.linear(&(path / "head"), width, config.classes, true);
        Ok(Self { hidden, head })
    }
}

impl ModuleT for Mlp {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut h = xs.flatten(1, -1);
        for layer in &self.hidden {
            h = layer.forward_t(&h, train).relu();
        }
        self.head.forward_t(&h, train)
    }
}
