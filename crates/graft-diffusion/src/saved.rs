//! Saved denoisers: a directory with `config.json` (what the network is,
//! which process it was trained for, its sampling range) and
//! `model.safetensors` (its weights, and the process's μ if it has one), so
//! `graft sample --model DIR` can sample a trained network.
//!
//! ```text
//! {"format": "graft-mlp-denoiser", "version": 1,
//!  "shape": {"dim": 2, "cond_dim": 0, "hidden": 128, "layers": 3},
//!  "parameterization": "noise",
//!  "process": {"kind": "mean_reverting_cosine", "eps": 0.005, "sigma_inf": 1.0},
//!  "t_start": 1.0, "t_end": 0.001, "lambda_min": null}
//! ```
//!
//! A conditional network (`cond_dim > 0`) also records how its condition is
//! used, e.g. the L2 digits restorer, whose condition is the degraded image
//! and, per sample, the μ its mean-reverting process reverts to:
//!
//! ```text
//!  "condition": {"dim": 64, "is_process_mean": true}
//! ```
//!
//! The field is optional (absent: unconditional), so files written before it
//! existed load unchanged. A process-mean condition is not stored with the
//! network: [`bind_condition`] rebuilds the process with μ = the condition.

use crate::learned::{MlpDenoiser, MlpShape};
use crate::param::Parameterization;
use crate::process::{Edm, MeanReverting, Process, TableKind, ThetaSchedule, ThetaTable, Ve};
use crate::{Error, Result};
use graft_tensor::atomic::StagingDir;
use graft_tensor::safetensors::Checkpoint;
use graft_tensor::tch::{Kind, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The `format` of a saved denoiser's `config.json`.
pub const FORMAT: &str = "graft-mlp-denoiser";
/// The version this crate writes and reads.
pub const VERSION: u32 = 1;
/// The weights' file in a saved denoiser's directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The configuration's file in a saved denoiser's directory.
pub const CONFIG_FILE: &str = "config.json";
/// The tensor holding the process's μ in the weights' file.
pub const MU_TENSOR: &str = "process.mu";

/// The largest data or condition dimension a saved denoiser may declare.
pub const MAX_DIM: i64 = 1 << 20;
/// The largest hidden width a saved denoiser may declare.
pub const MAX_HIDDEN: i64 = 1 << 16;
/// The most hidden layers a saved denoiser may declare.
pub const MAX_LAYERS: usize = 256;
/// The most parameters a saved denoiser may declare (1 GiB of f32).
pub const MAX_PARAMS: u64 = 1 << 28;
/// The most steps of a discrete θ table.
pub const MAX_TABLE_STEPS: usize = 1 << 20;

/// A process as a saved configuration names it (its μ is stored as a tensor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProcessSpec {
    /// [`MeanReverting`] on the reference discrete θ table.
    MeanRevertingTable {
        /// Which table.
        table: TableKind,
        /// T.
        steps: usize,
        /// α_T.
        eps: f64,
        /// σ∞.
        sigma_inf: f64,
    },
    /// [`MeanReverting::continuous_cosine`].
    MeanRevertingCosine {
        /// α_1.
        eps: f64,
        /// σ∞.
        sigma_inf: f64,
    },
    /// [`MeanReverting::vp`].
    Vp,
    /// [`Ve`].
    Ve {
        /// σ at t = 0.
        sigma_min: f64,
        /// σ at t = 1.
        sigma_max: f64,
    },
    /// [`Edm`].
    Edm {
        /// The largest σ (= t).
        sigma_max: f64,
    },
}

impl ProcessSpec {
    /// Builds the process, mean-reverting ones towards `mu`.
    pub fn build(&self, mu: Option<Tensor>) -> Result<Arc<dyn Process>> {
        Ok(match *self {
            Self::MeanRevertingTable {
                table,
                steps,
                eps,
                sigma_inf,
            } => Arc::new(MeanReverting::new(
                ThetaSchedule::Table(ThetaTable::new(table, steps, eps)?),
                sigma_inf,
                mu,
            )?),
            Self::MeanRevertingCosine { eps, sigma_inf } => {
                Arc::new(MeanReverting::continuous_cosine(eps, sigma_inf, mu)?)
            }
            Self::Vp => Arc::new(MeanReverting::vp()),
            Self::Ve {
                sigma_min,
                sigma_max,
            } => Arc::new(Ve::new(sigma_min, sigma_max)?),
            Self::Edm { sigma_max } => Arc::new(Edm { sigma_max }),
        })
    }
}

/// How a conditional network's condition is used (`config.json`'s `condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionSpec {
    /// The condition's dimension (equal to the shape's `cond_dim`).
    pub dim: i64,
    /// Whether the condition is also, per sample, the μ of the
    /// mean-reverting process (restoration: μ is the degraded input).
    pub is_process_mean: bool,
}

/// A saved denoiser's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedConfig {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] when written by this crate.
    pub version: u32,
    /// The network.
    pub shape: MlpShape,
    /// What it predicts.
    pub parameterization: Parameterization,
    /// The process it was trained for.
    pub process: ProcessSpec,
    /// Where sampling starts (the largest training time).
    pub t_start: f64,
    /// Where sampling stops.
    pub t_end: f64,
    /// λ_min for uniform-λ grids, if the process wants one.
    pub lambda_min: Option<f64>,
    /// How the condition is used (`None`: unconditional, or a file written
    /// before this field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<ConditionSpec>,
}

impl SavedConfig {
    /// A configuration for `shape`, `parameterization` and `process`, sampled over `[t_end, t_start]`.
    pub fn new(
        shape: MlpShape,
        parameterization: Parameterization,
        process: ProcessSpec,
        t_start: f64,
        t_end: f64,
    ) -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
            shape,
            parameterization,
            process,
            t_start,
            t_end,
            lambda_min: None,
            condition: None,
        }
    }

    /// The same configuration for a conditional network used as `condition` says.
    pub fn with_condition(mut self, condition: ConditionSpec) -> Self {
        self.condition = Some(condition);
        self
    }

    /// Whether the condition is the process's per-sample μ.
    pub fn condition_is_process_mean(&self) -> bool {
        self.condition.is_some_and(|c| c.is_process_mean)
    }

    /// The network's parameter tensors, `(name, shape)`, in layer order.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let s = self.shape;
        let mut width = (s.dim + s.cond_dim + crate::learned::TIME_FEATURES) as usize;
        let mut out = Vec::with_capacity(2 * s.layers + 2);
        for i in 0..s.layers {
            out.push((format!("l{i}.weight"), vec![s.hidden as usize, width]));
            out.push((format!("l{i}.bias"), vec![s.hidden as usize]));
            width = s.hidden as usize;
        }
        out.push(("out.weight".into(), vec![s.dim as usize, width]));
        out.push(("out.bias".into(), vec![s.dim as usize]));
        out
    }

    /// Checks every value before anything is allocated from it: sizes
    /// positive and bounded ([`MAX_DIM`], [`MAX_HIDDEN`], [`MAX_LAYERS`],
    /// [`MAX_PARAMS`]), times and process constants finite and in range, and
    /// the condition consistent with the shape and the process.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let s = self.shape;
        if !(1..=MAX_DIM).contains(&s.dim) {
            return Err(format!("shape.dim = {} must lie in 1..={MAX_DIM}", s.dim));
        }
        if !(0..=MAX_DIM).contains(&s.cond_dim) {
            return Err(format!(
                "shape.cond_dim = {} must lie in 0..={MAX_DIM}",
                s.cond_dim
            ));
        }
        if !(1..=MAX_HIDDEN).contains(&s.hidden) {
            return Err(format!(
                "shape.hidden = {} must lie in 1..={MAX_HIDDEN}",
                s.hidden
            ));
        }
        if !(1..=MAX_LAYERS).contains(&s.layers) {
            return Err(format!(
                "shape.layers = {} must lie in 1..={MAX_LAYERS}",
                s.layers
            ));
        }
        let params: u64 = self
            .parameter_shapes()
            .iter()
            .map(|(_, shape)| shape.iter().map(|&d| d as u64).product::<u64>())
            .sum();
        if params > MAX_PARAMS {
            return Err(format!(
                "the shape declares {params} parameters, more than the {MAX_PARAMS} a saved denoiser may hold"
            ));
        }
        let finite_pos = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("process.{name} = {v} must be positive and finite"))
            }
        };
        let below_one = |eps: f64| {
            if eps < 1.0 {
                Ok(())
            } else {
                Err(format!(
                    "process.eps = {eps} (α at t_start) must lie in (0, 1)"
                ))
            }
        };
        match self.process {
            ProcessSpec::MeanRevertingTable {
                steps,
                eps,
                sigma_inf,
                ..
            } => {
                if !(1..=MAX_TABLE_STEPS).contains(&steps) {
                    return Err(format!(
                        "process.steps = {steps} must lie in 1..={MAX_TABLE_STEPS}"
                    ));
                }
                finite_pos("eps", eps)?;
                finite_pos("sigma_inf", sigma_inf)?;
                below_one(eps)?;
            }
            ProcessSpec::MeanRevertingCosine { eps, sigma_inf } => {
                finite_pos("eps", eps)?;
                finite_pos("sigma_inf", sigma_inf)?;
                below_one(eps)?;
            }
            ProcessSpec::Vp => {}
            ProcessSpec::Ve {
                sigma_min,
                sigma_max,
            } => {
                finite_pos("sigma_min", sigma_min)?;
                finite_pos("sigma_max", sigma_max)?;
                if sigma_min >= sigma_max {
                    return Err(format!(
                        "process.sigma_min = {sigma_min} must be below sigma_max = {sigma_max}"
                    ));
                }
            }
            ProcessSpec::Edm { sigma_max } => finite_pos("sigma_max", sigma_max)?,
        }
        if !(self.t_start.is_finite() && self.t_end.is_finite() && self.t_end >= 0.0)
            || self.t_start <= self.t_end
        {
            return Err(format!(
                "t_start = {} and t_end = {} must be finite with t_start > t_end >= 0",
                self.t_start, self.t_end
            ));
        }
        if let Some(l) = self.lambda_min
            && !l.is_finite()
        {
            return Err(format!("lambda_min = {l} must be finite"));
        }
        self.check_condition()
    }

    /// Parses and validates a `config.json` text; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &Path) -> Result<Self> {
        let bad = |e: String| Error::Config(format!("{}: {e}", origin.display()));
        let config: SavedConfig = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if config.format != FORMAT || config.version != VERSION {
            return Err(bad(format!(
                "format `{}` version {} is not a saved graft denoiser (expected `{FORMAT}` version {VERSION})",
                config.format, config.version
            )));
        }
        config.validate().map_err(bad)?;
        Ok(config)
    }

    /// Checks that `condition` agrees with the shape and the process.
    fn check_condition(&self) -> std::result::Result<(), String> {
        let Some(c) = self.condition else {
            return Ok(());
        };
        if c.dim != self.shape.cond_dim || c.dim < 1 {
            return Err(format!(
                "the condition's dimension {} is not the network's cond_dim {} (a condition needs cond_dim >= 1)",
                c.dim, self.shape.cond_dim
            ));
        }
        if c.is_process_mean {
            if c.dim != self.shape.dim {
                return Err(format!(
                    "a process-mean condition must have the data dimension {}, not {}",
                    self.shape.dim, c.dim
                ));
            }
            if !matches!(
                self.process,
                ProcessSpec::MeanRevertingTable { .. } | ProcessSpec::MeanRevertingCosine { .. }
            ) {
                return Err(format!(
                    "a process-mean condition needs a mean-reverting process, not {:?}",
                    self.process
                ));
            }
        }
        Ok(())
    }
}

/// Writes `net` and `config` into the directory `dir`, atomically (built
/// beside it, renamed into place only when complete).
pub fn save(net: &MlpDenoiser, config: &SavedConfig, dir: &Path) -> Result<()> {
    if config.shape != net.shape() {
        return Err(Error::Config(format!(
            "the configuration's shape {:?} is not the network's {:?}",
            config.shape,
            net.shape()
        )));
    }
    if config.shape.cond_dim > 0 && config.condition.is_none() {
        return Err(Error::Config(format!(
            "the network is conditional (cond_dim {}): its configuration must say how the condition is used (SavedConfig::with_condition)",
            config.shape.cond_dim
        )));
    }
    config.validate().map_err(Error::Config)?;
    // A library save replaces an earlier save (never a directory holding other files).
    let rules = graft_tensor::output::OutputRules::new().force(true);
    let staging = StagingDir::create(dir, &rules, "graft_diffusion::saved::save")?;
    let mut tensors = graft_nn::models::varstore_tensors(net.var_store());
    // A process-mean condition is per-sample data, not part of the model.
    if let (Some(mu), false) = (net.process().mu(), config.condition_is_process_mean()) {
        tensors.push((MU_TENSOR.into(), mu.to_kind(Kind::Double)));
    }
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    graft_tensor::safetensors::save(
        staging.path().join(WEIGHTS_FILE),
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        &meta,
    )?;
    let json = serde_json::to_string_pretty(config)
        .map_err(|e| Error::Config(format!("cannot serialise the configuration: {e}")))?;
    graft_tensor::atomic::write_atomic(staging.path().join(CONFIG_FILE), json.as_bytes())?;
    staging.commit()?;
    Ok(())
}

/// Reads a denoiser saved by [`save`]: the network, ready to sample, and its configuration.
///
/// Everything is checked before it is used: the configuration's values
/// ([`SavedConfig::validate`]), then every weight's name, dtype and shape
/// against the configuration (before the network is allocated), μ's
/// length, and that every weight and μ is finite.
pub fn load(dir: &Path) -> Result<(MlpDenoiser, SavedConfig)> {
    let config_path = dir.join(CONFIG_FILE);
    let text = graft_tensor::input::read_text(&config_path, 1 << 20)?;
    let config = SavedConfig::from_json(&text, &config_path)?;
    let weights = dir.join(WEIGHTS_FILE);
    let ckpt = Checkpoint::open(&weights)?;
    let bad = |e: String| Error::Config(format!("{}: {e}", weights.display()));
    for (name, shape) in config.parameter_shapes() {
        let spec = ckpt.spec(&name).map_err(|_| {
            bad(format!(
                "no tensor `{name}`, which {} (shape {:?}) needs",
                config_path.display(),
                config.shape
            ))
        })?;
        if spec.shape != shape || spec.dtype != graft_tensor::safetensors::Dtype::F32 {
            return Err(bad(format!(
                "tensor `{name}` is {:?} {:?}; {} needs F32 {shape:?}",
                spec.dtype,
                spec.shape,
                config_path.display()
            )));
        }
    }
    let mu = if config.condition_is_process_mean() {
        None // bound per sample by `bind_condition`
    } else if ckpt.contains(MU_TENSOR) {
        let spec = ckpt.spec(MU_TENSOR)?;
        let dim = config.shape.dim as usize;
        if spec.shape != [dim] && spec.shape != [1, dim] {
            return Err(bad(format!(
                "`{MU_TENSOR}` has shape {:?}; the data dimension is {dim}, so it must be [{dim}]",
                spec.shape
            )));
        }
        let mu = ckpt.tensor(MU_TENSOR)?;
        check_finite(&mu, MU_TENSOR).map_err(bad)?;
        Some(mu)
    } else {
        None
    };
    let process = config.process.build(mu)?;
    let mut net = MlpDenoiser::new(process, config.shape, config.parameterization, 0);
    graft_nn::models::load_varstore(net.var_store_mut(), &weights)?;
    for (name, var) in net.var_store().variables() {
        check_finite(&var, &name).map_err(bad)?;
    }
    Ok((net, config))
}

/// An error naming `name` when `t` holds a NaN or an infinity.
fn check_finite(t: &Tensor, name: &str) -> std::result::Result<(), String> {
    let bad = t
        .f_isfinite()
        .and_then(|f| f.f_logical_not())
        .and_then(|f| f.f_sum(Kind::Int64))
        .map(|n| n.int64_value(&[]))
        .map_err(|e| format!("`{name}`: {e}"))?;
    if bad > 0 {
        return Err(format!(
            "`{name}` holds {bad} non-finite value(s) (NaN or infinity); the model cannot be sampled"
        ));
    }
    Ok(())
}

/// Binds a loaded conditional denoiser to its conditions for `n` samples:
/// `cond` is `[n, dim]`, or `[dim]` broadcast to `n` rows. The network is then
/// evaluated with them and, when the condition is the process mean, its
/// process is rebuilt with μ = the conditions (so samplers and the prior
/// `μ + σ∞ z` use them). Returns the conditions as `[n, dim]` f64.
///
/// Errors: an unconditional network, a conditional one whose configuration
/// does not say how the condition is used, a wrong shape or dimension, or a
/// row count other than `n`.
pub fn bind_condition(
    net: &mut MlpDenoiser,
    config: &SavedConfig,
    cond: &Tensor,
    n: usize,
) -> Result<Tensor> {
    let dim = config.shape.cond_dim;
    if dim == 0 {
        return Err(Error::Config(
            "this denoiser is unconditional (cond_dim 0): it takes no condition".into(),
        ));
    }
    let Some(spec) = config.condition else {
        return Err(Error::Config(format!(
            "this denoiser is conditional (cond_dim {dim}) but its config.json has no `condition` saying how the condition is used"
        )));
    };
    let size = cond.size();
    let rows = match size.as_slice() {
        [d] if *d == dim => cond.unsqueeze(0).expand([n as i64, dim], false),
        [m, d] if *d == dim && *m == n as i64 => cond.shallow_clone(),
        [m, d] if *d == dim => {
            return Err(Error::Config(format!(
                "the condition has {m} rows but {n} samples were asked for"
            )));
        }
        _ => {
            return Err(Error::Config(format!(
                "the condition has shape {size:?}; this denoiser needs [n, {dim}] or [{dim}]"
            )));
        }
    };
    let rows = rows.to_kind(Kind::Double).contiguous();
    if rows.isfinite().all().int64_value(&[]) != 1 {
        return Err(Error::Config("the condition has non-finite values".into()));
    }
    if spec.is_process_mean {
        net.set_process(config.process.build(Some(rows.shallow_clone()))?);
    }
    net.set_condition(Some(rows.to_kind(Kind::Float)));
    Ok(rows)
}
