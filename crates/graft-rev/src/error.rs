//! The one error type of graft-rev.

/// What can go wrong in graft-rev; variants name the bad value, shape or key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An invalid configuration.
    #[error("{0}")]
    Config(String),
    /// The size of the split dimension cannot be halved.
    #[error("cannot split dimension {dim} of size {size} into two equal halves (shape {shape:?})")]
    OddSplit {
        /// The split dimension as given.
        dim: i64,
        /// Its size.
        size: i64,
        /// The whole shape (empty when checked at construction).
        shape: Vec<i64>,
    },
    /// A sub-network inside a coupling changed the shape of its input.
    #[error("{function} of a coupling must give shape {expected:?} but gave {got:?}")]
    ShapeChanged {
        /// Which function (`F` or `G`).
        function: &'static str,
        /// The shape it had to produce.
        expected: Vec<i64>,
        /// The shape it produced.
        got: Vec<i64>,
    },
    /// A tensor whose shape does not fit (a gradient, a state).
    #[error("{what}: expected shape {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// What was checked.
        what: String,
        /// The expected shape.
        expected: Vec<i64>,
        /// The shape given.
        got: Vec<i64>,
    },
    /// A dtype the reconstruction does not support.
    #[error("{what}: dtype {kind:?} is not supported (reversible reconstruction needs f32 or f64)")]
    UnsupportedDtype {
        /// What was checked.
        what: String,
        /// The dtype given.
        kind: graft_tensor::tch::Kind,
    },
    /// The reconstructed activations drifted from the stored exact ones.
    #[error(
        "reconstruction error {error:e} at the input of layer {layer} exceeds the tolerance {tolerance:e}"
    )]
    Drift {
        /// The layer whose reconstructed input was compared.
        layer: usize,
        /// Max absolute difference between reconstruction and exact state.
        error: f64,
        /// The tolerance set by the user.
        tolerance: f64,
    },
    /// A tape recorded by another stack (its layers do not match this one's).
    #[error("the tape does not belong to this stack: {0}")]
    ForeignTape(String),
    /// `backward` was called before a gradient reached the tape's output.
    #[error("the tape's output has no gradient: call backward on a loss computed from it first")]
    NoOutputGradient,
    /// A memory probe or a graft-tensor helper failed.
    #[error(transparent)]
    Tensor(#[from] graft_tensor::Error),
    /// An error from graft-nn (plots, results).
    #[cfg(feature = "experiments")]
    #[error(transparent)]
    Nn(#[from] graft_nn::Error),
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] graft_tensor::tch::TchError),
    /// An error of the caller's own code (their `SubNet` and `Reversible` implementations), carried through
    /// graft unchanged; make one with [`Error::wrap`].
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// graft-rev's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a caller's own error (from their `SubNet` and `Reversible` implementations) as [`Error::Other`],
    /// so code graft calls back into can fail with its own error type.
    pub fn wrap(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Other(Box::new(err))
    }
}
