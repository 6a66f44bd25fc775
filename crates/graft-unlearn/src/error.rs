//! The one error type of graft-unlearn.

use std::path::PathBuf;

/// What can go wrong in graft-unlearn; variants name the parameter, set,
/// option or file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An option out of range (names the option and the value).
    #[error("`{option}` = {value}: {reason}")]
    BadOption {
        /// The option.
        option: String,
        /// Its value, as given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A data set that cannot be used (empty, wrong shape, labels outside the head).
    #[error("data set `{set}`: {reason}")]
    BadData {
        /// The set (`forget`, `retain`, a file, ...).
        set: String,
        /// What is wrong.
        reason: String,
    },
    /// Importances that do not match the model's parameters.
    #[error("importances {origin}: parameter `{name}`: {reason}")]
    Importance {
        /// Where they came from (a file or `<memory>`).
        origin: String,
        /// The parameter.
        name: String,
        /// What is wrong (missing, shape).
        reason: String,
    },
    /// A model file or its metadata that cannot be used.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A model, data or training problem from graft-nn.
    #[error(transparent)]
    Nn(#[from] graft_nn::Error),
    /// A tensor file or device problem from graft-tensor.
    #[error(transparent)]
    Tensor(#[from] graft_tensor::Error),
    /// libtorch refused an operation.
    #[error("libtorch: {0}")]
    Torch(#[from] graft_tensor::tch::TchError),
    /// An error of the caller's own code (their models and data loaders),
    /// carried through unchanged; make one with [`Error::wrap`].
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// graft-unlearn's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps a caller's own error as [`Error::Other`].
    pub fn wrap(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Other(Box::new(err))
    }

    pub(crate) fn option(option: &str, value: impl std::fmt::Display, reason: &str) -> Self {
        Error::BadOption {
            option: option.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn data(set: &str, reason: impl Into<String>) -> Self {
        Error::BadData {
            set: set.into(),
            reason: reason.into(),
        }
    }
}
