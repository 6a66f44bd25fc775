//! The one error type of graft-nn.

use std::path::PathBuf;

/// Everything that can go wrong in graft-nn.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor file, asset or device problem from graft-tensor.
    #[error(transparent)]
    Tensor(#[from] graft_tensor::Error),
    /// libtorch refused an operation.
    #[error("libtorch: {0}")]
    Torch(#[from] graft_tensor::tch::TchError),
    /// A data file could not be parsed.
    #[error("{path}: {reason}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line where it helps.
        reason: String,
    },
    /// An I/O operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An argument is out of range or inconsistent.
    #[error("{0}")]
    Invalid(String),
    /// Plotting failed.
    #[error("plot {path}: {reason}")]
    Plot {
        /// The SVG being drawn.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An error of the caller's own code (their models and data loaders), carried through
    /// graft unchanged; make one with [`Error::wrap`].
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// graft-nn's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps a caller's own error (from their models and data loaders) as [`Error::Other`],
    /// so code graft calls back into can fail with its own error type.
    pub fn wrap(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Other(Box::new(err))
    }
}
