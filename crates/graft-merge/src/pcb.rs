//! PCB-merging (Du et al., NeurIPS 2024), spec §4, on one segment.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// PCB's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PcbParams {
    /// Keep ratio `r` in (0, 1]: about `r · d` entries per model get a weight.
    pub keep_ratio: f64,
    /// Clamp ratio `c` in [0, 0.5): magnitudes are clipped to their `c` and
    /// `1 − c` quantiles (0.01 in the code behind the paper's runs).
    pub clamp_ratio: f64,
}

impl Default for PcbParams {
    fn default() -> Self {
        Self {
            keep_ratio: 0.1,
            clamp_ratio: 0.01,
        }
    }
}

/// Per model: PCB's clamped deltas `δc_i` and its drop-rescaled scores `s_i`.
pub type PcbScores = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// PCB's clamped deltas `δc_i` and drop-rescaled scores `s_i` for every model
/// (reference inter-balancing `tanh(δ_i ⊙ Σ_j δ_j)`).
pub fn pcb_scores(tensor: &str, deltas: &[Vec<f32>], params: &PcbParams) -> Result<PcbScores> {
    let bad = |what: String| Error::BadParameter {
        tensor: tensor.into(),
        what,
    };
    if !(params.keep_ratio > 0.0 && params.keep_ratio <= 1.0) {
        return Err(bad(format!(
            "PCB keep ratio {} must be in (0, 1]",
            params.keep_ratio
        )));
    }
    if !(0.0..0.5).contains(&params.clamp_ratio) {
        return Err(bad(format!(
            "PCB clamp ratio {} must be in [0, 0.5)",
            params.clamp_ratio
        )));
    }
    let n = deltas.len();
    let d = deltas.first().map_or(0, Vec::len);
    if d == 0 {
        return Ok((vec![Vec::new(); n], vec![Vec::new(); n]));
    }
    let sum: Vec<f32> = (0..d).map(|p| deltas.iter().map(|x| x[p]).sum()).collect();
    let mut clamped = Vec::with_capacity(n);
    let mut scores = Vec::with_capacity(n);
    for delta in deltas {
        // 1. Clamp magnitudes to [lo, hi].
        let mut mags: Vec<f32> = delta.iter().map(|x| x.abs()).collect();
        mags.sort_by(f32::total_cmp);
        let lo = mags[(params.clamp_ratio * d as f64).floor() as usize];
        let hi_index = ((1.0 - params.clamp_ratio) * d as f64).floor() as usize;
        let hi = mags[hi_index.saturating_sub(1).min(d - 1)];
        let abar: Vec<f32> = delta
            .iter()
            .map(|x| x.abs().clamp(lo, hi.max(lo)))
            .collect();
        clamped.push(
            delta
                .iter()
                .zip(&abar)
                .map(|(x, a)| crate::combine::sign(*x) * a)
                .collect::<Vec<f32>>(),
        );
        // 2-4. Intra (exp(n u²)) times inter (tanh(δ_i ⊙ Σ δ_j)).
        let span = hi - lo;
        let beta: Vec<f32> = (0..d)
            .map(|p| {
                let u = if span > 0.0 {
                    (abar[p] - lo) / span
                } else {
                    0.0
                };
                let intra = (n as f32 * u * u).exp();
                intra * (delta[p] * sum[p]).tanh()
            })
            .collect();
        // 5. Drop below the (1 − r) quantile, rescale to [0, 1].
        let mut sorted = beta.clone();
        sorted.sort_by(f32::total_cmp);
        let t = sorted[((1.0 - params.keep_ratio) * d as f64)
            .floor()
            .min((d - 1) as f64) as usize];
        let m = sorted[d - 1];
        scores.push(
            beta.iter()
                .map(|&b| if m > t { (b.max(t) - t) / (m - t) } else { 0.0 })
                .collect(),
        );
    }
    Ok((clamped, scores))
}

/// PCB's merged delta: `Σ_i λ_i s_i δc_i / max(Σ_i s_i, 1e-12)`.
pub(crate) fn pcb_merge(clamped: &[Vec<f32>], scores: &[Vec<f32>], lambdas: &[f32]) -> Vec<f32> {
    let d = clamped.first().map_or(0, Vec::len);
    (0..d)
        .map(|p| {
            let (mut num, mut den) = (0.0f32, 0.0f32);
            for i in 0..clamped.len() {
                num += lambdas[i] * scores[i][p] * clamped[i][p];
                den += scores[i][p];
            }
            num / den.max(1e-12)
        })
        .collect()
}
