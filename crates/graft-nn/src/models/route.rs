//! How a model's designated parts (attention heads, MLP units, channels)
//! take part in a forward pass: the hook SGTM and gradient routing need.

use graft_tensor::tch::Tensor;

/// How the designated heads, units or channels take part in a forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Route {
    /// An ordinary forward pass.
    #[default]
    Normal,
    /// The designated parts' outputs set to 0: the network as if they were
    /// removed (gradients never reach them).
    AblateDesignated,
    /// Gradient routing: the other parts' outputs detached, so a loss's
    /// gradient reaches activations of the designated ones only (values
    /// are unchanged).
    DetachOthers,
}

impl Route {
    /// Applies the route to activations `a`, given `keep` (1 for the other
    /// parts, 0 for the designated ones, broadcastable to `a`).
    pub fn apply(self, a: Tensor, keep: &Tensor) -> Tensor {
        match self {
            Route::Normal => a,
            Route::AblateDesignated => a * keep,
            Route::DetachOthers => a.detach() * keep + a * (1.0 - keep),
        }
    }
}
