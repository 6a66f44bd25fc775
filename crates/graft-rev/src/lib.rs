//! graft-rev: reversible networks whose activation memory does not grow with depth.
//!
//! - [`Reversible`]: an invertible block (`forward`, `inverse`, and a
//!   `backward` that reconstructs the input and back-propagates through a
//!   recomputation); [`Coupling`] implements it for additive (scaled, with
//!   optional swap) and affine couplings around any two [`SubNet`]s.
//! - [`Stack`]: runs layers (reversible blocks and non-invertible
//!   boundaries) with one [`Strategy`]: plain autograd, per-layer
//!   checkpointing, or reversible; anchors, dropout replay from per-layer
//!   seeds, a BatchNorm guard ([`subnet::batch_norm_guarded`]), a
//!   [`Ledger`] of retained bytes and an optional drift check.
//! - [`heun`]: reversible Heun for neural ODEs with O(1)-memory gradients.
//!
//! The engine knows nothing of the model it wraps. See `docs/reversible.md`.

#![warn(missing_docs)]

pub mod coupling;
mod error;
#[cfg(feature = "experiments")]
pub mod experiments;
pub mod heun;
pub mod mlp;
pub mod reversible;
pub mod seeds;
pub mod stack;
pub mod subnet;
pub mod synth;
pub mod unet;

pub use coupling::{Coupling, CouplingConfig, CouplingKind};
pub use error::{Error, Result};
pub use reversible::{BlockCall, Reversible};
pub use stack::{Backward, Layer, Ledger, RunOptions, Stack, Strategy, Tape};
pub use subnet::{CallCtx, Phase, SubNet};
