//! Atomic files and directories: write under a temporary name beside the
//! target, fsync, then rename, so a failed or interrupted write leaves no
//! partial file. Dropping an uncommitted [`AtomicFile`], [`SyncedFile`] or
//! [`StagingDir`] removes what it wrote, on every error path.
//!
//! Temporary entries are named `.graft-tmp-<target>-<pid>-<n>` and hold an
//! advisory lock (`flock`) while their writer lives. A process killed with
//! `SIGKILL` cannot remove its entries; the next [`AtomicFile`] or
//! [`StagingDir`] for the same target removes them ([`clean_stale`]) once
//! their owner is gone (its pid no longer exists and nobody holds the lock),
//! and logs what it removed.
//!
//! A directory replaces an existing one in one step: `renameat2` with
//! `RENAME_EXCHANGE` swaps the new and the old directory, so the target
//! path always names a complete output, old or new. Where the file system
//! cannot exchange, the old directory is first moved to
//! `.graft-old-<target>-<pid>-<n>`; a kill between the two renames leaves
//! the target absent, and the next run puts the old directory back.
//! Whether an existing directory may be replaced at all is
//! [`OutputRules`]'s decision.

use crate::output::{MARKER_FILE, OutputRules};
use crate::{Error, Result};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Prefix of graft's temporary entries.
pub const TMP_PREFIX: &str = ".graft-tmp-";
/// Prefix of an output moved aside while its replacement is renamed into place.
pub const OLD_PREFIX: &str = ".graft-old-";

fn entry_name(prefix: &str, dest: &Path) -> Result<(PathBuf, String)> {
    let name = dest
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{} has no file name", dest.display())))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let entry = format!(
        "{prefix}{}-{}-{n}",
        name.to_string_lossy(),
        std::process::id()
    );
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, entry))
}

/// A temporary path beside `dest`: same directory, so the rename is atomic.
fn temp_beside(dest: &Path) -> Result<PathBuf> {
    let (dir, name) = entry_name(TMP_PREFIX, dest)?;
    Ok(dir.join(name))
}

fn sync_parent(dest: &Path) {
    // Best effort: make the rename itself durable.
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(dir) = File::open(parent)
    {
        let _ = dir.sync_all();
    }
}

/// Takes an exclusive advisory lock on `file` without waiting; `false` when
/// another open file description holds it.
fn try_lock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a valid, owned descriptor.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Whether a process with this pid exists (in this pid namespace).
fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The target name and owner pid of a graft temporary entry name, if it is one.
fn parse_entry<'a>(prefix: &str, entry: &'a str) -> Option<(&'a str, u32)> {
    let rest = entry.strip_prefix(prefix)?;
    let mut parts = rest.rsplitn(3, '-');
    let n = parts.next()?;
    let pid = parts.next()?;
    let target = parts.next()?;
    n.parse::<u64>().ok()?;
    Some((target, pid.parse().ok()?))
}

/// Whether the entry at `path`, owned by `pid`, is abandoned: its owner is
/// gone and no live writer holds its lock.
fn abandoned(path: &Path, pid: u32) -> bool {
    if pid == std::process::id() || pid_alive(pid) {
        return false;
    }
    // A writer in another pid namespace (a container sharing the directory)
    // still holds the lock.
    match File::open(path) {
        Ok(f) => try_lock(&f),
        Err(_) => false,
    }
}

fn remove_entry(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// What [`clean_stale`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// Temporary entries removed (their owner was gone).
    pub removed: Vec<PathBuf>,
    /// Old outputs put back at their target (a replacement was killed
    /// between moving the old output aside and renaming the new one in).
    pub restored: Vec<PathBuf>,
}

/// Removes the temporary entries graft left beside `dest` (same directory,
/// graft's naming, for this target) whose owning process is gone, and puts
/// back an old output that an interrupted replacement moved aside. Each
/// action is logged (`tracing` warn) and returned. Entries of a live
/// process, or of another process holding their lock, are left alone;
/// failures to remove are logged, never fatal.
pub fn clean_stale(dest: &Path) -> Cleanup {
    let mut done = Cleanup::default();
    let Some(target) = dest.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return done;
    };
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = fs::read_dir(&dir) else {
        return done;
    };
    let mut olds = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if let Some((t, pid)) = parse_entry(TMP_PREFIX, &name)
            && t == target
            && abandoned(&path, pid)
        {
            match remove_entry(&path) {
                Ok(()) => {
                    tracing::warn!(
                        "removed {}, left by process {pid}, which is gone",
                        path.display()
                    );
                    done.removed.push(path);
                }
                Err(e) => tracing::warn!("cannot remove stale {}: {e}", path.display()),
            }
        } else if let Some((t, pid)) = parse_entry(OLD_PREFIX, &name)
            && t == target
            && abandoned(&path, pid)
        {
            olds.push(path);
        }
    }
    for old in olds {
        let present = fs::symlink_metadata(dest).is_ok();
        let result = if present {
            remove_entry(&old).map(|()| false)
        } else {
            fs::rename(&old, dest).map(|()| true)
        };
        match result {
            Ok(true) => {
                tracing::warn!(
                    "put back {} from {}: an earlier replacement of it was interrupted",
                    dest.display(),
                    old.display()
                );
                done.restored.push(dest.to_path_buf());
            }
            Ok(false) => {
                tracing::warn!(
                    "removed {}, the old output an interrupted replacement left",
                    old.display()
                );
                done.removed.push(old);
            }
            Err(e) => tracing::warn!("cannot clean {}: {e}", old.display()),
        }
    }
    done
}

/// A file being written atomically; implements [`Write`].
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    armed: bool,
}

impl AtomicFile {
    /// Starts writing `dest`; nothing appears at `dest` until [`commit`](Self::commit).
    /// Stale temporary entries of earlier, killed writers of `dest` are removed first.
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        clean_stale(&dest);
        let tmp = temp_beside(&dest)?;
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        // Held until the file is closed: marks the entry as live.
        try_lock(&file);
        Ok(Self {
            dest,
            tmp,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            armed: true,
        })
    }

    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The temporary path being written.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// The temporary file itself, for positional writes
    /// (`std::os::unix::fs::FileExt::write_all_at`) from several threads.
    /// [`flush`](Write::flush) first: bytes written through [`Write`] may
    /// still sit in the buffer. `None` once synced.
    pub fn file(&self) -> Option<&File> {
        self.out.as_ref().map(BufWriter::get_ref)
    }

    /// Flushes and fsyncs the temporary file without renaming it yet. On
    /// failure the temporary file is removed.
    pub fn sync(mut self) -> Result<SyncedFile> {
        let out = self.out.take().ok_or_else(|| Error::BadWrite {
            path: self.dest.clone(),
            reason: "already synced".into(),
        })?;
        // On an error below, `self` drops with `armed` set and removes the file.
        let file = out
            .into_inner()
            .map_err(|e| Error::io(&self.dest, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.dest, e))?;
        self.armed = false;
        Ok(SyncedFile {
            dest: std::mem::take(&mut self.dest),
            tmp: std::mem::take(&mut self.tmp),
            _file: Some(file),
            armed: true,
        })
    }

    /// Flushes, fsyncs and renames the file into place.
    pub fn commit(self) -> Result<()> {
        self.sync()?.commit()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.out.as_mut() {
            Some(out) => out.write(buf),
            None => Err(std::io::Error::other("AtomicFile already synced")),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.write_all(buf),
            None => Err(std::io::Error::other("AtomicFile already synced")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.armed {
            // Drop the buffered writer without flushing into a file about to go.
            if let Some(out) = self.out.take() {
                let (file, _) = out.into_parts();
                drop(file);
            }
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A fully written and fsynced temporary file, waiting to be renamed into place.
///
/// Sharded writers keep one per shard and commit them together at the end.
pub struct SyncedFile {
    dest: PathBuf,
    tmp: PathBuf,
    /// Kept open so its lock marks the entry as live until the rename.
    _file: Option<File>,
    armed: bool,
}

impl SyncedFile {
    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        self.armed = false;
        sync_parent(&self.dest);
        Ok(())
    }
}

impl Drop for SyncedFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `dest` atomically.
pub fn write_atomic(dest: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(dest)?;
    let tmp = file.tmp.clone();
    file.write_all(bytes).map_err(|e| Error::io(tmp, e))?;
    file.commit()
}

/// A directory built under a temporary name beside its target and renamed into place.
pub struct StagingDir {
    dest: PathBuf,
    tmp: PathBuf,
    /// The open directory, locked while the staging is live.
    _lock: Option<File>,
    written_by: String,
    armed: bool,
}

impl StagingDir {
    /// Checks `dest` against `rules` (an existing output, inputs inside it,
    /// a file in its place: see [`OutputRules`]), removes
    /// stale temporary entries of earlier killed runs, and creates the
    /// temporary directory beside `dest`. `written_by` names the command in
    /// the output's marker file.
    pub fn create(dest: impl AsRef<Path>, rules: &OutputRules, written_by: &str) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        clean_stale(&dest);
        rules.check(&dest)?;
        let tmp = temp_beside(&dest)?;
        fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let lock = File::open(&tmp).ok();
        if let Some(f) = &lock {
            try_lock(f);
        }
        Ok(Self {
            dest,
            tmp,
            _lock: lock,
            written_by: written_by.to_string(),
            armed: true,
        })
    }

    /// Where to write the directory's files now.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Writes the marker file, fsyncs the directory and renames it into
    /// place, replacing an existing `dest` in one step (see the module docs).
    pub fn commit(mut self) -> Result<()> {
        self.write_marker()?;
        if let Ok(dir) = File::open(&self.tmp) {
            let _ = dir.sync_all();
        }
        crash_at("commit-before-rename");
        if fs::symlink_metadata(&self.dest).is_ok() {
            self.replace()?;
        } else {
            fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        }
        self.armed = false;
        sync_parent(&self.dest);
        Ok(())
    }

    fn write_marker(&self) -> Result<()> {
        let mut files: Vec<String> = fs::read_dir(&self.tmp)
            .map_err(|e| Error::io(&self.tmp, e))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != MARKER_FILE)
            .collect();
        files.sort();
        let marker = serde_json::json!({
            "written_by": self.written_by,
            "graft_version": env!("CARGO_PKG_VERSION"),
            "files": files,
        });
        let text = serde_json::to_string_pretty(&marker).map_err(|e| Error::BadWrite {
            path: self.tmp.join(MARKER_FILE),
            reason: e.to_string(),
        })?;
        write_atomic(self.tmp.join(MARKER_FILE), text.as_bytes())
    }

    /// Replaces the existing `dest` by the staged directory.
    fn replace(&mut self) -> Result<()> {
        let exchanged = if fault("no-exchange") {
            Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
        } else {
            exchange(&self.tmp, &self.dest)
        };
        match exchanged {
            Ok(()) => {
                crash_at("commit-after-exchange");
                // `tmp` now names the old output; a kill here leaves it to
                // the next run's clean-up, the new output already in place.
                if let Err(e) = remove_entry(&self.tmp) {
                    tracing::warn!("cannot remove the old output {}: {e}", self.tmp.display());
                }
                Ok(())
            }
            Err(_) => {
                // Two renames; an interrupted pair is undone by `clean_stale`.
                let (dir, name) = entry_name(OLD_PREFIX, &self.dest)?;
                let old = dir.join(name);
                fs::rename(&self.dest, &old).map_err(|e| Error::io(&self.dest, e))?;
                crash_at("commit-between-renames");
                if let Err(e) = fs::rename(&self.tmp, &self.dest) {
                    let _ = fs::rename(&old, &self.dest);
                    return Err(Error::io(&self.dest, e));
                }
                if let Err(e) = remove_entry(&old) {
                    tracing::warn!("cannot remove the old output {}: {e}", old.display());
                }
                Ok(())
            }
        }
    }
}

/// Fault injection for graft's crash-consistency tests: when the
/// comma-separated `GRAFT_FAULT` names `point`, the process kills itself
/// there with `SIGKILL`, as an outside `kill -9` would. The points are
/// `commit-before-rename`, `commit-after-exchange` and
/// `commit-between-renames`; `no-exchange` makes a replacement take the
/// two-rename path. Unset (always, outside tests), it costs one lookup per commit.
fn fault(point: &str) -> bool {
    std::env::var("GRAFT_FAULT").is_ok_and(|v| v.split(',').any(|p| p.trim() == point))
}

fn crash_at(point: &str) {
    if fault(point) {
        // SAFETY: sends SIGKILL to this process.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Swaps two paths atomically (`renameat2(RENAME_EXCHANGE)`).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let ca = CString::new(a.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
        let cb = CString::new(b.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
        // SAFETY: two valid NUL-terminated paths relative to the working directory.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                ca.as_ptr(),
                libc::AT_FDCWD,
                cb.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_atomic_file_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("graft-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("x.bin");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert!(!dest.exists());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        write_atomic(&dest, b"whole").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"whole");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn entry_names_parse_back() {
        assert_eq!(
            parse_entry(TMP_PREFIX, ".graft-tmp-my-model-12-3"),
            Some(("my-model", 12))
        );
        assert_eq!(parse_entry(TMP_PREFIX, ".graft-tmp-x-y"), None);
        assert_eq!(parse_entry(TMP_PREFIX, "model"), None);
        assert_eq!(
            parse_entry(OLD_PREFIX, ".graft-old-out-7-0"),
            Some(("out", 7))
        );
    }
}
