//! DMCMC's Denoising Langevin Gibbs: NFE accounting (n_skip + integrator),
//! chains descend to low noise, sampled levels follow the posterior, bad configs refused.

mod common;

use common::*;
use graft_diffusion::Error;
use graft_diffusion::gmm::{Gmm, GmmModel};
use graft_diffusion::grid::StepGrid;
use graft_diffusion::noise::SeededNoise;
use graft_diffusion::param::Parameterization;
use graft_diffusion::process::{Process, Ve};
use graft_diffusion::samplers::{Dlg, EdmHeun, ExactLevels, LevelChoice};
use std::rc::Rc;

fn setup() -> (Rc<Ve>, Gmm, GmmModel) {
    let ve = Rc::new(Ve::new(0.002, 20.0).unwrap());
    let g = Gmm::new(
        vec![1.0, 1.0],
        t2(&[vec![-1.0, 0.0, 0.5], vec![1.0, 0.5, -0.5]]),
        vec![0.05, 0.05],
    )
    .unwrap();
    let m = GmmModel::new(g.clone(), ve.clone(), Parameterization::Data);
    (ve, g, m)
}

fn cfg(choice: LevelChoice, n_skip: usize, points: usize) -> Dlg {
    Dlg {
        eta: 0.02,
        n_skip,
        levels: (0..60).map(|i| 1.0 - i as f64 / 59.0 * 0.999).collect(),
        choice,
        grid: StepGrid::Karras { rho: 7.0 },
        steps: points - 1,
        t_end: 0.0,
    }
}

#[test]
fn emission_costs_n_skip_plus_the_integrator_and_chains_descend() {
    let (ve, g, m) = setup();
    let post = ExactLevels {
        gmm: &g,
        process: &*ve,
    };
    let mut r = rng(1);
    let x = g.sample_marginal(&*ve, 0.5, 200, &mut r).unwrap();
    let d = cfg(LevelChoice::Argmax, 3, 5);
    let mut chains = d.start(x);
    let mut noise = SeededNoise::new(2);
    d.burn_in(&*ve, &m, &post, &mut chains, 30, &mut noise, &mut r)
        .unwrap();
    let (out, st) = d
        .emit(
            &*ve,
            &m,
            &post,
            &EdmHeun::deterministic(),
            &mut chains,
            &mut noise,
            &mut r,
        )
        .unwrap();
    assert_eq!(st.nfe, 3 + (2 * 5 - 1));
    assert_eq!(st.classifier_calls, 3);
    assert_eq!(out.size(), vec![200, 3]);
    let mean_sigma: f64 = chains
        .level
        .iter()
        .map(|&j| ve.sigma(d.levels[j]))
        .sum::<f64>()
        / 200.0;
    assert!(
        mean_sigma < 2.0,
        "chains stayed noisy: mean sigma {mean_sigma}"
    );
    let s = graft_diffusion::metrics::mode_stats(&out, &g).unwrap();
    assert_eq!(s.coverage, 2);
    assert!(s.std_ratio < 3.0, "{s:?}");
}

/// Sampled levels: their empirical distribution over many chains at one x follows c(j|x).
#[test]
fn sampled_levels_follow_the_level_posterior() {
    let (ve, g, m) = setup();
    let post = ExactLevels {
        gmm: &g,
        process: &*ve,
    };
    let mut d = cfg(LevelChoice::Sample, 1, 3);
    d.levels = vec![0.6, 0.5, 0.4];
    d.eta = 1e-12;
    let x = t2(&[vec![-1.0, 0.0, 0.5]]).repeat([4000, 1]) * 1.0
        + randn(&mut rng(3), 4000, 3) * ve.sigma(0.5);
    let x0 = x.get(0).unsqueeze(0).repeat([4000, 1]);
    let mut chains = d.start(x0.shallow_clone());
    d.burn_in(
        &*ve,
        &m,
        &post,
        &mut chains,
        1,
        &mut SeededNoise::new(0),
        &mut rng(4),
    )
    .unwrap();
    let p = post
        .log_posterior_of(&x0.get(0).unsqueeze(0), &d.levels)
        .unwrap()
        .exp();
    let want = Vec::<f64>::try_from(p.get(0)).unwrap();
    for (j, w) in want.iter().enumerate() {
        let got = chains.level.iter().filter(|&&l| l == j).count() as f64 / 4000.0;
        assert!(
            (got - w).abs() < 4.0 * (w * (1.0 - w) / 4000.0).sqrt() + 1e-3,
            "level {j}: {got} vs {w}"
        );
    }
}

#[test]
fn bad_dlg_configurations_are_refused() {
    let (ve, g, m) = setup();
    let post = ExactLevels {
        gmm: &g,
        process: &*ve,
    };
    let x = randn(&mut rng(0), 4, 3);
    let mut d = cfg(LevelChoice::Argmax, 1, 3);
    d.eta = 0.0;
    let mut chains = d.start(x.shallow_clone());
    let err = d.burn_in(
        &*ve,
        &m,
        &post,
        &mut chains,
        1,
        &mut SeededNoise::new(0),
        &mut rng(0),
    );
    assert!(
        matches!(err, Err(Error::Invalid { name: "eta", .. })),
        "{:?}",
        err.err()
    );
    let mut d = cfg(LevelChoice::Argmax, 1, 3);
    d.levels = vec![0.5, 0.7];
    let err = d.burn_in(
        &*ve,
        &m,
        &post,
        &mut chains,
        1,
        &mut SeededNoise::new(0),
        &mut rng(0),
    );
    assert!(
        matches!(err, Err(Error::NotMonotone { .. })),
        "{:?}",
        err.err()
    );
}
