//! 7.2: corrective unlearning (spec `unlearning.md` §7.2; Goel et al.), on
//! digits (and MNIST 5k at full size).
//!
//! BadNets: 5 % of the training split poisoned uniformly (a bottom-right
//! 2x2 patch on digits, 3x3 on MNIST, set to the training set's largest
//! pixel value; label 0). Interclass confusion: the first 25 % of the
//! training samples of class 3 relabelled 5 and vice versa. For identified
//! fractions {0.1, 0.25, 0.5, 1}: EU (retrain from scratch on `D \ D_f`),
//! CF (fine-tune on `D \ D_f`, 5 epochs) and SSD with `I_D` on `D \ D_f`
//! (batch importances) over the whole grid α ∈ {0.1, 1, 10, 50, 100, 1000}
//! × λ/α ∈ {0.1, 0.5, 1, 5}. The reported SSD cell is chosen on the
//! validation split (the best validation `Acc_corr` among cells keeping
//! validation clean accuracy within 5 points of the manipulated model's),
//! never on test; the whole grid is saved. A model trained without any
//! manipulated sample is the gold standard.

use super::common::{Snapshot, median, save_json, train};
use crate::baselines::{Finetune, Retrain, reinit_from_config};
use crate::corrective::{
    Manipulated, Trigger, confusion_metrics, identified, interclass_swap, poison, poison_metrics,
    split_identified,
};
use crate::importance::{ImportanceConfig, importances};
use crate::{ForgetRequest, Unlearner, dampen_model};
use graft_nn::Dataset;
use graft_nn::experiment::{Claim, ExperimentContext, Outcome, RunResult};
use graft_nn::experiments::baselines::load_split_with_indices;
use graft_nn::models::{Model, ModelConfig};
use graft_nn::plot::{Series, line_chart};
use graft_tensor::seed::derive_seed;

use serde::Serialize;

/// Identified fractions of the manipulated set.
pub const FRACTIONS: [f64; 4] = [0.1, 0.25, 0.5, 1.0];
/// SSD's α grid.
pub const ALPHAS: [f64; 6] = [0.1, 1.0, 10.0, 50.0, 100.0, 1000.0];
/// SSD's λ/α grid.
pub const LAMBDA_RATIOS: [f64; 4] = [0.1, 0.5, 1.0, 5.0];

/// Which manipulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attack {
    /// BadNets poisoning.
    Poison,
    /// Interclass confusion of classes 3 and 5.
    Confusion,
}

/// One method at one identified fraction (or a reference model).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Data set.
    pub data: String,
    /// The manipulation.
    pub attack: Attack,
    /// Seed.
    pub seed: u64,
    /// Identified fraction (0 for the reference models).
    pub fraction: f64,
    /// `manipulated`, `clean`, `eu`, `cf`, `ssd a=.. l=..` or `ssd (chosen on val)`.
    pub arm: String,
    /// `Acc_corr` on test.
    pub corrected: f64,
    /// `Acc_retain` on test (poison: clean accuracy; confusion: other classes).
    pub retain: f64,
    /// Attack success rate on test (poison only).
    pub attack_success: Option<f64>,
    /// Validation (`Acc_corr`, `Acc_retain`), for SSD cells.
    pub val: Option<(f64, f64)>,
}

struct Setting {
    data: &'static str,
    model: ModelConfig,
    epochs: usize,
    seeds: usize,
    patch: i64,
}

fn settings(ctx: &ExperimentContext) -> Vec<Setting> {
    let mut s = vec![Setting {
        data: "digits",
        model: ModelConfig::cnn_8x8(10),
        epochs: ctx.pick(20, 40),
        seeds: ctx.pick(1, 3),
        patch: 2,
    }];
    // MNIST 5k at full size only (its twelve trainings would take most of the quick budget).
    if !ctx.quick() {
        s.push(Setting {
            data: "mnist5k",
            model: ModelConfig::cnn_28x28(10),
            epochs: 20,
            seeds: 1,
            patch: 3,
        });
    }
    s
}

const TARGET: i64 = 0;
const CONFUSED: (i64, i64) = (3, 5);

/// Scores one model on test and validation.
struct Scorer<'a> {
    attack: Attack,
    trigger: Trigger,
    test: &'a Dataset,
    val: &'a Dataset,
}

impl Scorer<'_> {
    fn score(&self, model: &Model, test: bool) -> crate::Result<(f64, f64, Option<f64>)> {
        let d = if test { self.test } else { self.val };
        Ok(match self.attack {
            Attack::Poison => {
                let m = poison_metrics(model, d, &self.trigger, TARGET)?;
                (m.corrected, m.clean, Some(m.attack_success))
            }
            Attack::Confusion => {
                let m = confusion_metrics(model, d, CONFUSED.0, CONFUSED.1)?;
                (m.corrected, m.retain, None)
            }
        })
    }
}

/// Runs 7.2 on digits and MNIST 5k.
pub fn run(ctx: &ExperimentContext) -> RunResult {
    let mut outcome = Outcome::default();
    let mut all = Vec::new();
    let mut splits_saved = serde_json::Map::new();
    for setting in settings(ctx) {
        let mut rows = Vec::new();
        for s in 0..setting.seeds {
            let seed = derive_seed(ctx.seed, &format!("7.2/{}/{s}", setting.data));
            let (splits, [tr, va, te]) = load_split_with_indices(setting.data, seed)?;
            let mut saved = serde_json::json!({ "train": tr, "val": va, "test": te });
            let value = splits.train.inputs.max().double_value(&[]);
            let trigger = Trigger {
                size: setting.patch,
                value,
            };
            for attack in [Attack::Poison, Attack::Confusion] {
                let manipulated = match attack {
                    Attack::Poison => poison(
                        &splits.train,
                        (splits.train.len() as f64 * 0.05).round() as usize,
                        &trigger,
                        TARGET,
                        derive_seed(seed, "poison"),
                    )?,
                    Attack::Confusion => {
                        let n3 = splits
                            .train
                            .with_classes(&[CONFUSED.0])?
                            .len()
                            .min(splits.train.with_classes(&[CONFUSED.1])?.len());
                        interclass_swap(&splits.train, CONFUSED.0, CONFUSED.1, n3 / 4)?
                    }
                };
                let mut ids = serde_json::Map::new();
                for &fraction in &FRACTIONS {
                    ids.insert(
                        fraction.to_string(),
                        serde_json::json!(identified_at(&manipulated, fraction, seed)?),
                    );
                }
                saved[format!("{attack:?}").to_lowercase()] = serde_json::json!({
                    "manipulated": manipulated.indices,
                    "identified": ids,
                });
                let scorer = Scorer {
                    attack,
                    trigger,
                    test: &splits.test,
                    val: &splits.val,
                };
                rows.extend(one_attack(
                    &setting,
                    seed,
                    &splits.train,
                    &manipulated,
                    &scorer,
                )?);
            }
            splits_saved.insert(format!("{}/{seed}", setting.data), saved);
        }
        claims_for(&mut outcome, setting.data, &rows);
        plots_for(ctx, &mut outcome, setting.data, &rows)?;
        all.extend(rows);
    }
    save_json(ctx, "corrective_runs.json", &all)?;
    // Split indices (into the data set's order), manipulated and identified
    // indices (into the training split), per data set and seed.
    save_json(ctx, "corrective_splits.json", &splits_saved)?;
    Ok(outcome)
}

/// The identified subset of `m` at `fraction` for the run seeded `seed`.
fn identified_at(m: &Manipulated, fraction: f64, seed: u64) -> crate::Result<Vec<i64>> {
    identified(
        &m.indices,
        fraction,
        derive_seed(seed, &format!("identified/{fraction}")),
    )
}

fn one_attack(
    setting: &Setting,
    seed: u64,
    clean_train: &Dataset,
    m: &Manipulated,
    scorer: &Scorer<'_>,
) -> crate::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let row = |arm: &str,
               fraction: f64,
               (c, r, a): (f64, f64, Option<f64>),
               val: Option<(f64, f64)>| Row {
        data: setting.data.into(),
        attack: scorer.attack,
        seed,
        fraction,
        arm: arm.into(),
        corrected: c,
        retain: r,
        attack_success: a,
        val,
    };
    let model_seed = derive_seed(seed, "model");
    // The gold standard: no manipulated sample at all.
    let keep: Vec<i64> = (0..clean_train.len() as i64)
        .filter(|i| m.indices.binary_search(i).is_err())
        .collect();
    let clean = train(
        &setting.model,
        &clean_train.select(&keep)?,
        setting.epochs,
        model_seed,
    )?;
    rows.push(row("clean", 0.0, scorer.score(&clean.model, true)?, None));
    let original = train(&setting.model, &m.train, setting.epochs, model_seed)?;
    let orig_val = scorer.score(&original.model, false)?;
    rows.push(row(
        "manipulated",
        0.0,
        scorer.score(&original.model, true)?,
        Some((orig_val.0, orig_val.1)),
    ));
    let snapshot = Snapshot::of(&original.vs);
    for &fraction in &FRACTIONS {
        let ids = identified_at(m, fraction, seed)?;
        let (forget, retain) = split_identified(&m.train, &ids)?;
        let request = ForgetRequest {
            model: &original.model,
            vs: &original.vs,
            forget: &forget,
            retain: &retain,
        };
        let eu_seed = derive_seed(seed, &format!("eu/{fraction}"));
        let methods: Vec<(&str, Box<dyn Unlearner>)> = vec![
            (
                "eu",
                Box::new(Retrain::new(
                    crate::baselines::cnn_recipe(setting.epochs, eu_seed),
                    reinit_from_config(setting.model.clone(), eu_seed),
                )),
            ),
            ("cf", Box::new(Finetune::default())),
        ];
        for (name, method) in methods {
            method.unlearn(&request)?;
            rows.push(row(
                name,
                fraction,
                scorer.score(&original.model, true)?,
                None,
            ));
            snapshot.restore(&original.vs);
        }
        let cfg = ImportanceConfig::default();
        let i_f = importances(&original.model, &original.vs, &forget, &[], &cfg)?;
        let i_d = importances(&original.model, &original.vs, &retain, &[], &cfg)?;
        let mut cells = Vec::new();
        for &alpha in &ALPHAS {
            for &ratio in &LAMBDA_RATIOS {
                dampen_model(&original.vs, &[], &i_d, &i_f, alpha, ratio * alpha)?;
                let val = scorer.score(&original.model, false)?;
                cells.push(row(
                    &format!("ssd a={alpha} l={}", ratio * alpha),
                    fraction,
                    scorer.score(&original.model, true)?,
                    Some((val.0, val.1)),
                ));
                snapshot.restore(&original.vs);
            }
        }
        // Chosen on validation: best Acc_corr among cells within 5 points of the manipulated model's Acc_retain.
        let ok = |r: &&Row| r.val.is_some_and(|(_, vr)| vr >= orig_val.1 - 0.05);
        let best = cells.iter().filter(ok).max_by(|a, b| {
            a.val
                .unwrap_or_default()
                .0
                .total_cmp(&b.val.unwrap_or_default().0)
        });
        if let Some(best) = best {
            let mut chosen = best.clone();
            chosen.arm = format!("ssd (chosen on val): {}", best.arm);
            rows.push(chosen);
        }
        rows.extend(cells);
    }
    Ok(rows)
}

fn med(rows: &[Row], attack: Attack, arm: &str, fraction: f64, f: impl Fn(&Row) -> f64) -> f64 {
    median(
        &rows
            .iter()
            .filter(|r| {
                r.attack == attack
                    && r.fraction == fraction
                    && (r.arm == arm || (arm == "ssd" && r.arm.starts_with("ssd (chosen")))
            })
            .map(f)
            .collect::<Vec<_>>(),
    )
}

fn asr(r: &Row) -> f64 {
    r.attack_success.unwrap_or(f64::NAN)
}

fn claims_for(outcome: &mut Outcome, data: &str, rows: &[Row]) {
    let p = Attack::Poison;
    let list = |arm: &str, f: fn(&Row) -> f64, attack: Attack| {
        FRACTIONS
            .iter()
            .map(|&fr| format!("{fr}: {:.2}", med(rows, attack, arm, fr, f)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let clean_asr = med(rows, p, "clean", 0.0, asr);
    let manip_asr = med(rows, p, "manipulated", 0.0, asr);
    let eu_half = med(rows, p, "eu", 0.5, asr);
    let eu_full = med(rows, p, "eu", 1.0, asr);
    outcome.claims.push(Claim::new(
        &format!("7.2-{data}-eu"),
        &format!("{data} BadNets: retraining without the identified samples (EU) keeps the backdoor until all are identified (ASR by fraction {}; poisoned model {manip_asr:.2}, clean model {clean_asr:.2})", list("eu", asr, p)),
        "ASR at 50 % >= 0.5, at 100 % <= clean + 0.05",
        format!("{eu_half:.3} at 50 %, {eu_full:.3} at 100 %"),
        eu_half >= 0.5 && eu_full <= clean_asr + 0.05,
    ));
    let ssd_asr = med(rows, p, "ssd", 0.1, asr);
    let ssd_clean = med(rows, p, "ssd", 0.1, |r| r.retain);
    let manip_clean = med(rows, p, "manipulated", 0.0, |r| r.retain);
    outcome.claims.push(Claim::new(
        &format!("7.2-{data}-ssd"),
        &format!("{data} BadNets: SSD (cell chosen on validation) removes the backdoor with 10 % identified (ASR by fraction {}; CF {}; clean accuracy {ssd_clean:.3} vs poisoned {manip_clean:.3})", list("ssd", asr, p), list("cf", asr, p)),
        "ASR <= 0.2 at 10 %, clean drop <= 5 points",
        format!("ASR {ssd_asr:.3}, clean drop {:.1} points", 100.0 * (manip_clean - ssd_clean)),
        ssd_asr <= 0.2 && manip_clean - ssd_clean <= 0.05,
    ));
    let c = Attack::Confusion;
    let corr = |r: &Row| r.corrected;
    let manip = med(rows, c, "manipulated", 0.0, corr);
    let eu_gain = med(rows, c, "eu", 1.0, corr) - manip;
    let ssd_gain = med(rows, c, "ssd", 1.0, corr) - manip;
    outcome.claims.push(Claim::new(
        &format!("7.2-{data}-ic"),
        &format!("{data} interclass confusion 3<->5 (25 % swapped): SSD fails where EU succeeds at 100 % identified (Acc_corr by fraction: SSD {}, EU {}; manipulated {manip:.2}, clean {:.2})", list("ssd", corr, c), list("eu", corr, c), med(rows, c, "clean", 0.0, corr)),
        "SSD's gain over the manipulated model <= half of EU's",
        format!("SSD {ssd_gain:+.3}, EU {eu_gain:+.3}"),
        ssd_gain <= 0.5 * eu_gain,
    ));
}

fn plots_for(
    ctx: &ExperimentContext,
    outcome: &mut Outcome,
    data: &str,
    rows: &[Row],
) -> graft_nn::Result<()> {
    for (attack, what, f, file) in [
        (
            Attack::Poison,
            "attack success rate",
            asr as fn(&Row) -> f64,
            format!("corrective_{data}_asr.svg"),
        ),
        (
            Attack::Confusion,
            "Acc_corr (classes 3 and 5)",
            (|r: &Row| r.corrected) as fn(&Row) -> f64,
            format!("corrective_{data}_confusion.svg"),
        ),
    ] {
        let mut series: Vec<Series> = ["eu", "cf", "ssd"]
            .iter()
            .map(|&arm| Series {
                label: if arm == "ssd" {
                    "SSD (chosen on val)".into()
                } else {
                    arm.to_uppercase()
                },
                points: FRACTIONS
                    .iter()
                    .map(|&fr| (fr, med(rows, attack, arm, fr, f)))
                    .collect(),
            })
            .collect();
        for reference in ["manipulated", "clean"] {
            let v = med(rows, attack, reference, 0.0, f);
            series.push(Series {
                label: format!("{reference} model"),
                points: vec![(0.1, v), (1.0, v)],
            });
        }
        line_chart(
            &ctx.path(&file),
            &format!("7.2 {data}: {what} vs identified fraction (medians)"),
            "identified fraction of the manipulated samples",
            what,
            &series,
        )?;
        outcome.plots.push(file);
    }
    Ok(())
}
