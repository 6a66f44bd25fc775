//! `merge`: the spec's "placed digits" reproduction (merging.md §8).
//!
//! The 8x8 digits are pasted into a 16x16 canvas. A base MLP
//! (256-w-w-10) learns the 10-way problem with every training image at a
//! random offset from {0,2,4,6,8}²; four fine-tunes each learn it with the
//! digit fixed in one corner, (0,0), (0,8), (8,0), (8,8), training all
//! parameters from the base. The four are merged by weight averaging, Task
//! Arithmetic, TIES, PCB and DARE (global scope, the papers' semantics);
//! hyper-parameters are chosen on validation, accuracies reported on test,
//! averaged over the 4 tasks and over data seeds.

use crate::search::EsConfig;
use crate::{
    Compat, MergeParams, Method, ModelValues, PcbComponents, PcbParams, Rescale, merge_segment,
};
use graft_nn::data::{Dataset, digits};
use graft_nn::experiment::{Claim, ExperimentContext, Outcome};
use graft_nn::models::{MlpConfig, ModelConfig, build, varstore_tensors};
use graft_nn::plot::{Series, line_chart};
use graft_nn::train::{TrainConfig, evaluate, train_classifier};
use graft_tensor::seed::{derive_seed, seed_everything};
use graft_tensor::tch::nn::VarStore;
use graft_tensor::tch::{Device, Kind, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::fmt::Write as _;

type AnyResult<T> = std::result::Result<T, graft_nn::experiment::ExperimentError>;

const CORNERS: [(i64, i64); 4] = [(0, 0), (0, 8), (8, 0), (8, 8)];

/// Pastes `[n,1,8,8]` images into `[n,1,16,16]` canvases at per-image offsets.
fn place(images: &Tensor, offsets: &[(i64, i64)]) -> Tensor {
    let n = images.size()[0];
    let canvas = Tensor::zeros([n, 1, 16, 16], (Kind::Float, Device::Cpu));
    for (i, &(dy, dx)) in offsets.iter().enumerate() {
        canvas
            .get(i as i64)
            .narrow(1, dy, 8)
            .narrow(2, dx, 8)
            .copy_(&images.get(i as i64));
    }
    canvas
}

fn placed_fixed(d: &Dataset, offset: (i64, i64)) -> AnyResult<Dataset> {
    let inputs = place(&d.inputs, &vec![offset; d.len()]);
    Ok(Dataset::new(
        inputs,
        d.labels.shallow_clone(),
        10,
        format!("digits@{offset:?}"),
    )?)
}

fn placed_random(d: &Dataset, seed: u64) -> AnyResult<Dataset> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let offsets: Vec<(i64, i64)> = (0..d.len())
        .map(|_| (2 * rng.random_range(0..5), 2 * rng.random_range(0..5)))
        .collect();
    Ok(Dataset::new(
        place(&d.inputs, &offsets),
        d.labels.shallow_clone(),
        10,
        "digits@random",
    )?)
}

/// One model's float parameters, flattened in sorted-name order.
fn flatten(vs: &VarStore) -> Vec<f32> {
    let mut out = Vec::new();
    for (_, t) in varstore_tensors(vs) {
        let t = t.to_kind(Kind::Float).contiguous().view([-1]);
        let n = t.numel();
        let mut buf = vec![0f32; n];
        t.copy_data(&mut buf, n);
        out.extend(buf);
    }
    out
}

/// Loads flattened parameters back into `vs`.
fn unflatten(vs: &mut VarStore, flat: &[f32]) {
    let mut offset = 0;
    graft_tensor::tch::no_grad(|| {
        for (_, mut t) in varstore_tensors(vs) {
            let n = t.numel();
            let src = Tensor::from_slice(&flat[offset..offset + n]).view(t.size().as_slice());
            t.copy_(&src);
            offset += n;
        }
    });
}

struct Setting {
    width: i64,
    finetune_lr: f64,
    seed: u64,
}

/// Per-task test and validation sets and the trained models of one data seed.
struct Trained {
    base_vs: VarStore,
    base_flat: Vec<f32>,
    tasks: Vec<Vec<f32>>,
    val: Vec<Dataset>,
    test: Vec<Dataset>,
    model: graft_nn::models::Model,
    eval_vs: VarStore,
    finetuned_test: f64,
    base_test: f64,
}

fn train_all(ctx: &ExperimentContext, s: &Setting) -> AnyResult<Trained> {
    let splits = digits()?.split(0.6, 0.2, s.seed)?;
    let config = ModelConfig::Mlp(MlpConfig {
        input: 256,
        hidden: vec![s.width, s.width],
        classes: 10,
    });
    seed_everything(derive_seed(s.seed, "base-init"));
    let base_vs = VarStore::new(Device::Cpu);
    let base_model = build(&base_vs.root(), &config)?;
    let base_train = placed_random(&splits.train, derive_seed(s.seed, "base-offsets"))?;
    let base_cfg = TrainConfig {
        epochs: 10,
        batch_size: 64,
        lr: 1e-3,
        seed: derive_seed(s.seed, "base"),
        ..TrainConfig::default()
    };
    train_classifier(&base_model, &base_vs, &base_train, None, &base_cfg)?;
    let (mut val, mut test, mut tasks) = (Vec::new(), Vec::new(), Vec::new());
    let mut finetuned = 0.0;
    let mut base_acc = 0.0;
    for (t, &corner) in CORNERS.iter().enumerate() {
        let train = placed_fixed(&splits.train, corner)?;
        val.push(placed_fixed(&splits.val, corner)?);
        test.push(placed_fixed(&splits.test, corner)?);
        let mut vs = VarStore::new(Device::Cpu);
        let model = build(&vs.root(), &config)?;
        vs.copy(&base_vs)?;
        let cfg = TrainConfig {
            epochs: ctx.pick(6, 8),
            batch_size: 64,
            lr: s.finetune_lr,
            seed: derive_seed(s.seed, &format!("task{t}")),
            ..TrainConfig::default()
        };
        train_classifier(&model, &vs, &train, None, &cfg)?;
        finetuned += evaluate(&model, &test[t], 512)?.accuracy / 4.0;
        base_acc += evaluate(&base_model, &test[t], 512)?.accuracy / 4.0;
        tasks.push(flatten(&vs));
    }
    let eval_vs = VarStore::new(Device::Cpu);
    let model = build(&eval_vs.root(), &config)?;
    Ok(Trained {
        base_flat: flatten(&base_vs),
        base_vs,
        tasks,
        val,
        test,
        model,
        eval_vs,
        finetuned_test: finetuned,
        base_test: base_acc,
    })
}

impl Trained {
    /// Mean accuracy over the 4 tasks of the parameters `flat`, on val or test; per task too.
    fn score(&mut self, flat: &[f32], on_test: bool) -> AnyResult<(f64, Vec<f64>)> {
        unflatten(&mut self.eval_vs, flat);
        let sets = if on_test { &self.test } else { &self.val };
        let per: Vec<f64> = sets
            .iter()
            .map(|d| evaluate(&self.model, d, 512).map(|m| m.accuracy))
            .collect::<Result<_, _>>()?;
        Ok((per.iter().sum::<f64>() / per.len() as f64, per))
    }

    /// The merged delta (λ = 1) of the four tasks.
    fn delta(&self, method: &Method, params: &MergeParams, density: f64) -> AnyResult<Vec<f32>> {
        let ids = ["task0", "task1", "task2", "task3"];
        let deltas: Vec<ModelValues> = ids
            .iter()
            .zip(&self.tasks)
            .map(|(id, v)| ModelValues {
                id: id.to_string(),
                weight: 1.0,
                density,
                values: v,
            })
            .collect();
        let merged = merge_segment(method, params, "__global__", Some(&self.base_flat), &deltas)?;
        Ok(merged
            .iter()
            .zip(&self.base_flat)
            .map(|(m, b)| m - b)
            .collect())
    }

    fn at(&self, delta: &[f32], lambda: f32) -> Vec<f32> {
        self.base_flat
            .iter()
            .zip(delta)
            .map(|(b, d)| b + lambda * d)
            .collect()
    }

    /// Best λ on val among `lambdas` for the deltas (averaged over several);
    /// returns (test mean, per-task test, λ, val mean at that λ).
    fn select(
        &mut self,
        deltas: &[Vec<f32>],
        lambdas: &[f32],
    ) -> AnyResult<(f64, Vec<f64>, f32, f64)> {
        let mut best = (f64::NEG_INFINITY, 1.0f32);
        for &l in lambdas {
            let mut v = 0.0;
            for d in deltas {
                v += self.score(&self.at(d, l), false)?.0 / deltas.len() as f64;
            }
            if v > best.0 {
                best = (v, l);
            }
        }
        let mut mean = 0.0;
        let mut per = vec![0.0; 4];
        for d in deltas {
            let (m, p) = self.score(&self.at(d, best.1), true)?;
            mean += m / deltas.len() as f64;
            for (a, b) in per.iter_mut().zip(p) {
                *a += b / deltas.len() as f64;
            }
        }
        Ok((mean, per, best.1, best.0))
    }

    /// The best of several labelled merged deltas, each with its best λ, by val accuracy.
    fn best_of(
        &mut self,
        candidates: Vec<(String, Vec<f32>)>,
        lambdas: &[f32],
    ) -> AnyResult<(f64, Vec<f64>, String)> {
        let mut best: Option<(f64, Vec<f64>, String, f64)> = None;
        for (label, d) in candidates {
            let (m, p, l, v) = self.select(std::slice::from_ref(&d), lambdas)?;
            if best.as_ref().is_none_or(|b| v > b.3) {
                best = Some((m, p, format!("{label}, λ = {l}"), v));
            }
        }
        best.map(|(m, p, h, _)| (m, p, h))
            .ok_or_else(|| graft_nn::experiment::ExperimentError::msg("no candidate merges"))
    }
}

/// Results of one data seed at one width.
#[derive(Default, Clone)]
struct Row {
    base: f64,
    finetuned: f64,
    per_method: BTreeMap<&'static str, (f64, Vec<f64>, String)>,
    dare_single: BTreeMap<&'static str, f64>,
}

fn run_setting(ctx: &ExperimentContext, s: &Setting) -> AnyResult<Row> {
    let mut tr = train_all(ctx, s)?;
    let _keep_alive = &tr.base_vs;
    let paper = MergeParams {
        compat: Compat::Paper,
        seed: s.seed,
        ..MergeParams::default()
    };
    let lambdas: Vec<f32> = if ctx.quick() {
        vec![0.3, 0.5, 0.7, 1.0, 1.2, 1.5]
    } else {
        vec![
            0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0,
        ]
    };
    let ks: Vec<f64> = ctx.pick(vec![0.2, 0.5], vec![0.1, 0.2, 0.3, 0.5, 0.7]);
    let rs: Vec<f64> = ctx.pick(vec![0.1, 0.3], vec![0.05, 0.1, 0.2, 0.3, 0.5]);
    let mask_seeds: Vec<u64> = ctx.pick(vec![0], vec![0, 1, 2]);
    let mut row = Row {
        base: tr.base_test,
        finetuned: tr.finetuned_test,
        ..Row::default()
    };

    // Weight averaging: the mean of the fine-tunes.
    let avg = tr.delta(&Method::TaskArithmetic, &paper, 1.0)?;
    let (m, p) = tr.score(&tr.at(&avg, 0.25), true)?;
    row.per_method
        .insert("weight averaging", (m, p, "λ = 1/4".into()));
    // Task Arithmetic; TIES over k and PCB over r, each with its best λ on val.
    let (m, p, l, _) = tr.select(std::slice::from_ref(&avg), &lambdas)?;
    row.per_method
        .insert("task arithmetic", (m, p, format!("λ = {l}")));
    let ties = ks
        .iter()
        .map(|&k| Ok((format!("k = {k}"), tr.delta(&Method::Ties, &paper, k)?)))
        .collect::<AnyResult<Vec<_>>>()?;
    row.per_method.insert("TIES", tr.best_of(ties, &lambdas)?);
    let pcb = rs
        .iter()
        .map(|&r| {
            Ok((
                format!("r = {r}"),
                tr.delta(
                    &Method::Pcb(PcbParams {
                        keep_ratio: r,
                        clamp_ratio: 0.01,
                        ..PcbParams::default()
                    }),
                    &paper,
                    1.0,
                )?,
            ))
        })
        .collect::<AnyResult<Vec<_>>>()?;
    let best_pcb = tr.best_of(pcb, &lambdas)?;
    // PCB + ES: per-task λ_i searched on val from 1.0 within [0.5, 3.0] (the
    // paper's NLP setting) at the r PCB chose; the parts A_i are computed once.
    let r: f64 = best_pcb
        .2
        .strip_prefix("r = ")
        .and_then(|t| t.split(',').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0.1);
    row.per_method.insert("PCB", best_pcb);
    let ids = ["task0", "task1", "task2", "task3"];
    let models: Vec<ModelValues> = ids
        .iter()
        .zip(&tr.tasks)
        .map(|(id, v)| ModelValues::new(id, v))
        .collect();
    let parts = PcbComponents::new(
        &PcbParams {
            keep_ratio: r,
            ..PcbParams::default()
        },
        "__global__",
        Some(&tr.base_flat),
        &models,
    )?;
    let es = EsConfig {
        budget: ctx.pick(40, 100),
        seed: derive_seed(s.seed, "pcb-es"),
        ..EsConfig::nlp()
    };
    let found = parts.search(&es, |delta, _| {
        let flat = tr.at(delta, 1.0);
        tr.score(&flat, false)
            .map(|(v, _)| v)
            .map_err(|e| crate::Error::BadParameter {
                tensor: "__global__".into(),
                what: format!("scoring a PCB + ES candidate: {e}"),
            })
    })?;
    let (m, p) = tr.score(&tr.at(&parts.combine(&found.best)?, 1.0), true)?;
    let shown: Vec<String> = found.best.iter().map(|l| format!("{l:.2}")).collect();
    row.per_method.insert(
        "PCB + ES",
        (
            m,
            p,
            format!(
                "r = {r}, λ_i = [{}], {} evaluations",
                shown.join(", "),
                found.evaluations
            ),
        ),
    );
    // DARE-TA at p = 0.5 and 0.9, DARE-TIES at 0.5, averaged over mask seeds.
    for (name, method, drop) in [
        ("DARE-TA p=0.5", Method::DareLinear, 0.5),
        ("DARE-TA p=0.9", Method::DareLinear, 0.9),
        ("DARE-TIES p=0.5", Method::DareTies, 0.5),
    ] {
        let deltas: Vec<Vec<f32>> = mask_seeds
            .iter()
            .map(|&ms| {
                tr.delta(
                    &method,
                    &MergeParams {
                        seed: derive_seed(s.seed, &format!("mask{ms}")),
                        ..paper.clone()
                    },
                    1.0 - drop,
                )
            })
            .collect::<AnyResult<_>>()?;
        let (m, p, l, _) = tr.select(&deltas, &lambdas)?;
        row.per_method.insert(
            name,
            (m, p, format!("λ = {l}, {} mask seeds", deltas.len())),
        );
    }
    // DARE on one model at a time: accuracy on its own task.
    for (name, drop, rescale) in [
        ("p=0.5", 0.5, Rescale::InverseKeep),
        ("p=0.9", 0.9, Rescale::InverseKeep),
        ("p=0.99", 0.99, Rescale::InverseKeep),
        ("drop-only p=0.9", 0.9, Rescale::None),
    ] {
        let mut acc = 0.0;
        for t in 0..4 {
            let delta: Vec<f32> = tr.tasks[t]
                .iter()
                .zip(&tr.base_flat)
                .map(|(a, b)| a - b)
                .collect();
            let dropped = crate::dare(
                "__global__",
                &delta,
                1.0 - drop,
                rescale,
                crate::DareStream {
                    seed: derive_seed(s.seed, name),
                    model: t as u64,
                    tensor: 0,
                },
            )?;
            let flat = tr.at(&dropped, 1.0);
            unflatten(&mut tr.eval_vs, &flat);
            acc += evaluate(&tr.model, &tr.test[t], 512)?.accuracy / 4.0;
        }
        row.dare_single.insert(name, acc);
    }
    Ok(row)
}

fn mean_rows(rows: &[Row]) -> Row {
    let n = rows.len() as f64;
    let mut out = Row {
        base: rows.iter().map(|r| r.base).sum::<f64>() / n,
        finetuned: rows.iter().map(|r| r.finetuned).sum::<f64>() / n,
        ..Row::default()
    };
    for (k, _) in rows[0].per_method.iter() {
        let m = rows.iter().map(|r| r.per_method[k].0).sum::<f64>() / n;
        let per: Vec<f64> = (0..4)
            .map(|t| rows.iter().map(|r| r.per_method[k].1[t]).sum::<f64>() / n)
            .collect();
        let hyper: Vec<String> = rows.iter().map(|r| r.per_method[k].2.clone()).collect();
        out.per_method.insert(k, (m, per, hyper.join("; ")));
    }
    for (k, _) in rows[0].dare_single.iter() {
        out.dare_single
            .insert(k, rows.iter().map(|r| r.dare_single[k]).sum::<f64>() / n);
    }
    out
}

/// Runs the experiment.
pub fn run(ctx: &ExperimentContext) -> graft_nn::experiment::RunResult {
    let seeds: Vec<u64> = ctx.pick(vec![ctx.seed], vec![ctx.seed, ctx.seed + 1, ctx.seed + 2]);
    let narrow: Vec<Row> = seeds
        .iter()
        .map(|&seed| {
            run_setting(
                ctx,
                &Setting {
                    width: 128,
                    finetune_lr: 3e-4,
                    seed,
                },
            )
        })
        .collect::<AnyResult<_>>()?;
    let narrow = mean_rows(&narrow);
    let wide = if ctx.quick() {
        None
    } else {
        let rows: Vec<Row> = [ctx.seed, ctx.seed + 1]
            .iter()
            .map(|&seed| {
                run_setting(
                    ctx,
                    &Setting {
                        width: 512,
                        finetune_lr: 1e-4,
                        seed,
                    },
                )
            })
            .collect::<AnyResult<_>>()?;
        Some(mean_rows(&rows))
    };

    let mut outcome = Outcome::default();
    let pts = |x: f64| (x * 1000.0).round() / 10.0;
    let m = |r: &Row, k: &str| r.per_method[k].0;
    let n = &narrow;
    let seeds_note = format!("width 128, {} data seed(s)", seeds.len());
    // Every merge arm of the table, weight averaging and PCB + ES included.
    let arm = |pick: fn(f64, f64) -> bool| {
        n.per_method
            .iter()
            .map(|(k, v)| (*k, v.0))
            .reduce(|a, b| if pick(b.1, a.1) { b } else { a })
            .unwrap_or(("none", f64::NAN))
    };
    let (worst_name, worst) = arm(|x, y| x < y);
    let (best_name, best) = arm(|x, y| x > y);
    outcome.claims.push(Claim::new(
        "merges-between",
        &format!(
            "every merge ({} arms: {}) beats the base by 5 points and stays below the fine-tuned models ({seeds_note})",
            n.per_method.len(),
            n.per_method.keys().copied().collect::<Vec<_>>().join(", ")
        ),
        "base + 5 < merge < fine-tuned",
        format!(
            "base {:.1}, merges {:.1} ({worst_name}) .. {:.1} ({best_name}), fine-tuned {:.1}",
            pts(n.base),
            pts(worst),
            pts(best),
            pts(n.finetuned)
        ),
        worst > n.base + 0.05 && best < n.finetuned,
    ));
    outcome.claims.push(Claim::new(
        "ta-beats-averaging",
        &format!("Task Arithmetic beats weight averaging ({seeds_note})"),
        "TA > averaging",
        format!(
            "TA {:.1} vs averaging {:.1}",
            pts(m(n, "task arithmetic")),
            pts(m(n, "weight averaging"))
        ),
        m(n, "task arithmetic") > m(n, "weight averaging"),
    ));
    outcome.claims.push(Claim::at_least(
        "ties-over-ta",
        &format!("TIES − TA, points ({seeds_note}; spec: ≥ 3)"),
        3.0,
        100.0 * (m(n, "TIES") - m(n, "task arithmetic")),
    ));
    outcome.claims.push(Claim::at_least(
        "pcb-over-ta",
        &format!("PCB − TA, points ({seeds_note}; spec: ≥ 3)"),
        3.0,
        100.0 * (m(n, "PCB") - m(n, "task arithmetic")),
    ));
    outcome.claims.push(Claim::at_most(
        "pcb-vs-ties",
        &format!("|PCB − TIES|, points ({seeds_note})"),
        4.0,
        100.0 * (m(n, "PCB") - m(n, "TIES")).abs(),
    ));
    outcome.claims.push(Claim::at_least(
        "pcb-es-over-pcb",
        &format!("PCB + ES − PCB, points ({seeds_note}; the paper: ES adds to PCB)"),
        0.0,
        100.0 * (m(n, "PCB + ES") - m(n, "PCB")),
    ));
    outcome.claims.push(Claim::at_most(
        "dare-ta-near-ta",
        &format!("|DARE-TA(p=0.5) − TA|, points ({seeds_note})"),
        4.0,
        100.0 * (m(n, "DARE-TA p=0.5") - m(n, "task arithmetic")).abs(),
    ));
    let ft = n.finetuned;
    outcome.claims.push(Claim::at_least(
        "dare-0.9-loses-narrow",
        "single-model DARE p=0.9 loses points at width 128 (spec: ≥ 5)",
        5.0,
        100.0 * (ft - n.dare_single["p=0.9"]),
    ));
    outcome.claims.push(Claim::at_least(
        "drop-only-collapses",
        "single-model drop-only p=0.9 loses points at width 128 (spec: ≥ 15)",
        15.0,
        100.0 * (ft - n.dare_single["drop-only p=0.9"]),
    ));
    outcome.claims.push(Claim::new(
        "dare-0.99-worse",
        "single-model DARE p=0.99 loses more than p=0.9",
        "acc(0.99) < acc(0.9)",
        format!(
            "{:.1} vs {:.1}",
            pts(n.dare_single["p=0.99"]),
            pts(n.dare_single["p=0.9"])
        ),
        n.dare_single["p=0.99"] < n.dare_single["p=0.9"],
    ));
    if let Some(w) = &wide {
        outcome.claims.push(Claim::at_most(
            "dare-0.9-keeps-wide",
            "single-model DARE p=0.9 loses points at width 512 (spec: ≤ 2)",
            2.0,
            100.0 * (w.finetuned - w.dare_single["p=0.9"]),
        ));
        outcome.claims.push(Claim::at_least(
            "drop-only-collapses-wide",
            "single-model drop-only p=0.9 loses points at width 512 (spec: ≥ 15)",
            15.0,
            100.0 * (w.finetuned - w.dare_single["drop-only p=0.9"]),
        ));
    }

    // Table of per-task accuracies, and the plots.
    let mut md = String::from(
        "| width | method | task (0,0) | (0,8) | (8,0) | (8,8) | mean | chosen on val |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (width, r) in std::iter::once((128, n)).chain(wide.iter().map(|w| (512, w))) {
        let _ = writeln!(md, "| {width} | base | | | | | {:.1} | |", pts(r.base));
        let _ = writeln!(
            md,
            "| {width} | fine-tuned | | | | | {:.1} | |",
            pts(r.finetuned)
        );
        for (k, (mean, per, hyper)) in &r.per_method {
            let _ = writeln!(
                md,
                "| {width} | {k} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {hyper} |",
                pts(per[0]),
                pts(per[1]),
                pts(per[2]),
                pts(per[3]),
                pts(*mean)
            );
        }
        for (k, acc) in &r.dare_single {
            let _ = writeln!(
                md,
                "| {width} | single-model DARE {k} | | | | | {:.1} | |",
                pts(*acc)
            );
        }
    }
    graft_tensor::atomic::write_atomic(ctx.path("per_task.md"), md.as_bytes())?;
    let mut series: Vec<Series> = Vec::new();
    for (width, r) in std::iter::once((128, n)).chain(wide.iter().map(|w| (512, w))) {
        let points = [
            (0.0, r.finetuned),
            (0.5, r.dare_single["p=0.5"]),
            (0.9, r.dare_single["p=0.9"]),
            (0.99, r.dare_single["p=0.99"]),
        ];
        series.push(Series {
            label: format!("width {width}, rescaled"),
            points: points.to_vec(),
        });
        series.push(Series {
            label: format!("width {width}, drop only"),
            points: vec![(0.0, r.finetuned), (0.9, r.dare_single["drop-only p=0.9"])],
        });
    }
    line_chart(
        &ctx.path("dare_drop_rate.svg"),
        "DARE on one fine-tune: test accuracy vs drop rate p",
        "drop rate p",
        "accuracy",
        &series,
    )?;
    let methods: Vec<Series> = n
        .per_method
        .iter()
        .map(|(k, (_, per, _))| Series {
            label: k.to_string(),
            points: per
                .iter()
                .enumerate()
                .map(|(t, a)| (t as f64, *a))
                .collect(),
        })
        .collect();
    line_chart(
        &ctx.path("per_task_width128.svg"),
        "merged model, test accuracy per task (width 128)",
        "task (corner 0..3)",
        "accuracy",
        &methods,
    )?;
    outcome.plots = vec!["dare_drop_rate.svg".into(), "per_task_width128.svg".into()];
    Ok(outcome)
}
