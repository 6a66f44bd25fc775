//! The engine against an f64 re-computation of the spec's equations (§6,
//! mergekit compat; §2 reference TIES; §4 PCB), written here independently.

use graft_merge::rng::{stable_hash, stream_key, uniform};
use graft_merge::{Compat, MergeParams, Method, ModelValues, PcbParams, Rescale, merge_segment};
use graft_tensor::testing::proptest_config;
use proptest::prelude::*;

/// bf16-representable values in a moderate range, with exact zeros and repeats.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => Just(0.5f32),
        6 => (-3.0f32..3.0).prop_map(|x| f32::from_bits(x.to_bits() & 0xffff_0000)),
    ]
}

fn case(max_models: usize) -> impl Strategy<Value = (Vec<f32>, Vec<Vec<f32>>, Vec<f32>)> {
    (1usize..=max_models, 1usize..=24).prop_flat_map(|(n, d)| {
        (
            prop::collection::vec(value(), d),
            prop::collection::vec(prop::collection::vec(value(), d), n),
            prop::collection::vec(
                prop_oneof![Just(1.0f32), Just(0.5), Just(-0.5), Just(2.0)],
                n,
            ),
        )
    })
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("model-{i}")).collect()
}

fn models<'a>(
    ids: &'a [String],
    xs: &'a [Vec<f32>],
    w: &[f32],
    density: f64,
) -> Vec<ModelValues<'a>> {
    ids.iter()
        .zip(xs)
        .zip(w)
        .map(|((id, x), &w)| ModelValues {
            id: id.clone(),
            weight: w,
            density,
            values: x,
        })
        .collect()
}

/// Order the oracle sums in: the engine's canonical order.
fn canonical(ids: &[String]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| (stable_hash(&ids[i]), ids[i].clone()));
    order
}

fn sgn(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The unit roundoff of f32: every f32 operation's relative error is at most `U`.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// What the engine must produce at one element: `value` (exact, in f64)
/// within `tol`.
#[derive(Debug, Clone, Copy)]
struct Expect {
    value: f64,
    tol: f64,
}

/// §6 with sparsified deltas given: vote or not, normalize, lambda; for each
/// element the exact result and the bound on what f32 arithmetic may add.
///
/// **The bound.** The engine computes in f32: each term `w·δ` carries at
/// most `4U` relative error (the subtraction `θ − θ0`, DARE's rescale
/// factor and its product, the weight's product), a sum of `k` terms adds
/// at most `(k − 1)U·S` with `S = Σ|w·δ|` over the summed terms, a division
/// by the weight sum `D` (itself off by `(k − 1)U·Σ|w|`) and the product by
/// `λ` add `U` each, and the final `+ θ0` half an ulp of the output. To
/// first order:
///
/// `|engine − exact| ≤ U·|out| + |λ|·((k + 4)U·S/|D| + |q|·((k − 1)U·Σ|w|/|D| + 2U))`,
///
/// where `q` is the merged delta before `λ` (without normalisation `D = 1`
/// and the `Σ|w|` term is absent). The test allows twice that (second-order
/// terms) plus the smallest normal f32: about one ulp of the largest term,
/// where the old tolerance `1e-5·(1 + |out| + 8·max|θ|)` allowed ~1,000.
///
/// **The vote** is a discrete choice: where the exact tally `Σ w·δ` is
/// within its own rounding bound `(k + 4)U·Σ|w·δ|` of zero, f32 may elect
/// either sign, and both outcomes are accepted.
fn oracle_mergekit(
    base: &[f32],
    sparse: &[Vec<f64>],
    w: &[f32],
    vote: bool,
    normalize: bool,
    lambda: f64,
) -> Vec<Vec<Expect>> {
    let k = sparse.len() as f64;
    (0..base.len())
        .map(|p| {
            let d: Vec<f64> = sparse
                .iter()
                .zip(w)
                .map(|(s, &w)| f64::from(w) * s[p])
                .collect();
            let expect = |agree: &dyn Fn(f64) -> bool| -> Expect {
                let terms = d.iter().zip(w).filter(|(x, _)| agree(**x));
                let mix: f64 = terms.clone().map(|(x, _)| x).sum();
                let s_abs: f64 = terms.clone().map(|(x, _)| x.abs()).sum();
                let w_sum: f64 = terms.clone().map(|(_, &w)| f64::from(w)).sum();
                let w_abs: f64 = terms.map(|(_, &w)| f64::from(w).abs()).sum();
                let (q, err) = if normalize {
                    let div = if vote {
                        if w_sum == 0.0 { 1.0 } else { w_sum }
                    } else if w_sum.abs() < 1e-8 {
                        1.0
                    } else {
                        w_sum
                    };
                    let q = mix / div;
                    let err = (k + 4.0) * U * s_abs / div.abs()
                        + q.abs() * ((k - 1.0) * U * w_abs / div.abs() + 2.0 * U);
                    (q, err)
                } else {
                    (mix, (k + 4.0) * U * s_abs + mix.abs() * 2.0 * U)
                };
                let value = f64::from(base[p]) + lambda * q;
                let tol =
                    2.0 * (U * value.abs() + lambda.abs() * err) + f64::from(f32::MIN_POSITIVE);
                Expect { value, tol }
            };
            if !vote {
                return vec![expect(&|_| true)];
            }
            let tally: f64 = d.iter().sum();
            let slack = (k + 4.0) * U * d.iter().map(|x| x.abs()).sum::<f64>();
            let elect = |s: f64| expect(&move |x: f64| sgn(x) == s);
            if tally > slack {
                vec![elect(1.0)]
            } else if tally < -slack || (tally < 0.0 && slack == 0.0) {
                vec![elect(-1.0)]
            } else if slack == 0.0 {
                vec![elect(1.0)]
            } else {
                vec![elect(1.0), elect(-1.0)]
            }
        })
        .collect()
}

fn deltas64(base: &[f32], xs: &[Vec<f32>]) -> Vec<Vec<f64>> {
    xs.iter()
        .map(|x| {
            x.iter()
                .zip(base)
                .map(|(a, b)| f64::from(*a) - f64::from(*b))
                .collect()
        })
        .collect()
}

/// Every element of `engine` within the bound of one of its expectations.
fn close(engine: &[f32], oracle: &[Vec<Expect>]) -> Result<(), TestCaseError> {
    for (p, (&e, expects)) in engine.iter().zip(oracle).enumerate() {
        let e = f64::from(e);
        prop_assert!(
            expects.iter().any(|x| (e - x.value).abs() <= x.tol),
            "element {}: engine {} vs oracle {:?} (off by {:e})",
            p,
            e,
            expects,
            expects
                .iter()
                .map(|x| (e - x.value).abs())
                .fold(f64::INFINITY, f64::min)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(proptest_config(256))]

    #[test]
    fn task_arithmetic_and_linear_match_the_oracle((base, xs, w) in case(4), lambda in prop_oneof![Just(1.0f32), Just(0.3), Just(-1.0)]) {
        let ids = ids(xs.len());
        let ms = models(&ids, &xs, &w, 1.0);
        let order = canonical(&ids);
        let (xs_c, w_c): (Vec<Vec<f32>>, Vec<f32>) = order.iter().map(|&i| (xs[i].clone(), w[i])).unzip();
        for normalize in [false, true] {
            let params = MergeParams { lambda, normalize: Some(normalize), ..MergeParams::default() };
            let got = merge_segment(&Method::TaskArithmetic, &params, "t", Some(&base), &ms).unwrap();
            close(&got, &oracle_mergekit(&base, &deltas64(&base, &xs_c), &w_c, false, normalize, f64::from(lambda)))?;
        }
        let lin = merge_segment(&Method::Linear, &MergeParams::default(), "t", Some(&base), &ms).unwrap();
        let zero = vec![0.0f32; base.len()];
        let raw: Vec<Vec<f64>> = xs_c.iter().map(|x| x.iter().map(|&v| f64::from(v)).collect()).collect();
        close(&lin, &oracle_mergekit(&zero, &raw, &w_c, false, true, 1.0))?;
    }

    #[test]
    fn ties_matches_the_oracle((base, xs, w) in case(4), density in prop_oneof![Just(1.0f64), Just(0.5), Just(0.3)]) {
        let ids = ids(xs.len());
        let ms = models(&ids, &xs, &w, density);
        let order = canonical(&ids);
        let d = base.len();
        let keep = (density * d as f64).floor() as usize;
        prop_assume!(keep > 0);
        // Exact top-K by |δ| (computed in f32 as the engine does), ties by index.
        let sparse: Vec<Vec<f64>> = order.iter().map(|&i| {
            let delta: Vec<f32> = xs[i].iter().zip(&base).map(|(x, b)| x - b).collect();
            let mut idx: Vec<usize> = (0..d).collect();
            idx.sort_by(|&a, &b| delta[b].abs().total_cmp(&delta[a].abs()).then(a.cmp(&b)));
            let mut out = vec![0.0f64; d];
            for &p in &idx[..keep.min(d)] { out[p] = f64::from(delta[p]); }
            out
        }).collect();
        let w_c: Vec<f32> = order.iter().map(|&i| w[i]).collect();
        let got = merge_segment(&Method::Ties, &MergeParams::default(), "t", Some(&base), &ms).unwrap();
        close(&got, &oracle_mergekit(&base, &sparse, &w_c, true, true, 1.0))?;
    }

    #[test]
    fn dare_with_the_counter_masks_matches_the_oracle((base, xs, w) in case(3), density in prop_oneof![Just(0.9f64), Just(0.5), Just(0.1)], seed in 0u64..50) {
        let ids = ids(xs.len());
        let ms = models(&ids, &xs, &w, density);
        let order = canonical(&ids);
        let w_c: Vec<f32> = order.iter().map(|&i| w[i]).collect();
        for (rescale, ties) in [(Rescale::InverseKeep, false), (Rescale::None, false), (Rescale::L1, true)] {
            let sparse: Vec<Vec<f64>> = order.iter().map(|&i| {
                let stream = stream_key(seed, stable_hash(&ids[i]), stable_hash("layer.w"));
                let delta: Vec<f64> = xs[i].iter().zip(&base).map(|(x, b)| f64::from(x - b)).collect();
                let masked: Vec<f64> = delta.iter().enumerate().map(|(e, &v)| if uniform(stream, e as u64) < 1.0 - density { 0.0 } else { v }).collect();
                let factor = match rescale {
                    Rescale::InverseKeep => 1.0 / density,
                    Rescale::L1 => {
                        let (a, b): (f64, f64) = (delta.iter().map(|x| x.abs()).sum(), masked.iter().map(|x| x.abs()).sum());
                        if a < 1e-7 || b < 1e-7 { 1.0 } else { a / b }
                    }
                    _ => 1.0,
                };
                masked.iter().map(|x| x * factor).collect()
            }).collect();
            let params = MergeParams { rescale: Some(rescale), seed, ..MergeParams::default() };
            let method = if ties { Method::DareTies } else { Method::DareLinear };
            let got = merge_segment(&method, &params, "layer.w", Some(&base), &ms).unwrap();
            close(&got, &oracle_mergekit(&base, &sparse, &w_c, ties, false, 1.0))?;
        }
    }
}

#[test]
fn reference_ties_follows_the_papers_code_on_a_worked_example() {
    // Deltas (base 0): after a k = 2/3 trim (keep 2 of 3 per model):
    // a = [3, -1, 0] -> [3, -1, 0]; b = [-2, -4, 0.5] -> [-2, -4, 0]; c = [1, 0, -6] -> [1, 0, -6].
    let (a, b, c) = (
        [3.0f32, -1.0, 0.0],
        [-2.0f32, -4.0, 0.5],
        [1.0f32, 0.0, -6.0],
    );
    let ms: Vec<ModelValues> = [("a", &a[..]), ("b", &b[..]), ("c", &c[..])]
        .iter()
        .map(|(id, v)| ModelValues {
            id: id.to_string(),
            weight: 1.0,
            density: 2.0 / 3.0,
            values: v,
        })
        .collect();
    let params = MergeParams {
        compat: Compat::Paper,
        ..MergeParams::default()
    };
    let got = graft_merge::merge(&Method::Ties, &params, "seg", &ms).unwrap();
    // γ = sgn([2, -5, -6]) = [+, -, -]; means: [(3+1)/2, (-1-4)/2, -6].
    assert_eq!(got, vec![2.0, -2.5, -6.0]);
}

#[test]
fn pcb_matches_a_hand_computation_for_one_model() {
    // n = 1, c = 0 (no clamp), r = 0.5 on d = 4: β = exp(u²)·tanh(δ²) increases
    // with |δ|. The threshold t is β at ascending index floor((1 − r)·d) = 2, i.e.
    // |1.0|'s; s = (β − t)/(M − t) is positive only above it: d − 1 − 2 = 1 entry,
    // |−2.0|, with s = 1, so Δ there is λ·δc = −2 and 0 elsewhere.
    let d = [0.5f32, -2.0, 1.0, 0.1];
    let ms = [ModelValues::new("only", &d)];
    let params = MergeParams {
        lambda: 1.0,
        ..MergeParams::default()
    };
    let method = Method::Pcb(PcbParams {
        keep_ratio: 0.5,
        clamp_ratio: 0.0,
        ..PcbParams::default()
    });
    let got = graft_merge::merge(&method, &params, "seg", &ms).unwrap();
    assert_eq!(got, vec![0.0, -2.0, 0.0, 0.0]);
}

#[test]
fn mergekit_ties_elects_plus_on_a_zero_vote_and_weights_vote() {
    let (a, b) = ([1.0f32], [-1.0f32]);
    let ms = [ModelValues::new("a", &a), ModelValues::new("b", &b)];
    // Σ D = 0: mergekit elects +1, keeps `a`, normalises by its weight.
    assert_eq!(
        graft_merge::merge(&Method::Ties, &MergeParams::default(), "t", &ms).unwrap(),
        vec![1.0]
    );
    // Weights enter the vote (mergekit issue #474): 0.5·1 − 2·1 < 0 elects −1.
    let weighted = [
        ModelValues {
            id: "a".into(),
            weight: 0.5,
            density: 1.0,
            values: &a,
        },
        ModelValues {
            id: "b".into(),
            weight: 2.0,
            density: 1.0,
            values: &b,
        },
    ];
    assert_eq!(
        graft_merge::merge(&Method::Ties, &MergeParams::default(), "t", &weighted).unwrap(),
        vec![-1.0]
    );
    // The paper's vote is unweighted, and its zero-sum fallback is the majority sign of the segment.
    let paper = MergeParams {
        compat: Compat::Paper,
        ..MergeParams::default()
    };
    let (c, d) = ([1.0f32, 2.0], [-1.0f32, 1.0]);
    let ms = [ModelValues::new("c", &c), ModelValues::new("d", &d)];
    // γ = [0, +] → majority + → element 0 keeps `c`'s 1.0; element 1 mean of 2 and 1.
    assert_eq!(
        graft_merge::merge(&Method::Ties, &paper, "t", &ms).unwrap(),
        vec![1.0, 1.5]
    );
}
