//! Merge two fine-tunes of a tiny model with a mergekit YAML, as `graft merge` does.
//!
//! `cargo run --release -p graft-merge --example merge_yaml`

use graft_merge::config::MergeConfig;
use graft_merge::engine::{RunOptions, run_merge};
use graft_merge::{Delta, MergeParams, Method, merge};
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
        &[Delta::new("a", &d1), Delta::new("b", &d2)],
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
    let yaml = format!(
        "merge_method: ties\nbase_model: {r}/base\nmodels:\n  - {{model: {r}/math, parameters: {{weight: 1.0, density: 1.0}}}}\n  - {{model: {r}/code, parameters: {{weight: 0.4, density: 1.0}}}}\n",
        r = root.display()
    );
    let config = MergeConfig::from_yaml(&yaml, "example.yml")?;
    run_merge(
        &config,
        &root.join("merged"),
        &RunOptions {
            ..RunOptions::default()
        },
    )?;
    let merged = Checkpoint::open(root.join("merged"))?.tensor("layers.0.weight")?;
    println!("TIES merge (the weighted vote elects the larger task): {merged}");
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
