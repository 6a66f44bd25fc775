//! [`PeftModel`]: named adapters over a model's adaptable [`Layers`], as
//! Hugging Face PEFT's `PeftModel` (add, activate, delete, disable in a
//! scope, merge, unmerge, merge-and-unload, unload, trainable counts).

use crate::adapter::Adapter;
use crate::config::LoraConfig;
use crate::registry::{Layers, Shared};
use crate::targets::{Selection, rank_and_alpha, select};
use crate::wrapped::AdaptedLayer;
use crate::{Error, Result};
use graft_tensor::tch::{Device, Tensor, nn};
use std::sync::MutexGuard;

/// The prefix PEFT puts before every module path in adapter files.
pub const KEY_PREFIX: &str = "base_model.model.";

/// Adapters over the adaptable layers of one model.
#[derive(Debug)]
pub struct PeftModel {
    layers: Layers,
    adapters: Vec<(String, LoraConfig)>,
    active: Vec<String>,
    store: nn::VarStore,
    base_params: i64,
    exact: bool,
}

/// Parameter counts, as PEFT's `print_trainable_parameters` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterCount {
    /// Scalars that train (the active adapters and their `modules_to_save` copies).
    pub trainable: i64,
    /// Every scalar: the base model's and every adapter's.
    pub total: i64,
}

impl std::fmt::Display for ParameterCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trainable params: {} || all params: {} || trainable%: {:.4}",
            self.trainable,
            self.total,
            100.0 * self.trainable as f64 / self.total.max(1) as f64
        )
    }
}

pub(crate) fn write_lock(layer: &Shared) -> MutexGuard<'_, AdaptedLayer> {
    layer.lock().unwrap_or_else(|p| p.into_inner())
}

impl PeftModel {
    /// Adapters over the `layers` of the model whose parameters are in `vs`.
    /// Freezes `vs`: from now on only adapter tensors train.
    pub fn new(vs: &mut nn::VarStore, layers: &Layers) -> Self {
        vs.freeze();
        let base_params = vs.variables().values().map(|t| t.numel() as i64).sum();
        Self {
            layers: layers.clone(),
            adapters: Vec::new(),
            active: Vec::new(),
            store: nn::VarStore::new(vs.device()),
            base_params,
            exact: true,
        }
    }

    /// The model's adaptable layers.
    pub fn layers(&self) -> &Layers {
        &self.layers
    }

    /// Whether `unmerge` restores weights bit for bit (default) by keeping,
    /// at each merge, the entries a plain inverse would get wrong (spec §7).
    pub fn set_exact_unmerge(&mut self, exact: bool) {
        self.exact = exact;
    }

    /// The adapters, in the order they were added.
    pub fn adapter_names(&self) -> Vec<&str> {
        self.adapters.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The configuration of adapter `name`.
    pub fn config(&self, name: &str) -> Option<&LoraConfig> {
        self.adapters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
    }

    /// The active adapters, in order.
    pub fn active_adapters(&self) -> &[String] {
        &self.active
    }

    /// The trainable tensors of the active adapters, for a tch optimizer
    /// (`nn::AdamW::default().build(peft.var_store(), lr)`); rebuilt when
    /// adapters are added, deleted or activated, so build the optimizer after.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.store
    }

    fn known(&self) -> Vec<String> {
        self.adapters.iter().map(|(n, _)| n.clone()).collect()
    }

    fn require(&self, name: &str) -> Result<()> {
        if self.config(name).is_none() {
            return Err(Error::UnknownAdapter {
                name: name.into(),
                known: self.known(),
            });
        }
        Ok(())
    }

    fn check_name(&self, name: &str) -> Result<()> {
        let bad = |reason: &str| {
            Err(Error::BadAdapterName {
                name: name.into(),
                reason: reason.into(),
            })
        };
        if name.is_empty() {
            return bad("empty");
        }
        if name.contains(['.', '/', '\\']) {
            return bad("contains `.`, `/` or `\\` (names become folders and key parts)");
        }
        if name.contains("lora_") || name == "__base__" {
            return bad("clashes with PEFT's key names (`lora_`) or the mixed-batch base marker");
        }
        if self.config(name).is_some() {
            return bad("an adapter of this name is already loaded");
        }
        Ok(())
    }

    /// Adds adapter `name` configured by `config`: wraps every layer the
    /// target rules select (spec §1.4) and copies every `modules_to_save`
    /// layer. The first adapter added becomes active.
    pub fn add_adapter(&mut self, name: &str, config: LoraConfig) -> Result<()> {
        self.insert(name, config, true, |layer, config| {
            let (r, alpha) = rank_and_alpha(config, &layer.name)?;
            Ok(Some(crate::methods::new_adapter(
                &layer.base,
                &layer.name,
                r,
                alpha,
                config,
            )?))
        })
    }

    /// Adds adapter `name`: for each selected layer, `make` builds its
    /// adapter (`None`: leave the layer alone).
    pub(crate) fn insert(
        &mut self,
        name: &str,
        config: LoraConfig,
        strict: bool,
        mut make: impl FnMut(&AdaptedLayer, &LoraConfig) -> Result<Option<Box<dyn Adapter>>>,
    ) -> Result<()> {
        self.check_name(name)?;
        config.check("<config>")?;
        if config.bias != crate::config::Bias::None {
            return Err(Error::config(
                "<config>",
                "bias",
                "only `none` is supported by graft-peft so far",
            ));
        }
        let all = self.layers.all();
        let mut plan = Vec::new();
        for (path, layer) in &all {
            let guard = layer.lock().unwrap_or_else(|p| p.into_inner());
            match select(&config, path, guard.base.kind)? {
                Selection::Target => {
                    if let Some(l) = make(&guard, &config).map_err(|e| guard.named(e))? {
                        plan.push((layer.clone(), Some(l)));
                    }
                }
                Selection::Saved => plan.push((layer.clone(), None)),
                Selection::Skip => {}
            }
        }
        let targeted = plan.iter().filter(|(_, l)| l.is_some()).count();
        if targeted == 0 && config.target_modules.is_some() {
            return Err(Error::NoTarget {
                targets: config
                    .target_modules
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                layers: self.layers.paths(),
            });
        }
        for m in config.modules_to_save.iter().flatten() {
            let found = plan.iter().any(|(l, lora)| {
                lora.is_none() && {
                    let n = &l.lock().unwrap_or_else(|p| p.into_inner()).name;
                    n == m || n.ends_with(&format!(".{m}"))
                }
            });
            if !found && !strict {
                tracing::warn!(module = %m, "modules_to_save names no adaptable layer of this model");
            } else if !found {
                return Err(Error::config(
                    "<config>",
                    "modules_to_save",
                    format!(
                        "`{m}` matches no adaptable layer (layers: {})",
                        self.layers.paths().join(", ")
                    ),
                ));
            }
        }
        for (layer, lora) in plan {
            let mut g = write_lock(&layer);
            match lora {
                Some(l) => g.add_adapter(name, l),
                None => g.add_copy(name)?,
            }
        }
        self.adapters.push((name.into(), config));
        if self.active.is_empty() {
            self.active = vec![name.into()];
        }
        self.sync();
        Ok(())
    }

    /// Makes `names` the active adapters, in this order (their terms add up).
    pub fn set_adapter(&mut self, names: &[&str]) -> Result<()> {
        for n in names {
            self.require(n)?;
        }
        self.active = names.iter().map(|n| n.to_string()).collect();
        self.sync();
        Ok(())
    }

    /// Deletes adapter `name` (refused while it is merged anywhere).
    pub fn delete_adapter(&mut self, name: &str) -> Result<()> {
        self.require(name)?;
        for (_, layer) in self.layers.all() {
            let g = layer.lock().unwrap_or_else(|p| p.into_inner());
            if g.merged().contains(&name) {
                return Err(Error::AlreadyMerged {
                    layer: g.name.clone(),
                    adapter: name.into(),
                });
            }
        }
        for (_, layer) in self.layers.all() {
            write_lock(&layer).remove(name)?;
        }
        self.adapters.retain(|(n, _)| n != name);
        self.active.retain(|n| n != name);
        self.sync();
        Ok(())
    }

    /// Runs `f` with every adapter disabled (the base model; merges are
    /// undone first, as PEFT does), then enables them again.
    pub fn with_adapters_disabled<R>(&mut self, f: impl FnOnce() -> R) -> Result<R> {
        struct Enable<'a>(&'a Layers);
        impl Drop for Enable<'_> {
            fn drop(&mut self) {
                for (_, layer) in self.0.all() {
                    let _ = write_lock(&layer).set_disabled(false);
                }
            }
        }
        let all = self.layers.all();
        for (_, layer) in &all {
            write_lock(layer).set_disabled(true)?;
        }
        let _enable = Enable(&self.layers);
        Ok(f())
    }

    /// Runs `f` with each row of the batch routed to its own adapter
    /// (`__base__`: the base model), as PEFT's `adapter_names` argument:
    /// every layer called inside `f` takes row `i` through `names[i]`.
    /// Refused while anything is merged.
    pub fn with_adapter_names<R>(&mut self, names: &[&str], f: impl FnOnce() -> R) -> Result<R> {
        for n in names {
            if *n != "__base__" {
                self.require(n)?;
            }
        }
        for (_, layer) in self.layers.all() {
            let g = layer.lock().unwrap_or_else(|p| p.into_inner());
            if !g.merged().is_empty() {
                return Err(Error::Unsupported {
                    layer: g.name.clone(),
                    what: "per-sample adapter names while adapters are merged (unmerge first)"
                        .into(),
                });
            }
        }
        struct Clear<'a>(&'a Layers);
        impl Drop for Clear<'_> {
            fn drop(&mut self) {
                self.0.set_routing(None);
            }
        }
        self.layers
            .set_routing(Some(names.iter().map(|s| s.to_string()).collect()));
        let _clear = Clear(&self.layers);
        Ok(f())
    }

    /// Merges `names` (default: the active adapters) into the weights, in
    /// order. `safe` checks every merged weight is finite first. On an
    /// error, the merges of this call are undone.
    pub fn merge(&mut self, names: Option<&[&str]>, safe: bool) -> Result<()> {
        let names: Vec<String> = match names {
            Some(n) => n.iter().map(|s| s.to_string()).collect(),
            None => self.active.clone(),
        };
        for n in &names {
            self.require(n)?;
        }
        let mut done: Vec<Shared> = Vec::new();
        for n in &names {
            for (_, layer) in self.layers.all() {
                let mut g = write_lock(&layer);
                if !g.has(n) || g.merged().contains(&n.as_str()) {
                    continue;
                }
                if let Err(e) = g.merge(n, safe, self.exact) {
                    drop(g);
                    for l in done.iter().rev() {
                        let _ = write_lock(l).unmerge();
                    }
                    return Err(e);
                }
                done.push(layer.clone());
            }
        }
        Ok(())
    }

    /// Undoes every merge, last first.
    pub fn unmerge(&mut self) -> Result<()> {
        for (_, layer) in self.layers.all() {
            write_lock(&layer).unmerge_all()?;
        }
        Ok(())
    }

    /// Merges the active adapters and removes every adapter: the layers are
    /// plain again and the model's weights hold `W + ΔW` (a `modules_to_save`
    /// copy replaces its layer).
    pub fn merge_and_unload(&mut self, safe: bool) -> Result<()> {
        self.unmerge()?;
        self.merge(None, safe)?;
        self.clear();
        Ok(())
    }

    /// Undoes every merge and removes every adapter: the original model.
    pub fn unload(&mut self) -> Result<()> {
        self.unmerge()?;
        self.clear();
        Ok(())
    }

    fn clear(&mut self) {
        for (_, layer) in self.layers.all() {
            write_lock(&layer).clear();
        }
        self.adapters.clear();
        self.active.clear();
        self.sync();
    }

    /// Multiplies adapter `name`'s scale by `factor` (`s = factor · α / r`).
    pub fn set_scale(&mut self, name: &str, factor: f64) -> Result<()> {
        self.require(name)?;
        for (_, layer) in self.layers.all() {
            if let Some(a) = write_lock(&layer).adapter_mut(name) {
                a.set_scale_factor(factor);
            }
        }
        Ok(())
    }

    /// Trainable and total parameter counts.
    pub fn parameter_count(&self) -> ParameterCount {
        let trainable = self
            .store
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        let adapters: i64 = self
            .adapters
            .iter()
            .map(|(n, _)| {
                self.tensors(n)
                    .map(|ts| ts.iter().map(|(_, t)| t.numel() as i64).sum::<i64>())
                    .unwrap_or(0)
            })
            .sum();
        ParameterCount {
            trainable,
            total: self.base_params + adapters,
        }
    }

    /// Adapter `name`'s tensors under their keys in PEFT's files
    /// (`base_model.model.<path>.<suffix>`; a `modules_to_save` copy as
    /// `<path>.weight` and `<path>.bias`), sorted by key.
    pub fn tensors(&self, name: &str) -> Result<Vec<(String, Tensor)>> {
        self.require(name)?;
        let mut out = Vec::new();
        for (path, layer) in self.layers.all() {
            let g = layer.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(a) = g.adapter(name) {
                for (suffix, t) in a.tensors() {
                    out.push((format!("{KEY_PREFIX}{path}.{suffix}"), t.shallow_clone()));
                }
            }
            if let Some(c) = g.copy(name) {
                out.push((
                    format!("{KEY_PREFIX}{path}.weight"),
                    c.weight.shallow_clone(),
                ));
                if let Some(b) = &c.bias {
                    out.push((format!("{KEY_PREFIX}{path}.bias"), b.shallow_clone()));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Rebuilds the layers' active lists and the store of trainable tensors.
    fn sync(&mut self) {
        let device: Device = self.store.device();
        let store = nn::VarStore::new(device);
        let root = store.root();
        for (_, layer) in self.layers.all() {
            write_lock(&layer).set_active(&self.active);
        }
        for name in &self.active {
            if let Ok(ts) = self.tensors(name) {
                for (key, t) in ts {
                    let var =
                        format!("{name}/{}", key.trim_start_matches(KEY_PREFIX)).replace('.', "/");
                    let _ = root.add(&var, t, true);
                }
            }
        }
        self.store = store;
    }
}
