//! `cargo xtask bench unlearn`: (1) wall time of forgetting one digit class
//! with SSD (batch importances with `I_D` computed or cached, per-sample
//! importances) against retraining and fine-tuning, on the same trained
//! CNN and data, interleaved in one run (median of the repetitions), as
//! ratios; (2) one SGTM training step of the spec's TinyLM (forget mode,
//! retain mode) against a plain step (the same loss and libtorch's AdamW;
//! and graft's masked AdamW with nothing masked), interleaved.

use graft_nn::data::{BilingualConfig, BilingualCorpus, digits, lm_batch};
use graft_nn::models::{ModelConfig, TinyLm, TinyLmConfig, build};
use graft_nn::train::train_classifier;
use graft_tensor::tch::nn::{self, OptimizerConfig, VarStore};
use graft_tensor::tch::{self, Device, Tensor, no_grad};
use graft_unlearn::baselines::{Finetune, Retrain, cnn_recipe, reinit_from_config};
use graft_unlearn::importance::{ImportanceConfig, importances};
use graft_unlearn::sgtm::{AdamW, BatchMode, SgtmConfig, SgtmTrainer, lm_loss};
use graft_unlearn::{ForgetRequest, Ssd, SsdConfig, Unlearner};
use std::time::Instant;

/// A method's name and a closure that runs it once.
type Arm<'a> = (&'static str, Box<dyn Fn() + 'a>);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn snapshot(vs: &VarStore) -> Vec<(String, Tensor)> {
    vs.variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect()
}

fn restore(vs: &VarStore, snap: &[(String, Tensor)]) {
    let vars = vs.variables();
    no_grad(|| {
        for (n, t) in snap {
            vars[n].shallow_clone().copy_(t);
        }
    });
}

fn ssd_vs_retraining(reps: usize) {
    let splits = digits()
        .expect("digits (cargo xtask fetch-assets)")
        .split(0.7, 0.15, 0)
        .expect("split");
    let config = ModelConfig::cnn_8x8(10);
    let recipe = cnn_recipe(40, 0);
    graft_tensor::seed::seed_everything(0);
    let vs = VarStore::new(Device::Cpu);
    let model = build(&vs.root(), &config).expect("model");
    train_classifier(&model, &vs, &splits.train, None, &recipe).expect("train");
    let others: Vec<i64> = (0..10).filter(|&c| c != 3).collect();
    let forget = splits.train.with_classes(&[3]).expect("forget");
    let retain = splits.train.with_classes(&others).expect("retain");
    let request = ForgetRequest {
        model: &model,
        vs: &vs,
        forget: &forget,
        retain: &retain,
    };
    let cached = importances(
        &model,
        &vs,
        &retain.concat(&forget, "d").expect("d"),
        &[],
        &ImportanceConfig::default(),
    )
    .expect("I_D");
    let snap = snapshot(&vs);
    let arms: Vec<Arm> = vec![
        (
            "SSD batch, I_D computed",
            Box::new(|| {
                Ssd::new(SsdConfig::new(2.0, 1.0))
                    .unwrap()
                    .unlearn(&request)
                    .unwrap();
            }),
        ),
        (
            "SSD batch, I_D cached",
            Box::new(|| {
                Ssd::new(SsdConfig::new(2.0, 1.0))
                    .unwrap()
                    .with_full_importance(cached.shallow_clone())
                    .unlearn(&request)
                    .unwrap();
            }),
        ),
        (
            "SSD per-sample, I_D computed",
            Box::new(|| {
                Ssd::new(SsdConfig::new(2.0, 1.0).per_sample())
                    .unwrap()
                    .unlearn(&request)
                    .unwrap();
            }),
        ),
        (
            "finetune (5 epochs)",
            Box::new(|| {
                Finetune::default().unlearn(&request).unwrap();
            }),
        ),
        (
            "retrain (40 epochs)",
            Box::new(|| {
                Retrain::new(recipe.clone(), reinit_from_config(config.clone(), 1))
                    .unlearn(&request)
                    .unwrap();
            }),
        ),
    ];
    let mut times = vec![Vec::new(); arms.len()];
    for _ in 0..reps {
        for (i, (_, f)) in arms.iter().enumerate() {
            restore(&vs, &snap);
            let t = Instant::now();
            f();
            times[i].push(t.elapsed().as_secs_f64());
        }
    }
    let med: Vec<f64> = times.iter().cloned().map(median).collect();
    let retrain = med[arms.len() - 1];
    println!(
        "forgetting digit 3 (digits CNN, {} train samples, {} to forget), {} threads, {reps} interleaved runs:",
        splits.train.len(),
        forget.len(),
        tch::get_num_threads()
    );
    println!("| method | median wall (s) | min-max (s) | retrain / method |");
    println!("|---|---|---|---|");
    for (i, (name, _)) in arms.iter().enumerate() {
        let (lo, hi) = times[i]
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
        println!(
            "| {name} | {:.4} | {lo:.4}-{hi:.4} | {:.1} |",
            med[i],
            retrain / med[i]
        );
    }
}

fn sgtm_step_overhead(reps: usize) {
    let corpus = BilingualCorpus::generate(&BilingualConfig::default(), 0).expect("corpus");
    let docs: Vec<&[i64]> = corpus.train_a.iter().take(32).map(Vec::as_slice).collect();
    let (x, y) = lm_batch(&docs, 32);
    let cfg = TinyLmConfig::small(corpus.vocab.len() as i64);
    let build_lm = || {
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let m = TinyLm::new(&vs.root(), &cfg).expect("lm");
        (vs, m)
    };
    let (vs_plain, m_plain) = build_lm();
    let mut adamw = nn::AdamW {
        beta1: 0.9,
        beta2: 0.95,
        wd: 0.1,
        ..Default::default()
    }
    .build(&vs_plain, 1e-3)
    .expect("adamw");
    let (vs_s, m_s) = build_lm();
    let mut sgtm = SgtmTrainer::new(
        &m_s,
        &vs_s,
        SgtmConfig {
            adam: AdamW::default(),
            ..SgtmConfig::default()
        },
    )
    .expect("sgtm");
    let mut times = vec![Vec::new(); 4];
    let names = [
        "plain step (libtorch AdamW)",
        "graft masked AdamW, nothing masked",
        "SGTM forget step",
        "SGTM retain step",
    ];
    for rep in 0..reps + 3 {
        let mut t = Vec::new();
        let s = Instant::now();
        let loss = lm_loss(&m_plain.forward(&x).unwrap(), &y).unwrap();
        adamw.backward_step(&loss);
        t.push(s.elapsed().as_secs_f64());
        for mode in [BatchMode::Default, BatchMode::Forget, BatchMode::Retain] {
            let s = Instant::now();
            sgtm.step(&x, &y, mode, 1e-3).unwrap();
            t.push(s.elapsed().as_secs_f64());
        }
        if rep >= 3 {
            for (i, v) in t.into_iter().enumerate() {
                times[i].push(v);
            }
        }
    }
    let med: Vec<f64> = times.into_iter().map(median).collect();
    println!(
        "one training step, TinyLM {cfg:?}, batch 32 x 32 tokens, {} threads, {reps} interleaved runs:",
        tch::get_num_threads()
    );
    println!("| step | median (ms) | vs plain |");
    println!("|---|---|---|");
    for (i, n) in names.iter().enumerate() {
        println!(
            "| {n} | {:.2} | {:+.1} % |",
            1e3 * med[i],
            100.0 * (med[i] / med[0] - 1.0)
        );
    }
    // The mix of 7.3 at recall 1: half the batches forget, a quarter of the
    // retain batches in retain mode, the rest default.
    let mix = 0.5 * med[2] + 0.125 * med[3] + 0.375 * med[1];
    println!(
        "SGTM training in 7.3's mix of steps: {:+.1} % over plain steps",
        100.0 * (mix / med[0] - 1.0)
    );
    let worst = med[2].max(med[3]) / med[0] - 1.0;
    println!(
        "SGTM step overhead over a plain step: {:+.1} % (target <= 10 %): {}",
        100.0 * worst,
        if worst <= 0.10 { "met" } else { "NOT met" }
    );
}

fn main() {
    tch::set_num_threads(1);
    graft_benches::print_machine();
    let quick = std::env::var("GRAFT_BENCH_UNLEARN_SIZE").is_ok_and(|s| s == "small");
    ssd_vs_retraining(if quick { 2 } else { 5 });
    sgtm_step_overhead(if quick { 20 } else { 200 });
}
