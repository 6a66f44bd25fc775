//! Merging named `tch` tensors held in memory: models trained in the same
//! program (their `VarStore::variables()`) merge without files, with the
//! same maths, bit for bit, as [`crate::files::run_merge`] over checkpoints.

use crate::chunked::{SliceSource, merge_chunked};
use crate::config::{MergeConfig, Scope};
use crate::files::chunk_models;
use crate::param::{layer_count, layer_index};
use crate::types::Method;
use crate::{Error, Result};
use graft_tensor::tch::{Kind, Tensor};
use std::collections::HashMap;

/// Merges `models` (named tensors, one map per entry of `config.models`,
/// in that order; the configured paths serve only as the models' ids,
/// which key DARE's random streams) onto `base` as `config` says, tensor by
/// tensor (`scope: tensor`). Every float tensor of `base` is merged and
/// returned in its own kind, or in `config.out_dtype` (else `config.dtype`), as the file engine writes it; other tensors are
/// copied when every model holds the same values and refused otherwise.
///
/// Errors name the tensor: missing or extra in a model, another shape or
/// kind, non-finite values, and `scope: global` (use
/// [`crate::files::run_merge`]).
pub fn merge_tensors(
    config: &MergeConfig,
    base: &HashMap<String, Tensor>,
    models: &[&HashMap<String, Tensor>],
) -> Result<HashMap<String, Tensor>> {
    config.validate()?;
    if config.scope == Scope::Global {
        return Err(Error::Config {
            origin: "<config>".into(),
            key: "scope".into(),
            reason: "an in-memory merge works tensor by tensor; merge checkpoints with run_merge for global scope".into(),
        });
    }
    if models.len() != config.models.len() {
        return Err(Error::Config {
            origin: "<config>".into(),
            key: "models".into(),
            reason: format!(
                "{} models configured but {} given",
                config.models.len(),
                models.len()
            ),
        });
    }
    let ids: Vec<String> = config
        .models
        .iter()
        .map(|m| m.path.display().to_string())
        .collect();
    for (m, id) in models.iter().zip(&ids) {
        if let Some(extra) = m.keys().find(|k| !base.contains_key(*k)) {
            return Err(Error::Mismatch {
                tensor: extra.clone(),
                reason: format!("in model `{id}` but not in the base"),
            });
        }
    }
    let layers = layer_count(base.keys().map(String::as_str));
    let mut names: Vec<&String> = base.keys().collect();
    names.sort();
    let mut out = HashMap::with_capacity(base.len());
    for name in names {
        let b = &base[name];
        let mut values = Vec::with_capacity(models.len());
        for (m, id) in models.iter().zip(&ids) {
            let t = m.get(name).ok_or_else(|| Error::Mismatch {
                tensor: name.clone(),
                reason: format!("in the base but missing from model `{id}`"),
            })?;
            if t.size() != b.size() || t.kind() != b.kind() {
                return Err(Error::Mismatch {
                    tensor: name.clone(),
                    reason: format!(
                        "{:?} {:?} in model `{id}` but {:?} {:?} in the base",
                        t.kind(),
                        t.size(),
                        b.kind(),
                        b.size()
                    ),
                });
            }
            values.push(t);
        }
        let merged = if matches!(
            b.kind(),
            Kind::Float | Kind::Half | Kind::BFloat16 | Kind::Double
        ) {
            merge_one(config, name, b, &values, &ids, layers)?
        } else {
            if let Some((_, id)) = values.iter().zip(&ids).find(|(t, _)| !t.equal(b)) {
                return Err(Error::Unmergeable {
                    tensor: name.clone(),
                    dtype: format!("{:?}", b.kind()),
                    model: id.clone(),
                });
            }
            b.copy()
        };
        out.insert(name.clone(), merged);
    }
    Ok(out)
}

/// A tensor's values as f32, flattened.
fn flat_f32(t: &Tensor) -> Result<Vec<f32>> {
    let flat = t
        .f_to_kind(Kind::Float)?
        .f_contiguous()?
        .f_view([-1])?
        .f_to_device(graft_tensor::tch::Device::Cpu)?;
    Ok(Vec::<f32>::try_from(&flat)?)
}

fn merge_one(
    config: &MergeConfig,
    name: &str,
    base: &Tensor,
    models: &[&Tensor],
    ids: &[String],
    layers: Option<usize>,
) -> Result<Tensor> {
    let base_values = flat_f32(base)?;
    let model_values: Vec<Vec<f32>> = models.iter().map(|t| flat_f32(t)).collect::<Result<_>>()?;
    let sources: Vec<SliceSource> = model_values.iter().map(|v| SliceSource(v)).collect();
    let layer = layer_index(name).zip(layers);
    let chunk_models = chunk_models(config, ids, name, layer, &sources)?;
    let base_source = SliceSource(&base_values);
    let base_arg: Option<&dyn crate::chunked::Source> = if config.method == Method::Linear {
        None
    } else {
        Some(&base_source)
    };
    let params = config.params_for(name, layer)?;
    let mut merged = Vec::with_capacity(base_values.len());
    merge_chunked(
        &config.method,
        &params,
        name,
        base_arg,
        &chunk_models,
        1 << 20,
        &mut |part| {
            merged.extend_from_slice(part);
            Ok(())
        },
    )?;
    let kind = match config.out_dtype.or(config.dtype) {
        Some(d) => graft_tensor::dtype::from_safetensors(d.safetensors(), name)?,
        None => base.kind(),
    };
    Ok(Tensor::f_from_slice(&merged)?
        .f_view(base.size().as_slice())?
        .f_to_kind(kind)?
        .f_to_device(base.device())?)
}
