//! The laws of spec §5, as property tests.

use graft_merge::rng::{stable_hash, stream_key, uniform};
use graft_merge::{
    Compat, MergeParams, Method, ModelValues, PcbParams, Rescale, dare, merge, merge_segment,
    pcb_scores,
};
use graft_tensor::testing::proptest_config;
use proptest::prelude::*;

/// bf16-representable values with |x| in [2^-4, 4] or exactly 0, so `b + (x − b)` is exact in f32.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        1 => Just(0.0f32),
        6 => (0.0625f32..4.0, any::<bool>()).prop_map(|(x, neg)| {
            let v = f32::from_bits(x.to_bits() & 0xffff_0000);
            if neg { -v } else { v }
        }),
    ]
}

fn vecs(n: usize, d: usize) -> impl Strategy<Value = Vec<Vec<f32>>> {
    prop::collection::vec(prop::collection::vec(value(), d), n)
}

fn named<'a>(xs: &'a [Vec<f32>], density: f64) -> Vec<ModelValues<'a>> {
    xs.iter()
        .enumerate()
        .map(|(i, x)| ModelValues {
            id: format!("m{i}"),
            weight: 1.0,
            density,
            values: x,
        })
        .collect()
}

const METHODS: [Method; 5] = [
    Method::Linear,
    Method::TaskArithmetic,
    Method::Ties,
    Method::DareLinear,
    Method::DareTies,
];

proptest! {
    #![proptest_config(proptest_config(48))]

    #[test]
    fn permuting_the_models_changes_no_bit(d in 2usize..16, n in 2usize..5, seed in 0u64..100, raw in vecs(5, 16), base in prop::collection::vec(value(), 16)) {
        let xs: Vec<Vec<f32>> = raw.iter().take(n).map(|x| x[..d].to_vec()).collect();
        let base = &base[..d];
        let ms = named(&xs, 0.5);
        let mut reversed = ms.clone();
        reversed.reverse();
        let params = MergeParams { seed, ..MergeParams::default() };
        for method in METHODS.iter().cloned().chain([Method::Pcb(PcbParams::default())]) {
            let a = merge_segment(&method, &params, "w", Some(base), &ms);
            let b = merge_segment(&method, &params, "w", Some(base), &reversed);
            // Valid models of one shape: every method must merge them (an
            // error on both sides is a failure too, not a pass).
            match (a, b) {
                (Ok(a), Ok(b)) => prop_assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{:?}", method),
                (a, b) => prop_assert!(false, "{:?}: {:?} vs {:?}", method, a.err(), b.err()),
            }
        }
    }

    #[test]
    fn one_model_at_full_density_and_unit_weight_is_that_model(x in prop::collection::vec(value(), 1..20), base_seed in 0u32..1000) {
        let base: Vec<f32> = (0..x.len()).map(|i| ((i as u32 * 7 + base_seed) % 17) as f32 * 0.125).collect();
        let ms = [ModelValues::new("only", &x)];
        for method in METHODS {
            let got = merge_segment(&method, &MergeParams::default(), "w", Some(&base), &ms).unwrap();
            prop_assert!(got.iter().zip(&x).all(|(a, b)| a.to_bits() == b.to_bits() || (*a == 0.0 && *b == 0.0)), "{:?}: {:?} vs {:?}", method, got, x);
        }
        // λ = 0 gives the base exactly.
        let zero = MergeParams { lambda: 0.0, ..MergeParams::default() };
        let got = merge_segment(&Method::TaskArithmetic, &zero, "w", Some(&base), &ms).unwrap();
        prop_assert_eq!(got, base);
    }

    #[test]
    fn a_task_and_its_negation_cancel(delta in prop::collection::vec(value(), 1..20)) {
        let neg: Vec<f32> = delta.iter().map(|x| -x).collect();
        let ms = [ModelValues::new("plus", &delta), ModelValues::new("minus", &neg)];
        let got = merge(&Method::TaskArithmetic, &MergeParams::default(), "w", &ms).unwrap();
        prop_assert!(got.iter().all(|x| *x == 0.0));
    }

    #[test]
    fn ties_keeps_exactly_k_per_model_and_scales_linearly(delta in prop::collection::vec(value(), 4..24), density in 0.25f64..1.0) {
        let d = delta.len();
        let k = (density * d as f64).floor() as usize;
        prop_assume!(k > 0);
        let trimmed = graft_merge::trim("w", &delta, density, graft_merge::TrimRule::Exact, graft_merge::EmptyTrim::Refuse).unwrap();
        let nonzero_in = delta.iter().filter(|x| **x != 0.0).count();
        prop_assert_eq!(trimmed.iter().filter(|x| **x != 0.0).count(), k.min(nonzero_in));
        let ms = [ModelValues { id: "a".into(), weight: 1.0, density, values: &delta }];
        let once = merge(&Method::Ties, &MergeParams::default(), "w", &ms).unwrap();
        let doubled: Vec<f32> = delta.iter().map(|x| 2.0 * x).collect();
        let ms2 = [ModelValues { id: "a".into(), weight: 1.0, density, values: &doubled }];
        let twice = merge(&Method::Ties, &MergeParams::default(), "w", &ms2).unwrap();
        prop_assert!(once.iter().zip(&twice).all(|(a, b)| 2.0 * a == *b));
    }

    #[test]
    fn ties_output_agrees_with_the_vote_and_is_bounded(raw in vecs(3, 12), paper in any::<bool>()) {
        let ms = named(&raw, 1.0);
        let compat = if paper { Compat::Paper } else { Compat::Mergekit };
        let got = merge(&Method::Ties, &MergeParams { compat, ..MergeParams::default() }, "w", &ms).unwrap();
        for (p, &g) in got.iter().enumerate() {
            let max = raw.iter().map(|x| x[p].abs()).fold(0.0f32, f32::max);
            prop_assert!(g.abs() <= max * (1.0 + 1e-6), "element {}: {} exceeds {}", p, g, max);
            let sum: f32 = raw.iter().map(|x| x[p]).sum();
            if sum != 0.0 && g != 0.0 {
                prop_assert_eq!(g.signum(), sum.signum(), "element {} disagrees with the elected sign", p);
            }
        }
    }

    #[test]
    fn dare_p0_is_identity_p1_is_zero_and_seeds_repeat(delta in prop::collection::vec(value(), 1..30), seed in 0u64..1000) {
        for rescale in [Rescale::InverseKeep, Rescale::L1, Rescale::None] {
            let same = dare("w", &delta, 1.0, rescale, stream(seed, 1, 2)).unwrap();
            prop_assert!(same.iter().zip(&delta).all(|(a, b)| a.to_bits() == b.to_bits()));
            prop_assert!(dare("w", &delta, 0.0, rescale, stream(seed, 1, 2)).unwrap().iter().all(|x| *x == 0.0));
            prop_assert_eq!(dare("w", &delta, 0.3, rescale, stream(seed, 1, 2)).unwrap(), dare("w", &delta, 0.3, rescale, stream(seed, 1, 2)).unwrap());
        }
    }

    #[test]
    fn pcb_scores_are_in_unit_interval_and_few(raw in vecs(3, 20), r in 0.05f64..1.0) {
        let (_, scores) = pcb_scores("w", &raw, &PcbParams { keep_ratio: r, clamp_ratio: 0.01, ..PcbParams::default() }).unwrap();
        let d = 20usize;
        let bound = d - 1 - ((1.0 - r) * d as f64).floor() as usize;
        for s in &scores {
            prop_assert!(s.iter().all(|x| (0.0..=1.0).contains(x)));
            prop_assert!(s.iter().filter(|x| **x > 0.0).count() <= bound);
        }
    }
}

#[test]
fn dare_keeps_the_expected_fraction_and_the_expectation() {
    let d = 20_000usize;
    let delta: Vec<f32> = (0..d).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let density = 0.3;
    let kept = dare(
        "w",
        &delta,
        density,
        Rescale::InverseKeep,
        stream(7, 11, 13),
    )
    .unwrap();
    let nonzero_in = delta.iter().filter(|x| **x != 0.0).count() as f64;
    let k = kept.iter().filter(|x| **x != 0.0).count() as f64;
    let z = (k - nonzero_in * density) / (nonzero_in * density * (1.0 - density)).sqrt();
    assert!(z.abs() < 5.0, "kept count z = {z}");
    // E[Σ δ̃ x] = Σ δ x over seeds: mean over 2000 seeds within 5 standard errors.
    let small: Vec<f32> = delta[..64].to_vec();
    let x: Vec<f64> = (0..64).map(|i| ((i * 7 % 11) as f64 - 5.0) / 5.0).collect();
    let target: f64 = small.iter().zip(&x).map(|(d, x)| f64::from(*d) * x).sum();
    let var: f64 = (1.0 - density) / density
        * small
            .iter()
            .zip(&x)
            .map(|(d, x)| (f64::from(*d) * x).powi(2))
            .sum::<f64>();
    let m = 2000;
    let mean: f64 = (0..m)
        .map(|seed| {
            dare(
                "w",
                &small,
                density,
                Rescale::InverseKeep,
                stream(seed, 3, 5),
            )
            .unwrap()
            .iter()
            .zip(&x)
            .map(|(d, x)| f64::from(*d) * x)
            .sum::<f64>()
        })
        .sum::<f64>()
        / m as f64;
    let se = (var / m as f64).sqrt();
    assert!(
        (mean - target).abs() < 5.0 * se,
        "mean {mean} vs {target}, se {se}"
    );
    // Two models' masks agree at rate p² + (1 − p)².
    let (s1, s2) = (
        stream_key(0, stable_hash("a"), 9),
        stream_key(0, stable_hash("b"), 9),
    );
    let n = 20_000;
    let agree = (0..n)
        .filter(|&e| (uniform(s1, e) < 0.7) == (uniform(s2, e) < 0.7))
        .count() as f64;
    let p = 0.7f64 * 0.7 + 0.3 * 0.3;
    assert!(((agree / n as f64) - p).abs() < 5.0 * (p * (1.0 - p) / n as f64).sqrt());
    // L1 rescale keeps the L1 norm.
    let l1 = dare("w", &delta, density, Rescale::L1, stream(1, 2, 3)).unwrap();
    let (a, b): (f64, f64) = (
        delta.iter().map(|x| f64::from(x.abs())).sum(),
        l1.iter().map(|x| f64::from(x.abs())).sum(),
    );
    assert!(((a - b) / a).abs() < 1e-5, "{a} vs {b}");
}

#[test]
fn bad_inputs_are_errors_that_name_the_tensor() {
    let a = [1.0f32, 2.0];
    let b = [1.0f32];
    let err = merge(
        &Method::TaskArithmetic,
        &MergeParams::default(),
        "layers.0.w",
        &[ModelValues::new("a", &a), ModelValues::new("b", &b)],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("layers.0.w") && err.contains("`b`"), "{err}");
    let nan = [f32::NAN, 0.0];
    let err = merge(
        &Method::TaskArithmetic,
        &MergeParams::default(),
        "t",
        &[ModelValues::new("a", &nan)],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("non-finite") && err.contains("`a`"), "{err}");
    let tiny = [ModelValues {
        id: "a".into(),
        weight: 1.0,
        density: 0.1,
        values: &a,
    }];
    // The paper's rule refuses an empty trim; mergekit keeps the largest entry.
    let paper_params = MergeParams {
        compat: Compat::Paper,
        ..MergeParams::default()
    };
    let err = merge(&Method::Ties, &paper_params, "t", &tiny)
        .unwrap_err()
        .to_string();
    assert!(err.contains("keeps floor"), "{err}");
    assert_eq!(
        merge(&Method::Ties, &MergeParams::default(), "t", &tiny).unwrap(),
        vec![0.0, 2.0]
    );
    let dup = [ModelValues::new("a", &a), ModelValues::new("a", &a)];
    assert!(merge(&Method::TaskArithmetic, &MergeParams::default(), "t", &dup).is_err());
    let weighted = [ModelValues {
        id: "a".into(),
        weight: 0.5,
        density: 1.0,
        values: &a,
    }];
    let paper = MergeParams {
        compat: Compat::Paper,
        ..MergeParams::default()
    };
    assert!(
        merge(&Method::Ties, &paper, "t", &weighted)
            .unwrap_err()
            .to_string()
            .contains("weight 0.5")
    );
    assert!(
        merge(
            &Method::Pcb(PcbParams {
                keep_ratio: 0.0,
                clamp_ratio: 0.0,
                ..PcbParams::default()
            }),
            &MergeParams::default(),
            "t",
            &[ModelValues::new("a", &a)]
        )
        .is_err()
    );
    let overflow = [f32::MAX, 0.0];
    let two = [
        ModelValues::new("a", &overflow),
        ModelValues::new("b", &overflow),
    ];
    let err = merge(&Method::TaskArithmetic, &MergeParams::default(), "t", &two)
        .unwrap_err()
        .to_string();
    assert!(err.contains("in the result"), "{err}");
}

fn stream(seed: u64, model: u64, tensor: u64) -> graft_merge::DareStream {
    graft_merge::DareStream {
        seed,
        model,
        tensor,
    }
}
