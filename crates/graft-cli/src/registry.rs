//! The registry of experiments `graft reproduce` can run.

use graft_nn::experiment::Run;

/// One registered experiment.
pub struct Experiment {
    /// The name used on the command line and as the output directory.
    pub name: &'static str,
    /// What it reproduces, in one line.
    pub about: &'static str,
    /// Runs it.
    pub run: Run,
}

/// Every experiment, in report order.
pub fn experiments() -> Vec<Experiment> {
    vec![
        Experiment {
            name: "baselines",
            about: "digits and MNIST-5k classifiers (MLP, CNN) that merging and unlearning start from",
            run: graft_nn::experiments::baselines::run,
        },
        #[cfg(feature = "merge")]
        Experiment {
            name: "merge",
            about: "placed digits: one base, four corner fine-tunes, merged by averaging, TA, TIES, PCB and DARE (merging spec §8)",
            run: graft_merge::experiments::placed_digits::run,
        },
        Experiment {
            name: "diffusion",
            about: "mean-reverting SDE samplers: MRS vs Euler-Maruyama, DPM-Solver, EDM Heun and DMCMC on exact GMM oracles, a learned 2-D model and 8x8 digit restoration (diffusion spec §7.5-7.6)",
            run: graft_diffusion::experiments::run,
        },
        Experiment {
            name: "peft",
            about: "adapters on a digits transfer task: head only, full fine-tuning, LoRA, DoRA, HUT (both readings) and FLoRA, MLP and conv (peft spec §6)",
            run: graft_peft::experiments::run,
        },
        Experiment {
            name: "unlearn",
            about: "unlearning: SSD against retraining, fine-tuning, NegGrad and random labels on full-class forgetting, and the corrective BadNets and interclass-confusion settings, on digits and MNIST 5k (unlearning spec §7)",
            run: graft_unlearn::experiments::run,
        },
        Experiment {
            name: "rev",
            about: "reversible networks: activation memory vs depth, reversible 3D U-Net at a fixed memory budget, reversible Heun (reversible spec §6)",
            run: graft_rev::experiments::run,
        },
    ]
}
