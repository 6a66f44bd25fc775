//! `cargo xtask bench rev` (or `cargo bench -p graft-benches --bench rev`):
//! wall time of one training step of an MLP coupling stack with plain
//! autograd, per-block checkpointing and the reversible engine, measured in
//! the same run (interleaved, median of the repetitions), with the ratio to
//! plain and the analytic FLOP ratio (in forward passes of F and G: plain
//! 3, checkpoint and reversible 4).
//!
//! `GRAFT_BENCH_REV_SIZE=small` shrinks the batch for a quick look.

use graft_rev::mlp::{MlpCouplingConfig, mlp_coupling_stack};
use graft_rev::{RunOptions, Stack, Strategy};
use graft_tensor::tch::nn::VarStore;
use graft_tensor::tch::{self, Device, Kind, Tensor};
use std::time::Instant;

fn step(vs: &VarStore, stack: &Stack, x: &Tensor, strategy: Strategy) -> f64 {
    for (_, mut v) in vs.variables() {
        v.zero_grad();
    }
    let start = Instant::now();
    let tape = stack
        .forward(x, RunOptions::train(strategy))
        .expect("forward");
    let loss = tape.output.square().mean(Kind::Float);
    loss.backward();
    let back = stack.backward(tape).expect("backward");
    drop(back);
    start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    graft_benches::print_machine();
    let small = std::env::var("GRAFT_BENCH_REV_SIZE").is_ok_and(|s| s == "small");
    let (batch, half, hidden, depth, reps) = if small {
        (256, 128, 512, 8, 5)
    } else {
        (2048, 128, 512, 16, 7)
    };
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let cfg = MlpCouplingConfig {
        half,
        hidden,
        ..Default::default()
    };
    let stack = mlp_coupling_stack(&vs.root(), depth, &cfg).expect("stack");
    let x = Tensor::randn([batch, 2 * half], (Kind::Float, Device::Cpu));
    println!(
        "one training step: MLP coupling stack N = {depth}, B = {batch}, width {}, hidden {hidden}, f32, {} threads",
        2 * half,
        tch::get_num_threads()
    );
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); 3];
    for _ in 0..2 {
        for s in Strategy::ALL {
            step(&vs, &stack, &x, s);
        }
    }
    for _ in 0..reps {
        for (i, s) in Strategy::ALL.into_iter().enumerate() {
            times[i].push(step(&vs, &stack, &x, s));
        }
    }
    let med: Vec<f64> = times.into_iter().map(median).collect();
    // FLOPs in units of one forward of F and G over the stack: plain = forward
    // (1) + backward (2); checkpoint and reversible add one recomputation (1).
    let flops = [3.0, 4.0, 4.0];
    println!("| strategy | median wall (s) | ratio to plain | FLOP ratio |");
    println!("|---|---|---|---|");
    for (i, s) in Strategy::ALL.into_iter().enumerate() {
        println!(
            "| {} | {:.3} | {:.2} | {:.2} |",
            s.name(),
            med[i],
            med[i] / med[0],
            flops[i] / flops[0]
        );
    }
    let ratio = med[2] / med[0];
    println!(
        "reversible / plain wall time: {ratio:.2} (target on CPU <= 1.3): {}",
        if ratio <= 1.3 { "met" } else { "NOT met" }
    );
}
