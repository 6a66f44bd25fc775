//! Safetensors I/O: lazy mmap reading of single and sharded checkpoints,
//! streaming writes with optional sharding, every file written atomically.
//!
//! - [`SafetensorsFile`]: one file, memory-mapped, one tensor read at a time;
//! - [`Checkpoint`]: a single file or a sharded checkpoint
//!   (`model.safetensors.index.json`, as Hugging Face writes them);
//! - [`SafetensorsWriter`]: streams tensors into one file whose header is
//!   known up front (from [`TensorSpec`]s), so no tensor is held longer than
//!   its own write;
//! - [`ShardedWriter`]: the same over shards of a bounded size, plus the index;
//! - [`save`], [`save_sharded`], [`load`]: the one-call forms.

mod checkpoint;
mod parallel_writer;
mod reader;
mod writer;

pub use ::safetensors::Dtype;
pub use checkpoint::{Checkpoint, INDEX_FILE, parse_index};
pub use parallel_writer::ParallelWriter;
pub use reader::{SafetensorsFile, parse_header};
pub use writer::{SafetensorsWriter, ShardedWriter, plan_shards, shard_file_name};

#[cfg(feature = "tch")]
use crate::dtype;
#[cfg(feature = "tch")]
use crate::{Error, Result};
#[cfg(feature = "tch")]
use std::borrow::Borrow;
#[cfg(feature = "tch")]
use std::collections::HashMap;
#[cfg(feature = "tch")]
use std::path::Path;
#[cfg(feature = "tch")]
use tch::{Kind, Tensor};

/// A tensor's name, safetensors dtype and shape: what a header records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// The tensor's name (key).
    pub name: String,
    /// Its element type.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// The spec of an in-memory tensor.
    #[cfg(feature = "tch")]
    pub fn of(name: impl Into<String>, tensor: &Tensor) -> Result<Self> {
        let name = name.into();
        let dtype = dtype::to_safetensors(tensor.f_kind()?, &name)?;
        let shape = tensor.size().iter().map(|&d| d as usize).collect();
        Ok(Self { name, dtype, shape })
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes of data.
    pub fn nbytes(&self) -> usize {
        self.numel() * self.dtype.bitsize() / 8
    }

    /// The libtorch kind, if libtorch has one.
    #[cfg(feature = "tch")]
    pub fn kind(&self) -> Result<Kind> {
        dtype::from_safetensors(self.dtype, &self.name)
    }

    /// Fails with a mismatch error naming `path` unless kind and shape are as expected.
    #[cfg(feature = "tch")]
    pub fn check(&self, path: &Path, kind: Kind, shape: &[usize]) -> Result<()> {
        let expected = dtype::to_safetensors(kind, &self.name)?;
        if self.dtype != expected {
            return Err(Error::DtypeMismatch {
                name: self.name.clone(),
                path: path.to_path_buf(),
                expected: format!("{expected:?}"),
                actual: format!("{:?}", self.dtype),
            });
        }
        if self.shape != shape {
            return Err(Error::ShapeMismatch {
                name: self.name.clone(),
                path: path.to_path_buf(),
                expected: shape.to_vec(),
                actual: self.shape.clone(),
            });
        }
        Ok(())
    }
}

/// Writes named tensors to one safetensors file at `path`, atomically, in the given order.
#[cfg(feature = "tch")]
pub fn save<N, T>(
    path: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (N, T)>,
    metadata: &HashMap<String, String>,
) -> Result<()>
where
    N: AsRef<str>,
    T: Borrow<Tensor>,
{
    let tensors: Vec<(N, T)> = tensors.into_iter().collect();
    let specs = specs_of(&tensors)?;
    let mut writer = SafetensorsWriter::create(path, specs, metadata)?;
    for (name, tensor) in &tensors {
        writer.write(name.as_ref(), tensor.borrow())?;
    }
    writer.finish()
}

/// Writes named tensors into the directory `dir` as Hugging Face does:
/// `model.safetensors` when everything fits in one shard of `max_shard_bytes`
/// (or no limit is given), else `model-0000i-of-0000n.safetensors` files and
/// `model.safetensors.index.json`. Every file is renamed into place only
/// after all of them are written.
#[cfg(feature = "tch")]
pub fn save_sharded<N, T>(
    dir: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (N, T)>,
    metadata: &HashMap<String, String>,
    max_shard_bytes: Option<u64>,
) -> Result<()>
where
    N: AsRef<str>,
    T: Borrow<Tensor>,
{
    let tensors: Vec<(N, T)> = tensors.into_iter().collect();
    let specs = specs_of(&tensors)?;
    let mut writer = ShardedWriter::create(dir, specs, metadata, max_shard_bytes)?;
    for (name, tensor) in &tensors {
        writer.write(name.as_ref(), tensor.borrow())?;
    }
    writer.finish()
}

/// Reads every tensor of a file or checkpoint directory, in storage order.
#[cfg(feature = "tch")]
pub fn load(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    let ckpt = Checkpoint::open(path)?;
    ckpt.names()
        .iter()
        .map(|n| Ok((n.clone(), ckpt.tensor(n)?)))
        .collect()
}

#[cfg(feature = "tch")]
fn specs_of<N: AsRef<str>, T: Borrow<Tensor>>(tensors: &[(N, T)]) -> Result<Vec<TensorSpec>> {
    tensors
        .iter()
        .map(|(n, t)| TensorSpec::of(n.as_ref(), t.borrow()))
        .collect()
}
