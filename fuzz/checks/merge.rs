//! One input of the `merge_yaml` target: `MergeConfig::from_yaml`, and for
//! an accepted configuration the code that reads it next: every parameter
//! resolved for a few tensor names, and a round trip through JSON (the
//! configuration is `Serialize + Deserialize`).
//!
//! Shared by the fuzz target and `crates/graft-merge/tests/fuzz_replay.rs`.

use graft_merge::config::MergeConfig;
use graft_merge::param::{Param, layer_index};

/// Tensor names with and without a layer index, as the merge resolves them.
const TENSORS: [&str; 4] = [
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.2.mlp.up_proj.weight",
    "model.layers.7.mlp.down_proj.weight",
    "lm_head.weight",
];

/// `from_yaml` on `data` (as UTF-8, invalid sequences replaced).
pub fn merge_yaml(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let Ok(config) = MergeConfig::from_yaml(&text, "fuzz.yml") else {
        return false;
    };
    assert!(!config.models.is_empty(), "an accepted config has models");
    for model in &config.models {
        for tensor in TENSORS {
            let layer = layer_index(tensor).map(|i| (i, 3));
            resolve(&model.weight, tensor, layer);
            resolve(&model.density, tensor, layer);
        }
    }
    let json = serde_json::to_string(&config).expect("an accepted config serialises");
    match serde_json::from_str::<MergeConfig>(&json) {
        Ok(back) => {
            // Floats may move by an ulp through JSON; everything else must not.
            let (a, b) = (
                serde_json::to_value(&config).expect("to_value"),
                serde_json::to_value(&back).expect("to_value"),
            );
            assert!(
                same(&a, &b),
                "JSON round trip changed the config:\n{a}\n{b}"
            );
        }
        // JSON has no NaN or infinity (serde_json writes them as null), and
        // `from_yaml` takes `.nan` and `.inf` as numbers.
        Err(e) => assert!(
            format!("{config:?}").contains("NaN") || format!("{config:?}").contains("inf"),
            "a finite config does not read back from its JSON: {e}\n{json}"
        ),
    }
    true
}

fn resolve(param: &Param, tensor: &str, layer: Option<(usize, usize)>) {
    let _ = param.resolve(tensor, layer);
    let _ = param.resolve(tensor, None);
    let _ = param.is_uniform();
}

/// Equal, floats within a relative 1e-12.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
