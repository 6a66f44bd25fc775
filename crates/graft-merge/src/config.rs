//! Merge configurations: mergekit's YAML (the subset graft supports, spec §6)
//! plus graft's own keys, validated once into a typed [`MergeConfig`].
//!
//! Supported: `merge_method` (`linear`, `task_arithmetic`, `ties`,
//! `dare_linear`, `dare_ties`, and graft's `pcb`), `base_model`,
//! `models[].model`, `models[].parameters.{weight,density}`, global
//! `parameters` (`normalize`, `lambda`, `rescale`, `int8_mask`,
//! `consensus_method`, fallback `weight`/`density`, PCB's `keep_ratio`,
//! `clamp_ratio` and `inter_balance`), `dtype`, `out_dtype`, `tokenizer_source: base`. A value is
//! a number, a gradient (list of numbers) or a list of `{filter, value}`.
//! The file is read into [`crate::yaml::MergekitYaml`] (serde, unknown keys
//! refused) and validated by `TryFrom`. graft's keys: `scope` (`tensor` | `global`), `compat` (`mergekit` |
//! `paper`), `seed`, `trim_rule` (`exact` | `reference`). Anything else —
//! `slices`, `modules`, `tokenizer_source: union`, other methods — is
//! refused with the key named, since ignoring it would change the result.

use crate::dtype::DType;
use crate::param::Param;
use crate::types::{MergeParams, Method};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Over what a method's statistics (trim thresholds, PCB quantiles) are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Each tensor on its own (mergekit).
    Tensor,
    /// The whole flattened model, float tensors in the base checkpoint's order (the papers' code flattens the state dict in module order).
    Global,
}

/// One input model and its per-tensor parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Its directory (or file), as written in the YAML.
    pub path: PathBuf,
    /// `w_i` (default 1).
    pub weight: Param,
    /// TIES keep fraction / DARE keep probability (default 1).
    pub density: Param,
}

/// A validated merge configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeConfig {
    /// The method.
    pub method: Method,
    /// The shared base (not needed by `linear`).
    pub base_model: Option<PathBuf>,
    /// The models to merge.
    pub models: Vec<ModelSpec>,
    /// λ, normalize, rescale, vote, compat, seed.
    pub params: MergeParams,
    /// Tensor or global statistics.
    pub scope: Scope,
    /// mergekit's compute dtype, recorded only: graft computes in float32.
    pub dtype: Option<DType>,
    /// The dtype merged float tensors are written in (default: `dtype`, else the base's).
    pub out_dtype: Option<DType>,
    /// A λ that varies with the tensor (a gradient over the layers or a
    /// filter list); it replaces `params.lambda` tensor by tensor. `None`:
    /// `params.lambda` everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<Param>,
}

impl MergeConfig {
    /// The merge parameters of `tensor` (layer `i` of `L`, if it has one):
    /// [`params`](Self::params) with a varying [`lambda`](Self::lambda)
    /// resolved for it.
    pub fn params_for(
        &self,
        tensor: &str,
        layer: Option<(usize, usize)>,
    ) -> crate::Result<MergeParams> {
        let mut params = self.params.clone();
        if let Some(l) = &self.lambda {
            let v = l
                .resolve(tensor, layer)
                .ok_or_else(|| crate::Error::Config {
                    origin: "<config>".into(),
                    key: "parameters.lambda".into(),
                    reason: format!(
                        "no filter matches tensor `{tensor}` and there is no fallback value"
                    ),
                })?;
            params.lambda = v as f32;
        }
        Ok(params)
    }
}
