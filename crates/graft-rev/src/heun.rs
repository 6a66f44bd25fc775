//! Reversible Heun (Kidger et al. 2021): an ODE solver whose steps can be
//! undone exactly in algebra, so gradients of a solve need O(1) memory in
//! the number of steps.
//!
//! State `(y, ŷ, f)` with `f = field(t, ŷ)`; from `ŷ₀ = y₀`, `f₀ = field(t₀, y₀)`:
//! ```text
//! ŷ' = 2y − ŷ + f·h      f' = field(t', ŷ')      y' = y + ½(f + f')·h
//! reverse: ŷ = 2y' − ŷ' − f'·h,  f = field(t, ŷ),  y = y' − ½(f + f')·h
//! ```
//! One field evaluation per step, second order. **Stability limit**: on
//! `y' = λy` with `z = λh` the step's characteristic polynomial is
//! `μ² − 2zμ − 1`: its roots have product −1, so the scheme is bounded only
//! for purely imaginary `z` with `|z| < 1`. Any dissipative mode (Re λ < 0)
//! excites the parasitic root `≈ −(1 + |z|)` and the solution blows up; use
//! it for conservative (oscillatory) dynamics only.

use crate::reversible::{grad_or_zeros, surrogate_backward};
use crate::{Error, Result};
use graft_tensor::tch::{self, Tensor};

/// A vector field `dy/dt = field(t, y)`; shape-preserving.
pub trait VectorField {
    /// Evaluates the field.
    fn eval(&self, t: f64, y: &Tensor) -> Result<Tensor>;
}

impl<T> VectorField for T
where
    T: Fn(f64, &Tensor) -> Result<Tensor>,
{
    fn eval(&self, t: f64, y: &Tensor) -> Result<Tensor> {
        self(t, y)
    }
}

/// The solver's state at one time.
#[derive(Debug)]
pub struct HeunState {
    /// The solution `y`.
    pub y: Tensor,
    /// The auxiliary state `ŷ`.
    pub y_hat: Tensor,
    /// `field(t, ŷ)`.
    pub f: Tensor,
}

fn eval_checked(field: &dyn VectorField, t: f64, y: &Tensor) -> Result<Tensor> {
    let f = field.eval(t, y)?;
    if f.size() != y.size() {
        return Err(Error::ShapeMismatch {
            what: format!("vector field at t = {t}"),
            expected: y.size(),
            got: f.size(),
        });
    }
    Ok(f)
}

fn check_times(ts: &[f64]) -> Result<()> {
    if ts.len() < 2 || ts.iter().any(|t| !t.is_finite()) {
        return Err(Error::Config(format!(
            "reversible Heun needs at least two finite times, got {ts:?}"
        )));
    }
    Ok(())
}

/// The initial state at `t0`.
pub fn init(field: &dyn VectorField, t0: f64, y0: &Tensor) -> Result<HeunState> {
    Ok(HeunState {
        y: y0.shallow_clone(),
        y_hat: y0.shallow_clone(),
        f: eval_checked(field, t0, y0)?,
    })
}

/// One step from `t` to `t + h` (differentiable when run with gradients).
pub fn step(field: &dyn VectorField, s: &HeunState, t: f64, h: f64) -> Result<HeunState> {
    let y_hat =
        s.y.f_mul_scalar(2.0)?
            .f_sub(&s.y_hat)?
            .f_add(&s.f.f_mul_scalar(h)?)?;
    let f = eval_checked(field, t + h, &y_hat)?;
    let y = s.y.f_add(&s.f.f_add(&f)?.f_mul_scalar(0.5 * h)?)?;
    Ok(HeunState { y, y_hat, f })
}

/// The exact algebraic reverse of [`step`]: from the state at `t + h`, the state at `t`.
pub fn reverse_step(field: &dyn VectorField, s: &HeunState, t: f64, h: f64) -> Result<HeunState> {
    let y_hat =
        s.y.f_mul_scalar(2.0)?
            .f_sub(&s.y_hat)?
            .f_sub(&s.f.f_mul_scalar(h)?)?;
    let f = eval_checked(field, t, &y_hat)?;
    let y = s.y.f_sub(&s.f.f_add(&f)?.f_mul_scalar(0.5 * h)?)?;
    Ok(HeunState { y, y_hat, f })
}

/// The embedded first-order error estimate of the step that produced `next`
/// from `prev`: `½(f' − f)·h`.
pub fn error_estimate(prev: &HeunState, next: &HeunState, h: f64) -> Result<Tensor> {
    Ok(next.f.f_sub(&prev.f)?.f_mul_scalar(0.5 * h)?)
}

/// A solve without gradients: the final state and `y` at every time of `ts`.
pub struct Solution {
    /// The state at the last time.
    pub last: HeunState,
    /// `y` at each time of `ts` (the first is `y₀`).
    pub ys: Vec<Tensor>,
}

/// Solves from `y0` over the times `ts` (increasing or decreasing) without
/// keeping any graph: memory is the state plus the outputs `ys`.
pub fn solve(field: &dyn VectorField, y0: &Tensor, ts: &[f64]) -> Result<Solution> {
    check_times(ts)?;
    tch::no_grad(|| {
        let mut s = init(field, ts[0], &y0.detach())?;
        let mut ys = vec![s.y.shallow_clone()];
        for w in ts.windows(2) {
            s = step(field, &s, w[0], w[1] - w[0])?;
            ys.push(s.y.shallow_clone());
        }
        Ok(Solution { last: s, ys })
    })
}

/// Like [`solve`] but keeps only the final state (for losses on `y(T)`):
/// memory independent of the number of steps.
pub fn solve_last(field: &dyn VectorField, y0: &Tensor, ts: &[f64]) -> Result<HeunState> {
    check_times(ts)?;
    tch::no_grad(|| {
        let mut s = init(field, ts[0], &y0.detach())?;
        for w in ts.windows(2) {
            s = step(field, &s, w[0], w[1] - w[0])?;
        }
        Ok(s)
    })
}

/// The same solve through ordinary autograd (every step's graph kept): the
/// reference for gradients, memory linear in the number of steps.
pub fn solve_unrolled(field: &dyn VectorField, y0: &Tensor, ts: &[f64]) -> Result<Vec<Tensor>> {
    check_times(ts)?;
    let mut s = init(field, ts[0], y0)?;
    let mut ys = vec![s.y.shallow_clone()];
    for w in ts.windows(2) {
        s = step(field, &s, w[0], w[1] - w[0])?;
        ys.push(s.y.shallow_clone());
    }
    Ok(ys)
}

/// Gradients of a loss on the solution of [`solve`], in O(1) memory in the
/// number of steps: reconstructs the states backwards with
/// [`reverse_step`] and back-propagates each step through a recomputation.
///
/// `grad_ys[n]` is `dL/dy(tₙ)` (one per time of `ts`; zeros where the loss
/// does not look). Parameter gradients of the field accumulate into `.grad`;
/// returns `dL/dy₀`. The result equals the gradient of the discrete forward
/// solve (discretise-then-optimise), up to floating-point reconstruction error.
pub fn backward(
    field: &dyn VectorField,
    last: &HeunState,
    ts: &[f64],
    grad_ys: &[Tensor],
) -> Result<Tensor> {
    check_times(ts)?;
    if grad_ys.len() != ts.len() {
        return Err(Error::Config(format!(
            "backward needs one output gradient per time: {} times, {} gradients",
            ts.len(),
            grad_ys.len()
        )));
    }
    for (n, g) in grad_ys.iter().enumerate() {
        if g.size() != last.y.size() {
            return Err(Error::ShapeMismatch {
                what: format!("gradient of y at time index {n}"),
                expected: last.y.size(),
                got: g.size(),
            });
        }
    }
    let n_steps = ts.len() - 1;
    let mut s = HeunState {
        y: last.y.detach(),
        y_hat: last.y_hat.detach(),
        f: last.f.detach(),
    };
    let mut gy = grad_ys[n_steps].detach();
    let mut gy_hat = gy.zeros_like();
    let mut gf = gy.zeros_like();
    for n in (0..n_steps).rev() {
        let (t, h) = (ts[n], ts[n + 1] - ts[n]);
        let prev = tch::no_grad(|| reverse_step(field, &s, t, h))?;
        let leaves = HeunState {
            y: prev.y.detach().set_requires_grad(true),
            y_hat: prev.y_hat.detach().set_requires_grad(true),
            f: prev.f.detach().set_requires_grad(true),
        };
        let next = tch::with_grad(|| step(field, &leaves, t, h))?;
        surrogate_backward(&[(&next.y, &gy), (&next.y_hat, &gy_hat), (&next.f, &gf)])?;
        drop(next);
        gy = grad_or_zeros(&leaves.y).f_add(&grad_ys[n])?;
        gy_hat = grad_or_zeros(&leaves.y_hat);
        gf = grad_or_zeros(&leaves.f);
        s = prev;
    }
    // ŷ₀ = y₀ and f₀ = field(t₀, y₀).
    let y0 = s.y.detach().set_requires_grad(true);
    let f0 = tch::with_grad(|| eval_checked(field, ts[0], &y0))?;
    surrogate_backward(&[(&f0, &gf)])?;
    Ok(grad_or_zeros(&y0).f_add(&gy)?.f_add(&gy_hat)?)
}
