//! `baselines`: the digits and MNIST-5k classifiers (MLP and CNN) that the
//! merging and unlearning experiments start from.
//!
//! Each model is trained from the experiment seed on a stratified 70/15/15
//! split (digits) or 80/10/10 split (MNIST 5k) with Adam, and evaluated on
//! the held-out test part. The trained weights are saved beside the result
//! as `<data>_<model>.safetensors` (with the model config in the metadata),
//! and each training split as `<data>_train.safetensors` (`x`, `y`).

use crate::data::{Dataset, digits, mnist_5k};
use crate::experiment::{Claim, ExperimentContext, Outcome};
use crate::models::{ModelConfig, build, save_varstore};
use crate::plot::{Series, line_chart};
use crate::train::{TrainConfig, TrainReport, evaluate, train_classifier};
use crate::{Error, Result};
use graft_tensor::seed::{derive_seed, seed_everything};
use graft_tensor::tch::nn::VarStore;
use std::collections::HashMap;

/// One baseline: which data, which model, and the accuracy it must reach.
struct Baseline {
    data: &'static str,
    model: ModelConfig,
    target: f64,
    epochs_quick: usize,
    epochs_full: usize,
}

fn baselines() -> Vec<Baseline> {
    vec![
        Baseline {
            data: "digits",
            model: ModelConfig::mlp_8x8(10),
            target: 0.95,
            epochs_quick: 20,
            epochs_full: 40,
        },
        Baseline {
            data: "digits",
            model: ModelConfig::cnn_8x8(10),
            target: 0.97,
            epochs_quick: 20,
            epochs_full: 40,
        },
        Baseline {
            data: "mnist5k",
            model: ModelConfig::mlp_28x28(10),
            target: 0.90,
            epochs_quick: 5,
            epochs_full: 20,
        },
        Baseline {
            data: "mnist5k",
            model: ModelConfig::cnn_28x28(10),
            target: 0.95,
            epochs_quick: 5,
            epochs_full: 20,
        },
    ]
}

/// A trained baseline and its test metrics.
pub struct Trained {
    /// The parameters.
    pub vs: VarStore,
    /// The model built on them.
    pub model: crate::models::Model,
    /// Training history.
    pub report: TrainReport,
    /// Test accuracy.
    pub test_accuracy: f64,
}

/// Loads `digits` or `mnist5k` and splits it with `seed`.
pub fn load_split(data: &str, seed: u64) -> Result<crate::data::Splits> {
    Ok(load_split_with_indices(data, seed)?.0)
}

/// [`load_split`], with the indices (into the data set) of the train,
/// validation and test parts, to save beside results.
pub fn load_split_with_indices(
    data: &str,
    seed: u64,
) -> Result<(crate::data::Splits, [Vec<i64>; 3])> {
    let (full, train, val) = match data {
        "digits" => (digits()?, 0.7, 0.15),
        "mnist5k" => (mnist_5k()?, 0.8, 0.1),
        other => {
            return Err(Error::Invalid(format!(
                "unknown baseline data set `{other}` (digits, mnist5k)"
            )));
        }
    };
    let [tr, va, te] = full.split_indices(train, val, seed)?;
    let splits = crate::data::Splits {
        train: full.select(&tr)?,
        val: full.select(&va)?,
        test: full.select(&te)?,
    };
    Ok((splits, [tr, va, te]))
}

/// Trains `config` on `train` from `seed` (initialisation and shuffles), on the CPU.
pub fn train_model(
    config: &ModelConfig,
    train: &Dataset,
    val: &Dataset,
    test: &Dataset,
    epochs: usize,
    seed: u64,
) -> Result<Trained> {
    seed_everything(seed);
    let vs = VarStore::new(graft_tensor::tch::Device::Cpu);
    let model = build(&vs.root(), config)?;
    let cfg = TrainConfig {
        epochs,
        batch_size: 32,
        lr: 1e-3,
        seed,
        ..TrainConfig::default()
    };
    let report = train_classifier(&model, &vs, train, Some(val), &cfg)?;
    let test_accuracy = evaluate(&model, test, 512)?.accuracy;
    Ok(Trained {
        vs,
        model,
        report,
        test_accuracy,
    })
}

/// Runs the experiment.
pub fn run(ctx: &ExperimentContext) -> crate::experiment::RunResult {
    let mut outcome = Outcome::default();
    let mut curves: HashMap<&str, Vec<Series>> = HashMap::new();
    for b in baselines() {
        let splits = load_split(b.data, ctx.seed)?;
        // The training split as data (`x`, `y`), e.g. for `graft unlearn ssd --data`.
        let data_file = ctx.path(&format!("{}_train.safetensors", b.data));
        if !data_file.exists() || b.model.short_name() == "mlp" {
            graft_tensor::safetensors::save(
                &data_file,
                [("x", &splits.train.inputs), ("y", &splits.train.labels)],
                &HashMap::from([(
                    "graft.data".to_string(),
                    format!("{} training split, seed {}", b.data, ctx.seed),
                )]),
            )?;
        }
        let kind = b.model.short_name();
        let seed = derive_seed(ctx.seed, &format!("{}/{kind}", b.data));
        let epochs = ctx.pick(b.epochs_quick, b.epochs_full);
        let trained = train_model(
            &b.model,
            &splits.train,
            &splits.val,
            &splits.test,
            epochs,
            seed,
        )?;
        tracing::info!(
            data = b.data,
            model = kind,
            accuracy = trained.test_accuracy,
            "baseline trained"
        );
        let metadata = HashMap::from([
            ("format".to_string(), "pt".to_string()),
            (
                "graft.model".to_string(),
                serde_json::to_string(&b.model).unwrap_or_default(),
            ),
            ("graft.data".to_string(), b.data.to_string()),
            ("graft.seed".to_string(), seed.to_string()),
        ]);
        save_varstore(
            &trained.vs,
            &ctx.path(&format!("{}_{kind}.safetensors", b.data)),
            &metadata,
        )?;
        outcome.claims.push(Claim::at_least(
            &format!("{}-{kind}", b.data),
            &format!(
                "{} {} test accuracy ({} train / {} test images, {epochs} epochs)",
                b.data,
                kind.to_uppercase(),
                splits.train.len(),
                splits.test.len()
            ),
            b.target,
            trained.test_accuracy,
        ));
        let points = trained
            .report
            .epochs
            .iter()
            .filter_map(|e| e.val.map(|m| (e.epoch as f64, m.accuracy)))
            .collect();
        curves.entry(b.data).or_default().push(Series {
            label: kind.to_uppercase(),
            points,
        });
    }
    for (data, series) in curves {
        let file = format!("{data}_val_accuracy.svg");
        line_chart(
            &ctx.path(&file),
            &format!("{data}: validation accuracy"),
            "epoch",
            "accuracy",
            &series,
        )?;
        outcome.plots.push(file);
    }
    outcome.plots.sort();
    Ok(outcome)
}
