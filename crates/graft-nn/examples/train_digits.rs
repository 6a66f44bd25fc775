//! Train the small CNN on the 8x8 digits, save it, load it back and evaluate.
//!
//! `cargo run --release -p graft-nn --example train_digits` (after `cargo xtask fetch-assets`)

use graft_nn::data::digits;
use graft_nn::models::{ModelConfig, build, load_varstore, save_varstore};
use graft_nn::train::{TrainConfig, evaluate, train_classifier};
use graft_tensor::tch::nn::VarStore;
use std::collections::HashMap;

fn main() -> anyhow::Result<()> {
    let splits = digits()?.split(0.7, 0.15, 0)?;
    graft_tensor::seed::seed_everything(0);
    let device = graft_tensor::device::default_device()?;
    let vs = VarStore::new(device);
    let config = ModelConfig::cnn_8x8(10);
    let model = build(&vs.root(), &config)?;
    let cfg = TrainConfig {
        epochs: 20,
        ..TrainConfig::default()
    };
    let report = train_classifier(&model, &vs, &splits.train, Some(&splits.val), &cfg)?;
    println!("trained {} steps in {:.1} s", report.steps, report.wall_s);
    let path = std::env::temp_dir().join("graft_digits_cnn.safetensors");
    save_varstore(&vs, &path, &HashMap::from([("format".into(), "pt".into())]))?;
    let mut restored = VarStore::new(device);
    let model2 = build(&restored.root(), &config)?;
    load_varstore(&mut restored, &path)?;
    let test = splits.test.to_device(device)?;
    println!(
        "test accuracy {:.4} (reloaded from {})",
        evaluate(&model2, &test, 256)?.accuracy,
        path.display()
    );
    Ok(())
}
