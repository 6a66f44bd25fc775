//! Memory probes for the `rev` reproduction (spec §6): each configuration
//! runs in a fresh child process (the current binary re-entered with its own
//! arguments), with glibc's mmap threshold pinned and libtorch's threads fixed.

use crate::Result;
use graft_tensor::memory::{PROBE_ENV, PeakMemory, peak_rss_in_child};

/// glibc's mmap threshold pinned in the child (spec §6): without it glibc
/// raises the threshold after frees and the high-water mark overstates use.
pub const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Whether this process is a probe child (for any site).
pub fn in_child() -> bool {
    std::env::var_os(PROBE_ENV).is_some()
}

/// Measures `step(setup())` in a child process.
///
/// In the parent: starts the child and returns its peak above baseline. In
/// the child for `site`: pins the allocator, runs `setup` (model and inputs:
/// part of the baseline), then `step` under the probe, and exits. In a child
/// for another site: returns `None` at once without spawning, so earlier
/// probes of the same run are skipped cheaply on the way to the child's own.
pub fn probe<S>(
    site: &str,
    setup: impl FnOnce() -> Result<S>,
    step: impl FnOnce(S) -> Result<()>,
) -> Result<Option<PeakMemory>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    probe_with_args(site, &args, setup, step)
}

/// [`probe`] with explicit arguments that lead the re-executed binary back
/// here (for a test binary: `graft_tensor::memory::test_args`).
pub fn probe_with_args<S>(
    site: &str,
    args: &[String],
    setup: impl FnOnce() -> Result<S>,
    step: impl FnOnce(S) -> Result<()>,
) -> Result<Option<PeakMemory>> {
    match std::env::var(PROBE_ENV) {
        Ok(s) if s == site => {
            pin_allocator();
            graft_tensor::tch::set_num_threads(2);
            graft_tensor::tch::set_num_interop_threads(1);
            let state = setup()?;
            let r = peak_rss_in_child(site, args, || {
                step(state).map_err(|e| graft_tensor::Error::Probe {
                    site: site.into(),
                    reason: e.to_string(),
                })
            })?;
            Ok(Some(r))
        }
        Ok(_) => Ok(None),
        Err(_) => {
            tracing::debug!(site, "memory probe");
            Ok(Some(peak_rss_in_child(site, args, || Ok(()))?))
        }
    }
}

fn pin_allocator() {
    // SAFETY: mallopt only sets allocator tunables; called in the child
    // before any tensor is allocated by the probe.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Least-squares slope of `ys` against `xs`.
pub fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}
