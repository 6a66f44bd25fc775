//! Helpers shared by graft-rev's integration tests.
#![allow(dead_code)]

use graft_rev::mlp::{MlpCouplingConfig, mlp_coupling_stack};
use graft_rev::{RunOptions, Stack, Strategy};
use graft_tensor::tch::nn::VarStore;
use graft_tensor::tch::{Device, Kind, Tensor};
use std::collections::BTreeMap;

/// An MLP coupling stack in `kind` (f32 or f64) with its variables.
pub fn mlp_stack(depth: usize, cfg: &MlpCouplingConfig, kind: Kind) -> (VarStore, Stack) {
    let mut vs = VarStore::new(Device::Cpu);
    let stack = mlp_coupling_stack(&vs.root(), depth, cfg).unwrap();
    vs.set_kind(kind);
    (vs, stack)
}

/// Takes the test binary's RNG lock and seeds libtorch's generator.
pub fn seeded(seed: u64) -> std::sync::MutexGuard<'static, ()> {
    let guard = graft_tensor::testing::rng_lock();
    graft_tensor::tch::manual_seed(seed as i64);
    guard
}

/// All gradients concatenated into one vector (sorted by name).
pub fn concat(g: &BTreeMap<String, Tensor>) -> Tensor {
    let parts: Vec<Tensor> = g.values().map(|t| t.reshape([-1])).collect();
    Tensor::cat(&parts, 0)
}

/// Relative error ‖a − b‖ / max(‖b‖, tiny).
pub fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).norm().double_value(&[]);
    let n = b.norm().double_value(&[]);
    d / n.max(1e-300)
}

/// Max-abs value.
pub fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

/// Gradients of every variable (zeros where none arrived), by name.
pub fn grads(vs: &VarStore) -> BTreeMap<String, Tensor> {
    vs.variables()
        .into_iter()
        .map(|(k, v)| {
            let g = v.grad();
            let g = if g.defined() {
                g.detach().copy()
            } else {
                v.zeros_like()
            };
            (k, g)
        })
        .collect()
}

/// Zeroes every variable's gradient.
pub fn zero_grads(vs: &VarStore) {
    for (_, mut v) in vs.variables() {
        v.zero_grad();
    }
}

/// One training step of `stack` on `x` with loss `sum(out² · w)`; returns
/// (loss, input gradient, parameter gradients) and leaves grads zeroed.
pub fn step(
    vs: &VarStore,
    stack: &Stack,
    x: &Tensor,
    w: &Tensor,
    options: RunOptions,
) -> (f64, Tensor, BTreeMap<String, Tensor>) {
    zero_grads(vs);
    let tape = stack.forward(x, options).unwrap();
    let loss = (tape.output.square() * w).sum(tape.output.kind());
    loss.backward();
    let back = stack.backward(tape).unwrap();
    let g = grads(vs);
    zero_grads(vs);
    (loss.double_value(&[]), back.grad_input, g)
}

/// Asserts that every gradient of `got` equals `want` to relative `tol`.
/// The denominator is `max(‖want‖, 1e-6·‖all of want‖)`: a parameter whose
/// exact gradient is 0 (a LayerNorm weight over a width-1 half) carries only
/// rounding noise, compared on the scale of the whole gradient.
pub fn assert_grads_close(
    got: &BTreeMap<String, Tensor>,
    want: &BTreeMap<String, Tensor>,
    tol: f64,
    what: &str,
) {
    assert_eq!(got.len(), want.len());
    let floor = 1e-6 * concat(want).norm().double_value(&[]);
    for (k, w) in want {
        let g = &got[k];
        let wn = w.norm().double_value(&[]).max(floor);
        let e = (g - w).norm().double_value(&[]);
        if wn == 0.0 {
            assert_eq!(e, 0.0, "{what}: {k} should have zero gradient");
        } else {
            assert!(e / wn <= tol, "{what}: {k} rel err {} > {tol}", e / wn);
        }
    }
}

/// Options for a training step.
pub fn opts(strategy: Strategy, seed: u64) -> RunOptions {
    RunOptions {
        strategy,
        train: true,
        seed,
    }
}
