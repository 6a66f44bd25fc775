//! MRS (Li et al., ICLR 2025): the multistep exponential integrators of spec §3
//! for ODE orders 1-3 and SDE orders 1-2, in noise or data form. With μ = 0 and
//! σ∞ = 1 these are DPM-Solver(++)-2M/3M and SDE-DPM-Solver(++)-2M.

use super::{Sampler, Stats};
use crate::grid::check_start;
use crate::integrator::{Form, Step, ThirdOrder, multistep_update};
use crate::model::{Evaluator, Model, Thresholding};
use crate::noise::NoiseSource;
use crate::process::{Process, centered, uncentered};
use crate::{Error, Result};
use graft_tensor::tch::Tensor;

/// ODE or SDE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The probability-flow ODE.
    Ode,
    /// The reverse SDE.
    Sde,
}

/// An MRS solver configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mrs {
    /// ODE or SDE.
    pub variant: Variant,
    /// 1..=3 (SDE: ≤ 2).
    pub order: usize,
    /// Noise or data form (velocity and score models are converted).
    pub form: Form,
    /// If fewer than 10 steps, the last steps use `min(order, steps left)`.
    pub lower_order_final: bool,
    /// The last update is replaced by x̂0 at the last-but-one time (same NFE).
    pub denoise_last: bool,
    /// Dynamic thresholding of x̂0 (off by default).
    pub thresholding: Option<Thresholding>,
    /// The order-3 D2 term.
    pub third_order: ThirdOrder,
}

impl Default for Mrs {
    /// The spec's default: ODE, data form, order 2, lower_order_final.
    fn default() -> Self {
        Self {
            variant: Variant::Ode,
            order: 2,
            form: Form::Data,
            lower_order_final: true,
            denoise_last: false,
            thresholding: None,
            third_order: ThirdOrder::TaylorExact,
        }
    }
}

impl Mrs {
    /// An ODE solver of `order` in `form`.
    pub fn ode(order: usize, form: Form) -> Self {
        Self {
            order,
            form,
            ..Self::default()
        }
    }
    /// An SDE solver of `order` in `form`.
    pub fn sde(order: usize, form: Form) -> Self {
        Self {
            variant: Variant::Sde,
            order,
            form,
            ..Self::default()
        }
    }

    fn validate(&self, steps: usize) -> Result<()> {
        if self.order == 0 || self.order > 3 {
            return Err(Error::Order {
                sampler: "MRS",
                order: self.order,
                min: 1,
                max: 3,
            });
        }
        if self.variant == Variant::Sde && self.order > 2 {
            return Err(Error::SdeOrder { order: self.order });
        }
        if steps < self.order && !self.lower_order_final {
            return Err(Error::NfeBelowWarmup {
                nfe: steps,
                order: self.order,
            });
        }
        Ok(())
    }

    /// Runs from the state `x_k` at `grid[k]`, `k = history.len()`, given the
    /// model outputs already known at `grid[..k]` (in this solver's form: ε̂ or
    /// the uncentered x̂0), oldest first. `history = []` is [`Sampler::sample`];
    /// exact histories measure the scheme's own order without the warm-up.
    pub fn sample_with_history(
        &self,
        process: &dyn Process,
        model: &dyn Model,
        x_k: &Tensor,
        grid: &[f64],
        history: &[Tensor],
        noise: &mut dyn NoiseSource,
    ) -> Result<(Tensor, Stats)> {
        check_start(process, x_k, grid)?;
        let k = history.len();
        if k + 1 >= grid.len() {
            return Err(Error::Config(format!(
                "history of {k} outputs leaves no step on a grid of {} points",
                grid.len()
            )));
        }
        let m = grid.len() - 1;
        self.validate(m)?;
        let ev = Evaluator::new(process, model).with_thresholding(self.thresholding);
        let lams: Vec<f64> = grid.iter().map(|&t| process.lambda(t)).collect();
        // Buffer of outputs, newest first, with their λ.
        let mut buf: Vec<(Tensor, f64)> = history
            .iter()
            .enumerate()
            .rev()
            .map(|(j, q)| {
                let q = match self.form {
                    Form::Data => centered(process, q),
                    Form::Noise => q.shallow_clone(),
                };
                (q, lams[j])
            })
            .collect();
        buf.truncate(3);
        let mut y = centered(process, x_k);
        for i in (k + 1)..=m {
            let s = grid[i - 1];
            let t = grid[i];
            if self.denoise_last && i == m {
                y = ev.data(&y, s)?;
                break;
            }
            let q0 = match self.form {
                Form::Data => ev.data(&y, s)?,
                Form::Noise => ev.noise(&y, s)?,
            };
            buf.insert(0, (q0, lams[i - 1]));
            buf.truncate(3);
            let mut order = self.order.min(buf.len());
            if self.lower_order_final && m < 10 {
                order = order.min(m - i + 1);
            }
            let st = Step::new(process, s, t);
            let qs: Vec<&Tensor> = buf.iter().map(|(q, _)| q).collect();
            let ls: Vec<f64> = buf.iter().map(|(_, l)| *l).collect();
            let z = match self.variant {
                Variant::Sde => Some(noise.standard_normal(&y, s, t)?),
                Variant::Ode => None,
            };
            y = multistep_update(
                self.form,
                &y,
                &qs,
                &ls,
                order,
                &st,
                self.third_order,
                z.as_ref(),
            )?;
        }
        Ok((uncentered(process, &y), Stats::model_only(ev.nfe())))
    }
}

impl Sampler for Mrs {
    fn name(&self) -> String {
        let v = match self.variant {
            Variant::Ode => "ODE",
            Variant::Sde => "SDE",
        };
        let f = match self.form {
            Form::Data => "data",
            Form::Noise => "noise",
        };
        let third = if self.order == 3 && self.third_order == ThirdOrder::Reference {
            " (reference D2)"
        } else {
            ""
        };
        format!("MRS {v}-{} {f}{third}", self.order)
    }
    fn sample(
        &self,
        process: &dyn Process,
        model: &dyn Model,
        x: &Tensor,
        grid: &[f64],
        noise: &mut dyn NoiseSource,
    ) -> Result<(Tensor, Stats)> {
        self.sample_with_history(process, model, x, grid, &[], noise)
    }
}
