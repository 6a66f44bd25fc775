//! P2: the reversible and checkpointed backward passes give the gradients of
//! plain autograd (f64 to 1e-9, f32 to 1e-4) for the input and every
//! parameter, for single-kind stacks, mixed stacks with non-invertible
//! boundaries, anchors, and with the drift check on.

mod common;

use common::{assert_grads_close, mlp_stack, opts, rel_err, step};
use graft_rev::mlp::{MlpCouplingConfig, mlp_coupling_stack};
use graft_rev::{CallCtx, Coupling, CouplingConfig, CouplingKind, Error, Layer, Stack, Strategy};
use graft_tensor::tch::nn::{self, Module, VarStore};
use graft_tensor::tch::{Device, Kind, Tensor};
use proptest::prelude::*;

fn kind_strategy() -> impl proptest::strategy::Strategy<Value = CouplingKind> {
    use proptest::strategy::Strategy as _;
    prop_oneof![
        (0.5f64..2.0, 0.5f64..2.0)
            .prop_map(|(lambda, beta)| CouplingKind::Additive { lambda, beta }),
        Just(CouplingKind::Affine),
    ]
}

proptest! {
    #![proptest_config(graft_tensor::testing::proptest_config(24))]

    /// P2 (f64): reversible and checkpoint gradients equal plain autograd's.
    /// (half ≥ 2: LayerNorm over one element is constant, and its weight's
    /// gradient is pure rounding noise.)
    #[test]
    fn reversible_gradients_equal_autograd_f64(
        batch in 1i64..=4, half in 2i64..=8, depth in 1usize..=8,
        kind in kind_strategy(), swap in any::<bool>(), seed in any::<u32>(),
    ) {
        let _rng = common::seeded(seed.into());
        let cfg = MlpCouplingConfig { half, hidden: 2 * half, layer_norm: true, dropout: 0.0, kind, swap };
        let (vs, stack) = mlp_stack(depth, &cfg, Kind::Double);
        let o = (Kind::Double, Device::Cpu);
        let x = Tensor::randn([batch, 2 * half], o);
        let w = Tensor::randn([batch, 2 * half], o);
        let (l_ref, gx_ref, g_ref) = step(&vs, &stack, &x, &w, opts(Strategy::Plain, 1));
        for s in [Strategy::Checkpoint, Strategy::Reversible] {
            let (l, gx, g) = step(&vs, &stack, &x, &w, opts(s, 1));
            prop_assert!((l - l_ref).abs() <= 1e-12 * l_ref.abs().max(1.0));
            prop_assert!(rel_err(&gx, &gx_ref) <= 1e-9, "{s:?} input grad {}", rel_err(&gx, &gx_ref));
            assert_grads_close(&g, &g_ref, 1e-9, s.name());
        }
    }

    /// P2 (f32, LayerNorm-bounded blocks, the spec's regime N ≤ 16):
    /// relative error ≤ 1e-4, for halves of 8 to 16 channels.
    ///
    /// Narrower halves are left to the f64 test above: LayerNorm over two
    /// to four elements is a steep, smoothed sign function, and there f32
    /// is not within 1e-4 of the truth even for plain autograd. Measured
    /// over 600 cases at half 2-8, depth ≤ 8 (Xeon, AVX-512): plain f32 up
    /// to 1.0e-3 from an f64 recomputation of the same weights at half 2,
    /// reversible up to 6.5e-4 from plain f32 at half 2, 1.2e-4 at half 3
    /// (which CPU kernels run changes which draws land near the steep part:
    /// this test failed on one machine and passed on another). At half
    /// 8-16, depth ≤ 16, 1000 cases: worst 3.2e-5; these 24 cases: 1.1e-5.
    #[test]
    fn reversible_gradients_equal_autograd_f32(
        batch in 1i64..=4, half in 8i64..=16, depth in 1usize..=16, seed in any::<u32>(),
    ) {
        let _rng = common::seeded(seed.into());
        let cfg = MlpCouplingConfig { half, hidden: 4 * half, layer_norm: true, ..Default::default() };
        let (vs, stack) = mlp_stack(depth, &cfg, Kind::Float);
        let o = (Kind::Float, Device::Cpu);
        let x = Tensor::randn([batch, 2 * half], o);
        let w = Tensor::randn([batch, 2 * half], o);
        let (_, gx_ref, g_ref) = step(&vs, &stack, &x, &w, opts(Strategy::Plain, 1));
        let (_, gx, g) = step(&vs, &stack, &x, &w, opts(Strategy::Reversible, 1));
        prop_assert!(rel_err(&gx, &gx_ref) <= 1e-4, "input grad {}", rel_err(&gx, &gx_ref));
        // All parameters concatenated (single small biases carry f32 noise
        // of both sides at the 1e-4 level).
        let e = rel_err(&common::concat(&g), &common::concat(&g_ref));
        prop_assert!(e <= 1e-4, "{e}");
    }

    /// P2 with anchors every k: the same gradients, and the ledger holds the
    /// anchors (one per k layers).
    #[test]
    fn anchored_gradients_equal_autograd_f64(depth in 2usize..=8, k in 1usize..=4, seed in any::<u32>()) {
        let _rng = common::seeded(seed.into());
        let cfg = MlpCouplingConfig { half: 3, hidden: 6, layer_norm: true, ..Default::default() };
        let mut vs = VarStore::new(Device::Cpu);
        let stack = mlp_coupling_stack(&vs.root(), depth, &cfg).unwrap().with_anchors(k).unwrap();
        vs.set_kind(Kind::Double);
        let o = (Kind::Double, Device::Cpu);
        let x = Tensor::randn([2, 6], o);
        let w = Tensor::randn([2, 6], o);
        let (_, gx_ref, g_ref) = step(&vs, &stack, &x, &w, opts(Strategy::Plain, 0));
        let (_, gx, g) = step(&vs, &stack, &x, &w, opts(Strategy::Reversible, 0));
        prop_assert!(rel_err(&gx, &gx_ref) <= 1e-9);
        assert_grads_close(&g, &g_ref, 1e-9, "anchored");
        let tape = stack.forward(&x, opts(Strategy::Reversible, 0)).unwrap();
        let anchors = (1..depth).filter(|i| i % k == 0).count() as u64;
        prop_assert_eq!(tape.ledger().anchor_bytes, anchors * 2 * 6 * 8);
    }
}

/// Additive couplings on 6 channels, a non-invertible boundary (Linear 6 → 4
/// and tanh), swapped affine couplings on 4 channels, in f64.
fn mixed_stack(vs: &VarStore) -> Stack {
    let p = vs.root();
    let mut layers = Vec::new();
    let cfg6 = MlpCouplingConfig {
        half: 3,
        hidden: 5,
        ..Default::default()
    };
    // Affine scales σ(s + 2) collapse a half to ~0 on unbounded inputs and
    // make it unrecoverable (NaN on inversion): LayerNorm bounds them.
    let cfg4 = MlpCouplingConfig {
        half: 2,
        hidden: 5,
        kind: CouplingKind::Affine,
        swap: true,
        layer_norm: true,
        ..Default::default()
    };
    for (i, cfg) in [cfg6, cfg6].iter().enumerate() {
        let s = mlp_coupling_stack(&(&p / format!("low{i}")), 1, cfg).unwrap();
        layers.extend(s.into_layers());
    }
    let down = nn::linear(&p / "down", 6, 4, Default::default());
    layers.push(Layer::plain(move |x: &Tensor, _: &CallCtx| {
        Ok(down.forward(x).tanh())
    }));
    for i in 0..3 {
        let s = mlp_coupling_stack(&(&p / format!("high{i}")), 1, &cfg4).unwrap();
        layers.extend(s.into_layers());
    }
    Stack::new(layers)
}

#[test]
fn mixed_stack_gradients_equal_autograd_f64() {
    for seed in 0..5 {
        let _rng = common::seeded(seed);
        let mut vs = VarStore::new(Device::Cpu);
        let stack = mixed_stack(&vs);
        vs.set_kind(Kind::Double);
        let o = (Kind::Double, Device::Cpu);
        let x = Tensor::randn([3, 6], o);
        let w = Tensor::randn([3, 4], o);
        let (_, gx_ref, g_ref) = step(&vs, &stack, &x, &w, opts(Strategy::Plain, 0));
        for s in [Strategy::Checkpoint, Strategy::Reversible] {
            let (_, gx, g) = step(&vs, &stack, &x, &w, opts(s, 0));
            let e = rel_err(&gx, &gx_ref);
            assert!(e <= 1e-9, "seed {seed} {s:?}: input grad rel err {e}");
            assert_grads_close(&g, &g_ref, 1e-9, s.name());
        }
        // The reversible ledger holds the boundary's input and nothing else but
        // the output and the seeds.
        let tape = stack.forward(&x, opts(Strategy::Reversible, 0)).unwrap();
        let l = tape.ledger();
        assert_eq!(l.boundary_bytes, 3 * 6 * 8);
        assert_eq!(l.output_bytes, 3 * 4 * 8);
        assert_eq!(l.seed_bytes, 6 * 8);
        assert_eq!(l.anchor_bytes, 0);
        let ck = stack
            .forward(&x, opts(Strategy::Checkpoint, 0))
            .unwrap()
            .ledger();
        assert_eq!(ck.boundary_bytes, (3 * 3 * 6 + 3 * 3 * 4) * 8);
    }
}

#[test]
fn drift_check_reports_a_tiny_error_in_f64_and_fails_when_tolerance_is_exceeded() {
    let _rng = common::seeded(3);
    let cfg = MlpCouplingConfig {
        half: 4,
        hidden: 8,
        kind: CouplingKind::Additive {
            lambda: 0.1,
            beta: 1.0,
        },
        ..Default::default()
    };
    let o = (Kind::Double, Device::Cpu);
    let x = Tensor::randn([2, 8], o);
    let w = Tensor::randn([2, 8], o);
    let mut vs = VarStore::new(Device::Cpu);
    let stack = mlp_coupling_stack(&vs.root(), 6, &cfg)
        .unwrap()
        .with_drift_check(1e-3)
        .unwrap();
    vs.set_kind(Kind::Double);
    let tape = stack.forward(&x, opts(Strategy::Reversible, 0)).unwrap();
    assert_eq!(
        tape.ledger().anchor_bytes,
        2 * 8 * 8,
        "the input is kept for the check"
    );
    (tape.output.square() * &w).sum(Kind::Double).backward();
    let back = stack.backward(tape).unwrap();
    let err = back.max_reconstruction_error.unwrap();
    // λ = 0.1 amplifies f64 rounding by ~10 per layer (spec §3): visible, bounded.
    assert!(err > 0.0 && err < 1e-3, "{err}");
    // Zero tolerance: the same drift is an error naming the layer.
    let stack = mlp_coupling_stack(&vs.root().sub("again"), 6, &cfg)
        .unwrap()
        .with_drift_check(0.0)
        .unwrap();
    vs.set_kind(Kind::Double);
    let tape = stack.forward(&x, opts(Strategy::Reversible, 0)).unwrap();
    (tape.output.square() * &w).sum(Kind::Double).backward();
    match stack.backward(tape) {
        Err(Error::Drift {
            layer: 0,
            error,
            tolerance,
        }) => assert!(error > 0.0 && tolerance == 0.0),
        other => panic!("expected Drift, got {other:?}"),
    }
}

#[test]
fn backward_errors_are_clear() {
    let _rng = common::seeded(4);
    let cfg = MlpCouplingConfig::default();
    let (_vs, stack) = mlp_stack(2, &cfg, Kind::Float);
    let x = Tensor::randn([2, 16], (Kind::Float, Device::Cpu));
    let tape = stack.forward(&x, opts(Strategy::Reversible, 0)).unwrap();
    assert!(matches!(stack.backward(tape), Err(Error::NoOutputGradient)));
    // A tape recorded by another (deeper) stack is named as such.
    let (_vs3, deeper) = mlp_stack(3, &cfg, Kind::Float);
    let foreign = deeper.forward(&x, opts(Strategy::Reversible, 0)).unwrap();
    let grad = Tensor::ones([2, 16], (Kind::Float, Device::Cpu));
    match stack.backward_with(foreign, &grad) {
        Err(e @ Error::ForeignTape(_)) => assert!(e.to_string().contains("3 layers"), "{e}"),
        other => panic!("expected ForeignTape, got {:?}", other.err()),
    }
    let tape = stack.forward(&x, opts(Strategy::Reversible, 0)).unwrap();
    let bad = Tensor::ones([2, 15], (Kind::Float, Device::Cpu));
    assert!(matches!(
        stack.backward_with(tape, &bad),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Stack::new(vec![]).with_anchors(0),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        Stack::new(vec![]).with_drift_check(f64::NAN),
        Err(Error::Config(_))
    ));
    let id = |x: &Tensor, _: &CallCtx| Ok(x.shallow_clone());
    let _ = Coupling::new(id, id, CouplingConfig::default()).unwrap();
}
