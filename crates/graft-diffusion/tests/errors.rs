//! Impossible configurations are refused with the bad value named.

mod common;

use common::*;
use graft_diffusion::Error;
use graft_diffusion::gmm::Gmm;
use graft_diffusion::grid::StepGrid;
use graft_diffusion::integrator::Form;
use graft_diffusion::model::Model;
use graft_diffusion::noise::{SeededNoise, UserNoise};
use graft_diffusion::param::Parameterization;
use graft_diffusion::process::MeanReverting;
use graft_diffusion::samplers::{DpmSolverSingle, Mrs, Posterior, Sampler};
use graft_tensor::tch::Tensor;

fn setup() -> (std::sync::Arc<MeanReverting>, Gmm, Tensor) {
    let p = cosine(1.0, None);
    let g = Gmm::new(vec![1.0], t2(&[vec![0.1, 0.2]]), vec![0.3]).unwrap();
    let x = randn(&mut rng(0), 4, 2);
    (p, g, x)
}

#[test]
fn evaluation_at_sigma_zero_is_refused() {
    let (p, g, x) = setup();
    let m = oracle(&g, p.clone(), Parameterization::Noise);
    // Stepping to t = 0 needs no evaluation there; stepping from it does.
    assert!(
        Mrs::ode(1, Form::Data)
            .sample(&*p, &m, &x, &[0.5, 0.0], &mut SeededNoise::new(0))
            .is_ok()
    );
    let err = Posterior.sample(&*p, &m, &x, &[0.5, 0.0, -1.0], &mut SeededNoise::new(0));
    assert!(
        matches!(err, Err(Error::SigmaZero { t }) if t == 0.0),
        "{err:?}"
    );
    let e = graft_diffusion::model::Evaluator::new(&*p, &m);
    assert!(matches!(e.noise(&x, 0.0), Err(Error::SigmaZero { t }) if t == 0.0));
}

#[test]
fn sde_order_above_two_is_refused() {
    let (p, g, x) = setup();
    let m = oracle(&g, p.clone(), Parameterization::Data);
    let grid = StepGrid::UniformT.times(&*p, 10, 1.0, 1e-3).unwrap();
    let err = Mrs::sde(3, Form::Data).sample(&*p, &m, &x, &grid, &mut SeededNoise::new(0));
    assert!(matches!(err, Err(Error::SdeOrder { order: 3 })), "{err:?}");
    let err = Mrs::ode(4, Form::Data).sample(&*p, &m, &x, &grid, &mut SeededNoise::new(0));
    assert!(matches!(err, Err(Error::Order { order: 4, .. })), "{err:?}");
    let err = DpmSolverSingle {
        order: 1,
        form: Form::Data,
    }
    .sample(&*p, &m, &x, &grid, &mut SeededNoise::new(0));
    assert!(matches!(err, Err(Error::Order { order: 1, .. })), "{err:?}");
}

#[test]
fn nfe_below_the_warm_up_is_refused_without_lower_order_final() {
    let (p, g, x) = setup();
    let m = oracle(&g, p.clone(), Parameterization::Data);
    let grid = StepGrid::UniformT.times(&*p, 2, 1.0, 1e-3).unwrap();
    let s = Mrs {
        lower_order_final: false,
        ..Mrs::ode(3, Form::Data)
    };
    let err = s.sample(&*p, &m, &x, &grid, &mut SeededNoise::new(0));
    assert!(
        matches!(err, Err(Error::NfeBelowWarmup { nfe: 2, order: 3 })),
        "{err:?}"
    );
    assert!(
        Mrs::ode(3, Form::Data)
            .sample(&*p, &m, &x, &grid, &mut SeededNoise::new(0))
            .is_ok()
    );
}

#[test]
fn grids_that_are_not_monotone_are_refused() {
    let (p, _, _) = setup();
    let err = StepGrid::Custom(vec![0.9, 0.5, 0.6, 0.1]).times(&*p, 3, 1.0, 1e-3);
    assert!(
        matches!(err, Err(Error::NotMonotone { index: 2, .. })),
        "{err:?}"
    );
    let err = StepGrid::UniformT.times(&*p, 3, 0.1, 0.5);
    assert!(matches!(err, Err(Error::NotMonotone { .. })), "{err:?}");
    // Rounding a table grid with more steps than indices gives repeats.
    let tab = MeanReverting::cosine_table(10, 0.005, 0.2, None).unwrap();
    let err = StepGrid::Linspace.times(&tab, 30, 10.0, 0.0);
    assert!(matches!(err, Err(Error::NotMonotone { .. })), "{err:?}");
    let ok = StepGrid::Trailing.times(&tab, 5, 10.0, 0.0).unwrap();
    assert_eq!(ok, vec![10.0, 8.0, 6.0, 4.0, 2.0, 0.0]);
}

#[test]
fn lambda_min_outside_the_schedule_is_refused() {
    let (p, _, _) = setup();
    let grid = |lm: f64| {
        StepGrid::UniformLambda {
            lambda_min: Some(lm),
        }
        .times(&*p, 5, 1.0, 1e-3)
    };
    let err = grid(20.0);
    assert!(
        matches!(err, Err(Error::LambdaOutOfRange { lambda, .. }) if lambda == 20.0),
        "{err:?}"
    );
    assert!(matches!(
        grid(f64::NAN),
        Err(Error::LambdaOutOfRange { .. })
    ));
    // Below the schedule's range the clip is a no-op, as in the reference code.
    assert_eq!(grid(-50.0).unwrap()[0], 1.0);
    let g = grid(-3.0).unwrap();
    use graft_diffusion::process::Process;
    assert!((p.lambda(g[0]) + 3.0).abs() < 1e-9);
}

struct WrongShape;
impl Model for WrongShape {
    fn parameterization(&self) -> Parameterization {
        Parameterization::Noise
    }
    fn eval(&self, x: &Tensor, _t: f64) -> graft_diffusion::Result<Tensor> {
        Ok(x.narrow(1, 0, 1))
    }
}

#[test]
fn model_output_shape_mismatch_is_refused() {
    let (p, _, x) = setup();
    let err = Mrs::default().sample(&*p, &WrongShape, &x, &[1.0, 0.5], &mut SeededNoise::new(0));
    assert!(
        matches!(err, Err(Error::ShapeMismatch { ref expected, ref actual, .. }) if expected == &vec![4, 2] && actual == &vec![4, 1]),
        "{err:?}"
    );
}

#[test]
fn user_noise_that_runs_out_or_has_the_wrong_shape_is_refused() {
    let (p, g, x) = setup();
    let m = oracle(&g, p.clone(), Parameterization::Data);
    let err = Posterior.sample(
        &*p,
        &m,
        &x,
        &[1.0, 0.5, 0.1],
        &mut UserNoise::new(vec![randn(&mut rng(1), 4, 2)]),
    );
    assert!(
        matches!(err, Err(Error::NoiseExhausted { used: 1 })),
        "{err:?}"
    );
    let err = Posterior.sample(
        &*p,
        &m,
        &x,
        &[1.0, 0.5],
        &mut UserNoise::new(vec![randn(&mut rng(1), 3, 2)]),
    );
    assert!(matches!(err, Err(Error::ShapeMismatch { .. })), "{err:?}");
}

#[test]
fn a_start_state_that_does_not_fit_the_process_mean_is_an_error_for_every_sampler() {
    use graft_diffusion::samplers::{EdmHeun, EulerMaruyama, EulerOde, PredictorCorrector};
    // μ of dimension 2; start states of dimension 3, of rank 0 and of integers.
    let p = cosine(1.0, Some(t2(&[vec![0.5, -0.5]])));
    let g = Gmm::new(vec![1.0], t2(&[vec![0.1, 0.2]]), vec![0.3]).unwrap();
    let m = oracle(&g, p.clone(), Parameterization::Noise);
    let grid = StepGrid::UniformT.times(&*p, 4, 1.0, 1e-3).unwrap();
    let samplers: Vec<Box<dyn Sampler>> = vec![
        Box::new(EulerMaruyama),
        Box::new(EulerOde),
        Box::new(Posterior),
        Box::new(Mrs::ode(2, Form::Data)),
        Box::new(Mrs::sde(2, Form::Noise)),
        Box::new(DpmSolverSingle {
            order: 2,
            form: Form::Data,
        }),
        Box::new(EdmHeun::default()),
        Box::new(PredictorCorrector::default()),
    ];
    let bad = [
        randn(&mut rng(0), 4, 3),
        Tensor::from(1.0f64),
        Tensor::from_slice(&[1i64, 2, 3, 4]).view([2, 2]),
    ];
    for s in &samplers {
        for x in &bad {
            let err = s.sample(&*p, &m, x, &grid, &mut SeededNoise::new(0));
            assert!(
                matches!(err, Err(Error::ShapeMismatch { .. })),
                "{}: {:?} gave {err:?}",
                s.name(),
                x.size()
            );
        }
    }
}
