//! Building a [`MergeConfig`] in Rust, without YAML:
//! `MergeConfig::new(Method::Ties, Some(base)).model(a, 1.0).density(0.5)`.

use crate::config::{MergeConfig, ModelSpec, Scope};
use crate::dtype::DType;
use crate::param::Param;
use crate::types::{MergeParams, Method};
use crate::{Error, Result};
use std::path::PathBuf;

impl MergeConfig {
    /// A configuration for `method` over `base` (`None` for `linear`, which
    /// needs none), with no models yet, mergekit's defaults and per-tensor scope.
    pub fn new(method: Method, base: Option<PathBuf>) -> Self {
        Self {
            method,
            base_model: base,
            models: Vec::new(),
            params: MergeParams::default(),
            scope: Scope::Tensor,
            dtype: None,
            out_dtype: None,
            lambda: None,
        }
    }

    /// Adds a model with weight `weight` (density 1).
    pub fn model(mut self, path: impl Into<PathBuf>, weight: f64) -> Self {
        self.models.push(ModelSpec {
            path: path.into(),
            weight: Param::Scalar(weight),
            density: Param::Scalar(1.0),
        });
        self
    }

    /// Adds a model with per-tensor weight and density ([`Param`]: gradients, filters).
    pub fn model_spec(mut self, spec: ModelSpec) -> Self {
        self.models.push(spec);
        self
    }

    /// Sets the density (TIES keep fraction, DARE keep probability) of the
    /// model added last.
    pub fn density(mut self, density: f64) -> Self {
        if let Some(m) = self.models.last_mut() {
            m.density = Param::Scalar(density);
        }
        self
    }

    /// Sets λ, normalisation, rescaling, the vote, compatibility and the seed.
    pub fn params(mut self, params: MergeParams) -> Self {
        self.params = params;
        self
    }

    /// Sets the scope of the methods' statistics.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Sets the dtype merged float tensors are written in.
    pub fn out_dtype(mut self, dtype: DType) -> Self {
        self.out_dtype = Some(dtype);
        self
    }

    /// Checks what the YAML reader checks: at least one model, each listed
    /// once, and a base for every method but `linear`. [`crate::files::run_merge`]
    /// calls it, so a configuration built by hand gets the same errors.
    pub fn validate(&self) -> Result<()> {
        self.check("<config>")
    }

    /// [`validate`](Self::validate), naming `origin` (the YAML file) in errors.
    pub(crate) fn check(&self, origin: &str) -> Result<()> {
        let err = |key: &str, reason: String| Error::Config {
            origin: origin.into(),
            key: key.into(),
            reason,
        };
        if self.models.is_empty() {
            return Err(err("models", "no models to merge".into()));
        }
        let mut seen = std::collections::HashMap::with_capacity(self.models.len());
        for (i, m) in self.models.iter().enumerate() {
            if let Some(first) = seen.insert(&m.path, i) {
                return Err(err(
                    &format!("models[{i}].model"),
                    format!(
                        "`{}` is already models[{first}]; list each model once",
                        m.path.display()
                    ),
                ));
            }
        }
        if self.base_model.is_none() && self.method != Method::Linear {
            return Err(err(
                "base_model",
                format!(
                    "`{}` merges deltas from a base model; set `base_model`",
                    self.method.name()
                ),
            ));
        }
        Ok(())
    }
}
