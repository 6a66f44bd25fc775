//! FLoRA (Si, Wang et al. 2024/2025; spec `peft.md` §3 and its
//! Corrections, from the official `flora/layers.py`): a Tucker-form update
//! that keeps the weight's tensor structure,
//! `ΔW = s · G ×₁ U_in ×₂ U_out ×₃ U_h ×₄ U_w`, mode order
//! `(in, out, kh, kw)`, transposed to the base layout `[out, in, kh, kw]`.
//!
//! - Linear: `ΔW = s · U_out Gᵀ U_inᵀ` (with `G = I` it is LoRA with
//!   `A = U_inᵀ`, `B = U_out`).
//! - Conv2d and Conv3d: the update is a convolution kernel applied with the base's
//!   stride, padding, dilation **and groups**, so its in-mode has size
//!   `in / groups` (the official code uses `in` and fails on grouped
//!   convolutions); mergeable, since `ΔW` has the base weight's shape.
//! - `s` is a plain multiplier (not divided by a rank); ranks are clamped
//!   to the mode sizes; the update is rebuilt at every forward.
//! - Init (official): `G = 0`, `U_n ~ N(0, 1/(2 r_n))`; `glue` (the
//!   authors' GLUE code): `U_n ~ N(0, 0.02²)`, `G = 0`.

use crate::adapter::{Adapter, Merged};
use crate::config::{FloraInit, LoraConfig};
use crate::layer::{BaseLayer, LayerKind};
use crate::{Error, Result};
use graft_tensor::tch::{Kind, Tensor};

/// Key suffixes of the factors, by mode.
const FACTOR_KEYS: [&str; 5] = [
    "flora_U.0",
    "flora_U.1",
    "flora_U.2",
    "flora_U.3",
    "flora_U.4",
];

/// One FLoRA adapter on a Linear or Conv2d layer.
#[derive(Debug)]
pub struct Flora {
    /// The core `G [r_in, r_out(, r_h, r_w)]`.
    pub core: Tensor,
    /// The factors `U_n [d_n, r_n]`, modes `(in, out, kh, kw)`.
    pub factors: Vec<Tensor>,
    /// The scale `s`.
    pub scale: f64,
    /// Dropout on the adapter's input.
    pub dropout: f64,
    /// `set_scale`'s factor (1).
    pub scale_factor: f64,
}

/// The mode sizes `(in / groups, out, kh, kw)` of a layer's weight.
fn mode_sizes(base: &BaseLayer) -> Vec<i64> {
    let s = base.weight.size();
    match base.kind {
        LayerKind::Conv2d => vec![s[1], s[0], s[2], s[3]],
        LayerKind::Conv3d => vec![s[1], s[0], s[2], s[3], s[4]],
        _ => vec![s[1], s[0]],
    }
}

impl Flora {
    /// A FLoRA adapter on `base`, ranks from `flora_ranks` (else `r` for
    /// every mode), clamped to the mode sizes.
    pub fn new(base: &BaseLayer, layer: &str, r: i64, config: &LoraConfig) -> Result<Self> {
        if !matches!(
            base.kind,
            LayerKind::Linear | LayerKind::Conv2d | LayerKind::Conv3d
        ) {
            return Err(Error::Unsupported {
                layer: layer.into(),
                what: format!(
                    "FLoRA wraps Linear, Conv2d and Conv3d layers, not {:?}",
                    base.kind
                ),
            });
        }
        let sizes = mode_sizes(base);
        let ranks: Vec<i64> = match &config.flora_ranks {
            Some(rs) if rs.len() == sizes.len() => rs.clone(),
            Some(rs) => {
                return Err(Error::config(
                    "<config>",
                    "flora_ranks",
                    format!(
                        "`{layer}` has {} modes (in, out{}) but {} ranks were given",
                        sizes.len(),
                        if sizes.len() == 4 { ", kh, kw" } else { "" },
                        rs.len()
                    ),
                ));
            }
            None => vec![r; sizes.len()],
        };
        if ranks.iter().any(|&r| r < 1) {
            return Err(Error::config(
                "<config>",
                "flora_ranks",
                "ranks must be at least 1",
            ));
        }
        let ranks: Vec<i64> = ranks
            .iter()
            .zip(&sizes)
            .map(|(r, d)| (*r).min(*d))
            .collect();
        let opts = (Kind::Float, base.weight.device());
        let factors = sizes
            .iter()
            .zip(&ranks)
            .map(|(&d, &r)| {
                let std = match config.flora_init.unwrap_or_default() {
                    FloraInit::Official => 1.0 / (2.0 * r as f64).sqrt(),
                    FloraInit::Glue => 0.02,
                };
                Ok(Tensor::f_randn([d, r], opts)?
                    .f_mul_scalar(std)?
                    .set_requires_grad(true))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            core: Tensor::f_zeros(ranks.as_slice(), opts)?.set_requires_grad(true),
            factors,
            scale: config.flora_scale.unwrap_or(1.0),
            dropout: config.lora_dropout,
            scale_factor: 1.0,
        })
    }

    /// An adapter from saved tensors, shapes checked against `base`.
    pub fn from_tensors(
        base: &BaseLayer,
        layer: &str,
        core: Tensor,
        factors: Vec<Tensor>,
        config: &LoraConfig,
    ) -> Result<Self> {
        let sizes = mode_sizes(base);
        let core_size = core.size();
        if core_size.len() != sizes.len() || factors.len() != sizes.len() {
            return Err(Error::Shape {
                what: format!("`{layer}.flora_G` (one rank per mode of the weight)"),
                expected: sizes.clone(),
                got: core_size,
            });
        }
        for (n, (u, (&d, &r))) in factors.iter().zip(sizes.iter().zip(&core_size)).enumerate() {
            if u.size() != [d, r] {
                return Err(Error::Shape {
                    what: format!("`{layer}.{}`", FACTOR_KEYS[n]),
                    expected: vec![d, r],
                    got: u.size(),
                });
            }
        }
        let grad = |t: Tensor| t.to_kind(Kind::Float).detach().set_requires_grad(true);
        Ok(Self {
            core: grad(core),
            factors: factors.into_iter().map(grad).collect(),
            scale: config.flora_scale.unwrap_or(1.0),
            dropout: config.lora_dropout,
            scale_factor: 1.0,
        })
    }

    /// `ΔW` in the base weight's layout.
    pub fn delta_weight(&self) -> Result<Tensor> {
        let u: Vec<&Tensor> = self.factors.iter().collect();
        let d = if self.factors.len() == 2 {
            Tensor::f_einsum("ab,ia,ob->oi", &[&self.core, u[0], u[1]], None::<&[i64]>)?
        } else if self.factors.len() == 5 {
            Tensor::f_einsum(
                "abcde,ia,ob,xc,yd,ze->oixyz",
                &[&self.core, u[0], u[1], u[2], u[3], u[4]],
                None::<&[i64]>,
            )?
        } else {
            Tensor::f_einsum(
                "abcd,ia,ob,hc,wd->oihw",
                &[&self.core, u[0], u[1], u[2], u[3]],
                None::<&[i64]>,
            )?
        };
        Ok(d.f_mul_scalar(self.scale * self.scale_factor)?)
    }

    /// The number of trainable scalars: `Π r_n + Σ d_n r_n`.
    pub fn parameter_count(&self) -> i64 {
        self.core.numel() as i64 + self.factors.iter().map(|u| u.numel() as i64).sum::<i64>()
    }
}

impl Adapter for Flora {
    fn peft_type(&self) -> &'static str {
        "FLORA"
    }

    fn output(&self, base: &BaseLayer, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = if train && self.dropout > 0.0 {
            x.f_dropout(self.dropout, true)?
        } else {
            x.shallow_clone()
        };
        base.forward_with(&x, &self.delta_weight()?, None)
    }

    fn merge(&self, base: &BaseLayer) -> Result<Merged> {
        let kind = base.weight.kind();
        let w = base
            .weight
            .to_kind(Kind::Float)
            .f_add(&self.delta_weight()?.detach())?;
        Ok(Merged {
            weight: w.to_kind(kind),
            bias: None,
            cache: None,
        })
    }

    fn unmerge(
        &self,
        base: &BaseLayer,
        _cache: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let kind = base.weight.kind();
        let w = base
            .weight
            .to_kind(Kind::Float)
            .f_sub(&self.delta_weight()?.detach())?;
        Ok((w.to_kind(kind), None))
    }

    fn tensors(&self) -> Vec<(&'static str, &Tensor)> {
        let mut out = vec![("flora_G", &self.core)];
        out.extend(FACTOR_KEYS.iter().copied().zip(self.factors.iter()));
        out
    }

    fn set_scale_factor(&mut self, factor: f64) {
        self.scale_factor = factor;
    }
}

/// The key suffixes of a FLoRA adapter on a layer of `kind`.
pub(crate) fn suffixes(kind: LayerKind) -> Vec<&'static str> {
    let modes = match kind {
        LayerKind::Conv2d => 4,
        LayerKind::Conv3d => 5,
        _ => 2,
    };
    std::iter::once("flora_G")
        .chain(FACTOR_KEYS[..modes].iter().copied())
        .collect()
}
