//! SGTM on a CNN's channels (graft-nn's `SmallCnn` through `RoutedCnn`):
//! the designated count, retain mode ignoring the designated entries, the
//! ablated model equal to retain mode, forget steps leaving the rest alone,
//! and the C1-C5 equivalence.

use graft_nn::models::{CnnConfig, CnnDesignated, Route, SmallCnn};
use graft_tensor::tch::nn::VarStore;
use graft_tensor::tch::{Device, Kind, Tensor};
use graft_tensor::testing::{bitwise_equal, rng_lock};
use graft_unlearn::sgtm::plan::{Arm, Labelling, domain_order, lr_at, modes};
use graft_unlearn::sgtm::{
    BatchMode, RoutedCnn, RoutedModel, SgtmConfig, SgtmTrainer, ablate_designated,
    cnn_designated_count,
};
use graft_unlearn::trainable_parameters;

mod common;

fn config() -> CnnConfig {
    CnnConfig {
        channels: vec![6, 8],
        hidden: 10,
        ..CnnConfig::for_8x8(4)
    }
}

fn designation() -> CnnDesignated {
    CnnDesignated {
        channels: vec![2, 3],
        units: 4,
    }
}

fn net(seed: i64) -> (VarStore, SmallCnn) {
    graft_tensor::tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let m = SmallCnn::new(&vs.root(), &config()).unwrap();
    (vs, m)
}

fn batch(seed: i64) -> (Tensor, Tensor) {
    graft_tensor::tch::manual_seed(500 + seed);
    (
        Tensor::randn([5, 1, 8, 8], (Kind::Float, Device::Cpu)),
        Tensor::randint(4, [5], (Kind::Int64, Device::Cpu)),
    )
}

fn params(vs: &VarStore) -> Vec<(String, Tensor)> {
    trainable_parameters(vs, &[])
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect()
}

fn rest_equal(model: &RoutedCnn, a: &[(String, Tensor)], b: &[(String, Tensor)]) -> bool {
    let masks = model.designated();
    a.iter()
        .zip(b)
        .all(|((name, x), (_, y))| match masks.get(name) {
            Some(d) => bitwise_equal(&x.masked_select(&d.eq(0.0)), &y.masked_select(&d.eq(0.0))),
            None => bitwise_equal(x, y),
        })
}

#[test]
fn designated_count_matches_the_formula() {
    for (ch, units) in [
        (vec![2, 3], 4),
        (vec![0, 0], 0),
        (vec![6, 8], 10),
        (vec![1, 0], 2),
    ] {
        let d = CnnDesignated {
            channels: ch,
            units,
        };
        let masks = graft_unlearn::sgtm::cnn_designated(&config(), &d);
        let total: f64 = masks
            .values()
            .map(|t| t.sum(Kind::Double).double_value(&[]))
            .sum();
        assert_eq!(total as i64, cnn_designated_count(&config(), &d), "{d:?}");
    }
}

#[test]
fn retain_mode_ignores_designated_channels_and_equals_the_ablated_model() {
    let _g = rng_lock();
    for seed in 0..8 {
        let (vs, cnn) = net(seed);
        let model = RoutedCnn {
            cnn,
            designated: designation(),
        };
        let (x, _) = batch(seed);
        let retain = model.forward_routed(&x, Route::AblateDesignated).unwrap();
        let masks = model.designated();
        common::perturb_designated(&vs, &masks);
        assert!(
            bitwise_equal(
                &retain,
                &model.forward_routed(&x, Route::AblateDesignated).unwrap()
            ),
            "seed {seed}"
        );
        ablate_designated(&model, &trainable_parameters(&vs, &[])).unwrap();
        let ablated = model.forward_routed(&x, Route::Normal).unwrap();
        assert!(
            bitwise_equal(&retain, &ablated),
            "seed {seed}: {}",
            (&retain - &ablated).abs().max().double_value(&[])
        );
    }
}

#[test]
fn forget_steps_change_only_designated_entries_and_c1_to_c5_hold() {
    let _g = rng_lock();
    let (vs_a, a) = net(3);
    let (vs_b, b) = net(3);
    let (ma, mb) = (
        RoutedCnn {
            cnn: a,
            designated: designation(),
        },
        RoutedCnn {
            cnn: b,
            designated: designation(),
        },
    );
    let domains = domain_order(6, 10, 1);
    let plan = modes(
        &domains,
        Arm::Masked,
        &Labelling {
            recall: 1.0,
            precision: 1.0,
            retain_perc: 1.0,
        },
        2,
    );
    let ce = |m: &RoutedCnn| m.designated();
    assert!(!ce(&ma).is_empty());
    // A classifier's loss through SgtmTrainer: targets are class ids, logits [n, classes].
    let mut sgtm = SgtmTrainer::new(&ma, &vs_a, SgtmConfig::default()).unwrap();
    let mut alone = SgtmTrainer::new(&mb, &vs_b, SgtmConfig::default()).unwrap();
    for (step, mode) in plan.iter().enumerate() {
        let (x, y) = batch(step as i64);
        let lr = lr_at(step, plan.len(), 3, 1e-2);
        let before = params(&vs_a);
        sgtm.step(&x, &y, *mode, lr).unwrap();
        if *mode == BatchMode::Forget {
            assert!(
                rest_equal(&ma, &before, &params(&vs_a)),
                "step {step}: a forget step changed a non-designated entry"
            );
        } else {
            alone.step(&x, &y, BatchMode::Retain, lr).unwrap();
        }
    }
    assert!(
        rest_equal(&ma, &params(&vs_a), &params(&vs_b)),
        "C1-C5: the rest equals training on retain alone"
    );
}
