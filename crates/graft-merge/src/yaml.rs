//! mergekit's YAML as written: [`MergekitYaml`], a serde struct that refuses
//! unknown keys, turned into the validated [`MergeConfig`] by `TryFrom`.
//!
//! Keys graft cannot honour (`slices`, `modules`, `tokenizer`,
//! `chat_template`, `tokenizer_source` other than `base`) are read so that
//! the refusal can name them; ignoring them would change the result.

use crate::config::{MergeConfig, ModelSpec, Scope};
use crate::dtype::DType;
use crate::param::Param;
use crate::types::{
    Compat, InterBalance, MergeParams, Method, PcbParams, Rescale, TrimRule, VoteRule,
};
use crate::{Error, Result};
use serde::{Deserialize, Deserializer};
use serde_yaml::Value;
use std::path::{Path, PathBuf};

const METHODS: &str = "linear, task_arithmetic, ties, dare_linear, dare_ties, pcb";

/// A mergekit configuration file, key for key (graft's subset plus its own
/// keys `scope`, `compat`, `seed` and `trim_rule`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergekitYaml {
    /// `linear`, `task_arithmetic`, `ties`, `dare_linear`, `dare_ties` or
    /// `pcb` (required; optional here so a refused key is named first).
    #[serde(default)]
    pub merge_method: Option<String>,
    /// A local path (hub ids are not supported).
    #[serde(default)]
    pub base_model: Option<String>,
    /// The models to merge (required, as `merge_method`).
    #[serde(default)]
    pub models: Option<Vec<YamlModel>>,
    /// Global parameters and fallbacks for the per-model ones.
    #[serde(default)]
    pub parameters: YamlParameters,
    /// mergekit's compute dtype (recorded; graft computes in float32).
    #[serde(default)]
    pub dtype: Option<String>,
    /// The dtype merged float tensors are written in.
    #[serde(default)]
    pub out_dtype: Option<String>,
    /// Only `base` (or absent): graft copies the base's files.
    #[serde(default, deserialize_with = "present")]
    pub tokenizer_source: Option<Value>,
    /// graft: `tensor` (default) or `global` statistics.
    #[serde(default)]
    pub scope: Option<Scope>,
    /// graft: `mergekit` (default) or `paper`; `paper` implies global scope.
    #[serde(default)]
    pub compat: Option<Compat>,
    /// graft: the seed of DARE's counter-based random drops.
    #[serde(default)]
    pub seed: Option<u64>,
    /// graft: `exact` (default) or `reference` TIES trimming.
    #[serde(default)]
    pub trim_rule: Option<TrimRule>,
    /// Refused: frankenmerges.
    #[serde(default, deserialize_with = "present")]
    pub slices: Option<Value>,
    /// Refused: frankenmerges.
    #[serde(default, deserialize_with = "present")]
    pub modules: Option<Value>,
    /// Refused: tokenizer surgery.
    #[serde(default, deserialize_with = "present")]
    pub tokenizer: Option<Value>,
    /// Refused: chat templates.
    #[serde(default, deserialize_with = "present")]
    pub chat_template: Option<Value>,
}

/// One entry of `models`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YamlModel {
    /// A local path.
    pub model: String,
    /// Per-model `weight` and `density`.
    #[serde(default)]
    pub parameters: YamlModelParameters,
}

/// `models[i].parameters`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YamlModelParameters {
    /// `w_i`: a number, a gradient or a list of `{filter, value}`.
    #[serde(default)]
    pub weight: Option<Value>,
    /// Keep fraction / probability, in the same forms.
    #[serde(default)]
    pub density: Option<Value>,
}

/// The top-level `parameters`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YamlParameters {
    /// Divide by the sum of weights.
    #[serde(default)]
    pub normalize: Option<bool>,
    /// Task Arithmetic's λ: a number, a gradient or a list of `{filter, value}`.
    #[serde(default)]
    pub lambda: Option<Value>,
    /// `true`/`false` or `l1`, `l2`, `linf`, `inverse_keep`, `none`.
    #[serde(default)]
    pub rescale: Option<Value>,
    /// Accepted and ignored: graft's masks are exact in any dtype.
    #[serde(default)]
    pub int8_mask: Option<bool>,
    /// TIES vote: `sum` or `count`.
    #[serde(default)]
    pub consensus_method: Option<VoteRule>,
    /// Fallback weight of every model.
    #[serde(default)]
    pub weight: Option<Value>,
    /// Fallback density of every model.
    #[serde(default)]
    pub density: Option<Value>,
    /// PCB's keep ratio.
    #[serde(default)]
    pub keep_ratio: Option<f64>,
    /// PCB's clamp ratio.
    #[serde(default)]
    pub clamp_ratio: Option<f64>,
    /// PCB's inter-model balancing.
    #[serde(default)]
    pub inter_balance: Option<InterBalance>,
}

/// Keeps a key that is present with a null value apart from an absent one.
fn present<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl MergekitYaml {
    /// Parses YAML text as PyYAML reads it for mergekit (a leading byte-order
    /// mark ignored, `<<` merge keys applied); `origin` names it in errors,
    /// which name the offending key as a path (`models[0].parameters.dens1ty`).
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let err = |key: &str, reason: String| Error::Config {
            origin: origin.into(),
            key: key.into(),
            reason,
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut root: Value = serde_yaml::from_str(text)
            .map_err(|e| err("<document>", format!("not valid YAML: {e}")))?;
        root.apply_merge()
            .map_err(|e| err("<<", format!("cannot apply the merge key: {e}")))?;
        if !root.is_mapping() {
            return Err(err(
                "<document>",
                "expected a mapping at the top level".into(),
            ));
        }
        serde_path_to_error::deserialize(root).map_err(|e| {
            let path = e.path().to_string();
            let (key, reason) = describe(&path, &e.inner().to_string());
            err(&key, reason)
        })
    }
}

/// The key and reason of a serde error at `path`: unknown and missing fields
/// are named as keys of their own.
fn describe(path: &str, message: &str) -> (String, String) {
    // serde_path_to_error's path ends at the unknown key itself, but at the
    // struct that lacks a missing one.
    let join = |name: &str| match path {
        "." | "" => name.to_string(),
        p if p == name || p.ends_with(&format!(".{name}")) => p.to_string(),
        p => format!("{p}.{name}"),
    };
    let quoted = |m: &str| m.split('`').nth(1).map(str::to_string);
    if let Some(rest) = message.strip_prefix("unknown field ") {
        if let Some(name) = quoted(rest) {
            let expected = rest.split_once(", expected ").map(|(_, e)| e);
            return (
                join(&name),
                match expected {
                    Some(e) => format!("unknown key (expected {e})"),
                    None => "unknown key".into(),
                },
            );
        }
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        if let Some(name) = quoted(rest) {
            return (join(&name), "missing".into());
        }
    }
    let key = if path == "." { "<document>" } else { path };
    let is_path = key == "base_model" || key.ends_with(".model");
    if is_path && message.starts_with("invalid type") {
        return (
            key.to_string(),
            format!("{message} (a local path: hub ids and LoRA specs are not supported)"),
        );
    }
    (key.to_string(), message.to_string())
}

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

    fn dtype(&self, key: &str, v: Option<&String>) -> Result<Option<DType>> {
        v.map(|s| s.parse().map_err(|e: String| self.err(key, e)))
            .transpose()
    }

    fn finite(&self, key: &str, x: f64) -> Result<f64> {
        if x.is_finite() {
            Ok(x)
        } else {
            Err(self.err(key, format!("expected a finite number, got {x}")))
        }
    }

    fn number(&self, key: &str, v: &Value) -> Result<f64> {
        let x = v
            .as_f64()
            .ok_or_else(|| self.err(key, format!("expected a number, got {}", show(v))))?;
        self.finite(key, x)
    }

    /// A number, a gradient (list of numbers) or a list of `{filter, value}`.
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
            Value::Sequence(items) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.rule(&format!("{key}[{i}]"), item))
                .collect::<Result<_>>()
                .map(Param::Filtered),
            other => Err(self.err(
                key,
                format!(
                    "expected a number, a list of numbers or a list of {{filter, value}}, got {}",
                    show(other)
                ),
            )),
        }
    }

    fn rule(&self, key: &str, item: &Value) -> Result<(Option<String>, Param)> {
        let map = item
            .as_mapping()
            .ok_or_else(|| self.err(key, "expected a number or {filter, value}"))?;
        let (mut filter, mut value) = (None, None);
        for (mk, mv) in map {
            match mk.as_str() {
                Some("filter") => {
                    filter = Some(
                        mv.as_str()
                            .ok_or_else(|| self.err(&format!("{key}.filter"), "expected a string"))?
                            .to_string(),
                    )
                }
                Some("value") => value = Some(self.param(&format!("{key}.value"), mv)?),
                other => {
                    return Err(self.err(
                        &format!("{key}.{}", other.unwrap_or("?")),
                        "unknown key (expected filter, value)",
                    ));
                }
            }
        }
        Ok((
            filter,
            value.ok_or_else(|| self.err(key, "missing `value`"))?,
        ))
    }

    fn rescale(&self, key: &str, v: &Value) -> Result<Rescale> {
        Ok(match (v.as_bool(), v.as_str()) {
            (Some(true), _) | (_, Some("l1")) => Rescale::L1,
            (Some(false), _) | (_, Some("none")) => Rescale::None,
            (_, Some("inverse_keep")) => Rescale::InverseKeep,
            (_, Some("l2")) => Rescale::L2,
            (_, Some("linf")) => Rescale::Linf,
            _ => {
                return Err(self.err(
                    key,
                    "expected true, false, l1, l2, linf, inverse_keep or none",
                ));
            }
        })
    }
}

fn show(v: &Value) -> String {
    serde_yaml::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A [`MergekitYaml`] and the name of the file it came from.
pub struct Named<'a>(pub MergekitYaml, pub &'a str);

impl TryFrom<MergekitYaml> for MergeConfig {
    type Error = Error;

    /// Validates a parsed file; errors name `<yaml>` as their origin.
    fn try_from(yaml: MergekitYaml) -> Result<Self> {
        MergeConfig::try_from(Named(yaml, "<yaml>"))
    }
}

impl TryFrom<Named<'_>> for MergeConfig {
    type Error = Error;

    /// Validates a parsed file, naming it in errors.
    fn try_from(Named(yaml, origin): Named<'_>) -> Result<Self> {
        let ctx = Ctx { origin };
        let refused = [
            (
                "slices",
                &yaml.slices,
                "slices and modules (frankenmerges) are not supported; list whole `models`",
            ),
            (
                "modules",
                &yaml.modules,
                "slices and modules (frankenmerges) are not supported; list whole `models`",
            ),
            (
                "tokenizer",
                &yaml.tokenizer,
                "tokenizer surgery and chat templates are not supported: graft merges weights and copies the base's config.json",
            ),
            (
                "chat_template",
                &yaml.chat_template,
                "tokenizer surgery and chat templates are not supported: graft merges weights and copies the base's config.json",
            ),
        ];
        if let Some((key, _, reason)) = refused.iter().find(|(_, v, _)| v.is_some()) {
            return Err(ctx.err(key, *reason));
        }
        if let Some(v) = &yaml.tokenizer_source {
            if !(v.is_null() || v.as_str() == Some("base")) {
                return Err(ctx.err(
                    "tokenizer_source",
                    format!(
                        "`{}` is not supported: graft copies the base model's files only (use `base` or leave it out)",
                        show(v)
                    ),
                ));
            }
        }
        let p = &yaml.parameters;
        let mut params = MergeParams {
            normalize: p.normalize,
            ..MergeParams::default()
        };
        let lambda = match &p.lambda {
            Some(v) => match ctx.param("parameters.lambda", v)? {
                Param::Scalar(l) => {
                    params.lambda = ctx.finite("parameters.lambda", l)? as f32;
                    None
                }
                varying => Some(varying),
            },
            None => None,
        };
        if let Some(v) = &p.rescale {
            params.rescale = Some(ctx.rescale("parameters.rescale", v)?);
        }
        if let Some(vote) = p.consensus_method {
            params.vote = vote;
        }
        if let Some(c) = yaml.compat {
            params.compat = c;
        }
        if let Some(s) = yaml.seed {
            params.seed = s;
        }
        if let Some(t) = yaml.trim_rule {
            params.trim_rule = t;
        }
        let mut pcb = PcbParams::default();
        if let Some(k) = p.keep_ratio {
            pcb.keep_ratio = ctx.finite("parameters.keep_ratio", k)?;
        }
        if let Some(c) = p.clamp_ratio {
            pcb.clamp_ratio = ctx.finite("parameters.clamp_ratio", c)?;
        }
        if let Some(i) = p.inter_balance {
            pcb.inter = i;
        }
        // The top-level values: a model without its own takes them, and a
        // model's filter list without a catch-all falls back to them (as in
        // mergekit); neither given: weight and density 1.
        let fallback = |key: &str, v: &Option<Value>| match v {
            Some(v) => ctx.param(&format!("parameters.{key}"), v).map(Some),
            None => Ok(None),
        };
        let top_weight = fallback("weight", &p.weight)?;
        let top_density = fallback("density", &p.density)?;
        let method_name = yaml
            .merge_method
            .as_deref()
            .ok_or_else(|| ctx.err("merge_method", "missing"))?;
        let method = match method_name {
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
        let models = yaml
            .models
            .as_ref()
            .ok_or_else(|| ctx.err("models", "missing"))?
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let key = format!("models[{i}].parameters");
                let pick = |name: &str, v: &Option<Value>, top: &Option<Param>| -> Result<Param> {
                    Ok(match (v, top) {
                        (Some(v), Some(top)) => {
                            ctx.param(&format!("{key}.{name}"), v)?.or_else(top)
                        }
                        (Some(v), None) => ctx.param(&format!("{key}.{name}"), v)?,
                        (None, Some(top)) => top.clone(),
                        (None, None) => Param::Scalar(1.0),
                    })
                };
                Ok(ModelSpec {
                    path: PathBuf::from(&m.model),
                    weight: pick("weight", &m.parameters.weight, &top_weight)?,
                    density: pick("density", &m.parameters.density, &top_density)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let scope = yaml.scope.unwrap_or(match params.compat {
            Compat::Paper => Scope::Global,
            Compat::Mergekit => Scope::Tensor,
        });
        let config = MergeConfig {
            method,
            base_model: yaml.base_model.map(PathBuf::from),
            models,
            params,
            scope,
            dtype: ctx.dtype("dtype", yaml.dtype.as_ref())?,
            out_dtype: ctx.dtype("out_dtype", yaml.out_dtype.as_ref())?,
            lambda,
        };
        config.check(origin)?;
        Ok(config)
    }
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
        MergeConfig::try_from(Named(MergekitYaml::parse(text, origin)?, origin))
    }
}

#[cfg(test)]
mod tests {
    use crate::Error;
    use crate::config::MergeConfig;

    fn key_and_reason(text: &str) -> (String, String) {
        match MergeConfig::from_yaml(text, "t.yml") {
            Err(Error::Config { key, reason, .. }) => (key, reason),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_key_as_a_path() {
        let base = "merge_method: ties\nbase_model: b\n";
        let cases = [
            (
                format!("{base}models: [{{model: a, parameters: {{dens1ty: 0.5}}}}]"),
                "models[0].parameters.dens1ty",
                "unknown key",
            ),
            (
                format!("{base}models: [{{model: a, weihgt: 1}}]"),
                "models[0].weihgt",
                "unknown key",
            ),
            (
                format!("{base}common: 1\nmodels: [{{model: a}}]"),
                "common",
                "unknown key",
            ),
            (
                format!("{base}parameters: {{lambda: x}}\nmodels: [{{model: a}}]"),
                "parameters.lambda",
                "expected a number",
            ),
            (
                format!("{base}parameters: {{lambda: .nan}}\nmodels: [{{model: a}}]"),
                "parameters.lambda",
                "finite",
            ),
            (
                format!("{base}parameters: {{weight: [1, .inf]}}\nmodels: [{{model: a}}]"),
                "parameters.weight[1]",
                "finite",
            ),
            (
                format!(
                    "{base}models: [{{model: a, parameters: {{weight: [{{filter: x, value: 1, v: 2}}]}}}}]"
                ),
                "models[0].parameters.weight[0].v",
                "unknown key",
            ),
            (
                format!("{base}scope: both\nmodels: [{{model: a}}]"),
                "scope",
                "unknown variant",
            ),
            (
                format!("{base}dtype: int8\nmodels: [{{model: a}}]"),
                "dtype",
                "int8",
            ),
            (
                format!("{base}slices: ~\nmodels: [{{model: a}}]"),
                "slices",
                "frankenmerges",
            ),
            (
                format!("{base}models: [{{parameters: {{weight: 1}}}}]"),
                "models[0].model",
                "missing",
            ),
            (base.to_string(), "models", "missing"),
            (
                "models: [{model: a}]".to_string(),
                "merge_method",
                "missing",
            ),
            ("- 1".to_string(), "<document>", "mapping"),
            (
                "merge_method: ties\nbase_model: {repo: x}\nmodels: [{model: a}]".to_string(),
                "base_model",
                "hub ids",
            ),
        ];
        for (text, key, needle) in cases {
            let (k, reason) = key_and_reason(&text);
            assert_eq!(k, key, "{text}: {reason}");
            assert!(
                reason.contains(needle),
                "{text}: `{reason}` lacks `{needle}`"
            );
        }
    }

    #[test]
    fn per_model_parameters_fall_back_to_the_global_ones() {
        let c = MergeConfig::from_yaml(
            "merge_method: ties\nbase_model: b\nparameters: {weight: 0.5, density: 0.3}\nmodels: [{model: a}, {model: c, parameters: {density: 0.9}}]",
            "t.yml",
        )
        .unwrap();
        use crate::param::Param::Scalar;
        assert_eq!(c.models[0].weight, Scalar(0.5));
        assert_eq!(c.models[0].density, Scalar(0.3));
        assert_eq!(c.models[1].weight, Scalar(0.5));
        assert_eq!(c.models[1].density, Scalar(0.9));
    }
}
