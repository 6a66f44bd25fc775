//! Train a small CNN on the 8x8 digits, make it forget the digit 3 with
//! SSD, and compare with retraining: accuracy on every split and the
//! membership-inference share (retraining's value is the target).
//!
//! `cargo run --release -p graft-unlearn --example forget_digit`
//! (needs `cargo xtask fetch-assets` for the digits).

use graft_nn::data::digits;
use graft_nn::models::{ModelConfig, build};
use graft_nn::train::{evaluate, train_classifier};
use graft_tensor::tch::{Device, nn::VarStore};
use graft_unlearn::baselines::{Retrain, cnn_recipe, reinit_from_config};
use graft_unlearn::mia::entropy_mia;
use graft_unlearn::{ForgetRequest, Ssd, SsdConfig, Unlearner};

fn main() -> anyhow::Result<()> {
    graft_tensor::tch::set_num_threads(1); // small models: one thread is faster
    let splits = digits()?.split(0.7, 0.15, 0)?;
    let config = ModelConfig::cnn_8x8(10);
    let recipe = cnn_recipe(40, 0);
    let train = |vs: &VarStore, model: &graft_nn::models::Model| {
        train_classifier(model, vs, &splits.train, None, &recipe)
    };
    graft_tensor::seed::seed_everything(0);
    let vs = VarStore::new(Device::Cpu);
    let model = build(&vs.root(), &config)?;
    train(&vs, &model)?;

    let others: Vec<i64> = (0..10).filter(|&c| c != 3).collect();
    let forget = splits.train.with_classes(&[3])?;
    let retain = splits.train.with_classes(&others)?;
    let (test_3, test_rest) = (
        splits.test.with_classes(&[3])?,
        splits.test.with_classes(&others)?,
    );
    let report = |name: &str, model: &graft_nn::models::Model, wall_s: f64| -> anyhow::Result<()> {
        let mia = entropy_mia(model, &retain, &splits.test, &forget)?;
        println!(
            "{name:<28} test acc on 3: {:.3}  on others: {:.3}  MIA share: {:.3}  ({wall_s:.2} s)",
            evaluate(model, &test_3, 512)?.accuracy,
            evaluate(model, &test_rest, 512)?.accuracy,
            mia.member_share
        );
        Ok(())
    };
    report("original", &model, 0.0)?;

    // SSD with per-sample importances; alpha well below |D|/|D_f| ≈ 10.
    let request = ForgetRequest {
        model: &model,
        vs: &vs,
        forget: &forget,
        retain: &retain,
    };
    let ssd = Ssd::new(SsdConfig::new(2.0, 1.0).per_sample())?;
    let (ssd_report, _, _) = ssd.run(&request)?;
    report(
        &ssd.name(),
        &model,
        ssd_report.importance_s + ssd_report.dampen_s,
    )?;

    // Retraining from scratch without the digit 3: the gold standard.
    let retrain = Retrain::new(recipe.clone(), reinit_from_config(config, 1));
    let r = retrain.unlearn(&request)?;
    report(&r.method, &model, r.wall_s)?;
    Ok(())
}
