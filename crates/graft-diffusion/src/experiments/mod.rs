//! The `diffusion` reproduction (spec `diffusion.md` §7.5-7.6).

use graft_nn::experiment::{ExperimentContext, Outcome};

/// Runs the `diffusion` reproduction.
pub fn run(_ctx: &ExperimentContext) -> crate::Result<Outcome> {
    Err(crate::Error::Config(
        "the `diffusion` reproduction is not built yet".into(),
    ))
}
