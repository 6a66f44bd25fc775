//! The `peft` reproduction: adapters against head-only and full
//! fine-tuning on a digits transfer task, MLP and conv (spec `peft.md` §6),
//! and on real text, MiniLM for Rotten Tomatoes sentiment.

pub mod digits;
pub mod text;

use graft_nn::experiment::{ExperimentContext, RunResult};

/// Runs both parts.
pub fn run(ctx: &ExperimentContext) -> RunResult {
    let mut outcome = digits::run(ctx)?;
    text::run(ctx, &mut outcome)?;
    Ok(outcome)
}
