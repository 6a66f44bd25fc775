//! Methods, their parameters and the merge of one segment.

use crate::chunked::{ChunkModel, SliceSource, Source, merge_chunked};
use crate::pcb::{PcbParams, pcb_merge, pcb_scores};
use crate::rng::stable_hash;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// A merge method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Weighted average of the models: `Σ w_i θ_i / Σ w_i` (normalised by default).
    Linear,
    /// `Δ = λ Σ w_i δ_i` (Ilharco et al.).
    TaskArithmetic,
    /// Trim, elect sign, disjoint mean (Yadav et al.).
    Ties,
    /// DARE random drop and rescale, then a weighted sum.
    DareLinear,
    /// DARE random drop and rescale, then TIES' vote and mean.
    DareTies,
    /// PCB-merging (Du et al.).
    Pcb(PcbParams),
}

/// Whose numbers to reproduce when the papers and mergekit differ (spec §0, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compat {
    /// mergekit: weights before the TIES vote, weighted mean, a zero vote
    /// elects +1, DARE rescale matches the L1 norm.
    Mergekit,
    /// The papers' reference code: unweighted vote with the majority-sign
    /// fallback, mean over agreeing non-zero entries, DARE rescales by 1/(1 − p).
    Paper,
}

/// The TIES vote (mergekit's `consensus_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteRule {
    /// Sign of the (weighted) sum.
    Sum,
    /// Sign of the sum of signs.
    Count,
}

/// How DARE rescales what it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rescale {
    /// Divide by the keep probability (the paper; keeps the expectation).
    InverseKeep,
    /// Match the L1 norm of the unmasked delta (mergekit since Feb 2025).
    L1,
    /// Match the Euclidean norm.
    L2,
    /// Match the largest magnitude.
    Linf,
    /// Do not rescale ("drop only").
    None,
}

/// Which entries a magnitude trim keeps; see [`crate::trim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrimRule {
    /// Exactly `floor(k · n)` entries, ties by ascending index.
    Exact,
    /// The reference code's `|x| ≥ threshold`.
    Reference,
}

/// Parameters shared by all methods; `None` means the method's default for the compat mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeParams {
    /// Global scale `λ` of the merged delta (default 1).
    pub lambda: f32,
    /// Divide by the summed weights (mergekit's `normalize`).
    pub normalize: Option<bool>,
    /// DARE's rescale.
    pub rescale: Option<Rescale>,
    /// TIES' vote (mergekit compat only).
    pub vote: VoteRule,
    /// Magnitude trim rule.
    pub trim_rule: TrimRule,
    /// mergekit or paper semantics.
    pub compat: Compat,
    /// Seed of DARE's masks.
    pub seed: u64,
}

impl Default for MergeParams {
    fn default() -> Self {
        Self {
            lambda: 1.0,
            normalize: None,
            rescale: None,
            vote: VoteRule::Sum,
            trim_rule: TrimRule::Exact,
            compat: Compat::Mergekit,
            seed: 0,
        }
    }
}

/// One fine-tuned model's values for the segment being merged.
#[derive(Debug, Clone)]
pub struct Delta<'a> {
    /// A stable identifier (its path or name): orders the sum and keys DARE's stream.
    pub id: String,
    /// Its weight `w_i` (default 1; negative values subtract a task).
    pub weight: f32,
    /// Its density: TIES keep fraction / DARE keep probability (default 1).
    pub density: f64,
    /// The fine-tuned values `θ_i` (not the delta), as many as the base.
    pub values: &'a [f32],
}

impl<'a> Delta<'a> {
    /// A model with weight 1 and density 1.
    pub fn new(id: &str, values: &'a [f32]) -> Self {
        Self {
            id: id.into(),
            weight: 1.0,
            density: 1.0,
            values,
        }
    }
}

/// Merges one segment: returns `θ = θ0 + Δ` for `base` (`θ0`) and the
/// models' values, or, with an empty `base`, the merged delta `Δ` of the
/// models' values read as deltas.
///
/// Models are summed in a canonical order (by stable hash of their id), so
/// listing them in another order changes no bit; DARE's masks depend on
/// `(seed, model id, segment name, element)` only.
pub fn merge_segment(
    method: &Method,
    params: &MergeParams,
    segment: &str,
    base: &[f32],
    models: &[Delta],
) -> Result<Vec<f32>> {
    // The chunked merge with a single chunk is the one implementation (it
    // validates the models).
    let n = if base.is_empty() {
        models.first().map_or(0, |m| m.values.len())
    } else {
        base.len()
    };
    let sources: Vec<SliceSource> = models.iter().map(|m| SliceSource(m.values)).collect();
    let chunk_models: Vec<ChunkModel> = models
        .iter()
        .zip(&sources)
        .map(|(m, source)| ChunkModel {
            id: m.id.clone(),
            weight: m.weight,
            density: m.density,
            source,
        })
        .collect();
    let base_source = SliceSource(base);
    let base_arg: Option<&dyn Source> = if base.is_empty() || *method == Method::Linear {
        None
    } else {
        Some(&base_source)
    };
    let mut out = Vec::with_capacity(n);
    merge_chunked(
        method,
        params,
        segment,
        base_arg,
        &chunk_models,
        n.max(1),
        &mut |part: &[f32]| {
            out.extend_from_slice(part);
            Ok(())
        },
    )?;
    Ok(out)
}

/// PCB over one segment held whole in memory, quantiles by sorting: the
/// reference that [`merge_segment`]'s streamed PCB is tested against, bit for
/// bit. Unlike [`merge_segment`] it does not check ids, lengths or input
/// finiteness.
pub fn merge_pcb_in_memory(
    pcb: &PcbParams,
    params: &MergeParams,
    segment: &str,
    base: &[f32],
    models: &[Delta],
) -> Result<Vec<f32>> {
    let shapes: Vec<(&str, usize, f32)> = models
        .iter()
        .map(|m| (m.id.as_str(), m.values.len(), m.weight))
        .collect();
    crate::chunked::check_models(segment, (!base.is_empty()).then_some(base.len()), &shapes)?;
    let mut models: Vec<&Delta> = models.iter().collect();
    models.sort_by(|a, b| {
        stable_hash(&a.id)
            .cmp(&stable_hash(&b.id))
            .then(a.id.cmp(&b.id))
    });
    let n = models[0].values.len();
    let zero;
    let base_values: &[f32] = if base.is_empty() {
        zero = vec![0.0f32; n];
        &zero
    } else {
        base
    };
    let weights: Vec<f32> = models.iter().map(|m| m.weight).collect();
    let deltas: Vec<Vec<f32>> = models
        .iter()
        .map(|m| {
            m.values
                .iter()
                .zip(base_values)
                .map(|(x, b)| x - b)
                .collect()
        })
        .collect();
    let (clamped, scores) = pcb_scores(segment, &deltas, pcb)?;
    let mix = pcb_merge(&clamped, &scores, &weights);
    let out: Vec<f32> = if params.lambda == 1.0 {
        mix.iter().zip(base_values).map(|(m, b)| b + m).collect()
    } else {
        mix.iter()
            .zip(base_values)
            .map(|(m, b)| b + m * params.lambda)
            .collect()
    };
    check_finite(segment, out)
}

/// [`merge_segment`] without a base: `models` hold deltas, the result is `Δ`.
pub fn merge(
    method: &Method,
    params: &MergeParams,
    segment: &str,
    deltas: &[Delta],
) -> Result<Vec<f32>> {
    merge_segment(method, params, segment, &[], deltas)
}

fn check_finite(segment: &str, out: Vec<f32>) -> Result<Vec<f32>> {
    if let Some((i, v)) = out.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite {
            tensor: segment.into(),
            value: *v,
            index: i,
            place: "in the result".into(),
        });
    }
    Ok(out)
}
