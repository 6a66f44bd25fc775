//! Step grids: the times a sampler visits, strictly decreasing from the
//! noisy start to the clean end.

use crate::process::Process;
use crate::{Error, Result};
use graft_tensor::tch::Tensor;

/// How to place `steps + 1` times between `t_start` (noisy) and `t_end` (clean).
#[derive(Debug, Clone, PartialEq)]
pub enum StepGrid {
    /// Uniform in t.
    UniformT,
    /// Uniform in λ; with `lambda_min`, sampling starts at the largest t whose λ ≥ λ_min.
    UniformLambda {
        /// The smallest λ to start from (−5 on tables in the reference code).
        lambda_min: Option<f64>,
    },
    /// Karras et al.'s ρ-spacing on `σ/α = e^{−λ}`, mapped back to t.
    Karras {
        /// ρ (7).
        rho: f64,
    },
    /// DPM-Solver's time-quadratic spacing (uniform in √t).
    QuadraticT,
    /// Uniform over the index table, rounded to integers (diffusers' `linspace`).
    Linspace,
    /// Integer steps of `floor(range/steps)` from `t_end` (diffusers' `leading`).
    Leading,
    /// Integer steps rounded down from `t_start` (diffusers' `trailing`).
    Trailing,
    /// A user grid, strictly decreasing.
    Custom(Vec<f64>),
}

impl std::str::FromStr for StepGrid {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "uniform-t" | "time-uniform" => Self::UniformT,
            "uniform-lambda" | "logsnr" | "linear-lambda" => {
                Self::UniformLambda { lambda_min: None }
            }
            "karras" => Self::Karras { rho: 7.0 },
            "quadratic-t" | "time-quadratic" => Self::QuadraticT,
            "linspace" => Self::Linspace,
            "leading" => Self::Leading,
            "trailing" => Self::Trailing,
            other => {
                return Err(Error::Config(format!(
                    "unknown grid `{other}` (uniform-t, uniform-lambda, karras, quadratic-t, linspace, leading, trailing)"
                )));
            }
        })
    }
}

/// Checks that `grid` has at least two points and strictly decreases.
pub fn check_decreasing(grid: &[f64]) -> Result<()> {
    if grid.len() < 2 {
        return Err(Error::NotMonotone {
            index: grid.len(),
            grid: grid.to_vec(),
        });
    }
    for i in 1..grid.len() {
        if !(grid[i] < grid[i - 1]) || !grid[i].is_finite() {
            return Err(Error::NotMonotone {
                index: i,
                grid: grid.to_vec(),
            });
        }
    }
    Ok(())
}

/// The checks at every sampler's entry: a strictly decreasing grid
/// ([`check_decreasing`]), a floating-point start state of rank ≥ 1, and a
/// process mean μ (if any) that broadcasts to the state's shape, so that a
/// wrong shape is an [`Error::ShapeMismatch`] and never a libtorch abort.
pub fn check_start(process: &dyn Process, x: &Tensor, grid: &[f64]) -> Result<()> {
    check_decreasing(grid)?;
    let xs = x.size();
    if xs.is_empty() || !x.is_floating_point() {
        return Err(Error::ShapeMismatch {
            what: "sampler start state [n, ...] of floats",
            expected: vec![-1, -1],
            actual: xs,
        });
    }
    if let Some(mu) = process.mu() {
        let ms = mu.size();
        let fits = ms.len() <= xs.len()
            && ms
                .iter()
                .rev()
                .zip(xs.iter().rev())
                .all(|(m, x)| *m == 1 || m == x);
        if !fits {
            return Err(Error::ShapeMismatch {
                what: "process mean μ against the start state (μ must broadcast to it)",
                expected: xs,
                actual: ms,
            });
        }
    }
    Ok(())
}

impl StepGrid {
    /// `steps + 1` strictly decreasing times from `t_start` to `t_end` (for
    /// `Custom`, the grid itself, checked).
    pub fn times(
        &self,
        process: &dyn Process,
        steps: usize,
        t_start: f64,
        t_end: f64,
    ) -> Result<Vec<f64>> {
        if let Self::Custom(g) = self {
            check_decreasing(g)?;
            for &t in g {
                process.check_t(t)?;
            }
            return Ok(g.clone());
        }
        if steps == 0 {
            return Err(Error::Invalid {
                name: "steps",
                value: 0.0,
                reason: "a grid needs at least one step",
            });
        }
        process.check_t(t_start)?;
        process.check_t(t_end)?;
        if !(t_start > t_end) {
            return Err(Error::NotMonotone {
                index: 1,
                grid: vec![t_start, t_end],
            });
        }
        let n = steps as f64;
        let frac = |i: usize| i as f64 / n;
        let g: Vec<f64> = match self {
            Self::UniformT => (0..=steps)
                .map(|i| t_start + frac(i) * (t_end - t_start))
                .collect(),
            Self::QuadraticT => {
                let (a, b) = (t_start.sqrt(), t_end.sqrt());
                (0..=steps)
                    .map(|i| (a + frac(i) * (b - a)).powi(2))
                    .collect()
            }
            Self::UniformLambda { lambda_min } => {
                let l_end = process.lambda(t_end);
                let mut l_start = process.lambda(t_start);
                let mut t0 = t_start;
                if let Some(lm) = *lambda_min {
                    // Below the schedule's range the clip is a no-op (the reference
                    // starts at T); at or above λ(t_end) no step is left.
                    let (lo, hi) = (process.lambda(process.t_range().1), l_end);
                    if !(lm < hi) {
                        return Err(Error::LambdaOutOfRange { lambda: lm, lo, hi });
                    }
                    if l_start < lm {
                        l_start = lm;
                        t0 = process.t_of_lambda(lm)?;
                    }
                }
                let mut g = vec![t0];
                for i in 1..steps {
                    g.push(process.t_of_lambda(l_start + frac(i) * (l_end - l_start))?);
                }
                g.push(t_end);
                g
            }
            Self::Karras { rho } => {
                if !(*rho > 0.0) {
                    return Err(Error::Invalid {
                        name: "rho",
                        value: *rho,
                        reason: "must be positive",
                    });
                }
                let smax = (-process.lambda(t_start)).exp().powf(1.0 / rho);
                let smin = (-process.lambda(t_end)).exp().powf(1.0 / rho);
                let mut g = vec![t_start];
                for i in 1..steps {
                    let s = (smax + frac(i) * (smin - smax)).powf(*rho);
                    g.push(process.t_of_lambda(-s.ln())?);
                }
                g.push(t_end);
                g
            }
            Self::Linspace => (0..=steps)
                .map(|i| (t_start + frac(i) * (t_end - t_start)).round())
                .collect(),
            Self::Leading => {
                let ratio = ((t_start - t_end) / n).floor();
                (0..=steps)
                    .rev()
                    .map(|i| t_end + i as f64 * ratio)
                    .collect()
            }
            Self::Trailing => {
                let ratio = (t_start - t_end) / n;
                (0..=steps)
                    .map(|i| (t_start - i as f64 * ratio).round())
                    .collect()
            }
            Self::Custom(_) => unreachable!("handled above"),
        };
        check_decreasing(&g)?;
        Ok(g)
    }
}
