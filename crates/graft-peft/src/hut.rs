//! HUT, Hadamard Updated Transformation (Zhang, Zhou, Chen 2024; spec
//! `peft.md` §2 and its Corrections): learn `W' = U(W)` tied to the frozen
//! `W` through a Hadamard product with factors built from two rank-`r`
//! trainable matrices `M_A [in, r]`, `M_B [r, out]`. No official code
//! exists, so both readings are offered as forms of one factor builder
//! (tch layout `W [out, in]`, `W'[o, i] = W[o, i] · F[o, i]`):
//!
//! - [`HutForm::Diag`] (the spec's reading): `F[o, i] = b_o · a_i` with
//!   `a = M_A 1`, `b = 1ᵀ M_B`, i.e. `W' = diag(b) W diag(a)`: `r(in + out)`
//!   parameters but only `in + out` degrees of freedom;
//! - [`HutForm::Hadamard`]: `F = (M_A M_B)ᵀ`, a rank-`r` multiplicative update.
//!
//! Identity init (`M_A[:, 0] = 1`, `M_B[0, :] = 1`, the rest 0) makes `F`
//! all ones exactly in both forms. With `hut_scale_shift`,
//! `y = γ ⊙ (x W'ᵀ) + b + β` with `γ = 1`, `β = 0` at init. Merging writes `γ ⊙ W'` (and
//! `b + β`); unmerging divides, which is exact only up to rounding, so the
//! layer's exact mode keeps the entries it would get wrong.

use crate::adapter::{Adapter, Merged};
use crate::config::{HutForm, LoraConfig};
use crate::layer::{BaseLayer, LayerKind};
use crate::{Error, Result};
use graft_tensor::tch::{Kind, Tensor};

/// One HUT adapter on a Linear or GPT-2 Conv1D layer.
#[derive(Debug)]
pub struct Hut {
    /// `M_A [in, r]`.
    pub m_a: Tensor,
    /// `M_B [r, out]`.
    pub m_b: Tensor,
    /// Per-output scale `γ [out]`, with `hut_scale_shift`.
    pub gamma: Option<Tensor>,
    /// Per-output shift `β [out]`, with `hut_scale_shift`.
    pub beta: Option<Tensor>,
    /// Which reading.
    pub form: HutForm,
    /// Dropout on the input of the transformed branch.
    pub dropout: f64,
    kind: LayerKind,
}

impl Hut {
    /// A HUT adapter of rank `r` on `base`, at the identity.
    pub fn new(base: &BaseLayer, layer: &str, r: i64, config: &LoraConfig) -> Result<Self> {
        if !matches!(base.kind, LayerKind::Linear | LayerKind::Conv1D) {
            return Err(Error::Unsupported {
                layer: layer.into(),
                what: format!("HUT wraps Linear and Conv1D layers, not {:?}", base.kind),
            });
        }
        if config.hut_scale_shift && base.bias.is_none() {
            return Err(Error::Unsupported {
                layer: layer.into(),
                what: "hut_scale_shift needs a layer with a bias, into which the shift β merges"
                    .into(),
            });
        }
        let (inp, out) = base.features();
        let opts = (Kind::Float, base.weight.device());
        let m_a = Tensor::f_zeros([inp, r], opts)?;
        let m_b = Tensor::f_zeros([r, out], opts)?;
        let _ = m_a.f_narrow(1, 0, 1)?.f_fill_(1.0)?;
        let _ = m_b.f_narrow(0, 0, 1)?.f_fill_(1.0)?;
        let (gamma, beta) = if config.hut_scale_shift {
            (
                Some(Tensor::f_ones([out], opts)?.set_requires_grad(true)),
                Some(Tensor::f_zeros([out], opts)?.set_requires_grad(true)),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            m_a: m_a.set_requires_grad(true),
            m_b: m_b.set_requires_grad(true),
            gamma,
            beta,
            form: config.hut_form.unwrap_or_default(),
            dropout: config.lora_dropout,
            kind: base.kind,
        })
    }

    /// An adapter from saved tensors (`hut_A`, `hut_B`, optionally
    /// `hut_gamma`, `hut_beta`), shapes checked against `base`.
    pub fn from_tensors(
        base: &BaseLayer,
        layer: &str,
        m_a: Tensor,
        m_b: Tensor,
        gamma: Option<Tensor>,
        beta: Option<Tensor>,
        config: &LoraConfig,
    ) -> Result<Self> {
        let r = m_a.size().get(1).copied().unwrap_or(0).max(1);
        let template = Self::new(
            base,
            layer,
            r,
            &LoraConfig {
                hut_scale_shift: gamma.is_some() || beta.is_some(),
                ..config.clone()
            },
        )?;
        let take = |what: &str, got: Tensor, want: &Tensor| -> Result<Tensor> {
            if got.size() != want.size() {
                return Err(Error::Shape {
                    what: format!("`{layer}.{what}`"),
                    expected: want.size(),
                    got: got.size(),
                });
            }
            Ok(got.to_kind(Kind::Float).detach().set_requires_grad(true))
        };
        let or_template =
            |what: &str, got: Option<Tensor>, want: &Option<Tensor>| -> Result<Option<Tensor>> {
                match (got, want) {
                    (Some(g), Some(w)) => Ok(Some(take(what, g, w)?)),
                    (None, Some(w)) => Ok(Some(w.shallow_clone())),
                    _ => Ok(None),
                }
            };
        Ok(Self {
            gamma: or_template("hut_gamma", gamma, &template.gamma)?,
            beta: or_template("hut_beta", beta, &template.beta)?,
            m_a: take("hut_A", m_a, &template.m_a)?,
            m_b: take("hut_B", m_b, &template.m_b)?,
            ..template
        })
    }

    /// The multiplier `F` in the layout of the base weight.
    pub fn factor(&self) -> Result<Tensor> {
        let f = match self.form {
            HutForm::Diag => {
                let a = self.m_a.f_sum_dim_intlist(1i64, false, Kind::Float)?;
                let b = self.m_b.f_sum_dim_intlist(0i64, false, Kind::Float)?;
                b.f_unsqueeze(1)?.f_mul(&a.f_unsqueeze(0)?)?
            }
            HutForm::Hadamard => self.m_a.f_matmul(&self.m_b)?.f_tr()?,
        };
        // `f` is [out, in]; Conv1D stores [in, out].
        Ok(match self.kind {
            LayerKind::Conv1D => f.f_tr()?,
            _ => f,
        })
    }

    /// `γ` in the layout of the base weight's rows (outputs).
    fn gamma_for_weight(&self, g: &Tensor) -> Result<Tensor> {
        Ok(match self.kind {
            LayerKind::Conv1D => g.f_unsqueeze(0)?,
            _ => g.f_unsqueeze(1)?,
        })
    }
}

impl Adapter for Hut {
    fn peft_type(&self) -> &'static str {
        "HUT"
    }

    fn output(&self, base: &BaseLayer, x: &Tensor, train: bool) -> Result<Tensor> {
        let xd = if train && self.dropout > 0.0 {
            x.f_dropout(self.dropout, true)?
        } else {
            x.shallow_clone()
        };
        let w = base.weight.to_kind(Kind::Float);
        let transformed = match (self.form, self.kind) {
            // diag(b) W diag(a) without forming W': ((x ⊙ a) Wᵀ) ⊙ b.
            (HutForm::Diag, _) => {
                let a = self.m_a.f_sum_dim_intlist(1i64, false, Kind::Float)?;
                let b = self.m_b.f_sum_dim_intlist(0i64, false, Kind::Float)?;
                base.forward_with(&xd.f_mul(&a)?, &w, None)?.f_mul(&b)?
            }
            (HutForm::Hadamard, _) => base.forward_with(&xd, &w.f_mul(&self.factor()?)?, None)?,
        };
        let transformed = match &self.gamma {
            Some(g) => transformed.f_mul(g)?,
            None => transformed,
        };
        let plain = base.forward_with(x, &w, None)?;
        let mut term = transformed.f_sub(&plain)?;
        if let Some(b) = &self.beta {
            term = term.f_add(b)?;
        }
        Ok(term)
    }

    fn merge(&self, base: &BaseLayer) -> Result<Merged> {
        let kind = base.weight.kind();
        let mut f = self.factor()?;
        if let Some(g) = &self.gamma {
            f = f.f_mul(&self.gamma_for_weight(&g.detach())?)?;
        }
        let w = base.weight.to_kind(Kind::Float).f_mul(&f.detach())?;
        let bias = match (&self.beta, &base.bias) {
            (Some(beta), Some(b)) => Some(
                b.to_kind(Kind::Float)
                    .f_add(&beta.detach())?
                    .to_kind(b.kind()),
            ),
            (Some(_), None) => {
                return Err(Error::Unsupported {
                    layer: String::new(),
                    what: "HUT's shift β cannot merge into a layer without a bias".into(),
                });
            }
            _ => None,
        };
        Ok(Merged {
            weight: w.to_kind(kind),
            bias,
            cache: None,
        })
    }

    fn unmerge(
        &self,
        base: &BaseLayer,
        _cache: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let kind = base.weight.kind();
        let mut f = self.factor()?;
        if let Some(g) = &self.gamma {
            f = f.f_mul(&self.gamma_for_weight(&g.detach())?)?;
        }
        let w = base.weight.to_kind(Kind::Float).f_div(&f.detach())?;
        let bias = match (&self.beta, &base.bias) {
            (Some(beta), Some(b)) => Some(
                b.to_kind(Kind::Float)
                    .f_sub(&beta.detach())?
                    .to_kind(b.kind()),
            ),
            _ => None,
        };
        Ok((w.to_kind(kind), bias))
    }

    fn tensors(&self) -> Vec<(&'static str, &Tensor)> {
        let mut out = vec![("hut_A", &self.m_a), ("hut_B", &self.m_b)];
        if let Some(g) = &self.gamma {
            out.push(("hut_gamma", g));
        }
        if let Some(b) = &self.beta {
            out.push(("hut_beta", b));
        }
        out
    }

    /// HUT has no scale: nothing to multiply.
    fn set_scale_factor(&mut self, _factor: f64) {}
}
