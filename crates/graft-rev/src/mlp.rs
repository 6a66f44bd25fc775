//! MLP coupling stacks: the model of the memory-vs-depth reproduction and
//! of the tests. `F` and `G` are `[LayerNorm →] Linear(c, h) → GELU
//! [→ dropout] → Linear(h, c)` on `[B, 2c]` tensors split along the last dim.

use crate::coupling::{Coupling, CouplingConfig, CouplingKind};
use crate::stack::{Layer, Stack};
use crate::subnet::CallCtx;
use crate::{Error, Result};
use graft_tensor::tch::{Tensor, nn, nn::Module};

/// Shape of each coupling's `F` and `G`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlpCouplingConfig {
    /// Half the stream width (`c`): the input is `[B, 2c]`.
    pub half: i64,
    /// Hidden width of `F` and `G`.
    pub hidden: i64,
    /// LayerNorm at the entry of `F` and `G`.
    pub layer_norm: bool,
    /// Dropout probability after the activation (0: none).
    pub dropout: f64,
    /// Coupling kind (additive λ, β or affine).
    pub kind: CouplingKind,
    /// Swapped output layout.
    pub swap: bool,
}

impl Default for MlpCouplingConfig {
    fn default() -> Self {
        Self {
            half: 8,
            hidden: 16,
            layer_norm: false,
            dropout: 0.0,
            kind: CouplingKind::Additive {
                lambda: 1.0,
                beta: 1.0,
            },
            swap: false,
        }
    }
}

/// One MLP function `[LN →] Linear → GELU [→ dropout] → Linear`.
fn mlp_fn(
    p: nn::Path,
    cfg: &MlpCouplingConfig,
) -> impl Fn(&Tensor, &CallCtx) -> Result<Tensor> + 'static {
    let out = match cfg.kind {
        CouplingKind::Affine => 2 * cfg.half,
        CouplingKind::Additive { .. } => cfg.half,
    };
    let ln = cfg
        .layer_norm
        .then(|| nn::layer_norm(&p / "ln", vec![cfg.half], Default::default()));
    let l1 = nn::linear(&p / "fc1", cfg.half, cfg.hidden, Default::default());
    let l2 = nn::linear(&p / "fc2", cfg.hidden, out, Default::default());
    let dropout = cfg.dropout;
    move |x: &Tensor, ctx: &CallCtx| {
        let h = match &ln {
            Some(ln) => ln.forward(x),
            None => x.shallow_clone(),
        };
        let h = l1.forward(&h).f_gelu("none")?;
        let h = if dropout > 0.0 {
            h.f_dropout(dropout, ctx.train)?
        } else {
            h
        };
        Ok(l2.forward(&h))
    }
}

/// A stack of `depth` MLP couplings with variables under `p`.
pub fn mlp_coupling_stack(p: &nn::Path, depth: usize, cfg: &MlpCouplingConfig) -> Result<Stack> {
    if cfg.half <= 0 || cfg.hidden <= 0 {
        return Err(Error::Config(format!(
            "MLP coupling needs positive half and hidden widths, got {} and {}",
            cfg.half, cfg.hidden
        )));
    }
    let layers = (0..depth)
        .map(|i| {
            let b = p / format!("block{i}");
            let f = mlp_fn(&b / "f", cfg);
            let g = mlp_fn(&b / "g", cfg);
            let config = CouplingConfig {
                kind: cfg.kind,
                swap: cfg.swap,
                split_dim: -1,
                width: Some(2 * cfg.half),
                stochastic: cfg.dropout > 0.0,
            };
            Ok(Layer::reversible(Coupling::new(f, g, config)?))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Stack::new(layers))
}
