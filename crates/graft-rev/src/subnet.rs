//! The functions a reversible block is built from (`F`, `G`) and what the
//! engine tells them about the call (training or not, first forward or a
//! recomputation).

use crate::Result;
use graft_tensor::tch::{Tensor, nn};

/// Whether a function runs in the forward pass or is re-run by the backward sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The first (and, for plain autograd, only) evaluation.
    Forward,
    /// A re-evaluation by the backward sweep (reconstruction or recomputation).
    /// Statistics such as BatchNorm running means must not be updated here.
    Recompute,
}

/// What the engine passes to every function call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallCtx {
    /// Training mode (dropout active, normalisation uses batch statistics).
    pub train: bool,
    /// First evaluation or recomputation.
    pub phase: Phase,
}

impl CallCtx {
    /// A training-mode call in the forward phase.
    pub fn train() -> Self {
        Self {
            train: true,
            phase: Phase::Forward,
        }
    }

    /// An evaluation-mode call in the forward phase.
    pub fn eval() -> Self {
        Self {
            train: false,
            phase: Phase::Forward,
        }
    }

    /// The same call, marked as a recomputation.
    pub fn recompute(self) -> Self {
        Self {
            phase: Phase::Recompute,
            ..self
        }
    }
}

/// A function of one tensor used inside a reversible block (`F`, `G`) or as a
/// plain layer of a stack. It must not modify its input in place.
pub trait SubNet {
    /// Applies the function.
    fn apply(&self, x: &Tensor, ctx: &CallCtx) -> Result<Tensor>;
}

impl<T> SubNet for T
where
    T: Fn(&Tensor, &CallCtx) -> Result<Tensor>,
{
    fn apply(&self, x: &Tensor, ctx: &CallCtx) -> Result<Tensor> {
        self(x, ctx)
    }
}

/// Wraps a `tch` module (`nn::ModuleT`, e.g. an `nn::SequentialT`) as a [`SubNet`];
/// the train flag is passed through.
pub struct ModuleFn<M>(pub M);

impl<M: nn::ModuleT> SubNet for ModuleFn<M> {
    fn apply(&self, x: &Tensor, ctx: &CallCtx) -> Result<Tensor> {
        Ok(self.0.forward_t(x, ctx.train))
    }
}

/// BatchNorm that updates its running statistics only in the forward phase.
///
/// A recomputation in training mode normalises with the batch statistics (as
/// the forward did) but leaves `running_mean`/`running_var` alone, so one
/// reversible or checkpointed step updates them exactly once, as plain
/// autograd does. `eps` must be the value the module was built with.
pub fn batch_norm_guarded(
    bn: &nn::BatchNorm,
    x: &Tensor,
    ctx: &CallCtx,
    eps: f64,
) -> Result<Tensor> {
    use nn::ModuleT;
    if ctx.train && ctx.phase == Phase::Recompute {
        Ok(x.f_batch_norm(
            bn.ws.as_ref(),
            bn.bs.as_ref(),
            None::<&Tensor>,
            None::<&Tensor>,
            true,
            0.0,
            eps,
            false,
        )?)
    } else {
        Ok(bn.forward_t(x, ctx.train))
    }
}
