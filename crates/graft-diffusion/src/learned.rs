//! A small learned denoiser (spec §7.6): an MLP on `[x_t, condition, 16
//! sinusoidal features of λ_t]` trained with an ε-, x0- or v-prediction MSE,
//! usable as a [`Model`] by every sampler.

use crate::model::Model;
use crate::param::Parameterization;
use crate::process::Process;
use crate::{Error, Result};
use graft_tensor::tch::nn::{self, Module, OptimizerConfig};
use graft_tensor::tch::{Device, Kind, Tensor};
use std::sync::Arc;

/// The MLP's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MlpShape {
    /// Data dimension d (input and output).
    pub dim: i64,
    /// Condition dimension (0: unconditional).
    pub cond_dim: i64,
    /// Hidden width.
    pub hidden: i64,
    /// Hidden layers.
    pub layers: usize,
}

/// Where a denoiser's training stands, after each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainProgress {
    /// Steps done.
    pub step: usize,
    /// Steps in all.
    pub steps: usize,
    /// The batch loss, every 100 steps and at the last.
    pub loss: Option<f64>,
}

/// How to train.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainSpec {
    /// Adam steps.
    pub steps: usize,
    /// Batch size.
    pub batch: i64,
    /// Learning rate.
    pub lr: f64,
    /// Training times are uniform on [t_lo, t_hi].
    pub t_lo: f64,
    /// Upper end of the training times.
    pub t_hi: f64,
}

/// An MLP denoiser with SiLU activations, f32, on the CPU.
pub struct MlpDenoiser {
    vs: nn::VarStore,
    net: nn::Sequential,
    shape: MlpShape,
    param: Parameterization,
    process: Arc<dyn Process>,
    cond: Option<Tensor>,
}

impl std::fmt::Debug for MlpDenoiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlpDenoiser")
            .field("shape", &self.shape)
            .field("param", &self.param)
            .field("conditioned", &self.cond.is_some())
            .finish()
    }
}

const FREQS: usize = 8;

/// Inputs the MLP adds for the time (sine and cosine features).
pub const TIME_FEATURES: i64 = 2 * FREQS as i64;

/// 16 sinusoidal features of λ (frequencies 2^k/8, k = 0..8), `[n, 16]` f32.
fn embed(lams: &[f64]) -> Tensor {
    let mut v = Vec::with_capacity(lams.len() * 2 * FREQS);
    for &l in lams {
        for k in 0..FREQS {
            v.push((l * 2f64.powi(k as i32 - 3)).sin() as f32);
        }
        for k in 0..FREQS {
            v.push((l * 2f64.powi(k as i32 - 3)).cos() as f32);
        }
    }
    Tensor::from_slice(&v).reshape([lams.len() as i64, 2 * FREQS as i64])
}

impl MlpDenoiser {
    /// A freshly initialised network (libtorch's generator seeded with `seed`).
    pub fn new(
        process: Arc<dyn Process>,
        shape: MlpShape,
        param: Parameterization,
        seed: u64,
    ) -> Self {
        graft_tensor::tch::manual_seed(seed as i64);
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let mut net = nn::seq();
        let mut width = shape.dim + shape.cond_dim + 2 * FREQS as i64;
        for i in 0..shape.layers {
            net = net
                .add(nn::linear(
                    &root / format!("l{i}"),
                    width,
                    shape.hidden,
                    Default::default(),
                ))
                .add_fn(|x| x.silu());
            width = shape.hidden;
        }
        net = net.add(nn::linear(
            &root / "out",
            width,
            shape.dim,
            Default::default(),
        ));
        Self {
            vs,
            net,
            shape,
            param,
            process,
            cond: None,
        }
    }

    /// The network's shape.
    pub fn shape(&self) -> MlpShape {
        self.shape
    }

    /// The process it was built for.
    pub fn process(&self) -> &Arc<dyn Process> {
        &self.process
    }

    /// Its weights.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Its weights, to load into.
    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    /// Sets the condition (e.g. the degraded images μ, `[n, cond_dim]`) used by `eval`.
    pub fn set_condition(&mut self, cond: Option<Tensor>) {
        self.cond = cond;
    }

    /// The condition `eval` uses, if set.
    pub fn condition(&self) -> Option<&Tensor> {
        self.cond.as_ref()
    }

    /// Replaces the process (e.g. the same schedule with a per-sample μ).
    pub fn set_process(&mut self, process: Arc<dyn Process>) {
        self.process = process;
    }

    fn forward(&self, x: &Tensor, lams: &[f64], cond: Option<&Tensor>) -> Result<Tensor> {
        let xs = x.size();
        if xs.len() != 2 || xs[1] != self.shape.dim {
            return Err(Error::ShapeMismatch {
                what: "denoiser input x [n, dim]",
                expected: vec![-1, self.shape.dim],
                actual: xs,
            });
        }
        let n = xs[0];
        let mut emb = embed(lams);
        if lams.len() == 1 {
            emb = emb.expand([n, 2 * FREQS as i64], false);
        }
        let mut parts = vec![x.to_kind(Kind::Float)];
        if self.shape.cond_dim > 0 {
            let c = cond.ok_or_else(|| Error::Config("this denoiser needs a condition".into()))?;
            if c.size() != [n, self.shape.cond_dim] {
                return Err(Error::ShapeMismatch {
                    what: "denoiser condition [n, cond_dim]",
                    expected: vec![n, self.shape.cond_dim],
                    actual: c.size(),
                });
            }
            parts.push(c.to_kind(Kind::Float));
        }
        parts.push(emb);
        Ok(self.net.forward(&Tensor::f_cat(&parts, 1)?))
    }

    /// Trains on clean data `x0` `[N, d]` (with per-example conditions `cond`,
    /// which are also the μ of the mean-reverting process when `cond_is_mu`).
    /// Returns the loss every 100 steps.
    pub fn train(
        &mut self,
        x0: &Tensor,
        cond: Option<&Tensor>,
        cond_is_mu: bool,
        spec: TrainSpec,
        seed: u64,
    ) -> Result<Vec<f64>> {
        self.train_with_progress(x0, cond, cond_is_mu, spec, seed, &mut |_| {})
    }

    /// [`train`](Self::train), calling `progress` after every step (the
    /// library draws nothing).
    pub fn train_with_progress(
        &mut self,
        x0: &Tensor,
        cond: Option<&Tensor>,
        cond_is_mu: bool,
        spec: TrainSpec,
        seed: u64,
        progress: &mut dyn FnMut(TrainProgress),
    ) -> Result<Vec<f64>> {
        let mut rng = crate::noise::seeded_rng(seed);
        let mut opt = nn::Adam::default().build(&self.vs, spec.lr)?;
        let n = x0.size()[0];
        let x0 = x0.to_kind(Kind::Double);
        let mut losses = Vec::new();
        let mu_fixed = self.process.mu().map(|m| m.to_kind(Kind::Double));
        for step in 0..spec.steps {
            let idx: Vec<i64> = (0..spec.batch)
                .map(|_| rand::Rng::random_range(&mut rng, 0..n))
                .collect();
            let idx = Tensor::from_slice(&idx);
            let xb = x0.index_select(0, &idx);
            let cb = cond.map(|c| c.index_select(0, &idx).to_kind(Kind::Double));
            let ts: Vec<f64> = (0..spec.batch)
                .map(|_| rand::Rng::random_range(&mut rng, spec.t_lo..spec.t_hi))
                .collect();
            let col = |f: &dyn Fn(f64) -> f64| {
                Tensor::from_slice(&ts.iter().map(|&t| f(t)).collect::<Vec<_>>()).unsqueeze(1)
            };
            let (a, s) = (
                col(&|t| self.process.alpha(t)),
                col(&|t| self.process.sigma(t)),
            );
            let eps = crate::noise::normal_like(&mut rng, &xb)?;
            let mu = match (&cb, cond_is_mu, &mu_fixed) {
                (Some(c), true, _) => c.shallow_clone(),
                (_, _, Some(m)) => m.unsqueeze(0).expand_as(&xb),
                _ => xb.zeros_like(),
            };
            let xt = &xb * &a + &mu * (1.0 - &a) + &eps * &s;
            let lams: Vec<f64> = ts.iter().map(|&t| self.process.lambda(t)).collect();
            let out = self.forward(&xt, &lams, cb.as_ref())?;
            let target = match self.param {
                Parameterization::Noise => eps,
                Parameterization::Data => xb.shallow_clone(),
                Parameterization::Velocity => {
                    let si = self.process.sigma_inf();
                    &eps * &a * si - (&xb - &mu) * &s / si
                }
                Parameterization::Score => &eps * (-1.0) / &s,
            };
            let loss = (out - target.to_kind(Kind::Float))
                .square()
                .mean(Kind::Float);
            opt.backward_step(&loss);
            let mut reported = None;
            if step % 100 == 0 || step + 1 == spec.steps {
                let l = loss.double_value(&[]);
                reported = Some(l);
                losses.push(l);
            }
            progress(TrainProgress {
                step: step + 1,
                steps: spec.steps,
                loss: reported,
            });
        }
        tracing::debug!(
            steps = spec.steps,
            final_loss = losses.last().copied().unwrap_or(f64::NAN),
            "denoiser trained"
        );
        Ok(losses)
    }
}

impl Model for MlpDenoiser {
    fn parameterization(&self) -> Parameterization {
        self.param
    }
    fn eval(&self, x: &Tensor, t: f64) -> Result<Tensor> {
        let _guard = graft_tensor::tch::no_grad_guard();
        let out = self.forward(x, &[self.process.lambda(t)], self.cond.as_ref())?;
        Ok(out.to_kind(x.kind()))
    }
}
