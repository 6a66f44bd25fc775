//! HUT (both readings) and FLoRA: the adapter laws (I1-I8) over random
//! shapes and seeds, and each method against its closed form (spec
//! `peft.md` §2, §3).

mod common;

use common::*;
use graft_peft::config::HutForm;
use graft_peft::{LoadOptions, LoraConfig, PeftModel};
use graft_tensor::output::OutputRules;
use graft_tensor::tch::{Kind, Tensor};
use graft_tensor::testing::{bitwise_equal, proptest_config, rng_lock};
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy)]
enum Method {
    Hut(HutForm, bool),
    Flora,
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        (
            prop_oneof![Just(HutForm::Diag), Just(HutForm::Hadamard)],
            any::<bool>()
        )
            .prop_map(|(f, ss)| Method::Hut(f, ss)),
        Just(Method::Flora),
    ]
}

fn applies(m: Method, k: Kind_) -> bool {
    match m {
        Method::Hut(_, true) => {
            matches!(k, Kind_::Linear { bias: true, .. } | Kind_::Conv1D { .. })
        }
        Method::Hut(..) => matches!(k, Kind_::Linear { .. } | Kind_::Conv1D { .. }),
        Method::Flora => matches!(
            k,
            Kind_::Linear { .. } | Kind_::Conv2d { .. } | Kind_::Conv3d { .. }
        ),
    }
}

fn config(m: Method, r: i64) -> LoraConfig {
    match m {
        Method::Hut(form, ss) => LoraConfig {
            hut_scale_shift: ss,
            ..LoraConfig::hut(r, form, &["m"])
        },
        Method::Flora => LoraConfig::flora(r, 1.5, &["m"]),
    }
}

/// The closed-form trainable count.
fn count(m: Method, k: Kind_, r: i64) -> i64 {
    match (m, k) {
        (Method::Hut(_, ss), Kind_::Linear { inp, out, .. } | Kind_::Conv1D { inp, out }) => {
            r * (inp + out) + if ss { 2 * out } else { 0 }
        }
        (Method::Flora, Kind_::Linear { inp, out, .. }) => {
            let (ri, ro) = (r.min(inp), r.min(out));
            ri * ro + inp * ri + out * ro
        }
        (
            Method::Flora,
            Kind_::Conv2d {
                inp,
                out,
                k,
                groups,
                ..
            },
        ) => {
            let dims = [inp / groups, out, k, k];
            let ranks: Vec<i64> = dims.iter().map(|d| r.min(*d)).collect();
            ranks.iter().product::<i64>() + dims.iter().zip(&ranks).map(|(d, r)| d * r).sum::<i64>()
        }
        (
            Method::Flora,
            Kind_::Conv3d {
                inp,
                out,
                k,
                groups,
            },
        ) => {
            let dims = [inp / groups, out, k, k, k];
            let ranks: Vec<i64> = dims.iter().map(|d| r.min(*d)).collect();
            ranks.iter().product::<i64>() + dims.iter().zip(&ranks).map(|(d, r)| d * r).sum::<i64>()
        }
        _ => unreachable!(),
    }
}

proptest! {
    #![proptest_config(proptest_config(96))]

    #[test]
    fn the_laws_hold_for_hut_and_flora(
        m in method(), k in kind(), r in 1i64..4, seed in 0i64..1000, exact in any::<bool>(),
    ) {
        prop_assume!(applies(m, k));
        let _g = rng_lock();
        let mut c = case(k, seed);
        let base = c.layer.forward_t(&c.x, false);
        let before = weights(&c.vs);
        let mut peft = PeftModel::new(&mut c.vs, &c.layers);
        peft.set_exact_unmerge(exact);
        peft.add_adapter("default", config(m, r)).unwrap();
        // I1 and I7.
        prop_assert!(bitwise_equal(&c.layer.forward_t(&c.x, false), &base), "I1 {m:?} {k:?}");
        prop_assert_eq!(peft.parameter_count().trainable, count(m, k, r), "I7 {:?} {:?}", m, k);
        perturb(&peft, "default");
        // I5.
        c.layer.forward_t(&c.x, true).square().sum(Kind::Float).backward();
        for (name, t) in c.vs.variables() {
            prop_assert!(!t.grad().defined(), "I5: base `{}`", name);
        }
        for (name, t) in peft.tensors("default").unwrap() {
            prop_assert!(t.grad().defined(), "I5: `{}`", name);
        }
        // I4.
        prop_assert!(bitwise_equal(&peft.with_adapters_disabled(|| c.layer.forward_t(&c.x, false)).unwrap(), &base));
        // I2 and I3.
        let unmerged = c.layer.forward_t(&c.x, false);
        peft.merge(None, true).unwrap();
        let merged = c.layer.forward_t(&c.x, false);
        prop_assert!(rel(&merged, &unmerged) <= 1e-5, "I2 {m:?} {k:?}: {:e}", rel(&merged, &unmerged));
        peft.unmerge().unwrap();
        for ((name, w0), (_, w1)) in before.iter().zip(weights(&c.vs)) {
            if exact {
                prop_assert!(bitwise_equal(w0, &w1), "I3 exact `{}` {:?}", name, m);
            } else {
                prop_assert!(rel(&w1, w0) <= 1e-5, "I3 `{}` {:?}", name, m);
            }
        }
        // I6.
        let tmp = tempfile::tempdir().unwrap();
        peft.save_pretrained(&tmp.path().join("a"), &OutputRules::new()).unwrap();
        let mut d = case(k, seed);
        let mut back = PeftModel::new(&mut d.vs, &d.layers);
        back.load_pretrained(&tmp.path().join("a"), LoadOptions::default()).unwrap();
        for ((ka, ta), (kb, tb)) in peft.tensors("default").unwrap().iter().zip(&back.tensors("default").unwrap()) {
            prop_assert!(ka == kb && bitwise_equal(ta, tb), "I6 `{}`", ka);
        }
        // Without exact unmerges the first model's base moved by rounding.
        let (y, y2) = (c.layer.forward_t(&c.x, false), d.layer.forward_t(&d.x, false));
        prop_assert!(if exact { bitwise_equal(&y, &y2) } else { rel(&y, &y2) <= 1e-5 }, "I6 {m:?}");
        let want_type = config(m, r).peft_type;
        prop_assert_eq!(&back.config("default").unwrap().peft_type, &want_type);
        // I8.
        peft.merge_and_unload(true).unwrap();
        prop_assert!(rel(&c.layer.forward_t(&c.x, false), &unmerged) <= 1e-5, "I8 {m:?}");
    }
}

fn tensors(peft: &PeftModel) -> HashMap<String, Tensor> {
    peft.tensors("default")
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            (
                k.trim_start_matches("base_model.model.m.").to_string(),
                t.detach().to_kind(Kind::Double),
            )
        })
        .collect()
}

/// HUT's two readings against `diag(b) W diag(a)` and `W ⊙ (M_A M_B)ᵀ` in
/// float64, with γ and β; the diagonal reading depends on `M_A` only
/// through its row sums.
#[test]
fn hut_equals_its_closed_forms() {
    let _g = rng_lock();
    for form in [HutForm::Diag, HutForm::Hadamard] {
        let mut c = case(
            Kind_::Linear {
                inp: 6,
                out: 5,
                bias: true,
            },
            4,
        );
        let vars = c.vs.variables();
        let (w, b0) = (
            vars["m.weight"].to_kind(Kind::Double),
            vars["m.bias"].to_kind(Kind::Double),
        );
        let mut peft = PeftModel::new(&mut c.vs, &c.layers);
        peft.add_adapter(
            "default",
            LoraConfig {
                hut_scale_shift: true,
                ..LoraConfig::hut(3, form, &["m"])
            },
        )
        .unwrap();
        perturb(&peft, "default");
        let t = tensors(&peft);
        let (ma, mb) = (&t["hut_A"], &t["hut_B"]);
        let f = match form {
            HutForm::Diag => {
                let a = ma.sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
                let b = mb.sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
                b.unsqueeze(1) * a.unsqueeze(0)
            }
            HutForm::Hadamard => ma.matmul(mb).tr(),
        };
        let w2 = &w * f;
        let x = c.x.to_kind(Kind::Double);
        let want = x.matmul(&w2.tr()) * &t["hut_gamma"] + &b0 + &t["hut_beta"];
        let got = c.layer.forward_t(&c.x, false).to_kind(Kind::Double);
        assert!(rel(&got, &want) < 1e-5, "{form:?}: {:e}", rel(&got, &want));
        if form == HutForm::Diag {
            // Move mass between M_A's columns, keeping row sums: same output.
            let (_, mut a) = peft
                .tensors("default")
                .unwrap()
                .into_iter()
                .find(|(k, _)| k.ends_with("hut_A"))
                .unwrap();
            let shift = Tensor::randn([6], (Kind::Float, graft_tensor::tch::Device::Cpu));
            graft_tensor::tch::no_grad(|| {
                let mut c0 = a.narrow(1, 0, 1);
                let mut c1 = a.narrow(1, 1, 1);
                let _ = c0.g_add_(&shift.unsqueeze(1));
                let _ = c1.g_sub_(&shift.unsqueeze(1));
                let _ = &mut a;
            });
            let again = c.layer.forward_t(&c.x, false).to_kind(Kind::Double);
            assert!(rel(&again, &got) < 1e-5);
        }
    }
}

/// FLoRA with `G = I` on a Linear layer is LoRA with `A = U_inᵀ`,
/// `B = U_out` and the same scale; on a grouped convolution the update has
/// the base's grouped shape (the official code's failure) and merges.
#[test]
fn flora_with_identity_core_is_lora_and_handles_groups() {
    let _g = rng_lock();
    let mut c = case(
        Kind_::Linear {
            inp: 7,
            out: 5,
            bias: true,
        },
        9,
    );
    let mut peft = PeftModel::new(&mut c.vs, &c.layers);
    peft.add_adapter("default", LoraConfig::flora(3, 2.5, &["m"]))
        .unwrap();
    perturb(&peft, "default");
    for (k, mut t) in peft.tensors("default").unwrap() {
        if k.ends_with("flora_G") {
            graft_tensor::tch::no_grad(|| t.copy_(&Tensor::eye(3, (Kind::Float, t.device()))));
        }
    }
    let t = tensors(&peft);
    let (u_in, u_out) = (&t["flora_U.0"], &t["flora_U.1"]);
    let base = peft
        .with_adapters_disabled(|| c.layer.forward_t(&c.x, false))
        .unwrap()
        .to_kind(Kind::Double);
    let x = c.x.to_kind(Kind::Double);
    let lora = x.matmul(u_in).matmul(&u_out.tr()) * 2.5;
    let got = c.layer.forward_t(&c.x, false).to_kind(Kind::Double);
    assert!(rel(&(&got - &base), &lora) < 1e-5);
    // Depthwise: 4 groups of 1 channel.
    let k = Kind_::Conv2d {
        inp: 4,
        out: 8,
        k: 3,
        stride: 1,
        padding: 1,
        dilation: 1,
        groups: 4,
    };
    let mut c = case(k, 2);
    let mut peft = PeftModel::new(&mut c.vs, &c.layers);
    peft.add_adapter("default", LoraConfig::flora(2, 1.0, &["m"]))
        .unwrap();
    let t = tensors(&peft);
    assert_eq!(
        t["flora_U.0"].size(),
        [1, 1],
        "the in-mode is in/groups, its rank clamped"
    );
    perturb(&peft, "default");
    let unmerged = c.layer.forward_t(&c.x, false);
    peft.merge(None, true).unwrap();
    assert!(rel(&c.layer.forward_t(&c.x, false), &unmerged) < 1e-5);
}
