//! graft-unlearn: machine unlearning on `tch` models: make a trained model
//! forget a set of samples, and measure whether it did.
//!
//! - [`Ssd`]: Selective Synaptic Dampening (Foster et al., AAAI 2024) and
//!   its label-free variant, from [`importance`]s and [`dampen`]ing;
//! - [`baselines`]: retraining, fine-tuning, gradient ascent (NegGrad,
//!   NegGrad+, GradDiff) and random labels, behind the same [`Unlearner`];
//! - [`eval`] and [`mia`]: accuracy on every split and membership inference
//!   (the SSD code's entropy attack, a loss-threshold attack with ROC-AUC);
//! - [`corrective`]: the corrective setting (BadNets poisoning, interclass
//!   confusion, identified fractions) and its metrics;
//! - with the `experiments` feature: the `unlearn` reproduction.
//!
//! ```no_run
//! use graft_nn::data::digits;
//! use graft_nn::models::{ModelConfig, build};
//! use graft_nn::train::{TrainConfig, train_classifier};
//! use graft_tensor::tch::{Device, nn::VarStore};
//! use graft_unlearn::{ForgetRequest, Ssd, SsdConfig, Unlearner};
//!
//! # fn main() -> graft_unlearn::Result<()> {
//! let splits = digits()?.split(0.7, 0.15, 0)?;
//! let vs = VarStore::new(Device::Cpu);
//! let model = build(&vs.root(), &ModelConfig::cnn_8x8(10))?;
//! train_classifier(&model, &vs, &splits.train, None, &TrainConfig::default())?;
//! let forget = splits.train.with_classes(&[3])?;
//! let retain = splits.train.with_classes(&[0, 1, 2, 4, 5, 6, 7, 8, 9])?;
//! let ssd = Ssd::new(SsdConfig::new(2.0, 1.0))?;
//! let report = ssd.unlearn(&ForgetRequest { model: &model, vs: &vs, forget: &forget, retain: &retain })?;
//! println!("{} in {:.2} s", report.method, report.wall_s);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod baselines;
pub mod corrective;
pub mod dampen;
mod error;
pub mod eval;
#[cfg(feature = "experiments")]
pub mod experiments;
pub mod files;
pub mod importance;
pub mod lm_eval;
pub mod mia;
mod params;
pub mod sgtm;
pub mod ssd;
mod unlearner;

pub use error::{Error, Result};
pub use params::trainable_parameters;
pub use ssd::{FullData, Ssd, SsdConfig, SsdReport, dampen_model};
pub use unlearner::{ForgetRequest, UnlearnReport, Unlearner};
