//! A checkpoint: one safetensors file, or shards listed by `model.safetensors.index.json`.

use super::{SafetensorsFile, TensorSpec};
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
#[cfg(feature = "tch")]
use tch::{Kind, Tensor};

/// The index file of a sharded checkpoint, as Hugging Face names it.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// A single-file or sharded checkpoint, read lazily one tensor at a time.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    files: Vec<SafetensorsFile>,
    location: HashMap<String, usize>,
    order: Vec<String>,
}

impl Checkpoint {
    /// Opens `path`, which may be
    /// - a `.safetensors` file;
    /// - an index file (`*.index.json`) whose `weight_map` names the shards;
    /// - a directory holding `model.safetensors.index.json`, or
    ///   `model.safetensors`, or exactly one `*.safetensors` file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            let index = path.join(INDEX_FILE);
            if index.is_file() {
                return Self::open_index(&index);
            }
            let single = path.join("model.safetensors");
            if single.is_file() {
                return Self::open_file(&single);
            }
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| Error::io(path, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .collect();
            found.sort();
            return match found.as_slice() {
                [one] => Self::open_file(one),
                [] => Err(Error::Invalid(format!(
                    "{}: no .safetensors file and no {INDEX_FILE}",
                    path.display()
                ))),
                _ => Err(Error::Invalid(format!(
                    "{}: {} .safetensors files but no {INDEX_FILE} saying how they fit together",
                    path.display(),
                    found.len()
                ))),
            };
        }
        if path.to_string_lossy().ends_with(".json") {
            return Self::open_index(path);
        }
        Self::open_file(path)
    }

    fn open_file(path: &Path) -> Result<Self> {
        let file = SafetensorsFile::open(path)?;
        let order = file.names().to_vec();
        let location = order.iter().map(|n| (n.clone(), 0)).collect();
        Ok(Self {
            path: path.to_path_buf(),
            files: vec![file],
            location,
            order,
        })
    }

    fn open_index(index: &Path) -> Result<Self> {
        let bad = |reason: String| Error::BadIndex {
            path: index.to_path_buf(),
            reason,
        };
        let text = crate::input::read_text(index, crate::input::CONFIG_LIMIT)?;
        let by_file = parse_index(&text, index)?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut files = Vec::with_capacity(by_file.len());
        let mut location = HashMap::new();
        let mut order = Vec::new();
        for (i, (file, names)) in by_file.into_iter().enumerate() {
            let shard = SafetensorsFile::open(dir.join(&file))?;
            for name in &names {
                if !shard.contains(name) {
                    return Err(bad(format!(
                        "the index places `{name}` in {file}, which does not hold it"
                    )));
                }
            }
            let mut names_in_file_order: Vec<String> = shard
                .names()
                .iter()
                .filter(|n| names.contains(n))
                .cloned()
                .collect();
            for n in &names_in_file_order {
                location.insert(n.clone(), i);
            }
            order.append(&mut names_in_file_order);
            files.push(shard);
        }
        Ok(Self {
            path: index.to_path_buf(),
            files,
            location,
            order,
        })
    }

    /// What was opened (file or index).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names: shard by shard, each in storage order.
    pub fn names(&self) -> &[String] {
        &self.order
    }

    /// Whether the checkpoint holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.location.contains_key(name)
    }

    /// The files of the checkpoint (one unless sharded).
    pub fn files(&self) -> &[SafetensorsFile] {
        &self.files
    }

    /// The `__metadata__` of the first file (Hugging Face writes the same into every shard).
    pub fn metadata(&self) -> HashMap<String, String> {
        self.files.first().map(|f| f.metadata()).unwrap_or_default()
    }

    /// The file that holds `name`.
    pub fn file_of(&self, name: &str) -> Result<&SafetensorsFile> {
        let &i = self
            .location
            .get(name)
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_string(),
                path: self.path.clone(),
            })?;
        Ok(&self.files[i])
    }

    /// Name, dtype and shape of `name`.
    pub fn spec(&self, name: &str) -> Result<TensorSpec> {
        self.file_of(name)?.spec(name)
    }

    /// Specs of every tensor, in [`names`](Self::names) order.
    pub fn specs(&self) -> Result<Vec<TensorSpec>> {
        self.order.iter().map(|n| self.spec(n)).collect()
    }

    /// Reads `name` into a new CPU tensor.
    #[cfg(feature = "tch")]
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        self.file_of(name)?.tensor(name)
    }

    /// Reads `name`, checking its kind and shape.
    #[cfg(feature = "tch")]
    pub fn tensor_checked(&self, name: &str, kind: Kind, shape: &[usize]) -> Result<Tensor> {
        self.file_of(name)?.tensor_checked(name, kind, shape)
    }

    /// Bytes of tensor data in all files.
    pub fn data_bytes(&self) -> u64 {
        self.order
            .iter()
            .filter_map(|n| self.spec(n).ok())
            .map(|s| s.nbytes() as u64)
            .sum()
    }
}

/// Parses a shard index's text (`{"weight_map": {tensor: file}}`): the
/// tensors of each shard file, files in name order. File names must stay
/// inside the checkpoint directory; `index` names the file in errors.
/// Exposed for fuzzing.
pub fn parse_index(text: &str, index: &Path) -> Result<BTreeMap<String, Vec<String>>> {
    let bad = |reason: String| Error::BadIndex {
        path: index.to_path_buf(),
        reason,
    };
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no `weight_map` object".into()))?;
    let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| bad(format!("`weight_map[{name}]` is not a file name")))?;
        if file.is_empty()
            || file.contains('/')
            || file.contains('\\')
            || file == "."
            || file == ".."
        {
            return Err(bad(format!(
                "`weight_map[{name}]` = `{file}` is not a file in the checkpoint directory"
            )));
        }
        by_file
            .entry(file.to_string())
            .or_default()
            .push(name.clone());
    }
    Ok(by_file)
}
