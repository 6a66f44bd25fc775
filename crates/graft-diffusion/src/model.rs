//! The model interface and the NFE-counting evaluator the samplers call it through.

use crate::param::{Coeffs, Parameterization, data_from, noise_coefficients, noise_from};
use crate::process::{Process, centered};
use crate::{Error, Result};
use graft_tensor::fused::lincomb;
use graft_tensor::tch::Tensor;
use std::cell::Cell;

/// A (pretrained or analytic) diffusion model: one prediction per call.
pub trait Model {
    /// What `eval` predicts.
    fn parameterization(&self) -> Parameterization;
    /// The prediction at `x` and time `t` (same shape as `x`); a model that
    /// needs a condition (a degraded image) holds it itself.
    fn eval(&self, x: &Tensor, t: f64) -> Result<Tensor>;
}

/// Dynamic thresholding of x̂0 (Imagen; DPM-Solver): per sample, s is the
/// `quantile` of |x̂0| clamped to [1, `max_value`]; x̂0 ← clamp(x̂0, −s, s)/s.
/// Assumes data in [−1, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholding {
    /// The quantile of |x̂0| (0.995).
    pub quantile: f64,
    /// The largest s (1.5).
    pub max_value: f64,
}

impl Default for Thresholding {
    fn default() -> Self {
        Self {
            quantile: 0.995,
            max_value: 1.5,
        }
    }
}

impl Thresholding {
    /// Applies the thresholding to x̂0 (uncentered), per sample (first dimension).
    pub fn apply(&self, x0: &Tensor) -> Result<Tensor> {
        let n = x0.size().first().copied().unwrap_or(1);
        let flat = x0.f_reshape([n, -1])?;
        let s = flat
            .abs()
            .f_quantile_scalar(self.quantile, 1, true, "linear")?
            .clamp(1.0, self.max_value);
        let out = flat.f_clamp_tensor(Some(-&s), Some(s.shallow_clone()))? / &s;
        Ok(out.f_reshape(x0.size())?)
    }
}

/// Wraps a model for a sampler: counts NFE, refuses σ = 0 and shape
/// mismatches, converts to the form the sampler wants (centered on μ).
pub struct Evaluator<'a> {
    process: &'a dyn Process,
    model: &'a dyn Model,
    nfe: Cell<usize>,
    thresholding: Option<Thresholding>,
}

impl<'a> Evaluator<'a> {
    /// An evaluator with a zero NFE count.
    pub fn new(process: &'a dyn Process, model: &'a dyn Model) -> Self {
        Self {
            process,
            model,
            nfe: Cell::new(0),
            thresholding: None,
        }
    }
    /// Applies dynamic thresholding to every x̂0.
    pub fn with_thresholding(mut self, th: Option<Thresholding>) -> Self {
        self.thresholding = th;
        self
    }
    /// Model calls so far.
    pub fn nfe(&self) -> usize {
        self.nfe.get()
    }
    /// The process.
    pub fn process(&self) -> &'a dyn Process {
        self.process
    }
    /// The raw model output at uncentered `x`, counted and checked.
    pub fn raw(&self, x: &Tensor, t: f64) -> Result<(Tensor, Coeffs)> {
        self.process.check_t(t)?;
        let c = Coeffs::at(self.process, t);
        if !(c.sigma > 0.0) {
            return Err(Error::SigmaZero { t });
        }
        self.nfe.set(self.nfe.get() + 1);
        let out = self.model.eval(x, t)?;
        if out.size() != x.size() {
            return Err(Error::ShapeMismatch {
                what: "model output vs x",
                expected: x.size(),
                actual: out.size(),
            });
        }
        Ok((out, c))
    }
    /// A data-form output centered on μ (other forms are already centered).
    fn centered_out(&self, out: Tensor) -> Result<Tensor> {
        match (self.model.parameterization(), self.process.mu()) {
            (Parameterization::Data, Some(mu)) => Ok(lincomb(&[(1.0, &out), (-1.0, mu)])?),
            _ => Ok(out),
        }
    }
    /// `x = y + μ`, fused on the CPU.
    fn uncentered(&self, y: &Tensor) -> Result<Tensor> {
        match self.process.mu() {
            Some(mu) => Ok(lincomb(&[(1.0, y), (1.0, mu)])?),
            None => Ok(y.shallow_clone()),
        }
    }
    /// `(ε̂, x̂0 − μ)` at centered `y`, one model call (thresholding applied to x̂0).
    pub fn both(&self, y: &Tensor, t: f64) -> Result<(Tensor, Tensor)> {
        let x = self.uncentered(y)?;
        let (out, c) = self.raw(&x, t)?;
        let p = self.model.parameterization();
        let out = self.centered_out(out)?;
        let x0c = data_from(p, &out, y, c)?;
        match self.thresholding {
            // ε̂ follows the thresholded x̂0.
            Some(th) => {
                let x0c = centered(self.process, &th.apply(&self.uncentered(&x0c)?)?);
                Ok((noise_from(Parameterization::Data, &x0c, y, c)?, x0c))
            }
            None => Ok((noise_from(p, &out, y, c)?, x0c)),
        }
    }
    /// The centered `x̂0 − μ` at centered `y` (one model call).
    pub fn data(&self, y: &Tensor, t: f64) -> Result<Tensor> {
        if self.thresholding.is_some() {
            return Ok(self.both(y, t)?.1);
        }
        let x = self.uncentered(y)?;
        let (out, c) = self.raw(&x, t)?;
        data_from(
            self.model.parameterization(),
            &self.centered_out(out)?,
            y,
            c,
        )
    }
    /// ε̂ at centered `y` (one model call).
    pub fn noise(&self, y: &Tensor, t: f64) -> Result<Tensor> {
        if self.thresholding.is_some() {
            return Ok(self.both(y, t)?.0);
        }
        let x = self.uncentered(y)?;
        let (out, c) = self.raw(&x, t)?;
        noise_from(
            self.model.parameterization(),
            &self.centered_out(out)?,
            y,
            c,
        )
    }
    /// The score at centered `y` (one model call).
    pub fn score(&self, y: &Tensor, t: f64) -> Result<Tensor> {
        let sigma = self.process.sigma(t);
        if self.thresholding.is_some() {
            return Ok(lincomb(&[(-1.0 / sigma, &self.noise(y, t)?)])?);
        }
        // −ε̂/σ straight from the output: one pass instead of three.
        let x = self.uncentered(y)?;
        let (out, c) = self.raw(&x, t)?;
        let (a, b) = noise_coefficients(self.model.parameterization(), c);
        let (a, b) = (-a / sigma, -b / sigma);
        let mu = match (self.model.parameterization(), self.process.mu()) {
            (Parameterization::Data, Some(mu)) => Some(mu),
            _ => None,
        };
        let mut terms = vec![(a, &out)];
        if b != 0.0 {
            terms.push((b, y));
        }
        if let Some(mu) = mu {
            terms.push((-a, mu));
        }
        Ok(lincomb(&terms)?)
    }
}
