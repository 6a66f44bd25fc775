//! Saving and loading a `VarStore` as safetensors, with stable names.

use crate::Result;
use graft_tensor::safetensors::{Checkpoint, save};
use graft_tensor::tch::nn::VarStore;
use graft_tensor::tch::{Kind, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// The store's variables sorted by name (the order they are saved in).
pub fn varstore_tensors(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Saves every variable of `vs` to `path` (atomically), sorted by name, with `metadata`.
pub fn save_varstore(vs: &VarStore, path: &Path, metadata: &HashMap<String, String>) -> Result<()> {
    let vars = varstore_tensors(vs);
    save(path, vars.iter().map(|(n, t)| (n.as_str(), t)), metadata)?;
    Ok(())
}

/// Loads `path` into the variables of `vs`: every variable must be present
/// with the same shape and dtype (errors name the tensor and the file);
/// tensors in the file that the store lacks are ignored.
pub fn load_varstore(vs: &mut VarStore, path: &Path) -> Result<()> {
    let ckpt = Checkpoint::open(path)?;
    let device = vs.device();
    let mut vars = vs.variables();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let mut loaded: Vec<(String, Tensor)> = Vec::with_capacity(names.len());
    for name in names {
        let var = &vars[name];
        let shape: Vec<usize> = var.size().iter().map(|&d| d as usize).collect();
        let kind: Kind = var.kind();
        loaded.push((name.clone(), ckpt.tensor_checked(name, kind, &shape)?));
    }
    // All checks passed: only now overwrite the variables.
    graft_tensor::tch::no_grad(|| -> Result<()> {
        for (name, value) in loaded {
            if let Some(var) = vars.get_mut(&name) {
                var.f_copy_(&value.f_to_device(device)?)?;
            }
        }
        Ok(())
    })
}
