//! Logistic regression on one feature with balanced class weights, as
//! scikit-learn's `LogisticRegression(class_weight="balanced")` (L2, C = 1,
//! unpenalised intercept), solved to convergence by Newton's method in f64.

use crate::{Error, Result};

/// A fitted `P(member | x) = σ(coef·x + intercept)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BalancedLogistic {
    /// The feature's weight.
    pub coef: f64,
    /// The intercept.
    pub intercept: f64,
}

impl BalancedLogistic {
    /// Minimises `½·w² + C·Σ_i s_i·logloss_i` over `(w, b)`, with
    /// `s_i = n / (2·n_{class(i)})`: positives (label 1) and negatives
    /// (label 0) weigh the same in all. Errors when either class is empty
    /// or a feature is not finite.
    pub fn fit(positives: &[f64], negatives: &[f64], c: f64) -> Result<Self> {
        if positives.is_empty() || negatives.is_empty() {
            return Err(Error::data(
                "membership inference",
                format!(
                    "logistic regression needs both classes ({} members, {} non-members)",
                    positives.len(),
                    negatives.len()
                ),
            ));
        }
        if positives.iter().chain(negatives).any(|x| !x.is_finite()) {
            return Err(Error::data(
                "membership inference",
                "a feature is not finite",
            ));
        }
        if c.is_nan() || c <= 0.0 {
            return Err(Error::option("C", c, "must be > 0"));
        }
        let n = (positives.len() + negatives.len()) as f64;
        let (sp, sn) = (
            n / (2.0 * positives.len() as f64),
            n / (2.0 * negatives.len() as f64),
        );
        let samples: Vec<(f64, f64, f64)> = positives
            .iter()
            .map(|&x| (x, 1.0, c * sp))
            .chain(negatives.iter().map(|&x| (x, 0.0, c * sn)))
            .collect();
        let objective = |w: f64, b: f64| -> f64 {
            let mut f = 0.5 * w * w;
            for &(x, y, s) in &samples {
                let z = w * x + b;
                // log(1 + e^{-z}) for y = 1, log(1 + e^{z}) for y = 0, stably.
                let m = if y == 1.0 { -z } else { z };
                f += s * (m.max(0.0) + (-m.abs()).exp().ln_1p());
            }
            f
        };
        let (mut w, mut b) = (0.0f64, 0.0f64);
        let mut f = objective(w, b);
        for _ in 0..200 {
            let (mut gw, mut gb, mut hww, mut hwb, mut hbb) = (w, 0.0, 1.0, 0.0, 0.0);
            for &(x, y, s) in &samples {
                let p = sigmoid(w * x + b);
                let r = s * (p - y);
                let h = s * p * (1.0 - p);
                gw += r * x;
                gb += r;
                hww += h * x * x;
                hwb += h * x;
                hbb += h;
            }
            if gw.abs().max(gb.abs()) < 1e-13 * n {
                break;
            }
            let det = hww * hbb - hwb * hwb;
            let (dw, db) = if det > 0.0 && hbb > 0.0 {
                ((hbb * gw - hwb * gb) / det, (hww * gb - hwb * gw) / det)
            } else {
                (gw, gb)
            };
            let mut step = 1.0;
            let mut improved = false;
            for _ in 0..60 {
                let (nw, nb) = (w - step * dw, b - step * db);
                let nf = objective(nw, nb);
                if nf <= f {
                    improved = nf < f;
                    (w, b, f) = (nw, nb, nf);
                    break;
                }
                step *= 0.5;
            }
            if !improved {
                break;
            }
        }
        Ok(Self {
            coef: w,
            intercept: b,
        })
    }

    /// `P(member | x)`.
    pub fn probability(&self, x: f64) -> f64 {
        sigmoid(self.coef * x + self.intercept)
    }

    /// Predicted member (`coef·x + intercept > 0`, scikit-learn's `predict`).
    pub fn is_member(&self, x: f64) -> bool {
        self.coef * x + self.intercept > 0.0
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}
