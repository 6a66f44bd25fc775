//! The one error type of graft-diffusion.

/// What can go wrong in graft-diffusion; variants name the bad value, shape or key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An invalid configuration.
    #[error("{0}")]
    Config(String),
    /// A model was asked for a prediction where σ_t = 0 (λ = ∞).
    #[error("evaluation at sigma = 0 (t = {t}): stop at t_end > 0 or use denoise_last")]
    SigmaZero {
        /// The time asked for.
        t: f64,
    },
    /// A stochastic MRS solver of an order above 2 was asked for.
    #[error("SDE order {order} is not supported (at most 2)")]
    SdeOrder {
        /// The order asked for.
        order: usize,
    },
    /// A solver order outside what the sampler offers.
    #[error("order {order} is not supported by {sampler} ({min}..={max})")]
    Order {
        /// The sampler.
        sampler: &'static str,
        /// The order asked for.
        order: usize,
        /// The lowest order offered.
        min: usize,
        /// The highest order offered.
        max: usize,
    },
    /// Fewer steps than the warm-up of the requested order needs.
    #[error("NFE {nfe} is below the warm-up of order {order} (needs at least {order} steps)")]
    NfeBelowWarmup {
        /// The number of function evaluations asked for.
        nfe: usize,
        /// The solver order.
        order: usize,
    },
    /// A time grid that is not strictly decreasing (or too short).
    #[error("time grid not strictly decreasing at index {index}: {grid:?}")]
    NotMonotone {
        /// The first offending index.
        index: usize,
        /// The grid.
        grid: Vec<f64>,
    },
    /// A half log-SNR outside the process's range.
    #[error("lambda {lambda} is outside the schedule's range [{lo}, {hi}]")]
    LambdaOutOfRange {
        /// The λ asked for.
        lambda: f64,
        /// The smallest λ of the schedule (at t_max).
        lo: f64,
        /// The largest λ of the schedule (at t_min).
        hi: f64,
    },
    /// A time outside the process's range.
    #[error("time {t} is outside the process's range [{lo}, {hi}]")]
    TimeOutOfRange {
        /// The time asked for.
        t: f64,
        /// Smallest valid time.
        lo: f64,
        /// Largest valid time.
        hi: f64,
    },
    /// Two tensors whose shapes must agree do not.
    #[error("shape mismatch in {what}: expected {expected:?}, got {actual:?}")]
    ShapeMismatch {
        /// What was compared.
        what: &'static str,
        /// The expected shape.
        expected: Vec<i64>,
        /// The shape found.
        actual: Vec<i64>,
    },
    /// A user-supplied noise source ran out of tensors.
    #[error("user noise exhausted after {used} tensors")]
    NoiseExhausted {
        /// How many tensors were consumed.
        used: usize,
    },
    /// An invalid numeric parameter.
    #[error("invalid {name} = {value}: {reason}")]
    Invalid {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: f64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An error from graft-nn (experiments, plots).
    #[error(transparent)]
    Nn(#[from] graft_nn::Error),
    /// An error from graft-tensor (files).
    #[error(transparent)]
    Tensor(#[from] graft_tensor::Error),
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] graft_tensor::tch::TchError),
    /// An error of the caller's own code (their `Model`, `Process` or `NoiseSource` implementations), carried through
    /// graft unchanged; make one with [`Error::wrap`].
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// graft-diffusion's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a caller's own error (from their `Model`, `Process` or `NoiseSource` implementations) as [`Error::Other`],
    /// so code graft calls back into can fail with its own error type.
    pub fn wrap(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Other(Box::new(err))
    }
}
