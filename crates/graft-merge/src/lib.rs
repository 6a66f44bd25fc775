//! graft-merge: merging fine-tuned models that share one base.
//!
//! **Work in progress** on the graft-merge issue. Here now: the arithmetic
//! of linear averaging, Task Arithmetic, TIES-Merging, DARE and PCB-merging
//! on `f32` segments ([`merge_segment`]), with counter-based randomness;
//! mergekit's YAML ([`config::MergeConfig`]); and an engine over safetensors
//! checkpoints ([`engine::run_merge`]) that streams tensor by tensor with
//! `scope = tensor`, tensors in parallel; the `merge` reproduction; parity
//! with mergekit 0.1.5 on committed fixtures; `cargo xtask bench merge`.
//! Still to come: bounded-memory streaming (chunked tensors, released
//! mapped pages, multi-pass global scope) for models larger than memory.
//!
//! Notation (spec `merging.md` §0): base `θ0`, fine-tunes `θi`, deltas
//! `δi = θi − θ0`; every method returns `θ0 + Δ`, and [`merge`] returns `Δ`
//! for one *segment*: one tensor (`scope = tensor`, mergekit) or the whole
//! flattened model (`scope = global`, the papers' reference code).
//!
//! ```ignore
//! use graft_merge::{Delta, Method, MergeParams, merge};
//! let d1 = [0.5f32, -1.0, 0.0];
//! let d2 = [0.25f32, 1.0, 2.0];
//! let deltas = [Delta::new("a", &d1), Delta::new("b", &d2)];
//! let params = MergeParams { lambda: 0.5, ..MergeParams::default() };
//! let out = merge(&Method::TaskArithmetic, &params, "layer.weight", &deltas).unwrap();
//! assert_eq!(out, vec![0.375, 0.0, 1.0]);
//! ```

#![warn(missing_docs)]

pub mod chunked;
pub mod codec;
mod combine;
pub mod config;
pub mod engine;
mod error;
pub mod experiments;
mod method;
pub mod param;
mod pcb;
pub mod rng;
pub mod search;
mod sparsify;

pub use error::{Error, Result};
pub use method::{
    Compat, Delta, MergeParams, Method, Rescale, TrimRule, VoteRule, merge, merge_pcb_in_memory,
    merge_segment,
};
pub use pcb::{InterBalance, PcbComponents, PcbParams, PcbScores, pcb_scores};
pub use sparsify::{dare, trim};
