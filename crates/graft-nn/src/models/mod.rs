//! Small classifiers on `tch::nn`, with stable parameter names.
//!
//! Parameter names follow the `VarStore` path they are built under:
//! an [`Mlp`] has `hidden.{i}.weight|bias` and `head.weight|bias`; a
//! [`SmallCnn`] has `conv.{i}.weight|bias`, `fc.weight|bias` and
//! `head.weight|bias`. These are the keys in saved safetensors files, so
//! merging, unlearning and adapters can address layers by name.

mod bert;
mod cnn;
mod io;
mod mlp;
mod route;
mod tiny_lm;

pub use bert::{
    Bert, BertConfig, BertForSequenceClassification, BertInput, BertOutput, load_bert_weights,
    mean_pool,
};
pub use cnn::{CnnConfig, CnnDesignated, SmallCnn};
pub use io::{load_varstore, save_varstore, varstore_tensors};
pub use mlp::{Mlp, MlpConfig};
pub use route::Route;
pub use tiny_lm::{TinyLm, TinyLmConfig};

use crate::Result;
use graft_tensor::tch::Tensor;
use graft_tensor::tch::nn::{self, ModuleT};
use serde::{Deserialize, Serialize};

/// Which model to build and its sizes; serialisable, so a saved model can
/// record how to rebuild it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    /// A multi-layer perceptron over the flattened input.
    Mlp(MlpConfig),
    /// A small convolutional network.
    Cnn(CnnConfig),
}

impl ModelConfig {
    /// MLP 64-128-64-`classes` for 8x8 images.
    pub fn mlp_8x8(classes: i64) -> Self {
        Self::Mlp(MlpConfig {
            input: 64,
            hidden: vec![128, 64],
            classes,
        })
    }

    /// MLP 784-256-128-`classes` for 28x28 images.
    pub fn mlp_28x28(classes: i64) -> Self {
        Self::Mlp(MlpConfig {
            input: 784,
            hidden: vec![256, 128],
            classes,
        })
    }

    /// The small CNN for 8x8 images.
    pub fn cnn_8x8(classes: i64) -> Self {
        Self::Cnn(CnnConfig::for_8x8(classes))
    }

    /// The small CNN for 28x28 images.
    pub fn cnn_28x28(classes: i64) -> Self {
        Self::Cnn(CnnConfig::for_28x28(classes))
    }

    /// A short name (`mlp` or `cnn`).
    pub fn short_name(&self) -> &'static str {
        match self {
            Self::Mlp(_) => "mlp",
            Self::Cnn(_) => "cnn",
        }
    }
}

/// A built classifier: logits `[n, classes]` from inputs `[n, ...]`.
#[derive(Debug)]
pub enum Model {
    /// See [`Mlp`].
    Mlp(Mlp),
    /// See [`SmallCnn`].
    Cnn(SmallCnn),
}

impl ModuleT for Model {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            Self::Mlp(m) => m.forward_t(xs, train),
            Self::Cnn(m) => m.forward_t(xs, train),
        }
    }
}

/// Builds the model described by `config` under `path` (parameters are created in its `VarStore`).
pub fn build(path: &nn::Path, config: &ModelConfig) -> Result<Model> {
    build_with(path, config, &crate::layers::Plain)
}

/// [`build`] through `layers` (e.g. graft-peft's adaptable layers, so that
/// adapters can wrap the model's layers by name).
pub fn build_with(
    path: &nn::Path,
    config: &ModelConfig,
    layers: &dyn crate::layers::LayerFactory,
) -> Result<Model> {
    Ok(match config {
        ModelConfig::Mlp(c) => Model::Mlp(Mlp::with_layers(path, c, layers)?),
        ModelConfig::Cnn(c) => Model::Cnn(SmallCnn::with_layers(path, c, layers)?),
    })
}
