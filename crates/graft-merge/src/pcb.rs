//! PCB-merging (Du et al., NeurIPS 2024), spec §4, on one segment.

use crate::types::{InterBalance, ModelValues, PcbParams};
use crate::{Error, Result};

/// Per model: PCB's clamped deltas `δc_i` and its drop-rescaled scores `s_i`.
pub type PcbScores = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// Checks PCB's knobs.
pub(crate) fn validate(tensor: &str, params: &PcbParams) -> Result<()> {
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
    Ok(())
}

/// The ascending indices of the clamp bounds `lo` and `hi` among `d` magnitudes.
pub(crate) fn clamp_ranks(params: &PcbParams, d: usize) -> (usize, usize) {
    let lo = ((params.clamp_ratio * d as f64).floor() as usize).min(d - 1);
    let hi = ((1.0 - params.clamp_ratio) * d as f64).floor() as usize;
    (lo, hi.saturating_sub(1).min(d - 1))
}

/// The ascending index of the drop threshold `t` among `d` scores.
pub(crate) fn drop_rank(params: &PcbParams, d: usize) -> usize {
    ((1.0 - params.keep_ratio) * d as f64)
        .floor()
        .min((d - 1) as f64) as usize
}

/// One model's magnitude clamp `[lo, hi]` (step 1).
pub(crate) struct Clamp {
    lo: f32,
    hi: f32,
}

impl Clamp {
    /// The clamp for quantiles `lo` and `hi` (`hi` raised to `lo` if below).
    pub(crate) fn new(lo: f32, hi: f32) -> Self {
        Self { lo, hi: hi.max(lo) }
    }

    /// `(δc, u)`: the clamped delta `sgn(x)·ā` and `u = (ā − lo)/(hi − lo)` (0 if `hi = lo`).
    pub(crate) fn apply(&self, x: f32) -> (f32, f32) {
        let abar = x.abs().clamp(self.lo, self.hi);
        let span = self.hi - self.lo;
        let u = if span > 0.0 {
            (abar - self.lo) / span
        } else {
            0.0
        };
        (crate::combine::sign(x) * abar, u)
    }
}

/// `β_i = exp(n u_i²) · inter_i` of every model at one element (steps 2-4),
/// from the models' deltas `xs` and normalised magnitudes `us` there.
pub(crate) fn element_betas(inter: InterBalance, xs: &[f32], us: &[f32], out: &mut [f32]) {
    let n = xs.len() as f32;
    let nu = |j: usize| crate::combine::sign(xs[j]) * us[j];
    let sum: f32 = match inter {
        InterBalance::Reference => xs.iter().sum(),
        InterBalance::NormalizedSum => (0..xs.len()).map(nu).sum(),
        InterBalance::Pairwise => 0.0,
    };
    for (i, o) in out.iter_mut().enumerate() {
        let u = us[i];
        let intra = (n * u * u).exp();
        let inter = match inter {
            InterBalance::Reference | InterBalance::NormalizedSum => (xs[i] * sum).tanh(),
            InterBalance::Pairwise => {
                let v = nu(i);
                (0..xs.len()).map(|j| (v * nu(j)).tanh()).sum()
            }
        };
        *o = intra * inter;
    }
}

/// The drop-rescaled score `s = (max(β, t) − t)/(M − t)` (0 if `M = t`), step 5.
pub(crate) fn score(beta: f32, t: f32, max: f32) -> f32 {
    if max > t {
        (beta.max(t) - t) / (max - t)
    } else {
        0.0
    }
}

/// PCB's clamped deltas `δc_i` and drop-rescaled scores `s_i` for every model
/// (inter-balancing as `params.inter` says), in memory with sorted quantiles:
/// the reference the streamed merge is tested against.
pub fn pcb_scores(tensor: &str, deltas: &[Vec<f32>], params: &PcbParams) -> Result<PcbScores> {
    validate(tensor, params)?;
    let n = deltas.len();
    let d = deltas.first().map_or(0, Vec::len);
    if let Some((i, other)) = deltas.iter().enumerate().find(|(_, v)| v.len() != d) {
        return Err(Error::LengthMismatch {
            tensor: tensor.into(),
            first: "model 0".into(),
            expected: d,
            model: format!("model {i}"),
            got: other.len(),
        });
    }
    if d == 0 {
        return Ok((vec![Vec::new(); n], vec![Vec::new(); n]));
    }
    let (lo, hi) = clamp_ranks(params, d);
    let clamps: Vec<Clamp> = deltas
        .iter()
        .map(|delta| {
            let mut mags: Vec<f32> = delta.iter().map(|x| x.abs()).collect();
            mags.sort_by(f32::total_cmp);
            Clamp::new(mags[lo], mags[hi])
        })
        .collect();
    let clamped: Vec<Vec<f32>> = deltas
        .iter()
        .zip(&clamps)
        .map(|(delta, c)| delta.iter().map(|x| c.apply(*x).0).collect())
        .collect();
    let mut beta = vec![vec![0.0f32; d]; n];
    let (mut xs, mut us, mut bs) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    for p in 0..d {
        for i in 0..n {
            xs[i] = deltas[i][p];
            us[i] = clamps[i].apply(xs[i]).1;
        }
        element_betas(params.inter, &xs, &us, &mut bs);
        for i in 0..n {
            beta[i][p] = bs[i];
        }
    }
    let scores = beta
        .iter()
        .map(|b| {
            let mut sorted = b.clone();
            sorted.sort_by(f32::total_cmp);
            let (t, m) = (sorted[drop_rank(params, d)], sorted[d - 1]);
            b.iter().map(|&x| score(x, t, m)).collect()
        })
        .collect();
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
    /// with no base the values are deltas), in the order given.
    pub fn new(
        pcb: &PcbParams,
        segment: &str,
        base: Option<&[f32]>,
        models: &[ModelValues],
    ) -> Result<Self> {
        let first = models
            .first()
            .ok_or_else(|| Error::NoModels(segment.into()))?;
        let n = first.values.len();
        if let Some(base) = base.filter(|b| b.len() != n) {
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
            let delta: Vec<f32> = match base {
                None => m.values.to_vec(),
                Some(base) => m.values.iter().zip(base).map(|(x, b)| x - b).collect(),
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
