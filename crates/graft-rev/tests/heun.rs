//! Reversible Heun: exact algebraic reverse (H1), gradients equal autograd
//! through the unrolled solver (H2), the step matrix's eigenvalues (H3), and
//! second-order convergence (H4).

mod common;

use common::{assert_grads_close, grads, rel_err, zero_grads};
use graft_rev::Result;
use graft_rev::heun::{self, HeunState, VectorField};
use graft_tensor::tch::nn::{self, Module, VarStore};
use graft_tensor::tch::{Device, Kind, Tensor};
use proptest::prelude::*;

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

/// `y' = A y + ε·tanh(B y)` with `A` skew-symmetric: conservative up to a
/// small non-linear term (d = 2k).
fn rotation_field(d: i64, eps: f64) -> impl Fn(f64, &Tensor) -> Result<Tensor> {
    let m = Tensor::randn([d, d], F64);
    let a = (&m - m.tr()) * 0.5;
    let b = Tensor::randn([d, d], F64) / (d as f64).sqrt();
    move |_t: f64, y: &Tensor| Ok(y.matmul(&a.tr()) + y.matmul(&b.tr()).tanh() * eps)
}

fn linspace(t0: f64, t1: f64, steps: usize) -> Vec<f64> {
    (0..=steps)
        .map(|i| t0 + (t1 - t0) * i as f64 / steps as f64)
        .collect()
}

proptest! {
    #![proptest_config(graft_tensor::testing::proptest_config(32))]

    /// H1: forward n steps then reverse n steps returns the initial state,
    /// f64, ≤ 1e-12·(1+‖y‖), n ≤ 1000, on a non-dissipative field.
    #[test]
    fn reverse_after_forward_is_identity(half in 1i64..=4, steps in 1usize..=1000, seed in any::<u32>()) {
        let _rng = common::seeded(seed.into());
        let d = 2 * half;
        let field = rotation_field(d, 0.05);
        let y0 = Tensor::randn([3, d], F64);
        // |hλ| < 1: horizon 5 with at least 10 steps, ‖A‖ small enough.
        let ts = linspace(0.0, 0.5 * (steps as f64).min(10.0), steps);
        let sol = heun::solve(&field, &y0, &ts).unwrap();
        let mut s = HeunState { y: sol.last.y.shallow_clone(), y_hat: sol.last.y_hat.shallow_clone(), f: sol.last.f.shallow_clone() };
        for n in (0..steps).rev() {
            s = heun::reverse_step(&field, &s, ts[n], ts[n + 1] - ts[n]).unwrap();
        }
        let scale = 1.0 + sol.ys.iter().map(|y| y.norm().double_value(&[])).fold(0.0, f64::max);
        let err = (&s.y - &y0).abs().max().double_value(&[]);
        let err_hat = (&s.y_hat - &y0).abs().max().double_value(&[]);
        prop_assert!(err <= 1e-12 * scale && err_hat <= 1e-12 * scale, "{err} {err_hat} scale {scale}");
    }

    /// H2: gradients of a loss on the whole trajectory with respect to y₀
    /// and the field's parameters equal autograd through the unrolled
    /// solver (f64, rel ≤ 1e-9).
    #[test]
    fn reversible_heun_gradients_equal_unrolled_autograd(
        batch in 1i64..=3, dim in 1i64..=4, steps in 1usize..=40, seed in any::<u32>(),
    ) {
        let _rng = common::seeded(seed.into());
        let mut vs = VarStore::new(Device::Cpu);
        let l1 = nn::linear(vs.root() / "l1", dim, 8, Default::default());
        let l2 = nn::linear(vs.root() / "l2", 8, dim, Default::default());
        vs.set_kind(Kind::Double);
        let field = move |_t: f64, y: &Tensor| Ok(l2.forward(&l1.forward(y).tanh()));
        let y0 = Tensor::randn([batch, dim], F64);
        let ts = linspace(0.0, 1.0, steps);
        let ws: Vec<Tensor> = ts.iter().map(|_| Tensor::randn([batch, dim], F64)).collect();
        // Reference: unrolled autograd, loss Σₙ ⟨yₙ, wₙ⟩.
        zero_grads(&vs);
        let y0_leaf = y0.set_requires_grad(true);
        let ys = heun::solve_unrolled(&field, &y0_leaf, &ts).unwrap();
        let loss: Tensor = ys.iter().zip(&ws).map(|(y, w)| (y * w).sum(Kind::Double)).sum();
        loss.backward();
        let gx_ref = y0_leaf.grad().copy();
        let g_ref = grads(&vs);
        zero_grads(&vs);
        // Reversible: no graph in the forward, O(1)-memory backward.
        let sol = heun::solve(&field, &y0, &ts).unwrap();
        let gx = heun::backward(&field, &sol.last, &ts, &ws).unwrap();
        let g = grads(&vs);
        prop_assert!(rel_err(&gx, &gx_ref) <= 1e-9, "{}", rel_err(&gx, &gx_ref));
        assert_grads_close(&g, &g_ref, 1e-9, "heun");
    }
}

/// The 4×4 (or 2×2) real matrix of one step on the linear field `field`,
/// acting on `(y, ŷ)` (f = field(ŷ) is a function of ŷ).
fn step_matrix(field: &dyn VectorField, d: i64, h: f64) -> Tensor {
    let cols: Vec<Tensor> = (0..2 * d)
        .map(|j| {
            let e = Tensor::zeros([2 * d], F64);
            let _ = e.get(j).fill_(1.0);
            let y = e.narrow(0, 0, d).unsqueeze(0);
            let y_hat = e.narrow(0, d, d).unsqueeze(0);
            let f = field.eval(0.0, &y_hat).unwrap();
            let s = heun::step(field, &HeunState { y, y_hat, f }, 0.0, h).unwrap();
            Tensor::cat(&[s.y.squeeze_dim(0), s.y_hat.squeeze_dim(0)], 0)
        })
        .collect();
    Tensor::stack(&cols, 1)
}

fn eigen_moduli(m: &Tensor) -> Vec<f64> {
    let ev = m.linalg_eigvals().abs().to_kind(Kind::Double);
    Vec::<f64>::try_from(ev).unwrap()
}

#[test]
fn step_eigenvalues_lie_on_the_unit_circle_for_imaginary_z_and_not_for_dissipative_z() {
    let h = 0.1;
    // z = 0.5i: y' = iωy with ω h = 0.5, as a real rotation in 2-D.
    let w = 0.5 / h;
    let rot = Tensor::from_slice(&[0.0, -w, w, 0.0])
        .view([2, 2])
        .to_kind(Kind::Double);
    let field = move |_t: f64, y: &Tensor| Ok(y.matmul(&rot.tr()));
    for m in eigen_moduli(&step_matrix(&field, 2, h)) {
        assert!((m - 1.0).abs() <= 1e-12, "|μ| = {m}");
    }
    // Closed form: roots of μ² − 2zμ − 1 = 0 for z = −0.1 are −0.1 ± √1.01.
    let field = |_t: f64, y: &Tensor| Ok(y * (-0.1 / h));
    let mut moduli = eigen_moduli(&step_matrix(&field, 1, h));
    moduli.sort_by(f64::total_cmp);
    let want = [
        (-0.1f64 + 1.01f64.sqrt()).abs(),
        (-0.1f64 - 1.01f64.sqrt()).abs(),
    ];
    assert!(
        (moduli[0] - want[0]).abs() < 1e-12 && (moduli[1] - want[1]).abs() < 1e-12,
        "{moduli:?}"
    );
    assert!(moduli[1] > 1.0);
}

#[test]
fn error_on_an_oscillator_is_second_order() {
    // y' = iωy (a rotation), exact y(T) = R(ωT) y0.
    let w: f64 = 2.0;
    let rot = Tensor::from_slice(&[0.0, -w, w, 0.0])
        .view([2, 2])
        .to_kind(Kind::Double);
    let field = move |_t: f64, y: &Tensor| Ok(y.matmul(&rot.tr()));
    let y0 = Tensor::from_slice(&[1.0f64, 0.0]).view([1, 2]);
    let t_end: f64 = 3.0;
    let exact = Tensor::from_slice(&[(w * t_end).cos(), (w * t_end).sin()]).view([1, 2]);
    let err = |steps: usize| {
        let sol = heun::solve(&field, &y0, &linspace(0.0, t_end, steps)).unwrap();
        (&sol.last.y - &exact).norm().double_value(&[])
    };
    let errors: Vec<f64> = [100, 200, 400, 800].into_iter().map(err).collect();
    for pair in errors.windows(2) {
        let ratio = pair[0] / pair[1];
        assert!((3.6..=4.4).contains(&ratio), "ratio {ratio} ({errors:?})");
    }
}

#[test]
fn dissipative_dynamics_blow_up_as_documented() {
    // Spec §4: y' = −2y, h = 0.1, 200 steps diverges (the parasitic root).
    let field = |_t: f64, y: &Tensor| Ok(y * -2.0);
    let y0 = Tensor::ones([1, 1], F64);
    let sol = heun::solve(&field, &y0, &linspace(0.0, 20.0, 200)).unwrap();
    assert!(sol.last.y.abs().double_value(&[0, 0]) > 1e6);
}

#[test]
fn bad_inputs_are_errors() {
    let field = |_t: f64, y: &Tensor| Ok(y.narrow(1, 0, 1));
    let y0 = Tensor::ones([1, 2], F64);
    assert!(heun::solve(&field, &y0, &[0.0, 1.0]).is_err());
    let ok = |_t: f64, y: &Tensor| Ok(-y);
    assert!(heun::solve(&ok, &y0, &[0.0]).is_err());
    let sol = heun::solve(&ok, &y0, &[0.0, 0.5, 1.0]).unwrap();
    let g = vec![y0.zeros_like(), y0.zeros_like()];
    assert!(heun::backward(&ok, &sol.last, &[0.0, 0.5, 1.0], &g).is_err());
}
