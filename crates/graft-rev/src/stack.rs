//! The engine: a stack of layers run with one of three strategies.
//!
//! - [`Strategy::Plain`]: ordinary autograd; every intermediate activation
//!   stays alive until the backward pass.
//! - [`Strategy::Checkpoint`]: the forward runs without gradients and keeps
//!   every layer's input; the backward recomputes each layer with gradients.
//! - [`Strategy::Reversible`]: the forward keeps only the output (plus a seed
//!   per layer, the inputs of non-invertible layers, and optional anchors);
//!   the backward reconstructs each reversible block's input from its output.
//!
//! All three return a [`Tape`] whose `output` is a leaf tensor that requires
//! gradients: compute the loss from it, call `backward` on the loss, then
//! [`Stack::backward`]. Parameter gradients accumulate into `.grad` as with
//! ordinary autograd, and the gradient with respect to the stack's input is
//! returned (propagate it into a trainable prefix with
//! [`crate::reversible::surrogate_backward`]).

use crate::reversible::{
    BlockCall, Reversible, check_reconstruction_dtype, grad_or_zeros, surrogate_backward,
};
use crate::subnet::{CallCtx, Phase, SubNet};
use crate::{Error, Result, seeds};
use graft_tensor::memory::tensor_bytes;
use graft_tensor::tch::{self, Tensor};

/// One layer of a stack.
pub enum Layer {
    /// An invertible block: its input is reconstructed, not stored.
    Reversible(Box<dyn Reversible>),
    /// A non-invertible function (downsampling, a width change): a checkpoint
    /// boundary whose input is stored by the reversible strategy.
    Plain {
        /// The function.
        f: Box<dyn SubNet>,
        /// Whether it draws random numbers (seeded per call for replay).
        stochastic: bool,
    },
}

impl Layer {
    /// A reversible layer.
    pub fn reversible(block: impl Reversible + 'static) -> Self {
        Layer::Reversible(Box::new(block))
    }

    /// A deterministic non-invertible layer.
    pub fn plain(f: impl SubNet + 'static) -> Self {
        Layer::Plain {
            f: Box::new(f),
            stochastic: false,
        }
    }

    fn forward(&self, x: &Tensor, call: &BlockCall) -> Result<Tensor> {
        match self {
            Layer::Reversible(b) => b.forward(x, call),
            Layer::Plain { f, stochastic } => {
                if *stochastic && call.ctx.train {
                    tch::manual_seed(call.seed as i64 & i64::MAX);
                }
                f.apply(x, &call.ctx)
            }
        }
    }
}

/// How activations are kept for the backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Strategy {
    /// Ordinary autograd.
    Plain,
    /// Store each layer's input, recompute the layer in the backward.
    Checkpoint,
    /// Store only the output; reconstruct inputs of reversible blocks.
    Reversible,
}

impl Strategy {
    /// Every strategy, in the order plain, checkpoint, reversible.
    pub const ALL: [Strategy; 3] = [Strategy::Plain, Strategy::Checkpoint, Strategy::Reversible];

    /// A lower-case name (`plain`, `checkpoint`, `reversible`).
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Plain => "plain",
            Strategy::Checkpoint => "checkpoint",
            Strategy::Reversible => "reversible",
        }
    }
}

/// Options of one forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// The strategy.
    pub strategy: Strategy,
    /// Training mode.
    pub train: bool,
    /// The seed this pass's per-layer seeds derive from (vary it per step
    /// when layers use dropout).
    pub seed: u64,
}

impl RunOptions {
    /// Training mode with `strategy` and seed 0.
    pub fn train(strategy: Strategy) -> Self {
        Self {
            strategy,
            train: true,
            seed: 0,
        }
    }
}

/// Bytes the engine retains between the forward and the backward pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ledger {
    /// The stack's output.
    pub output_bytes: u64,
    /// Per-layer seeds (8 bytes each).
    pub seed_bytes: u64,
    /// Exact states stored as anchors (and the input, when the drift check is on).
    pub anchor_bytes: u64,
    /// Stored inputs of recomputed layers: every layer under checkpointing,
    /// the non-invertible layers under the reversible strategy.
    pub boundary_bytes: u64,
    /// Whether autograd's own graph (not counted here) also holds activations
    /// (plain strategy).
    pub autograd_graph: bool,
}

impl Ledger {
    /// Everything counted.
    pub fn total(&self) -> u64 {
        self.output_bytes + self.seed_bytes + self.anchor_bytes + self.boundary_bytes
    }
}

/// What a forward pass leaves for the backward pass.
pub struct Tape {
    /// The stack's output: a leaf that requires gradients. Compute the loss
    /// from it and call `backward` on the loss before [`Stack::backward`].
    pub output: Tensor,
    options: RunOptions,
    seeds: Vec<u64>,
    saved: Vec<Option<Tensor>>,
    graph: Option<(Tensor, Tensor)>,
    ledger: Ledger,
}

impl Tape {
    /// The bytes retained until the backward pass.
    pub fn ledger(&self) -> Ledger {
        self.ledger
    }

    /// The options the forward ran with.
    pub fn options(&self) -> RunOptions {
        self.options
    }
}

/// What the backward pass returns.
#[derive(Debug)]
pub struct Backward {
    /// `dL/dx` for the stack's input.
    pub grad_input: Tensor,
    /// With the drift check on, the largest max-abs difference between a
    /// reconstructed activation and the stored exact one.
    pub max_reconstruction_error: Option<f64>,
}

/// A sequence of layers run with a chosen [`Strategy`].
pub struct Stack {
    layers: Vec<Layer>,
    anchor_every: Option<usize>,
    drift_tolerance: Option<f64>,
}

impl Stack {
    /// A stack of `layers`, no anchors, no drift check.
    pub fn new(layers: Vec<Layer>) -> Self {
        Self {
            layers,
            anchor_every: None,
            drift_tolerance: None,
        }
    }

    /// Stores the exact input of every `k`-th reversible layer (`k ≥ 1`) and
    /// restarts reconstruction there: memory O(N/k), drift bounded by k layers.
    pub fn with_anchors(mut self, k: usize) -> Result<Self> {
        if k == 0 {
            return Err(Error::Config("anchor interval must be at least 1".into()));
        }
        self.anchor_every = Some(k);
        Ok(self)
    }

    /// Turns on the reconstruction-error check: the stack's input is kept,
    /// and every reconstructed activation that has a stored exact twin
    /// (anchors, inputs of non-invertible layers, the input) is compared with
    /// it; the backward fails with [`Error::Drift`] above `tolerance`
    /// (max-abs). Parameter gradients accumulated before the failure stay.
    pub fn with_drift_check(mut self, tolerance: f64) -> Result<Self> {
        if tolerance.is_nan() || tolerance < 0.0 {
            return Err(Error::Config(format!(
                "drift tolerance must be a non-negative number, got {tolerance}"
            )));
        }
        self.drift_tolerance = Some(tolerance);
        Ok(self)
    }

    /// Takes the layers out (to splice stacks together).
    pub fn into_layers(self) -> Vec<Layer> {
        self.layers
    }

    /// The layers.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether the stack has no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    fn keeps_exact(&self, i: usize) -> bool {
        (i == 0 && self.drift_tolerance.is_some())
            || self.anchor_every.is_some_and(|k| i > 0 && i % k == 0)
    }

    /// Runs the forward pass of `x` with `options`.
    pub fn forward(&self, x: &Tensor, options: RunOptions) -> Result<Tape> {
        let ctx = CallCtx {
            train: options.train,
            phase: Phase::Forward,
        };
        let seeds: Vec<u64> = (0..self.layers.len() as u64)
            .map(|i| seeds::mix(options.seed, i))
            .collect();
        let mut saved: Vec<Option<Tensor>> = (0..self.layers.len()).map(|_| None).collect();
        let mut ledger = Ledger {
            seed_bytes: 8 * seeds.len() as u64,
            ..Ledger::default()
        };
        match options.strategy {
            Strategy::Plain => {
                let leaf = x.detach().set_requires_grad(true);
                let out = tch::with_grad(|| -> Result<Tensor> {
                    let mut h = leaf.shallow_clone();
                    for (layer, &seed) in self.layers.iter().zip(&seeds) {
                        h = layer.forward(&h, &BlockCall { ctx, seed })?;
                    }
                    Ok(h)
                })?;
                let output = out.detach().set_requires_grad(true);
                ledger.output_bytes = tensor_bytes([&output]);
                ledger.autograd_graph = true;
                Ok(Tape {
                    output,
                    options,
                    seeds,
                    saved,
                    graph: Some((out, leaf)),
                    ledger,
                })
            }
            Strategy::Checkpoint | Strategy::Reversible => {
                let reversible = options.strategy == Strategy::Reversible;
                if reversible {
                    check_reconstruction_dtype("reversible stack input", x.kind())?;
                }
                let out = tch::no_grad(|| -> Result<Tensor> {
                    let mut h = x.detach();
                    for (i, (layer, &seed)) in self.layers.iter().zip(&seeds).enumerate() {
                        let store = !reversible
                            || matches!(layer, Layer::Plain { .. })
                            || self.keeps_exact(i);
                        if store {
                            saved[i] = Some(h.shallow_clone());
                        }
                        h = layer.forward(&h, &BlockCall { ctx, seed })?;
                    }
                    Ok(h)
                })?;
                for (i, s) in saved.iter().enumerate() {
                    if let Some(t) = s {
                        let bytes = tensor_bytes([t]);
                        if reversible && matches!(self.layers[i], Layer::Reversible(_)) {
                            ledger.anchor_bytes += bytes;
                        } else {
                            ledger.boundary_bytes += bytes;
                        }
                    }
                }
                let output = out.set_requires_grad(true);
                ledger.output_bytes = tensor_bytes([&output]);
                Ok(Tape {
                    output,
                    options,
                    seeds,
                    saved,
                    graph: None,
                    ledger,
                })
            }
        }
    }

    /// The backward pass, with `dL/d output` read from `tape.output.grad()`.
    pub fn backward(&self, tape: Tape) -> Result<Backward> {
        let g = tape.output.grad();
        if !g.defined() {
            return Err(Error::NoOutputGradient);
        }
        let g = g.detach();
        self.backward_with(tape, &g)
    }

    /// The backward pass with an explicit output gradient `grad_output`.
    pub fn backward_with(&self, mut tape: Tape, grad_output: &Tensor) -> Result<Backward> {
        if grad_output.size() != tape.output.size() {
            return Err(Error::ShapeMismatch {
                what: "gradient of the stack output".into(),
                expected: tape.output.size(),
                got: grad_output.size(),
            });
        }
        let ctx = CallCtx {
            train: tape.options.train,
            phase: Phase::Recompute,
        };
        if let Some((out, leaf)) = tape.graph.take() {
            surrogate_backward(&[(&out, grad_output)])?;
            return Ok(Backward {
                grad_input: grad_or_zeros(&leaf),
                max_reconstruction_error: None,
            });
        }
        if tape.seeds.len() != self.layers.len() || tape.saved.len() != self.layers.len() {
            return Err(Error::ForeignTape(format!(
                "the tape holds {} layers but this stack has {}",
                tape.seeds.len(),
                self.layers.len()
            )));
        }
        let reversible = tape.options.strategy == Strategy::Reversible;
        let mut y = tape.output.detach();
        let mut gy = grad_output.detach();
        let mut max_err: Option<f64> = None;
        for i in (0..self.layers.len()).rev() {
            let call = BlockCall {
                ctx,
                seed: tape.seeds[i],
            };
            let stored = tape.saved[i].take();
            match (&self.layers[i], reversible, stored) {
                (Layer::Reversible(b), true, stored) => {
                    let (x, gx) = b.backward(&y, &gy, &call)?;
                    y = match stored {
                        Some(exact) => {
                            self.record_drift(i, &x, &exact, &mut max_err)?;
                            exact
                        }
                        None => x,
                    };
                    gy = gx;
                }
                (layer, _, Some(x)) => {
                    let leaf = x.detach().set_requires_grad(true);
                    let out = tch::with_grad(|| layer.forward(&leaf, &call))?;
                    if reversible && self.drift_tolerance.is_some() {
                        self.record_drift(i + 1, &y, &out.detach(), &mut max_err)?;
                    }
                    surrogate_backward(&[(&out, &gy)])?;
                    gy = grad_or_zeros(&leaf);
                    y = x;
                }
                (_, _, None) => {
                    return Err(Error::ForeignTape(format!("layer {i} has no stored input")));
                }
            }
        }
        Ok(Backward {
            grad_input: gy,
            max_reconstruction_error: max_err,
        })
    }

    fn record_drift(
        &self,
        layer: usize,
        reconstructed: &Tensor,
        exact: &Tensor,
        max_err: &mut Option<f64>,
    ) -> Result<()> {
        let Some(tol) = self.drift_tolerance else {
            return Ok(());
        };
        let err = tch::no_grad(|| -> Result<f64> {
            Ok(reconstructed
                .f_sub(exact)?
                .f_abs()?
                .f_max()?
                .f_double_value(&[])?)
        })?;
        *max_err = Some(max_err.map_or(err, |m| m.max(err)));
        if err.is_nan() || err > tol {
            return Err(Error::Drift {
                layer,
                error: err,
                tolerance: tol,
            });
        }
        Ok(())
    }
}
