//! Which parameter entries SGTM designates for the forget domain, and the
//! models it can train.

use crate::Result;
use graft_nn::models::{CnnConfig, CnnDesignated, Route, SmallCnn, TinyLm, TinyLmConfig};
use graft_tensor::tch::nn::ModuleT;
use graft_tensor::tch::{Device, Kind, Tensor};
use std::collections::BTreeMap;

/// A model with designated heads, units or channels: it can run with them
/// ablated or with gradients routed to them, and names its designated entries.
pub trait RoutedModel {
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

/// A [`SmallCnn`] with designated channels and units, as a [`RoutedModel`]
/// (built at the root of its `VarStore`, so its parameters are
/// `conv.{i}.*`, `fc.*` and `head.*`).
#[derive(Debug)]
pub struct RoutedCnn {
    /// The network.
    pub cnn: SmallCnn,
    /// Which channels and units are designated.
    pub designated: CnnDesignated,
}

impl ModuleT for RoutedCnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.cnn.forward_t(xs, train)
    }
}

impl RoutedModel for RoutedCnn {
    fn forward_routed(&self, xs: &Tensor, route: Route) -> Result<Tensor> {
        Ok(self.cnn.forward_routed(xs, route, &self.designated)?)
    }

    fn designated(&self) -> BTreeMap<String, Tensor> {
        cnn_designated(self.cnn.config(), &self.designated)
    }
}

/// The spatial size after the convolutions of `c`.
fn final_size(c: &CnnConfig) -> i64 {
    let mut s = c.image_size;
    for i in 0..c.channels.len() {
        if c.pool_after.contains(&i) {
            s /= 2;
        }
    }
    s
}

/// The designated entries of a [`SmallCnn`]: for each convolution the
/// filters (rows and bias entries) of its last `channels[i]` output
/// channels, and the inputs (columns) of the next layer that read them
/// (the next convolution's input channels, or `fc`'s flattened features);
/// for `fc` the rows and bias entries of its last `units` units and the
/// matching columns of `head`. The analogue of a transformer's designated
/// heads (q, k, v rows and o columns) and MLP units (`fc_in` rows and
/// `fc_out` columns).
pub fn cnn_designated(c: &CnnConfig, d: &CnnDesignated) -> BTreeMap<String, Tensor> {
    let opts = (Kind::Float, Device::Cpu);
    let tail = |n: i64, last: i64| {
        Tensor::cat(
            &[
                Tensor::zeros([n - last.clamp(0, n)], opts),
                Tensor::ones([last.clamp(0, n)], opts),
            ],
            0,
        )
    };
    let mut out = BTreeMap::new();
    let n = c.channels.len();
    let s = final_size(c);
    for i in 0..n {
        let (cout, cin) = (
            c.channels[i],
            if i == 0 {
                c.in_channels
            } else {
                c.channels[i - 1]
            },
        );
        let di = d.channels.get(i).copied().unwrap_or(0);
        let rows = tail(cout, di).view([cout, 1, 1, 1]);
        let cols = if i == 0 {
            Tensor::zeros([1, cin, 1, 1], opts)
        } else {
            tail(cin, d.channels.get(i - 1).copied().unwrap_or(0)).view([1, cin, 1, 1])
        };
        let w = rows
            .maximum(&cols)
            .expand([cout, cin, 3, 3], false)
            .contiguous();
        out.insert(format!("conv.{i}.weight"), w);
        out.insert(format!("conv.{i}.bias"), tail(cout, di));
    }
    let c_last = c.channels[n - 1];
    let d_last = d.channels.get(n - 1).copied().unwrap_or(0);
    let flat = c_last * s * s;
    let fc_rows = tail(c.hidden, d.units).view([c.hidden, 1]);
    let fc_cols = tail(c_last, d_last)
        .repeat_interleave_self_int(s * s, 0, None)
        .view([1, flat]);
    out.insert(
        "fc.weight".into(),
        fc_rows
            .maximum(&fc_cols)
            .expand([c.hidden, flat], false)
            .contiguous(),
    );
    out.insert("fc.bias".into(), tail(c.hidden, d.units));
    out.insert(
        "head.weight".into(),
        tail(c.hidden, d.units)
            .view([1, c.hidden])
            .expand([c.classes, c.hidden], false)
            .contiguous(),
    );
    out
}

/// The number of designated entries of a [`SmallCnn`], in closed form
/// (rows and columns of each weight counted once where they cross).
pub fn cnn_designated_count(c: &CnnConfig, d: &CnnDesignated) -> i64 {
    let n = c.channels.len();
    let dd = |i: usize| d.channels.get(i).copied().unwrap_or(0);
    let mut total = 0;
    for i in 0..n {
        let cin = if i == 0 {
            c.in_channels
        } else {
            c.channels[i - 1]
        };
        let d_in = if i == 0 { 0 } else { dd(i - 1) };
        total += 9 * (dd(i) * cin + c.channels[i] * d_in - dd(i) * d_in) + dd(i);
    }
    let s2 = final_size(c) * final_size(c);
    let (flat, d_flat) = (c.channels[n - 1] * s2, dd(n - 1) * s2);
    total + d.units * flat + c.hidden * d_flat - d.units * d_flat + d.units + c.classes * d.units
}
