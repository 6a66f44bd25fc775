//! SSD's laws (spec `unlearning.md` §2, property tests 1-7): on random
//! tensors for the dampening rule, and on small models for the importances.

use graft_nn::Dataset;
use graft_tensor::tch::nn::{self, Module, ModuleT, VarStore};
use graft_tensor::tch::{Device, Kind, Tensor};
use graft_tensor::testing::{bitwise_equal, proptest_config, rng_lock};
use graft_unlearn::dampen::dampen_tensor;
use graft_unlearn::importance::{
    ImportanceConfig, ImportanceLoss, ImportanceMode, Importances, importances,
};
use graft_unlearn::{ForgetRequest, Ssd, SsdConfig, Unlearner};
use proptest::prelude::*;

/// Parameters and two non-negative importances of one length, some exactly 0.
fn triple() -> impl Strategy<Value = (Vec<f32>, Vec<f32>, Vec<f32>)> {
    (1usize..40).prop_flat_map(|n| {
        let imp = prop_oneof![1 => Just(0.0f32), 4 => 0.0f32..10.0, 1 => 1e-12f32..1e-6];
        (
            proptest::collection::vec(-5.0f32..5.0, n),
            proptest::collection::vec(imp.clone(), n),
            proptest::collection::vec(imp, n),
        )
    })
}

fn t(v: &[f32]) -> Tensor {
    Tensor::from_slice(v)
}

fn vals(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t).unwrap()
}

proptest! {
    #![proptest_config(proptest_config(256))]

    /// 1-3: α = ∞ changes nothing; no entry grows or flips sign; unselected entries are bit-identical.
    #[test]
    fn dampening_never_grows_flips_or_touches_unselected(
        (theta, full, forget) in triple(), alpha in 0.01f64..20.0, lambda in 0.0f64..20.0,
    ) {
        let (th, id, ifg) = (t(&theta), t(&full), t(&forget));
        let (same, sel) = dampen_tensor(&th, &id, &ifg, f64::INFINITY, lambda).unwrap();
        prop_assert!(bitwise_equal(&same, &th));
        prop_assert_eq!(sel.sum(Kind::Int64).int64_value(&[]), 0);
        let (new, sel) = dampen_tensor(&th, &id, &ifg, alpha, lambda).unwrap();
        let sel: Vec<bool> = Vec::<bool>::try_from(&sel).unwrap();
        for (i, (&a, &b)) in theta.iter().zip(&vals(&new)).enumerate() {
            prop_assert!(b.is_finite());
            prop_assert!(b.abs() <= a.abs(), "entry {i} grew: {a} -> {b}");
            prop_assert!(b == 0.0 || b.signum() == a.signum(), "entry {i} flipped: {a} -> {b}");
            let expect_sel = (forget[i] as f64) > (alpha as f32 * full[i]) as f64;
            prop_assert_eq!(sel[i], expect_sel, "entry {}: selection", i);
            if !sel[i] {
                prop_assert_eq!(a.to_bits(), b.to_bits(), "unselected entry {} changed", i);
            } else {
                // β = min(λ I_D / I_f, 1), in f64 for the oracle.
                let beta = (lambda * full[i] as f64 / forget[i] as f64).min(1.0);
                prop_assert!((b as f64 - beta * a as f64).abs() <= 1e-6 * a.abs() as f64 + 1e-30, "entry {i}: {b} vs β·θ = {}", beta * a as f64);
            }
        }
    }

    /// 4: S(α₂) ⊆ S(α₁) for α₁ < α₂; |θ'| non-decreasing in λ; λ = 0 zeroes exactly S.
    #[test]
    fn monotone_in_alpha_and_lambda(
        (theta, full, forget) in triple(), a1 in 0.01f64..10.0, da in 0.0f64..10.0, l1 in 0.0f64..5.0, dl in 0.0f64..5.0,
    ) {
        let (th, id, ifg) = (t(&theta), t(&full), t(&forget));
        let (_, s1) = dampen_tensor(&th, &id, &ifg, a1, l1).unwrap();
        let (_, s2) = dampen_tensor(&th, &id, &ifg, a1 + da, l1).unwrap();
        let (s1, s2): (Vec<bool>, Vec<bool>) = (Vec::try_from(&s1).unwrap(), Vec::try_from(&s2).unwrap());
        for i in 0..theta.len() {
            prop_assert!(!s2[i] || s1[i], "entry {i} selected at the larger alpha only");
        }
        let lo = vals(&dampen_tensor(&th, &id, &ifg, a1, l1).unwrap().0);
        let hi = vals(&dampen_tensor(&th, &id, &ifg, a1, l1 + dl).unwrap().0);
        for i in 0..theta.len() {
            prop_assert!(hi[i].abs() >= lo[i].abs(), "entry {i}: larger lambda dampened more");
        }
        let zero = vals(&dampen_tensor(&th, &id, &ifg, a1, 0.0).unwrap().0);
        for i in 0..theta.len() {
            if s1[i] { prop_assert_eq!(zero[i], 0.0) } else { prop_assert_eq!(zero[i].to_bits(), theta[i].to_bits()) }
        }
    }

    /// 5: scaling both importances by c > 0 gives the same result up to rounding
    /// (selection may flip only where I_f and α·I_D tie to within rounding).
    #[test]
    fn scale_invariant((theta, full, forget) in triple(), alpha in 0.1f64..10.0, lambda in 0.0f64..5.0, log_c in -6.0f64..6.0) {
        let c = 10f64.powf(log_c);
        let (th, id, ifg) = (t(&theta), t(&full), t(&forget));
        let a = vals(&dampen_tensor(&th, &id, &ifg, alpha, lambda).unwrap().0);
        let b = vals(&dampen_tensor(&th, &(&id * c), &(&ifg * c), alpha, lambda).unwrap().0);
        for i in 0..theta.len() {
            let near_tie = ((forget[i] as f64) - alpha * full[i] as f64).abs() <= 1e-5 * (forget[i] as f64).max(alpha * full[i] as f64);
            let tiny = (full[i] as f64 * c) < 1e-30 || (forget[i] as f64 * c) < 1e-30;
            if !near_tie && !tiny {
                prop_assert!((a[i] - b[i]).abs() <= 1e-5 * theta[i].abs() + 1e-30, "entry {i}: {} vs {}", a[i], b[i]);
            }
        }
    }
}

#[test]
fn bad_constants_are_refused() {
    let x = Tensor::ones([3], (Kind::Float, Device::Cpu));
    for (a, l) in [
        (0.0, 1.0),
        (-1.0, 1.0),
        (f64::NAN, 1.0),
        (1.0, -0.5),
        (1.0, f64::INFINITY),
    ] {
        let err = dampen_tensor(&x, &x, &x, a, l).unwrap_err().to_string();
        assert!(err.contains("alpha") || err.contains("lambda"), "{err}");
    }
}

/// A softmax-regression model `logits = W x + b` with a buffer, and data.
#[derive(Debug)]
struct Toy {
    vs: VarStore,
    linear: nn::Linear,
    buffer: Tensor,
}

impl Toy {
    fn new(seed: i64, d: i64, k: i64) -> Self {
        graft_tensor::tch::manual_seed(seed);
        let vs = VarStore::new(Device::Cpu);
        let linear = nn::linear(vs.root() / "fc", d, k, Default::default());
        let buffer = vs.root().var("running", &[d], nn::Init::Const(0.5));
        let mut buffer = buffer;
        let _ = buffer.requires_grad_(false);
        Self { vs, linear, buffer }
    }
}

impl ModuleT for Toy {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        self.linear.forward(xs)
    }
}

fn data(seed: i64, n: i64, d: i64, k: i64) -> Dataset {
    graft_tensor::tch::manual_seed(seed);
    let x = Tensor::randn([n, d], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(k, [n], (Kind::Int64, Device::Cpu));
    Dataset::new(x, y, k, "toy").unwrap()
}

/// f64 closed form of softmax-regression gradients: ∇W = (p − e_y) xᵀ, ∇b = p − e_y.
fn closed_form(
    toy: &Toy,
    data: &Dataset,
    mode: ImportanceMode,
    batch: usize,
) -> (Vec<f64>, Vec<f64>) {
    let w = toy.linear.ws.to_kind(Kind::Double);
    let b = toy.linear.bs.as_ref().unwrap().to_kind(Kind::Double);
    let x = data.inputs.to_kind(Kind::Double);
    let k = data.num_classes;
    let onehot = data.labels.one_hot(k).to_kind(Kind::Double);
    let p = (x.matmul(&w.tr()) + &b).softmax(-1, Kind::Double);
    let r = p - onehot; // [n, k]
    let n = data.len() as i64;
    let (gw, gb) = match mode {
        ImportanceMode::PerSample => {
            let gw = r.unsqueeze(2) * x.unsqueeze(1); // [n, k, d]
            (
                gw.square().mean_dim(0, false, Kind::Double),
                r.square().mean_dim(0, false, Kind::Double),
            )
        }
        ImportanceMode::Batch => {
            let mut sw = w.zeros_like();
            let mut sb = b.zeros_like();
            let mut batches = 0.0;
            let mut start = 0;
            while start < n {
                let m = (batch as i64).min(n - start);
                let rb = r.narrow(0, start, m);
                let xb = x.narrow(0, start, m);
                let gw = rb.tr().matmul(&xb) / m as f64;
                let gb = rb.mean_dim(0, false, Kind::Double);
                sw += gw.square();
                sb += gb.square();
                batches += 1.0;
                start += m;
            }
            (sw / batches, sb / batches)
        }
    };
    (
        Vec::try_from(&gw.flatten(0, -1)).unwrap(),
        Vec::try_from(&gb).unwrap(),
    )
}

#[test]
fn importances_match_the_closed_form_in_both_modes() {
    let _g = rng_lock();
    let toy = Toy::new(3, 5, 4);
    let d = data(4, 23, 5, 4);
    for (mode, batch) in [
        (ImportanceMode::PerSample, 1),
        (ImportanceMode::Batch, 8),
        (ImportanceMode::Batch, 23),
    ] {
        let cfg = ImportanceConfig {
            mode,
            loss: ImportanceLoss::CrossEntropy,
            batch_size: batch,
        };
        let imp = importances(&toy, &toy.vs, &d, &[], &cfg).unwrap();
        assert_eq!(
            imp.tensors.keys().collect::<Vec<_>>(),
            ["fc.bias", "fc.weight"],
            "the buffer is not a parameter"
        );
        let (gw, gb) = closed_form(&toy, &d, mode, batch);
        for (got, want, name) in [
            (&imp.tensors["fc.weight"], gw, "W"),
            (&imp.tensors["fc.bias"], gb, "b"),
        ] {
            let got: Vec<f32> = Vec::try_from(&got.flatten(0, -1)).unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (*g as f64 - w).abs() <= 1e-5 * w.abs() + 1e-9,
                    "{mode:?}/{batch} {name}: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn per_sample_importance_of_the_union_is_the_count_weighted_mean_and_the_bound_holds() {
    let _g = rng_lock();
    let toy = Toy::new(5, 6, 3);
    let retain = data(6, 30, 6, 3);
    let forget = data(7, 10, 6, 3);
    let cfg = ImportanceConfig {
        mode: ImportanceMode::PerSample,
        loss: ImportanceLoss::CrossEntropy,
        batch_size: 1,
    };
    let i_r = importances(&toy, &toy.vs, &retain, &[], &cfg).unwrap();
    let i_f = importances(&toy, &toy.vs, &forget, &[], &cfg).unwrap();
    let all = retain.concat(&forget, "all").unwrap();
    let i_d = importances(&toy, &toy.vs, &all, &[], &cfg).unwrap();
    let mean = Importances::weighted_mean(&i_r, &i_f).unwrap();
    for (name, t) in &i_d.tensors {
        let diff = (t - &mean.tensors[name]).abs().max().double_value(&[]);
        assert!(
            diff <= 1e-6 * t.abs().max().double_value(&[]),
            "{name}: {diff}"
        );
    }
    // α ≥ |D|/|D_f| = 4 selects nothing (just above, for rounding); below it something.
    let before: Vec<(String, Tensor)> = toy
        .vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.copy()))
        .collect();
    let ssd = Ssd::new(SsdConfig::new(4.0 * (1.0 + 1e-5), 1.0).per_sample()).unwrap();
    let (report, _, _) = ssd
        .run(&ForgetRequest {
            model: &toy,
            vs: &toy.vs,
            forget: &forget,
            retain: &retain,
        })
        .unwrap();
    assert_eq!(report.selected, 0);
    assert!(report.warning.is_some(), "the no-op bound is warned about");
    for (name, t) in &before {
        assert!(
            bitwise_equal(t, &toy.vs.variables()[name]),
            "{name} changed"
        );
    }
    let ssd = Ssd::new(SsdConfig::new(1.0, 1.0).per_sample()).unwrap();
    let (report, _, _) = ssd
        .run(&ForgetRequest {
            model: &toy,
            vs: &toy.vs,
            forget: &forget,
            retain: &retain,
        })
        .unwrap();
    assert!(
        report.selected > 0,
        "alpha = 1 selects entries where the forget set matters more"
    );
    assert!(
        bitwise_equal(
            &toy.buffer,
            &Tensor::full([6], 0.5, (Kind::Float, Device::Cpu))
        ),
        "buffers untouched"
    );
}

#[test]
fn ssd_edits_only_selected_entries_of_a_model_and_reports_per_layer() {
    let _g = rng_lock();
    let toy = Toy::new(8, 4, 3);
    let retain = data(9, 40, 4, 3);
    let forget = data(10, 8, 4, 3);
    let before: Vec<(String, Tensor)> = graft_unlearn::trainable_parameters(&toy.vs, &[])
        .into_iter()
        .map(|(n, t)| (n, t.copy()))
        .collect();
    let ssd = Ssd::new(SsdConfig::new(1.5, 0.7)).unwrap();
    let request = ForgetRequest {
        model: &toy,
        vs: &toy.vs,
        forget: &forget,
        retain: &retain,
    };
    let (report, full, forget_imp) = ssd.run(&request).unwrap();
    assert_eq!(report.layers.len(), 2);
    for (layer, (name, old)) in report.layers.iter().zip(&before) {
        assert_eq!(&layer.name, name);
        let (want, sel) = dampen_tensor(
            old,
            &full.tensors[name],
            &forget_imp.tensors[name],
            1.5,
            0.7,
        )
        .unwrap();
        assert!(bitwise_equal(&toy.vs.variables()[name], &want), "{name}");
        assert_eq!(layer.selected, sel.sum(Kind::Int64).int64_value(&[]));
    }
    // Label-free importances and exclusions.
    let ssd = Ssd::new(SsdConfig::new(1.0, 1.0).label_free().exclude("fc.bias")).unwrap();
    let bias = toy.linear.bs.as_ref().unwrap().copy();
    let r = ssd.unlearn(&request).unwrap();
    assert!(r.method.starts_with("lfssd"));
    assert!(
        bitwise_equal(&bias, toy.linear.bs.as_ref().unwrap()),
        "excluded parameter untouched"
    );
    let empty = forget.select(&[]).unwrap();
    let err = ssd
        .unlearn(&ForgetRequest {
            forget: &empty,
            ..request
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn stored_importances_round_trip_and_mismatches_are_named() {
    let _g = rng_lock();
    let toy = Toy::new(11, 4, 3);
    let d = data(12, 20, 4, 3);
    let imp = importances(&toy, &toy.vs, &d, &[], &ImportanceConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imp.safetensors");
    graft_unlearn::importance::save_importances(&path, &[("full", &imp), ("forget", &imp)])
        .unwrap();
    let back = graft_unlearn::importance::load_importances(&path, "full").unwrap();
    assert_eq!(back.samples, 20);
    for (name, t) in &imp.tensors {
        assert!(bitwise_equal(t, &back.tensors[name]));
    }
    let err = graft_unlearn::importance::load_importances(&path, "other")
        .unwrap_err()
        .to_string();
    assert!(err.contains("other"), "{err}");
    let other = Toy::new(13, 5, 3);
    let err = back
        .check(&graft_unlearn::trainable_parameters(&other.vs, &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("fc.weight") && err.contains("shape"), "{err}");
}
