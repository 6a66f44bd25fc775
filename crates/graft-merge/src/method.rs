//! The merge of one segment held in memory ([`merge_segment`], [`merge`],
//! [`merge_pcb_in_memory`]); the methods and their parameters are in
//! [`crate::types`].

use crate::chunked::{ChunkModel, SliceSource, Source, merge_chunked};
use crate::pcb::{pcb_merge, pcb_scores};
use crate::rng::stable_hash;
use crate::types::{MergeParams, Method, ModelValues, PcbParams};
use crate::{Error, Result};

/// Merges one segment: returns `θ = θ0 + Δ` for `base` (`θ0`) and the
/// models' values, or, with no base, the merged delta `Δ` of the models'
/// values read as deltas.
///
/// Models are summed in a canonical order (by stable hash of their id), so
/// listing them in another order changes no bit; DARE's masks depend on
/// `(seed, model id, segment name, element)` only.
pub fn merge_segment(
    method: &Method,
    params: &MergeParams,
    segment: &str,
    base: Option<&[f32]>,
    models: &[ModelValues],
) -> Result<Vec<f32>> {
    // The chunked merge with a single chunk is the one implementation (it
    // validates the models).
    let n = base.map_or_else(
        || models.first().map_or(0, |m| m.values.len()),
        <[f32]>::len,
    );
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
    let base_source = base.map(SliceSource);
    let base_arg: Option<&dyn Source> = match &base_source {
        Some(b) if *method != Method::Linear => Some(b),
        _ => None,
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
    base: Option<&[f32]>,
    models: &[ModelValues],
) -> Result<Vec<f32>> {
    let shapes: Vec<(&str, usize, f32)> = models
        .iter()
        .map(|m| (m.id.as_str(), m.values.len(), m.weight))
        .collect();
    crate::chunked::check_models(segment, base.map(<[f32]>::len), &shapes)?;
    let mut models: Vec<&ModelValues> = models.iter().collect();
    models.sort_by(|a, b| {
        stable_hash(&a.id)
            .cmp(&stable_hash(&b.id))
            .then(a.id.cmp(&b.id))
    });
    let n = models[0].values.len();
    let zero;
    let base_values: &[f32] = match base {
        Some(b) => b,
        None => {
            zero = vec![0.0f32; n];
            &zero
        }
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
    deltas: &[ModelValues],
) -> Result<Vec<f32>> {
    merge_segment(method, params, segment, None, deltas)
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
