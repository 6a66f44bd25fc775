//! The one error type of graft-peft.

use std::path::PathBuf;

/// What can go wrong in graft-peft; variants name the layer, adapter, key,
/// shape or file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `merge` of an adapter that is already merged into the layer.
    #[error("adapter `{adapter}` is already merged into `{layer}`")]
    AlreadyMerged {
        /// The layer's path.
        layer: String,
        /// The adapter.
        adapter: String,
    },
    /// `unmerge` with nothing merged.
    #[error("nothing is merged into `{layer}`")]
    NotMerged {
        /// The layer's path.
        layer: String,
    },
    /// An adapter name that is not loaded.
    #[error("no adapter `{name}` (loaded: {})", known.join(", "))]
    UnknownAdapter {
        /// The name asked for.
        name: String,
        /// The adapters loaded.
        known: Vec<String>,
    },
    /// An adapter name that cannot be used.
    #[error("adapter name `{name}`: {reason}")]
    BadAdapterName {
        /// The name.
        name: String,
        /// Why not.
        reason: String,
    },
    /// `target_modules` matched no layer.
    #[error("target_modules {targets} matched no adaptable layer (layers: {})", layers.join(", "))]
    NoTarget {
        /// The targets as configured.
        targets: String,
        /// The layers that exist.
        layers: Vec<String>,
    },
    /// An operation this layer kind or configuration cannot do.
    #[error("`{layer}`: {what}")]
    Unsupported {
        /// The layer's path.
        layer: String,
        /// What cannot be done, and why.
        what: String,
    },
    /// An adapter configuration graft-peft cannot honour.
    #[error("{origin}: `{key}`: {reason}")]
    Config {
        /// The file (or `<config>`).
        origin: String,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor whose shape does not fit.
    #[error("{what}: expected shape {expected:?}, got {got:?}")]
    Shape {
        /// What was checked (names the key or layer).
        what: String,
        /// The expected shape.
        expected: Vec<i64>,
        /// The shape found.
        got: Vec<i64>,
    },
    /// An input a layer cannot take (libtorch's reason).
    #[error("{what}: {reason}")]
    BadInput {
        /// The input and the layer.
        what: String,
        /// Why not.
        reason: String,
    },
    /// Adapter tensors the model needs but the file lacks, or that the file
    /// holds but no layer takes.
    #[error("{file}: {problem}: {}", keys.join(", "))]
    Keys {
        /// The adapter file.
        file: PathBuf,
        /// `missing` or `unexpected`.
        problem: &'static str,
        /// The keys.
        keys: Vec<String>,
    },
    /// `safe_merge` found a non-finite merged weight.
    #[error(
        "merging adapter `{adapter}` into `{layer}` gives non-finite weights; nothing was merged"
    )]
    NonFinite {
        /// The layer's path.
        layer: String,
        /// The adapter.
        adapter: String,
    },
    /// A file that cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A graft-tensor failure (safetensors, atomic output).
    #[error(transparent)]
    Tensor(#[from] graft_tensor::Error),
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] graft_tensor::tch::TchError),
    /// An error of the caller's own code, carried through graft unchanged;
    /// make one with [`Error::wrap`].
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// graft-peft's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a caller's own error as [`Error::Other`].
    pub fn wrap(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Other(Box::new(err))
    }

    pub(crate) fn config(origin: &str, key: &str, reason: impl Into<String>) -> Self {
        Error::Config {
            origin: origin.into(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}
