//! Fine-tune a pretrained MLP through LoRA with graft-nn's training loop:
//! pretrain on digits 0-4, then learn digits 5-9 with rank-4 adapters on
//! the hidden layers and a fresh head (`modules_to_save`), save the adapter
//! in PEFT's format and check that merged inference predicts the same.
//!
//! `cargo run --release -p graft-peft --example lora_digits`

use graft_nn::data::{Dataset, digits};
use graft_nn::models::{ModelConfig, build_with};
use graft_nn::train::{TrainConfig, evaluate, train_classifier};
use graft_peft::{Layers, LoraConfig, PeftModel};
use graft_tensor::output::OutputRules;
use graft_tensor::tch::{Device, Kind, Tensor, nn, nn::ModuleT};

fn main() -> anyhow::Result<()> {
    graft_tensor::seed::seed_everything(0);
    let all = digits()?;
    let source = relabel(&all.with_classes(&[0, 1, 2, 3, 4])?, 0)?.split(0.8, 0.1, 0)?;
    let target = relabel(&all.with_classes(&[5, 6, 7, 8, 9])?, 5)?.split(0.6, 0.0, 0)?;

    // A model built through adaptable layers behaves as a plain one.
    let mut vs = nn::VarStore::new(Device::Cpu);
    let layers = Layers::new();
    let config = ModelConfig::Mlp(graft_nn::models::MlpConfig {
        input: 64,
        hidden: vec![256, 256],
        classes: 5,
    });
    let model = build_with(&vs.root(), &config, &layers)?;
    let pretrain = TrainConfig {
        epochs: 30,
        batch_size: 64,
        ..TrainConfig::default()
    };
    train_classifier(&model, &vs, &source.train, None, &pretrain)?;
    println!(
        "pretrained on 0-4: test accuracy {:.3}",
        evaluate(&model, &source.test, 256)?.accuracy
    );

    // A fresh head, then adapters on the hidden layers; only they and the head's copy train.
    for (name, mut t) in vs.variables() {
        if name.starts_with("head.") {
            let fresh = Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.05;
            graft_tensor::tch::no_grad(|| t.copy_(&fresh));
        }
    }
    let mut peft = PeftModel::new(&mut vs, &layers);
    let lora = LoraConfig {
        modules_to_save: Some(vec!["head".into()]),
        ..LoraConfig::new(4, 8.0, &["hidden.0", "hidden.1"])
    };
    peft.add_adapter("default", lora)?;
    println!("{}", peft.parameter_count());
    let finetune = TrainConfig {
        epochs: 40,
        batch_size: 64,
        lr: 3e-3,
        ..TrainConfig::default()
    };
    train_classifier(&model, peft.var_store(), &target.train, None, &finetune)?;
    println!(
        "LoRA on 5-9: test accuracy {:.3}",
        evaluate(&model, &target.test, 256)?.accuracy
    );

    let dir = std::env::temp_dir().join("graft-lora-digits");
    peft.save_pretrained(&dir, &OutputRules::new().force(true))?;
    println!(
        "adapter written to {} (adapter_config.json, adapter_model.safetensors)",
        dir.display()
    );

    let unmerged = model
        .forward_t(&target.test.inputs, false)
        .argmax(-1, false);
    peft.merge(None, true)?;
    let merged = model
        .forward_t(&target.test.inputs, false)
        .argmax(-1, false);
    println!(
        "merged predictions equal unmerged: {}",
        merged.equal(&unmerged)
    );
    Ok(())
}

/// Labels shifted down by `offset`, over 5 classes.
fn relabel(d: &Dataset, offset: i64) -> anyhow::Result<Dataset> {
    Ok(Dataset::new(
        d.inputs.shallow_clone(),
        &d.labels - offset,
        5,
        format!("digits-{offset}"),
    )?)
}
