//! SGTM's laws (spec `unlearning.md` §4, property tests 1-7) on a small
//! TinyLM: masking leaves the rest bit-identical, retain mode ignores the
//! designated parameters, ablation equals retain mode, the C1-C5 exact
//! equivalence, the ZeroGradOnly pitfall, gradient routing vs SGTM, and
//! the designated count.

use graft_nn::models::{Route, TinyLm, TinyLmConfig};
use graft_tensor::tch::nn::VarStore;
use graft_tensor::tch::{Device, Kind, Tensor};
use graft_tensor::testing::{bitwise_equal, proptest_config, rng_lock};
use graft_unlearn::sgtm::plan::{Arm, Domain, Labelling, domain_order, lr_at, modes};
use graft_unlearn::sgtm::{
    AdamW, BatchMode, MaskRule, RoutedModel, Semantics, SgtmConfig, SgtmTrainer, Variant,
    ablate_designated, tiny_lm_designated_count,
};
use proptest::prelude::*;

mod common;

fn config(heads: i64, dh: i64, units: i64) -> TinyLmConfig {
    TinyLmConfig {
        vocab: 11,
        context: 6,
        width: 8,
        layers: 2,
        heads,
        mlp: 12,
        designated_heads: dh,
        designated_units: units,
    }
}

fn model(seed: i64, c: &TinyLmConfig) -> (VarStore, TinyLm) {
    graft_tensor::tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let m = TinyLm::new(&vs.root(), c).unwrap();
    (vs, m)
}

fn batch(seed: i64) -> (Tensor, Tensor) {
    graft_tensor::tch::manual_seed(1000 + seed);
    let t = Tensor::randint(11, [3, 6], (Kind::Int64, Device::Cpu));
    let y = Tensor::randint(11, [3, 6], (Kind::Int64, Device::Cpu));
    (t, y)
}

fn copy_params(vs: &VarStore) -> Vec<(String, Tensor)> {
    graft_unlearn::trainable_parameters(vs, &[])
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect()
}

/// Non-designated entries of `a` and `b` (by name) are bit-identical.
fn rest_equal(m: &TinyLm, a: &[(String, Tensor)], b: &[(String, Tensor)]) -> Result<(), String> {
    let masks = m.designated();
    for ((name, x), (_, y)) in a.iter().zip(b) {
        let (x, y) = match masks.get(name) {
            Some(d) => {
                let keep = d.eq(0.0);
                (x.masked_select(&keep), y.masked_select(&keep))
            }
            None => (x.shallow_clone(), y.shallow_clone()),
        };
        if !bitwise_equal(&x, &y) {
            return Err(format!("`{name}` differs outside the designated entries"));
        }
    }
    Ok(())
}

#[test]
fn designated_count_matches_the_formula() {
    for (h, dh, u) in [(2, 1, 4), (4, 2, 0), (2, 0, 12), (1, 1, 3)] {
        let c = config(h, dh, u);
        let (_, m) = model(0, &c);
        let total: f64 = m
            .designated()
            .values()
            .map(|t| t.sum(Kind::Double).double_value(&[]))
            .sum();
        assert_eq!(total as i64, tiny_lm_designated_count(&c), "{c:?}");
    }
}

proptest! {
    #![proptest_config(proptest_config(24))]

    /// (1) a forget step under strict + SkipMasked changes no non-designated
    /// entry of the parameters or of the optimiser state; (5) under
    /// ZeroGradOnly with AdamW it does (the documented pitfall).
    #[test]
    fn forget_steps_leave_the_rest_alone_only_under_skip_masked(seed in 0i64..1000, dh in 1i64..3, units in 1i64..12) {
        let _g = rng_lock();
        let c = config(2, dh.min(2), units);
        for semantics in [Semantics::SkipMasked, Semantics::ZeroGradOnly] {
            let (vs, m) = model(seed, &c);
            let cfg = SgtmConfig { rule: MaskRule::Strict, semantics, adam: AdamW::default(), variant: Variant::Sgtm };
            let mut tr = SgtmTrainer::new(&m, &vs, cfg).unwrap();
            for s in 0..2 {
                let (x, y) = batch(seed + s);
                tr.step(&x, &y, BatchMode::Default, 1e-2).unwrap();
            }
            let before = copy_params(&vs);
            let state: Vec<(String, Tensor)> = (0..before.len()).flat_map(|i| {
                let (mm, v, t) = tr.optimizer.state(i);
                let n = &before[i].0;
                [(n.clone(), mm.copy()), (n.clone(), v.copy()), (n.clone(), t.copy())]
            }).collect();
            let (x, y) = batch(seed + 7);
            tr.step(&x, &y, BatchMode::Forget, 1e-2).unwrap();
            let after = copy_params(&vs);
            match semantics {
                Semantics::SkipMasked => {
                    prop_assert!(rest_equal(&m, &before, &after).is_ok(), "{:?}", rest_equal(&m, &before, &after));
                    let state_after: Vec<(String, Tensor)> = (0..before.len()).flat_map(|i| {
                        let (mm, v, t) = tr.optimizer.state(i);
                        let n = &before[i].0;
                        [(n.clone(), mm.copy()), (n.clone(), v.copy()), (n.clone(), t.copy())]
                    }).collect();
                    prop_assert!(rest_equal(&m, &state, &state_after).is_ok(), "optimiser state: {:?}", rest_equal(&m, &state, &state_after));
                    // The designated entries did learn.
                    prop_assert!(rest_equal(&m, &before, &after).is_ok() && !before.iter().zip(&after).all(|(a, b)| bitwise_equal(&a.1, &b.1)));
                }
                Semantics::ZeroGradOnly => {
                    prop_assert!(rest_equal(&m, &before, &after).is_err(), "masked entries moved through momentum and weight decay");
                }
            }
        }
    }

    /// (2) retain-mode logits do not depend on the designated entries;
    /// (3) the ablated model's ordinary forward equals retain mode.
    #[test]
    fn retain_mode_ignores_designated_and_equals_the_ablated_model(seed in 0i64..1000, dh in 0i64..3, units in 0i64..12) {
        let _g = rng_lock();
        let c = config(2, dh.min(2), units);
        let (vs, m) = model(seed, &c);
        let (x, _) = batch(seed);
        let retain = m.forward_routed(&x, Route::AblateDesignated).unwrap();
        let masks = m.designated();
        common::perturb_designated(&vs, &masks);
        let perturbed = m.forward_routed(&x, Route::AblateDesignated).unwrap();
        prop_assert!(bitwise_equal(&retain, &perturbed), "(2) retain mode saw the designated entries");
        ablate_designated(&m, &graft_unlearn::trainable_parameters(&vs, &[])).unwrap();
        let ablated = m.forward_routed(&x, Route::Normal).unwrap();
        prop_assert!(bitwise_equal(&retain, &ablated), "(3) max diff {}", (&retain - &ablated).abs().max().double_value(&[]));
    }
}

/// (4) C1-C5: strict masks, SkipMasked, every retain batch in retain mode,
/// perfect labels, the LR indexed by global step: the non-designated
/// parameters end bit for bit as a model trained on the retain batches
/// alone with the designated parts ablated throughout.
#[test]
fn sgtm_equals_training_on_retain_alone_under_c1_to_c5() {
    let _g = rng_lock();
    let c = config(2, 1, 4);
    let (vs_a, a) = model(5, &c);
    let (vs_b, b) = model(5, &c);
    let domains = domain_order(8, 12, 3);
    let labelling = Labelling {
        recall: 1.0,
        precision: 1.0,
        retain_perc: 1.0,
    };
    let plan = modes(&domains, Arm::Masked, &labelling, 4);
    assert!(
        plan.iter()
            .zip(&domains)
            .all(|(m, d)| (*d == Domain::Forget) == (*m == BatchMode::Forget))
    );
    let mut sgtm = SgtmTrainer::new(&a, &vs_a, SgtmConfig::default()).unwrap();
    let mut alone = SgtmTrainer::new(&b, &vs_b, SgtmConfig::default()).unwrap();
    for (step, mode) in plan.iter().enumerate() {
        let lr = lr_at(step, plan.len(), 4, 1e-2);
        let (x, y) = batch(step as i64);
        sgtm.step(&x, &y, *mode, lr).unwrap();
        if *mode == BatchMode::Retain {
            alone.step(&x, &y, BatchMode::Retain, lr).unwrap();
        }
    }
    let (pa, pb) = (copy_params(&vs_a), copy_params(&vs_b));
    rest_equal(&a, &pa, &pb).unwrap();
    assert!(
        !pa.iter().zip(&pb).all(|(x, y)| bitwise_equal(&x.1, &y.1)),
        "the designated entries differ (SGTM learnt the forget batches there)"
    );
    // Breaking C2 (the reference mask rule) breaks the equivalence.
    let (vs_c, cm) = model(5, &c);
    let mut reference = SgtmTrainer::new(
        &cm,
        &vs_c,
        SgtmConfig {
            rule: MaskRule::Reference,
            ..SgtmConfig::default()
        },
    )
    .unwrap();
    for (step, mode) in plan.iter().enumerate() {
        let (x, y) = batch(step as i64);
        reference
            .step(&x, &y, *mode, lr_at(step, plan.len(), 4, 1e-2))
            .unwrap();
    }
    assert!(rest_equal(&cm, &copy_params(&vs_c), &pb).is_err());
}

/// (6) gradient routing leaves gradients on the output columns of the
/// other units; SGTM's forget step never changes them.
#[test]
fn gradient_routing_keeps_gradients_where_sgtm_masks_them() {
    let _g = rng_lock();
    let c = config(2, 1, 4);
    let (vs, m) = model(9, &c);
    let (x, y) = batch(1);
    let logits = m.forward_routed(&x, Route::DetachOthers).unwrap();
    graft_unlearn::sgtm::lm_loss(&logits, &y)
        .unwrap()
        .backward();
    let w_out = &vs.variables()["blocks.0.mlp.fc_out.weight"];
    let retain_cols = w_out.grad().narrow(1, 0, 8);
    assert!(
        retain_cols.abs().sum(Kind::Double).double_value(&[]) > 0.0,
        "GR: retain columns of W_out get gradients"
    );
    let w_in = &vs.variables()["blocks.0.mlp.fc_in.weight"];
    assert_eq!(
        w_in.grad()
            .narrow(0, 0, 8)
            .abs()
            .sum(Kind::Double)
            .double_value(&[]),
        0.0,
        "GR: no gradient through retain activations"
    );
    let (vs2, m2) = model(9, &c);
    let before = vs2.variables()["blocks.0.mlp.fc_out.weight"].copy();
    let mut tr = SgtmTrainer::new(
        &m2,
        &vs2,
        SgtmConfig {
            rule: MaskRule::Reference,
            ..SgtmConfig::default()
        },
    )
    .unwrap();
    tr.step(&x, &y, BatchMode::Forget, 1e-2).unwrap();
    let after = vs2.variables()["blocks.0.mlp.fc_out.weight"].copy();
    assert!(
        bitwise_equal(&before.narrow(1, 0, 8), &after.narrow(1, 0, 8)),
        "SGTM: retain columns of W_out unchanged"
    );
    assert!(
        !bitwise_equal(&before.narrow(1, 8, 4), &after.narrow(1, 8, 4)),
        "SGTM: designated columns learn"
    );
}

#[test]
fn modes_follow_labels_and_noise() {
    let domains = domain_order(400, 1200, 1);
    let l = Labelling {
        recall: 0.7,
        precision: 1.0,
        retain_perc: 0.25,
    };
    let m = modes(&domains, Arm::Masked, &l, 2);
    let forget_flagged = m
        .iter()
        .zip(&domains)
        .filter(|(m, d)| **d == Domain::Forget && **m == BatchMode::Forget)
        .count();
    assert!(
        (forget_flagged as f64 / 400.0 - 0.7).abs() < 0.07,
        "{forget_flagged}"
    );
    let retain_mode = m.iter().filter(|m| **m == BatchMode::Retain).count() as f64 / 1200.0;
    assert!((retain_mode - 0.25).abs() < 0.05, "{retain_mode}");
    let filter = modes(&domains, Arm::Filter, &l, 2);
    assert_eq!(
        filter.iter().filter(|m| **m == BatchMode::Skip).count(),
        forget_flagged,
        "same seed, same detections"
    );
    let noisy = modes(
        &domains,
        Arm::Masked,
        &Labelling {
            recall: 1.0,
            precision: 0.8,
            retain_perc: 0.0,
        },
        3,
    );
    let flagged = noisy.iter().filter(|m| **m == BatchMode::Forget).count() as f64;
    assert!(
        (400.0 / flagged - 0.8).abs() < 0.05,
        "precision {}",
        400.0 / flagged
    );
    assert!(
        modes(&domains, Arm::NoFilter, &l, 2)
            .iter()
            .all(|m| *m == BatchMode::Default)
    );
}
