//! Classifiers and data sets as files, for `graft unlearn`: a model saved
//! by graft-nn (safetensors whose `graft.model` metadata holds its
//! [`ModelConfig`]) and samples as safetensors with `x` (f32) and `y` (i64).

use crate::{Error, Result};
use graft_nn::Dataset;
use graft_nn::models::{Model, ModelConfig, build, load_varstore};
use graft_tensor::safetensors::Checkpoint;
use graft_tensor::tch::nn::VarStore;
use graft_tensor::tch::{Device, Kind};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// A classifier loaded from a file.
pub struct ModelFile {
    /// Its parameters.
    pub vs: VarStore,
    /// The model built on them.
    pub model: Model,
    /// How it was built.
    pub config: ModelConfig,
    /// The file's metadata (kept when the edited model is written back).
    pub metadata: HashMap<String, String>,
}

/// Loads a model file written by graft-nn (`graft.model` metadata).
pub fn load_model(path: &Path) -> Result<ModelFile> {
    let bad = |reason: String| Error::File {
        path: path.to_path_buf(),
        reason,
    };
    let ckpt = Checkpoint::open(path)?;
    let metadata = ckpt.metadata();
    let text = metadata.get("graft.model").ok_or_else(|| {
        bad("no `graft.model` metadata: save the model with graft (e.g. `graft reproduce baselines` writes such files)".into())
    })?;
    let config: ModelConfig =
        serde_json::from_str(text).map_err(|e| bad(format!("`graft.model` metadata: {e}")))?;
    // Check the sizes before building: the metadata is data, and a model it
    // describes must not allocate more than the file holds.
    let wanted = parameter_count(&config).ok_or_else(|| {
        bad(format!(
            "`graft.model` metadata: sizes must be at least 1 and fit memory: {config:?}"
        ))
    })?;
    if wanted.saturating_mul(4) > ckpt.data_bytes() {
        return Err(bad(format!(
            "`graft.model` describes {wanted} f32 parameters but the file holds {} bytes of tensors",
            ckpt.data_bytes()
        )));
    }
    let mut vs = VarStore::new(Device::Cpu);
    let model = build(&vs.root(), &config)?;
    load_varstore(&mut vs, path)?;
    Ok(ModelFile {
        vs,
        model,
        config,
        metadata,
    })
}

/// The number of parameters `config` builds (checked arithmetic), or
/// `None` when a size is below 1 or the count overflows.
pub fn parameter_count(config: &ModelConfig) -> Option<u64> {
    let pos = |x: i64| u64::try_from(x).ok().filter(|&v| v >= 1);
    let linear = |i: u64, o: u64| i.checked_add(1)?.checked_mul(o);
    match config {
        ModelConfig::Mlp(c) => {
            let mut total = 0u64;
            let mut width = pos(c.input)?;
            for &h in &c.hidden {
                let h = pos(h)?;
                total = total.checked_add(linear(width, h)?)?;
                width = h;
            }
            total.checked_add(linear(width, pos(c.classes)?)?)
        }
        ModelConfig::Cnn(c) => {
            let mut total = 0u64;
            let mut cin = pos(c.in_channels)?;
            let mut size = pos(c.image_size)?;
            if c.channels.is_empty() {
                return None;
            }
            for (i, &ch) in c.channels.iter().enumerate() {
                let ch = pos(ch)?;
                total = total.checked_add(cin.checked_mul(9)?.checked_add(1)?.checked_mul(ch)?)?;
                cin = ch;
                if c.pool_after.contains(&i) {
                    size /= 2;
                }
            }
            let flat = cin
                .checked_mul(pos(i64::try_from(size).ok()?)?)?
                .checked_mul(size)?;
            let hidden = pos(c.hidden)?;
            total
                .checked_add(linear(flat, hidden)?)?
                .checked_add(linear(hidden, pos(c.classes)?)?)
        }
    }
}

/// The input shape (without the batch dimension) `config` takes, and its classes.
pub fn input_shape(config: &ModelConfig) -> (Vec<i64>, i64) {
    match config {
        ModelConfig::Mlp(c) => (vec![c.input], c.classes),
        ModelConfig::Cnn(c) => (vec![c.in_channels, c.image_size, c.image_size], c.classes),
    }
}

/// Loads samples (`x`: f32 `[n, ...]`, `y`: i64 `[n]`) for a model taking
/// `shape` inputs (an MLP also takes any shape of as many features) and
/// `classes` classes. Errors name the file and what is wrong.
pub fn load_samples(path: &Path, shape: &[i64], classes: i64) -> Result<Dataset> {
    let bad = |reason: String| Error::File {
        path: path.to_path_buf(),
        reason,
    };
    let ckpt = Checkpoint::open(path)?;
    for key in ["x", "y"] {
        if !ckpt.contains(key) {
            return Err(bad(format!(
                "no tensor `{key}` (a data file holds `x`, f32 [n, ...], and `y`, i64 [n])"
            )));
        }
    }
    let x = ckpt.tensor("x")?;
    let y = ckpt.tensor("y")?;
    if x.kind() != Kind::Float {
        return Err(bad(format!("`x` is {:?}, expected f32", x.kind())));
    }
    if y.kind() != Kind::Int64 || y.dim() != 1 {
        return Err(bad(format!(
            "`y` is {:?} of shape {:?}, expected i64 [n]",
            y.kind(),
            y.size()
        )));
    }
    let xs = x.size();
    if xs.first() != y.size().first() {
        return Err(bad(format!(
            "`x` has {} rows but `y` has {}",
            xs.first().copied().unwrap_or(0),
            y.size()[0]
        )));
    }
    let features: i64 = xs[1..].iter().product();
    let wanted: i64 = shape.iter().product();
    let fits = xs[1..] == *shape || (shape.len() == 1 && features == wanted && xs.len() > 1);
    if !fits {
        return Err(bad(format!(
            "`x` has samples of shape {:?}, the model takes {shape:?}",
            &xs[1..]
        )));
    }
    if y.numel() > 0 {
        let (lo, hi) = (y.min().int64_value(&[]), y.max().int64_value(&[]));
        if lo < 0 || hi >= classes {
            return Err(bad(format!(
                "labels span {lo}..={hi}, outside the model's {classes} classes (0..{classes})"
            )));
        }
    }
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(Dataset::new(x, y, classes, name)?)
}

/// `data` without the samples of `forget`: each forget sample (its input
/// bytes and label) must occur in `data`, and removes one occurrence.
/// The rest keeps `data`'s order. Errors name the first forget sample not found.
pub fn subtract(data: &Dataset, forget: &Dataset) -> Result<Dataset> {
    let key = |d: &Dataset, i: i64| -> Result<(Vec<u8>, i64)> {
        let row = d.inputs.f_get(i)?.f_contiguous()?;
        let values: Vec<f32> = Vec::try_from(&row.f_flatten(0, -1)?)?;
        let bytes = values
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect();
        Ok((bytes, d.labels.f_int64_value(&[i])?))
    };
    let mut index: HashMap<(Vec<u8>, i64), Vec<i64>> = HashMap::new();
    for i in (0..data.len() as i64).rev() {
        index.entry(key(data, i)?).or_default().push(i);
    }
    let mut removed = HashSet::new();
    for j in 0..forget.len() as i64 {
        let k = key(forget, j)?;
        let label = k.1;
        match index.get_mut(&k).and_then(Vec::pop) {
            Some(i) => {
                removed.insert(i);
            }
            None => {
                return Err(Error::data(
                    &forget.name,
                    format!(
                        "sample {j} (label {label}) is not in `{}`: the forget set must be part of the training data",
                        data.name
                    ),
                ));
            }
        }
    }
    let keep: Vec<i64> = (0..data.len() as i64)
        .filter(|i| !removed.contains(i))
        .collect();
    let mut rest = data.select(&keep)?;
    rest.name = format!("{} without {}", data.name, forget.name);
    Ok(rest)
}
