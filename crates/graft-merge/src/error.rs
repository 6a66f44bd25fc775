//! The one error type of graft-merge.

/// What can go wrong in a merge; variants name the tensor and the bad value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A density, drop rate, ratio or weight outside its range.
    #[error("tensor `{tensor}`: {what}")]
    BadParameter {
        /// The tensor (segment) being merged.
        tensor: String,
        /// What is out of range, with the value.
        what: String,
    },
    /// Deltas of different lengths for one tensor.
    #[error("tensor `{tensor}`: model `{model}` has {got} elements, `{first}` has {expected}")]
    LengthMismatch {
        /// The tensor.
        tensor: String,
        /// The first model.
        first: String,
        /// Its length.
        expected: usize,
        /// The mismatching model.
        model: String,
        /// Its length.
        got: usize,
    },
    /// A magnitude trim would keep nothing (`floor(density · n) = 0`).
    #[error(
        "tensor `{tensor}`: density {density} keeps floor({density} x {numel}) = 0 entries; raise the density"
    )]
    EmptyTrim {
        /// The tensor.
        tensor: String,
        /// The density asked for.
        density: f64,
        /// Elements in the tensor.
        numel: usize,
    },
    /// A non-finite value in an input delta or in the result.
    #[error("tensor `{tensor}`: non-finite value {value} at element {index} {place}")]
    NonFinite {
        /// The tensor.
        tensor: String,
        /// The value.
        value: f32,
        /// Its flat index.
        index: usize,
        /// `in model \`x\`` or `in the result`.
        place: String,
    },
    /// Two models share an identifier (their random streams would coincide).
    #[error("models must have distinct identifiers; `{0}` appears twice")]
    DuplicateModel(String),
    /// No models to merge.
    #[error("tensor `{0}`: no models to merge")]
    NoModels(String),
    /// A merge configuration (mergekit YAML) that graft cannot honour.
    #[error("{origin}: `{key}`: {reason}")]
    Config {
        /// The YAML file (or `<yaml>`).
        origin: String,
        /// The offending key, as a path (`models[1].parameters.weight`).
        key: String,
        /// What is wrong and, where it helps, what is supported.
        reason: String,
    },
    /// Checkpoints that do not fit together (missing, extra or mismatched tensors).
    #[error("tensor `{tensor}`: {reason}")]
    Mismatch {
        /// The tensor.
        tensor: String,
        /// What differs, naming the files.
        reason: String,
    },
    /// A run option outside its range (`threads`, shard size).
    #[error("option `{option}`: {reason}")]
    BadOption {
        /// The option.
        option: String,
        /// What is wrong and the accepted range.
        reason: String,
    },
    /// A tensor graft cannot merge (an integer or 8-bit float dtype) whose
    /// values differ between the models: copying the base's would drop the
    /// fine-tunes' values.
    #[error(
        "tensor `{tensor}` ({dtype}) differs between the base and {model}, and graft merges only f32, f16, bf16 and f64 tensors; allow copying the base's values with --copy-unmergeable (copy_unmergeable)"
    )]
    Unmergeable {
        /// The tensor.
        tensor: String,
        /// Its dtype.
        dtype: String,
        /// The first model whose values differ.
        model: String,
    },
    /// Reading or writing a checkpoint failed.
    #[error(transparent)]
    Tensor(#[from] graft_tensor::Error),
    /// An I/O operation on a file outside the checkpoints (config.json, the YAML).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// libtorch refused an operation (in-memory merges of `tch` tensors).
    #[cfg(feature = "tch")]
    #[error("libtorch: {0}")]
    Torch(#[from] graft_tensor::tch::TchError),
    /// An error of the caller's own code (their `Source` implementations and callbacks), carried through
    /// graft unchanged; make one with [`Error::wrap`].
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// graft-merge's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps a caller's own error (from their `Source` implementations and callbacks) as [`Error::Other`],
    /// so code graft calls back into can fail with its own error type.
    pub fn wrap(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Other(Box::new(err))
    }
}
