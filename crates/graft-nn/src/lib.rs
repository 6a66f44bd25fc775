//! graft-nn: models, data sets, training and experiment plumbing shared by
//! graft's method crates.
//!
//! - [`models`]: an MLP and a small CNN for 8x8 and 28x28 images, on
//!   `tch::nn` with stable `VarStore` names, saved and loaded as safetensors;
//! - [`data`]: the [`Dataset`] type (seeded shuffles, splits, batches) and
//!   loaders for the 8x8 digits and MNIST 5k;
//! - [`layers`]: the [`layers::LayerFactory`] a model builds its layers
//!   through, so that graft-peft can put adaptable layers in their place;
//! - [`models::Bert`]: a BERT encoder with Hugging Face's names (loads
//!   all-MiniLM-L6-v2), and with the `text` feature [`text`]: its tokenizer;
//! - [`train`]: a classifier training loop reporting progress through a
//!   callback and `tracing`, and evaluation;
//! - with the `plot` feature: [`plot`], graft's one SVG writer (line
//!   charts, scatter plots, image grids);
//! - with the `experiments` feature: [`experiment`] (results, claims and
//!   plots for `graft reproduce`) and
//!   [`experiments`] (the experiments that live here, `baselines`).
//!
//! ```no_run
//! use graft_nn::data::digits;
//! use graft_nn::models::{ModelConfig, build};
//! use graft_nn::train::{TrainConfig, evaluate, train_classifier};
//! use graft_tensor::tch::{Device, nn::VarStore};
//!
//! # fn main() -> graft_nn::Result<()> {
//! let splits = digits()?.split(0.7, 0.15, 0)?;
//! graft_tensor::seed::seed_everything(0);
//! let vs = VarStore::new(Device::Cpu);
//! let model = build(&vs.root(), &ModelConfig::cnn_8x8(10))?;
//! train_classifier(&model, &vs, &splits.train, Some(&splits.val), &TrainConfig::default())?;
//! println!("test accuracy {:.3}", evaluate(&model, &splits.test, 256)?.accuracy);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod data;
mod error;
#[cfg(feature = "experiments")]
pub mod experiment;
#[cfg(feature = "experiments")]
pub mod experiments;
pub mod layers;
pub mod models;
#[cfg(feature = "plot")]
pub mod plot;
#[cfg(feature = "text")]
pub mod text;
pub mod train;
#[cfg(feature = "text")]
pub mod train_text;

pub use data::Dataset;
pub use error::{Error, Result};
