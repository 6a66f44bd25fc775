//! AdamW that can leave entries alone: with [`Semantics::SkipMasked`] a
//! masked entry moves neither through its gradient, its momentum nor
//! weight decay, and its own step count (for the bias correction) stands
//! still; with [`Semantics::ZeroGradOnly`] (the SGTM reference code's one
//! joint AdamW) only the gradient is zeroed, so masked entries still move.
//!
//! The state of all parameters lives in three flat tensors and a step is a
//! handful of element-wise operations over all entries at once (the
//! parameters and gradients are gathered and scattered once per step), so
//! it costs about what libtorch's own AdamW does.

use crate::Result;
use graft_tensor::tch::{Kind, Tensor, no_grad};
use serde::{Deserialize, Serialize};

/// What masking an entry means to the optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Semantics {
    /// Zero the gradient, step everything (the reference; masked entries
    /// still move through momentum and weight decay).
    ZeroGradOnly,
    /// No change at all to masked entries and their optimiser state.
    SkipMasked,
}

/// AdamW's constants.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamW {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamW {
    /// The SGTM reference's: β = (0.9, 0.95), ε = 1e-8, weight decay 0.1.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// AdamW over named parameters with per-entry step counts.
pub struct MaskedAdamW {
    /// Constants.
    pub config: AdamW,
    /// Masking semantics.
    pub semantics: Semantics,
    params: Vec<(String, Tensor)>,
    offsets: Vec<(i64, i64)>,
    m: Tensor,
    v: Tensor,
    t: Tensor,
}

impl MaskedAdamW {
    /// An optimiser over `params` (name, f32 tensor), all state zero.
    pub fn new(params: Vec<(String, Tensor)>, config: AdamW, semantics: Semantics) -> Self {
        let mut offsets = Vec::with_capacity(params.len());
        let mut total = 0;
        for (_, p) in &params {
            offsets.push((total, p.numel() as i64));
            total += p.numel() as i64;
        }
        let device = params
            .first()
            .map_or(graft_tensor::tch::Device::Cpu, |(_, p)| p.device());
        let zeros = || Tensor::zeros([total], (Kind::Float, device));
        Self {
            config,
            semantics,
            params,
            offsets,
            m: zeros(),
            v: zeros(),
            t: zeros(),
        }
    }

    /// The parameters, in order.
    pub fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// The first and second moments and the step counts of parameter `i`
    /// (views into the optimiser's state, shaped like the parameter).
    pub fn state(&self, i: usize) -> (Tensor, Tensor, Tensor) {
        let (start, len) = self.offsets[i];
        let shape = self.params[i].1.size();
        let view = |t: &Tensor| t.narrow(0, start, len).view(shape.as_slice());
        (view(&self.m), view(&self.v), view(&self.t))
    }

    /// One flat mask over every entry from per-parameter 0/1 masks (`None`:
    /// all entries of that parameter may change); `None` when nothing is masked.
    pub fn flat_mask(&self, per_param: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        if per_param.iter().all(Option::is_none) {
            return Ok(None);
        }
        let parts = self
            .params
            .iter()
            .zip(per_param)
            .map(|((_, p), m)| match m {
                Some(m) => m.f_to_kind(Kind::Float)?.f_reshape([-1]),
                None => Tensor::f_ones([p.numel() as i64], (Kind::Float, p.device())),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Some(Tensor::f_cat(&parts, 0)?))
    }

    /// One step at learning rate `lr` from the parameters' `.grad`
    /// (undefined = 0), letting change only the entries where the flat 0/1
    /// `allowed` mask (see [`MaskedAdamW::flat_mask`]) is 1 (`None`: all).
    /// Clears the gradients after.
    pub fn step(&mut self, lr: f64, allowed: Option<&Tensor>) -> Result<()> {
        let c = self.config;
        no_grad(|| -> Result<()> {
            let grads = self
                .params
                .iter()
                .map(|(_, p)| {
                    let g = p.grad();
                    if g.defined() {
                        g.f_reshape([-1])
                    } else {
                        Tensor::f_zeros([p.numel() as i64], (Kind::Float, p.device()))
                    }
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let mut g = Tensor::f_cat(&grads, 0)?;
            let flat = self
                .params
                .iter()
                .map(|(_, p)| p.f_reshape([-1]))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let p = Tensor::f_cat(&flat, 0)?;
            let skip = match (allowed, self.semantics) {
                (Some(m), Semantics::ZeroGradOnly) => {
                    g = g.f_mul(m)?;
                    None
                }
                (Some(m), Semantics::SkipMasked) => Some((m, m.f_to_kind(Kind::Bool)?)),
                (None, _) => None,
            };
            let t = match &skip {
                Some((m, _)) => self.t.f_add(m)?,
                None => self.t.f_add_scalar(1.0)?,
            };
            let m_new = self.m.f_lerp(&g, 1.0 - c.beta1)?;
            let v_new = self.v.f_lerp(&g.f_square()?, 1.0 - c.beta2)?;
            // Bias corrections per entry: 1 − β^t (t ≥ 1 wherever the entry steps).
            let bc1 = t
                .f_mul_scalar(c.beta1.ln())?
                .f_exp()?
                .f_neg()?
                .f_add_scalar(1.0)?;
            let bc2 = t
                .f_mul_scalar(c.beta2.ln())?
                .f_exp()?
                .f_neg()?
                .f_add_scalar(1.0)?;
            let denom = v_new.f_div(&bc2)?.f_sqrt()?.f_add_scalar(c.eps)?;
            let update = m_new.f_div(&bc1)?.f_div(&denom)?;
            let p_new = p
                .f_mul_scalar(1.0 - lr * c.weight_decay)?
                .f_sub(&update.f_mul_scalar(lr)?)?;
            let p_new = match &skip {
                Some((_, keep)) => {
                    self.m = m_new.f_where_self(keep, &self.m)?;
                    self.v = v_new.f_where_self(keep, &self.v)?;
                    p_new.f_where_self(keep, &p)?
                }
                None => {
                    self.m = m_new;
                    self.v = v_new;
                    p_new
                }
            };
            self.t = t;
            for ((_, param), &(start, len)) in self.params.iter_mut().zip(&self.offsets) {
                param.f_copy_(
                    &p_new
                        .f_narrow(0, start, len)?
                        .f_view(param.size().as_slice())?,
                )?;
                let mut grad = param.grad();
                if grad.defined() {
                    let _ = grad.f_zero_()?;
                }
            }
            Ok(())
        })
    }
}
