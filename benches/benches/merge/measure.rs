//! Running one command and measuring it: wall time, the kernel's peak
//! resident set (`VmHWM`), sampled peaks of anonymous and file-backed
//! memory (`/proc/<pid>/status`), bytes read through `read()`; and evicting
//! the inputs from the page cache for a cold run.

use graft_tensor::memory::RssSampler;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What one run of a command took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    pub wall_s: f64,
    /// The kernel's high-water mark of the resident set, anonymous and
    /// file-backed together (`VmHWM` at the last sample; `ru_maxrss` would
    /// include this bench's own pages, which a child has until `exec`).
    pub max_rss_mib: f64,
    /// The largest `RssAnon` sampled every 5 ms.
    pub anon_mib: f64,
    /// The largest `RssFile` sampled every 5 ms (mapped inputs, code).
    pub file_mib: f64,
    pub read_bytes: u64,
    pub ok: bool,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// Runs `cmd` to completion and measures it.
pub fn measure(mut cmd: Command) -> Run {
    let started = Instant::now();
    let Ok(child) = cmd.spawn() else {
        return Run::default();
    };
    let pid = child.id();
    let sampler = RssSampler::start(Some(pid), Duration::from_millis(5));
    let io_path = format!("/proc/{pid}/io");
    let mut read_bytes = 0u64;
    let mut status = 0i32;
    // SAFETY: a plain struct of integers, filled in by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        if let Some(v) = std::fs::read_to_string(&io_path).ok().and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("rchar: "))
                .and_then(|v| v.trim().parse().ok())
        }) {
            read_bytes = v;
        }
        // SAFETY: plain wait4 on our own child, non-blocking.
        let r = unsafe { libc::wait4(pid as i32, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid as i32 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall_s = started.elapsed().as_secs_f64();
    let peaks = sampler.stop();
    Run {
        wall_s,
        max_rss_mib: mib(peaks.hwm_bytes),
        anon_mib: mib(peaks.anon_bytes),
        file_mib: mib(peaks.file_bytes),
        read_bytes,
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}

/// Several runs of one configuration: medians and ranges.
pub struct Summary {
    pub runs: Vec<Run>,
}

impl Summary {
    pub fn ok(&self) -> bool {
        !self.runs.is_empty() && self.runs.iter().all(|r| r.ok)
    }

    fn stat(&self, f: impl Fn(&Run) -> f64) -> (f64, f64, f64) {
        let mut v: Vec<f64> = self.runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        (median, v[0], v[n - 1])
    }

    /// Median, least and most wall time.
    pub fn wall(&self) -> (f64, f64, f64) {
        self.stat(|r| r.wall_s)
    }

    /// The largest of each memory figure over the runs: (ru_maxrss, anon, file).
    pub fn memory(&self) -> (f64, f64, f64) {
        (
            self.stat(|r| r.max_rss_mib).2,
            self.stat(|r| r.anon_mib).2,
            self.stat(|r| r.file_mib).2,
        )
    }
}

/// Runs the command `make()` builds `times` times, calling `before` ahead
/// of each run (to remove the previous output).
pub fn repeat(times: usize, mut before: impl FnMut(), make: impl Fn() -> Command) -> Summary {
    let runs = (0..times)
        .map(|_| {
            before();
            measure(make())
        })
        .collect();
    Summary { runs }
}

/// Evicts `files` from the page cache: `drop_caches` where the bench may
/// write it, else `posix_fadvise(DONTNEED)` per file (clean pages only,
/// which inputs written long before are). Returns how, and the share of
/// the files' pages still resident afterwards (`mincore`).
pub fn evict(files: &[PathBuf]) -> (String, f64) {
    // SAFETY: sync() has no arguments and cannot fail.
    unsafe { libc::sync() };
    let how = if std::fs::write("/proc/sys/vm/drop_caches", "1").is_ok() {
        "drop_caches".to_string()
    } else {
        for f in files {
            if let Ok(file) = std::fs::File::open(f) {
                use std::os::fd::AsRawFd;
                // SAFETY: an open file descriptor; advice only.
                unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            }
        }
        "posix_fadvise(DONTNEED) per input file (drop_caches is not writable here)".to_string()
    };
    (how, resident_share(files))
}

/// The share of `files`' pages in the page cache (`mincore` on a map).
pub fn resident_share(files: &[PathBuf]) -> f64 {
    let (mut resident, mut total) = (0u64, 0u64);
    for f in files {
        let Some((r, t)) = resident_pages(f) else {
            continue;
        };
        resident += r;
        total += t;
    }
    if total == 0 {
        0.0
    } else {
        resident as f64 / total as f64
    }
}

fn resident_pages(path: &Path) -> Option<(u64, u64)> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len() as usize;
    if len == 0 {
        return Some((0, 0));
    }
    // SAFETY: a private read-only map of an open file, unmapped below; only
    // its residency is queried, never its bytes.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        );
        if addr == libc::MAP_FAILED {
            return None;
        }
        let pages = len.div_ceil(4096);
        let mut vec = vec![0u8; pages];
        let ok = libc::mincore(addr, len, vec.as_mut_ptr()) == 0;
        libc::munmap(addr, len);
        ok.then(|| {
            (
                vec.iter().filter(|&&b| b & 1 == 1).count() as u64,
                pages as u64,
            )
        })
    }
}
