//! graft-merge: merging fine-tuned models that share one base.
//!
//! **State: the merge maths only** (work in progress on the graft-merge
//! issue). This crate holds the per-tensor and flattened-model arithmetic of
//! linear averaging, Task Arithmetic, TIES-Merging, DARE and PCB-merging, on
//! plain `f32` slices, with the counter-based randomness the spec asks for.
//! The streaming checkpoint engine, mergekit YAML and `graft merge` are not
//! here yet.
//!
//! Notation (spec `merging.md` §0): base `θ0`, fine-tunes `θi`, deltas
//! `δi = θi − θ0`; every method returns `θ0 + Δ`, and [`merge`] returns `Δ`
//! for one *segment*: one tensor (`scope = tensor`, mergekit) or the whole
//! flattened model (`scope = global`, the papers' reference code).
//!
//! ```
//! use graft_merge::{Delta, Method, MergeParams, merge};
//! let d1 = [0.5f32, -1.0, 0.0];
//! let d2 = [0.25f32, 1.0, 2.0];
//! let deltas = [Delta::new("a", &d1), Delta::new("b", &d2)];
//! let params = MergeParams { lambda: 0.5, ..MergeParams::default() };
//! let out = merge(&Method::TaskArithmetic, &params, "layer.weight", &deltas).unwrap();
//! assert_eq!(out, vec![0.375, 0.0, 1.0]);
//! ```

#![warn(missing_docs)]

mod combine;
mod error;
mod method;
mod pcb;
pub mod rng;
pub mod select;
mod sparsify;

pub use error::{Error, Result};
pub use method::{
    Compat, Delta, MergeParams, Method, Rescale, TrimRule, VoteRule, merge, merge_segment,
};
pub use pcb::{PcbParams, PcbScores, pcb_scores};
pub use sparsify::{dare, trim};
