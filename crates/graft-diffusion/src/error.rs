//! The one error type of graft-diffusion.

/// What can go wrong in graft-diffusion; variants name the bad value, shape or key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An invalid configuration.
    #[error("{0}")]
    Config(String),
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] graft_tensor::tch::TchError),
}

/// graft-diffusion's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
