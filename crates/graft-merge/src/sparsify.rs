//! Sparsification of one model's delta: magnitude trim (TIES) and random
//! drop with rescaling (DARE).

use crate::rng::{stream_key, uniform};
use crate::select::keep_mask_top_magnitude;
use crate::{Error, Rescale, Result};

/// Keeps the `floor(density · n)` largest-magnitude entries of `delta` and
/// zeroes the rest (`reference_rule`: keep every `|x|` at or above the
/// reference code's threshold instead). `density = 1` keeps everything; a
/// density outside (0, 1] is an error naming `tensor`. A trim that would
/// keep nothing keeps the single largest entry with `at_least_one`
/// (mergekit 0.1.5: `max(1, int(d·n))`) and is an error without it.
pub fn trim(
    tensor: &str,
    delta: &[f32],
    density: f64,
    reference_rule: bool,
    at_least_one: bool,
) -> Result<Vec<f32>> {
    if density.is_nan() || density <= 0.0 || density > 1.0 {
        return Err(Error::BadParameter {
            tensor: tensor.into(),
            what: format!("density {density} must be in (0, 1]"),
        });
    }
    if density == 1.0 {
        return Ok(delta.to_vec());
    }
    let mut keep = (density * delta.len() as f64).floor() as usize;
    if at_least_one && !delta.is_empty() {
        keep = keep.max(1);
    }
    if keep == 0 {
        return Err(Error::EmptyTrim {
            tensor: tensor.into(),
            density,
            numel: delta.len(),
        });
    }
    let mask = keep_mask_top_magnitude(delta, keep, reference_rule);
    Ok(delta
        .iter()
        .zip(mask)
        .map(|(&d, k)| if k { d } else { 0.0 })
        .collect())
}

/// DARE: drops each entry with probability `1 − density` (draw `u < 1 − density`
/// from the counter stream of `(seed, model_id, tensor_hash)`), then rescales
/// the kept entries. `density ≥ 1` returns `delta` unchanged, bit for bit;
/// `density = 0` returns zeros.
pub fn dare(
    tensor: &str,
    delta: &[f32],
    density: f64,
    rescale: Rescale,
    seed: u64,
    model_id: u64,
    tensor_hash: u64,
) -> Result<Vec<f32>> {
    if !(0.0..=1.0).contains(&density) {
        return Err(Error::BadParameter {
            tensor: tensor.into(),
            what: format!("DARE density (keep probability) {density} must be in [0, 1]"),
        });
    }
    if density >= 1.0 {
        return Ok(delta.to_vec());
    }
    if density == 0.0 {
        return Ok(vec![0.0; delta.len()]);
    }
    let drop = 1.0 - density;
    let stream = stream_key(seed, model_id, tensor_hash);
    let masked: Vec<f32> = delta
        .iter()
        .enumerate()
        .map(|(e, &d)| {
            if uniform(stream, e as u64) < drop {
                0.0
            } else {
                d
            }
        })
        .collect();
    Ok(rescale_masked(delta, masked, density, rescale))
}

/// Rescales a masked delta: by `1/density` (the paper), or so that its
/// L1 / L2 / L∞ norm matches the unmasked delta's (mergekit's `rescale`,
/// skipped when either norm is below 1e-7), or not at all.
pub(crate) fn rescale_masked(
    delta: &[f32],
    mut masked: Vec<f32>,
    density: f64,
    rescale: Rescale,
) -> Vec<f32> {
    let norm = |v: &[f32], kind: Rescale| -> f64 {
        match kind {
            Rescale::L1 => v.iter().map(|x| f64::from(x.abs())).sum(),
            Rescale::L2 => v
                .iter()
                .map(|x| f64::from(*x) * f64::from(*x))
                .sum::<f64>()
                .sqrt(),
            Rescale::Linf => v.iter().fold(0.0f64, |m, x| m.max(f64::from(x.abs()))),
            Rescale::InverseKeep | Rescale::None => 1.0,
        }
    };
    let factor = match rescale {
        Rescale::None => return masked,
        Rescale::InverseKeep => (1.0 / density) as f32,
        kind => {
            let (old, new) = (norm(delta, kind), norm(&masked, kind));
            if old < 1e-7 || new < 1e-7 {
                return masked;
            }
            (old / new) as f32
        }
    };
    for x in &mut masked {
        *x *= factor;
    }
    masked
}
