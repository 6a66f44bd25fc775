//! graft-diffusion: mean-reverting SDE, MRS, DMCMC and baseline samplers,
//! checked against exact Gaussian-mixture oracles (spec `diffusion.md`).
//!
//! - [`process`]: MR-SDE (discrete tables, continuous cosine), VP, VE, EDM.
//! - [`param`]: exact conversions between noise, data, velocity and score.
//! - [`integrator`]: the exponential-integrator core shared by every process.
//! - [`samplers`]: Euler–Maruyama, Euler ODE, posterior, MRS, DPM-Solver single-step,
//!   EDM Heun, predictor–corrector, DLG.
//! - [`grid`], [`noise`]: step grids and noise sources.
//! - [`gmm`]: the exact Gaussian-mixture oracle; [`metrics`]: sample-quality metrics.
//! - [`learned`]: a small MLP denoiser trained with `tch` (spec §7.6); [`saved`]: its files
//!   (`config.json` + `model.safetensors`) for `graft sample --model`.
//! - [`experiments`]: the `diffusion` reproduction and its built-in problems.
//!
//! User guide and measured results: `docs/diffusion.md`.

#![warn(missing_docs)]
// `!(x > 0.0)` is deliberate throughout: it also refuses NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

mod error;
#[cfg(feature = "experiments")]
pub mod experiments;
pub mod gmm;
pub mod grid;
pub mod integrator;
pub mod learned;
pub mod metrics;
pub mod model;
pub mod noise;
pub mod param;
pub mod problems;
pub mod process;
pub mod samplers;
pub mod saved;
pub mod to_target;
mod ziggurat;

pub use error::{Error, Result};
