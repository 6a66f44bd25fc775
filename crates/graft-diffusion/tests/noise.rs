//! Noise sources: the Brownian tree is one path whatever times are asked for.

mod common;

use common::*;
use graft_diffusion::gmm::Gmm;
use graft_diffusion::grid::StepGrid;
use graft_diffusion::integrator::Form;
use graft_diffusion::noise::{BrownianTree, NoiseSource, SeededNoise};
use graft_diffusion::param::Parameterization;
use graft_diffusion::samplers::{Mrs, Sampler};
use graft_tensor::tch::{Device, Kind, Tensor};

#[test]
fn brownian_increments_add_up_over_subintervals() {
    let like = Tensor::zeros([50, 3], (Kind::Double, graft_tensor::tch::Device::Cpu));
    let mut tree = BrownianTree::new(7, 0.0, 1.0, 24).unwrap();
    let (a, b, c) = (0.9, 0.55, 0.1);
    let whole = tree.standard_normal(&like, a, c).unwrap() * (a - c).sqrt();
    let first = tree.standard_normal(&like, a, b).unwrap() * (a - b).sqrt();
    let second = tree.standard_normal(&like, b, c).unwrap() * (b - c).sqrt();
    assert!(max_abs(&whole, &(first + second)) < 1e-12);
}

#[test]
fn brownian_increments_are_standard_normal() {
    let like = Tensor::zeros([4000], (Kind::Double, graft_tensor::tch::Device::Cpu));
    let mut tree = BrownianTree::new(3, 0.0, 1.0, 20).unwrap();
    let z = tree.standard_normal(&like, 0.8, 0.3).unwrap();
    let (m, v) = (
        z.mean(Kind::Double).double_value(&[]),
        z.var(true).double_value(&[]),
    );
    assert!(m.abs() < 4.0 / 4000f64.sqrt(), "mean {m}");
    assert!((v - 1.0).abs() < 4.0 * (2.0 / 4000f64).sqrt(), "var {v}");
    let z2 = tree.standard_normal(&like, 0.3, 0.1).unwrap();
    let corr = (&z * &z2).mean(Kind::Double).double_value(&[]);
    assert!(
        corr.abs() < 4.0 / 4000f64.sqrt(),
        "disjoint increments correlated: {corr}"
    );
}

/// The same tree seed gives SDE samples at 20 and 40 steps that are much closer
/// to each other than independent seeds do.
#[test]
fn brownian_tree_keeps_samples_consistent_across_step_counts() {
    let p = cosine(1.0, None);
    let g = Gmm::new(
        vec![1.0, 1.0],
        t2(&[vec![-1.0, 0.0], vec![1.0, 0.5]]),
        vec![0.2, 0.2],
    )
    .unwrap();
    let m = oracle(&g, p.clone(), Parameterization::Data);
    let x = g.sample_marginal(&*p, 1.0, 200, &mut rng(1)).unwrap();
    let s = Mrs::sde(2, Form::Data);
    let run = |steps: usize, noise: &mut dyn NoiseSource| {
        let grid = StepGrid::UniformT.times(&*p, steps, 1.0, 1e-3).unwrap();
        s.sample(&*p, &m, &x, &grid, noise).unwrap().0
    };
    let a = run(20, &mut BrownianTree::new(5, 0.0, 1.0, 20).unwrap());
    let b = run(40, &mut BrownianTree::new(5, 0.0, 1.0, 20).unwrap());
    let c = run(40, &mut SeededNoise::new(5));
    let d = run(40, &mut SeededNoise::new(6));
    let tree_gap = graft_diffusion::metrics::pathwise_rmse(&a, &b).unwrap();
    let indep_gap = graft_diffusion::metrics::pathwise_rmse(&c, &d).unwrap();
    assert!(
        tree_gap < 0.5 * indep_gap,
        "tree {tree_gap} vs independent {indep_gap}"
    );
}

/// Draws not tied to a step (PC's corrector, DLG's Langevin moves) come from a
/// separate stream of the tree's seed: they leave the path untouched, repeat
/// with the seed, and let PC run on a Brownian tree.
#[test]
fn brownian_tree_independent_draws_leave_the_path_alone() {
    use graft_diffusion::samplers::PredictorCorrector;
    let like = Tensor::zeros([30, 2], (Kind::Double, graft_tensor::tch::Device::Cpu));
    let mut plain = BrownianTree::new(5, 0.0, 1.0, 16).unwrap();
    let mut mixed = BrownianTree::new(5, 0.0, 1.0, 16).unwrap();
    let a = mixed.independent_normal(&like).unwrap();
    let b = mixed.independent_normal(&like).unwrap();
    assert!(max_abs(&a, &b) > 0.1, "successive independent draws differ");
    let again = BrownianTree::new(5, 0.0, 1.0, 16)
        .unwrap()
        .independent_normal(&like)
        .unwrap();
    assert_eq!(max_abs(&a, &again), 0.0);
    let path = plain.standard_normal(&like, 0.9, 0.4).unwrap();
    assert_eq!(
        max_abs(&path, &mixed.standard_normal(&like, 0.9, 0.4).unwrap()),
        0.0
    );

    let p = cosine(1.0, None);
    let g = Gmm::new(
        vec![1.0, 1.0],
        t2(&[vec![-1.0, 0.0], vec![1.0, 0.5]]),
        vec![0.2, 0.2],
    )
    .unwrap();
    let m = oracle(&g, p.clone(), Parameterization::Data);
    let x = g.sample_marginal(&*p, 1.0, 40, &mut rng(2)).unwrap();
    let grid = StepGrid::UniformLambda { lambda_min: None }
        .times(&*p, 10, 1.0, 1e-3)
        .unwrap();
    let run = || {
        let mut tree = BrownianTree::new(9, 1e-3, 1.0, 16).unwrap();
        PredictorCorrector::default()
            .sample(&*p, &m, &x, &grid, &mut tree)
            .unwrap()
            .0
    };
    let (first, second) = (run(), run());
    assert!(first.isfinite().all().int64_value(&[]) == 1);
    assert_eq!(max_abs(&first, &second), 0.0);
}

/// The tree reuses the last query's bisection path and values; what it
/// returns must still not depend on what was asked before: each step's
/// increment is the same bits from a fresh tree, in any order.
#[test]
fn brownian_tree_values_do_not_depend_on_the_query_order() {
    let like = Tensor::zeros([3, 5], (Kind::Float, Device::Cpu));
    let times: Vec<f64> = (0..=20).map(|i| 1.0 - i as f64 / 20.0).collect();
    let steps: Vec<(f64, f64)> = times.windows(2).map(|w| (w[0], w[1])).collect();
    let mut forward = BrownianTree::new(9, 0.0, 1.0, 16).unwrap();
    let mut backward = BrownianTree::new(9, 0.0, 1.0, 16).unwrap();
    let a: Vec<Tensor> = steps
        .iter()
        .map(|&(s, t)| forward.standard_normal(&like, s, t).unwrap())
        .collect();
    let mut b: Vec<Tensor> = steps
        .iter()
        .rev()
        .map(|&(s, t)| backward.standard_normal(&like, s, t).unwrap())
        .collect();
    b.reverse();
    for (k, (&(s, t), x)) in steps.iter().zip(&a).enumerate() {
        let fresh = BrownianTree::new(9, 0.0, 1.0, 16)
            .unwrap()
            .standard_normal(&like, s, t)
            .unwrap();
        assert!(x.equal(&fresh), "step {k}: forward order vs a fresh tree");
        assert!(
            b[k].equal(&fresh),
            "step {k}: backward order vs a fresh tree"
        );
    }
}
