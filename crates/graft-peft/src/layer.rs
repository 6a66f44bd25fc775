//! The frozen layers adapters wrap: Linear, GPT-2's Conv1D, Conv2d and
//! Embedding, holding the model's own parameter tensors.

use crate::{Error, Result};
use graft_tensor::tch::{Kind, Tensor};

/// A base layer's kind and hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// `y = x Wᵀ + b`, `W: [out, in]`.
    Linear,
    /// GPT-2's `y = x W + b`, `W: [in, out]`.
    Conv1D,
    /// 2-D convolution, `W: [out, in / groups, kh, kw]`.
    Conv2d,
    /// 3-D convolution, `W: [out, in / groups, kd, kh, kw]`.
    Conv3d,
    /// Lookup table `[num, dim]`.
    Embedding,
}

impl LayerKind {
    /// Whether it is a convolution (2-D or 3-D).
    pub fn is_conv(self) -> bool {
        matches!(self, LayerKind::Conv2d | LayerKind::Conv3d)
    }
}

/// A convolution of `x` by `w` with `geometry`, in as many spatial
/// dimensions as `w` has beyond its first two.
pub(crate) fn conv(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: i64,
    padding: i64,
    dilation: i64,
    groups: i64,
) -> std::result::Result<Tensor, graft_tensor::tch::TchError> {
    let nd = w.dim().saturating_sub(2);
    x.f_convolution(
        w,
        b,
        vec![stride; nd].as_slice(),
        vec![padding; nd].as_slice(),
        vec![dilation; nd].as_slice(),
        false,
        vec![0i64; nd].as_slice(),
        groups,
    )
}

/// Convolution hyper-parameters (square, as `tch::nn::ConvConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Stride.
    pub stride: i64,
    /// Zero padding.
    pub padding: i64,
    /// Dilation.
    pub dilation: i64,
    /// Groups.
    pub groups: i64,
}

impl Default for ConvGeometry {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

/// A base layer: its kind and the model's parameter tensors (shared with
/// the model's `VarStore`, so merging writes into the model).
#[derive(Debug)]
pub struct BaseLayer {
    /// The kind.
    pub kind: LayerKind,
    /// Convolution geometry (convolutions only).
    pub conv: ConvGeometry,
    /// The weight.
    pub weight: Tensor,
    /// The bias, if any.
    pub bias: Option<Tensor>,
}

impl BaseLayer {
    /// `(in, out)` features: input and output width (Conv2d: channels;
    /// Embedding: `(num, dim)`).
    pub fn features(&self) -> (i64, i64) {
        let s = self.weight.size();
        match self.kind {
            LayerKind::Linear => (s[1], s[0]),
            LayerKind::Conv1D => (s[0], s[1]),
            LayerKind::Conv2d | LayerKind::Conv3d => (s[1] * self.conv.groups, s[0]),
            LayerKind::Embedding => (s[0], s[1]),
        }
    }

    /// The layer's output for `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, &self.weight, self.bias.as_ref())
    }

    /// The layer's output for `x` with another weight and bias.
    pub fn forward_with(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        let shape_err = |e: graft_tensor::tch::TchError| Error::BadInput {
            what: format!(
                "input {:?} of a {:?} layer with weight {:?}",
                x.size(),
                self.kind,
                w.size()
            ),
            reason: e.to_string().lines().next().unwrap_or_default().to_string(),
        };
        Ok(match self.kind {
            LayerKind::Linear => x.f_linear(w, b).map_err(shape_err)?,
            LayerKind::Conv1D => {
                let y = x.f_matmul(w).map_err(shape_err)?;
                match b {
                    Some(b) => y.f_add(b)?,
                    None => y,
                }
            }
            LayerKind::Conv2d | LayerKind::Conv3d => {
                let c = self.conv;
                conv(x, w, b, c.stride, c.padding, c.dilation, c.groups).map_err(shape_err)?
            }
            LayerKind::Embedding => {
                if x.kind() != Kind::Int64 && x.kind() != Kind::Int {
                    return Err(Error::BadInput {
                        what: format!("input {:?} of an Embedding layer", x.size()),
                        reason: format!("indices must be integers, got {:?}", x.kind()),
                    });
                }
                Tensor::f_embedding(w, x, -1, false, false).map_err(shape_err)?
            }
        })
    }
}
