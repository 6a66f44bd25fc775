//! The `unlearn` reproduction (spec `unlearning.md` §7): 7.1 full-class
//! forgetting and 7.2 corrective unlearning on the 8x8 digits and MNIST 5k,
//! 7.3 SGTM on the bilingual corpus.

pub mod common;
pub mod corrective;
pub mod forget_class;
pub mod sgtm;

use graft_nn::experiment::{ExperimentContext, Outcome, RunResult};

/// Runs 7.1 and 7.2 and joins their claims and plots.
pub fn run(ctx: &ExperimentContext) -> RunResult {
    // Small models: one intra-op thread beats two here (see docs/unlearning.md).
    let threads = graft_tensor::tch::get_num_threads();
    graft_tensor::tch::set_num_threads(1);
    let result = (|| {
        let mut outcome = Outcome::default();
        for part in [forget_class::run, corrective::run, sgtm::run] {
            let o = part(ctx)?;
            outcome.claims.extend(o.claims);
            outcome.plots.extend(o.plots);
        }
        Ok(outcome)
    })();
    graft_tensor::tch::set_num_threads(threads);
    result
}
