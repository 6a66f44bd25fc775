//! graft-tensor: the shared base of graft.
//!
//! - [`tch`] re-exported, so every graft crate uses the same libtorch binding;
//! - [`device`] selection (`GRAFT_DEVICE`) and [`dtype`] helpers;
//! - [`safetensors`] I/O: lazy, mmap-based reading of single and sharded
//!   checkpoints, streaming and sharded writing, atomic files;
//! - an [`array`] bridge to `ndarray`;
//! - [`seed`]: one call seeds tch and a Rust RNG;
//! - [`memory`] probes: peak resident memory of a closure in a child process,
//!   and bytes held by a set of tensors;
//! - [`cache`]: where graft's cache and assets live;
//! - [`fused`] element-wise arithmetic: a linear combination in one pass;
//! - [`output`] rules (never delete what graft did not write) and [`input`]
//!   checks (regular files only), used with [`atomic`] writes.
//!
//! ```ignore
//! use graft_tensor::safetensors::{Checkpoint, save};
//! use graft_tensor::tch::{Kind, Tensor};
//!
//! # fn main() -> graft_tensor::Result<()> {
//! let w = Tensor::randn([4, 3], (Kind::Float, graft_tensor::tch::Device::Cpu));
//! save("w.safetensors", [("w", &w)], &Default::default())?;
//! let ckpt = Checkpoint::open("w.safetensors")?;
//! assert!(ckpt.tensor("w")?.allclose(&w, 0.0, 0.0, false));
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

#[cfg(feature = "tch")]
pub use tch;

#[cfg(feature = "tch")]
pub mod array;
pub mod atomic;
pub mod cache;
#[cfg(feature = "tch")]
pub mod device;
#[cfg(feature = "tch")]
pub mod dtype;
mod error;
#[cfg(feature = "tch")]
pub mod fused;
pub mod input;
pub mod memory;
pub mod output;
pub mod safetensors;
#[cfg(feature = "tch")]
pub mod seed;
#[cfg(feature = "tch")]
pub mod shared;

pub use error::{Error, Result};

#[cfg(feature = "testing")]
pub mod testing;
