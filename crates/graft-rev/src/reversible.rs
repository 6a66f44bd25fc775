//! The [`Reversible`] trait: a block whose input can be recomputed from its output.

use crate::subnet::CallCtx;
use crate::{Error, Result};
use graft_tensor::tch::{self, Kind, Tensor};

/// One call of a block: the engine's context plus the block's RNG seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockCall {
    /// Training flag and phase.
    pub ctx: CallCtx,
    /// The seed drawn for this block in this forward pass; stochastic blocks
    /// seed libtorch's generator with it so the recomputation replays the
    /// same dropout masks.
    pub seed: u64,
}

/// An invertible, shape-preserving block.
///
/// `forward` and `inverse` run without gradient tracking when the engine
/// calls them in the reversible strategy; `backward` reconstructs the input
/// and computes the vector-Jacobian product, accumulating parameter gradients
/// into their `.grad` as ordinary autograd does.
pub trait Reversible {
    /// `y = block(x)`.
    fn forward(&self, x: &Tensor, call: &BlockCall) -> Result<Tensor>;

    /// `x = block⁻¹(y)`.
    fn inverse(&self, y: &Tensor, call: &BlockCall) -> Result<Tensor>;

    /// Given the output `y` and `ȳ = dL/dy`, returns the reconstructed input
    /// `x` and `x̄ = dL/dx`; parameter gradients accumulate into `.grad`.
    ///
    /// The default inverts, then re-runs `forward` with gradients on the
    /// reconstructed input (one inverse + one forward); couplings override it
    /// with a sweep that shares the recomputation between both.
    fn backward(&self, y: &Tensor, grad_y: &Tensor, call: &BlockCall) -> Result<(Tensor, Tensor)> {
        let x = tch::no_grad(|| self.inverse(y, call))?;
        let leaf = x.detach().set_requires_grad(true);
        let out = tch::with_grad(|| self.forward(&leaf, call))?;
        let grad_x = vjp(&out, grad_y, &leaf)?;
        Ok((x, grad_x))
    }
}

/// Back-propagates `grad` through `out` (the surrogate `(out·grad).sum()`,
/// since tch's `backward` takes no gradient argument) and returns the
/// gradient that reached `leaf` (zeros if none did).
pub fn vjp(out: &Tensor, grad: &Tensor, leaf: &Tensor) -> Result<Tensor> {
    surrogate_backward(&[(out, grad)])?;
    Ok(grad_or_zeros(leaf))
}

/// Runs one backward pass through `Σ (out_i · grad_i).sum()` if anything in
/// it requires gradients.
pub fn surrogate_backward(pairs: &[(&Tensor, &Tensor)]) -> Result<()> {
    let mut total: Option<Tensor> = None;
    for (out, grad) in pairs {
        if !out.requires_grad() {
            continue;
        }
        let term = out.f_mul(&grad.detach())?.f_sum(out.kind())?;
        total = Some(match total {
            None => term,
            Some(t) => t.f_add(&term)?,
        });
    }
    if let Some(t) = total {
        t.f_backward()?;
    }
    Ok(())
}

/// The gradient stored in `leaf.grad`, or zeros of its shape when none arrived.
pub fn grad_or_zeros(leaf: &Tensor) -> Tensor {
    let g = leaf.grad();
    if g.defined() {
        g.detach()
    } else {
        leaf.zeros_like()
    }
}

/// Fails unless `kind` is f32 or f64, the dtypes reconstruction is accurate in.
pub fn check_reconstruction_dtype(what: &str, kind: Kind) -> Result<()> {
    match kind {
        Kind::Float | Kind::Double => Ok(()),
        other => Err(Error::UnsupportedDtype {
            what: what.to_string(),
            kind: other,
        }),
    }
}
