//! graft-merge: merging fine-tuned models that share one base.
//!
//! Linear averaging, Task Arithmetic, TIES-Merging, DARE and PCB-merging
//! (with its three inter-balancing variants and "PCB + ES" per-model scale
//! search, [`PcbComponents`], [`search`]), on `f32` segments
//! ([`merge_segment`]) with counter-based randomness; mergekit's YAML
//! ([`config::MergeConfig`], read through [`yaml::MergekitYaml`] or built
//! with [`config::MergeConfig::new`]); and a merge of safetensors checkpoint
//! files ([`files::run_merge`]) that streams tensors in chunks, in bounded memory
//! whatever the model size, for per-tensor and global scope alike
//! ([`chunked`]). [`Source`] is the extension point: implement it to merge
//! tensors from any storage (a custom file format, a database, values
//! computed on the fly) with [`merge_chunked`]; `examples/custom_source.rs`
//! shows one. The `merge` reproduction, parity with mergekit 0.1.5 on
//! committed fixtures and `cargo xtask bench merge` live beside it.
//!
//! Notation (spec `merging.md` §0): base `θ0`, fine-tunes `θi`, deltas
//! `δi = θi − θ0`; every method returns `θ0 + Δ`, and [`merge`] returns `Δ`
//! for one *segment*: one tensor (`scope = tensor`, mergekit) or the whole
//! flattened model (`scope = global`, the papers' reference code).
//!
//! ```ignore
//! use graft_merge::{Method, MergeParams, ModelValues, merge};
//! let d1 = [0.5f32, -1.0, 0.0];
//! let d2 = [0.25f32, 1.0, 2.0];
//! let deltas = [ModelValues::new("a", &d1), ModelValues::new("b", &d2)];
//! let params = MergeParams { lambda: 0.5, ..MergeParams::default() };
//! let out = merge(&Method::TaskArithmetic, &params, "layer.weight", &deltas).unwrap();
//! assert_eq!(out, vec![0.375, 0.0, 1.0]);
//! ```

#![warn(missing_docs)]

mod builder;
pub mod chunked;
pub mod codec;
mod combine;
pub mod config;
mod dtype;
mod error;
#[cfg(feature = "experiments")]
pub mod experiments;
pub mod files;
#[cfg(feature = "tch")]
mod in_memory;
mod method;
pub mod param;
mod pcb;
pub mod rng;
pub mod search;
mod sparsify;
mod types;
pub mod yaml;

pub use chunked::{ChunkModel, SliceSource, Source, merge_chunked};
pub use dtype::DType;
pub use error::{Error, Result};
pub use files::{MergeReport, Progress, RunOptions, run_merge, run_merge_with_progress};
#[cfg(feature = "tch")]
pub use in_memory::merge_tensors;
pub use method::{merge, merge_pcb_in_memory, merge_segment};
pub use pcb::{PcbComponents, PcbScores, pcb_scores};
pub use sparsify::{dare, trim};
#[allow(deprecated)]
pub use types::Delta;
pub use types::{
    Compat, DareStream, EmptyTrim, InterBalance, MergeParams, Method, ModelValues, PcbParams,
    Rescale, TrimRule, VoteRule,
};
