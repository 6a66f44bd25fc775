//! DMCMC's Denoising Langevin Gibbs: NFE accounting (n_skip + integrator,
//! +1 with the Tweedie step), chains descend to low noise, sampled levels
//! follow the posterior, the Tweedie step is the oracle's posterior mean, bad
//! configs refused.

mod common;

use common::*;
use graft_diffusion::Error;
use graft_diffusion::gmm::{Gmm, GmmModel};
use graft_diffusion::grid::StepGrid;
use graft_diffusion::noise::SeededNoise;
use graft_diffusion::param::Parameterization;
use graft_diffusion::process::{MeanReverting, Process, Ve};
use graft_diffusion::samplers::{Chains, Dlg, EdmHeun, ExactLevels, LevelChoice, Stats};
use graft_tensor::tch::Tensor;
use std::sync::Arc;

fn setup() -> (Arc<Ve>, Gmm, GmmModel) {
    let ve = Arc::new(Ve::new(0.002, 20.0).unwrap());
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
        tweedie: None,
    }
}

/// `n` chains started at t = 0.5 of the exact marginal, burnt in for 30
/// iterations under `d`, then one emission through a deterministic Heun
/// descent; returns the chains, the samples, the emission's stats and the
/// generator (for drawing references from the same stream).
fn run_chains(
    d: &Dlg,
    n: usize,
    seeds: (u64, u64),
) -> (Chains, Tensor, Stats, graft_diffusion::noise::ChaCha8Rng) {
    let (ve, g, m) = setup();
    let post = ExactLevels {
        gmm: &g,
        process: &*ve,
    };
    let mut r = rng(seeds.0);
    let x = g.sample_marginal(&*ve, 0.5, n, &mut r).unwrap();
    let mut chains = d.start(x);
    let mut noise = SeededNoise::new(seeds.1);
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
    (chains, out, st, r)
}

#[test]
fn emission_costs_n_skip_plus_the_integrator_and_chains_descend() {
    let (ve, g, _) = setup();
    let d = cfg(LevelChoice::Argmax, 3, 5);
    let (chains, out, st, _) = run_chains(&d, 200, (1, 2));
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

/// Two identical chain sets emitted with the same seeds, without and with the
/// Tweedie step at `t_eps`: `(plain, with Tweedie, NFE plain, NFE Tweedie)`.
fn emit_pair(
    process: &dyn Process,
    g: &Gmm,
    model: &GmmModel,
    d: &Dlg,
    x: &Tensor,
    t_eps: f64,
) -> (Tensor, Tensor, usize, usize) {
    let post = ExactLevels { gmm: g, process };
    let heun = EdmHeun::deterministic();
    let run = |tweedie: Option<f64>| {
        let mut chains = d.start(x.copy());
        let (mut noise, mut r) = (SeededNoise::new(7), rng(8));
        d.burn_in(process, model, &post, &mut chains, 5, &mut noise, &mut r)
            .unwrap();
        let d = Dlg {
            tweedie,
            ..d.clone()
        };
        d.emit(
            process,
            model,
            &post,
            &heun,
            &mut chains,
            &mut noise,
            &mut r,
        )
        .unwrap()
    };
    let (a, sa) = run(None);
    let (b, sb) = run(Some(t_eps));
    (a, b, sa.nfe, sb.nfe)
}

/// NFE per sample = n_skip + NFE(integrator) (+1 with Tweedie), spec §7.4-9;
/// without Tweedie the emission is the plain one, bit for bit.
#[test]
fn tweedie_adds_one_nfe_and_emit_is_the_step_free_case() {
    let (ve, g, m) = setup();
    let x = g.sample_marginal(&*ve, 0.5, 16, &mut rng(5)).unwrap();
    let t_eps = ve.t_of_lambda(-(1e-2f64).ln()).unwrap();
    for (n_skip, points) in [(1usize, 5usize), (3, 4)] {
        let d = cfg(LevelChoice::Argmax, n_skip, points);
        let (a, _, na, nb) = emit_pair(&*ve, &g, &m, &d, &x, t_eps);
        assert_eq!(na, n_skip + 2 * points - 1);
        assert_eq!(nb, n_skip + 2 * points - 1 + 1);
        let post = ExactLevels {
            gmm: &g,
            process: &*ve,
        };
        let mut chains = d.start(x.copy());
        let (mut noise, mut r) = (SeededNoise::new(7), rng(8));
        d.burn_in(&*ve, &m, &post, &mut chains, 5, &mut noise, &mut r)
            .unwrap();
        let (e, st) = d
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
        assert_eq!(st.nfe, na);
        assert_eq!(max_abs(&e, &a), 0.0);
    }
}

/// With the exact GMM model (noise-predicting, so the step goes through the
/// (x − (1−α)μ + σ² s)/α conversion), the Tweedie step equals the oracle's
/// per-component posterior mean at t_ε, on VE (x + ε² s) and on a
/// mean-reverting process with μ ≠ 0 and σ∞ ≠ 1; at another time it does not.
#[test]
fn tweedie_step_is_the_oracle_posterior_mean() {
    let (ve, g, _) = setup();
    let mr: Arc<dyn Process> = Arc::new(
        MeanReverting::continuous_cosine(1e-3, 0.7, Some(t1(&[0.3, -0.2, 0.1]).unsqueeze(0)))
            .unwrap(),
    );
    let cases: Vec<(Arc<dyn Process>, f64, f64)> = vec![
        (ve.clone(), 1.0, ve.t_of_lambda(-(1e-2f64).ln()).unwrap()),
        (mr.clone(), 0.999, 0.02),
    ];
    for (p, t_hi, t_eps) in cases {
        let m = GmmModel::new(g.clone(), p.clone(), Parameterization::Noise);
        let mut d = cfg(LevelChoice::Argmax, 2, 4);
        d.levels = (0..30)
            .map(|i| t_hi - i as f64 / 29.0 * (t_hi - 0.05))
            .collect();
        d.t_end = if p.sigma(0.0) > 0.0 { 0.0 } else { 1e-3 };
        let x = g.sample_marginal(&*p, 0.3, 12, &mut rng(6)).unwrap();
        let (plain, tw, _, _) = emit_pair(&*p, &g, &m, &d, &x, t_eps);
        let want = g.data(&*p, &plain, t_eps).unwrap();
        let err = max_abs(&tw, &want);
        assert!(err < 1e-10, "Tweedie vs oracle x0: {err:e}");
        // The step is not a no-op, and another ε_t gives another answer.
        assert!(max_abs(&tw, &plain) > 1e-6, "Tweedie step did nothing");
        let other = g.data(&*p, &plain, 3.0 * t_eps).unwrap();
        assert!(max_abs(&tw, &other) > 1e-6, "t_eps did not matter");
    }
}

#[test]
fn tweedie_outside_the_process_or_at_zero_sigma_is_refused() {
    let (ve, g, m) = setup();
    let post = ExactLevels {
        gmm: &g,
        process: &*ve,
    };
    let d = cfg(LevelChoice::Argmax, 1, 3);
    let heun = EdmHeun::deterministic();
    let x = g.sample_marginal(&*ve, 0.5, 4, &mut rng(0)).unwrap();
    let mut chains = d.start(x.shallow_clone());
    let d = Dlg {
        tweedie: Some(1.5),
        ..d
    };
    let err = d.emit(
        &*ve,
        &m,
        &post,
        &heun,
        &mut chains,
        &mut SeededNoise::new(0),
        &mut rng(0),
    );
    assert!(
        matches!(err, Err(Error::TimeOutOfRange { .. })),
        "{:?}",
        err.err()
    );
    let vp: Arc<dyn Process> = Arc::new(MeanReverting::vp());
    let mv = GmmModel::new(g.clone(), vp.clone(), Parameterization::Noise);
    let post = ExactLevels {
        gmm: &g,
        process: &*vp,
    };
    let mut d = cfg(LevelChoice::Argmax, 1, 3);
    d.levels = vec![0.9, 0.5, 0.2];
    d.t_end = 1e-3;
    d.tweedie = Some(0.0);
    let err = d.emit(
        &*vp,
        &mv,
        &post,
        &heun,
        &mut chains,
        &mut SeededNoise::new(0),
        &mut rng(0),
    );
    assert!(
        matches!(err, Err(Error::SigmaZero { .. })),
        "{:?}",
        err.err()
    );
}

/// One Langevin step of DLG on a mean-reverting process whose μ is a `[d]`
/// vector, with a level group of a single chain: `x + (η/2) s(x, t_j) + √η z`
/// row by row, against the oracle score (the evaluator must broadcast μ
/// against a `[1, d]` group).
#[test]
fn langevin_step_with_a_vector_mu_and_a_one_chain_level_group() {
    let g = setup().1;
    let mu = t1(&[0.3, -0.2, 0.1]);
    let p: Arc<dyn Process> =
        Arc::new(MeanReverting::continuous_cosine(1e-3, 0.7, Some(mu)).unwrap());
    let m = GmmModel::new(g.clone(), p.clone(), Parameterization::Noise);
    let post = ExactLevels {
        gmm: &g,
        process: &*p,
    };
    let mut d = cfg(LevelChoice::Argmax, 1, 3);
    d.levels = vec![0.8, 0.5, 0.2];
    let x = g.sample_marginal(&*p, 0.5, 3, &mut rng(9)).unwrap();
    let mut chains = d.start(x.copy());
    chains.level = vec![0, 1, 1];
    d.burn_in(
        &*p,
        &m,
        &post,
        &mut chains,
        1,
        &mut SeededNoise::new(3),
        &mut rng(0),
    )
    .unwrap();
    let z = graft_diffusion::noise::NoiseSource::standard_normal(
        &mut SeededNoise::new(3),
        &x,
        0.0,
        0.0,
    )
    .unwrap();
    for (i, j) in [(0i64, 0usize), (1, 1), (2, 1)] {
        let xi = x.get(i).unsqueeze(0);
        let want = &xi
            + g.score(&*p, &xi, d.levels[j]).unwrap() * (d.eta / 2.0)
            + z.get(i).unsqueeze(0) * d.eta.sqrt();
        let err = max_abs(&chains.x.get(i).unsqueeze(0), &want);
        assert!(err < 1e-12, "row {i}: {err:e}");
    }
}

/// The emitted samples are the data distribution, measured: with the exact
/// oracle and level posterior, 400 chains burnt in and emitted through a
/// 10-point Heun descent give both modes in proportion (mode TV), the
/// modes' own spread (std ratio near 1, few outliers) and an MMD² to exact
/// samples within the spread of exact samples against each other. A
/// sampler that emitted the chains' noisy states, or collapsed a mode,
/// fails each of these.
#[test]
fn emitted_samples_match_the_data_distribution() {
    use graft_diffusion::metrics::{MMD_SCALES, median_distance, mmd2_unbiased, mode_stats};
    let (_, g, _) = setup();
    let n = 400;
    let d = cfg(LevelChoice::Argmax, 1, 10);
    let (chains, out, _, mut r) = run_chains(&d, n, (11, 12));
    let s = mode_stats(&out, &g).unwrap();
    let reference = g.sample_data(n, &mut r).unwrap();
    let bw = median_distance(&reference).unwrap();
    let floor: Vec<f64> = (0..5)
        .map(|_| {
            let other = g.sample_data(n, &mut r).unwrap();
            mmd2_unbiased(&other, &reference, bw, &MMD_SCALES).unwrap()
        })
        .collect();
    let mean = floor.iter().sum::<f64>() / 5.0;
    let std = (floor.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
    let mmd = mmd2_unbiased(&out, &reference, bw, &MMD_SCALES).unwrap();
    println!("{s:?}; MMD² {mmd:.3e}, exact samples {mean:.3e} ± {std:.1e}");
    assert_eq!(s.coverage, 2, "{s:?}");
    assert!(s.tv <= 0.1, "modes out of proportion: {s:?}");
    assert!((0.85..=1.2).contains(&s.std_ratio), "{s:?}");
    assert!(s.outliers <= 0.02, "{s:?}");
    assert!(
        mmd <= mean + 5.0 * std,
        "MMD² {mmd:e} vs exact {mean:e} ± {std:e}"
    );
    // Negative control: the chains' own (noisy) states fail the same bounds.
    let noisy = mode_stats(&chains.x, &g).unwrap();
    let noisy_mmd = mmd2_unbiased(&chains.x, &reference, bw, &MMD_SCALES).unwrap();
    assert!(
        noisy.std_ratio > 1.2 && noisy_mmd > mean + 5.0 * std,
        "{noisy:?} {noisy_mmd:e}"
    );
}
