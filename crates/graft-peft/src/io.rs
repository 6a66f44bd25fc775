//! Hugging Face PEFT's adapter directories, both ways (spec `peft.md`
//! §1.8): `adapter_config.json` + `adapter_model.safetensors`, adapter
//! `default` at the root and any other in a sub-folder of its name, keys
//! `base_model.model.<path>.<suffix>` (files without the prefix read too).

use crate::config::LoraConfig;
use crate::model::{KEY_PREFIX, PeftModel};
use crate::targets::{Selection, rank_and_alpha, select};
use crate::{Error, Result};
use graft_tensor::atomic::StagingDir;
use graft_tensor::output::OutputRules;
use graft_tensor::safetensors::Checkpoint;
use graft_tensor::tch::{Kind, Tensor};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The configuration file's name.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The weights file's name.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// The pickle file older PEFT versions wrote, which graft-peft refuses.
pub const PICKLE_FILE: &str = "adapter_model.bin";

/// How strictly [`PeftModel::load_adapter`] matches file and model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Missing or unexpected tensors are errors naming them (default);
    /// with `false`, warnings, and a layer whose tensors are missing keeps
    /// no adapter.
    pub strict: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { strict: true }
    }
}

/// The folder of adapter `name` inside a saved directory.
pub fn adapter_dir(dir: &Path, name: &str) -> PathBuf {
    if name == "default" {
        dir.to_path_buf()
    } else {
        dir.join(name)
    }
}

impl PeftModel {
    /// Writes every adapter into `dir` as PEFT does, atomically, under
    /// graft's output rules (`rules`: overwrite only with `force`, never an
    /// input). `peft_version` names graft-peft.
    pub fn save_pretrained(&self, dir: &Path, rules: &OutputRules) -> Result<()> {
        self.save_pretrained_with(dir, rules, &[])
    }

    /// [`save_pretrained`](Self::save_pretrained), with `extra` files
    /// (`(name, bytes)`, e.g. a label map) written at the root in the same
    /// atomic step.
    pub fn save_pretrained_with(
        &self,
        dir: &Path,
        rules: &OutputRules,
        extra: &[(&str, Vec<u8>)],
    ) -> Result<()> {
        let staging = StagingDir::create(dir, rules, "graft-peft")?;
        for (name, bytes) in extra {
            if name.contains(['/', '\\']) || name.starts_with('.') {
                return Err(Error::config(
                    "<save>",
                    name,
                    "extra files are plain names at the root",
                ));
            }
            graft_tensor::atomic::write_atomic(staging.path().join(name), bytes)?;
        }
        for name in self.adapter_names() {
            let sub = adapter_dir(staging.path(), name);
            std::fs::create_dir_all(&sub).map_err(|source| Error::Io {
                path: sub.clone(),
                source,
            })?;
            let mut config = self.config(name).cloned().unwrap_or_default();
            config.peft_version = Some(format!("graft-peft {}", env!("CARGO_PKG_VERSION")));
            let path = sub.join(CONFIG_FILE);
            graft_tensor::atomic::write_atomic(&path, config.to_json()?.as_bytes())?;
            let tensors: Vec<(String, Tensor)> = self
                .tensors(name)?
                .into_iter()
                .map(|(k, t)| (k, t.detach().contiguous()))
                .collect();
            let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
            graft_tensor::safetensors::save(sub.join(WEIGHTS_FILE), tensors, &meta)?;
        }
        staging.commit()?;
        Ok(())
    }

    /// Loads every adapter saved in `dir`: `default` from the root (if
    /// there), and each sub-folder holding an adapter under its name.
    pub fn load_pretrained(&mut self, dir: &Path, options: LoadOptions) -> Result<Vec<String>> {
        let mut loaded = Vec::new();
        if dir.join(CONFIG_FILE).is_file() {
            self.load_adapter(dir, "default", options)?;
            loaded.push("default".to_string());
        }
        let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
            path: dir.into(),
            source,
        })?;
        let mut subs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join(CONFIG_FILE).is_file())
            .collect();
        subs.sort();
        for sub in subs {
            let name = sub
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            self.load_adapter(&sub, &name, options)?;
            loaded.push(name);
        }
        if loaded.is_empty() {
            return Err(Error::Io {
                path: dir.join(CONFIG_FILE),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no adapter here (neither this folder nor a sub-folder holds adapter_config.json)",
                ),
            });
        }
        Ok(loaded)
    }

    /// Loads the adapter in folder `dir` (`adapter_config.json` and
    /// `adapter_model.safetensors`) as `name`. The rank of each layer comes
    /// from its tensors, `α` from the configuration and its patterns.
    pub fn load_adapter(&mut self, dir: &Path, name: &str, options: LoadOptions) -> Result<()> {
        let config_path = dir.join(CONFIG_FILE);
        let text = graft_tensor::input::read_text(&config_path, graft_tensor::input::CONFIG_LIMIT)?;
        let origin = config_path.display().to_string();
        let config = LoraConfig::from_json(&text, &origin)?;
        let weights = dir.join(WEIGHTS_FILE);
        if !weights.is_file() && dir.join(PICKLE_FILE).is_file() {
            return Err(Error::Unsupported {
                layer: dir.join(PICKLE_FILE).display().to_string(),
                what: "pickle (`.bin`) adapter files are not read: they can run code when loaded. Convert it once in Python with `safetensors.torch.save_file(torch.load(path), \"adapter_model.safetensors\", metadata={\"format\": \"pt\"})`".into(),
            });
        }
        let file = Checkpoint::open(&weights)?;
        let mut tensors: BTreeMap<String, String> = BTreeMap::new();
        for key in file.names() {
            let short = key.strip_prefix(KEY_PREFIX).unwrap_or(key);
            tensors.insert(short.to_string(), key.clone());
        }
        let mut used: BTreeSet<String> = BTreeSet::new();
        let mut missing: Vec<String> = Vec::new();
        let read = |short: &str, used: &mut BTreeSet<String>| -> Result<Option<Tensor>> {
            match tensors.get(short) {
                Some(full) => {
                    used.insert(short.to_string());
                    Ok(Some(file.tensor(full)?.to_kind(Kind::Float)))
                }
                None => Ok(None),
            }
        };
        // Decide per layer before changing anything.
        let mut adapters: Vec<(String, Box<dyn crate::adapter::Adapter>)> = Vec::new();
        let mut copies: Vec<(String, Tensor, Option<Tensor>)> = Vec::new();
        for (path, layer) in self.layers().all() {
            let g = layer.lock().unwrap_or_else(|p| p.into_inner());
            match select(&config, &path, g.base.kind)? {
                Selection::Target => {
                    let (required, optional) = crate::methods::suffixes(g.base.kind, &config);
                    let mut found: BTreeMap<&'static str, Tensor> = BTreeMap::new();
                    let mut absent = Vec::new();
                    for k in required.iter().chain(&optional) {
                        match read(&format!("{path}.{k}"), &mut used)? {
                            Some(t) => {
                                found.insert(k, t);
                            }
                            None if required.contains(k) => {
                                absent.push(format!("{KEY_PREFIX}{path}.{k}"))
                            }
                            None => {}
                        }
                    }
                    if !absent.is_empty() {
                        missing.extend(absent);
                        continue;
                    }
                    let (r, alpha) = rank_and_alpha(&config, &path)?;
                    let adapter =
                        crate::methods::from_tensors(&g.base, &path, alpha, &config, found)
                            .map_err(|e| g.named(e))?;
                    if let Some(l) = adapter.as_lora().filter(|l| l.r != r) {
                        tracing::warn!(layer = %path, file = r, tensors = l.r, "the rank of the tensors differs from the configuration's; the tensors' is used");
                    }
                    adapters.push((path.clone(), adapter));
                }
                Selection::Saved => {
                    let w = read(&format!("{path}.weight"), &mut used)?;
                    let b = read(&format!("{path}.bias"), &mut used)?;
                    match w {
                        Some(w) => {
                            if w.size() != g.base.weight.size() {
                                return Err(Error::Shape {
                                    what: format!(
                                        "`{KEY_PREFIX}{path}.weight` in {}",
                                        weights.display()
                                    ),
                                    expected: g.base.weight.size(),
                                    got: w.size(),
                                });
                            }
                            if g.base.bias.is_some() && b.is_none() {
                                missing.push(format!("{KEY_PREFIX}{path}.bias"));
                            }
                            copies.push((path.clone(), w, b));
                        }
                        None => missing.push(format!("{KEY_PREFIX}{path}.weight")),
                    }
                }
                Selection::Skip => {}
            }
        }
        let unexpected: Vec<String> = tensors
            .iter()
            .filter(|(short, _)| !used.contains(*short))
            .map(|(_, full)| full.clone())
            .collect();
        for (problem, keys) in [("missing", &missing), ("unexpected", &unexpected)] {
            if keys.is_empty() {
                continue;
            }
            if options.strict {
                return Err(Error::Keys {
                    file: weights.clone(),
                    problem,
                    keys: keys.clone(),
                });
            }
            tracing::warn!(file = %weights.display(), keys = %keys.join(", "), "{problem} adapter tensors");
        }
        let mut adapters: HashMap<String, Box<dyn crate::adapter::Adapter>> =
            adapters.into_iter().collect();
        let copies: HashMap<String, (Tensor, Option<Tensor>)> =
            copies.into_iter().map(|(p, w, b)| (p, (w, b))).collect();
        self.insert(name, config, options.strict, |layer, _| {
            Ok(adapters.remove(&layer.name))
        })?;
        // The copies were made from the base: put the saved values in.
        for (path, (w, b)) in copies {
            if let Some(layer) = self.layers().get(&path) {
                let g = layer.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(c) = g.copy(name) {
                    let mut cw = c.weight.shallow_clone();
                    graft_tensor::tch::no_grad(|| cw.f_copy_(&w))?;
                    if let (Some(cb), Some(b)) = (&c.bias, b) {
                        let mut cb = cb.shallow_clone();
                        graft_tensor::tch::no_grad(|| cb.f_copy_(&b))?;
                    }
                }
            }
        }
        Ok(())
    }
}
