//! The one error type of graft-tensor.

use std::path::PathBuf;

/// Everything that can go wrong in graft-tensor; variants name the file, tensor and shapes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file (bad length prefix, bad JSON, bad offsets).
    #[error("{path}: not a valid safetensors file: {reason}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file is shorter (or longer) than its header says.
    #[error(
        "{path}: truncated or corrupt: the header describes {expected} bytes, the file holds {actual}"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header implies (length prefix + header + data).
        expected: u64,
        /// Bytes in the file.
        actual: u64,
    },
    /// A tensor was asked for that the file or checkpoint does not hold.
    #[error("tensor `{name}` not found in {path}")]
    MissingTensor {
        /// The tensor name.
        name: String,
        /// The file or checkpoint.
        path: PathBuf,
    },
    /// A tensor has another shape than expected.
    #[error("tensor `{name}` in {path}: expected shape {expected:?}, found {actual:?}")]
    ShapeMismatch {
        /// The tensor name.
        name: String,
        /// The file (or `<memory>`).
        path: PathBuf,
        /// The expected shape.
        expected: Vec<usize>,
        /// The shape found.
        actual: Vec<usize>,
    },
    /// A tensor has another dtype than expected.
    #[error("tensor `{name}` in {path}: expected dtype {expected}, found {actual}")]
    DtypeMismatch {
        /// The tensor name.
        name: String,
        /// The file (or `<memory>`).
        path: PathBuf,
        /// The expected dtype.
        expected: String,
        /// The dtype found.
        actual: String,
    },
    /// A dtype that libtorch (or safetensors) cannot represent.
    #[error("tensor `{name}`: dtype {dtype} has no counterpart in {target}")]
    UnsupportedDtype {
        /// The tensor name.
        name: String,
        /// The dtype.
        dtype: String,
        /// `libtorch` or `safetensors`.
        target: &'static str,
    },
    /// A sharded checkpoint's index file is unusable.
    #[error("{path}: bad shard index: {reason}")]
    BadIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A writer was used against its plan (wrong order, unknown or duplicate name, unfinished).
    #[error("writing {path}: {reason}")]
    BadWrite {
        /// The file or directory being written.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An output path where writing would lose something: an existing
    /// directory with files, an input, a file in its place.
    #[error("will not write {path}: {reason}")]
    UnsafeOutput {
        /// The output path.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// An input path that is not a regular file (a FIFO, a device, a socket, a directory).
    #[error("{path} is {kind}, not a regular file; give a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is (`a FIFO`, `a directory`, …).
        kind: &'static str,
    },
    /// A value from the user or the environment is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// A memory probe's child process failed or reported nothing.
    #[error("memory probe `{site}`: {reason}")]
    Probe {
        /// The probe's site name.
        site: String,
        /// What went wrong.
        reason: String,
    },
    /// libtorch refused an operation.
    #[cfg(feature = "tch")]
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// An error of the caller's own code (their closures and callbacks), carried through
    /// graft unchanged; make one with [`Error::wrap`].
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// graft-tensor's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps a caller's own error (from their closures and callbacks) as [`Error::Other`],
    /// so code graft calls back into can fail with its own error type.
    pub fn wrap(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Other(Box::new(err))
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
