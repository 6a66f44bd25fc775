//! The laws every adapter keeps (spec `peft.md` §0, I1-I8), over random
//! layer kinds, shapes, ranks, scales and seeds, and the LoRA and DoRA
//! outputs against a float64 re-computation.

use graft_peft::config::InitLora;
use graft_peft::{LoadOptions, LoraConfig, PeftModel};
use graft_tensor::output::OutputRules;
use graft_tensor::tch::{Kind, Tensor};
use graft_tensor::testing::{bitwise_equal, proptest_config, rng_lock};
use proptest::prelude::*;

mod common;
use common::*;

proptest! {
    #![proptest_config(proptest_config(128))]

    /// I1, I4, I5, I7: an adapter at init is the base, bit for bit; so is a
    /// disabled one after training moved it; gradients reach the adapter
    /// only; the trainable count is the closed form.
    #[test]
    fn init_is_base_disabled_is_base_and_only_adapters_train(
        k in kind(), r in 1i64..4, alpha in 0.5f64..16.0, rslora in any::<bool>(), dora in any::<bool>(), seed in 0i64..1000,
    ) {
        let _g = rng_lock();
        let dora = dora && k.dora_ok();
        let mut c = case(k, seed);
        let base = c.layer.forward_t(&c.x, false);
        let mut peft = PeftModel::new(&mut c.vs, &c.layers);
        let r = rank(k, r);
        peft.add_adapter("default", config(r, alpha, rslora, dora)).unwrap();
        let y = c.layer.forward_t(&c.x, false);
        prop_assert!(bitwise_equal(&y, &base), "I1: {k:?}");
        prop_assert_eq!(peft.parameter_count().trainable, k.count(r, dora), "I7: {:?}", k);
        // I5: a loss's gradient reaches A and B, never the base.
        perturb(&peft, "default");
        c.layer.forward_t(&c.x, false).to_kind(Kind::Float).square().sum(Kind::Float).backward();
        for (name, t) in c.vs.variables() {
            prop_assert!(!t.requires_grad() && !t.grad().defined(), "I5: base `{}` has a gradient", name);
        }
        for (name, t) in peft.tensors("default").unwrap() {
            prop_assert!(t.grad().defined(), "I5: `{}` has no gradient", name);
        }
        // I4: disabled is the base, bit for bit.
        let off = peft.with_adapters_disabled(|| c.layer.forward_t(&c.x, false)).unwrap();
        prop_assert!(bitwise_equal(&off, &base), "I4: {k:?}");
    }

    /// I2, I3, I8: merged equals unmerged; unmerge restores every bit
    /// (exact mode) or within 4·eps·max|W| (plain); unload restores the
    /// layer and merge_and_unload leaves plain layers holding W + ΔW.
    #[test]
    fn merge_unmerge_and_unload(
        k in kind(), r in 1i64..4, alpha in 0.5f64..16.0, rslora in any::<bool>(), dora in any::<bool>(), seed in 0i64..1000, exact in any::<bool>(),
    ) {
        prop_assume!(k.mergeable());
        let _g = rng_lock();
        let dora = dora && k.dora_ok();
        let mut c = case(k, seed);
        let before = weights(&c.vs);
        let mut peft = PeftModel::new(&mut c.vs, &c.layers);
        peft.set_exact_unmerge(exact);
        peft.add_adapter("default", config(rank(k, r), alpha, rslora, dora)).unwrap();
        perturb(&peft, "default");
        let unmerged = c.layer.forward_t(&c.x, false);
        peft.merge(None, true).unwrap();
        let merged = c.layer.forward_t(&c.x, false);
        let at_merge = weights(&c.vs);
        prop_assert!(rel(&merged, &unmerged) <= 1e-5, "I2: {k:?}: {}", rel(&merged, &unmerged));
        // Merging a merged adapter again is skipped (PEFT: merge is idempotent).
        peft.merge(None, true).unwrap();
        prop_assert!(bitwise_equal(&c.layer.forward_t(&c.x, false), &merged));
        peft.unmerge().unwrap();
        for (((name, w0), (_, wm)), (_, w1)) in before.iter().zip(&at_merge).zip(weights(&c.vs)) {
            if exact {
                prop_assert!(bitwise_equal(w0, &w1), "I3 exact: `{}` of {:?}", name, k);
            } else {
                // The spec's 4·eps·max|W| holds while ΔW is no larger than W;
                // the rounding of W + ΔW is relative to the merged weight.
                let scale = w0.abs().max().double_value(&[]).max(wm.abs().max().double_value(&[]));
                let bound = 4.0 * f64::from(f32::EPSILON) * scale.max(1e-30);
                let err = (w0 - &w1).abs().max().double_value(&[]);
                prop_assert!(err <= bound, "I3: `{}` moved {:e} > {:e}", name, err, bound);
            }
        }
        // I8: unload gives the layer back as it is now; merge_and_unload W + ΔW.
        let again = c.layer.forward_t(&c.x, false);
        prop_assert!(rel(&again, &unmerged) <= 1e-5);
        let now = weights(&c.vs);
        peft.merge(None, true).unwrap();
        peft.unload().unwrap();
        for ((_, w0), (_, w1)) in now.iter().zip(weights(&c.vs)) {
            prop_assert!(!exact || bitwise_equal(w0, &w1), "I8 unload");
        }
        let plain = c.layer.forward_t(&c.x, false);
        prop_assert!(peft.with_adapters_disabled(|| bitwise_equal(&c.layer.forward_t(&c.x, false), &plain)).unwrap());
        peft.add_adapter("x", config(rank(k, r), alpha, rslora, dora)).unwrap();
        perturb(&peft, "x");
        let want = c.layer.forward_t(&c.x, false);
        peft.merge_and_unload(true).unwrap();
        prop_assert!(peft.adapter_names().is_empty());
        prop_assert!(rel(&c.layer.forward_t(&c.x, false), &want) <= 1e-5, "I8 merge_and_unload");
    }

    /// I6: save then load gives the same tensors, bit for bit, and the same outputs.
    #[test]
    fn save_then_load_is_identity(k in kind(), r in 1i64..4, dora in any::<bool>(), seed in 0i64..1000) {
        let _g = rng_lock();
        let dora = dora && k.dora_ok();
        let mut c = case(k, seed);
        let mut peft = PeftModel::new(&mut c.vs, &c.layers);
        peft.add_adapter("default", config(rank(k, r), 3.0, false, dora)).unwrap();
        peft.add_adapter("other", config(rank(k, r), 5.0, true, false)).unwrap();
        perturb(&peft, "default");
        perturb(&peft, "other");
        let tmp = tempfile::tempdir().unwrap();
        peft.save_pretrained(&tmp.path().join("a"), &OutputRules::new()).unwrap();
        let mut d = case(k, seed);
        let mut back = PeftModel::new(&mut d.vs, &d.layers);
        back.load_pretrained(&tmp.path().join("a"), LoadOptions::default()).unwrap();
        for name in ["default", "other"] {
            let (a, b) = (peft.tensors(name).unwrap(), back.tensors(name).unwrap());
            prop_assert_eq!(a.len(), b.len());
            for ((ka, ta), (kb, tb)) in a.iter().zip(&b) {
                prop_assert_eq!(ka, kb);
                prop_assert!(bitwise_equal(ta, tb), "`{}`", ka);
            }
            peft.set_adapter(&[name]).unwrap();
            back.set_adapter(&[name]).unwrap();
            prop_assert!(bitwise_equal(&c.layer.forward_t(&c.x, false), &d.layer.forward_t(&d.x, false)));
        }
    }
}

/// LoRA and DoRA on a Linear layer against a float64 re-computation of
/// the equations (spec §1.1, §1.6), with a bias and rsLoRA.
#[test]
fn linear_lora_and_dora_equal_the_float64_equations() {
    let _g = rng_lock();
    for (dora, rslora) in [(false, false), (false, true), (true, false), (true, true)] {
        let mut c = case(
            Kind_::Linear {
                inp: 6,
                out: 5,
                bias: true,
            },
            7,
        );
        let mut peft = PeftModel::new(&mut c.vs, &c.layers);
        let (r, alpha) = (3, 4.0);
        peft.add_adapter("default", config(r, alpha, rslora, dora))
            .unwrap();
        perturb(&peft, "default");
        let got = c.layer.forward_t(&c.x, false).to_kind(Kind::Double);
        let d = |t: &Tensor| t.detach().to_kind(Kind::Double);
        let vars = c.vs.variables();
        let (w, b) = (d(&vars["m.weight"]), d(&vars["m.bias"]));
        let t: std::collections::HashMap<String, Tensor> =
            peft.tensors("default").unwrap().into_iter().collect();
        let a = d(&t["base_model.model.m.lora_A.weight"]);
        let bb = d(&t["base_model.model.m.lora_B.weight"]);
        let s = if rslora {
            alpha / (r as f64).sqrt()
        } else {
            alpha / r as f64
        };
        let x = d(&c.x);
        let v = &w + bb.matmul(&a) * s;
        let want = if dora {
            let m = d(&t["base_model.model.m.lora_magnitude_vector"]);
            let g = m / v
                .square()
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
                .sqrt();
            x.matmul(&v.tr()) * g + &b
        } else {
            x.matmul(&v.tr()) + &b
        };
        let e = rel(&got, &want);
        assert!(e < 1e-5, "dora {dora} rslora {rslora}: {e:e}");
    }
}

/// Embedding LoRA: `A = 0`, `B ~ N(0, 1)` at init (PEFT's reversed roles);
/// `gaussian` gives `A ~ N(0, 1/r²)`; base-rewriting inits are refused.
#[test]
fn initialisations_follow_peft() {
    let _g = rng_lock();
    let mut c = case(Kind_::Embedding { num: 200, dim: 300 }, 1);
    let mut peft = PeftModel::new(&mut c.vs, &c.layers);
    peft.add_adapter("default", config(4, 8.0, false, false))
        .unwrap();
    let t: std::collections::HashMap<String, Tensor> =
        peft.tensors("default").unwrap().into_iter().collect();
    assert_eq!(
        t["base_model.model.m.lora_embedding_A"]
            .abs()
            .max()
            .double_value(&[]),
        0.0
    );
    let std = t["base_model.model.m.lora_embedding_B"]
        .std(true)
        .double_value(&[]);
    assert!((std - 1.0).abs() < 0.1, "{std}");
    let mut c = case(
        Kind_::Linear {
            inp: 400,
            out: 300,
            bias: false,
        },
        2,
    );
    let mut peft = PeftModel::new(&mut c.vs, &c.layers);
    peft.add_adapter("default", config(4, 8.0, false, false))
        .unwrap();
    let mut g = config(8, 8.0, false, false);
    g.init_lora_weights = InitLora::Named("gaussian".into());
    peft.add_adapter("g", g).unwrap();
    let t: std::collections::HashMap<String, Tensor> =
        peft.tensors("default").unwrap().into_iter().collect();
    let a = &t["base_model.model.m.lora_A.weight"];
    let bound = 1.0 / 400f64.sqrt();
    assert!(a.abs().max().double_value(&[]) <= bound);
    assert!(a.abs().max().double_value(&[]) > 0.9 * bound);
    assert_eq!(
        t["base_model.model.m.lora_B.weight"]
            .abs()
            .max()
            .double_value(&[]),
        0.0
    );
    let t: std::collections::HashMap<String, Tensor> =
        peft.tensors("g").unwrap().into_iter().collect();
    let std = t["base_model.model.m.lora_A.weight"]
        .std(true)
        .double_value(&[]);
    assert!((std - 1.0 / 8.0).abs() < 0.01, "{std}");
    let mut bad = config(4, 8.0, false, false);
    bad.init_lora_weights = InitLora::Named("pissa".into());
    let err = peft.add_adapter("p", bad).unwrap_err().to_string();
    assert!(
        err.contains("init_lora_weights") && err.contains("rewrites the base"),
        "{err}"
    );
}

/// Adapter management errors change nothing and name what is wrong.
#[test]
fn names_activation_and_deletion() {
    let _g = rng_lock();
    let mut c = case(
        Kind_::Linear {
            inp: 4,
            out: 3,
            bias: true,
        },
        3,
    );
    let mut peft = PeftModel::new(&mut c.vs, &c.layers);
    peft.add_adapter("a", config(2, 4.0, false, false)).unwrap();
    peft.add_adapter("b", config(2, 4.0, false, false)).unwrap();
    assert_eq!(peft.active_adapters(), ["a"]);
    for bad in ["a", "", "x.y", "lora_A", "__base__"] {
        assert!(
            peft.add_adapter(bad, config(2, 4.0, false, false)).is_err(),
            "`{bad}`"
        );
    }
    assert!(
        peft.add_adapter("c", LoraConfig::new(2, 4.0, &["nothing"]))
            .unwrap_err()
            .to_string()
            .contains("matched no adaptable layer")
    );
    assert!(peft.set_adapter(&["zz"]).is_err());
    assert_eq!(peft.active_adapters(), ["a"]);
    perturb(&peft, "a");
    perturb(&peft, "b");
    let ya = c.layer.forward_t(&c.x, false);
    peft.set_adapter(&["a", "b"]).unwrap();
    let yab = c.layer.forward_t(&c.x, false);
    peft.set_adapter(&["b"]).unwrap();
    let yb = c.layer.forward_t(&c.x, false);
    let base = peft
        .with_adapters_disabled(|| c.layer.forward_t(&c.x, false))
        .unwrap();
    // Active adapters add up.
    assert!(rel(&(&ya + &yb - &base), &yab) < 1e-5);
    // The optimizer store holds the active adapters only.
    assert_eq!(peft.var_store().trainable_variables().len(), 2);
    peft.merge(Some(&["b"]), true).unwrap();
    assert!(
        peft.delete_adapter("b").is_err(),
        "deleting a merged adapter is refused"
    );
    peft.unmerge().unwrap();
    peft.delete_adapter("b").unwrap();
    assert_eq!(peft.adapter_names(), ["a"]);
    assert!(peft.active_adapters().is_empty());
    assert!(bitwise_equal(&c.layer.forward_t(&c.x, false), &base));
    // A non-finite adapter is refused by a safe merge, which changes nothing.
    peft.set_adapter(&["a"]).unwrap();
    let w0 = weights(&c.vs);
    for (_, mut t) in peft.tensors("a").unwrap() {
        graft_tensor::tch::no_grad(|| {
            let _ = t.fill_(f64::NAN);
        });
    }
    let err = peft.merge(None, true).unwrap_err().to_string();
    assert!(err.contains("non-finite") && err.contains("`m`"), "{err}");
    for ((_, a), (_, b)) in w0.iter().zip(weights(&c.vs)) {
        assert!(bitwise_equal(a, &b));
    }
}
