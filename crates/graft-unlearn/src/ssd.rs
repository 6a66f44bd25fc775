//! Selective Synaptic Dampening (Foster, Schoepf and Brintrup, AAAI 2024)
//! and its label-free variant LFSSD: a retrain-free edit that shrinks the
//! parameters far more important to the forget set than to the training data.

use crate::dampen::{LayerDampening, check_constants, dampen_parameter};
use crate::importance::{
    ImportanceConfig, ImportanceLoss, ImportanceMode, Importances, importances,
};
use crate::params::trainable_parameters;
use crate::unlearner::{ForgetRequest, UnlearnReport, Unlearner};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Which training data the full-data importance `I_D` is taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FullData {
    /// `D = D_r ∪ D_f` (retain then forget, in order), as the SSD paper.
    RetainAndForget,
    /// `D_r` alone, as the corrective-unlearning benchmark runs SSD.
    RetainOnly,
}

/// SSD's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SsdConfig {
    /// Selection weighting α: entries with `I_f > α·I_D` are selected.
    pub alpha: f64,
    /// Dampening constant λ: selected entries are scaled by `min(λ·I_D/I_f, 1)`.
    pub lambda: f64,
    /// How importances are taken (batch or per-sample; cross-entropy or label-free).
    pub importance: ImportanceConfig,
    /// Parameter-name prefixes left alone (none by default: SSD edits every
    /// named parameter, biases and norm affines included).
    pub exclude: Vec<String>,
    /// The data `I_D` is taken over.
    pub full_data: FullData,
}

impl SsdConfig {
    /// SSD with α and λ, batch importances of batch size 64, every parameter.
    pub fn new(alpha: f64, lambda: f64) -> Self {
        Self {
            alpha,
            lambda,
            importance: ImportanceConfig::default(),
            exclude: Vec::new(),
            full_data: FullData::RetainAndForget,
        }
    }

    /// The label-free variant (LFSSD): importances of `‖logits‖²`, accumulating `|∇|`.
    pub fn label_free(mut self) -> Self {
        self.importance.loss = ImportanceLoss::LabelFree;
        self
    }

    /// Per-sample (true diagonal Fisher) instead of batch importances.
    pub fn per_sample(mut self) -> Self {
        self.importance.mode = ImportanceMode::PerSample;
        self
    }

    /// Leaves the parameters whose names start with `prefix` untouched.
    pub fn exclude(mut self, prefix: &str) -> Self {
        self.exclude.push(prefix.to_string());
        self
    }
}

/// What SSD did, parameter by parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SsdReport {
    /// The settings.
    pub config: SsdConfig,
    /// Per parameter: selected and dampened counts, factors.
    pub layers: Vec<LayerDampening>,
    /// Selected entries over all parameters.
    pub selected: i64,
    /// Entries over all edited parameters.
    pub entries: i64,
    /// Samples in `D_f`.
    pub forget_samples: usize,
    /// Samples `I_D` was taken over.
    pub full_samples: usize,
    /// Whether `I_D` was given (computed once at training time) rather than computed here.
    pub full_importance_given: bool,
    /// Set when `α ≥ |D|/|D_f|`: with per-sample importances over
    /// `D ⊇ D_f` no entry can then be selected (SSD is a no-op).
    pub warning: Option<String>,
    /// Seconds spent on importances.
    pub importance_s: f64,
    /// Seconds spent selecting and dampening.
    pub dampen_s: f64,
}

/// SSD as an [`Unlearner`], optionally with a stored full-data importance.
#[derive(Debug)]
pub struct Ssd {
    /// The settings.
    pub config: SsdConfig,
    full: Option<Importances>,
}

impl Ssd {
    /// SSD with `config` (α and λ are checked here).
    pub fn new(config: SsdConfig) -> Result<Self> {
        check_constants(config.alpha, config.lambda)?;
        if config.importance.batch_size == 0 {
            return Err(Error::option("batch_size", 0, "must be positive"));
        }
        Ok(Self { config, full: None })
    }

    /// Uses `full` as `I_D` instead of computing it (it depends only on the
    /// trained model, so it can be computed once at training time and saved
    /// with [`crate::importance::save_importances`]).
    pub fn with_full_importance(mut self, full: Importances) -> Self {
        self.full = Some(full);
        self
    }

    /// Computes the importances and dampens `request`'s model in place.
    /// Returns the report and the two importances (`I_D`, `I_f`).
    pub fn run(
        &self,
        request: &ForgetRequest<'_>,
    ) -> Result<(SsdReport, Importances, Importances)> {
        if request.forget.is_empty() {
            return Err(Error::data(&request.forget.name, "the forget set is empty"));
        }
        let cfg = &self.config;
        let started = Instant::now();
        let forget = importances(
            request.model,
            request.vs,
            request.forget,
            &cfg.exclude,
            &cfg.importance,
        )?;
        let (full, given) = match &self.full {
            Some(stored) => (stored.shallow_clone(), true),
            None => {
                let data = match cfg.full_data {
                    FullData::RetainAndForget => {
                        request.retain.concat(request.forget, "retain+forget")?
                    }
                    FullData::RetainOnly => request.retain.clone(),
                };
                (
                    importances(
                        request.model,
                        request.vs,
                        &data,
                        &cfg.exclude,
                        &cfg.importance,
                    )?,
                    false,
                )
            }
        };
        let importance_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let layers = dampen_model(
            request.vs,
            &cfg.exclude,
            &full,
            &forget,
            cfg.alpha,
            cfg.lambda,
        )?;
        let dampen_s = started.elapsed().as_secs_f64();
        let bound = full.samples as f64 / forget.samples as f64;
        let warning = (cfg.alpha >= bound && cfg.full_data == FullData::RetainAndForget && cfg.alpha.is_finite()).then(|| {
            let w = format!(
                "alpha = {} >= |D|/|D_f| = {}/{} = {bound:.3}: with per-sample importances SSD selects nothing; lower alpha",
                cfg.alpha, full.samples, forget.samples
            );
            tracing::warn!("{w}");
            w
        });
        let report = SsdReport {
            config: cfg.clone(),
            selected: layers.iter().map(|l| l.selected).sum(),
            entries: layers.iter().map(|l| l.entries).sum(),
            layers,
            forget_samples: forget.samples,
            full_samples: full.samples,
            full_importance_given: given,
            warning,
            importance_s,
            dampen_s,
        };
        Ok((report, full, forget))
    }
}

/// SSD's second step on a whole model: selects and dampens every trainable
/// parameter of `vs` not in `exclude`, in place, from given importances
/// (checked against the parameters first, so a mismatch changes nothing).
/// Use it to sweep α and λ over importances computed once.
pub fn dampen_model(
    vs: &graft_tensor::tch::nn::VarStore,
    exclude: &[String],
    full: &Importances,
    forget: &Importances,
    alpha: f64,
    lambda: f64,
) -> Result<Vec<LayerDampening>> {
    check_constants(alpha, lambda)?;
    let params = trainable_parameters(vs, exclude);
    full.check(&params)?;
    forget.check(&params)?;
    let mut layers = Vec::with_capacity(params.len());
    for (name, mut p) in params {
        let device = p.device();
        let i_d = full.tensors[&name].f_to_device(device)?;
        let i_f = forget.tensors[&name].f_to_device(device)?;
        layers.push(dampen_parameter(&name, &mut p, &i_d, &i_f, alpha, lambda)?);
    }
    Ok(layers)
}

impl Unlearner for Ssd {
    fn name(&self) -> String {
        let c = &self.config;
        let variant = match c.importance.loss {
            ImportanceLoss::CrossEntropy => "ssd",
            ImportanceLoss::LabelFree => "lfssd",
        };
        let mode = match c.importance.mode {
            ImportanceMode::Batch => "batch",
            ImportanceMode::PerSample => "per-sample",
        };
        format!("{variant}(alpha={}, lambda={}, {mode})", c.alpha, c.lambda)
    }

    fn unlearn(&self, request: &ForgetRequest<'_>) -> Result<UnlearnReport> {
        let started = Instant::now();
        let (report, _, _) = self.run(request)?;
        Ok(UnlearnReport::since(
            self.name(),
            started,
            serde_json::to_value(&report).unwrap_or_default(),
        ))
    }
}
