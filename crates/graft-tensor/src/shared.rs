//! [`SharedTensor`]: a tensor that is only read after construction, so that
//! the value holding it can be shared between threads (`Sync`), as a
//! diffusion process's mean μ inside a model served from several threads.
//!
//! tch's `Tensor` is `Send` but not `Sync`: two threads holding `&Tensor`
//! could call the few `&self` methods that change a tensor's metadata
//! (`set_requires_grad`, `backward`) at once. A `SharedTensor` is built from
//! a detached tensor that needs no gradient and hands out `&Tensor` for
//! reading; libtorch's kernels read a tensor from several threads safely.
//! Writing through a shallow clone while another thread reads is a data
//! race here exactly as it is with two shallow clones sent to two threads,
//! which tch already allows.

use std::ops::Deref;
use tch::Tensor;

/// A read-only tensor that may be shared between threads.
#[derive(Debug)]
pub struct SharedTensor(Tensor);

// SAFETY: see the module documentation: the tensor is detached and needs no
// gradient, and the wrapper offers no mutable access; concurrent reads of a
// libtorch tensor are safe.
unsafe impl Sync for SharedTensor {}

impl SharedTensor {
    /// Wraps `t`, detached from any graph and needing no gradient.
    pub fn new(t: Tensor) -> Self {
        Self(t.detach())
    }

    /// A handle to the same storage (for callers that need an owned `Tensor`).
    pub fn handle(&self) -> Tensor {
        self.0.shallow_clone()
    }
}

impl Deref for SharedTensor {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        &self.0
    }
}

impl Clone for SharedTensor {
    fn clone(&self) -> Self {
        Self(self.0.shallow_clone())
    }
}
