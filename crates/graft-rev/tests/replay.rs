//! Recomputation side effects: dropout masks are replayed from per-layer
//! seeds (P5), and BatchNorm running statistics are updated once per step
//! (P7), as with plain autograd.

mod common;

use common::{assert_grads_close, mlp_stack, opts, rel_err, step};
use graft_rev::mlp::MlpCouplingConfig;
use graft_rev::subnet::batch_norm_guarded;
use graft_rev::{CallCtx, Coupling, CouplingConfig, Layer, Stack, Strategy};
use graft_tensor::tch::nn::{self, Module, VarStore};
use graft_tensor::tch::{Device, Kind, Tensor};
use proptest::prelude::*;
use std::rc::Rc;

proptest! {
    #![proptest_config(graft_tensor::testing::proptest_config(32))]

    /// P5: with dropout p = 0.1 in F and G, the reversible and checkpointed
    /// gradients equal plain autograd's computed with the same masks (f64, 1e-9).
    #[test]
    fn dropout_replay_gives_autograd_gradients(
        batch in 1i64..=4, half in 2i64..=8, depth in 1usize..=6, run_seed in any::<u64>(), seed in any::<u32>(),
    ) {
        let _rng = common::seeded(seed.into());
        let cfg = MlpCouplingConfig { half, hidden: 8, dropout: 0.1, ..Default::default() };
        let (vs, stack) = mlp_stack(depth, &cfg, Kind::Double);
        let o = (Kind::Double, Device::Cpu);
        let x = Tensor::randn([batch, 2 * half], o);
        let w = Tensor::randn([batch, 2 * half], o);
        let (_, gx_ref, g_ref) = step(&vs, &stack, &x, &w, opts(Strategy::Plain, run_seed));
        for s in [Strategy::Checkpoint, Strategy::Reversible] {
            let (_, gx, g) = step(&vs, &stack, &x, &w, opts(s, run_seed));
            prop_assert!(rel_err(&gx, &gx_ref) <= 1e-9, "{s:?} {}", rel_err(&gx, &gx_ref));
            assert_grads_close(&g, &g_ref, 1e-9, s.name());
        }
    }
}

#[test]
fn dropout_is_active_and_its_masks_follow_the_run_seed() {
    let _rng = common::seeded(11);
    let cfg = MlpCouplingConfig {
        half: 8,
        hidden: 64,
        dropout: 0.1,
        ..Default::default()
    };
    let (vs, stack) = mlp_stack(3, &cfg, Kind::Double);
    let o = (Kind::Double, Device::Cpu);
    let x = Tensor::randn([4, 16], o);
    let w = Tensor::randn([4, 16], o);
    let (_, a, _) = step(&vs, &stack, &x, &w, opts(Strategy::Plain, 1));
    let (_, b, _) = step(&vs, &stack, &x, &w, opts(Strategy::Plain, 2));
    let (_, c, _) = step(&vs, &stack, &x, &w, opts(Strategy::Reversible, 1));
    assert!(rel_err(&a, &b) > 1e-3, "different seeds, different masks");
    assert!(rel_err(&c, &a) <= 1e-9);
    // Evaluation mode: no dropout, the seed does not matter.
    let eval = |seed| {
        let o = graft_rev::RunOptions {
            strategy: Strategy::Reversible,
            train: false,
            seed,
        };
        stack.forward(&x, o).unwrap().output
    };
    assert_eq!(rel_err(&eval(1), &eval(2)), 0.0);
}

/// One additive coupling whose F and G are Linear → BatchNorm on `[B, c]`,
/// the BatchNorm either guarded or plain (`forward_t`, updated by every call).
fn bn_stack(vs: &VarStore, c: i64, guarded: bool) -> (Stack, Vec<Rc<nn::BatchNorm>>) {
    let p = vs.root();
    let mut bns = Vec::new();
    let mut make = |name: &str| {
        let lin = nn::linear(&p / name / "lin", c, c, Default::default());
        let bn = Rc::new(nn::batch_norm1d(&p / name / "bn", c, Default::default()));
        bns.push(bn.clone());
        move |x: &Tensor, ctx: &CallCtx| {
            let h = lin.forward(x);
            if guarded {
                batch_norm_guarded(&bn, &h, ctx, 1e-5)
            } else {
                Ok(nn::ModuleT::forward_t(bn.as_ref(), &h, ctx.train))
            }
        }
    };
    let f = make("f");
    let g = make("g");
    let block = Coupling::new(f, g, CouplingConfig::default()).unwrap();
    (Stack::new(vec![Layer::reversible(block)]), bns)
}

fn running_stats(bns: &[Rc<nn::BatchNorm>]) -> Tensor {
    let parts: Vec<Tensor> = bns
        .iter()
        .flat_map(|b| [b.running_mean.copy(), b.running_var.copy()])
        .collect();
    Tensor::cat(&parts, 0)
}

#[test]
fn batch_norm_statistics_after_a_reversible_step_equal_a_plain_step() {
    let _rng = common::seeded(5);
    let o = (Kind::Double, Device::Cpu);
    let x = Tensor::randn([6, 8], o) * 3 + 1;
    let w = Tensor::randn([6, 8], o);
    let mut results = Vec::new();
    for (strategy, guarded) in [
        (Strategy::Plain, true),
        (Strategy::Reversible, true),
        (Strategy::Checkpoint, true),
        (Strategy::Reversible, false),
    ] {
        graft_tensor::tch::manual_seed(9);
        let mut vs = VarStore::new(Device::Cpu);
        let (stack, bns) = bn_stack(&vs, 4, guarded);
        vs.set_kind(Kind::Double);
        let (_, gx, g) = step(&vs, &stack, &x, &w, opts(strategy, 0));
        results.push((running_stats(&bns), gx, g));
    }
    let (stats_ref, gx_ref, g_ref) = &results[0];
    for (i, (stats, gx, g)) in results[1..3].iter().enumerate() {
        assert!(stats.allclose(stats_ref, 1e-12, 1e-12, false), "case {i}");
        assert!(rel_err(gx, gx_ref) <= 1e-9);
        assert_grads_close(g, g_ref, 1e-9, "batch norm");
    }
    // Unguarded, the recomputation updates the statistics a second time.
    let (stats_unguarded, _, _) = &results[3];
    assert!(!stats_unguarded.allclose(stats_ref, 1e-3, 1e-3, false));
}
