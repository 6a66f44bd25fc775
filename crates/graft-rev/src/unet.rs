//! The reversible mobile inverted bottleneck (MBConv) block and a 3D U-Net
//! built from it (spec §2; layout after Brügger et al.'s partially
//! reversible U-Net: skips added, 1×1×1 convs between widths).
//!
//! Each level's sequence of MBConv couplings is a [`Stack`] run with the
//! chosen [`crate::Strategy`]; the non-invertible parts (stem, max-pool, 1×1×1
//! width changes, trilinear upsampling, skip additions, head) run through
//! ordinary autograd and keep what autograd keeps. The backward runs the
//! level stacks in reverse order of the forward, each one's input gradient
//! propagated through the plain graph below it.

use crate::coupling::{Coupling, CouplingConfig};
use crate::reversible::surrogate_backward;
use crate::stack::{Layer, Ledger, RunOptions, Stack, Tape};
use crate::subnet::CallCtx;
use crate::{Error, Result};
use graft_tensor::tch::nn::{self, Module};
use graft_tensor::tch::{Kind, Tensor};

/// Configuration of an MBConv function `F` or `G` on `c` channels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MbConvConfig {
    /// Channels of the half it maps (`c`).
    pub channels: i64,
    /// Expansion factor `t` (hidden channels `t·c`).
    pub expansion: i64,
    /// GroupNorm groups; must divide `c` and `t·c`.
    pub groups: i64,
}

/// The MBConv function: 1×1×1 conv `c → t·c` → GroupNorm → ReLU6 →
/// depthwise 3×3×3 conv → GroupNorm → ReLU6 → 1×1×1 conv `t·c → c` →
/// GroupNorm (linear bottleneck).
pub fn mbconv(
    p: nn::Path,
    cfg: &MbConvConfig,
) -> Result<impl Fn(&Tensor, &CallCtx) -> Result<Tensor> + use<>> {
    let (c, e, g) = (cfg.channels, cfg.channels * cfg.expansion, cfg.groups);
    if c <= 0 || cfg.expansion <= 0 || g <= 0 || c % g != 0 || e % g != 0 {
        return Err(Error::Config(format!(
            "MBConv needs GroupNorm groups dividing {c} and {e} channels, got {g} groups"
        )));
    }
    let no_bias = nn::ConvConfig {
        bias: false,
        ..Default::default()
    };
    let expand = nn::conv3d(&p / "expand", c, e, 1, no_bias);
    let gn1 = nn::group_norm(&p / "gn1", g, e, Default::default());
    let depthwise = nn::conv3d(
        &p / "depthwise",
        e,
        e,
        3,
        nn::ConvConfig {
            padding: 1,
            groups: e,
            bias: false,
            ..Default::default()
        },
    );
    let gn2 = nn::group_norm(&p / "gn2", g, e, Default::default());
    let project = nn::conv3d(&p / "project", e, c, 1, no_bias);
    let gn3 = nn::group_norm(&p / "gn3", g, c, Default::default());
    Ok(move |x: &Tensor, _ctx: &CallCtx| {
        let h = gn1.forward(&expand.forward(x)).f_clamp(0.0, 6.0)?;
        let h = gn2.forward(&depthwise.forward(&h)).f_clamp(0.0, 6.0)?;
        Ok(gn3.forward(&project.forward(&h)))
    })
}

/// A reversible MBConv block on `2c` channels: an additive coupling whose
/// `F` and `G` are [`mbconv`] functions.
pub fn mbconv_block(p: &nn::Path, width: i64, expansion: i64, groups: i64) -> Result<Coupling> {
    if width % 2 != 0 {
        return Err(Error::OddSplit {
            dim: 1,
            size: width,
            shape: vec![],
        });
    }
    let cfg = MbConvConfig {
        channels: width / 2,
        expansion,
        groups,
    };
    Coupling::new(
        mbconv(p / "f", &cfg)?,
        mbconv(p / "g", &cfg)?,
        CouplingConfig {
            width: Some(width),
            ..Default::default()
        },
    )
}

/// Configuration of the 3D U-Net.
#[derive(Debug, Clone, PartialEq)]
pub struct UNetConfig {
    /// Input channels (4 MRI modalities).
    pub in_channels: i64,
    /// Output channels (3 regions: WT, TC, ET).
    pub out_channels: i64,
    /// Widths per level, from the top; all even.
    pub widths: Vec<i64>,
    /// Reversible MBConv blocks per level (encoder and decoder each).
    pub blocks_per_level: usize,
    /// MBConv expansion factor.
    pub expansion: i64,
    /// GroupNorm groups inside the MBConv functions.
    pub groups: i64,
}

impl UNetConfig {
    /// `levels` levels with widths `base·2^i`.
    pub fn new(levels: usize, base: i64, blocks_per_level: usize, expansion: i64) -> Self {
        Self {
            in_channels: 4,
            out_channels: 3,
            widths: (0..levels).map(|i| base << i).collect(),
            blocks_per_level,
            expansion,
            groups: 2,
        }
    }
}

/// The reversible 3D U-Net.
pub struct UNet3d {
    config: UNetConfig,
    stem: nn::Conv3D,
    down: Vec<nn::Conv3D>,
    up: Vec<nn::Conv3D>,
    head: nn::Conv3D,
    encoder: Vec<Stack>,
    decoder: Vec<Stack>,
}

/// What a U-Net forward leaves for the backward: the level stacks' tapes
/// with their graph-attached inputs, in forward order.
pub struct UNetTape {
    entries: Vec<(bool, usize, Tape, Tensor)>,
}

impl UNetTape {
    /// Bytes the level stacks retain (autograd's graph of the
    /// non-invertible parts is not counted).
    pub fn ledger(&self) -> Ledger {
        let mut total = Ledger::default();
        for (_, _, tape, _) in &self.entries {
            let l = tape.ledger();
            total.output_bytes += l.output_bytes;
            total.seed_bytes += l.seed_bytes;
            total.anchor_bytes += l.anchor_bytes;
            total.boundary_bytes += l.boundary_bytes;
            total.autograd_graph |= l.autograd_graph;
        }
        total
    }
}

impl UNet3d {
    /// Builds the network with variables under `p`.
    pub fn new(p: &nn::Path, config: UNetConfig) -> Result<Self> {
        let w = &config.widths;
        if w.is_empty() || w.iter().any(|&x| x <= 0 || x % 2 != 0) {
            return Err(Error::Config(format!(
                "U-Net widths must be positive and even, got {w:?}"
            )));
        }
        let no_bias = nn::ConvConfig {
            bias: false,
            ..Default::default()
        };
        let stem = nn::conv3d(
            p / "stem",
            config.in_channels,
            w[0],
            3,
            nn::ConvConfig {
                padding: 1,
                bias: false,
                ..Default::default()
            },
        );
        let level_stack = |name: String, width: i64| -> Result<Stack> {
            let layers = (0..config.blocks_per_level)
                .map(|b| {
                    Ok(Layer::reversible(mbconv_block(
                        &(p / name.as_str() / format!("block{b}")),
                        width,
                        config.expansion,
                        config.groups,
                    )?))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Stack::new(layers))
        };
        let mut encoder = Vec::new();
        let mut down = Vec::new();
        let mut up = Vec::new();
        let mut decoder = Vec::new();
        for (i, &width) in w.iter().enumerate() {
            encoder.push(level_stack(format!("enc{i}"), width)?);
            if i > 0 {
                down.push(nn::conv3d(
                    p / format!("down{i}"),
                    w[i - 1],
                    width,
                    1,
                    no_bias,
                ));
                up.push(nn::conv3d(
                    p / format!("up{i}"),
                    width,
                    w[i - 1],
                    1,
                    no_bias,
                ));
                decoder.push(level_stack(format!("dec{}", i - 1), w[i - 1])?);
            }
        }
        let head = nn::conv3d(p / "head", w[0], config.out_channels, 1, Default::default());
        Ok(Self {
            config,
            stem,
            down,
            up,
            head,
            encoder,
            decoder,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    fn run_level(
        stack: &Stack,
        input: Tensor,
        options: RunOptions,
        entries: &mut Vec<(bool, usize, Tape, Tensor)>,
        decoder: bool,
        level: usize,
    ) -> Result<Tensor> {
        let tape = stack.forward(&input, options)?;
        let out = tape.output.shallow_clone();
        entries.push((decoder, level, tape, input));
        Ok(out)
    }

    /// Forward of `x` (`[B, in, S, S, S]`, `S` divisible by `2^(levels−1)`):
    /// logits `[B, out, S, S, S]` attached to autograd through the
    /// non-invertible parts, and the tape for [`UNet3d::backward`].
    pub fn forward(&self, x: &Tensor, options: RunOptions) -> Result<(Tensor, UNetTape)> {
        let size = x.size();
        let levels = self.config.widths.len();
        let factor = 1i64 << (levels - 1);
        if size.len() != 5
            || size[1] != self.config.in_channels
            || size[2..].iter().any(|s| s % factor != 0 || *s == 0)
        {
            return Err(Error::ShapeMismatch {
                what: format!(
                    "U-Net input [B, {}, D, H, W] with D, H, W divisible by {factor}",
                    self.config.in_channels
                ),
                expected: vec![-1, self.config.in_channels, factor, factor, factor],
                got: size,
            });
        }
        let mut entries = Vec::new();
        let mut skips = Vec::new();
        let mut h = self.stem.forward(x);
        for i in 0..levels {
            if i > 0 {
                let pooled = h.f_max_pool3d([2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], false)?;
                h = self.down[i - 1].forward(&pooled);
            }
            h = Self::run_level(&self.encoder[i], h, options, &mut entries, false, i)?;
            skips.push(h.shallow_clone());
        }
        for i in (0..levels - 1).rev() {
            let s = skips[i].size();
            let up = self.up[i].forward(&h).f_upsample_trilinear3d(
                [s[2], s[3], s[4]],
                false,
                None,
                None,
                None,
            )?;
            let input = up.f_add(&skips[i])?;
            h = Self::run_level(&self.decoder[i], input, options, &mut entries, true, i)?;
        }
        let logits = self.head.forward(&h);
        Ok((logits, UNetTape { entries }))
    }

    /// Backward after `loss.backward()` on a loss computed from the logits:
    /// runs the level stacks from the last to the first, propagating each
    /// one's input gradient through the plain graph below it; parameter
    /// gradients (and `x.grad` if `x` requires gradients) accumulate.
    pub fn backward(&self, mut tape: UNetTape) -> Result<()> {
        while let Some((decoder, level, t, input)) = tape.entries.pop() {
            let stack = if decoder {
                &self.decoder[level]
            } else {
                &self.encoder[level]
            };
            let g = t.output.grad();
            if !g.defined() {
                // Nothing downstream used this level's output.
                continue;
            }
            let back = stack.backward(t)?;
            surrogate_backward(&[(&input, &back.grad_input)])?;
        }
        Ok(())
    }
}

/// Dice compares a target of exactly the logits' shape (no broadcasting).
fn check_dice_target(logits: &Tensor, target: &Tensor) -> Result<()> {
    if logits.size() != target.size() {
        return Err(Error::ShapeMismatch {
            what: "Dice target".into(),
            expected: logits.size(),
            got: target.size(),
        });
    }
    Ok(())
}

/// Soft Dice loss over channels: `1 − mean_c (2Σ p·y + ε) / (Σ p + Σ y + ε)`
/// with `p = sigmoid(logits)`, per channel over batch and voxels.
pub fn soft_dice_loss(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    check_dice_target(logits, target)?;
    let p = logits.f_sigmoid()?;
    let dims = [0i64, 2, 3, 4];
    let eps = 1.0;
    let inter = p
        .f_mul(target)?
        .f_sum_dim_intlist(&dims[..], false, Kind::Float)?;
    let denom = p
        .f_sum_dim_intlist(&dims[..], false, Kind::Float)?
        .f_add(&target.f_sum_dim_intlist(&dims[..], false, Kind::Float)?)?;
    let dice = inter
        .f_mul_scalar(2.0)?
        .f_add_scalar(eps)?
        .f_div(&denom.f_add_scalar(eps)?)?;
    Ok(dice.f_mean(Kind::Float)?.f_neg()?.f_add_scalar(1.0)?)
}

/// Soft Dice plus binary cross-entropy on the logits (mean over voxels),
/// equally weighted: the loss nnU-Net trains with. Soft Dice alone has a
/// flat minimum where a small region is predicted everywhere or nowhere
/// (its gradient vanishes through a saturated sigmoid); the voxel-wise term
/// keeps every region's gradient alive.
pub fn dice_bce_loss(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    let dice = soft_dice_loss(logits, target)?;
    let bce = logits.f_binary_cross_entropy_with_logits::<Tensor>(
        target,
        None,
        None,
        graft_tensor::tch::Reduction::Mean,
    )?;
    Ok(dice.f_add(&bce)?)
}

/// Hard Dice per channel (threshold 0.5 on the sigmoid), `[C]`; a region
/// absent from both prediction and target scores 1.
pub fn dice_scores(logits: &Tensor, target: &Tensor) -> Result<Vec<f64>> {
    check_dice_target(logits, target)?;
    let pred = logits.f_sigmoid()?.f_gt(0.5)?.f_to_kind(Kind::Float)?;
    let dims = [0i64, 2, 3, 4];
    let inter = pred
        .f_mul(target)?
        .f_sum_dim_intlist(&dims[..], false, Kind::Double)?;
    let sum = pred
        .f_sum_dim_intlist(&dims[..], false, Kind::Double)?
        .f_add(&target.f_sum_dim_intlist(&dims[..], false, Kind::Double)?)?;
    let inter = Vec::<f64>::try_from(inter)?;
    let sum = Vec::<f64>::try_from(sum)?;
    Ok(inter
        .iter()
        .zip(&sum)
        .map(|(&i, &s)| if s == 0.0 { 1.0 } else { 2.0 * i / s })
        .collect())
}

/// Convenience: the stacks' strategy-independent parameter count.
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}
