//! PCB-merging (Du et al., NeurIPS 2024), spec §4, on one segment.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// How PCB's inter-balancing weighs a model's entries against the others
/// (spec §4 step 3; all three are in the reference repository).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterBalance {
    /// `tanh(δ_i ⊙ Σ_j δ_j)` on the raw deltas (the reference default).
    #[default]
    Reference,
    /// `tanh(δ_i ⊙ Σ_j ν_j)` with `ν_j = sgn(δ_j)·u_j`, the normalised clamped magnitudes.
    NormalizedSum,
    /// `Σ_j tanh(ν_i ⊙ ν_j)`, closest to the paper's pairwise formula.
    Pairwise,
}

/// PCB's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PcbParams {
    /// Keep ratio `r` in (0, 1]: about `r · d` entries per model get a weight.
    pub keep_ratio: f64,
    /// Clamp ratio `c` in [0, 0.5): magnitudes are clipped to their `c` and
    /// `1 − c` quantiles (0.01 in the code behind the paper's runs).
    pub clamp_ratio: f64,
    /// The inter-balancing variant.
    #[serde(default)]
    pub inter: InterBalance,
}

impl Default for PcbParams {
    fn default() -> Self {
        Self {
            keep_ratio: 0.1,
            clamp_ratio: 0.01,
            inter: InterBalance::Reference,
        }
    }
}

/// Per model: PCB's clamped deltas `δc_i` and its drop-rescaled scores `s_i`.
pub type PcbScores = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// PCB's clamped deltas `δc_i` and drop-rescaled scores `s_i` for every model
/// (inter-balancing as `params.inter` says).
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
    // 1. Clamp magnitudes to [lo, hi]; u = (ā − lo)/(hi − lo) (0 if hi = lo).
    let mut clamped = Vec::with_capacity(n);
    let mut unit = Vec::with_capacity(n);
    for delta in deltas {
        let mut mags: Vec<f32> = delta.iter().map(|x| x.abs()).collect();
        mags.sort_by(f32::total_cmp);
        let lo = mags[(params.clamp_ratio * d as f64).floor() as usize];
        let hi_index = ((1.0 - params.clamp_ratio) * d as f64).floor() as usize;
        let hi = mags[hi_index.saturating_sub(1).min(d - 1)].max(lo);
        let span = hi - lo;
        let abar: Vec<f32> = delta.iter().map(|x| x.abs().clamp(lo, hi)).collect();
        clamped.push(
            delta
                .iter()
                .zip(&abar)
                .map(|(x, a)| crate::combine::sign(*x) * a)
                .collect::<Vec<f32>>(),
        );
        unit.push(
            abar.iter()
                .map(|a| if span > 0.0 { (a - lo) / span } else { 0.0 })
                .collect::<Vec<f32>>(),
        );
    }
    // 3. Inter-balancing.
    let nu: Vec<Vec<f32>> = match params.inter {
        InterBalance::Reference => Vec::new(),
        _ => deltas
            .iter()
            .zip(&unit)
            .map(|(delta, u)| {
                delta
                    .iter()
                    .zip(u)
                    .map(|(x, u)| crate::combine::sign(*x) * u)
                    .collect()
            })
            .collect(),
    };
    let sum_of =
        |vs: &[Vec<f32>]| -> Vec<f32> { (0..d).map(|p| vs.iter().map(|x| x[p]).sum()).collect() };
    let sum = match params.inter {
        InterBalance::Reference => sum_of(deltas),
        InterBalance::NormalizedSum => sum_of(&nu),
        InterBalance::Pairwise => Vec::new(),
    };
    let mut scores = Vec::with_capacity(n);
    for (i, delta) in deltas.iter().enumerate() {
        // 2, 4. β = intra · inter, intra = exp(n u²).
        let beta: Vec<f32> = (0..d)
            .map(|p| {
                let u = unit[i][p];
                let intra = (n as f32 * u * u).exp();
                let inter = match params.inter {
                    InterBalance::Reference | InterBalance::NormalizedSum => {
                        (delta[p] * sum[p]).tanh()
                    }
                    InterBalance::Pairwise => nu.iter().map(|v| (nu[i][p] * v[p]).tanh()).sum(),
                };
                intra * inter
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

/// PCB's per-model merged parts `A_i = s_i ⊙ δc_i / max(Σ_j s_j, 1e-12)`,
/// which do not depend on the scales: any `λ` gives `Δ = Σ_i λ_i A_i`
/// without recomputing the scores (spec §4 step 8, "PCB + ES").
pub struct PcbComponents {
    ids: Vec<String>,
    parts: Vec<Vec<f32>>,
}

impl PcbComponents {
    /// The parts of `models` (values `θ_i`, deltas taken against `base`;
    /// an empty `base` means the values are deltas), in the order given.
    pub fn new(
        pcb: &PcbParams,
        segment: &str,
        base: &[f32],
        models: &[crate::Delta],
    ) -> Result<Self> {
        let first = models
            .first()
            .ok_or_else(|| Error::NoModels(segment.into()))?;
        let n = first.values.len();
        if !base.is_empty() && base.len() != n {
            return Err(Error::LengthMismatch {
                tensor: segment.into(),
                first: "base".into(),
                expected: base.len(),
                model: first.id.clone(),
                got: n,
            });
        }
        let mut deltas = Vec::with_capacity(models.len());
        for m in models {
            if m.values.len() != n {
                return Err(Error::LengthMismatch {
                    tensor: segment.into(),
                    first: first.id.clone(),
                    expected: n,
                    model: m.id.clone(),
                    got: m.values.len(),
                });
            }
            let delta: Vec<f32> = if base.is_empty() {
                m.values.to_vec()
            } else {
                m.values.iter().zip(base).map(|(x, b)| x - b).collect()
            };
            if let Some((i, v)) = delta.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(Error::NonFinite {
                    tensor: segment.into(),
                    value: *v,
                    index: i,
                    place: format!("in model `{}`", m.id),
                });
            }
            deltas.push(delta);
        }
        let (clamped, scores) = pcb_scores(segment, &deltas, pcb)?;
        let den: Vec<f32> = (0..n)
            .map(|p| scores.iter().map(|s| s[p]).sum::<f32>().max(1e-12))
            .collect();
        let parts = clamped
            .iter()
            .zip(&scores)
            .map(|(c, s)| {
                c.iter()
                    .zip(s)
                    .zip(&den)
                    .map(|((c, s), d)| s * c / d)
                    .collect()
            })
            .collect();
        Ok(Self {
            ids: models.iter().map(|m| m.id.clone()).collect(),
            parts,
        })
    }

    /// The models' identifiers, in the order the scales refer to.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// `Δ = Σ_i λ_i A_i`, one scale per model in [`Self::ids`] order.
    pub fn combine(&self, lambdas: &[f64]) -> Result<Vec<f32>> {
        if lambdas.len() != self.parts.len() {
            return Err(Error::BadParameter {
                tensor: "<pcb>".into(),
                what: format!("{} scales for {} models", lambdas.len(), self.parts.len()),
            });
        }
        let n = self.parts.first().map_or(0, Vec::len);
        let mut out = vec![-0.0f32; n];
        for (part, &l) in self.parts.iter().zip(lambdas) {
            let l = l as f32;
            for (o, a) in out.iter_mut().zip(part) {
                *o += l * a;
            }
        }
        Ok(out)
    }

    /// "PCB + ES": searches per-model scales with [`crate::search::maximize`],
    /// scoring each candidate `Δ` with `score(Δ, λ)` (higher is better).
    pub fn search(
        &self,
        config: &crate::search::EsConfig,
        mut score: impl FnMut(&[f32], &[f64]) -> Result<f64>,
    ) -> Result<crate::search::EsResult> {
        crate::search::maximize(self.parts.len(), config, |lambdas| {
            score(&self.combine(lambdas)?, lambdas)
        })
    }
}
