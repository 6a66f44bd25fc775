//! Shared by the law tests: random layers of every kind, their inputs,
//! and comparisons.
#![allow(dead_code)]

use graft_nn::layers::LayerFactory;
use graft_peft::{Layers, LoraConfig, PeftModel};
use graft_tensor::tch::{Device, Kind, Tensor, nn, nn::ModuleT};
use proptest::prelude::*;

/// A layer to adapt and an input for it.
#[derive(Debug, Clone, Copy)]
pub enum Kind_ {
    Linear {
        inp: i64,
        out: i64,
        bias: bool,
    },
    Conv1D {
        inp: i64,
        out: i64,
    },
    Conv2d {
        inp: i64,
        out: i64,
        k: i64,
        stride: i64,
        padding: i64,
        dilation: i64,
        groups: i64,
    },
    Conv3d {
        inp: i64,
        out: i64,
        k: i64,
        groups: i64,
    },
    Embedding {
        num: i64,
        dim: i64,
    },
}

impl Kind_ {
    pub fn dora_ok(self) -> bool {
        matches!(self, Kind_::Linear { .. } | Kind_::Conv2d { groups: 1, .. })
    }
    pub fn mergeable(self) -> bool {
        !matches!(self, Kind_::Conv2d { groups, .. } | Kind_::Conv3d { groups, .. } if groups > 1)
    }
    /// The closed form of a LoRA adapter's trainable count (spec §1.3).
    pub fn count(self, r: i64, dora: bool) -> i64 {
        let lora = match self {
            Kind_::Linear { inp, out, .. } | Kind_::Conv1D { inp, out } => r * (inp + out),
            Kind_::Conv2d {
                inp,
                out,
                k,
                groups,
                ..
            } => r * inp * k * k + out * r / groups,
            Kind_::Conv3d {
                inp,
                out,
                k,
                groups,
            } => r * inp * k * k * k + out * r / groups,
            Kind_::Embedding { num, dim } => r * (num + dim),
        };
        let out = match self {
            Kind_::Linear { out, .. } | Kind_::Conv2d { out, .. } => out,
            _ => 0,
        };
        lora + if dora { out } else { 0 }
    }
}

pub fn kind() -> impl Strategy<Value = Kind_> {
    prop_oneof![
        (1i64..9, 1i64..9, any::<bool>()).prop_map(|(inp, out, bias)| Kind_::Linear {
            inp,
            out,
            bias
        }),
        (1i64..9, 1i64..9).prop_map(|(inp, out)| Kind_::Conv1D { inp, out }),
        (
            1i64..3,
            1i64..4,
            prop_oneof![Just(1i64), Just(3)],
            1i64..3,
            0i64..3,
            1i64..3,
            prop_oneof![Just(1i64), Just(2)]
        )
            .prop_map(
                |(i, o, k, stride, padding, dilation, groups)| Kind_::Conv2d {
                    inp: i * groups,
                    out: o * groups,
                    k,
                    stride,
                    padding,
                    dilation,
                    groups
                }
            ),
        (
            1i64..3,
            1i64..3,
            prop_oneof![Just(1i64), Just(2)],
            prop_oneof![Just(1i64), Just(2)]
        )
            .prop_map(|(i, o, k, groups)| Kind_::Conv3d {
                inp: i * groups,
                out: o * groups,
                k,
                groups
            }),
        (2i64..12, 1i64..7).prop_map(|(num, dim)| Kind_::Embedding { num, dim }),
    ]
}

pub struct Case {
    pub vs: nn::VarStore,
    pub layers: Layers,
    pub layer: Box<dyn ModuleT>,
    pub x: Tensor,
}

pub fn case(k: Kind_, seed: i64) -> Case {
    graft_tensor::tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let layers = Layers::new();
    let p = vs.root() / "m";
    let opts = (Kind::Float, Device::Cpu);
    let (layer, x) = match k {
        Kind_::Linear { inp, out, bias } => (
            layers.linear(&p, inp, out, bias),
            Tensor::randn([3, inp], opts),
        ),
        Kind_::Conv1D { inp, out } => {
            let l = layers.conv1d_gpt2(&p, inp, out);
            // Conv1D starts at N(0, 0.02²) and zero bias: give it scale.
            let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, mut v) in vars {
                graft_tensor::tch::no_grad(|| v.copy_(&Tensor::randn(v.size(), opts)));
            }
            (l, Tensor::randn([2, 3, inp], opts))
        }
        Kind_::Conv2d {
            inp,
            out,
            k,
            stride,
            padding,
            dilation,
            groups,
        } => {
            let c = nn::ConvConfig {
                stride,
                padding,
                dilation,
                groups,
                ..Default::default()
            };
            (
                layers.conv2d(&p, inp, out, k, c),
                Tensor::randn([2, inp, 7, 6], opts),
            )
        }
        Kind_::Conv3d {
            inp,
            out,
            k,
            groups,
        } => {
            let c = nn::ConvConfig {
                padding: 1,
                groups,
                ..Default::default()
            };
            (
                layers.conv3d(&p, inp, out, k, c),
                Tensor::randn([2, inp, 4, 5, 3], opts),
            )
        }
        Kind_::Embedding { num, dim } => (
            layers.embedding(&p, num, dim),
            Tensor::randint(num, [2, 5], (Kind::Int64, Device::Cpu)),
        ),
    };
    Case {
        vs,
        layers,
        layer,
        x,
    }
}

/// Random values in every adapter tensor (B and the magnitudes start at
/// zero / the norms, which would hide mistakes).
pub fn perturb(peft: &PeftModel, name: &str) {
    for (_, mut t) in peft.tensors(name).unwrap() {
        let noise = Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.5;
        graft_tensor::tch::no_grad(|| {
            let _ = t.g_add_(&noise);
        });
    }
}

pub fn config(r: i64, alpha: f64, rslora: bool, dora: bool) -> LoraConfig {
    LoraConfig {
        use_rslora: rslora,
        use_dora: dora,
        ..LoraConfig::new(r, alpha, &["m"])
    }
}

pub fn rank(k: Kind_, r: i64) -> i64 {
    match k {
        Kind_::Conv2d { groups, .. } | Kind_::Conv3d { groups, .. } => r * groups,
        _ => r,
    }
}

pub fn weights(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, t)| (k, t.detach().copy()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

pub fn rel(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).abs().max().double_value(&[]);
    d / b.abs().max().double_value(&[]).max(1e-6)
}
