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
//! graft's keys: `scope` (`tensor` | `global`), `compat` (`mergekit` |
//! `paper`), `seed`, `trim_rule` (`exact` | `reference`). Anything else —
//! `slices`, `modules`, `tokenizer_source: union`, other methods — is
//! refused with the key named, since ignoring it would change the result.

use crate::dtype::DType;
use crate::param::Param;
use crate::types::{Compat, MergeParams, Method, PcbParams, Rescale, TrimRule, VoteRule};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_yaml::Value;
use std::path::{Path, PathBuf};

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
}

const METHODS: &str = "linear, task_arithmetic, ties, dare_linear, dare_ties, pcb";

struct Ctx<'a> {
    origin: &'a str,
}

impl Ctx<'_> {
    fn err(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::Config {
            origin: self.origin.to_string(),
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    fn dtype(&self, key: &str, v: &Value) -> Result<DType> {
        v.as_str()
            .ok_or_else(|| self.err(key, "expected a dtype name"))?
            .parse()
            .map_err(|e: String| self.err(key, e))
    }

    fn number(&self, key: &str, v: &Value) -> Result<f64> {
        let x = v
            .as_f64()
            .ok_or_else(|| self.err(key, format!("expected a number, got {}", show(v))))?;
        if !x.is_finite() {
            return Err(self.err(key, format!("expected a finite number, got {}", show(v))));
        }
        Ok(x)
    }

    fn param(&self, key: &str, v: &Value) -> Result<Param> {
        match v {
            Value::Number(_) => Ok(Param::Scalar(self.number(key, v)?)),
            Value::Sequence(items) if items.iter().all(|i| i.is_number()) && !items.is_empty() => {
                Ok(Param::Gradient(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, x)| self.number(&format!("{key}[{i}]"), x))
                        .collect::<Result<_>>()?,
                ))
            }
            Value::Sequence(items) if !items.is_empty() => {
                let mut rules = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let k = format!("{key}[{i}]");
                    let map = item
                        .as_mapping()
                        .ok_or_else(|| self.err(&k, "expected a number or {filter, value}"))?;
                    let mut filter = None;
                    let mut value = None;
                    for (mk, mv) in map {
                        match mk.as_str() {
                            Some("filter") => {
                                filter = Some(
                                    mv.as_str()
                                        .ok_or_else(|| {
                                            self.err(&format!("{k}.filter"), "expected a string")
                                        })?
                                        .to_string(),
                                )
                            }
                            Some("value") => value = Some(self.param(&format!("{k}.value"), mv)?),
                            other => {
                                return Err(self.err(
                                    &format!("{k}.{}", other.unwrap_or("?")),
                                    "unknown key (expected filter, value)",
                                ));
                            }
                        }
                    }
                    rules.push((
                        filter,
                        value.ok_or_else(|| self.err(&k, "missing `value`"))?,
                    ));
                }
                Ok(Param::Filtered(rules))
            }
            other => Err(self.err(
                key,
                format!(
                    "expected a number, a list of numbers or a list of {{filter, value}}, got {}",
                    show(other)
                ),
            )),
        }
    }
}

fn show(v: &Value) -> String {
    serde_yaml::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

impl MergeConfig {
    /// Reads and validates a YAML file.
    pub fn from_yaml_file(path: &Path) -> Result<Self> {
        let text = graft_tensor::input::read_text(path, graft_tensor::input::CONFIG_LIMIT)?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and validates YAML text; `origin` names it in errors. The
    /// dialect is what PyYAML reads for mergekit: a leading byte-order mark
    /// is ignored and `<<` merge keys are applied.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self> {
        let ctx = Ctx { origin };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut root: Value = serde_yaml::from_str(text)
            .map_err(|e| ctx.err("<document>", format!("not valid YAML: {e}")))?;
        root.apply_merge()
            .map_err(|e| ctx.err("<<", format!("cannot apply the merge key: {e}")))?;
        let map = root
            .as_mapping()
            .ok_or_else(|| ctx.err("<document>", "expected a mapping at the top level"))?;
        let mut method_name = None;
        let mut base_model = None;
        let mut models_v = None;
        let mut params_v = None;
        let (mut dtype, mut out_dtype) = (None, None);
        let mut scope = Scope::Tensor;
        let mut params = MergeParams::default();
        let mut scope_set = false;
        for (k, v) in map {
            let key = k.as_str().unwrap_or("?");
            match key {
                "merge_method" => method_name = Some(v.as_str().ok_or_else(|| ctx.err(key, "expected a string"))?.to_string()),
                "base_model" => base_model = Some(PathBuf::from(v.as_str().ok_or_else(|| ctx.err(key, "expected a path (hub ids and LoRA specs are not supported)"))?)),
                "models" => models_v = Some(v),
                "parameters" => params_v = Some(v),
                "dtype" => dtype = Some(ctx.dtype(key, v)?),
                "out_dtype" => out_dtype = Some(ctx.dtype(key, v)?),
                "tokenizer_source" => {
                    if !(v.is_null() || v.as_str() == Some("base")) {
                        return Err(ctx.err(key, format!("`{}` is not supported: graft copies the base model's files only (use `base` or leave it out)", show(v))));
                    }
                }
                "scope" => {
                    scope_set = true;
                    scope = match v.as_str() {
                        Some("tensor") => Scope::Tensor,
                        Some("global") => Scope::Global,
                        _ => return Err(ctx.err(key, "expected `tensor` or `global`")),
                    }
                }
                "compat" => {
                    params.compat = match v.as_str() {
                        Some("mergekit") => Compat::Mergekit,
                        Some("paper") => Compat::Paper,
                        _ => return Err(ctx.err(key, "expected `mergekit` or `paper`")),
                    }
                }
                "seed" => params.seed = v.as_u64().ok_or_else(|| ctx.err(key, "expected a non-negative integer"))?,
                "trim_rule" => {
                    params.trim_rule = match v.as_str() {
                        Some("exact") => TrimRule::Exact,
                        Some("reference") => TrimRule::Reference,
                        _ => return Err(ctx.err(key, "expected `exact` or `reference`")),
                    }
                }
                "slices" | "modules" => return Err(ctx.err(key, "slices and modules (frankenmerges) are not supported; list whole `models`")),
                "tokenizer" | "chat_template" => return Err(ctx.err(key, "tokenizer surgery and chat templates are not supported: graft merges weights and copies the base's config.json")),
                other => return Err(ctx.err(other, "unknown key")),
            }
        }
        let method_name = method_name.ok_or_else(|| ctx.err("merge_method", "missing"))?;
        let mut pcb = PcbParams::default();
        let mut default_weight = Param::Scalar(1.0);
        let mut default_density = Param::Scalar(1.0);
        if let Some(pv) = params_v {
            let pm = pv
                .as_mapping()
                .ok_or_else(|| ctx.err("parameters", "expected a mapping"))?;
            for (k, v) in pm {
                let key = format!("parameters.{}", k.as_str().unwrap_or("?"));
                match k.as_str().unwrap_or("?") {
                    "normalize" => {
                        params.normalize = Some(
                            v.as_bool()
                                .ok_or_else(|| ctx.err(&key, "expected true or false"))?,
                        )
                    }
                    "lambda" => params.lambda = ctx.number(&key, v)? as f32,
                    "rescale" => {
                        params.rescale = Some(match (v.as_bool(), v.as_str()) {
                            (Some(true), _) | (_, Some("l1")) => Rescale::L1,
                            (Some(false), _) | (_, Some("none")) => Rescale::None,
                            (_, Some("inverse_keep")) => Rescale::InverseKeep,
                            (_, Some("l2")) => Rescale::L2,
                            (_, Some("linf")) => Rescale::Linf,
                            _ => {
                                return Err(ctx.err(
                                    &key,
                                    "expected true, false, l1, l2, linf, inverse_keep or none",
                                ));
                            }
                        })
                    }
                    "int8_mask" => {
                        v.as_bool()
                            .ok_or_else(|| ctx.err(&key, "expected true or false"))?;
                    }
                    "consensus_method" => {
                        params.vote = match v.as_str() {
                            Some("sum") => VoteRule::Sum,
                            Some("count") => VoteRule::Count,
                            _ => return Err(ctx.err(&key, "expected `sum` or `count`")),
                        }
                    }
                    "weight" => default_weight = ctx.param(&key, v)?,
                    "density" => default_density = ctx.param(&key, v)?,
                    "keep_ratio" => pcb.keep_ratio = ctx.number(&key, v)?,
                    "clamp_ratio" => pcb.clamp_ratio = ctx.number(&key, v)?,
                    "inter_balance" => {
                        pcb.inter = match v.as_str() {
                            Some("reference") => crate::types::InterBalance::Reference,
                            Some("normalized_sum") => crate::types::InterBalance::NormalizedSum,
                            Some("pairwise") => crate::types::InterBalance::Pairwise,
                            _ => {
                                return Err(ctx.err(
                                    &key,
                                    "expected `reference`, `normalized_sum` or `pairwise`",
                                ));
                            }
                        }
                    }
                    other => return Err(ctx.err(&key, format!("unknown parameter `{other}`"))),
                }
            }
        }
        let method = match method_name.as_str() {
            "linear" => Method::Linear,
            "task_arithmetic" => Method::TaskArithmetic,
            "ties" => Method::Ties,
            "dare_linear" => Method::DareLinear,
            "dare_ties" => Method::DareTies,
            "pcb" => Method::Pcb(pcb),
            other => {
                return Err(ctx.err(
                    "merge_method",
                    format!("`{other}` is not supported (supported: {METHODS})"),
                ));
            }
        };
        let models_v = models_v.ok_or_else(|| ctx.err("models", "missing"))?;
        let list = models_v
            .as_sequence()
            .ok_or_else(|| ctx.err("models", "expected a list"))?;
        let mut models = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let key = format!("models[{i}]");
            let m = item
                .as_mapping()
                .ok_or_else(|| ctx.err(&key, "expected a mapping with `model`"))?;
            let mut path = None;
            let mut weight = default_weight.clone();
            let mut density = default_density.clone();
            for (k, v) in m {
                match k.as_str().unwrap_or("?") {
                    "model" => {
                        path = Some(PathBuf::from(v.as_str().ok_or_else(|| {
                            ctx.err(
                                &format!("{key}.model"),
                                "expected a path (hub ids with LoRA are not supported)",
                            )
                        })?))
                    }
                    "parameters" => {
                        let pm = v.as_mapping().ok_or_else(|| {
                            ctx.err(&format!("{key}.parameters"), "expected a mapping")
                        })?;
                        for (pk, pv) in pm {
                            let pkey = format!("{key}.parameters.{}", pk.as_str().unwrap_or("?"));
                            match pk.as_str().unwrap_or("?") {
                                "weight" => weight = ctx.param(&pkey, pv)?,
                                "density" => density = ctx.param(&pkey, pv)?,
                                other => return Err(ctx.err(&pkey, format!("unknown per-model parameter `{other}` (supported: weight, density)"))),
                            }
                        }
                    }
                    other => {
                        return Err(ctx.err(
                            &format!("{key}.{other}"),
                            "unknown key (expected model, parameters)",
                        ));
                    }
                }
            }
            models.push(ModelSpec {
                path: path.ok_or_else(|| ctx.err(&key, "missing `model`"))?,
                weight,
                density,
            });
        }
        if !scope_set && params.compat == Compat::Paper {
            scope = Scope::Global;
        }
        let config = Self {
            method,
            base_model,
            models,
            params,
            scope,
            dtype,
            out_dtype,
        };
        config.check(origin)?;
        Ok(config)
    }
}
