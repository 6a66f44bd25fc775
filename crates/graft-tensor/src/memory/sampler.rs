//! Peaks of anonymous and file-backed resident memory, sampled.
//!
//! The kernel keeps one high-water mark (`VmHWM`) for the whole resident
//! set, which mixes anonymous memory (heap, stacks: what a program
//! allocates) with file-backed pages (mapped inputs, code), which the
//! kernel can drop at will. [`RssSampler`] reads `RssAnon` and `RssFile`
//! from `/proc/<pid>/status` every interval in a background thread and keeps
//! each one's maximum. A peak shorter than the interval can be missed: use
//! it for the split, and `VmHWM` for the exact total.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Maxima of a process's resident memory over the samples taken, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RssPeaks {
    /// Largest `RssAnon` seen.
    pub anon_bytes: u64,
    /// Largest `RssFile` seen.
    pub file_bytes: u64,
    /// Largest `RssAnon + RssFile + RssShmem` seen in one sample.
    pub total_bytes: u64,
    /// The kernel's high-water mark of the resident set (`VmHWM`) at the
    /// last sample: exact up to that moment, and, unlike `ru_maxrss` from
    /// `wait4`, blind to the image a child had before `exec` (a forked
    /// parent's pages).
    pub hwm_bytes: u64,
    /// Samples taken.
    pub samples: u64,
}

/// One reading of a process's `RssAnon`, `RssFile` and `RssShmem`, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RssNow {
    /// Anonymous resident memory.
    pub anon_bytes: u64,
    /// File-backed resident memory.
    pub file_bytes: u64,
    /// Shared-memory resident memory.
    pub shmem_bytes: u64,
    /// The high-water mark of the whole resident set (`VmHWM`).
    pub hwm_bytes: u64,
}

/// Reads `/proc/<pid>/status` (`None`: this process); `None` when the
/// process is gone or the system has no such file.
pub fn rss_now(pid: Option<u32>) -> Option<RssNow> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".into(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some(RssNow {
        anon_bytes: field("RssAnon:")?,
        file_bytes: field("RssFile:")?,
        shmem_bytes: field("RssShmem:").unwrap_or(0),
        hwm_bytes: field("VmHWM:").unwrap_or(0),
    })
}

/// Samples a process's resident memory in a background thread until
/// [`stop`](Self::stop); also stops by itself when the process is gone.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<RssPeaks>,
}

impl RssSampler {
    /// Starts sampling `pid` (`None`: this process) every `every`; the first
    /// sample is taken before this returns.
    pub fn start(pid: Option<u32>, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let mut peaks = RssPeaks::default();
        sample(pid, &mut peaks);
        let handle = std::thread::spawn(move || {
            while !flag.load(Ordering::Acquire) {
                if !sample(pid, &mut peaks) {
                    break;
                }
                std::thread::sleep(every);
            }
            peaks
        });
        Self { stop, handle }
    }

    /// Takes a last sample and returns the maxima.
    pub fn stop(self) -> RssPeaks {
        self.stop.store(true, Ordering::Release);
        self.handle.join().unwrap_or_default()
    }
}

/// Folds one reading into `peaks`; `false` when the process is gone.
fn sample(pid: Option<u32>, peaks: &mut RssPeaks) -> bool {
    let Some(now) = rss_now(pid) else {
        return false;
    };
    peaks.anon_bytes = peaks.anon_bytes.max(now.anon_bytes);
    peaks.file_bytes = peaks.file_bytes.max(now.file_bytes);
    peaks.total_bytes = peaks
        .total_bytes
        .max(now.anon_bytes + now.file_bytes + now.shmem_bytes);
    peaks.hwm_bytes = peaks.hwm_bytes.max(now.hwm_bytes);
    peaks.samples += 1;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_shows_as_anonymous_memory() {
        let before = rss_now(None).expect("Linux /proc");
        let sampler = RssSampler::start(None, Duration::from_millis(1));
        let mut v = vec![0u8; 64 << 20];
        // Touch every page so it is resident, and keep it a while.
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        std::thread::sleep(Duration::from_millis(30));
        std::hint::black_box(&v);
        let peaks = sampler.stop();
        drop(v);
        assert!(peaks.samples >= 2, "{peaks:?}");
        let grew = peaks.anon_bytes.saturating_sub(before.anon_bytes);
        assert!(grew >= 60 << 20, "anonymous peak grew {grew} bytes");
        assert!(peaks.total_bytes >= peaks.anon_bytes);
    }
}
