//! The `rev` reproduction (spec `reversible.md` §6 and the plan).

use graft_nn::experiment::{ExperimentContext, Outcome};

/// Runs the `rev` reproduction.
pub fn run(_ctx: &ExperimentContext) -> crate::Result<Outcome> {
    Err(crate::Error::Config(
        "the `rev` reproduction is not built yet".into(),
    ))
}
