//! Which parameter entries SGTM designates for the forget domain, and the
//! models it can train.

use crate::Result;
use graft_nn::models::{Route, TinyLm, TinyLmConfig};
use graft_tensor::tch::nn::ModuleT;
use graft_tensor::tch::{Device, Kind, Tensor};
use std::collections::BTreeMap;

/// A model with designated heads or units: it can run with them ablated or
/// with gradients routed to them, and names its designated entries.
pub trait RoutedModel: ModuleT {
    /// Outputs with the designated parts taking part as `route` says.
    fn forward_routed(&self, xs: &Tensor, route: Route) -> Result<Tensor>;

    /// For every parameter with designated entries, a 0/1 f32 mask of its
    /// shape (1 = designated); parameters not listed have none.
    fn designated(&self) -> BTreeMap<String, Tensor>;
}

impl RoutedModel for TinyLm {
    fn forward_routed(&self, xs: &Tensor, route: Route) -> Result<Tensor> {
        Ok(TinyLm::forward_routed(self, xs, route)?)
    }

    fn designated(&self) -> BTreeMap<String, Tensor> {
        tiny_lm_designated(self.config())
    }
}

/// The designated entries of a [`TinyLm`]: per block, the rows of q, k and
/// v (and their bias entries) of the last `designated_heads` heads and the
/// matching columns of o; the rows of `fc_in` (and bias entries) of the
/// last `designated_units` units and the matching columns of `fc_out`.
pub fn tiny_lm_designated(c: &TinyLmConfig) -> BTreeMap<String, Tensor> {
    let d = c.width;
    let head_from = (c.heads - c.designated_heads) * c.head_dim();
    let unit_from = c.mlp - c.designated_units;
    let opts = (Kind::Float, Device::Cpu);
    let tail = |n: i64, from: i64| {
        Tensor::cat(
            &[Tensor::zeros([from], opts), Tensor::ones([n - from], opts)],
            0,
        )
    };
    let mut out = BTreeMap::new();
    for i in 0..c.layers {
        let p = format!("blocks.{i}");
        let heads = tail(d, head_from);
        let units = tail(c.mlp, unit_from);
        for w in ["q", "k", "v"] {
            out.insert(
                format!("{p}.attn.{w}.weight"),
                heads.unsqueeze(1).expand([d, d], false).contiguous(),
            );
            out.insert(format!("{p}.attn.{w}.bias"), heads.copy());
        }
        out.insert(
            format!("{p}.attn.o.weight"),
            heads.unsqueeze(0).expand([d, d], false).contiguous(),
        );
        out.insert(
            format!("{p}.mlp.fc_in.weight"),
            units.unsqueeze(1).expand([c.mlp, d], false).contiguous(),
        );
        out.insert(format!("{p}.mlp.fc_in.bias"), units.copy());
        out.insert(
            format!("{p}.mlp.fc_out.weight"),
            units.unsqueeze(0).expand([d, c.mlp], false).contiguous(),
        );
    }
    out
}

/// The number of designated entries of a [`TinyLm`], in closed form:
/// per block `3·(h·d_h·d + h·d_h) + d·h·d_h + 2·m·d + m` for `h`
/// designated heads of width `d_h` and `m` designated units.
pub fn tiny_lm_designated_count(c: &TinyLmConfig) -> i64 {
    let (d, hd, h, m) = (
        c.width,
        c.head_dim(),
        c.designated_heads,
        c.designated_units,
    );
    c.layers * (3 * (h * hd * d + h * hd) + d * h * hd + 2 * m * d + m)
}
