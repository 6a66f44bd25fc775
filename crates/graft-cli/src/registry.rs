//! The registry of experiments `graft reproduce` can run.

use anyhow::Result;
use graft_nn::experiment::{ExperimentContext, Outcome};

/// One registered experiment.
pub struct Experiment {
    /// The name used on the command line and as the output directory.
    pub name: &'static str,
    /// What it reproduces, in one line.
    pub about: &'static str,
    /// Runs it.
    pub run: fn(&ExperimentContext) -> Result<Outcome>,
}

/// Every experiment, in report order.
pub fn experiments() -> Vec<Experiment> {
    vec![
        Experiment {
            name: "baselines",
            about: "digits and MNIST-5k classifiers (MLP, CNN) that merging and unlearning start from",
            run: |ctx| Ok(graft_nn::experiments::baselines::run(ctx)?),
        },
        #[cfg(feature = "merge")]
        Experiment {
            name: "merge",
            about: "placed digits: one base, four corner fine-tunes, merged by averaging, TA, TIES, PCB and DARE (merging spec §8)",
            run: |ctx| {
                graft_merge::experiments::placed_digits::run(ctx).map_err(|e| anyhow::anyhow!(e))
            },
        },
        Experiment {
            name: "diffusion",
            about: "mean-reverting SDE samplers: MRS vs Euler-Maruyama, DPM-Solver, EDM Heun and DMCMC on exact GMM oracles, a learned 2-D model and 8x8 digit restoration (diffusion spec §7.5-7.6)",
            run: |ctx| Ok(graft_diffusion::experiments::run(ctx)?),
        },
        Experiment {
            name: "rev",
            about: "reversible networks: activation memory vs depth, reversible 3D U-Net at a fixed memory budget, reversible Heun (reversible spec §6)",
            run: |ctx| Ok(graft_rev::experiments::run(ctx)?),
        },
    ]
}
