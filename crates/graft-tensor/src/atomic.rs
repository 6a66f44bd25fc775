//! Atomic files and directories: write under a temporary name beside the
//! target, fsync, then rename, so a failed or interrupted write leaves no
//! partial file. Dropping an uncommitted [`AtomicFile`], [`SyncedFile`] or
//! [`StagingDir`] removes what it wrote.

use crate::{Error, Result};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary path beside `dest`: same directory, so the rename is atomic.
fn temp_beside(dest: &Path) -> Result<PathBuf> {
    let name = dest
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{} has no file name", dest.display())))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp_name = format!(
        ".graft-tmp-{}-{}-{n}",
        name.to_string_lossy(),
        std::process::id()
    );
    Ok(match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(tmp_name),
        _ => PathBuf::from(tmp_name),
    })
}

fn sync_parent(dest: &Path) {
    // Best effort: make the rename itself durable.
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
}

/// A file being written atomically; implements [`Write`].
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `dest`; nothing appears at `dest` until [`commit`](Self::commit).
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        let tmp = temp_beside(&dest)?;
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(Self {
            dest,
            tmp,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flushes and fsyncs the temporary file without renaming it yet.
    pub fn sync(mut self) -> Result<SyncedFile> {
        let out = self
            .out
            .take()
            .expect("AtomicFile writer is present until sync");
        let file = out
            .into_inner()
            .map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        Ok(SyncedFile {
            dest: std::mem::take(&mut self.dest),
            tmp: std::mem::take(&mut self.tmp),
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
        if self.out.take().is_some() {
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
    armed: bool,
}

impl StagingDir {
    /// Creates the temporary directory beside `dest`.
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let tmp = temp_beside(&dest)?;
        fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(Self {
            dest,
            tmp,
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

    /// Renames the directory into place, replacing an existing `dest` only
    /// after the new one is complete.
    pub fn commit(mut self) -> Result<()> {
        let old = if self.dest.exists() {
            let old = temp_beside(&self.dest)?;
            fs::rename(&self.dest, &old).map_err(|e| Error::io(&self.dest, e))?;
            Some(old)
        } else {
            None
        };
        if let Err(e) = fs::rename(&self.tmp, &self.dest) {
            if let Some(old) = &old {
                let _ = fs::rename(old, &self.dest);
            }
            return Err(Error::io(&self.dest, e));
        }
        self.armed = false;
        if let Some(old) = old {
            let _ = fs::remove_dir_all(old);
        }
        sync_parent(&self.dest);
        Ok(())
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
}
