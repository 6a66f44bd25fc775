//! The `unlearn` reproduction (spec `unlearning.md` §7): 7.1 full-class
//! forgetting, 7.2 corrective unlearning, each on the 8x8 digits and on MNIST 5k.

pub mod common;
pub mod corrective;
pub mod forget_class;

use graft_nn::experiment::{ExperimentContext, Outcome, RunResult};

/// Runs 7.1 and 7.2 and joins their claims and plots.
pub fn run(ctx: &ExperimentContext) -> RunResult {
    // Small models: one intra-op thread beats two here (see docs/unlearning.md).
    let threads = graft_tensor::tch::get_num_threads();
    graft_tensor::tch::set_num_threads(1);
    let result = (|| {
        let mut outcome = Outcome::default();
        for part in [forget_class::run, corrective::run] {
            let o = part(ctx)?;
            outcome.claims.extend(o.claims);
            outcome.plots.extend(o.plots);
        }
        Ok(outcome)
    })();
    graft_tensor::tch::set_num_threads(threads);
    result
}
