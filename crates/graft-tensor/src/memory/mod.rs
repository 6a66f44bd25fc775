//! Memory probes.
//!
//! **Peak resident memory of a closure, in a child process**
//! ([`peak_rss_in_child`]). The current executable is started again with
//! `GRAFT_MEMPROBE=<site>` and arguments that lead it back to the same call
//! site (for a test binary: [`test_args`]); there the closure runs in a fresh
//! process. Just before it runs, the child records its resident set
//! (`baseline`: the executable, libtorch's ~450 MB of mapped code pages that
//! were touched, allocator arenas) and resets the kernel's high-water mark
//! (`/proc/self/clear_refs`); after it, it reads the high-water mark `VmHWM`
//! (`peak`). `peak - baseline` is what the closure itself added at its
//! worst moment: activations, gradients, optimizer state, allocator slack.
//! Noise: pages are counted at 4 KiB granularity; glibc and libtorch keep
//! freed memory cached, so a second identical step in the same child adds
//! little; thread stacks and per-thread scratch of libtorch's OpenMP pool
//! add a few MB that grow with the thread count. Compare configurations
//! measured the same way, and expect differences under ~5 MB to be noise.
//! The child also samples `RssAnon` and `RssFile` every millisecond
//! ([`RssSampler`]), so that a report can tell memory the program allocated
//! from mapped file pages the kernel may drop.
//! Runs on Linux only (it reads `/proc`).
//!
//! **Bytes held by tensors** ([`tensor_bytes`]): the bytes of storage the
//! given tensors span, counting memory shared between views once. It is exact
//! for what the tensors reference and blind to everything else (allocator
//! caches, autograd's saved tensors, libtorch workspaces).

mod sampler;

pub use sampler::{RssNow, RssPeaks, RssSampler, rss_now};

use crate::{Error, Result};
#[cfg(feature = "tch")]
use std::collections::BTreeMap;
use std::process::Command;
#[cfg(feature = "tch")]
use tch::Tensor;

/// The environment variable that tells a re-executed process which probe site to run.
pub const PROBE_ENV: &str = "GRAFT_MEMPROBE";
const RESULT_MARKER: &str = "GRAFT_MEMPROBE_RESULT";

/// What a probe measured, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeakMemory {
    /// Resident set of the child just before the closure ran.
    pub baseline_bytes: u64,
    /// High-water mark of the resident set while the closure ran.
    pub peak_bytes: u64,
    /// Anonymous resident memory (`RssAnon`) just before the closure ran.
    #[serde(default)]
    pub anon_baseline_bytes: u64,
    /// The largest `RssAnon` sampled (every millisecond) while it ran: the
    /// memory the program allocated, without mapped file pages.
    #[serde(default)]
    pub anon_peak_bytes: u64,
    /// File-backed resident memory (`RssFile`) just before the closure ran.
    #[serde(default)]
    pub file_baseline_bytes: u64,
    /// The largest `RssFile` sampled while it ran (mapped inputs, code).
    #[serde(default)]
    pub file_peak_bytes: u64,
}

impl PeakMemory {
    /// What the closure added at its peak: `peak - baseline`.
    pub fn delta_bytes(&self) -> u64 {
        self.peak_bytes.saturating_sub(self.baseline_bytes)
    }

    /// Anonymous memory the closure added at its sampled peak.
    pub fn anon_delta_bytes(&self) -> u64 {
        self.anon_peak_bytes
            .saturating_sub(self.anon_baseline_bytes)
    }

    /// File-backed memory the closure added at its sampled peak.
    pub fn file_delta_bytes(&self) -> u64 {
        self.file_peak_bytes
            .saturating_sub(self.file_baseline_bytes)
    }
}

/// Arguments that make a Rust test binary run only the test `name`
/// (its full path within the binary, e.g. `probes::step_memory`).
pub fn test_args(name: &str) -> Vec<String> {
    vec![
        name.to_string(),
        "--exact".into(),
        "--nocapture".into(),
        "--test-threads=1".into(),
    ]
}

/// Runs `f` in a child process and returns its peak resident memory.
///
/// In the parent: starts the current executable with `reenter_args` and
/// `GRAFT_MEMPROBE=site`, and reads the child's report. In the child (when
/// `GRAFT_MEMPROBE` equals `site`): runs `f`, prints the report and exits the
/// process, so this call never returns there. `reenter_args` must lead the
/// executable back to this call with the same `site`.
pub fn peak_rss_in_child<F>(site: &str, reenter_args: &[String], f: F) -> Result<PeakMemory>
where
    F: FnOnce() -> Result<()>,
{
    if std::env::var(PROBE_ENV).is_ok_and(|v| v == site) {
        run_as_child(f);
    }
    let exe = std::env::current_exe().map_err(|e| Error::Probe {
        site: site.into(),
        reason: format!("cannot find the current executable: {e}"),
    })?;
    let out = Command::new(&exe)
        .args(reenter_args)
        .env(PROBE_ENV, site)
        .output()
        .map_err(|e| Error::Probe {
            site: site.into(),
            reason: format!("cannot start {}: {e}", exe.display()),
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = stdout
        .lines()
        .find_map(|l| l.find(RESULT_MARKER).map(|i| &l[i + RESULT_MARKER.len()..]))
        .and_then(|json| serde_json::from_str::<PeakMemory>(json.trim()).ok());
    match report {
        Some(r) if out.status.success() => Ok(r),
        _ => Err(Error::Probe {
            site: site.into(),
            reason: format!(
                "child {} exited with {} and no report; stderr: {}",
                exe.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }),
    }
}

fn run_as_child<F: FnOnce() -> Result<()>>(f: F) -> ! {
    // The sampler's thread starts before the baseline, so it is part of it.
    let sampler = RssSampler::start(None, std::time::Duration::from_millis(1));
    let split = rss_now(None).unwrap_or_default();
    let baseline = current_rss_bytes().unwrap_or(0);
    // Writing 5 resets VmHWM to the current RSS (Linux >= 4.0). Without it
    // the peak would include the child's start-up and be overstated: refuse
    // to measure rather than report that.
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!(
            "memory probe: cannot reset the peak resident set (writing /proc/self/clear_refs: {e}); \
             the peak would include the child's start-up, so nothing is measured"
        );
        std::process::exit(4);
    }
    match f() {
        Ok(()) => {
            let peak = peak_rss_bytes().unwrap_or(0).max(baseline);
            let sampled = sampler.stop();
            let report = PeakMemory {
                baseline_bytes: baseline,
                peak_bytes: peak,
                anon_baseline_bytes: split.anon_bytes,
                anon_peak_bytes: sampled.anon_bytes.max(split.anon_bytes),
                file_baseline_bytes: split.file_bytes,
                file_peak_bytes: sampled.file_bytes.max(split.file_bytes),
            };
            let json = serde_json::to_string(&report).unwrap_or_default();
            println!("\n{RESULT_MARKER} {json}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("memory probe closure failed: {e}");
            std::process::exit(3);
        }
    }
}

fn status_field_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// This process's resident set now (`VmRSS`), in bytes; `None` off Linux.
pub fn current_rss_bytes() -> Option<u64> {
    status_field_kib("VmRSS:").map(|k| k * 1024)
}

/// Resets this process's peak resident set (`VmHWM`) to its current size,
/// so that [`peak_rss_bytes`] measures from now on; `false` where the
/// kernel does not allow it (Linux ≥ 4.0 writes `5` to `/proc/self/clear_refs`).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// This process's peak resident set so far (`VmHWM`), in bytes; `None` off Linux.
pub fn peak_rss_bytes() -> Option<u64> {
    status_field_kib("VmHWM:").map(|k| k * 1024)
}

/// Bytes of storage spanned by `tensors`, with memory shared between views
/// counted once (per device, as the union of each tensor's byte range).
#[cfg(feature = "tch")]
pub fn tensor_bytes<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> u64 {
    let mut ranges: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
    for t in tensors {
        let numel = t.numel();
        if numel == 0 || !t.defined() {
            continue;
        }
        let elt = t.kind().elt_size_in_bytes();
        let span_elems: i64 = 1 + t
            .size()
            .iter()
            .zip(t.stride())
            .map(|(&d, s)| (d - 1) * s.abs())
            .sum::<i64>();
        let start = t.data_ptr() as usize;
        ranges
            .entry(format!("{:?}", t.device()))
            .or_default()
            .push((start, start + span_elems as usize * elt));
    }
    let mut total = 0u64;
    for (_, mut rs) in ranges {
        rs.sort_unstable();
        let (mut cur_start, mut cur_end) = rs[0];
        for &(s, e) in &rs[1..] {
            if s <= cur_end {
                cur_end = cur_end.max(e);
            } else {
                total += (cur_end - cur_start) as u64;
                (cur_start, cur_end) = (s, e);
            }
        }
        total += (cur_end - cur_start) as u64;
    }
    total
}
