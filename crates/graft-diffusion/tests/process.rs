//! Schedules: invariants, regression values (spec §2) and forward moments.

mod common;

use graft_diffusion::process::{
    ContinuousCosine, MeanReverting, Process, TableKind, ThetaSchedule, ThetaTable, Ve,
};
use graft_tensor::testing::proptest_config;
use proptest::prelude::*;

fn rel(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

#[test]
fn discrete_cosine_table_matches_the_regression_values() {
    let p = MeanReverting::cosine_table(100, 0.005, 50.0 / 255.0, None).unwrap();
    let ThetaSchedule::Table(tab) = p.schedule() else {
        panic!("table")
    };
    assert!(rel(tab.dt(), 0.1040926) < 1e-6, "dt {}", tab.dt());
    assert!(
        rel(tab.thetas()[0], 6.142e-4) < 1e-3,
        "theta_0 {}",
        tab.thetas()[0]
    );
    assert!(
        rel(tab.thetas()[100], 0.99977) < 1e-5,
        "theta_T {}",
        tab.thetas()[100]
    );
    assert!(rel(p.alpha(0.0), 0.999936) < 1e-6);
    assert!(
        rel(p.sigma(0.0), 2.217e-3) < 1e-3,
        "sigma_0 {}",
        p.sigma(0.0)
    );
    assert!(
        rel(p.lambda(0.0), 6.1114) < 1e-4,
        "lambda_0 {}",
        p.lambda(0.0)
    );
    assert!(
        rel(p.lambda(100.0), -3.6691) < 1e-4,
        "lambda_T {}",
        p.lambda(100.0)
    );
    assert!(rel(p.alpha(100.0), 0.005) < 1e-12);
}

#[test]
fn continuous_cosine_matches_the_regression_values() {
    let c = ContinuousCosine::new(0.005).unwrap();
    assert!(rel(c.kappa(), 10.5142) < 1e-4, "kappa {}", c.kappa());
    let p = MeanReverting::continuous_cosine(0.005, 1.0, None).unwrap();
    assert!(rel(p.lambda(1.0), -5.2983) < 1e-4);
    assert!(rel(p.lambda(1e-3), 7.335) < 1e-3, "{}", p.lambda(1e-3));
    assert_eq!(p.theta(0.0), 0.0);
}

#[test]
fn other_tables_end_at_eps() {
    for kind in [TableKind::Linear, TableKind::Constant] {
        let tab = ThetaTable::new(kind, 50, 0.01).unwrap();
        let p = MeanReverting::new(ThetaSchedule::Table(tab), 0.5, None).unwrap();
        assert!(rel(p.alpha(50.0), 0.01) < 1e-12);
    }
}

fn processes(sigma_inf: f64) -> Vec<Box<dyn Process>> {
    vec![
        Box::new(MeanReverting::continuous_cosine(0.005, sigma_inf, None).unwrap()),
        Box::new(MeanReverting::cosine_table(100, 0.005, sigma_inf, None).unwrap()),
        Box::new(MeanReverting::vp()),
        Box::new(Ve::new(0.01, 50.0).unwrap()),
    ]
}

proptest! {
    #![proptest_config(proptest_config(48))]

    #[test]
    fn schedule_invariants_hold(sigma_inf in 0.1f64..2.0, u in 0.002f64..0.99, du in 0.001f64..0.2) {
        for p in processes(sigma_inf) {
            let (lo, hi) = p.t_range();
            let t = lo + u * (hi - lo);
            let t2 = (t + du * (hi - lo)).min(hi);
            let (a, a2) = (p.alpha(t), p.alpha(t2));
            prop_assert!(a > 0.0 && a <= 1.0);
            prop_assert!(a2 <= a);
            if p.drift_rate(t) > 0.0 {
                let s = p.sigma(t);
                prop_assert!((s * s - p.sigma_inf().powi(2) * (1.0 - a * a)).abs() < 1e-12);
            }
            prop_assert!(p.lambda(t2) < p.lambda(t));
            let back = p.t_of_lambda(p.lambda(t)).unwrap();
            prop_assert!((back - t).abs() < 1e-9 * (hi - lo), "t {} back {}", t, back);
            // θ = dΘ/dt and g² = dσ²/dt + 2fσ² (central differences, off the table's knots).
            let eps = 1e-6 * (hi - lo);
            let tc = if (t - t.round()).abs() < 1e-3 && hi > 2.0 { t + 0.25 } else { t };
            let fd = -(p.log_alpha(tc + eps) - p.log_alpha(tc - eps)) / (2.0 * eps);
            prop_assert!((fd - p.drift_rate(tc)).abs() < 1e-5 * (1.0 + fd.abs()), "f {} vs {}", fd, p.drift_rate(tc));
            let ds2 = (p.sigma(tc + eps).powi(2) - p.sigma(tc - eps).powi(2)) / (2.0 * eps);
            let g2 = ds2 + 2.0 * p.drift_rate(tc) * p.sigma(tc).powi(2);
            prop_assert!((g2 - p.g2(tc)).abs() < 1e-5 * (1.0 + g2.abs()), "g2 {} vs {}", g2, p.g2(tc));
        }
    }
}

/// Forward SDE simulated by fine Euler–Maruyama from a Dirac at x0 has the
/// closed-form marginal `N(μ + (x0−μ)e^{−Θ}, σ∞²(1−e^{−2Θ}))`.
#[test]
fn forward_sde_moments_match_the_marginal() {
    let (mu, x0, sigma_inf) = (0.4, 1.5, 0.7);
    let p = MeanReverting::continuous_cosine(0.005, sigma_inf, None).unwrap();
    let mut r = common::rng(5);
    let n = 20_000;
    let steps = 2000;
    let t_end = 0.6;
    let mut x = vec![x0; n];
    for k in 0..steps {
        let t = t_end * k as f64 / steps as f64;
        let dt = t_end / steps as f64;
        let th = p.theta(t + 0.5 * dt);
        let g = p.g2(t + 0.5 * dt).sqrt();
        let z = graft_diffusion::noise::normals(&mut r, n);
        for i in 0..n {
            x[i] += th * (mu - x[i]) * dt + g * dt.sqrt() * z[i];
        }
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let a = p.alpha(t_end);
    let (m_exact, v_exact) = (mu + (x0 - mu) * a, p.sigma(t_end).powi(2));
    let se = (v_exact / n as f64).sqrt();
    assert!(
        (mean - m_exact).abs() < 4.0 * se + 1e-3,
        "mean {mean} vs {m_exact}"
    );
    assert!(
        (var / v_exact - 1.0).abs() < 4.0 * (2.0 / n as f64).sqrt() + 5e-3,
        "var {var} vs {v_exact}"
    );
}
