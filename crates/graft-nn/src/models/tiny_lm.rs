//! A tiny decoder-only transformer language model (pre-LayerNorm, GELU
//! MLP, learned positions, untied embeddings) whose last attention heads
//! and last MLP units of every block are addressable, so that methods
//! such as SGTM can mask, ablate or route them.
//!
//! Parameter names: `wte`, `wpe`, `blocks.{i}.{ln1,ln2}.{weight,bias}`,
//! `blocks.{i}.attn.{q,k,v,o}.{weight,bias}`,
//! `blocks.{i}.mlp.{fc_in,fc_out}.{weight,bias}`, `ln_f.{weight,bias}` and
//! `lm_head.{weight,bias}`. Heads split the width in order (head `h` owns
//! dimensions `h·d_head .. (h+1)·d_head` of q, k, v and of o's input); the
//! *designated* heads are the last `designated_heads`, the designated MLP
//! units the last `designated_units` of `fc_in`'s outputs.

use super::route::Route;
use crate::layers::{LayerFactory, Plain};
use crate::{Error, Result};
use graft_tensor::tch::nn::{self, Module, ModuleT};
use graft_tensor::tch::{Kind, Tensor};
use serde::{Deserialize, Serialize};

/// Sizes of a [`TinyLm`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TinyLmConfig {
    /// Tokens in the vocabulary.
    pub vocab: i64,
    /// Longest input.
    pub context: i64,
    /// Model width.
    pub width: i64,
    /// Transformer blocks.
    pub layers: i64,
    /// Attention heads per block (they split the width).
    pub heads: i64,
    /// Hidden units of each MLP.
    pub mlp: i64,
    /// Designated heads per block (the last ones).
    pub designated_heads: i64,
    /// Designated MLP units per block (the last ones).
    pub designated_units: i64,
}

impl TinyLmConfig {
    /// The spec's TinyLM: 2 layers, width 64, 4 heads, MLP 256, context 32;
    /// 1 head and 32 MLP units designated per block.
    pub fn small(vocab: i64) -> Self {
        Self {
            vocab,
            context: 32,
            width: 64,
            layers: 2,
            heads: 4,
            mlp: 256,
            designated_heads: 1,
            designated_units: 32,
        }
    }

    /// Width of one head.
    pub fn head_dim(&self) -> i64 {
        self.width / self.heads.max(1)
    }

    /// Checks the sizes fit together.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Invalid(format!("TinyLM config {self:?}: {what}")));
        if self.vocab < 1
            || self.context < 1
            || self.width < 1
            || self.layers < 1
            || self.heads < 1
            || self.mlp < 1
        {
            return bad("every size must be at least 1");
        }
        if self.width % self.heads != 0 {
            return bad("the width must be a multiple of the heads");
        }
        if !(0..=self.heads).contains(&self.designated_heads)
            || !(0..=self.mlp).contains(&self.designated_units)
        {
            return bad("designated heads and units must lie within the heads and the MLP");
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Block {
    ln1: nn::LayerNorm,
    q: Box<dyn ModuleT>,
    k: Box<dyn ModuleT>,
    v: Box<dyn ModuleT>,
    o: Box<dyn ModuleT>,
    ln2: nn::LayerNorm,
    fc_in: Box<dyn ModuleT>,
    fc_out: Box<dyn ModuleT>,
}

/// The model: token ids `[n, t]` (t ≤ context) to next-token logits `[n, t, vocab]`.
#[derive(Debug)]
pub struct TinyLm {
    config: TinyLmConfig,
    wte: Box<dyn ModuleT>,
    wpe: Box<dyn ModuleT>,
    blocks: Vec<Block>,
    ln_f: nn::LayerNorm,
    lm_head: Box<dyn ModuleT>,
    head_keep: Tensor,
    unit_keep: Tensor,
}

impl TinyLm {
    /// Builds the model under `path` with tch's layers.
    pub fn new(path: &nn::Path, config: &TinyLmConfig) -> Result<Self> {
        Self::with_layers(path, config, &Plain)
    }

    /// Builds the model under `path` through `layers`.
    pub fn with_layers(
        path: &nn::Path,
        config: &TinyLmConfig,
        layers: &dyn LayerFactory,
    ) -> Result<Self> {
        config.validate()?;
        let d = config.width;
        let ln = |p: nn::Path| nn::layer_norm(p, vec![d], Default::default());
        let blocks = (0..config.layers)
            .map(|i| {
                let b = path / "blocks" / i;
                Block {
                    ln1: ln(&b / "ln1"),
                    q: layers.linear(&(&b / "attn" / "q"), d, d, true),
                    k: layers.linear(&(&b / "attn" / "k"), d, d, true),
                    v: layers.linear(&(&b / "attn" / "v"), d, d, true),
                    o: layers.linear(&(&b / "attn" / "o"), d, d, true),
                    ln2: ln(&b / "ln2"),
                    fc_in: layers.linear(&(&b / "mlp" / "fc_in"), d, config.mlp, true),
                    fc_out: layers.linear(&(&b / "mlp" / "fc_out"), config.mlp, d, true),
                }
            })
            .collect();
        let device = path.device();
        let keep = |n: i64, last: i64| {
            Tensor::cat(
                &[
                    Tensor::ones([n - last], (Kind::Float, device)),
                    Tensor::zeros([last], (Kind::Float, device)),
                ],
                0,
            )
        };
        Ok(Self {
            wte: layers.embedding(&(path / "wte"), config.vocab, d),
            wpe: layers.embedding(&(path / "wpe"), config.context, d),
            blocks,
            ln_f: ln(path / "ln_f"),
            lm_head: layers.linear(&(path / "lm_head"), d, config.vocab, true),
            head_keep: keep(config.heads, config.designated_heads).view([1, config.heads, 1, 1]),
            unit_keep: keep(config.mlp, config.designated_units),
            config: config.clone(),
        })
    }

    /// The sizes.
    pub fn config(&self) -> &TinyLmConfig {
        &self.config
    }

    /// Next-token logits for `tokens` (`[n, t]`, Int64): an ordinary
    /// forward pass ([`Route::Normal`]). Token ids come from data, so a bad
    /// shape or an id outside the vocabulary is an error, not a panic
    /// (hence no `ModuleT` impl, whose forward cannot fail).
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        self.forward_routed(tokens, Route::Normal)
    }

    /// Logits for `tokens` (`[n, t]`, Int64), the designated heads and
    /// units taking part as `route` says. Errors on a bad shape or a token
    /// outside the vocabulary.
    pub fn forward_routed(&self, tokens: &Tensor, route: Route) -> Result<Tensor> {
        let size = tokens.size();
        if size.len() != 2 || size[1] < 1 || size[1] > self.config.context {
            return Err(Error::Invalid(format!(
                "TinyLM takes token ids [n, t] with 1 <= t <= {}, got {size:?}",
                self.config.context
            )));
        }
        if tokens.numel() > 0 {
            let (lo, hi) = (
                tokens.f_min()?.int64_value(&[]),
                tokens.f_max()?.int64_value(&[]),
            );
            if lo < 0 || hi >= self.config.vocab {
                return Err(Error::Invalid(format!(
                    "token ids span {lo}..={hi}, outside the vocabulary 0..{}",
                    self.config.vocab
                )));
            }
        }
        let (n, t) = (size[0], size[1]);
        let (h, hd) = (self.config.heads, self.config.head_dim());
        let pos = Tensor::f_arange(t, (Kind::Int64, tokens.device()))?;
        let mut x = self.wte.forward_t(tokens, false) + self.wpe.forward_t(&pos, false);
        let route_with = |a: Tensor, keep: &Tensor| route.apply(a, keep);
        for b in &self.blocks {
            let a = b.ln1.forward(&x);
            let split = |y: Tensor| y.view([n, t, h, hd]).transpose(1, 2);
            let (q, k, v) = (
                split(b.q.forward_t(&a, false)),
                split(b.k.forward_t(&a, false)),
                split(b.v.forward_t(&a, false)),
            );
            let ctx = Tensor::f_scaled_dot_product_attention(
                &q,
                &k,
                &v,
                None::<&Tensor>,
                0.0,
                true,
                None,
                false,
            )?;
            let ctx = route_with(ctx, &self.head_keep);
            let ctx = ctx.transpose(1, 2).contiguous().view([n, t, h * hd]);
            x = &x + b.o.forward_t(&ctx, false);
            let m = b.fc_in.forward_t(&b.ln2.forward(&x), false).gelu("none");
            let m = route_with(m, &self.unit_keep);
            x = &x + b.fc_out.forward_t(&m, false);
        }
        Ok(self.lm_head.forward_t(&self.ln_f.forward(&x), false))
    }
}
