//! Opening files a user names: only regular files, checked before any
//! blocking read, so a FIFO or a device given as a model or config path is
//! an error instead of a hang.

use crate::{Error, Result};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// What a file type is, in words, for errors.
fn kind_of(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading if it is a regular file (after following
/// symbolic links). The open does not block on a FIFO: it is opened
/// non-blocking, checked, and refused.
pub fn open_regular(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
        });
    }
    Ok(file)
}

/// Reads a regular file as UTF-8 text (a leading byte-order mark is
/// dropped), refusing files larger than `limit` bytes.
pub fn read_text(path: &Path, limit: u64) -> Result<String> {
    let file = open_regular(path)?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > limit {
        return Err(Error::Invalid(format!(
            "{}: {len} bytes is more than the {limit} bytes a configuration file may hold",
            path.display()
        )));
    }
    let mut text = String::with_capacity(len as usize);
    (&file)
        .take(limit + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(path, e))?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// The largest configuration file graft reads (YAML, JSON): 256 MiB.
pub const CONFIG_LIMIT: u64 = 256 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempdir();
        let fifo = dir.join("pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = open_regular(&fifo).unwrap_err().to_string();
        assert!(err.contains("FIFO"), "{err}");
        let err = read_text(&dir, 10).unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
        std::fs::write(dir.join("bom.yml"), "\u{feff}a: 1").unwrap();
        assert_eq!(read_text(&dir.join("bom.yml"), 100).unwrap(), "a: 1");
        let err = read_text(&dir.join("bom.yml"), 2).unwrap_err().to_string();
        assert!(err.contains("more than"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("graft-input-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
