//! AdamW that can leave entries alone: with [`Semantics::SkipMasked`] a
//! masked entry moves neither through its gradient, its momentum nor
//! weight decay, and its own step count (for the bias correction) stands
//! still; with [`Semantics::ZeroGradOnly`] (the SGTM reference code's one
//! joint AdamW) only the gradient is zeroed, so masked entries still move.

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

struct State {
    m: Tensor,
    v: Tensor,
    t: Tensor,
}

/// AdamW over named parameters with per-entry step counts.
pub struct MaskedAdamW {
    /// Constants.
    pub config: AdamW,
    /// Masking semantics.
    pub semantics: Semantics,
    params: Vec<(String, Tensor)>,
    state: Vec<State>,
}

impl MaskedAdamW {
    /// An optimiser over `params` (name, tensor), all state zero.
    pub fn new(params: Vec<(String, Tensor)>, config: AdamW, semantics: Semantics) -> Self {
        let state = params
            .iter()
            .map(|(_, p)| State {
                m: p.zeros_like(),
                v: p.zeros_like(),
                t: p.zeros_like(),
            })
            .collect();
        Self {
            config,
            semantics,
            params,
            state,
        }
    }

    /// The parameters, in order.
    pub fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// The first and second moments and the step counts of parameter `i`.
    pub fn state(&self, i: usize) -> (&Tensor, &Tensor, &Tensor) {
        let s = &self.state[i];
        (&s.m, &s.v, &s.t)
    }

    /// One step at learning rate `lr` from the parameters' `.grad`
    /// (undefined = 0); `allowed(i)` gives parameter `i`'s 0/1 mask of
    /// entries that may change (`None`: all). Clears the gradients after.
    pub fn step(&mut self, lr: f64, allowed: &dyn Fn(usize, &str) -> Option<Tensor>) -> Result<()> {
        let c = self.config;
        no_grad(|| -> Result<()> {
            for (i, (name, p)) in self.params.iter_mut().enumerate() {
                let mut g = p.grad();
                g = if g.defined() {
                    g.detach()
                } else {
                    p.f_zeros_like()?
                };
                let mask = allowed(i, name);
                let s = &mut self.state[i];
                let (mask, masked) = match (&mask, self.semantics) {
                    (Some(m), Semantics::ZeroGradOnly) => {
                        g = g.f_mul(m)?;
                        (None, false)
                    }
                    (Some(m), Semantics::SkipMasked) => (Some(m.f_to_kind(Kind::Bool)?), true),
                    (None, _) => (None, false),
                };
                let t = match &mask {
                    Some(m) => s.t.f_add(&m.f_to_kind(Kind::Float)?)?,
                    None => s.t.f_add_scalar(1.0)?,
                };
                let m_new =
                    s.m.f_mul_scalar(c.beta1)?
                        .f_add(&g.f_mul_scalar(1.0 - c.beta1)?)?;
                let v_new =
                    s.v.f_mul_scalar(c.beta2)?
                        .f_add(&g.f_square()?.f_mul_scalar(1.0 - c.beta2)?)?;
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
                let update = m_new.f_div(&bc1)?.f_div(&denom)?.f_mul_scalar(lr)?;
                let p_new = p.f_mul_scalar(1.0 - lr * c.weight_decay)?.f_sub(&update)?;
                match (&mask, masked) {
                    (Some(m), true) => {
                        s.m = m_new.f_where_self(m, &s.m)?;
                        s.v = v_new.f_where_self(m, &s.v)?;
                        s.t = t;
                        p.f_copy_(&p_new.f_where_self(m, p)?)?;
                    }
                    _ => {
                        s.m = m_new;
                        s.v = v_new;
                        s.t = t;
                        p.f_copy_(&p_new)?;
                    }
                }
                let mut grad = p.grad();
                if grad.defined() {
                    let _ = grad.f_zero_()?;
                }
            }
            Ok(())
        })
    }
}
