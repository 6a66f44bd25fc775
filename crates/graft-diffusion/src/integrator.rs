//! The exponential-integrator core, written once for every affine process
//! (spec §1, §3): on `y = x − μ` the marginal is `y = α x0' + σ ε`, so the
//! MR-SDE, VP (μ = 0, σ∞ = 1) and VE updates are one set of formulas in
//! λ = ln α − ln σ. Schedule scalars and h are f64.

use crate::Result;
use crate::process::Process;
use graft_tensor::fused::lincomb;
use graft_tensor::tch::Tensor;

/// What the network integral is expanded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// ε̂ (DPM-Solver).
    Noise,
    /// x̂0 (DPM-Solver++).
    Data,
}

/// The D2 term of the order-3 multistep update (spec §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThirdOrder {
    /// `2·φ3·D2`: third order in Taylor's sense (the default).
    #[default]
    TaylorExact,
    /// `φ3·D2` as in the official DPM-Solver, diffusers and MRS code (globally second order).
    Reference,
}

/// The scalars of one step from `s` to `t` (t < s, cleaner).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// α_s.
    pub alpha_s: f64,
    /// σ_s.
    pub sigma_s: f64,
    /// α_t.
    pub alpha_t: f64,
    /// σ_t.
    pub sigma_t: f64,
    /// h = λ_t − λ_s (> 0 going to cleaner times).
    pub h: f64,
}

impl Step {
    /// The step from `s` to `t` of `process`.
    pub fn new(process: &dyn Process, s: f64, t: f64) -> Self {
        Self {
            alpha_s: process.alpha(s),
            sigma_s: process.sigma(s),
            alpha_t: process.alpha(t),
            sigma_t: process.sigma(t),
            h: process.lambda(t) - process.lambda(s),
        }
    }
}

const SERIES_H: f64 = 1e-4;

/// Noise-form coefficients `(φ1, φ2, φ3)`: φ1 = expm1(h), φ2 = φ1/h − 1, φ3 = φ2/h − ½
/// (series below |h| = 1e−4).
pub fn phi_noise(h: f64) -> (f64, f64, f64) {
    let p1 = h.exp_m1();
    if h.abs() < SERIES_H {
        (p1, h / 2.0 + h * h / 6.0, h / 6.0 + h * h / 24.0)
    } else {
        let p2 = p1 / h - 1.0;
        (p1, p2, p2 / h - 0.5)
    }
}

/// Data-form coefficients `(φ1, φ2, φ3)`: φ1 = expm1(−h), φ2 = φ1/h + 1, φ3 = φ2/h − ½.
pub fn phi_data(h: f64) -> (f64, f64, f64) {
    let p1 = (-h).exp_m1();
    if h.abs() < SERIES_H {
        (p1, h / 2.0 - h * h / 6.0, -h / 6.0 + h * h / 24.0)
    } else {
        let p2 = p1 / h + 1.0;
        (p1, p2, p2 / h - 0.5)
    }
}

/// SDE data-form coefficients `(ψ1, ψ2)`: ψ1 = −expm1(−2h), ψ2 = 1 − ψ1/(2h).
pub fn psi_data(h: f64) -> (f64, f64) {
    let p1 = -(-2.0 * h).exp_m1();
    if h.abs() < SERIES_H {
        (p1, h - 2.0 * h * h / 3.0)
    } else {
        (p1, 1.0 - p1 / (2.0 * h))
    }
}

/// The multistep update of spec §3 as one linear combination
/// `a·y + Σ_k c_k Q_k + b·z`, with the divided differences folded into the
/// scalar coefficients (f64) and computed in one fused pass
/// ([`graft_tensor::fused::lincomb`]); the tests check it against the
/// divided differences followed by the table's update, written out term by term.
/// `qs` are the buffered outputs newest first, `lams` their λ.
#[allow(clippy::too_many_arguments)]
pub fn multistep_update(
    form: Form,
    y: &Tensor,
    qs: &[&Tensor],
    lams: &[f64],
    order: usize,
    st: &Step,
    third: ThirdOrder,
    z: Option<&Tensor>,
) -> Result<Tensor> {
    let h = st.h;
    let order = order.min(qs.len()).max(1);
    // D1 and D2 as coefficient vectors over (Q0, Q1, Q2).
    let (mut d1, mut d2) = ([0.0f64; 3], [0.0f64; 3]);
    if order >= 2 {
        let r1 = (lams[0] - lams[1]) / h;
        let e0 = [1.0 / r1, -1.0 / r1, 0.0];
        if order >= 3 {
            let r2 = (lams[1] - lams[2]) / h;
            let e1 = [0.0, 1.0 / r2, -1.0 / r2];
            for k in 0..3 {
                let diff = e0[k] - e1[k];
                d1[k] = e0[k] + diff * (r1 / (r1 + r2));
                d2[k] = diff / (r1 + r2);
            }
        } else {
            d1 = e0;
        }
    }
    let s3 = match third {
        ThirdOrder::TaylorExact => 2.0,
        ThirdOrder::Reference => 1.0,
    };
    let unit = [1.0, 0.0, 0.0];
    let (a, c, b): (f64, [f64; 3], f64) = match (form, z.is_some()) {
        (Form::Data, false) => {
            let (p1, p2, p3) = phi_data(h);
            let c = std::array::from_fn(|k| {
                -st.alpha_t * (p1 * unit[k] - p2 * d1[k] + s3 * p3 * d2[k])
            });
            (st.sigma_t / st.sigma_s, c, 0.0)
        }
        (Form::Noise, false) => {
            let (p1, p2, p3) = phi_noise(h);
            let c = std::array::from_fn(|k| {
                -st.sigma_t * (p1 * unit[k] + p2 * d1[k] + s3 * p3 * d2[k])
            });
            (st.alpha_t / st.alpha_s, c, 0.0)
        }
        (Form::Data, true) => {
            let (s1, s2) = psi_data(h);
            let c = std::array::from_fn(|k| st.alpha_t * (s1 * unit[k] + s2 * d1[k]));
            (
                st.sigma_t / st.sigma_s * (-h).exp(),
                c,
                st.sigma_t * s1.sqrt(),
            )
        }
        (Form::Noise, true) => {
            let (p1, p2, _) = phi_noise(h);
            let c = std::array::from_fn(|k| -2.0 * st.sigma_t * (p1 * unit[k] + p2 * d1[k]));
            (
                st.alpha_t / st.alpha_s,
                c,
                st.sigma_t * (2.0 * h).exp_m1().sqrt(),
            )
        }
    };
    let mut terms: Vec<(f64, &Tensor)> = vec![(a, y)];
    for (q, ck) in qs.iter().zip(c).take(order) {
        if ck != 0.0 {
            terms.push((ck, *q));
        }
    }
    if let Some(z) = z {
        terms.push((b, z));
    }
    Ok(lincomb(&terms)?)
}

/// The generalized posterior (optimal reverse) step from s to t for any jump
/// (spec §2): with `a = α_s/α_t` and `v = σ_s² − a²σ_t²`, mean
/// `(aσ_t²/σ_s²) y_s + (vα_t/σ_s²) x0'`, variance `vσ_t²/σ_s²`.
pub fn posterior_step(y: &Tensor, x0c: &Tensor, st: &Step, z: Option<&Tensor>) -> Result<Tensor> {
    let a = st.alpha_s / st.alpha_t;
    let ss2 = st.sigma_s * st.sigma_s;
    let st2 = st.sigma_t * st.sigma_t;
    let v = ss2 - a * a * st2;
    let mean = [(a * st2 / ss2, y), (v * st.alpha_t / ss2, x0c)];
    Ok(match z {
        Some(z) => lincomb(&[mean[0], mean[1], ((v * st2 / ss2).max(0.0).sqrt(), z)])?,
        None => lincomb(&mean)?,
    })
}
