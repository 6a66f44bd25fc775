//! The NFE a sampler needs to reach a quality target, to a stated precision.
//!
//! A sweep over a doubling grid (5, 10, …, 320) only says the answer lies
//! between two grid points, so "Euler needs 160" may mean 90, and a ratio of
//! two such answers may be off by up to 4×. [`nfe_to_target`] walks a
//! coarse grid to the first point that reaches the target, then refines the
//! last gap on a geometric grid of ratio `step` (e.g. 1.25), so the answer
//! is bracketed within that ratio; [`ToTarget::interpolated`] reads the
//! crossing off the log-log line through the bracket.

use crate::Result;

/// One evaluation: the NFE actually used (a sampler may round) and the error.
pub type Point = (usize, f64);

/// Where a sampler's error first reaches the target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToTarget {
    /// The largest NFE tried below the crossing (error above the target);
    /// `None` when the first point tried already reaches it.
    pub before: Option<Point>,
    /// The smallest NFE tried that reaches the target; `None` when none up
    /// to the maximum does.
    pub reached: Option<Point>,
    /// The target.
    pub target: f64,
}

impl ToTarget {
    /// The NFE at which the log-log line through the bracket crosses the
    /// target: `exp(ln n₀ + (ln target − ln e₀)·(ln n₁ − ln n₀)/(ln e₁ − ln e₀))`.
    /// The reached point itself when there is no point before it or the
    /// errors do not allow a log (zero, non-finite, not decreasing); `None`
    /// when the target is not reached.
    pub fn interpolated(&self) -> Option<f64> {
        let (n1, e1) = self.reached?;
        let Some((n0, e0)) = self.before else {
            return Some(n1 as f64);
        };
        let ok = e0.is_finite() && e1 > 0.0 && e0 > e1 && n1 > n0 && self.target > 0.0;
        if !ok {
            return Some(n1 as f64);
        }
        let (l0, l1) = ((n0 as f64).ln(), (n1 as f64).ln());
        let t = (self.target.ln() - e0.ln()) / (e1.ln() - e0.ln());
        Some((l0 + t.clamp(0.0, 1.0) * (l1 - l0)).exp())
    }

    /// `(lower, upper)`: the target is reached at an NFE in `(lower, upper]`
    /// (`lower` 0 when the first point reaches it; `upper` `None` when
    /// nothing does).
    pub fn bracket(&self) -> (usize, Option<usize>) {
        (self.before.map_or(0, |p| p.0), self.reached.map(|p| p.0))
    }
}

/// Finds where `eval(nfe) = (used NFE, error)` first reaches `error ≤ target`:
/// along `grid` (increasing), then beyond its end by factors of `step` up to
/// `max`, and refines the gap before the first point reaching it by factors
/// of `step`. `step` must exceed 1. Evaluations whose error is not finite
/// count as not reaching the target.
pub fn nfe_to_target(
    grid: &[usize],
    step: f64,
    max: usize,
    target: f64,
    mut eval: impl FnMut(usize) -> Result<Point>,
) -> Result<ToTarget> {
    if !(step > 1.0) {
        return Err(crate::Error::Config(format!(
            "nfe_to_target: step must exceed 1, got {step}"
        )));
    }
    let reaches = |e: f64| e.is_finite() && e <= target;
    let next = |n: usize| ((n as f64 * step).ceil() as usize).max(n + 1);
    let mut before: Option<Point> = None;
    let mut reached: Option<Point> = None;
    let mut candidates: Vec<usize> = grid.to_vec();
    let mut i = 0;
    while i < candidates.len() || reached.is_none() {
        let n = match candidates.get(i) {
            Some(&n) => n,
            None => {
                let last = candidates.last().copied().unwrap_or(1);
                let n = next(last);
                if n > max {
                    break;
                }
                candidates.push(n);
                n
            }
        };
        i += 1;
        let p = eval(n)?;
        if reaches(p.1) {
            reached = Some(p);
            break;
        }
        before = Some(p);
    }
    // Refine (before, reached) by factors of `step`.
    if let (Some(mut lo), Some(mut hi)) = (before, reached) {
        loop {
            let n = next(lo.0);
            if n >= hi.0 {
                break;
            }
            let p = eval(n)?;
            if p.0 >= hi.0 || p.0 <= lo.0 {
                break; // the sampler rounds the NFE onto a point already known
            }
            if reaches(p.1) {
                hi = p;
            } else {
                lo = p;
            }
        }
        before = Some(lo);
        reached = Some(hi);
    }
    Ok(ToTarget {
        before,
        reached,
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error falling as 1/NFE: the exact crossing of 1e-2 is at 100.
    fn first_order(n: usize) -> Result<Point> {
        Ok((n, 1.0 / n as f64))
    }

    #[test]
    fn a_doubling_grid_is_refined_to_the_step_and_interpolated() {
        let r = nfe_to_target(
            &[5, 10, 20, 40, 80, 160, 320],
            1.25,
            10_000,
            1e-2,
            first_order,
        )
        .unwrap();
        let (lo, hi) = r.bracket();
        let hi = hi.unwrap();
        assert!(lo < 100 && hi >= 100, "({lo}, {hi}]");
        assert!(hi as f64 / lo as f64 <= 1.25 + 1e-9, "({lo}, {hi}]");
        // A power law is a line in log-log: the interpolation is exact.
        assert!((r.interpolated().unwrap() - 100.0).abs() < 1e-6);
    }

    #[test]
    fn past_the_grid_it_goes_on_by_the_step_up_to_the_maximum() {
        let r = nfe_to_target(&[5, 10], 1.25, 10_000, 1e-2, first_order).unwrap();
        assert!(r.reached.unwrap().0 >= 100);
        let none = nfe_to_target(&[5, 10], 1.25, 50, 1e-2, first_order).unwrap();
        assert_eq!(none.reached, None);
        assert_eq!(none.interpolated(), None);
        assert!(none.before.unwrap().0 <= 50);
    }

    #[test]
    fn reached_at_once_and_non_finite_errors() {
        let r = nfe_to_target(&[5, 10], 1.25, 100, 1.0, first_order).unwrap();
        assert_eq!(r.bracket(), (0, Some(5)));
        assert_eq!(r.interpolated(), Some(5.0));
        let nan = nfe_to_target(&[5, 10], 1.25, 100, 1.0, |n| Ok((n, f64::NAN))).unwrap();
        assert_eq!(nan.reached, None);
        assert!(nfe_to_target(&[5], 1.0, 100, 1.0, first_order).is_err());
    }
}
