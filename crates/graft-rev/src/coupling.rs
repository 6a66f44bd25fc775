//! Coupling blocks (RevNet's additive coupling in its scaled form, and an
//! affine coupling): the input is split into two halves along a split
//! dimension and each half is updated from the other.
//!
//! Additive: `y1 = λ·x1 + F(x2)`, `y2 = β·x2 + G(y1)`.
//! Affine: `(s, t) = F(x2)` split in two, `y1 = σ(s + 2)⊙x1 + t`, and likewise
//! `y2` from `G(y1)` (MemCNN's safe affine form: the scale lies in (0, 1)).
//! With `swap` the output is `concat(y2, y1)` (MEFT's layout).

use crate::reversible::{BlockCall, Reversible, check_reconstruction_dtype, grad_or_zeros};
use crate::subnet::SubNet;
use crate::{Error, Result};
use graft_tensor::tch::{self, Tensor};

/// How one half is updated from the function of the other.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CouplingKind {
    /// `y1 = λ·x1 + F(x2)`, `y2 = β·x2 + G(y1)`; RevNet is `λ = β = 1`.
    Additive {
        /// Scale of the first half (divided by on inversion).
        lambda: f64,
        /// Scale of the second half (divided by on inversion).
        beta: f64,
    },
    /// `y1 = σ(s₁ + 2)⊙x1 + t₁` with `(s₁, t₁) = F(x2)`, likewise for `y2`;
    /// `F` and `G` must return twice the half's size along the split dimension.
    Affine,
}

/// Configuration of a coupling block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CouplingConfig {
    /// Additive (scaled) or affine.
    pub kind: CouplingKind,
    /// Output `concat(y2, y1)` instead of `concat(y1, y2)`.
    pub swap: bool,
    /// The dimension split in halves (1 for `[B,C,...]`, -1 for `[B,T,D]`).
    pub split_dim: i64,
    /// The size of the split dimension, when known, checked at construction.
    pub width: Option<i64>,
    /// Whether `F`/`G` draw random numbers (dropout): libtorch's generator is
    /// then seeded from the block's seed before each of them, in the forward
    /// and in every recomputation.
    pub stochastic: bool,
}

impl Default for CouplingConfig {
    fn default() -> Self {
        Self {
            kind: CouplingKind::Additive {
                lambda: 1.0,
                beta: 1.0,
            },
            swap: false,
            split_dim: 1,
            width: None,
            stochastic: false,
        }
    }
}

/// A coupling block around two shape-preserving functions `F` and `G`.
pub struct Coupling {
    f: Box<dyn SubNet>,
    g: Box<dyn SubNet>,
    config: CouplingConfig,
}

/// Half-tensors and the two scale/shift pairs of one coupling evaluation.
enum Update {
    Additive(f64, Tensor),
    Affine { scale: Tensor, shift: Tensor },
}

impl Update {
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Update::Additive(scale, shift) => scaled(x, *scale)?.f_add(shift)?,
            Update::Affine { scale, shift } => x.f_mul(scale)?.f_add(shift)?,
        })
    }

    fn invert(&self, y: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Update::Additive(scale, shift) => scaled(&y.f_sub(shift)?, 1.0 / *scale)?,
            Update::Affine { scale, shift } => y.f_sub(shift)?.f_div(scale)?,
        })
    }

    /// `dL/dx` of the updated half (direct path only).
    fn grad_input(&self, grad_y: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Update::Additive(scale, _) => scaled(grad_y, *scale)?,
            Update::Affine { scale, .. } => grad_y.f_mul(&scale.detach())?,
        })
    }

    /// The surrogate scalar whose backward gives the VJP through the function
    /// that produced the update, for output gradient `grad_y` and input `x`.
    fn surrogate(&self, x: &Tensor, grad_y: &Tensor) -> Result<Option<Tensor>> {
        let gy = grad_y.detach();
        match self {
            Update::Additive(_, shift) => {
                if !shift.requires_grad() {
                    return Ok(None);
                }
                Ok(Some(shift.f_mul(&gy)?.f_sum(shift.kind())?))
            }
            Update::Affine { scale, shift } => {
                if !scale.requires_grad() && !shift.requires_grad() {
                    return Ok(None);
                }
                let s = scale.f_mul(&gy.f_mul(&x.detach())?)?;
                let t = shift.f_mul(&gy)?;
                Ok(Some(s.f_add(&t)?.f_sum(scale.kind())?))
            }
        }
    }
}

fn scaled(x: &Tensor, s: f64) -> Result<Tensor> {
    if s == 1.0 {
        Ok(x.shallow_clone())
    } else {
        Ok(x.f_mul_scalar(s)?)
    }
}

fn split_halves(t: &Tensor, dim: i64, what: &str) -> Result<(Tensor, Tensor, i64)> {
    let shape = t.size();
    let nd = shape.len() as i64;
    let d = if dim < 0 { dim + nd } else { dim };
    if d < 0 || d >= nd {
        return Err(Error::ShapeMismatch {
            what: format!("{what}: split dimension {dim} out of range"),
            expected: vec![],
            got: shape,
        });
    }
    let size = shape[d as usize];
    if size % 2 != 0 || size == 0 {
        return Err(Error::OddSplit { dim, size, shape });
    }
    let h = size / 2;
    Ok((t.f_narrow(d, 0, h)?, t.f_narrow(d, h, h)?, d))
}

fn seed_rng(seed: u64, which: u64) {
    tch::manual_seed(crate::seeds::mix(seed, which) as i64 & i64::MAX);
}

impl Coupling {
    /// Builds a coupling from `F`, `G` and a configuration; fails on an odd
    /// `width`, a zero or non-finite `λ`/`β`.
    pub fn new(
        f: impl SubNet + 'static,
        g: impl SubNet + 'static,
        config: CouplingConfig,
    ) -> Result<Self> {
        if let CouplingKind::Additive { lambda, beta } = config.kind {
            for (name, v) in [("lambda", lambda), ("beta", beta)] {
                if !v.is_finite() || v == 0.0 {
                    return Err(Error::Config(format!(
                        "coupling {name} must be finite and non-zero, got {v}"
                    )));
                }
            }
        }
        if let Some(w) = config.width
            && (w <= 0 || w % 2 != 0)
        {
            return Err(Error::OddSplit {
                dim: config.split_dim,
                size: w,
                shape: vec![],
            });
        }
        Ok(Self {
            f: Box::new(f),
            g: Box::new(g),
            config,
        })
    }

    /// The block's configuration.
    pub fn config(&self) -> &CouplingConfig {
        &self.config
    }

    fn call_fn(&self, which: u64, x: &Tensor, half: &Tensor, call: &BlockCall) -> Result<Update> {
        let (func, name) = if which == 0 {
            (&self.f, "F")
        } else {
            (&self.g, "G")
        };
        if self.config.stochastic && call.ctx.train {
            seed_rng(call.seed, which);
        }
        let out = func.apply(x, &call.ctx)?;
        let expected = half.size();
        match self.config.kind {
            CouplingKind::Additive { lambda, beta } => {
                if out.size() != expected {
                    return Err(Error::ShapeChanged {
                        function: name,
                        expected,
                        got: out.size(),
                    });
                }
                Ok(Update::Additive(
                    if which == 0 { lambda } else { beta },
                    out,
                ))
            }
            CouplingKind::Affine => {
                let d = self.dim(half);
                let mut doubled = expected.clone();
                doubled[d as usize] *= 2;
                if out.size() != doubled {
                    return Err(Error::ShapeChanged {
                        function: name,
                        expected: doubled,
                        got: out.size(),
                    });
                }
                let h = expected[d as usize];
                let raw = out.f_narrow(d, 0, h)?;
                let shift = out.f_narrow(d, h, h)?;
                let scale = raw.f_add_scalar(2.0)?.f_sigmoid()?;
                Ok(Update::Affine { scale, shift })
            }
        }
    }

    fn dim(&self, t: &Tensor) -> i64 {
        let nd = t.dim() as i64;
        if self.config.split_dim < 0 {
            self.config.split_dim + nd
        } else {
            self.config.split_dim
        }
    }

    /// Splits a block output into `(y1, y2)`, undoing the swap.
    fn unswap(&self, y: &Tensor, what: &str) -> Result<(Tensor, Tensor, i64)> {
        let (a, b, d) = split_halves(y, self.config.split_dim, what)?;
        Ok(if self.config.swap {
            (b, a, d)
        } else {
            (a, b, d)
        })
    }

    fn join(&self, first: &Tensor, second: &Tensor, d: i64) -> Result<Tensor> {
        Ok(if self.config.swap {
            Tensor::f_cat(&[second, first], d)?
        } else {
            Tensor::f_cat(&[first, second], d)?
        })
    }
}

impl Reversible for Coupling {
    fn forward(&self, x: &Tensor, call: &BlockCall) -> Result<Tensor> {
        let (x1, x2, d) = split_halves(x, self.config.split_dim, "coupling input")?;
        let y1 = self.call_fn(0, &x2, &x1, call)?.apply(&x1)?;
        let y2 = self.call_fn(1, &y1, &x2, call)?.apply(&x2)?;
        self.join(&y1, &y2, d)
    }

    fn inverse(&self, y: &Tensor, call: &BlockCall) -> Result<Tensor> {
        check_reconstruction_dtype("coupling inverse", y.kind())?;
        tch::no_grad(|| {
            let (y1, y2, d) = self.unswap(y, "coupling output")?;
            let x2 = self.call_fn(1, &y1, &y2, call)?.invert(&y2)?;
            let x1 = self.call_fn(0, &x2, &y1, call)?.invert(&y1)?;
            Ok(Tensor::f_cat(&[&x1, &x2], d)?)
        })
    }

    fn backward(&self, y: &Tensor, grad_y: &Tensor, call: &BlockCall) -> Result<(Tensor, Tensor)> {
        check_reconstruction_dtype("coupling backward", y.kind())?;
        if grad_y.size() != y.size() {
            return Err(Error::ShapeMismatch {
                what: "gradient of a coupling output".into(),
                expected: y.size(),
                got: grad_y.size(),
            });
        }
        let (y1, y2, d) = self.unswap(&y.detach(), "coupling output")?;
        let (gy1, gy2, _) = self.unswap(grad_y, "coupling output gradient")?;
        // G: recompute on y1 with gradients, reconstruct x2, VJP with ȳ2.
        let y1_leaf = y1.set_requires_grad(true);
        let up_g = tch::with_grad(|| self.call_fn(1, &y1_leaf, &y2, call))?;
        let x2 = tch::no_grad(|| up_g.invert(&y2))?;
        if let Some(s) = tch::with_grad(|| up_g.surrogate(&x2, &gy2))? {
            s.f_backward()?;
        }
        let gx2_direct = tch::no_grad(|| up_g.grad_input(&gy2))?;
        drop(up_g);
        let gy1 = tch::no_grad(|| gy1.f_add(&grad_or_zeros(&y1_leaf)))?;
        drop(y1_leaf);
        // F: recompute on x2 with gradients, reconstruct x1, VJP with ȳ1'.
        let x2_leaf = x2.detach().set_requires_grad(true);
        let up_f = tch::with_grad(|| self.call_fn(0, &x2_leaf, &y1, call))?;
        let x1 = tch::no_grad(|| up_f.invert(&y1))?;
        if let Some(s) = tch::with_grad(|| up_f.surrogate(&x1, &gy1))? {
            s.f_backward()?;
        }
        let gx1 = tch::no_grad(|| up_f.grad_input(&gy1))?;
        drop(up_f);
        let gx2 = tch::no_grad(|| gx2_direct.f_add(&grad_or_zeros(&x2_leaf)))?;
        let x = tch::no_grad(|| Tensor::f_cat(&[&x1, &x2], d))?;
        let gx = tch::no_grad(|| Tensor::f_cat(&[&gx1, &gx2], d))?;
        Ok((x, gx))
    }
}
