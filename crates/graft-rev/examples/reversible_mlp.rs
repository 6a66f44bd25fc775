//! Train a small MLP coupling stack with each strategy and compare what they
//! keep between forward and backward and the gradients they give.
//!
//! `cargo run --release -p graft-rev --example reversible_mlp`

use anyhow::Result;
use graft_rev::mlp::{MlpCouplingConfig, mlp_coupling_stack};
use graft_rev::{RunOptions, Strategy};
use graft_tensor::tch::nn::{self, OptimizerConfig, VarStore};
use graft_tensor::tch::{self, Device, Kind, Tensor};

fn main() -> Result<()> {
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let cfg = MlpCouplingConfig {
        half: 32,
        hidden: 128,
        layer_norm: true,
        ..Default::default()
    };
    let stack = mlp_coupling_stack(&vs.root(), 12, &cfg)?;
    let x = Tensor::randn([256, 64], (Kind::Float, Device::Cpu));
    let target = x.flip([1]);

    // One step with each strategy from the same weights: same gradients,
    // different retained bytes.
    let mut reference: Option<Tensor> = None;
    for strategy in Strategy::ALL {
        for (_, mut v) in vs.variables() {
            v.zero_grad();
        }
        let tape = stack.forward(&x, RunOptions::train(strategy))?;
        let ledger = tape.ledger();
        let loss = (&tape.output - &target).square().mean(Kind::Float);
        loss.backward();
        stack.backward(tape)?;
        let grads = Tensor::cat(
            &vs.trainable_variables()
                .iter()
                .map(|v| v.grad().reshape([-1]))
                .collect::<Vec<_>>(),
            0,
        );
        let rel = reference.as_ref().map_or(0.0, |r| {
            (&grads - r).norm().double_value(&[]) / r.norm().double_value(&[])
        });
        println!(
            "{:>10}: loss {:.4}, retained {:>8} bytes{}, grad rel. diff to plain {rel:.1e}",
            strategy.name(),
            loss.double_value(&[]),
            ledger.total(),
            if ledger.autograd_graph {
                " + autograd graph"
            } else {
                ""
            },
        );
        reference.get_or_insert(grads);
    }

    // A few Adam steps with the reversible engine.
    let mut opt = nn::Adam::default().build(&vs, 1e-3)?;
    for step in 0..20 {
        opt.zero_grad();
        let tape = stack.forward(
            &x,
            RunOptions {
                seed: step,
                ..RunOptions::train(Strategy::Reversible)
            },
        )?;
        let loss = (&tape.output - &target).square().mean(Kind::Float);
        loss.backward();
        stack.backward(tape)?;
        opt.step();
        if step % 5 == 4 {
            println!(
                "reversible training step {}: loss {:.4}",
                step + 1,
                loss.double_value(&[])
            );
        }
    }
    Ok(())
}
