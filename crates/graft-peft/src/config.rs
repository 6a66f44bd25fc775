//! The adapter configuration: Hugging Face PEFT's `LoraConfig`, key for key
//! as `adapter_config.json` holds it (spec `peft.md` §1.8).
//!
//! Unknown keys are kept in [`LoraConfig::extra`] and logged; PEFT keys for
//! features graft-peft does not implement are accepted while they hold
//! their neutral value (`null`, `false`, `{}`) and refused with the key
//! named otherwise, since ignoring them would change the adapter.

use crate::{Error, Result};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// Which layers an adapter wraps: a list of names (a layer matches when
/// its path equals one or ends with `.` + one), or one string: `all-linear`
/// (case-insensitive), else a regular expression that must match the whole
/// path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Targets {
    /// Suffix matches at a `.` boundary.
    List(Vec<String>),
    /// `all-linear` or a full-match regular expression.
    Pattern(String),
}

impl Targets {
    /// A list of module names.
    pub fn names<S: AsRef<str>>(names: &[S]) -> Self {
        Targets::List(names.iter().map(|s| s.as_ref().to_string()).collect())
    }
}

impl fmt::Display for Targets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Targets::List(l) => write!(f, "[{}]", l.join(", ")),
            Targets::Pattern(p) => write!(f, "`{p}`"),
        }
    }
}

/// One value or a list of them (`layers_to_transform`, `layers_pattern`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list.
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    /// The values as a list.
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(x) => vec![x.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// `init_lora_weights`: `true` (kaiming-uniform A, zero B), `false` (both
/// random, for tests) or a method name (`gaussian`; the base-rewriting
/// initialisations are refused, see [`LoraConfig::check`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InitLora {
    /// `true` or `false`.
    Flag(bool),
    /// A named initialisation.
    Named(String),
}

impl Default for InitLora {
    fn default() -> Self {
        InitLora::Flag(true)
    }
}

/// HUT's reading of the paper (spec `peft.md` §2, Corrections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HutForm {
    /// `W' = diag(b) W diag(a)`, `a`, `b` the row / column sums of the factors.
    #[default]
    Diag,
    /// `W' = W ⊙ (M_A M_B)ᵀ`, a rank-`r` multiplicative update.
    Hadamard,
}

/// FLoRA's initialisation of its factors (the core starts at zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FloraInit {
    /// The official code: `U_n ~ N(0, 1/(2 r_n))`.
    #[default]
    Official,
    /// The authors' GLUE code: `U_n ~ N(0, 0.02²)`.
    Glue,
}

/// Which biases train (and are saved with the adapter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bias {
    /// None (the default; the only value that keeps "disabled = base" exact).
    #[default]
    None,
    /// Every `*.bias`.
    All,
    /// The biases of the wrapped layers.
    LoraOnly,
}

/// An adapter configuration, as PEFT's `LoraConfig` (defaults as PEFT's),
/// with graft-peft's keys for HUT (`peft_type: HUT`, `hut_*`) and FLoRA
/// (`peft_type: FLORA`, `flora_*`), which share the target rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// `LORA`, `HUT` or `FLORA`.
    #[serde(default = "lora")]
    pub peft_type: String,
    /// Rank `r` (default 8).
    #[serde(default = "eight")]
    pub r: i64,
    /// `α`; the scale is `α / r`, or `α / √r` with [`use_rslora`](Self::use_rslora).
    #[serde(default = "eight_f")]
    pub lora_alpha: f64,
    /// The layers to wrap.
    #[serde(default)]
    pub target_modules: Option<Targets>,
    /// Layers never wrapped.
    #[serde(default)]
    pub exclude_modules: Option<Targets>,
    /// Layers trained whole, one copy per adapter (e.g. a new head).
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    /// Inverted dropout on the adapter's input, in training only.
    #[serde(default)]
    pub lora_dropout: f64,
    /// Informational only: the live layer kind decides the orientation.
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// Which biases train.
    #[serde(default)]
    pub bias: Bias,
    /// Scale `α / √r` (Kalajdzievski 2023).
    #[serde(default)]
    pub use_rslora: bool,
    /// DoRA (Liu et al. 2024): a learned magnitude per output.
    #[serde(default)]
    pub use_dora: bool,
    /// A trainable bias on `lora_B`.
    #[serde(default)]
    pub lora_bias: bool,
    /// The initialisation.
    #[serde(default)]
    pub init_lora_weights: InitLora,
    /// Only the layers of these block indices.
    #[serde(default)]
    pub layers_to_transform: Option<OneOrMany<i64>>,
    /// The name(s) of the block list (`layers`, `h`) whose index follows.
    #[serde(default)]
    pub layers_pattern: Option<OneOrMany<String>>,
    /// Per-layer ranks: the first pattern (in file order) that matches the
    /// end of a layer's path wins.
    #[serde(
        default,
        deserialize_with = "ordered_map",
        serialize_with = "write_ordered"
    )]
    pub rank_pattern: Vec<(String, i64)>,
    /// Per-layer `α`, as [`rank_pattern`](Self::rank_pattern).
    #[serde(
        default,
        deserialize_with = "ordered_map",
        serialize_with = "write_ordered"
    )]
    pub alpha_pattern: Vec<(String, f64)>,
    /// The base model's name or path (recorded).
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// The base model's revision (recorded).
    #[serde(default)]
    pub revision: Option<String>,
    /// `SEQ_CLS`, `CAUSAL_LM`, ... (decides what `all-linear` leaves out).
    #[serde(default)]
    pub task_type: Option<String>,
    /// `true` in saved files.
    #[serde(default)]
    pub inference_mode: bool,
    /// The library that wrote the file.
    #[serde(default)]
    pub peft_version: Option<String>,
    /// HUT: which reading (default `diag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hut_form: Option<HutForm>,
    /// HUT: a per-output scale γ and shift β as well.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hut_scale_shift: bool,
    /// FLoRA: one rank per mode (`in, out[, kh, kw]`); default `r` for each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flora_ranks: Option<Vec<i64>>,
    /// FLoRA: the scale `s`, a plain multiplier (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flora_scale: Option<f64>,
    /// FLoRA: the factors' initialisation (default `official`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flora_init: Option<FloraInit>,
    /// Every other key of the file, kept as written.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn lora() -> String {
    "LORA".into()
}
fn eight() -> i64 {
    8
}
fn eight_f() -> f64 {
    8.0
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            peft_type: lora(),
            r: 8,
            lora_alpha: 8.0,
            target_modules: None,
            exclude_modules: None,
            modules_to_save: None,
            lora_dropout: 0.0,
            fan_in_fan_out: false,
            bias: Bias::None,
            use_rslora: false,
            use_dora: false,
            lora_bias: false,
            init_lora_weights: InitLora::default(),
            layers_to_transform: None,
            layers_pattern: None,
            rank_pattern: Vec::new(),
            alpha_pattern: Vec::new(),
            base_model_name_or_path: None,
            revision: None,
            task_type: None,
            inference_mode: false,
            peft_version: None,
            hut_form: None,
            hut_scale_shift: false,
            flora_ranks: None,
            flora_scale: None,
            flora_init: None,
            extra: BTreeMap::new(),
        }
    }
}

/// PEFT keys of features graft-peft does not implement: accepted only at
/// their neutral value.
const UNIMPLEMENTED: &[&str] = &[
    "alora_invocation_tokens",
    "arrow_config",
    "corda_config",
    "eva_config",
    "kasa_config",
    "layer_replication",
    "loftq_config",
    "lora_ga_config",
    "megatron_config",
    "monteclora_config",
    "target_parameters",
    "trainable_token_indices",
    "use_bdlora",
    "use_qalora",
    "velora_config",
    "ensure_weight_tying",
];

/// PEFT keys with no effect on the weights.
const INFORMATIONAL: &[&str] = &["auto_mapping", "megatron_core", "qalora_group_size"];

/// Initialisations that leave the base untouched.
const BASE_PRESERVING: &[&str] = &["gaussian", "eva", "orthogonal", "mica"];

impl LoraConfig {
    /// A LoRA configuration of rank `r` and `α = alpha` on `targets`.
    pub fn new(r: i64, alpha: f64, targets: &[&str]) -> Self {
        Self {
            r,
            lora_alpha: alpha,
            target_modules: Some(Targets::names(targets)),
            ..Self::default()
        }
    }

    /// The configuration with these layers trained whole, one copy per
    /// adapter (e.g. a new classification head).
    pub fn with_modules_to_save(self, modules: &[&str]) -> Self {
        Self {
            modules_to_save: Some(modules.iter().map(|m| m.to_string()).collect()),
            ..self
        }
    }

    /// The configuration with PEFT's `task_type` (`SEQ_CLS`, `CAUSAL_LM`, ...).
    pub fn with_task_type(self, task: &str) -> Self {
        Self {
            task_type: Some(task.into()),
            ..self
        }
    }

    /// A HUT configuration of rank `r` in the given reading on `targets`.
    pub fn hut(r: i64, form: HutForm, targets: &[&str]) -> Self {
        Self {
            peft_type: "HUT".into(),
            hut_form: Some(form),
            ..Self::new(r, r as f64, targets)
        }
    }

    /// A FLoRA configuration with rank `r` on every mode and scale `scale` on `targets`.
    pub fn flora(r: i64, scale: f64, targets: &[&str]) -> Self {
        Self {
            peft_type: "FLORA".into(),
            flora_scale: Some(scale),
            ..Self::new(r, r as f64, targets)
        }
    }

    /// Reads `adapter_config.json` text; `origin` names the file in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let config: LoraConfig = serde_json::from_str(text)
            .map_err(|e| Error::config(origin, "<document>", e.to_string()))?;
        config.check(origin)?;
        Ok(config)
    }

    /// The configuration as PEFT writes it: sorted keys, two-space indent,
    /// `inference_mode: true`, and the pattern maps in their order.
    pub fn to_json(&self) -> Result<String> {
        let mut saved = self.clone();
        saved.inference_mode = true;
        let value = serde_json::to_value(&saved)
            .map_err(|e| Error::config("<config>", "<document>", e.to_string()))?;
        let mut out = String::from("{\n");
        let serde_json::Value::Object(map) = value else {
            return Err(Error::config("<config>", "<document>", "not an object"));
        };
        let n = map.len();
        for (i, (k, v)) in map.iter().enumerate() {
            let body = match (k.as_str(), v) {
                // serde_json's map is sorted; the patterns keep file order.
                ("rank_pattern", _) => ordered_json(&self.rank_pattern),
                ("alpha_pattern", _) => ordered_json(&self.alpha_pattern),
                _ => serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into()),
            };
            let body = body.replace('\n', "\n  ");
            let key = serde_json::to_string(k).unwrap_or_default();
            out.push_str(&format!(
                "  {key}: {body}{}\n",
                if i + 1 < n { "," } else { "" }
            ));
        }
        out.push_str("}\n");
        Ok(out)
    }

    /// Checks what graft-peft can honour: `peft_type` LoRA, a positive rank,
    /// a finite `α`, a dropout in [0, 1), an initialisation that does not
    /// rewrite the base, and PEFT features left off; warns of unknown keys.
    pub fn check(&self, origin: &str) -> Result<()> {
        let err = |key: &str, reason: String| Error::config(origin, key, reason);
        if !["LORA", "HUT", "FLORA"].contains(&self.peft_type.as_str()) {
            return Err(err(
                "peft_type",
                format!(
                    "`{}` adapters are not supported (graft-peft reads LORA, HUT and FLORA)",
                    self.peft_type
                ),
            ));
        }
        if self.peft_type != "LORA" {
            for (key, set) in [
                ("use_dora", self.use_dora),
                ("lora_bias", self.lora_bias),
                ("use_rslora", self.use_rslora),
            ] {
                if set {
                    return Err(err(key, format!("applies to LORA, not {}", self.peft_type)));
                }
            }
        }
        if let Some(s) = self.flora_scale.filter(|s| !s.is_finite()) {
            return Err(err("flora_scale", format!("{s} is not finite")));
        }
        if self.r < 1 {
            return Err(err("r", format!("rank {} must be at least 1", self.r)));
        }
        if !self.lora_alpha.is_finite() {
            return Err(err(
                "lora_alpha",
                format!("{} is not finite", self.lora_alpha),
            ));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(err(
                "lora_dropout",
                format!("{} must be in [0, 1)", self.lora_dropout),
            ));
        }
        for (k, r) in &self.rank_pattern {
            if *r < 1 {
                return Err(err(
                    &format!("rank_pattern.{k}"),
                    format!("rank {r} must be at least 1"),
                ));
            }
        }
        for (k, a) in &self.alpha_pattern {
            if !a.is_finite() {
                return Err(err(
                    &format!("alpha_pattern.{k}"),
                    format!("{a} is not finite"),
                ));
            }
        }
        if let InitLora::Named(name) = &self.init_lora_weights {
            if !BASE_PRESERVING.contains(&name.as_str()) {
                return Err(err(
                    "init_lora_weights",
                    format!(
                        "`{name}` rewrites the base weights when the adapter is created (PiSSA, OLoRA, CorDA, LoRA-GA, LoftQ), so the adapter does not apply to the original base model; graft-peft supports true, false, {}",
                        BASE_PRESERVING.join(", ")
                    ),
                ));
            }
        }
        for (k, v) in &self.extra {
            let neutral = match v {
                serde_json::Value::Null | serde_json::Value::Bool(false) => true,
                serde_json::Value::Object(m) => m.is_empty(),
                _ => false,
            };
            if UNIMPLEMENTED.contains(&k.as_str()) {
                if !neutral {
                    return Err(err(
                        k,
                        format!(
                            "is set to {v}; graft-peft does not implement it, and ignoring it would change the adapter"
                        ),
                    ));
                }
            } else if !INFORMATIONAL.contains(&k.as_str()) {
                tracing::warn!(file = origin, key = %k, "unknown adapter_config.json key ignored");
            }
        }
        Ok(())
    }

    /// The scale `s = α / r` (or `α / √r` with rsLoRA).
    pub fn scaling(&self, r: i64, alpha: f64) -> f64 {
        if self.use_rslora {
            alpha / (r as f64).sqrt()
        } else {
            alpha / r as f64
        }
    }
}

fn ordered_json<V: Serialize>(pairs: &[(String, V)]) -> String {
    if pairs.is_empty() {
        return "{}".into();
    }
    let items: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "  {}: {}",
                serde_json::to_string(k).unwrap_or_default(),
                serde_json::to_string(v).unwrap_or_else(|_| "null".into())
            )
        })
        .collect();
    format!("{{\n{}\n}}", items.join(",\n"))
}

/// Reads a JSON object into `(key, value)` pairs in file order.
fn ordered_map<'de, D, V>(d: D) -> std::result::Result<Vec<(String, V)>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Pairs<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for Pairs<V> {
        type Value = Vec<(String, V)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of patterns, or null")
        }
        fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_none<E>(self) -> std::result::Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_map<A: MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, V>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    d.deserialize_any(Pairs(std::marker::PhantomData))
}

fn write_ordered<S: Serializer, V: Serialize>(
    pairs: &[(String, V)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        m.serialize_entry(k, v)?;
    }
    m.end()
}
