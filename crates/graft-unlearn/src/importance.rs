//! SSD's parameter importances: the diagonal of the empirical Fisher
//! information (squared gradients of the loss), per parameter entry.

use crate::params::trainable_parameters;
use crate::{Error, Result};
use graft_nn::Dataset;
use graft_tensor::tch::nn::{ModuleT, VarStore};
use graft_tensor::tch::{Kind, Reduction, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// How gradients are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportanceMode {
    /// As the SSD reference code: the square of each mini-batch's mean
    /// gradient, averaged over the batches (`(1/n_b) Σ_b (∇L_b)²`).
    Batch,
    /// The true diagonal Fisher: the square of each sample's gradient,
    /// averaged over the samples (`(1/n) Σ_i (∇L_i)²`; one backward pass per sample).
    PerSample,
}

/// Which loss the gradients are of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportanceLoss {
    /// Mean cross-entropy with the true labels; importances accumulate `(∇L)²` (SSD).
    CrossEntropy,
    /// Label-free (LFSSD): the batch mean of `‖logits‖²`; importances
    /// accumulate `|∇L|` instead of its square, as the reference code.
    LabelFree,
}

/// How importances are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportanceConfig {
    /// Batch or per-sample gradients.
    pub mode: ImportanceMode,
    /// Supervised or label-free.
    pub loss: ImportanceLoss,
    /// Samples per batch in [`ImportanceMode::Batch`] (the reference uses 64
    /// for class forgetting, 128 for random samples).
    pub batch_size: usize,
}

impl Default for ImportanceConfig {
    fn default() -> Self {
        Self {
            mode: ImportanceMode::Batch,
            loss: ImportanceLoss::CrossEntropy,
            batch_size: 64,
        }
    }
}

/// One importance tensor per trainable parameter, by name (non-negative).
#[derive(Debug)]
pub struct Importances {
    /// The importances, keyed and shaped like the parameters.
    pub tensors: BTreeMap<String, Tensor>,
    /// How many samples they were computed over.
    pub samples: usize,
    /// How they were computed.
    pub config: ImportanceConfig,
    /// Where they came from (a file, or `<computed>`), for error messages.
    pub origin: String,
}

/// Importances of the parameters of `vs` (all trainable ones not in
/// `exclude`) over `data`, with `model` in eval mode and the data in its
/// order. Gradients are taken with `run_backward`, so the parameters'
/// `.grad` fields are left as they were.
pub fn importances(
    model: &dyn ModuleT,
    vs: &VarStore,
    data: &Dataset,
    exclude: &[String],
    config: &ImportanceConfig,
) -> Result<Importances> {
    if data.is_empty() {
        return Err(Error::data(
            &data.name,
            "is empty: importances need at least one sample",
        ));
    }
    if config.mode == ImportanceMode::Batch && config.batch_size == 0 {
        return Err(Error::option("batch_size", 0, "must be positive"));
    }
    let params = trainable_parameters(vs, exclude);
    if params.is_empty() {
        return Err(Error::option(
            "exclude",
            format!("{exclude:?}"),
            "leaves no trainable parameter",
        ));
    }
    let inputs: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
    let mut acc: Vec<Tensor> = params
        .iter()
        .map(|(_, t)| t.f_zeros_like())
        .collect::<std::result::Result<_, _>>()?;
    let data = data.to_device(vs.device())?;
    let batch = match config.mode {
        ImportanceMode::Batch => config.batch_size,
        ImportanceMode::PerSample => 1,
    };
    let mut count = 0usize;
    for (xs, ys) in data.batches(batch, None)? {
        let logits = model.forward_t(&xs, false);
        let loss = match config.loss {
            ImportanceLoss::CrossEntropy => {
                logits.f_cross_entropy_loss::<Tensor>(&ys, None, Reduction::Mean, -100, 0.0)?
            }
            ImportanceLoss::LabelFree => logits
                .f_square()?
                .f_sum_dim_intlist(1, false, Kind::Float)?
                .f_mean(Kind::Float)?,
        };
        let grads = Tensor::f_run_backward(&[&loss], &inputs, false, false)?;
        graft_tensor::tch::no_grad(|| -> Result<()> {
            for (a, g) in acc.iter_mut().zip(&grads) {
                match config.loss {
                    ImportanceLoss::CrossEntropy => {
                        let _ = a.f_addcmul_(g, g)?;
                    }
                    ImportanceLoss::LabelFree => {
                        let _ = a.f_add_(&g.f_abs()?)?;
                    }
                }
            }
            Ok(())
        })?;
        count += 1;
    }
    let tensors = graft_tensor::tch::no_grad(|| -> Result<BTreeMap<String, Tensor>> {
        let mut out = BTreeMap::new();
        for ((name, _), a) in params.iter().zip(acc) {
            out.insert(name.clone(), a.f_div_scalar(count as f64)?);
        }
        Ok(out)
    })?;
    Ok(Importances {
        tensors,
        samples: data.len(),
        config: *config,
        origin: "<computed>".into(),
    })
}

impl Importances {
    /// Another handle on the same tensors (no copy).
    pub fn shallow_clone(&self) -> Self {
        Self {
            tensors: self
                .tensors
                .iter()
                .map(|(k, v)| (k.clone(), v.shallow_clone()))
                .collect(),
            samples: self.samples,
            config: self.config,
            origin: self.origin.clone(),
        }
    }

    /// Checks that every parameter in `params` has an importance of its shape.
    pub fn check(&self, params: &[(String, Tensor)]) -> Result<()> {
        for (name, p) in params {
            let reason = match self.tensors.get(name) {
                None => "missing".to_string(),
                Some(t) if t.size() != p.size() => {
                    format!("shape {:?}, the parameter has {:?}", t.size(), p.size())
                }
                Some(_) => continue,
            };
            return Err(Error::Importance {
                origin: self.origin.clone(),
                name: name.clone(),
                reason,
            });
        }
        Ok(())
    }

    /// The count-weighted mean `(n_a·a + n_b·b)/(n_a + n_b)` of two
    /// per-sample importances (e.g. `I_D` from `I_r` and `I_f`).
    pub fn weighted_mean(a: &Importances, b: &Importances) -> Result<Importances> {
        let n = (a.samples + b.samples) as f64;
        let (wa, wb) = (a.samples as f64 / n, b.samples as f64 / n);
        let mut tensors = BTreeMap::new();
        for (name, ta) in &a.tensors {
            let tb = b.tensors.get(name).ok_or_else(|| Error::Importance {
                origin: b.origin.clone(),
                name: name.clone(),
                reason: "missing".into(),
            })?;
            tensors.insert(
                name.clone(),
                ta.f_mul_scalar(wa)?.f_add(&tb.f_mul_scalar(wb)?)?,
            );
        }
        Ok(Importances {
            tensors,
            samples: a.samples + b.samples,
            config: a.config,
            origin: "<mean>".into(),
        })
    }
}

/// Writes several importance sets into one safetensors file, atomically:
/// the tensors of set `prefix` are stored as `prefix/<parameter>` (or by
/// the parameter's own name for the prefix `""`), and each set's sample
/// count and configuration go into the metadata (`graft.importance.<prefix>`).
pub fn save_importances(path: &Path, sets: &[(&str, &Importances)]) -> Result<()> {
    let mut named: Vec<(String, &Tensor)> = Vec::new();
    let mut metadata = HashMap::new();
    for (prefix, imp) in sets {
        for (name, t) in &imp.tensors {
            named.push((key(prefix, name), t));
        }
        let meta = serde_json::json!({ "samples": imp.samples, "config": imp.config });
        metadata.insert(format!("graft.importance.{prefix}"), meta.to_string());
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    graft_tensor::safetensors::save(path, named.iter().map(|(n, t)| (n.as_str(), *t)), &metadata)?;
    Ok(())
}

/// Reads the set `prefix` of a file written by [`save_importances`].
pub fn load_importances(path: &Path, prefix: &str) -> Result<Importances> {
    let ckpt = graft_tensor::safetensors::Checkpoint::open(path)?;
    let bad = |reason: String| Error::File {
        path: path.to_path_buf(),
        reason,
    };
    let meta_key = format!("graft.importance.{prefix}");
    let metadata = ckpt.metadata();
    let meta = metadata.get(&meta_key).ok_or_else(|| {
        bad(format!(
            "no importance set `{prefix}` (metadata key `{meta_key}`)"
        ))
    })?;
    #[derive(Deserialize)]
    struct Meta {
        samples: usize,
        config: ImportanceConfig,
    }
    let meta: Meta = serde_json::from_str(meta).map_err(|e| bad(format!("`{meta_key}`: {e}")))?;
    let start = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let mut tensors = BTreeMap::new();
    for name in ckpt.names() {
        if let Some(param) = name.strip_prefix(start.as_str()) {
            if prefix.is_empty() && name.contains('/') {
                continue;
            }
            tensors.insert(
                param.to_string(),
                ckpt.tensor(name)?.f_to_kind(Kind::Float)?,
            );
        }
    }
    Ok(Importances {
        tensors,
        samples: meta.samples,
        config: meta.config,
        origin: path.display().to_string(),
    })
}

fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}
