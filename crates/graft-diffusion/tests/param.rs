//! Parameterization round trips (spec §7.4-3) and the GMM oracle (§7.4-4).

mod common;

use common::*;
use graft_diffusion::gmm::Gmm;
use graft_diffusion::param::{Parameterization as P, convert};
use graft_diffusion::process::Process;
use graft_tensor::tch::{Kind, Tensor};
use graft_tensor::testing::proptest_config;
use proptest::prelude::*;

const ALL: [P; 4] = [P::Noise, P::Data, P::Velocity, P::Score];

proptest! {
    #![proptest_config(proptest_config(32))]

    #[test]
    fn conversions_round_trip_to_1e_12(sigma_inf in 0.1f64..2.0, t in 0.01f64..0.95, seed in 0u64..1000, d in 1i64..8) {
        let mut r = rng(seed);
        let mu = randn(&mut r, 1, d).squeeze_dim(0);
        let p = cosine(sigma_inf, Some(mu.shallow_clone()));
        let x0 = randn(&mut r, 3, d);
        let eps = randn(&mut r, 3, d);
        let (a, s) = (p.alpha(t), p.sigma(t));
        let x = &x0 * a + &mu * (1.0 - a) + &eps * s;
        // Every parameterization's value at (x, t), from the definitions.
        let truth = |q: P| match q {
            P::Noise => eps.shallow_clone(),
            P::Data => x0.shallow_clone(),
            P::Score => &eps * (-1.0 / s),
            P::Velocity => &eps * (sigma_inf * a) - (&x0 - &mu) * (s / sigma_inf),
        };
        for from in ALL {
            for to in ALL {
                let got = convert(&*p, from, to, &truth(from), &x, t).unwrap();
                let scale = 1.0 + max_norm(&truth(to));
                prop_assert!(max_abs(&got, &truth(to)) < 1e-12 * scale * (1.0 / a), "{:?}->{:?}", from, to);
            }
        }
    }
}

#[test]
fn velocity_is_the_usual_one_at_unit_sigma_inf_and_zero_mu() {
    let p = cosine(1.0, None);
    let mut r = rng(1);
    let (x0, eps) = (randn(&mut r, 4, 3), randn(&mut r, 4, 3));
    let t = 0.4;
    let (a, s) = (p.alpha(t), p.sigma(t));
    let x = &x0 * a + &eps * s;
    let v = convert(&*p, P::Noise, P::Velocity, &eps, &x, t).unwrap();
    assert!(max_abs(&v, &(&eps * a - &x0 * s)) < 1e-13);
}

fn mixture(seed: u64, d: i64) -> Gmm {
    let mut r = rng(seed);
    Gmm::new(
        vec![1.0, 2.0, 0.5],
        randn(&mut r, 3, d),
        vec![0.3, 0.1, 0.5],
    )
    .unwrap()
}

proptest! {
    #![proptest_config(proptest_config(24))]

    #[test]
    fn gmm_score_is_the_gradient_of_log_density(seed in 0u64..500, t in 0.02f64..1.0, sigma_inf in 0.1f64..2.0, d in 1i64..5) {
        let mut r = rng(seed + 7);
        let mu = randn(&mut r, 1, d).squeeze_dim(0) * 0.5;
        let p = cosine(sigma_inf, Some(mu));
        let g = mixture(seed, d);
        let x = g.sample_marginal(&*p, t, 4, &mut r).unwrap();
        let s = g.score(&*p, &x, t).unwrap();
        let h = 1e-5;
        let mut fd = Vec::new();
        for j in 0..d {
            let e = Tensor::zeros([1, d], (Kind::Double, graft_tensor::tch::Device::Cpu));
            let _ = e.narrow(1, j, 1).fill_(h);
            let up = g.log_density(&*p, &(&x + &e), t).unwrap();
            let dn = g.log_density(&*p, &(&x - &e), t).unwrap();
            fd.push(((up - dn) / (2.0 * h)).unsqueeze(1));
        }
        let fd = Tensor::cat(&fd, 1);
        prop_assert!(max_abs(&fd, &s) < 1e-6 * (1.0 + max_norm(&s)), "fd vs score {}", max_abs(&fd, &s));
        // Tweedie equals the per-component posterior mean.
        let (a, sg) = (p.alpha(t), p.sigma(t));
        let mu_t = p.mu().unwrap();
        let tweedie = (&x - mu_t * (1.0 - a) + &s * (sg * sg)) / a;
        let x0 = g.data(&*p, &x, t).unwrap();
        prop_assert!(max_abs(&tweedie, &x0) < 1e-9 * (1.0 + max_norm(&x0)) / a, "tweedie {}", max_abs(&tweedie, &x0));
    }
}

/// The level posterior of DLG is Bayes' rule over levels: uniform prior,
/// columns are the normalised densities.
#[test]
fn level_posterior_is_normalised_bayes() {
    let p = cosine(1.0, None);
    let g = mixture(3, 2);
    let mut r = rng(4);
    let x = g.sample_marginal(&*p, 0.5, 5, &mut r).unwrap();
    let ts = [0.2, 0.5, 0.8];
    let lp = g.level_log_posterior(&*p, &x, &ts, None).unwrap();
    let sums = lp.exp().sum_dim_intlist(1, false, Kind::Double);
    assert!(
        max_abs(
            &sums,
            &Tensor::ones([5], (Kind::Double, graft_tensor::tch::Device::Cpu))
        ) < 1e-12
    );
    let l0 = g.log_density(&*p, &x, 0.2).unwrap();
    let l1 = g.log_density(&*p, &x, 0.5).unwrap();
    let ratio = lp.select(1, 0) - lp.select(1, 1);
    assert!(max_abs(&ratio, &(l0 - l1)) < 1e-10);
}
