//! graft-diffusion: mean-reverting SDE, MRS, DMCMC and baseline samplers.
//!
//! **Work in progress** on the graft-diffusion issue (spec `diffusion.md`).

#![warn(missing_docs)]

mod error;
pub mod experiments;

pub use error::{Error, Result};
