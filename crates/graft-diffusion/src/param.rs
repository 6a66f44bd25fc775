//! Exact conversions between a model's parameterizations (spec §1).
//!
//! With `y = x − μ` and `x0' = x0 − μ`, the marginal is `y = α x0' + σ ε`:
//! - score `s = −ε/σ`;
//! - data `x0' = (y − σε)/α`, noise `ε = (y − α x0')/σ`;
//! - velocity, in the official MRS code's convention, `v = σ∞ α ε − (σ/σ∞) x0'`,
//!   inverted with `c² = α² + σ²/σ∞²` (1 for mean-reverting processes) as
//!   `x0' = (α y − (σ/σ∞) v)/c²`, `ε = (α v + (σ/σ∞) y)/(σ∞ c²)`.

use crate::process::Process;
use crate::{Error, Result};
use graft_tensor::fused::lincomb;
use graft_tensor::tch::Tensor;

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parameterization {
    /// The noise ε.
    Noise,
    /// The clean data x0.
    Data,
    /// The velocity `σ∞ α ε − (σ/σ∞)(x0 − μ)`.
    Velocity,
    /// The score ∇ log p_t(x).
    Score,
}

impl std::str::FromStr for Parameterization {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "noise" | "eps" | "epsilon" => Ok(Self::Noise),
            "data" | "x0" | "sample" => Ok(Self::Data),
            "velocity" | "v" | "v_prediction" => Ok(Self::Velocity),
            "score" => Ok(Self::Score),
            other => Err(Error::Config(format!(
                "unknown parameterization `{other}` (noise, data, velocity, score)"
            ))),
        }
    }
}

/// The schedule scalars at one time, in f64.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coeffs {
    /// α_t.
    pub alpha: f64,
    /// σ_t.
    pub sigma: f64,
    /// σ∞.
    pub sigma_inf: f64,
}

impl Coeffs {
    /// The scalars of `process` at `t`.
    pub fn at(process: &dyn Process, t: f64) -> Self {
        Self {
            alpha: process.alpha(t),
            sigma: process.sigma(t),
            sigma_inf: process.sigma_inf(),
        }
    }
    fn c2(&self) -> f64 {
        self.alpha * self.alpha + (self.sigma / self.sigma_inf).powi(2)
    }
}

/// ε̂ from a model output `out` of parameterization `p`, at centered `y = x − μ`.
/// For `Data`, `out` is the centered `x̂0 − μ`.
pub fn noise_from(p: Parameterization, out: &Tensor, y: &Tensor, c: Coeffs) -> Result<Tensor> {
    Ok(match p {
        Parameterization::Noise => out.shallow_clone(),
        _ => match noise_coefficients(p, c) {
            (a, 0.0) => lincomb(&[(a, out)])?,
            (a, b) => lincomb(&[(b, y), (a, out)])?,
        },
    })
}

/// `(a, b)` with `ε̂ = a·out + b·y` for a model output `out` of
/// parameterization `p` (for `Data`, `out` centered) at centered `y`.
pub fn noise_coefficients(p: Parameterization, c: Coeffs) -> (f64, f64) {
    match p {
        Parameterization::Noise => (1.0, 0.0),
        Parameterization::Data => (-c.alpha / c.sigma, 1.0 / c.sigma),
        Parameterization::Score => (-c.sigma, 0.0),
        Parameterization::Velocity => {
            let k = 1.0 / (c.sigma_inf * c.c2());
            (c.alpha * k, c.sigma / c.sigma_inf * k)
        }
    }
}

/// The centered `x̂0 − μ` from a model output `out` of parameterization `p`
/// (for `Data`, `out` is already centered), at centered `y`.
pub fn data_from(p: Parameterization, out: &Tensor, y: &Tensor, c: Coeffs) -> Result<Tensor> {
    Ok(match p {
        Parameterization::Noise => lincomb(&[(1.0 / c.alpha, y), (-c.sigma / c.alpha, out)])?,
        Parameterization::Data => out.shallow_clone(),
        Parameterization::Score => {
            lincomb(&[(1.0 / c.alpha, y), (c.sigma * c.sigma / c.alpha, out)])?
        }
        Parameterization::Velocity => lincomb(&[
            (c.alpha / c.c2(), y),
            (-c.sigma / c.sigma_inf / c.c2(), out),
        ])?,
    })
}

/// The output of parameterization `p` given a consistent pair ε̂ and centered `x̂0 − μ`
/// (`Data` gives the centered x̂0).
pub fn output_from(p: Parameterization, eps: &Tensor, x0c: &Tensor, c: Coeffs) -> Tensor {
    match p {
        Parameterization::Noise => eps.shallow_clone(),
        Parameterization::Data => x0c.shallow_clone(),
        Parameterization::Score => eps * (-1.0 / c.sigma),
        Parameterization::Velocity => eps * (c.sigma_inf * c.alpha) - x0c * (c.sigma / c.sigma_inf),
    }
}

/// Converts a model output at `(x, t)` from parameterization `from` to `to`
/// (uncentered: `Data` means x0 itself). Refuses σ_t = 0 and mismatched shapes.
pub fn convert(
    process: &dyn Process,
    from: Parameterization,
    to: Parameterization,
    out: &Tensor,
    x: &Tensor,
    t: f64,
) -> Result<Tensor> {
    process.check_t(t)?;
    let c = Coeffs::at(process, t);
    if !(c.sigma > 0.0) {
        return Err(Error::SigmaZero { t });
    }
    if out.size() != x.size() {
        return Err(Error::ShapeMismatch {
            what: "model output vs x",
            expected: x.size(),
            actual: out.size(),
        });
    }
    if from == to {
        return Ok(out.shallow_clone());
    }
    let y = crate::process::centered(process, x);
    let outc = if from == Parameterization::Data {
        crate::process::centered(process, out)
    } else {
        out.shallow_clone()
    };
    let eps = noise_from(from, &outc, &y, c)?;
    let x0c = data_from(from, &outc, &y, c)?;
    let res = output_from(to, &eps, &x0c, c);
    Ok(if to == Parameterization::Data {
        crate::process::uncentered(process, &res)
    } else {
        res
    })
}
