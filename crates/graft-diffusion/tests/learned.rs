//! The learned denoiser fits the exact oracle on a simple problem, for every
//! training target, and is seeded.

mod common;

use common::*;
use graft_diffusion::gmm::Gmm;
use graft_diffusion::learned::{MlpDenoiser, MlpShape, TrainSpec};
use graft_diffusion::model::Model;
use graft_diffusion::param::{Parameterization as P, convert};
use graft_tensor::tch::Kind;

#[test]
fn a_trained_mlp_approaches_the_exact_prediction_for_every_target() {
    let _lock = graft_tensor::testing::rng_lock();
    graft_tensor::tch::set_num_threads(1); // small tensors: OpenMP barriers cost more than they save
    let p = cosine(1.0, Some(t1(&[0.3, -0.2])));
    let g = Gmm::new(vec![1.0], t2(&[vec![1.0, 0.5]]), vec![0.3]).unwrap();
    let data = g.sample_data(4000, &mut rng(0)).unwrap();
    let shape = MlpShape {
        dim: 2,
        cond_dim: 0,
        hidden: 64,
        layers: 2,
    };
    let spec = TrainSpec {
        steps: 600,
        batch: 256,
        lr: 3e-3,
        t_lo: 0.05,
        t_hi: 0.95,
    };
    let exact = oracle(&g, p.clone(), P::Data);
    for param in [P::Noise, P::Data, P::Velocity] {
        let mut net = MlpDenoiser::new(p.clone(), shape, param, 1);
        let losses = net.train(&data, None, false, spec, 2).unwrap();
        assert!(
            losses.last().unwrap() < &losses[0],
            "{param:?} loss did not fall: {losses:?}"
        );
        let t = 0.3;
        let x = g.sample_marginal(&*p, t, 500, &mut rng(3)).unwrap();
        let x0 = convert(
            &*p,
            param,
            P::Data,
            &net.eval(&x.to_kind(Kind::Float), t)
                .unwrap()
                .to_kind(Kind::Double),
            &x,
            t,
        )
        .unwrap();
        let truth = exact.eval(&x, t).unwrap();
        let rmse = graft_diffusion::metrics::pathwise_rmse(&x0, &truth).unwrap();
        // The exact posterior mean varies by ~0.3 here; an untrained net is off by ~1.
        assert!(rmse < 0.1, "{param:?}: x0 RMSE {rmse}");
    }
}

#[test]
fn the_same_seed_gives_the_same_network() {
    let _lock = graft_tensor::testing::rng_lock();
    let p = cosine(1.0, None);
    let shape = MlpShape {
        dim: 2,
        cond_dim: 0,
        hidden: 16,
        layers: 1,
    };
    let x = randn(&mut rng(0), 5, 2).to_kind(Kind::Float);
    let a = MlpDenoiser::new(p.clone(), shape, P::Noise, 7)
        .eval(&x, 0.4)
        .unwrap();
    let b = MlpDenoiser::new(p.clone(), shape, P::Noise, 7)
        .eval(&x, 0.4)
        .unwrap();
    assert!(graft_tensor::testing::bitwise_equal(&a, &b));
}

#[test]
fn wrong_input_or_condition_shapes_are_errors_not_crashes() {
    let p = cosine(1.0, None);
    let shape = MlpShape {
        dim: 2,
        cond_dim: 3,
        hidden: 8,
        layers: 1,
    };
    let mut net = MlpDenoiser::new(p, shape, P::Noise, 0);
    let x = graft_tensor::tch::Tensor::zeros([4, 2], (Kind::Float, graft_tensor::tch::Device::Cpu));
    let err = net.eval(&x, 0.5).unwrap_err().to_string();
    assert!(err.contains("needs a condition"), "{err}");
    net.set_condition(Some(x.zeros_like())); // [4, 2], not [4, 3]
    let err = net.eval(&x, 0.5).unwrap_err().to_string();
    assert!(err.contains("condition") && err.contains("[4, 3]"), "{err}");
    net.set_condition(Some(graft_tensor::tch::Tensor::zeros(
        [4, 3],
        (Kind::Float, graft_tensor::tch::Device::Cpu),
    )));
    assert_eq!(net.eval(&x, 0.5).unwrap().size(), [4, 2]);
    let wide =
        graft_tensor::tch::Tensor::zeros([4, 5], (Kind::Float, graft_tensor::tch::Device::Cpu));
    let err = net.eval(&wide, 0.5).unwrap_err().to_string();
    assert!(err.contains("[-1, 2]") && err.contains("[4, 5]"), "{err}");
}

/// A denoiser (with its process and μ) moves to another thread and
/// evaluates there as it does here; processes are shared between threads.
#[test]
fn a_denoiser_moves_between_threads() {
    fn shareable<T: Send + Sync + ?Sized>() {}
    fn movable<T: Send>() {}
    shareable::<dyn graft_diffusion::process::Process>();
    movable::<MlpDenoiser>();
    let mu = graft_tensor::tch::Tensor::from_slice(&[0.5f64, -0.5]).view([1, 2]);
    let p = cosine(1.0, Some(mu));
    let net = MlpDenoiser::new(
        p.clone(),
        MlpShape {
            dim: 2,
            cond_dim: 0,
            hidden: 8,
            layers: 2,
        },
        P::Noise,
        3,
    );
    let x =
        graft_tensor::tch::Tensor::randn([4, 2], (Kind::Double, graft_tensor::tch::Device::Cpu));
    let here = net.eval(&x, 0.5).unwrap();
    let (x2, p2) = (x.shallow_clone(), p.clone());
    let there = std::thread::spawn(move || {
        let centered = graft_diffusion::process::centered(&*p2, &x2);
        (net.eval(&x2, 0.5).unwrap(), centered)
    })
    .join()
    .unwrap();
    assert!(there.0.equal(&here));
    assert!(there.1.equal(&graft_diffusion::process::centered(&*p, &x)));
}
