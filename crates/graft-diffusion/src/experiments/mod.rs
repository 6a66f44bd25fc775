//! The `diffusion` reproduction (spec §7.5): NFE sweeps with the exact GMM
//! oracle on R1, R2 and the reference table R3, quality-vs-NFE plots, the NFE
//! each sampler needs to reach a target, and the measured orders of the
//! third-order multistep variants; DMCMC on R2 as a VE problem; DMCMC with a
//! learned VE digits model and level classifier (L3, both sizes); at full
//! size, the learned models L1 (2-D) and L2 (digits restoration).

mod chains;
mod dmcmc_digits;
mod learned;
pub use crate::problems;
mod sweep;

use graft_nn::experiment::{ExperimentContext, Outcome};

/// Runs the `diffusion` reproduction.
pub fn run(ctx: &ExperimentContext) -> graft_nn::experiment::RunResult {
    std::fs::create_dir_all(&ctx.out_dir)
        .map_err(|e| crate::Error::Config(format!("{}: {e}", ctx.out_dir.display())))?;
    let mut out = Outcome::default();
    type Part = fn(&ExperimentContext, &mut Outcome) -> crate::Result<()>;
    let mut parts: Vec<(&str, Part)> = vec![
        ("orders", sweep::orders),
        ("r1", sweep::r1),
        ("r2", sweep::r2),
        ("r3", sweep::r3),
        ("dlg", sweep::dlg),
    ];
    // The learned models (spec §7.6) train for 15k steps each: full size only.
    if !ctx.quick() {
        parts.push(("l1", learned::l1));
        parts.push(("l2", learned::l2));
    }
    parts.push(("l3", dmcmc_digits::l3));
    // The tensors here are small: one libtorch thread avoids OpenMP barriers
    // (measured 2x faster on the 2-core machine); restored afterwards.
    let threads = graft_tensor::tch::get_num_threads();
    graft_tensor::tch::set_num_threads(1);
    let result = (|| {
        for (name, part) in parts {
            let start = std::time::Instant::now();
            part(ctx, &mut out)?;
            tracing::info!(
                part = name,
                seconds = start.elapsed().as_secs_f64(),
                "diffusion"
            );
        }
        Ok::<(), crate::Error>(())
    })();
    graft_tensor::tch::set_num_threads(threads);
    result?;
    Ok(out)
}
