//! Per-tensor parameter values: a scalar, a gradient over layer depth, or a
//! list of name filters (mergekit's YAML semantics, spec §6).

use serde::{Deserialize, Serialize};

/// A parameter that may vary with the tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Param {
    /// The same value everywhere.
    Scalar(f64),
    /// Values interpolated linearly over the layer position `t = i / (L − 1)`
    /// of tensors named `...layers.{i}...`; tensors outside the layers take
    /// the first value.
    Gradient(Vec<f64>),
    /// `(substring, value)` pairs, tried in order as mergekit does: the
    /// first whose substring occurs in the tensor name wins, and an entry
    /// with no filter (or `*`) matches every tensor wherever it stands.
    Filtered(Vec<(Option<String>, Param)>),
}

impl Param {
    /// The value for `tensor`, whose layer index is `layer` of `layers` (if any).
    pub fn resolve(&self, tensor: &str, layer: Option<(usize, usize)>) -> Option<f64> {
        match self {
            Param::Scalar(v) => Some(*v),
            Param::Gradient(values) => gradient_at(values, layer),
            Param::Filtered(rules) => {
                let matched = rules
                    .iter()
                    .find(|(f, _)| f.as_deref().is_none_or(|f| f == "*" || tensor.contains(f)))?;
                matched.1.resolve(tensor, layer)
            }
        }
    }

    /// Whether the value is the same for every tensor.
    pub fn is_uniform(&self) -> bool {
        matches!(self, Param::Scalar(_))
    }

    /// This parameter, falling back to `fallback` for tensors it has no
    /// value for (a filter list without a catch-all entry), as mergekit
    /// falls back from a model's parameters to the top-level ones.
    pub fn or_else(self, fallback: &Param) -> Param {
        match self {
            Param::Filtered(mut rules) if !rules.iter().any(|(f, _)| f.is_none()) => {
                rules.push((None, fallback.clone()));
                Param::Filtered(rules)
            }
            other => other,
        }
    }
}

fn gradient_at(values: &[f64], layer: Option<(usize, usize)>) -> Option<f64> {
    let first = *values.first()?;
    let Some((i, layers)) = layer else {
        return Some(first);
    };
    if values.len() == 1 || layers <= 1 {
        return Some(first);
    }
    let t = i as f64 / (layers - 1) as f64;
    let x = t * (values.len() - 1) as f64;
    let lo = (x.floor() as usize).min(values.len() - 1);
    let hi = (lo + 1).min(values.len() - 1);
    let frac = x - lo as f64;
    Some(values[lo] * (1.0 - frac) + values[hi] * frac)
}

/// The layer index in a tensor name (`model.layers.7.mlp.up_proj.weight` → 7).
pub fn layer_index(tensor: &str) -> Option<usize> {
    let parts: Vec<&str> = tensor.split('.').collect();
    parts
        .windows(2)
        .find(|w| matches!(w[0], "layers" | "layer" | "h" | "blocks" | "block"))
        .and_then(|w| w[1].parse().ok())
}

/// The number of layers of a model with these tensor names: one more than
/// the largest [`layer_index`] (`None` when no name has one).
pub fn layer_count<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<usize> {
    names
        .into_iter()
        .filter_map(layer_index)
        .max()
        .map(|m| m + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_interpolate_over_layers_and_filters_take_the_first_match() {
        let g = Param::Gradient(vec![0.0, 1.0]);
        assert_eq!(g.resolve("x", Some((0, 5))), Some(0.0));
        assert_eq!(g.resolve("x", Some((2, 5))), Some(0.5));
        assert_eq!(g.resolve("x", Some((4, 5))), Some(1.0));
        let g3 = Param::Gradient(vec![0.0, 1.0, 0.0]);
        assert_eq!(g3.resolve("x", Some((1, 3))), Some(1.0));
        assert_eq!(g3.resolve("x", Some((1, 5))), Some(0.5));
        let f = Param::Filtered(vec![
            (Some("self_attn".into()), Param::Scalar(0.3)),
            (Some("mlp".into()), Param::Gradient(vec![1.0, 0.0])),
            (None, Param::Scalar(0.7)),
        ]);
        assert_eq!(
            f.resolve("model.layers.0.self_attn.q_proj.weight", Some((0, 2))),
            Some(0.3)
        );
        assert_eq!(
            f.resolve("model.layers.1.mlp.up_proj.weight", Some((1, 2))),
            Some(0.0)
        );
        assert_eq!(f.resolve("lm_head.weight", None), Some(0.7));
        // mergekit's order: a catch-all wins wherever it stands, `*` too.
        let early = Param::Filtered(vec![
            (Some("mlp".into()), Param::Scalar(0.1)),
            (None, Param::Scalar(0.2)),
            (Some("self_attn".into()), Param::Scalar(0.3)),
        ]);
        assert_eq!(
            early.resolve("layers.0.self_attn.q.weight", None),
            Some(0.2)
        );
        assert_eq!(early.resolve("layers.0.mlp.up.weight", None), Some(0.1));
        let star = Param::Filtered(vec![(Some("*".into()), Param::Scalar(0.4))]);
        assert_eq!(star.resolve("anything", None), Some(0.4));
        // No match and no catch-all: nothing, unless a fallback is given.
        let partial = Param::Filtered(vec![(Some("mlp".into()), Param::Scalar(0.1))]);
        assert_eq!(partial.resolve("lm_head.weight", None), None);
        let with = partial.or_else(&Param::Scalar(0.9));
        assert_eq!(with.resolve("lm_head.weight", None), Some(0.9));
        assert_eq!(with.resolve("mlp.weight", None), Some(0.1));
        assert_eq!(layer_index("model.layers.12.mlp.weight"), Some(12));
        assert_eq!(layer_index("hidden.0.weight"), None);
    }
}
