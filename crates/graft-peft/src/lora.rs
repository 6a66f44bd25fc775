//! LoRA (Hu et al. 2021) with rsLoRA scaling and DoRA (Liu et al. 2024),
//! exactly as Hugging Face PEFT computes them (spec `peft.md` §1.1, §1.6).
//!
//! | base | tensors | output | merged delta |
//! |---|---|---|---|
//! | Linear, Conv1D | `A [r,in]`, `B [out,r]` | `s·(drop(x)Aᵀ)Bᵀ` | `s·BA` (Conv1D: transposed) |
//! | Conv2d | `A [r,in,kh,kw]` (base stride, padding, dilation), `B [out,r/g,1,1]` (groups g) | `s·B(A(drop(x)))` | `s·Σ_ρ B[o,ρ]A[ρ]` |
//! | Embedding | `A [r,num]`, `B [dim,r]` | `s·A[:,idx]ᵀBᵀ` (no dropout) | `s·(BA)ᵀ` |
//!
//! DoRA (Linear, Conv2d): with `V = W + ΔW` and `n` its row norms,
//! detached, `g = m/n` and the output term `(g−1)⊙(x Wᵀ) + g⊙(x ΔWᵀ)`;
//! merging writes `g⊙V` and keeps `g` for the unmerge.

use crate::adapter::{Adapter, Merged};
use crate::config::{InitLora, LoraConfig};
use crate::layer::{BaseLayer, LayerKind, conv};
use crate::{Error, Result};
use graft_tensor::tch::{Kind, Tensor};

/// One LoRA adapter on one layer.
#[derive(Debug)]
pub struct Lora {
    /// `lora_A` (`lora_embedding_A` for embeddings).
    pub a: Tensor,
    /// `lora_B` (`lora_embedding_B`).
    pub b: Tensor,
    /// `lora_B.bias`, with `lora_bias`.
    pub b_bias: Option<Tensor>,
    /// DoRA's `lora_magnitude_vector` `m`.
    pub magnitude: Option<Tensor>,
    /// The rank.
    pub r: i64,
    /// `α`.
    pub alpha: f64,
    /// `α / √r` instead of `α / r`.
    pub rslora: bool,
    /// Dropout probability on the adapter's input.
    pub dropout: f64,
    /// `set_scale`'s factor (1).
    pub scale_factor: f64,
    /// The kind of layer it adapts (decides the key suffixes).
    pub kind: LayerKind,
}

/// `(A's shape, B's shape, A's fan-in)`.
type Shapes = (Vec<i64>, Vec<i64>, i64);

impl Lora {
    /// The shapes of rank-`r` factors on `base`, after checking that
    /// `config` (DoRA, `lora_bias`, groups) can apply to it.
    fn shapes(base: &BaseLayer, layer: &str, r: i64, config: &LoraConfig) -> Result<Shapes> {
        let unsupported = |what: String| Error::Unsupported {
            layer: layer.into(),
            what,
        };
        let ws = base.weight.size();
        let (inp, out) = base.features();
        let shapes = match base.kind {
            LayerKind::Linear | LayerKind::Conv1D => (vec![r, inp], vec![out, r], inp),
            LayerKind::Conv2d | LayerKind::Conv3d => {
                let g = base.conv.groups;
                if r % g != 0 {
                    return Err(unsupported(format!(
                        "rank {r} is not a multiple of the convolution's {g} groups"
                    )));
                }
                let kernel = &ws[2..];
                let mut a = vec![r, inp];
                a.extend_from_slice(kernel);
                let mut b = vec![out, r / g];
                b.extend(kernel.iter().map(|_| 1));
                (a, b, inp * kernel.iter().product::<i64>())
            }
            LayerKind::Embedding => (vec![r, inp], vec![out, r], inp),
        };
        if config.use_dora && !matches!(base.kind, LayerKind::Linear | LayerKind::Conv2d) {
            return Err(unsupported(format!(
                "DoRA is supported on Linear and Conv2d layers, not {:?}",
                base.kind
            )));
        }
        if config.use_dora && base.conv.groups > 1 {
            return Err(unsupported(format!(
                "DoRA needs the merged weight's norms, and a LoRA on a convolution with {} groups has no merged weight (its update mixes groups)",
                base.conv.groups
            )));
        }
        if config.use_dora && config.lora_bias {
            return Err(unsupported("lora_bias cannot be combined with DoRA".into()));
        }
        Ok(shapes)
    }

    /// A new adapter of rank `r` and `α = alpha` on `base` (the layer at
    /// `layer`), initialised as `config.init_lora_weights` says.
    pub fn new(
        base: &BaseLayer,
        layer: &str,
        r: i64,
        alpha: f64,
        config: &LoraConfig,
    ) -> Result<Self> {
        let (a_shape, b_shape, fan_a) = Self::shapes(base, layer, r, config)?;
        let unsupported = |what: String| Error::Unsupported {
            layer: layer.into(),
            what,
        };
        let out = base.features().1;
        let opts = (Kind::Float, base.weight.device());
        let uniform = |shape: &[i64], fan: i64| {
            let bound = 1.0 / (fan as f64).sqrt();
            Tensor::f_empty(shape, opts).and_then(|t| t.f_uniform(-bound, bound))
        };
        let zeros = |shape: &[i64]| Tensor::f_zeros(shape, opts);
        let normal = |shape: &[i64], std: f64| Tensor::f_randn(shape, opts).map(|t| t * std);
        let embedding = base.kind == LayerKind::Embedding;
        let (a, b) = match (&config.init_lora_weights, embedding) {
            // PEFT: embeddings reverse the roles (A = 0, B ~ N(0, 1)).
            (InitLora::Flag(true) | InitLora::Named(_), true) => {
                (zeros(&a_shape)?, normal(&b_shape, 1.0)?)
            }
            (InitLora::Flag(true), false) => (uniform(&a_shape, fan_a)?, zeros(&b_shape)?),
            (InitLora::Named(n), false) if n == "gaussian" => {
                (normal(&a_shape, 1.0 / r as f64)?, zeros(&b_shape)?)
            }
            (InitLora::Named(n), false) => {
                return Err(unsupported(format!(
                    "init_lora_weights `{n}` is not implemented by graft-peft (true, false and gaussian are)"
                )));
            }
            (InitLora::Flag(false), true) => (normal(&a_shape, 1.0)?, normal(&b_shape, 1.0)?),
            (InitLora::Flag(false), false) => {
                (uniform(&a_shape, fan_a)?, uniform(&b_shape, b_shape[1])?)
            }
        };
        let b_bias = if config.lora_bias {
            Some(match config.init_lora_weights {
                InitLora::Flag(false) => uniform(&[out], b_shape[1])?,
                _ => zeros(&[out])?,
            })
        } else {
            None
        };
        let mut lora = Self {
            a: a.set_requires_grad(true),
            b: b.set_requires_grad(true),
            b_bias: b_bias.map(|t| t.set_requires_grad(true)),
            magnitude: None,
            r,
            alpha,
            rslora: config.use_rslora,
            dropout: config.lora_dropout,
            scale_factor: 1.0,
            kind: base.kind,
        };
        if config.use_dora {
            // m starts at the row norms of W + ΔW, so DoRA starts as LoRA.
            let v = base
                .weight
                .to_kind(Kind::Float)
                .f_add(&lora.delta_weight(base)?)?;
            lora.magnitude = Some(row_norms(&v)?.detach().set_requires_grad(true));
        }
        Ok(lora)
    }

    /// An adapter from tensors read from a file (shapes checked against `base`).
    #[allow(clippy::too_many_arguments)]
    pub fn from_tensors(
        base: &BaseLayer,
        layer: &str,
        a: Tensor,
        b: Tensor,
        b_bias: Option<Tensor>,
        magnitude: Option<Tensor>,
        alpha: f64,
        config: &LoraConfig,
    ) -> Result<Self> {
        let r = a.size().first().copied().unwrap_or(0).max(1);
        let config = LoraConfig {
            use_dora: magnitude.is_some(),
            lora_bias: b_bias.is_some(),
            ..config.clone()
        };
        let (a_shape, b_shape, _) = Self::shapes(base, layer, r, &config)?;
        let out = base.features().1;
        let device = base.weight.device();
        let check = |what: &str, got: Tensor, want: &[i64]| {
            if got.size() != want {
                Err(Error::Shape {
                    what: format!("`{layer}.{what}`"),
                    expected: want.to_vec(),
                    got: got.size(),
                })
            } else {
                Ok(got
                    .to_kind(Kind::Float)
                    .to_device(device)
                    .detach()
                    .set_requires_grad(true))
            }
        };
        let (sa, sb) = suffixes(base.kind);
        Ok(Self {
            a: check(sa, a, &a_shape)?,
            b: check(sb, b, &b_shape)?,
            b_bias: b_bias
                .map(|t| check("lora_B.bias", t, &[out]))
                .transpose()?,
            magnitude: magnitude
                .map(|t| check("lora_magnitude_vector", t, &[out]))
                .transpose()?,
            r,
            alpha,
            rslora: config.use_rslora,
            dropout: config.lora_dropout,
            scale_factor: 1.0,
            kind: base.kind,
        })
    }

    /// The scale `s`.
    pub fn scaling(&self) -> f64 {
        let denom = if self.rslora {
            (self.r as f64).sqrt()
        } else {
            self.r as f64
        };
        self.scale_factor * self.alpha / denom
    }

    /// The merged delta `ΔW` in the base weight's layout, in float32.
    pub fn delta_weight(&self, base: &BaseLayer) -> Result<Tensor> {
        let s = self.scaling();
        let (a, b) = (self.a.to_kind(Kind::Float), self.b.to_kind(Kind::Float));
        Ok(match base.kind {
            LayerKind::Linear => b.f_matmul(&a)? * s,
            LayerKind::Conv1D => b.f_matmul(&a)?.f_tr()? * s,
            LayerKind::Embedding => b.f_matmul(&a)?.f_tr()? * s,
            LayerKind::Conv2d | LayerKind::Conv3d => {
                if base.conv.groups != 1 {
                    return Err(Error::Unsupported {
                        layer: String::new(),
                        what: format!(
                            "merging LoRA into a convolution with {} groups is not supported (as in PEFT): its B mixes ranks within groups only",
                            base.conv.groups
                        ),
                    });
                }
                let ws = base.weight.size();
                let out = ws[0];
                b.f_view([out, self.r])?
                    .f_matmul(&a.f_view([self.r, -1])?)?
                    .f_view(ws.as_slice())?
                    * s
            }
        })
    }

    /// The adapter branch `s·B(A(drop(x)))` (without DoRA's rescaling).
    fn branch(&self, base: &BaseLayer, x: &Tensor, train: bool) -> Result<Tensor> {
        let s = self.scaling();
        let x = if train && self.dropout > 0.0 && base.kind != LayerKind::Embedding {
            x.f_dropout(self.dropout, true)?
        } else {
            x.shallow_clone()
        };
        let y = match base.kind {
            LayerKind::Linear | LayerKind::Conv1D => x
                .f_linear::<&Tensor>(&self.a, None)?
                .f_linear(&self.b, self.b_bias.as_ref())?,
            LayerKind::Conv2d | LayerKind::Conv3d => {
                let c = base.conv;
                let h = conv(&x, &self.a, None, c.stride, c.padding, c.dilation, 1)?;
                conv(&h, &self.b, self.b_bias.as_ref(), 1, 0, 1, c.groups)?
            }
            LayerKind::Embedding => Tensor::f_embedding(&self.a.f_tr()?, &x, -1, false, false)?
                .f_matmul(&self.b.f_tr()?)?,
        };
        Ok(y * s)
    }

    /// DoRA's `g = m / ‖W + ΔW‖` per output, the norm detached.
    fn dora_scale(&self, base: &BaseLayer, m: &Tensor) -> Result<Tensor> {
        let v = base
            .weight
            .to_kind(Kind::Float)
            .f_add(&self.delta_weight(base)?.detach())?;
        Ok(m.f_div(&row_norms(&v)?.detach())?)
    }
}

/// The L2 norm of each output row (all dims but the first; Conv1D is never here).
fn row_norms(w: &Tensor) -> Result<Tensor> {
    let dims: Vec<i64> = (1..w.dim() as i64).collect();
    Ok(w.f_norm_scalaropt_dim(2, dims.as_slice(), false)?)
}

/// `g` shaped to scale outputs `[.., out]` (Linear) or `[n, out, h, w]` (Conv2d).
fn output_view(g: &Tensor, kind: LayerKind) -> Result<Tensor> {
    Ok(match kind {
        LayerKind::Conv2d => g.f_view([1, -1, 1, 1])?,
        _ => g.shallow_clone(),
    })
}

/// `g` shaped to scale the weight's rows.
fn weight_view(g: &Tensor, w: &Tensor) -> Result<Tensor> {
    let mut shape = vec![-1i64];
    shape.extend(std::iter::repeat_n(1, w.dim() - 1));
    Ok(g.f_view(shape.as_slice())?)
}

/// PEFT's key suffixes of A and B for a layer kind.
pub(crate) fn suffixes(kind: LayerKind) -> (&'static str, &'static str) {
    match kind {
        LayerKind::Embedding => ("lora_embedding_A", "lora_embedding_B"),
        _ => ("lora_A.weight", "lora_B.weight"),
    }
}

impl Adapter for Lora {
    fn peft_type(&self) -> &'static str {
        "LORA"
    }

    fn output(&self, base: &BaseLayer, x: &Tensor, train: bool) -> Result<Tensor> {
        let branch = self.branch(base, x, train)?;
        let Some(m) = &self.magnitude else {
            return Ok(branch);
        };
        let g = output_view(&self.dora_scale(base, m)?, base.kind)?;
        let x = if train && self.dropout > 0.0 {
            x.f_dropout(self.dropout, true)?
        } else {
            x.shallow_clone()
        };
        let plain = base.forward_with(&x, &base.weight, None)?;
        Ok(plain.f_mul(&(&g - 1.0))?.f_add(&branch.f_mul(&g)?)?)
    }

    fn merge(&self, base: &BaseLayer) -> Result<Merged> {
        let kind = base.weight.kind();
        let w = base.weight.to_kind(Kind::Float);
        let delta = self.delta_weight(base)?;
        let bias = match (&self.b_bias, &base.bias) {
            (Some(bb), Some(b)) => Some(
                b.to_kind(Kind::Float)
                    .f_add(&(bb.to_kind(Kind::Float) * self.scaling()))?
                    .to_kind(b.kind()),
            ),
            (Some(_), None) => {
                return Err(Error::Unsupported {
                    layer: String::new(),
                    what: "lora_bias cannot merge into a layer without a bias".into(),
                });
            }
            _ => None,
        };
        Ok(match &self.magnitude {
            None => Merged {
                weight: w.f_add(&delta)?.to_kind(kind),
                bias,
                cache: None,
            },
            Some(m) => {
                let v = w.f_add(&delta)?;
                let g = m.to_kind(Kind::Float).f_div(&row_norms(&v)?)?.detach();
                Merged {
                    weight: v.f_mul(&weight_view(&g, &v)?)?.to_kind(kind),
                    bias,
                    cache: Some(g),
                }
            }
        })
    }

    fn unmerge(
        &self,
        base: &BaseLayer,
        cache: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let kind = base.weight.kind();
        let w = base.weight.to_kind(Kind::Float);
        let w = match (&self.magnitude, cache) {
            (Some(_), Some(g)) => w.f_div(&weight_view(g, &w)?)?,
            (Some(_), None) => {
                return Err(Error::Unsupported {
                    layer: String::new(),
                    what: "a DoRA merge without its cached scale cannot be undone".into(),
                });
            }
            _ => w,
        };
        // ΔW is computed the same way as at merge, so the result does not
        // depend on when it is undone.
        let delta = self.delta_weight(base)?;
        let bias = match (&self.b_bias, &base.bias) {
            (Some(bb), Some(b)) => Some(
                b.to_kind(Kind::Float)
                    .f_sub(&(bb.to_kind(Kind::Float) * self.scaling()))?
                    .to_kind(b.kind()),
            ),
            _ => None,
        };
        Ok((w.f_sub(&delta)?.to_kind(kind), bias))
    }

    fn tensors(&self) -> Vec<(&'static str, &Tensor)> {
        let (sa, sb) = suffixes(self.kind);
        let mut out = vec![(sa, &self.a), (sb, &self.b)];
        if let Some(b) = &self.b_bias {
            out.push(("lora_B.bias", b));
        }
        if let Some(m) = &self.magnitude {
            out.push(("lora_magnitude_vector", m));
        }
        out
    }

    fn set_scale_factor(&mut self, factor: f64) {
        self.scale_factor = factor;
    }

    fn as_lora(&self) -> Option<&Lora> {
        Some(self)
    }
}
