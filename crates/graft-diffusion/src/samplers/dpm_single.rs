//! DPM-Solver / DPM-Solver++ single-step of order 2 (r = ½) and 3 (r = ⅓, ⅔),
//! on centered `y = x − μ` so they serve mean-reverting processes too.

use super::{Sampler, Stats};
use crate::grid::check_start;
use crate::integrator::{Form, phi_data, phi_noise};
use crate::model::{Evaluator, Model};
use crate::noise::NoiseSource;
use crate::process::{Process, centered, uncentered};
use crate::{Error, Result};
use graft_tensor::fused::lincomb;
use graft_tensor::tch::Tensor;

/// Single-step DPM-Solver (noise form) or DPM-Solver++ (data form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpmSolverSingle {
    /// 2 or 3 (model calls per step).
    pub order: usize,
    /// Noise (DPM-Solver) or data (DPM-Solver++).
    pub form: Form,
}

impl DpmSolverSingle {
    fn step(&self, ev: &Evaluator, p: &dyn Process, y: &Tensor, s: f64, t: f64) -> Result<Tensor> {
        let (ls, lt) = (p.lambda(s), p.lambda(t));
        let h = lt - ls;
        let (a_s, s_s, a_t, s_t) = (p.alpha(s), p.sigma(s), p.alpha(t), p.sigma(t));
        let at = |r: f64| -> Result<(f64, f64, f64)> {
            let tr = p.t_of_lambda(ls + r * h)?;
            Ok((tr, p.alpha(tr), p.sigma(tr)))
        };
        // Each update is one fused linear combination; the differences
        // (e_1 − e_s, …) are folded into the coefficients.
        match (self.order, self.form) {
            (2, Form::Noise) => {
                let r = 0.5;
                let (t1, a1, s1) = at(r)?;
                let e_s = ev.noise(y, s)?;
                let u = lincomb(&[(a1 / a_s, y), (-s1 * (r * h).exp_m1(), &e_s)])?;
                let e_1 = ev.noise(&u, t1)?;
                let k = s_t / (2.0 * r) * h.exp_m1();
                Ok(lincomb(&[
                    (a_t / a_s, y),
                    (-s_t * h.exp_m1() + k, &e_s),
                    (-k, &e_1),
                ])?)
            }
            (2, Form::Data) => {
                let r = 0.5;
                let (t1, a1, s1) = at(r)?;
                let m_s = ev.data(y, s)?;
                let u = lincomb(&[(s1 / s_s, y), (-a1 * (-r * h).exp_m1(), &m_s)])?;
                let m_1 = ev.data(&u, t1)?;
                let k = a_t / (2.0 * r) * (-h).exp_m1();
                Ok(lincomb(&[
                    (s_t / s_s, y),
                    (-a_t * (-h).exp_m1() + k, &m_s),
                    (-k, &m_1),
                ])?)
            }
            (3, Form::Noise) => {
                let (r1, r2) = (1.0 / 3.0, 2.0 / 3.0);
                let (t1, a1, s1) = at(r1)?;
                let (t2, a2, s2) = at(r2)?;
                let e_s = ev.noise(y, s)?;
                let u1 = lincomb(&[(a1 / a_s, y), (-s1 * (r1 * h).exp_m1(), &e_s)])?;
                let e_1 = ev.noise(&u1, t1)?;
                let phi22 = phi_noise(r2 * h).1;
                let c22 = s2 * r2 / r1 * phi22;
                let u2 = lincomb(&[
                    (a2 / a_s, y),
                    (-s2 * (r2 * h).exp_m1() + c22, &e_s),
                    (-c22, &e_1),
                ])?;
                let e_2 = ev.noise(&u2, t2)?;
                let phi2 = phi_noise(h).1;
                let k = s_t / r2 * phi2;
                Ok(lincomb(&[
                    (a_t / a_s, y),
                    (-s_t * h.exp_m1() + k, &e_s),
                    (-k, &e_2),
                ])?)
            }
            (3, Form::Data) => {
                let (r1, r2) = (1.0 / 3.0, 2.0 / 3.0);
                let (t1, a1, s1) = at(r1)?;
                let (t2, a2, s2) = at(r2)?;
                let m_s = ev.data(y, s)?;
                let u1 = lincomb(&[(s1 / s_s, y), (-a1 * (-r1 * h).exp_m1(), &m_s)])?;
                let m_1 = ev.data(&u1, t1)?;
                let phi22 = phi_data(r2 * h).1;
                let c22 = a2 * r2 / r1 * phi22;
                let u2 = lincomb(&[
                    (s2 / s_s, y),
                    (-a2 * (-r2 * h).exp_m1() - c22, &m_s),
                    (c22, &m_1),
                ])?;
                let m_2 = ev.data(&u2, t2)?;
                let phi2 = phi_data(h).1;
                let k = a_t / r2 * phi2;
                Ok(lincomb(&[
                    (s_t / s_s, y),
                    (-a_t * (-h).exp_m1() - k, &m_s),
                    (k, &m_2),
                ])?)
            }
            (order, _) => Err(Error::Order {
                sampler: "DPM-Solver single-step",
                order,
                min: 2,
                max: 3,
            }),
        }
    }
}

impl Sampler for DpmSolverSingle {
    fn name(&self) -> String {
        match self.form {
            Form::Noise => format!("DPM-Solver-{}S", self.order),
            Form::Data => format!("DPM-Solver++-{}S", self.order),
        }
    }
    fn steps_for_nfe(&self, nfe: usize) -> usize {
        nfe / self.order.max(1)
    }
    fn sample(
        &self,
        process: &dyn Process,
        model: &dyn Model,
        x: &Tensor,
        grid: &[f64],
        _noise: &mut dyn NoiseSource,
    ) -> Result<(Tensor, Stats)> {
        if !(2..=3).contains(&self.order) {
            return Err(Error::Order {
                sampler: "DPM-Solver single-step",
                order: self.order,
                min: 2,
                max: 3,
            });
        }
        check_start(process, x, grid)?;
        let ev = Evaluator::new(process, model);
        let mut y = centered(process, x);
        for w in grid.windows(2) {
            y = self.step(&ev, process, &y, w[0], w[1])?;
        }
        Ok((uncentered(process, &y), Stats::model_only(ev.nfe())))
    }
}
