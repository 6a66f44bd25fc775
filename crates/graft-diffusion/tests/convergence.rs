//! Measured convergence orders on the single Gaussian (spec §7.4-10) and
//! convergence to the exact law with the exact GMM score (§7.4-11).

mod common;

use common::*;
use graft_diffusion::gmm::Gmm;
use graft_diffusion::grid::StepGrid;
use graft_diffusion::integrator::{Form, ThirdOrder};
use graft_diffusion::metrics::{median_distance, mmd2_unbiased, mode_stats};
use graft_diffusion::model::Model;
use graft_diffusion::noise::SeededNoise;
use graft_diffusion::param::Parameterization as P;
use graft_diffusion::process::Process;
use graft_diffusion::samplers::{
    DpmSolverSingle, EdmHeun, EulerMaruyama, EulerOde, Mrs, Posterior, PredictorCorrector, Sampler,
};
use graft_tensor::tch::Tensor;

const M: f64 = 0.7;
const S: f64 = 0.3;
const T0: f64 = 1.0;
const TE: f64 = 1e-3;

/// Max error against the affine flow at `nfe` steps; with `exact_warmup`, the
/// first `order − 1` states and outputs are exact (so the warm-up's lower order
/// does not hide the scheme's own).
fn error(sampler: &Mrs, nfe: usize, exact_warmup: bool) -> f64 {
    let p = cosine(1.0, None);
    let g = Gmm::new(vec![1.0], t1(&[M]).unsqueeze(0), vec![S]).unwrap();
    let model = oracle(&g, p.clone(), P::Noise);
    let x_t = t1(&[-2.0, -1.0, -0.3, 0.0, 0.4, 1.1, 2.5]).unsqueeze(1);
    let mt = t1(&[M]).unsqueeze(0);
    let grid = StepGrid::UniformLambda { lambda_min: None }
        .times(&*p, nfe, T0, TE)
        .unwrap();
    let exact = gaussian_flow(&*p, &mt, S, &x_t, T0, TE);
    let k = if exact_warmup { sampler.order - 1 } else { 0 };
    let history: Vec<Tensor> = (0..k)
        .map(|j| {
            let xj = gaussian_flow(&*p, &mt, S, &x_t, T0, grid[j]);
            let eps = model.eval(&xj, grid[j]).unwrap();
            match sampler.form {
                Form::Noise => eps,
                Form::Data => (&xj - eps * p.sigma(grid[j])) / p.alpha(grid[j]),
            }
        })
        .collect();
    let xk = gaussian_flow(&*p, &mt, S, &x_t, T0, grid[k]);
    let (x, _) = sampler
        .sample_with_history(&*p, &model, &xk, &grid, &history, &mut SeededNoise::new(0))
        .unwrap();
    max_abs(&x, &exact)
}

fn slope(sampler: &Mrs, exact_warmup: bool) -> (f64, f64, f64) {
    let (e20, e160) = (
        error(sampler, 20, exact_warmup),
        error(sampler, 160, exact_warmup),
    );
    ((e20 / e160).ln() / 8f64.ln(), e20, e160)
}

#[test]
fn mrs_ode_orders_are_measured_on_the_single_gaussian() {
    for form in [Form::Noise, Form::Data] {
        let mk = |order, third| Mrs {
            lower_order_final: false,
            third_order: third,
            ..Mrs::ode(order, form)
        };
        let (s1, ..) = slope(&mk(1, ThirdOrder::TaylorExact), false);
        let (s2, ..) = slope(&mk(2, ThirdOrder::TaylorExact), true);
        let (s3, a, b) = slope(&mk(3, ThirdOrder::TaylorExact), true);
        let (s3r, ..) = slope(&mk(3, ThirdOrder::Reference), true);
        assert!(s1 >= 0.9, "{form:?} order 1 slope {s1}");
        assert!(s2 >= 1.8, "{form:?} order 2 slope {s2}");
        assert!(
            s3 >= 2.8,
            "{form:?} order 3 (Taylor-exact) slope {s3} ({a} -> {b})"
        );
        assert!(
            (1.8..=2.5).contains(&s3r),
            "{form:?} order 3 (reference) slope {s3r}"
        );
    }
}

#[test]
fn dpm_solver_single_step_orders() {
    let p = cosine(1.0, None);
    let g = Gmm::new(vec![1.0], t1(&[M]).unsqueeze(0), vec![S]).unwrap();
    let model = oracle(&g, p.clone(), P::Data);
    let x_t = t1(&[-1.5, 0.2, 1.9]).unsqueeze(1);
    let exact = gaussian_flow(&*p, &t1(&[M]).unsqueeze(0), S, &x_t, T0, TE);
    for order in [2usize, 3] {
        for form in [Form::Noise, Form::Data] {
            let s = DpmSolverSingle { order, form };
            let err = |steps| {
                let grid = StepGrid::UniformLambda { lambda_min: None }
                    .times(&*p, steps, T0, TE)
                    .unwrap();
                let (x, _) = s
                    .sample(&*p, &model, &x_t, &grid, &mut SeededNoise::new(0))
                    .unwrap();
                max_abs(&x, &exact)
            };
            // DPM-Solver++-3S is pre-asymptotic below 40 steps here (error ratios 5.0, 6.7, 7.4, 7.7 per doubling).
            let sl = (err(40) / err(320)).ln() / 8f64.ln();
            assert!(sl >= order as f64 - 0.2, "{} slope {sl}", s.name());
        }
    }
}

/// With the exact score every sampler converges to the exact law at NFE ≥ 100:
/// MMD² and mode TV within 3 floor-std of the exact-sample floor.
#[test]
fn every_sampler_converges_to_the_exact_law_at_high_nfe() {
    let mu = t1(&[0.5, -0.5]);
    let p = cosine(1.0, Some(mu));
    let k = 8;
    let means: Vec<Vec<f64>> = (0..k)
        .map(|i| {
            let a = 2.0 * std::f64::consts::PI * i as f64 / k as f64;
            vec![2.0 * a.cos(), 2.0 * a.sin()]
        })
        .collect();
    let weights: Vec<f64> = (0..k).map(|i| if i % 2 == 0 { 1.0 } else { 2.0 }).collect();
    let g = Gmm::new(weights, t2(&means), vec![0.1; k]).unwrap();
    let n = 400;
    let mut r = rng(11);
    let reference = g.sample_data(n, &mut r).unwrap();
    let bw = median_distance(&reference).unwrap();
    let scales = [0.5, 1.0, 2.0];
    let (mut fm, mut ft) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let other = g.sample_data(n, &mut r).unwrap();
        fm.push(mmd2_unbiased(&other, &reference, bw, &scales).unwrap());
        ft.push(mode_stats(&other, &g).unwrap().tv);
    }
    let stat = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (
            m,
            (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt(),
        )
    };
    let ((mm, ms), (tm, ts)) = (stat(&fm), stat(&ft));
    let x_t = g.sample_marginal(&*p, T0, n, &mut r).unwrap();
    let samplers: Vec<(Box<dyn Sampler>, StepGrid)> = vec![
        (Box::new(EulerMaruyama), StepGrid::UniformT),
        (
            Box::new(EulerOde),
            StepGrid::UniformLambda { lambda_min: None },
        ),
        (
            Box::new(Posterior),
            StepGrid::UniformLambda { lambda_min: None },
        ),
        (
            Box::new(Mrs::ode(3, Form::Data)),
            StepGrid::UniformLambda { lambda_min: None },
        ),
        (
            Box::new(Mrs::ode(2, Form::Noise)),
            StepGrid::UniformLambda { lambda_min: None },
        ),
        (
            Box::new(Mrs::sde(2, Form::Data)),
            StepGrid::UniformLambda { lambda_min: None },
        ),
        (
            Box::new(Mrs::sde(1, Form::Noise)),
            StepGrid::UniformLambda { lambda_min: None },
        ),
        (
            Box::new(DpmSolverSingle {
                order: 2,
                form: Form::Data,
            }),
            StepGrid::UniformLambda { lambda_min: None },
        ),
        (
            Box::new(EdmHeun {
                churn: None,
                final_zero: false,
            }),
            StepGrid::Karras { rho: 7.0 },
        ),
        (
            Box::new(PredictorCorrector::default()),
            StepGrid::UniformLambda { lambda_min: None },
        ),
    ];
    let model = oracle(&g, p.clone(), P::Noise);
    for (s, grid) in samplers {
        let steps = s.steps_for_nfe(160);
        let ts_ = grid.times(&*p, steps, T0, TE).unwrap();
        let (x, st) = s
            .sample(&*p, &model, &x_t, &ts_, &mut SeededNoise::new(3))
            .unwrap();
        assert!(st.nfe >= 100);
        let mmd = mmd2_unbiased(&x, &reference, bw, &scales).unwrap();
        let tv = mode_stats(&x, &g).unwrap().tv;
        assert!(
            mmd <= mm + 3.0 * ms,
            "{}: MMD² {mmd} vs floor {mm} ± {ms}",
            s.name()
        );
        assert!(
            tv <= tm + 3.0 * ts,
            "{}: TV {tv} vs floor {tm} ± {ts}",
            s.name()
        );
    }
}
