//! Memory vs depth for the MLP coupling stack (spec §1 small reproduction):
//! one training step (loss = mean(y²)) per configuration, each in a fresh
//! child process; plain autograd, per-block checkpointing and reversible.

use super::probe::{probe, slope};
use crate::Result;
use crate::mlp::{MlpCouplingConfig, mlp_coupling_stack};
use crate::stack::{RunOptions, Strategy};
use graft_nn::experiment::{Claim, ExperimentContext};
use graft_nn::plot::{Series, line_chart};
use graft_tensor::tch::nn::VarStore;
use graft_tensor::tch::{Device, Kind, Tensor};

const MB: f64 = 1024.0 * 1024.0;

/// Sizes of the sweep.
#[derive(Debug, Clone)]
pub struct DepthSweep {
    /// Batch size.
    pub batch: i64,
    /// Half of the stream width.
    pub half: i64,
    /// Hidden width of F and G.
    pub hidden: i64,
    /// Depths measured.
    pub depths: Vec<usize>,
}

impl DepthSweep {
    /// The spec's sizes (B = 4096, half 128, hidden 512, N = 2..32); quick
    /// uses a quarter of the batch.
    pub fn for_ctx(ctx: &ExperimentContext) -> Self {
        Self {
            batch: ctx.pick(1024, 4096),
            half: 128,
            hidden: 512,
            depths: vec![2, 4, 8, 16, 32],
        }
    }

    fn config(&self) -> MlpCouplingConfig {
        MlpCouplingConfig {
            half: self.half,
            hidden: self.hidden,
            ..Default::default()
        }
    }

    /// Bytes of the parameter gradients of one block (f32).
    pub fn grad_bytes_per_block(&self) -> f64 {
        let per_fn = self.half * self.hidden + self.hidden + self.hidden * self.half + self.half;
        (2 * per_fn * 4) as f64
    }
}

/// Peak memory above baseline (bytes) per strategy and depth.
pub struct DepthMeasurements {
    /// `(strategy, depth, bytes)` of a whole training step.
    pub peaks: Vec<(Strategy, usize, f64)>,
    /// `(strategy, depth, bytes)` of the forward pass alone, its tape kept:
    /// what the strategy retains for the backward (plus one block's
    /// transient activations, the same at every depth).
    pub forward: Vec<(Strategy, usize, f64)>,
}

/// What a probe child builds before measuring: the stack of `depth` blocks
/// (seeded) and a batch of inputs.
fn stack_setup(
    sweep: &DepthSweep,
    depth: usize,
    seed: u64,
) -> impl FnOnce() -> Result<(VarStore, crate::Stack, Tensor)> + use<> {
    let cfg = sweep.config();
    let batch = sweep.batch;
    move || {
        graft_tensor::tch::manual_seed(seed as i64);
        let vs = VarStore::new(Device::Cpu);
        let stack = mlp_coupling_stack(&vs.root(), depth, &cfg)?;
        let x = Tensor::randn([batch, 2 * cfg.half], (Kind::Float, Device::Cpu));
        Ok((vs, stack, x))
    }
}

/// Runs the probes (the first thing the `rev` reproduction does).
pub fn measure(ctx: &ExperimentContext, sweep: &DepthSweep) -> Result<DepthMeasurements> {
    let mut peaks = Vec::new();
    for &strategy in &Strategy::ALL {
        for &depth in &sweep.depths {
            let site = format!("rev-depth-{}-{depth}", strategy.name());
            let setup = stack_setup(sweep, depth, ctx.seed);
            let step = move |(vs, stack, x): (VarStore, crate::Stack, Tensor)| -> Result<()> {
                let tape = stack.forward(&x, RunOptions::train(strategy))?;
                let loss = tape.output.f_square()?.f_mean(Kind::Float)?;
                loss.f_backward()?;
                drop(loss);
                let back = stack.backward(tape)?;
                drop(back);
                drop(vs);
                Ok(())
            };
            if let Some(m) = probe(&site, setup, step)? {
                tracing::info!(
                    strategy = strategy.name(),
                    depth,
                    mb = m.delta_bytes() as f64 / MB,
                    "peak above baseline"
                );
                peaks.push((strategy, depth, m.delta_bytes() as f64));
            }
        }
    }
    let mut forward = Vec::new();
    for strategy in [Strategy::Checkpoint, Strategy::Reversible] {
        for &depth in &sweep.depths {
            let site = format!("rev-depth-forward-{}-{depth}", strategy.name());
            let setup = stack_setup(sweep, depth, ctx.seed);
            let step = move |(vs, stack, x): (VarStore, crate::Stack, Tensor)| -> Result<()> {
                // The tape lives to the end of the probe: its bytes are in the peak.
                let tape = stack.forward(&x, RunOptions::train(strategy))?;
                drop(tape);
                drop(vs);
                Ok(())
            };
            if let Some(m) = probe(&site, setup, step)? {
                forward.push((strategy, depth, m.delta_bytes() as f64));
            }
        }
    }
    Ok(DepthMeasurements { peaks, forward })
}

/// The ledger's bytes at `depth`: measured at batch 1 and scaled by the
/// batch (every retained tensor is linear in it; seeds are not).
fn ledger_bytes(sweep: &DepthSweep, strategy: Strategy, depth: usize) -> Result<f64> {
    let vs = VarStore::new(Device::Cpu);
    let stack = mlp_coupling_stack(&vs.root(), depth, &sweep.config())?;
    let x = Tensor::zeros([1, 2 * sweep.half], (Kind::Float, Device::Cpu));
    let l = stack.forward(&x, RunOptions::train(strategy))?.ledger();
    let tensors = (l.output_bytes + l.anchor_bytes + l.boundary_bytes) as f64;
    Ok(tensors * sweep.batch as f64 + l.seed_bytes as f64)
}

/// Claims and the plot from the measurements.
pub fn report(
    ctx: &ExperimentContext,
    sweep: &DepthSweep,
    m: &DepthMeasurements,
    claims: &mut Vec<Claim>,
    plots: &mut Vec<String>,
) -> Result<()> {
    let xs: Vec<f64> = sweep.depths.iter().map(|&d| d as f64).collect();
    let series_of = |s: Strategy| -> Vec<f64> {
        sweep
            .depths
            .iter()
            .map(|&d| {
                m.peaks
                    .iter()
                    .find(|(st, dd, _)| *st == s && *dd == d)
                    .map_or(f64::NAN, |p| p.2)
            })
            .collect()
    };
    let plain = series_of(Strategy::Plain);
    let ckpt = series_of(Strategy::Checkpoint);
    let rev = series_of(Strategy::Reversible);
    let grad = sweep.grad_bytes_per_block();
    let rev_slope = slope(&xs, &rev);
    let ckpt_slope = slope(&xs, &ckpt);
    let plain_slope = slope(&xs, &plain);
    let last = sweep.depths.len() - 1;
    let n_max = sweep.depths[last];
    let ratio = rev[last] / plain[last];
    claims.push(Claim::new(
        "rev-slope",
        &format!(
            "reversible peak-memory slope vs depth <= 1.1x the parameter-gradient bytes per block ({:.2} MB); measured MB/block and ratio",
            grad / MB
        ),
        "<= 1.1x",
        format!(
            "{:.2} MB/block = {:.2}x (plain {:.1}, checkpoint {:.2} MB/block)",
            rev_slope / MB,
            rev_slope / grad,
            plain_slope / MB,
            ckpt_slope / MB
        ),
        rev_slope <= 1.1 * grad,
    ));
    claims.push(Claim::at_most(
        "rev-vs-plain",
        &format!("reversible peak <= 10 % of plain autograd at N = {n_max} (ratio)"),
        0.10,
        ratio,
    ));
    // The ledger against what it claims to count: the bytes a strategy
    // retains between forward and backward, measured as the slope over depth
    // of the forward pass's own peak (tape kept), apart from the gradients
    // (which the slope claim above covers). Tolerance: 15 % of the ledger's
    // slope plus 0.25 MB/block (page-granular RSS over a 2-32 sweep).
    let fwd_of = |s: Strategy| -> Vec<f64> {
        sweep
            .depths
            .iter()
            .map(|&d| {
                m.forward
                    .iter()
                    .find(|(st, dd, _)| *st == s && *dd == d)
                    .map_or(f64::NAN, |p| p.2)
            })
            .collect()
    };
    let mut agree = Vec::new();
    for s in [Strategy::Checkpoint, Strategy::Reversible] {
        let l0 = ledger_bytes(sweep, s, sweep.depths[0])?;
        let l1 = ledger_bytes(sweep, s, n_max)?;
        let ledger_slope = (l1 - l0) / (n_max - sweep.depths[0]) as f64;
        let rss = slope(&xs, &fwd_of(s));
        let tol = 0.15 * ledger_slope.abs() + 0.25 * MB;
        agree.push((s, rss, ledger_slope, (rss - ledger_slope).abs() <= tol));
    }
    claims.push(Claim::new(
        "ledger-agrees",
        "the ledger's retained bytes per block agree with the forward pass's RSS slope (tape kept, no gradients) within 15 % + 0.25 MB/block (checkpoint, reversible)",
        "|RSS - ledger| <= 15 % + 0.25 MB/block",
        agree
            .iter()
            .map(|(s, rss, l, _)| {
                format!(
                    "{}: forward RSS {:.2} vs ledger {:.2} MB/block",
                    s.name(),
                    rss / MB,
                    l / MB
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        agree.iter().all(|a| a.3),
    ));
    let pts = |v: &[f64]| xs.iter().copied().zip(v.iter().map(|b| b / MB)).collect();
    line_chart(
        &ctx.path("memory_vs_depth.svg"),
        &format!(
            "MLP coupling stack, one step, B = {}, width {}",
            sweep.batch,
            2 * sweep.half
        ),
        "blocks N",
        "peak RSS above baseline (MB)",
        &[
            Series {
                label: "plain autograd".into(),
                points: pts(&plain),
            },
            Series {
                label: "checkpoint per block".into(),
                points: pts(&ckpt),
            },
            Series {
                label: "reversible".into(),
                points: pts(&rev),
            },
        ],
    )?;
    plots.push("memory_vs_depth.svg".into());
    let table: Vec<serde_json::Value> = m
        .peaks
        .iter()
        .map(|(s, d, b)| serde_json::json!({"strategy": s.name(), "depth": d, "peak_mb": b / MB}))
        .collect();
    let text =
        serde_json::to_string_pretty(&table).map_err(|e| crate::Error::Config(e.to_string()))?;
    graft_tensor::atomic::write_atomic(ctx.path("memory_vs_depth.json"), text.as_bytes())?;
    Ok(())
}
