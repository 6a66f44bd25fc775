//! The `rev` reproduction (spec `reversible.md` §1, §2, §4, §6).
//!
//! Every memory measurement runs in a fresh child process that re-enters
//! the current binary with its own arguments (spec §6), so all probes come
//! first; a child skips the probes before its own and exits inside it.
//! Then the claims, plots and the (in-process) training runs.

pub mod depth;
pub mod ode;
pub mod probe;
pub mod unet;

use graft_nn::experiment::{ExperimentContext, Outcome};

/// Runs the `rev` reproduction.
pub fn run(ctx: &ExperimentContext) -> graft_nn::experiment::RunResult {
    let sweep = depth::DepthSweep::for_ctx(ctx);
    let depth_peaks = depth::measure(ctx, &sweep)?;
    let heun_peaks = ode::measure(ctx)?;
    let unet_sweep = unet::UNetSweep::for_ctx(ctx);
    let unet_peaks = unet::measure(ctx, &unet_sweep)?;
    if probe::in_child() {
        return Err(graft_nn::experiment::ExperimentError::msg(
            "memory probe child did not reach its site",
        ));
    }
    let mut outcome = Outcome::default();
    depth::report(
        ctx,
        &sweep,
        &depth_peaks,
        &mut outcome.claims,
        &mut outcome.plots,
    )?;
    ode::report(ctx, &heun_peaks, &mut outcome.claims, &mut outcome.plots)?;
    unet::report_memory(
        ctx,
        &unet_sweep,
        &unet_peaks,
        &mut outcome.claims,
        &mut outcome.plots,
    )?;
    unet::report_parity(ctx, &mut outcome.claims)?;
    Ok(outcome)
}
