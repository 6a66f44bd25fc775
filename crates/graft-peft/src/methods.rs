//! One place that knows every method: builds a fresh adapter for a layer
//! from its configuration, lists the key suffixes its files hold, and
//! builds one from saved tensors. Adding a method is an arm in each.

use crate::adapter::Adapter;
use crate::config::LoraConfig;
use crate::flora::{self, Flora};
use crate::hut::Hut;
use crate::layer::{BaseLayer, LayerKind};
use crate::lora::{self, Lora};
use crate::{Error, Result};
use graft_tensor::tch::Tensor;
use std::collections::BTreeMap;

/// Every key suffix an adapter tensor can have in a file, all methods.
pub(crate) const ADAPTER_SUFFIXES: [&str; 16] = [
    "lora_A.weight",
    "lora_B.weight",
    "lora_B.bias",
    "lora_embedding_A",
    "lora_embedding_B",
    "lora_magnitude_vector",
    "hut_A",
    "hut_B",
    "hut_gamma",
    "hut_beta",
    "flora_G",
    "flora_U.0",
    "flora_U.1",
    "flora_U.2",
    "flora_U.3",
    "flora_U.4",
];

/// A fresh adapter of `config`'s method on `base` (the layer `layer`),
/// with rank `r` and `α = alpha` from the target rules.
pub(crate) fn new_adapter(
    base: &BaseLayer,
    layer: &str,
    r: i64,
    alpha: f64,
    config: &LoraConfig,
) -> Result<Box<dyn Adapter>> {
    Ok(match config.peft_type.as_str() {
        "HUT" => Box::new(Hut::new(base, layer, r, config)?),
        "FLORA" => Box::new(Flora::new(base, layer, r, config)?),
        _ => Box::new(Lora::new(base, layer, r, alpha, config)?),
    })
}

/// The key suffixes (required, optional) of an adapter of `config`'s
/// method on a layer of `kind`.
pub(crate) fn suffixes(
    kind: LayerKind,
    config: &LoraConfig,
) -> (Vec<&'static str>, Vec<&'static str>) {
    match config.peft_type.as_str() {
        "HUT" => (vec!["hut_A", "hut_B"], vec!["hut_gamma", "hut_beta"]),
        "FLORA" => (flora::suffixes(kind), vec![]),
        _ => {
            let (a, b) = lora::suffixes(kind);
            let mut required = vec![a, b];
            if config.use_dora {
                required.push("lora_magnitude_vector");
            }
            let optional = if kind == LayerKind::Embedding {
                vec![]
            } else {
                vec!["lora_B.bias"]
            };
            (required, optional)
        }
    }
}

/// An adapter of `config`'s method on `base` from its saved tensors
/// (by key suffix; the required ones are present).
pub(crate) fn from_tensors(
    base: &BaseLayer,
    layer: &str,
    alpha: f64,
    config: &LoraConfig,
    mut t: BTreeMap<&'static str, Tensor>,
) -> Result<Box<dyn Adapter>> {
    let mut take = |k: &str| t.remove(k);
    let missing = |k: &str| Error::Unsupported {
        layer: layer.into(),
        what: format!("internal: tensor `{k}` missing after the key check"),
    };
    Ok(match config.peft_type.as_str() {
        "HUT" => {
            let a = take("hut_A").ok_or_else(|| missing("hut_A"))?;
            let b = take("hut_B").ok_or_else(|| missing("hut_B"))?;
            Box::new(Hut::from_tensors(
                base,
                layer,
                a,
                b,
                take("hut_gamma"),
                take("hut_beta"),
                config,
            )?)
        }
        "FLORA" => {
            let keys = flora::suffixes(base.kind);
            let core = take(keys[0]).ok_or_else(|| missing(keys[0]))?;
            let factors = keys[1..]
                .iter()
                .map(|k| take(k).ok_or_else(|| missing(k)))
                .collect::<Result<Vec<_>>>()?;
            Box::new(Flora::from_tensors(base, layer, core, factors, config)?)
        }
        _ => {
            let (sa, sb) = lora::suffixes(base.kind);
            let a = take(sa).ok_or_else(|| missing(sa))?;
            let b = take(sb).ok_or_else(|| missing(sb))?;
            let bias = take("lora_B.bias");
            let m = take("lora_magnitude_vector");
            Box::new(Lora::from_tensors(
                base, layer, a, b, bias, m, alpha, config,
            )?)
        }
    })
}
