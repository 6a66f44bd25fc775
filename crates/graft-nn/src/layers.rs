//! Layer constructors a model takes as a parameter, so that a library can
//! build layers of its own in their place without a change to the model:
//! graft-peft's registry builds layers that adapters can wrap. A layer is
//! named by its `nn::Path` (`encoder.layer.0.attention.self.query`) and
//! keeps tch's parameter names (`weight`, `bias`), so checkpoints load the
//! same either way.

use graft_tensor::tch::{Tensor, nn};

/// How a model builds its parameterised layers. [`Plain`] builds tch's own.
/// Layers are `nn::ModuleT`: call them with `forward_t(x, train)` so that
/// layers with dropout (adapters) know the mode.
pub trait LayerFactory {
    /// `y = x Wᵀ + b` with `W: [out, in]` at `p / "weight"`, `b` at `p / "bias"`.
    fn linear(&self, p: &nn::Path, in_dim: i64, out_dim: i64, bias: bool) -> Box<dyn nn::ModuleT>;
    /// GPT-2's `Conv1D`: `y = x W + b` with `W: [in, out]`.
    fn conv1d_gpt2(&self, p: &nn::Path, in_dim: i64, out_dim: i64) -> Box<dyn nn::ModuleT>;
    /// A 2-D convolution, weight `[out, in / groups, k, k]`.
    fn conv2d(
        &self,
        p: &nn::Path,
        in_dim: i64,
        out_dim: i64,
        kernel: i64,
        config: nn::ConvConfig,
    ) -> Box<dyn nn::ModuleT>;
    /// A 3-D convolution, weight `[out, in / groups, k, k, k]`.
    fn conv3d(
        &self,
        p: &nn::Path,
        in_dim: i64,
        out_dim: i64,
        kernel: i64,
        config: nn::ConvConfig,
    ) -> Box<dyn nn::ModuleT>;
    /// A lookup table `[num, dim]` at `p / "weight"`.
    fn embedding(&self, p: &nn::Path, num: i64, dim: i64) -> Box<dyn nn::ModuleT>;
}

/// tch's own layers (and [`Gpt2Conv1D`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl LayerFactory for Plain {
    fn linear(&self, p: &nn::Path, in_dim: i64, out_dim: i64, bias: bool) -> Box<dyn nn::ModuleT> {
        let config = nn::LinearConfig {
            bias,
            ..Default::default()
        };
        Box::new(nn::linear(p, in_dim, out_dim, config))
    }

    fn conv1d_gpt2(&self, p: &nn::Path, in_dim: i64, out_dim: i64) -> Box<dyn nn::ModuleT> {
        Box::new(Gpt2Conv1D::new(p, in_dim, out_dim))
    }

    fn conv2d(
        &self,
        p: &nn::Path,
        in_dim: i64,
        out_dim: i64,
        kernel: i64,
        config: nn::ConvConfig,
    ) -> Box<dyn nn::ModuleT> {
        Box::new(nn::conv2d(p, in_dim, out_dim, kernel, config))
    }

    fn conv3d(
        &self,
        p: &nn::Path,
        in_dim: i64,
        out_dim: i64,
        kernel: i64,
        config: nn::ConvConfig,
    ) -> Box<dyn nn::ModuleT> {
        Box::new(nn::conv3d(p, in_dim, out_dim, kernel, config))
    }

    fn embedding(&self, p: &nn::Path, num: i64, dim: i64) -> Box<dyn nn::ModuleT> {
        Box::new(nn::embedding(p, num, dim, Default::default()))
    }
}

/// GPT-2's `Conv1D`: a linear layer whose weight is stored `[in, out]`.
#[derive(Debug)]
pub struct Gpt2Conv1D {
    /// `[in, out]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Tensor,
}

impl Gpt2Conv1D {
    /// Weight `N(0, 0.02²)` and zero bias, as transformers initialises it.
    pub fn new(p: &nn::Path, in_dim: i64, out_dim: i64) -> Self {
        Self {
            weight: p.var(
                "weight",
                &[in_dim, out_dim],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            bias: p.zeros("bias", &[out_dim]),
        }
    }
}

impl nn::Module for Gpt2Conv1D {
    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.matmul(&self.weight) + &self.bias
    }
}
