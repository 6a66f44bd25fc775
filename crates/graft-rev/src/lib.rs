//! graft-rev: reversible networks whose activation memory does not grow with depth.
//!
//! **Work in progress** on the graft-rev issue (spec `reversible.md`).

#![warn(missing_docs)]

mod error;
pub mod experiments;

pub use error::{Error, Result};
