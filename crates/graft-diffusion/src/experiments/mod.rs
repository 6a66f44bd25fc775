//! The `diffusion` reproduction (spec §7.5): NFE sweeps with the exact GMM
//! oracle on R1, R2 and the reference table R3, quality-vs-NFE plots, the NFE
//! each sampler needs to reach a target, and the measured orders of the
//! third-order multistep variants.

pub mod problems;
mod sweep;

use graft_nn::experiment::{ExperimentContext, Outcome};

/// Runs the `diffusion` reproduction.
pub fn run(ctx: &ExperimentContext) -> crate::Result<Outcome> {
    std::fs::create_dir_all(&ctx.out_dir)
        .map_err(|e| crate::Error::Config(format!("{}: {e}", ctx.out_dir.display())))?;
    let mut out = Outcome::default();
    type Part = fn(&ExperimentContext, &mut Outcome) -> crate::Result<()>;
    let parts: [(&str, Part); 5] = [
        ("orders", sweep::orders),
        ("r1", sweep::r1),
        ("r2", sweep::r2),
        ("r3", sweep::r3),
        ("dlg", sweep::dlg),
    ];
    for (name, part) in parts {
        let start = std::time::Instant::now();
        part(ctx, &mut out)?;
        tracing::info!(
            part = name,
            seconds = start.elapsed().as_secs_f64(),
            "diffusion"
        );
    }
    Ok(out)
}
