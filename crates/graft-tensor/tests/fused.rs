//! `fused::lincomb` equals the linear combination computed independently in
//! f64 by libtorch, on the fast path (contiguous CPU f32/f64, suffix
//! broadcasting) and on the libtorch fallback (strided, autograd).

use graft_tensor::fused::lincomb;
use graft_tensor::tch::{Device, Kind, Tensor};
use graft_tensor::testing::proptest_config;
use proptest::prelude::*;

/// The reference: every term cast to f64, combined with broadcasting libtorch ops.
fn reference(terms: &[(f64, &Tensor)]) -> Tensor {
    let mut acc = terms[0].1.to_kind(Kind::Double) * terms[0].0;
    for (c, t) in &terms[1..] {
        acc += t.to_kind(Kind::Double) * *c;
    }
    acc
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

proptest! {
    #![proptest_config(proptest_config(48))]

    #[test]
    fn equals_the_f64_reference_with_broadcast_terms(
        rows in 1i64..40,
        cols in 1i64..700,
        coeffs in prop::collection::vec(-3.0f64..3.0, 1..6),
        broadcast in prop::collection::vec(0u8..4, 6),
        seed in 0i64..1000,
    ) {
        tch::manual_seed(seed);
        for kind in [Kind::Float, Kind::Double] {
            // The first term has the full shape; others may be [cols], [1, cols] or [].
            let tensors: Vec<Tensor> = coeffs
                .iter()
                .enumerate()
                .map(|(k, _)| {
                    let shape: Vec<i64> = match (k, broadcast[k]) {
                        (0, _) | (_, 0) => vec![rows, cols],
                        (_, 1) => vec![cols],
                        (_, 2) => vec![1, cols],
                        _ => vec![],
                    };
                    Tensor::randn(shape.as_slice(), (kind, Device::Cpu))
                })
                .collect();
            let terms: Vec<(f64, &Tensor)> = coeffs.iter().copied().zip(tensors.iter()).collect();
            let got = lincomb(&terms).unwrap();
            prop_assert_eq!(got.size(), vec![rows, cols]);
            prop_assert_eq!(got.kind(), kind);
            let want = reference(&terms);
            let scale: f64 = terms.iter().map(|(c, t)| c.abs() * t.abs().max().double_value(&[])).sum();
            let tol = match kind { Kind::Float => 2e-7 * scale + 1e-30, _ => 1e-15 * scale + 1e-300 };
            prop_assert!(max_abs_diff(&got, &want) <= tol, "kind {:?}: {} > {}", kind, max_abs_diff(&got, &want), tol);
        }
    }
}

#[test]
fn the_fast_path_rounds_once() {
    // In f32, 1e8 + 1 rounds to 1e8, so a chain of ops gives 0; one f64
    // accumulation gives the exact 1.
    let big = Tensor::from_slice(&[1e8f32; 3]);
    let one = Tensor::from_slice(&[1.0f32; 3]);
    let chained = &big + &one - &big;
    assert_eq!(chained.double_value(&[0]), 0.0);
    let fused = lincomb(&[(1.0, &big), (1.0, &one), (-1.0, &big)]).unwrap();
    assert_eq!(Vec::<f32>::try_from(&fused).unwrap(), vec![1.0; 3]);
}

#[test]
fn the_output_has_libtorchs_broadcast_shape() {
    // Equal element counts, different ranks: [1, d] + [d] is [1, d] either way round.
    let cases: [(&[i64], &[i64]); 4] = [
        (&[1, 3], &[3]),
        (&[3], &[1, 3]),
        (&[2, 1, 3], &[1, 1, 1, 3]),
        (&[1, 1, 4], &[1]),
    ];
    for (a, b) in cases {
        let x = Tensor::randn(a, (Kind::Float, Device::Cpu));
        let y = Tensor::randn(b, (Kind::Float, Device::Cpu));
        let got = lincomb(&[(1.0, &x), (2.0, &y)]).unwrap();
        let want = &x + &y * 2.0;
        assert_eq!(got.size(), want.size(), "{a:?} + {b:?}");
        assert!(max_abs_diff(&got, &want) < 1e-6);
    }
}

#[test]
fn strided_and_mixed_kind_terms_fall_back_to_libtorch() {
    tch::manual_seed(1);
    let a = Tensor::randn([5, 4], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([4, 5], (Kind::Float, Device::Cpu)).tr();
    assert!(!b.is_contiguous());
    let got = lincomb(&[(2.0, &a), (-0.5, &b)]).unwrap();
    assert!(max_abs_diff(&got, &reference(&[(2.0, &a), (-0.5, &b)])) < 1e-5);
    // f32 and f64 terms: libtorch promotes to f64.
    let c = Tensor::randn([5, 4], (Kind::Double, Device::Cpu));
    let got = lincomb(&[(1.0, &a), (3.0, &c)]).unwrap();
    assert_eq!(got.kind(), Kind::Double);
    assert!(max_abs_diff(&got, &reference(&[(1.0, &a), (3.0, &c)])) < 1e-12);
}

#[test]
fn gradients_flow_through_the_fallback() {
    let a = Tensor::ones([3, 2], (Kind::Double, Device::Cpu)).set_requires_grad(true);
    let b = Tensor::ones([3, 2], (Kind::Double, Device::Cpu));
    let out = lincomb(&[(2.5, &a), (1.0, &b)]).unwrap();
    out.sum(Kind::Double).backward();
    let g = a.grad();
    assert!((g - 2.5).abs().max().double_value(&[]) < 1e-15);
}

#[test]
fn bad_terms_are_errors_not_panics() {
    assert!(lincomb(&[]).is_err());
    let a = Tensor::zeros([4, 3], (Kind::Float, Device::Cpu));
    let b = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
    let err = lincomb(&[(1.0, &a), (1.0, &b)]).unwrap_err().to_string();
    assert!(err.contains('4') && err.contains('2'), "{err}");
}

#[test]
fn many_terms_and_nested_broadcasts_take_the_blocked_loop_and_agree() {
    tch::manual_seed(3);
    // Eight full-size terms (more than the register kernel's six).
    let ts: Vec<Tensor> = (0..8)
        .map(|_| Tensor::randn([7, 300], (Kind::Double, Device::Cpu)))
        .collect();
    let terms: Vec<(f64, &Tensor)> = ts
        .iter()
        .enumerate()
        .map(|(k, t)| (k as f64 - 3.5, t))
        .collect();
    assert!(max_abs_diff(&lincomb(&terms).unwrap(), &reference(&terms)) < 1e-13);
    // Two different broadcast periods: [3, 4] and [4] over [5, 3, 4].
    for kind in [Kind::Float, Kind::Double] {
        let a = Tensor::randn([5, 3, 4], (kind, Device::Cpu));
        let b = Tensor::randn([3, 4], (kind, Device::Cpu));
        let c = Tensor::randn([4], (kind, Device::Cpu));
        let terms = [(1.5, &a), (-2.0, &b), (0.25, &c)];
        let got = lincomb(&terms).unwrap();
        assert_eq!(got.size(), vec![5, 3, 4]);
        assert!(max_abs_diff(&got, &reference(&terms)) < 1e-5);
    }
}

/// On every device: a full, a row ([d]) and a scalar-shaped term combine to
/// the f64 reference (on CUDA through the libtorch fallback, which the
/// samplers' updates take there), and the result stays on the device.
fn lincomb_agrees_with_f64_on(device: Device) {
    let _rng = graft_tensor::testing::rng_lock();
    graft_tensor::tch::manual_seed(11);
    let a = Tensor::randn([32, 8], (Kind::Float, Device::Cpu)).to_device(device);
    let row = Tensor::randn([8], (Kind::Float, Device::Cpu)).to_device(device);
    let one = Tensor::randn([1], (Kind::Float, Device::Cpu)).to_device(device);
    let terms = [(0.5, &a), (-2.0, &row), (3.0, &one)];
    let out = lincomb(&terms).unwrap();
    assert_eq!(out.device(), device);
    assert_eq!(out.size(), [32, 8]);
    let cpu: Vec<Tensor> = [&a, &row, &one]
        .iter()
        .map(|t| t.to_device(Device::Cpu))
        .collect();
    let expected = reference(&[(0.5, &cpu[0]), (-2.0, &cpu[1]), (3.0, &cpu[2])]);
    let err = max_abs_diff(&out.to_device(Device::Cpu), &expected);
    assert!(err <= 1e-5, "max |lincomb − f64 reference| = {err}");
}

graft_tensor::test_device!(
    lincomb_agrees_with_f64_on,
    lincomb_agrees_with_f64_on_cpu,
    lincomb_agrees_with_f64_on_cuda
);

/// `lincomb_rows` and `row_norms` against libtorch in f64, on the fast path
/// (contiguous f32/f64) and the fallback (a transposed, strided term).
mod per_row {
    use super::*;
    use graft_tensor::fused::{lincomb_rows, row_norms};

    fn reference(terms: &[(Vec<f64>, &Tensor)]) -> Tensor {
        let mut acc: Option<Tensor> = None;
        for (c, t) in terms {
            let b = t.size()[0];
            let mut shape = vec![if c.len() == 1 { 1 } else { b }];
            shape.extend(std::iter::repeat_n(1, t.dim() - 1));
            let term = t.to_kind(Kind::Double) * Tensor::from_slice(c).view(shape.as_slice());
            acc = Some(match acc {
                None => term,
                Some(a) => a + term,
            });
        }
        acc.unwrap()
    }

    proptest! {
        #![proptest_config(proptest_config(32))]

        #[test]
        fn per_row_combinations_and_norms_equal_f64(
            rows in 1i64..12,
            width in 1i64..50,
            terms in 1usize..4,
            scalar_coef in any::<bool>(),
            seed in 0i64..1000,
        ) {
            tch::manual_seed(seed);
            for kind in [Kind::Float, Kind::Double] {
                let ts: Vec<Tensor> = (0..terms)
                    .map(|_| Tensor::randn([rows, 2, width], (kind, Device::Cpu)))
                    .collect();
                let coefs: Vec<Vec<f64>> = (0..terms)
                    .map(|k| {
                        let n = if scalar_coef && k == 0 { 1 } else { rows as usize };
                        (0..n).map(|r| (r as f64 + 1.0) * 0.37 - k as f64).collect()
                    })
                    .collect();
                let args: Vec<(&[f64], &Tensor)> =
                    coefs.iter().zip(&ts).map(|(c, t)| (c.as_slice(), t)).collect();
                let got = lincomb_rows(&args).unwrap();
                let want = reference(&coefs.iter().cloned().zip(ts.iter()).collect::<Vec<_>>());
                let tol = if kind == Kind::Float { 1e-5 } else { 1e-12 };
                prop_assert!(max_abs_diff(&got, &want) <= tol * (1.0 + want.abs().max().double_value(&[])));
                prop_assert_eq!(got.kind(), kind);
                let norms = row_norms(&ts[0]).unwrap();
                let want = Vec::<f64>::try_from(
                    ts[0].to_kind(Kind::Double).reshape([rows, -1]).norm_scalaropt_dim(2.0, [1], false),
                ).unwrap();
                for (a, b) in norms.iter().zip(&want) {
                    prop_assert!((a - b).abs() <= 1e-12 * (1.0 + b), "{} vs {}", a, b);
                }
                prop_assert_eq!(norms.len(), rows as usize);
            }
        }
    }

    #[test]
    fn strided_terms_take_the_fallback_and_agree() {
        tch::manual_seed(3);
        let a = Tensor::randn([5, 4], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([4, 5], (Kind::Float, Device::Cpu)).tr();
        assert!(!b.is_contiguous());
        let (ca, cb) = (vec![1.0, 2.0, 3.0, 4.0, 5.0], vec![-0.5]);
        let got = lincomb_rows(&[(&ca, &a), (&cb, &b)]).unwrap();
        let want = reference(&[(ca.clone(), &a), (cb.clone(), &b)]);
        assert!(max_abs_diff(&got, &want) < 1e-5);
        let n = row_norms(&b).unwrap();
        let w = Vec::<f64>::try_from(b.to_kind(Kind::Double).norm_scalaropt_dim(2.0, [1], false))
            .unwrap();
        for (x, y) in n.iter().zip(&w) {
            assert!((x - y).abs() < 1e-6);
        }
    }

    #[test]
    fn seven_terms_take_the_general_loop_and_agree() {
        tch::manual_seed(5);
        let ts: Vec<Tensor> = (0..7)
            .map(|_| Tensor::randn([4, 9], (Kind::Double, Device::Cpu)))
            .collect();
        let coefs: Vec<Vec<f64>> = (0..7)
            .map(|k| (0..4).map(|r| (k * 4 + r) as f64 * 0.1 - 1.0).collect())
            .collect();
        let args: Vec<(&[f64], &Tensor)> = coefs
            .iter()
            .zip(&ts)
            .map(|(c, t)| (c.as_slice(), t))
            .collect();
        let got = lincomb_rows(&args).unwrap();
        let want = reference(&coefs.iter().cloned().zip(ts.iter()).collect::<Vec<_>>());
        assert!(max_abs_diff(&got, &want) < 1e-12);
    }

    #[test]
    fn mismatched_shapes_and_coefficient_counts_are_errors() {
        let a = Tensor::zeros([3, 2], (Kind::Float, Device::Cpu));
        let b = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
        let msg = lincomb_rows(&[(&[1.0], &a), (&[1.0], &b)])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("term 1") && msg.contains("[2, 3]"), "{msg}");
        let msg = lincomb_rows(&[(&[1.0, 2.0], &a)]).unwrap_err().to_string();
        assert!(msg.contains("2 coefficients for 3 rows"), "{msg}");
        assert!(lincomb_rows(&[]).is_err());
        assert!(row_norms(&Tensor::from(1.0f32)).is_err());
        // Empty batches and empty rows have norms, not errors.
        let empty = Tensor::zeros([0, 3], (Kind::Float, Device::Cpu));
        assert_eq!(row_norms(&empty).unwrap(), Vec::<f64>::new());
        let no_cols = Tensor::zeros([2, 0], (Kind::Float, Device::Cpu));
        assert_eq!(row_norms(&no_cols).unwrap(), vec![0.0, 0.0]);
        let out = lincomb_rows(&[(&[1.0], &empty)]).unwrap();
        assert_eq!(out.size(), vec![0, 3]);
    }
}
