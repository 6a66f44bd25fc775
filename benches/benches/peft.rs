//! `cargo xtask bench peft`: one fine-tuning step (forward, backward,
//! AdamW) of all-MiniLM-L6-v2 as a sentence classifier at batch 32,
//! sequence 64, LoRA r = 8 on query/value, graft against Hugging Face PEFT
//! 0.21.2 in the same run with the same thread count; each arm in a process
//! of its own (so its peak RSS is its own), median of the measured steps;
//! plus graft's full fine-tuning step and merged-adapter inference against
//! the plain model. `GRAFT_BENCH_PEFT_STEPS` sets the measured steps (5).

use graft_nn::layers::Plain;
use graft_nn::models::{BertForSequenceClassification, BertInput};
use graft_peft::{Layers, LoraConfig, PeftModel};
use graft_tensor::tch::nn::{self, OptimizerConfig};
use graft_tensor::tch::{self, Device, Kind, Tensor};
use std::process::Command;
use std::time::Instant;

const ARM_ENV: &str = "GRAFT_BENCH_PEFT_ARM";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn batch() -> (BertInput, Tensor) {
    tch::manual_seed(0);
    let ids = Tensor::randint_low(1000, 30000, [32, 64], (Kind::Int64, Device::Cpu));
    let input = BertInput {
        attention_mask: ids.ones_like(),
        token_type_ids: ids.zeros_like(),
        input_ids: ids,
    };
    (input, Tensor::randint(2, [32], (Kind::Int64, Device::Cpu)))
}

/// Runs one arm in this process and prints `median_ms peak_mib`.
fn run_arm(arm: &str, steps: usize) {
    let dir = graft_tensor::cache::asset("minilm/model.safetensors")
        .expect("cargo xtask fetch-assets")
        .with_file_name("");
    tch::manual_seed(0);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let layers = Layers::new();
    let model =
        BertForSequenceClassification::from_pretrained(&vs, &dir, 2, &layers).expect("model");
    let (input, y) = batch();
    if arm == "infer-plain" || arm == "infer-merged" {
        let vs2 = nn::VarStore::new(Device::Cpu);
        let plain =
            BertForSequenceClassification::from_pretrained(&vs2, &dir, 2, &Plain).expect("model");
        let mut peft = PeftModel::new(&mut vs, &layers);
        peft.add_adapter("default", LoraConfig::new(8, 16.0, &["query", "value"]))
            .expect("adapter");
        peft.merge(None, true).expect("merge");
        let mut times = Vec::new();
        for i in 0..steps + 2 {
            let t0 = Instant::now();
            let _ = tch::no_grad(|| {
                if arm == "infer-plain" {
                    plain.forward(&input, false)
                } else {
                    model.forward(&input, false)
                }
            });
            if i >= 2 {
                times.push(t0.elapsed().as_secs_f64());
            }
        }
        println!(
            "RESULT {} {}",
            1000.0 * median(times),
            graft_tensor::memory::peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0
        );
        return;
    }
    let mut peft = None;
    if arm == "lora" {
        let mut p = PeftModel::new(&mut vs, &layers);
        p.add_adapter(
            "default",
            LoraConfig::new(8, 16.0, &["query", "value"]).with_modules_to_save(&["classifier"]),
        )
        .expect("adapter");
        peft = Some(p);
    }
    let store = peft.as_ref().map_or(&vs, |p| p.var_store());
    let lr = if arm == "lora" { 2e-3 } else { 5e-5 };
    let mut opt = nn::AdamW::default().build(store, lr).expect("optimizer");
    let mut times = Vec::new();
    for i in 0..steps + 2 {
        let t0 = Instant::now();
        let loss = model
            .forward(&input, true)
            .expect("forward")
            .cross_entropy_for_logits(&y);
        opt.backward_step(&loss);
        if i >= 2 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    println!(
        "RESULT {} {}",
        1000.0 * median(times),
        graft_tensor::memory::peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0
    );
}

fn parse(out: &[u8], tag: &str) -> (f64, f64) {
    let text = String::from_utf8_lossy(out);
    if let Some(line) = text.lines().find(|l| l.starts_with("RESULT ")) {
        let v: Vec<f64> = line[7..]
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        return (v[0], v[1]);
    }
    if let Some(line) = text.lines().rev().find(|l| l.starts_with('{')) {
        let j: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        return (
            j["median_ms"].as_f64().unwrap_or(f64::NAN),
            j["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
        );
    }
    panic!("{tag}: no result in:\n{text}");
}

fn main() {
    let steps: usize = std::env::var("GRAFT_BENCH_PEFT_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    if let Ok(arm) = std::env::var(ARM_ENV) {
        tch::set_num_threads(2);
        run_arm(&arm, steps);
        return;
    }
    graft_benches::print_machine();
    let exe = std::env::current_exe().expect("exe");
    let graft = |arm: &str| {
        let out = Command::new(&exe)
            .env(ARM_ENV, arm)
            .output()
            .expect("child");
        assert!(
            out.status.success(),
            "{arm}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse(&out.stdout, arm)
    };
    let dir = graft_tensor::cache::asset("minilm/model.safetensors")
        .expect("assets")
        .with_file_name("");
    let python = std::env::var("GRAFT_PEERS_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/peft_step.py");
    let peft = |arm: &str| {
        let out = Command::new(&python)
            .arg(&script)
            .args([
                "--model",
                dir.to_str().unwrap(),
                "--arm",
                arm,
                "--threads",
                "2",
                "--steps",
                &steps.to_string(),
            ])
            .output()
            .expect("python");
        if !out.status.success() {
            eprintln!(
                "PEFT {arm} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return (f64::NAN, f64::NAN);
        }
        parse(&out.stdout, arm)
    };
    let rounds: usize = std::env::var("GRAFT_BENCH_PEFT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    println!(
        "one training step: all-MiniLM-L6-v2 classifier, batch 32 x 64 tokens, AdamW, 2 threads; each arm a fresh process per round, median of {steps} steps after 2 warm-up; {rounds} interleaved rounds: median [min, max]"
    );
    type Arm<'a> = (&'a str, Box<dyn Fn() -> (f64, f64) + 'a>);
    let arms: Vec<Arm> = vec![
        ("graft LoRA r=8 q,v", Box::new(|| graft("lora"))),
        ("PEFT 0.21.2 LoRA r=8 q,v", Box::new(|| peft("lora"))),
        ("graft full fine-tuning", Box::new(|| graft("full"))),
        ("PyTorch full fine-tuning", Box::new(|| peft("full"))),
        (
            "graft inference, plain model",
            Box::new(|| graft("infer-plain")),
        ),
        (
            "graft inference, merged LoRA",
            Box::new(|| graft("infer-merged")),
        ),
    ];
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new(); arms.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in arms.iter().enumerate() {
            runs[i].push(f());
        }
    }
    let stat = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    println!("| arm | ms (step or forward) | peak RSS (MiB) |\n|---|---:|---:|");
    let mut med = Vec::new();
    for ((name, _), r) in arms.iter().zip(&runs) {
        let (m, lo, hi) = stat(r.iter().map(|x| x.0).collect());
        let (mm, mlo, mhi) = stat(r.iter().map(|x| x.1).collect());
        println!("| {name} | {m:.0} [{lo:.0}, {hi:.0}] | {mm:.0} [{mlo:.0}, {mhi:.0}] |");
        med.push((m, mm));
    }
    let ratios = |a: usize, b: usize| {
        stat(
            runs[a]
                .iter()
                .zip(&runs[b])
                .map(|(x, y)| x.0 / y.0)
                .collect(),
        )
    };
    let (r, lo, hi) = ratios(0, 1);
    println!(
        "graft LoRA / PEFT LoRA step, per round: {r:.2} [{lo:.2}, {hi:.2}] (target <= 0.8); peak RSS {:.0} vs {:.0} MiB (target: no more)",
        med[0].1, med[1].1
    );
    let (r, lo, hi) = ratios(0, 2);
    println!("graft LoRA / graft full step, per round: {r:.2} [{lo:.2}, {hi:.2}] (target <= 0.75)");
    let (r, lo, hi) = ratios(2, 3);
    println!("graft full / PyTorch full step, per round: {r:.2} [{lo:.2}, {hi:.2}]");
    let (r, lo, hi) = ratios(5, 4);
    println!(
        "merged LoRA / plain inference, per round: {r:.2} [{lo:.2}, {hi:.2}] (target: the same cost)"
    );
}
