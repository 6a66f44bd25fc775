//! Closed forms, first-order equalities, the reduction identity, MRS =
//! DPM-Solver(++), determinism, equivariance and NFE (spec §7.4-5..9).

mod common;

use common::*;
use graft_diffusion::gmm::Gmm;
use graft_diffusion::grid::StepGrid;
use graft_diffusion::integrator::{Form, Step, ThirdOrder, phi_data, phi_noise, psi_data};
use graft_diffusion::model::Model;
use graft_diffusion::noise::{SeededNoise, UserNoise};
use graft_diffusion::param::Parameterization as P;
use graft_diffusion::process::{MeanReverting, Process};
use graft_diffusion::samplers::{
    DpmSolverSingle, EdmHeun, EulerMaruyama, EulerOde, Mrs, Posterior, PredictorCorrector, Sampler,
};
use graft_tensor::tch::Tensor;
use graft_tensor::testing::{bitwise_equal, proptest_config};
use proptest::prelude::*;
use std::sync::Arc;

fn all_ode_mrs() -> Vec<Mrs> {
    let mut v = Vec::new();
    for order in 1..=3 {
        for form in [Form::Noise, Form::Data] {
            for third in [ThirdOrder::TaylorExact, ThirdOrder::Reference] {
                v.push(Mrs {
                    third_order: third,
                    ..Mrs::ode(order, form)
                });
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(proptest_config(48))]

    /// Dirac data: the PF-ODE flow is `μ + α_t(m−μ) + (σ_t/σ_T)(x_T − μ − α_T(m−μ))`
    /// and every MRS ODE variant reproduces it at any NFE, for any model parameterization.
    #[test]
    fn every_mrs_ode_variant_reproduces_the_dirac_flow(seed in 0u64..1000, sigma_inf in 0.1f64..2.0, nfe in 1usize..12, d in 1i64..4) {
        let mut r = rng(seed);
        let mu = randn(&mut r, 1, d).squeeze_dim(0);
        let m: Vec<f64> = (0..d).map(|i| 0.3 * i as f64 - 0.2).collect();
        let p = cosine(sigma_inf, Some(mu.shallow_clone()));
        let (t0, te) = (1.0, 1e-3);
        let x_t = randn(&mut r, 5, d) * sigma_inf + &mu;
        let mt = t1(&m).unsqueeze(0);
        let exact = &mu + (&mt - &mu) * p.alpha(te) + (&x_t - &mu - (&mt - &mu) * p.alpha(t0)) * (p.sigma(te) / p.sigma(t0));
        let grid = StepGrid::UniformLambda { lambda_min: None }.times(&*p, nfe, t0, te).unwrap();
        for param in [P::Noise, P::Data, P::Velocity] {
            let model = oracle(&dirac(&m), p.clone(), param);
            for s in all_ode_mrs() {
                let (x, st) = s.sample(&*p, &model, &x_t, &grid, &mut SeededNoise::new(0)).unwrap();
                prop_assert_eq!(st.nfe, nfe);
                prop_assert!(max_abs(&x, &exact) < 1e-10 * (1.0 + max_norm(&exact)), "{} {:?}: {}", s.name(), param, max_abs(&x, &exact));
            }
        }
    }
}

fn problem(seed: u64, sigma_inf: f64, d: i64) -> (Arc<MeanReverting>, Gmm, Tensor) {
    let mut r = rng(seed);
    let mu = randn(&mut r, 1, d).squeeze_dim(0) * 0.3;
    let p = cosine(sigma_inf, Some(mu));
    let g = Gmm::new(vec![1.0, 2.0], randn(&mut r, 2, d), vec![0.2, 0.4]).unwrap();
    let x = g.sample_marginal(&*p, 0.9, 6, &mut r).unwrap();
    (p, g, x)
}

#[test]
fn first_order_ode_noise_and_data_equal_the_ddim_step() {
    let (p, g, x) = problem(1, 0.7, 3);
    let model = oracle(&g, p.clone(), P::Noise);
    let (s, t) = (0.9, 0.6);
    let grid = [s, t];
    let mu = p.mu().unwrap();
    let eps = model.eval(&x, s).unwrap();
    let h = p.lambda(t) - p.lambda(s);
    let ddim = mu + (&x - mu) * (p.alpha(t) / p.alpha(s)) - &eps * (p.sigma(t) * h.exp_m1());
    for form in [Form::Noise, Form::Data] {
        let (y, _) = Mrs::ode(1, form)
            .sample(&*p, &model, &x, &grid, &mut SeededNoise::new(0))
            .unwrap();
        assert!(
            max_abs(&y, &ddim) < 1e-12,
            "{form:?} {}",
            max_abs(&y, &ddim)
        );
    }
}

#[test]
fn first_order_sde_data_is_the_posterior_step_and_sde_noise_is_not() {
    let (p, g, x) = problem(2, 1.3, 4);
    let model = oracle(&g, p.clone(), P::Data);
    let grid = StepGrid::UniformLambda { lambda_min: None }
        .times(&*p, 6, 0.9, 0.01)
        .unwrap();
    let (a, _) = Mrs::sde(1, Form::Data)
        .sample(&*p, &model, &x, &grid, &mut SeededNoise::new(9))
        .unwrap();
    let (b, _) = Posterior
        .sample(&*p, &model, &x, &grid, &mut SeededNoise::new(9))
        .unwrap();
    assert!(max_abs(&a, &b) < 1e-12, "{}", max_abs(&a, &b));
    let (c, _) = Mrs::sde(1, Form::Noise)
        .sample(&*p, &model, &x, &grid, &mut SeededNoise::new(9))
        .unwrap();
    assert!(
        max_abs(&a, &c) > 1e-3,
        "SDE noise order 1 should differ from SDE data order 1"
    );
}

proptest! {
    #![proptest_config(proptest_config(48))]

    /// MRS(x; μ, σ∞) = σ∞·MRS(z; VP) + μ with z = (x − μ)/σ∞ and the data scaled alike.
    #[test]
    fn reduction_identity_holds_to_1e_10(seed in 0u64..1000, sigma_inf in 0.1f64..2.0, nfe in 3usize..15) {
        let d = 3;
        let (p, g, x) = problem(seed, sigma_inf, d);
        let mu = p.mu().unwrap().shallow_clone();
        let vp = Arc::new(p.with(1.0, None).unwrap());
        let gz = Gmm::new(g.weights().to_vec(), (g.means() - &mu) / sigma_inf, g.stds().iter().map(|s| s / sigma_inf).collect()).unwrap();
        let z = (&x - &mu) / sigma_inf;
        let grid = StepGrid::UniformLambda { lambda_min: None }.times(&*p, nfe, 0.9, 1e-3).unwrap();
        let mut samplers = all_ode_mrs();
        for o in 1..=2 { for f in [Form::Noise, Form::Data] { samplers.push(Mrs::sde(o, f)); } }
        for s in samplers {
            for param in [P::Noise, P::Data, P::Velocity] {
                let (xa, _) = s.sample(&*p, &oracle(&g, p.clone(), param), &x, &grid, &mut SeededNoise::new(seed)).unwrap();
                let (za, _) = s.sample(&*vp, &oracle(&gz, vp.clone(), param), &z, &grid, &mut SeededNoise::new(seed)).unwrap();
                let back = za * sigma_inf + &mu;
                prop_assert!(max_abs(&xa, &back) < 1e-10 * (1.0 + max_norm(&xa)), "{} {:?}: {}", s.name(), param, max_abs(&xa, &back));
            }
        }
    }
}

/// DPM-Solver++(2M) and DPM-Solver(2M, taylor) written out independently from the
/// DPM-Solver papers' λ-space formulas; MRS at μ = 0, σ∞ = 1 must equal them.
#[test]
fn mrs_at_zero_mu_unit_sigma_is_dpm_solver_multistep() {
    let p = cosine(1.0, None);
    let mut r = rng(3);
    let g = Gmm::new(vec![1.0, 1.0], randn(&mut r, 2, 2), vec![0.3, 0.2]).unwrap();
    let x = g.sample_marginal(&*p, 1.0, 5, &mut r).unwrap();
    let grid = StepGrid::UniformT.times(&*p, 7, 1.0, 1e-3).unwrap();
    let m = oracle(&g, p.clone(), P::Noise);
    let lam = |t: f64| p.lambda(t);
    for (form, third) in [
        (Form::Data, ThirdOrder::Reference),
        (Form::Noise, ThirdOrder::Reference),
    ] {
        for order in [2usize, 3] {
            let s = Mrs {
                lower_order_final: false,
                third_order: third,
                ..Mrs::ode(order, form)
            };
            let (got, _) = s
                .sample(&*p, &m, &x, &grid, &mut SeededNoise::new(0))
                .unwrap();
            // Reference: official multistep recursion.
            let mut xs = x.shallow_clone();
            let mut outs: Vec<Tensor> = Vec::new();
            for i in 1..grid.len() {
                let (ts, tt) = (grid[i - 1], grid[i]);
                let eps = g.noise(&*p, &xs, ts).unwrap();
                let q = match form {
                    Form::Data => (&xs - &eps * p.sigma(ts)) / p.alpha(ts),
                    Form::Noise => eps,
                };
                outs.insert(0, q);
                let h = lam(tt) - lam(ts);
                let k = order.min(i);
                let (at, st, as_, ss) = (p.alpha(tt), p.sigma(tt), p.alpha(ts), p.sigma(ts));
                xs = match (form, k) {
                    (Form::Data, 1) => &xs * (st / ss) - &outs[0] * (at * (-h).exp_m1()),
                    (Form::Noise, 1) => &xs * (at / as_) - &outs[0] * (st * h.exp_m1()),
                    (_, _) => {
                        let h0 = lam(grid[i - 1]) - lam(grid[i - 2]);
                        let r0 = h0 / h;
                        let d1_0 = (&outs[0] - &outs[1]) / r0;
                        let (d1, d2) = if k == 3 {
                            let h1 = lam(grid[i - 2]) - lam(grid[i - 3]);
                            let r1 = h1 / h;
                            let d1_1 = (&outs[1] - &outs[2]) / r1;
                            (
                                &d1_0 + (&d1_0 - &d1_1) * (r0 / (r0 + r1)),
                                Some((&d1_0 - &d1_1) / (r0 + r1)),
                            )
                        } else {
                            (d1_0, None)
                        };
                        match form {
                            Form::Data => {
                                let p1 = (-h).exp_m1();
                                let p2 = p1 / h + 1.0;
                                let mut v = &xs * (st / ss) - &outs[0] * (at * p1) + d1 * (at * p2);
                                if let Some(d2) = d2 {
                                    v -= d2 * (at * (p2 / h - 0.5));
                                }
                                v
                            }
                            Form::Noise => {
                                let p1 = h.exp_m1();
                                let p2 = p1 / h - 1.0;
                                let mut v =
                                    &xs * (at / as_) - &outs[0] * (st * p1) - d1 * (st * p2);
                                if let Some(d2) = d2 {
                                    v -= d2 * (st * (p2 / h - 0.5));
                                }
                                v
                            }
                        }
                    }
                };
                outs.truncate(3);
            }
            assert!(
                max_abs(&got, &xs) < 1e-11,
                "{form:?} order {order}: {}",
                max_abs(&got, &xs)
            );
        }
    }
}

fn stochastic_samplers() -> Vec<Box<dyn Sampler>> {
    vec![
        Box::new(EulerMaruyama),
        Box::new(Posterior),
        Box::new(Mrs::sde(1, Form::Data)),
        Box::new(Mrs::sde(2, Form::Data)),
        Box::new(Mrs::sde(2, Form::Noise)),
        Box::new(PredictorCorrector::default()),
    ]
}

fn ode_samplers() -> Vec<Box<dyn Sampler>> {
    let mut v: Vec<Box<dyn Sampler>> = vec![
        Box::new(EulerOde),
        Box::new(DpmSolverSingle {
            order: 2,
            form: Form::Data,
        }),
        Box::new(DpmSolverSingle {
            order: 3,
            form: Form::Noise,
        }),
        Box::new(EdmHeun {
            churn: None,
            final_zero: false,
        }),
    ];
    for s in all_ode_mrs() {
        v.push(Box::new(s));
    }
    v
}

#[test]
fn ode_samplers_are_bitwise_deterministic_and_sde_samplers_follow_their_seed() {
    let (p, g, x) = problem(4, 0.8, 3);
    let m = oracle(&g, p.clone(), P::Noise);
    let grid = StepGrid::UniformLambda { lambda_min: None }
        .times(&*p, 8, 0.9, 1e-3)
        .unwrap();
    for s in ode_samplers() {
        let (a, _) = s
            .sample(&*p, &m, &x, &grid, &mut SeededNoise::new(1))
            .unwrap();
        let (b, _) = s
            .sample(&*p, &m, &x, &grid, &mut SeededNoise::new(2))
            .unwrap();
        assert!(bitwise_equal(&a, &b), "{}", s.name());
    }
    for s in stochastic_samplers() {
        let (a, _) = s
            .sample(&*p, &m, &x, &grid, &mut SeededNoise::new(1))
            .unwrap();
        let (b, _) = s
            .sample(&*p, &m, &x, &grid, &mut SeededNoise::new(1))
            .unwrap();
        let (c, _) = s
            .sample(&*p, &m, &x, &grid, &mut SeededNoise::new(2))
            .unwrap();
        assert!(bitwise_equal(&a, &b), "{}", s.name());
        assert!(max_abs(&a, &c) > 1e-6, "{}", s.name());
    }
}

proptest! {
    #![proptest_config(proptest_config(32))]

    /// Shifting (m_k, μ, x_T) by c shifts the ODE output by c; scaling
    /// (m_k, s_k, μ, σ∞, x_T) by k scales it by k.
    #[test]
    fn ode_samplers_are_shift_and_scale_equivariant(seed in 0u64..100, shift in -2.0f64..2.0, k in 0.3f64..3.0) {
        let (p, g, x) = problem(seed, 0.9, 2);
        let mu = p.mu().unwrap().shallow_clone();
        let grid = StepGrid::UniformLambda { lambda_min: None }.times(&*p, 6, 0.9, 1e-3).unwrap();
        let ps = cosine(0.9, Some(&mu + shift));
        let gs = Gmm::new(g.weights().to_vec(), g.means() + shift, g.stds().to_vec()).unwrap();
        let pk = cosine(0.9 * k, Some(&mu * k));
        let gk = Gmm::new(g.weights().to_vec(), g.means() * k, g.stds().iter().map(|s| s * k).collect()).unwrap();
        for s in ode_samplers() {
            let (a, _) = s.sample(&*p, &oracle(&g, p.clone(), P::Data), &x, &grid, &mut SeededNoise::new(0)).unwrap();
            let (b, _) = s.sample(&*ps, &oracle(&gs, ps.clone(), P::Data), &(&x + shift), &grid, &mut SeededNoise::new(0)).unwrap();
            prop_assert!(max_abs(&(&a + shift), &b) < 1e-9, "{} shift {}", s.name(), max_abs(&(&a + shift), &b));
            let (c, _) = s.sample(&*pk, &oracle(&gk, pk.clone(), P::Data), &(&x * k), &grid, &mut SeededNoise::new(0)).unwrap();
            prop_assert!(max_abs(&(&a * k), &c) < 1e-9 * k, "{} scale {}", s.name(), max_abs(&(&a * k), &c));
        }
    }
}

#[test]
fn nfe_follows_the_formulas() {
    let (p, g, x) = problem(5, 1.0, 2);
    let m = oracle(&g, p.clone(), P::Noise);
    for n in [3usize, 7, 12] {
        let grid = StepGrid::UniformLambda { lambda_min: None }
            .times(&*p, n, 0.9, 1e-3)
            .unwrap();
        let points = grid.len();
        let nfe = |s: &dyn Sampler| {
            s.sample(&*p, &m, &x, &grid, &mut SeededNoise::new(0))
                .unwrap()
                .1
                .nfe
        };
        assert_eq!(nfe(&Mrs::ode(3, Form::Data)), n);
        assert_eq!(
            nfe(&Mrs {
                denoise_last: true,
                ..Mrs::ode(2, Form::Noise)
            }),
            n
        );
        assert_eq!(nfe(&Mrs::sde(2, Form::Data)), n);
        assert_eq!(nfe(&EulerMaruyama), n);
        assert_eq!(nfe(&Posterior), n);
        assert_eq!(nfe(&EdmHeun::deterministic()), 2 * points - 1);
        assert_eq!(
            nfe(&EdmHeun {
                churn: None,
                final_zero: false
            }),
            2 * n
        );
        assert_eq!(
            nfe(&PredictorCorrector {
                n_corr: 2,
                ..Default::default()
            }),
            n * 3
        );
        assert_eq!(
            nfe(&DpmSolverSingle {
                order: 2,
                form: Form::Data
            }),
            2 * n
        );
        assert_eq!(
            nfe(&DpmSolverSingle {
                order: 3,
                form: Form::Noise
            }),
            3 * n
        );
        for s in [
            &Mrs::ode(3, Form::Data) as &dyn Sampler,
            &EdmHeun::deterministic(),
            &PredictorCorrector {
                n_corr: 2,
                ..Default::default()
            },
            &DpmSolverSingle {
                order: 3,
                form: Form::Data,
            },
        ] {
            let k = s.steps_for_nfe(nfe(s));
            assert_eq!(k, n, "{}", s.name());
        }
    }
}

#[test]
fn user_noise_drives_the_sde_step() {
    let (p, g, x) = problem(6, 1.0, 2);
    let m = oracle(&g, p.clone(), P::Data);
    let grid = [0.9, 0.5];
    let z = randn(&mut rng(1), 6, 2);
    let (a, _) = Mrs::sde(1, Form::Data)
        .sample(&*p, &m, &x, &grid, &mut UserNoise::new(vec![z.copy()]))
        .unwrap();
    let (b, _) = Posterior
        .sample(&*p, &m, &x, &grid, &mut UserNoise::new(vec![z]))
        .unwrap();
    assert!(max_abs(&a, &b) < 1e-12);
}

proptest! {
    #![proptest_config(proptest_config(64))]

    /// The fused multistep update is the divided differences followed by the table's update.
    #[test]
    fn fused_multistep_update_equals_differences_then_update(seed in 0u64..1000, order in 1usize..4, h in 0.01f64..2.0, r1 in 0.2f64..3.0, r2 in 0.2f64..3.0, sde in proptest::bool::ANY, data in proptest::bool::ANY) {
        use graft_diffusion::integrator::multistep_update;
        let mut r = rng(seed);
        let y = randn(&mut r, 3, 2);
        let q: Vec<Tensor> = (0..3).map(|_| randn(&mut r, 3, 2)).collect();
        let qs: Vec<&Tensor> = q.iter().collect();
        let lams = [0.0, -r1 * h, -r1 * h - r2 * h];
        let st = Step { alpha_s: 0.4, sigma_s: 0.9, alpha_t: 0.6, sigma_t: 0.7, h };
        let form = if data { Form::Data } else { Form::Noise };
        let order = if sde { order.min(2) } else { order };
        let z = randn(&mut r, 3, 2);
        let z = if sde { Some(&z) } else { None };
        for third in [ThirdOrder::TaylorExact, ThirdOrder::Reference] {
            let (d1, d2) = differences(&qs, &lams, h, order);
            let want = update(form, &y, qs[0], d1.as_ref(), d2.as_ref(), &st, third, z);
            let got = multistep_update(form, &y, &qs, &lams, order, &st, third, z).unwrap();
            prop_assert!(max_abs(&got, &want) < 1e-11 * (1.0 + max_norm(&want)), "{}", max_abs(&got, &want));
        }
    }
}

/// Reference for `multistep_update`: the divided differences of a multistep buffer, newest first:
/// `qs = [Q0, Q1, Q2]` at `lams = [λ_{i−1}, λ_{i−2}, λ_{i−3}]`, step `h`.
/// Returns `(D1, D2)` for `order` (D terms absent at lower orders).
fn differences(
    qs: &[&Tensor],
    lams: &[f64],
    h: f64,
    order: usize,
) -> (Option<Tensor>, Option<Tensor>) {
    if order < 2 || qs.len() < 2 {
        return (None, None);
    }
    let r1 = (lams[0] - lams[1]) / h;
    let e0 = (qs[0] - qs[1]) / r1;
    if order < 3 || qs.len() < 3 {
        return (Some(e0), None);
    }
    let r2 = (lams[1] - lams[2]) / h;
    let e1 = (qs[1] - qs[2]) / r2;
    let diff = &e0 - &e1;
    let d1 = &e0 + &diff * (r1 / (r1 + r2));
    let d2 = diff / (r1 + r2);
    (Some(d1), Some(d2))
}

/// Reference for `multistep_update`: one exponential-integrator update of centered `y` from s to t (spec §3 table).
/// `q0` is ε̂ (noise form) or the centered `x̂0 − μ` (data form); `z` is the
/// step's standard normal for the SDE variants (None: ODE).
#[allow(clippy::too_many_arguments)]
fn update(
    form: Form,
    y: &Tensor,
    q0: &Tensor,
    d1: Option<&Tensor>,
    d2: Option<&Tensor>,
    st: &Step,
    third: ThirdOrder,
    z: Option<&Tensor>,
) -> Tensor {
    let h = st.h;
    let d2_scale = match third {
        ThirdOrder::TaylorExact => 2.0,
        ThirdOrder::Reference => 1.0,
    };
    match (form, z) {
        (Form::Data, None) => {
            let (p1, p2, p3) = phi_data(h);
            let mut acc = q0 * p1;
            if let Some(d1) = d1 {
                acc -= d1 * p2;
            }
            if let Some(d2) = d2 {
                acc += d2 * (p3 * d2_scale);
            }
            y * (st.sigma_t / st.sigma_s) - acc * st.alpha_t
        }
        (Form::Noise, None) => {
            let (p1, p2, p3) = phi_noise(h);
            let mut acc = q0 * p1;
            if let Some(d1) = d1 {
                acc += d1 * p2;
            }
            if let Some(d2) = d2 {
                acc += d2 * (p3 * d2_scale);
            }
            y * (st.alpha_t / st.alpha_s) - acc * st.sigma_t
        }
        (Form::Data, Some(z)) => {
            let (s1, s2) = psi_data(h);
            let mut acc = q0 * s1;
            if let Some(d1) = d1 {
                acc += d1 * s2;
            }
            y * (st.sigma_t / st.sigma_s * (-h).exp())
                + acc * st.alpha_t
                + z * (st.sigma_t * s1.sqrt())
        }
        (Form::Noise, Some(z)) => {
            let (p1, p2, _) = phi_noise(h);
            let mut acc = q0 * p1;
            if let Some(d1) = d1 {
                acc += d1 * p2;
            }
            y * (st.alpha_t / st.alpha_s) - acc * (2.0 * st.sigma_t)
                + z * (st.sigma_t * (2.0 * h).exp_m1().sqrt())
        }
    }
}

/// PC's Langevin corrector is Song et al.'s update `y + ε s + √(2ε) z` with
/// `ε = 2a (r‖z‖/‖s‖)²` (norms per sample, or their batch mean), followed by
/// the last step's noiseless predictor; recomputed here with libtorch ops.
#[test]
fn pc_corrector_is_the_langevin_update() {
    use graft_diffusion::model::Evaluator;
    use graft_diffusion::process::{centered, uncentered};
    let (p, g, x) = problem(6, 1.0, 2);
    let m = oracle(&g, p.clone(), P::Data);
    let (s, t) = (0.9, 0.5);
    let z = randn(&mut rng(4), 6, 2);
    for per_sample in [true, false] {
        let pc = PredictorCorrector {
            n_corr: 1,
            snr: 0.16,
            per_sample_norms: per_sample,
        };
        let (got, _) = pc
            .sample(&*p, &m, &x, &[s, t], &mut UserNoise::new(vec![z.copy()]))
            .unwrap();
        let ev = Evaluator::new(&*p, &m);
        let y = centered(&*p, &x);
        let score = ev.score(&y, s).unwrap();
        let norm = |v: &Tensor| {
            let n = v.norm_scalaropt_dim(2.0, [1], true);
            if per_sample {
                n
            } else {
                n.mean(graft_tensor::tch::Kind::Double)
                    .expand([6, 1], false)
            }
        };
        let a = (p.alpha(t) / p.alpha(s)).powi(2);
        let eps = (norm(&z) / norm(&score) * 0.16).square() * (2.0 * a);
        let y1 = &y + &score * &eps + &z * (&eps * 2.0).sqrt();
        let score1 = ev.score(&y1, s).unwrap();
        let (f, g2, d) = (p.drift_rate(s), p.g2(s), s - t);
        let want = uncentered(&*p, &(&y1 * (1.0 + f * d) + score1 * (g2 * d)));
        assert!(
            max_abs(&got, &want) < 1e-12,
            "per sample {per_sample}: {}",
            max_abs(&got, &want)
        );
    }
}

/// The evaluator's one-pass score is `−ε̂/σ` for every parameterization,
/// with and without a process mean μ.
#[test]
fn the_one_pass_score_is_minus_the_noise_over_sigma() {
    use graft_diffusion::model::Evaluator;
    let g = Gmm::new(
        vec![1.0, 2.0],
        t2(&[vec![-1.0, 0.5], vec![0.7, 0.2]]),
        vec![0.3, 0.5],
    )
    .unwrap();
    let y = randn(&mut rng(8), 5, 2);
    for mu in [None, Some(t1(&[0.4, -0.3]))] {
        let p = cosine(0.8, mu);
        for param in [P::Noise, P::Data, P::Score, P::Velocity] {
            let m = oracle(&g, p.clone(), param);
            let ev = Evaluator::new(&*p, &m);
            for t in [0.1, 0.5, 0.9] {
                let got = ev.score(&y, t).unwrap();
                let want = ev.noise(&y, t).unwrap() * (-1.0 / p.sigma(t));
                assert!(
                    max_abs(&got, &want) < 1e-12 * (1.0 + max_norm(&want)),
                    "{param:?} at {t}: {}",
                    max_abs(&got, &want)
                );
            }
        }
    }
}
