//! Merge two fine-tunes of a tiny model: on slices, through checkpoints with
//! a configuration built in Rust (or read from mergekit YAML, as `graft
//! merge` does), and in memory.
//!
//! `cargo run --release -p graft-merge --example merge_yaml`

use graft_merge::config::MergeConfig;
use graft_merge::files::{RunOptions, run_merge};
use graft_merge::{MergeParams, Method, ModelValues, merge, merge_tensors};
use graft_tensor::safetensors::{Checkpoint, save};
use graft_tensor::tch::{Device, Kind, Tensor};
use std::collections::HashMap;

fn main() -> anyhow::Result<()> {
    // The maths on plain slices: Task Arithmetic with λ = 0.5 over two deltas.
    let (d1, d2) = ([0.5f32, -1.0, 0.0], [0.25f32, 1.0, 2.0]);
    let params = MergeParams {
        lambda: 0.5,
        ..MergeParams::default()
    };
    let delta = merge(
        &Method::TaskArithmetic,
        &params,
        "w",
        &[ModelValues::new("a", &d1), ModelValues::new("b", &d2)],
    )?;
    println!("task arithmetic delta: {delta:?}");

    // The same through checkpoints and a mergekit YAML.
    let root = std::env::temp_dir().join(format!("graft-merge-example-{}", std::process::id()));
    for (name, shift) in [("base", 0.0), ("math", 0.1), ("code", -0.2)] {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir)?;
        let w = Tensor::ones([2, 3], (Kind::Float, Device::Cpu)) + shift;
        save(
            dir.join("model.safetensors"),
            [("layers.0.weight", &w)],
            &HashMap::new(),
        )?;
    }
    // Typed, in Rust: the same as the YAML
    //   merge_method: ties
    //   base_model: base
    //   models: [{model: math, parameters: {weight: 1.0}}, {model: code, parameters: {weight: 0.4}}]
    let config = MergeConfig::new(Method::Ties, Some(root.join("base")))
        .model(root.join("math"), 1.0)
        .model(root.join("code"), 0.4);
    run_merge(&config, &root.join("merged"), &RunOptions::default())?;
    let merged = Checkpoint::open(root.join("merged"))?.tensor("layers.0.weight")?;
    println!("TIES merge (the weighted vote elects the larger task): {merged}");

    // The same from YAML text, as `graft merge` reads it.
    let yaml = format!(
        "merge_method: ties\nbase_model: {r}/base\nmodels:\n  - {{model: {r}/math, parameters: {{weight: 1.0}}}}\n  - {{model: {r}/code, parameters: {{weight: 0.4}}}}\n",
        r = root.display()
    );
    assert_eq!(MergeConfig::from_yaml(&yaml, "example.yml")?, config);

    // And in memory, without files: named tensors (e.g. `VarStore::variables()`).
    let named = |shift: f64| {
        HashMap::from([(
            "layers.0.weight".to_string(),
            Tensor::ones([2, 3], (Kind::Float, Device::Cpu)) + shift,
        )])
    };
    let in_memory = merge_tensors(&config, &named(0.0), &[&named(0.1), &named(-0.2)])?;
    assert!(in_memory["layers.0.weight"].equal(&merged));
    println!("the in-memory merge gives the same tensor");
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
