//! Streaming writers: the header is built from [`TensorSpec`]s up front, then
//! tensors are written one by one in that order.

use super::{INDEX_FILE, TensorSpec};
use crate::atomic::{AtomicFile, SyncedFile, write_atomic};
use crate::{Error, Result};
use ::safetensors::tensor::{Metadata, TensorInfo};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
#[cfg(feature = "tch")]
use tch::{Device, Tensor};

/// Writes one safetensors file, tensor by tensor, atomically.
///
/// Dropping the writer before [`finish`](Self::finish) removes the partial
/// file: nothing ever appears at the destination unless every declared
/// tensor was written.
pub struct SafetensorsWriter {
    out: AtomicFile,
    specs: Vec<TensorSpec>,
    next: usize,
}

impl SafetensorsWriter {
    /// Starts `path` with the header for `specs` (in this order) and `metadata`.
    pub fn create(
        path: impl AsRef<Path>,
        specs: Vec<TensorSpec>,
        metadata: &HashMap<String, String>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let header = header_bytes(path, &specs, metadata)?;
        let mut out = AtomicFile::create(path)?;
        out.write_all(&(header.len() as u64).to_le_bytes())
            .and_then(|()| out.write_all(&header))
            .map_err(|e| Error::io(path, e))?;
        Ok(Self {
            out,
            specs,
            next: 0,
        })
    }

    /// The destination path.
    pub fn path(&self) -> &Path {
        self.out.dest()
    }

    /// The spec of the tensor expected next, if any remain.
    pub fn expected_next(&self) -> Option<&TensorSpec> {
        self.specs.get(self.next)
    }

    /// Whether every declared tensor has been written.
    pub fn is_complete(&self) -> bool {
        self.next == self.specs.len()
    }

    /// Writes `tensor` as `name`, which must be the next declared tensor, with
    /// the declared dtype and shape. The tensor may live on any device and
    /// need not be contiguous.
    #[cfg(feature = "tch")]
    pub fn write(&mut self, name: &str, tensor: &Tensor) -> Result<()> {
        let spec = self.take_next(name)?;
        spec.check(self.out.dest(), tensor.f_kind()?, &shape_of(tensor))?;
        let cpu = if tensor.device() == Device::Cpu {
            tensor.f_contiguous()?
        } else {
            tensor.f_to_device(Device::Cpu)?.f_contiguous()?
        };
        let nbytes = spec.nbytes();
        // SAFETY: `cpu` is a contiguous CPU tensor of the declared dtype and
        // shape (checked above), so `nbytes` bytes from its data pointer are
        // its elements; `cpu` outlives the slice.
        let bytes = if nbytes == 0 {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(cpu.data_ptr() as *const u8, nbytes) }
        };
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io(self.out.dest(), e))?;
        self.next += 1;
        Ok(())
    }

    /// Writes raw little-endian bytes as `name` (the next declared tensor).
    pub fn write_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let spec = self.take_next(name)?;
        if bytes.len() != spec.nbytes() {
            return Err(Error::BadWrite {
                path: self.out.dest().to_path_buf(),
                reason: format!(
                    "tensor `{name}` declared {} bytes ({:?} {:?}), got {}",
                    spec.nbytes(),
                    spec.dtype,
                    spec.shape,
                    bytes.len()
                ),
            });
        }
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io(self.out.dest(), e))?;
        self.next += 1;
        Ok(())
    }

    fn take_next(&self, name: &str) -> Result<TensorSpec> {
        match self.specs.get(self.next) {
            Some(spec) if spec.name == name => Ok(spec.clone()),
            Some(spec) => Err(Error::BadWrite {
                path: self.out.dest().to_path_buf(),
                reason: format!("expected tensor `{}` next, got `{name}`", spec.name),
            }),
            None => Err(Error::BadWrite {
                path: self.out.dest().to_path_buf(),
                reason: format!(
                    "tensor `{name}` was not declared (all declared tensors are written)"
                ),
            }),
        }
    }

    /// Checks every tensor was written, fsyncs, and leaves the file ready to rename.
    pub fn finish_synced(self) -> Result<SyncedFile> {
        if let Some(missing) = self.specs.get(self.next) {
            return Err(Error::BadWrite {
                path: self.out.dest().to_path_buf(),
                reason: format!(
                    "{} of {} declared tensors unwritten, starting with `{}`; nothing was written",
                    self.specs.len() - self.next,
                    self.specs.len(),
                    missing.name
                ),
            });
        }
        self.out.sync()
    }

    /// Checks every tensor was written, then renames the file into place.
    pub fn finish(self) -> Result<()> {
        self.finish_synced()?.commit()
    }
}

#[cfg(feature = "tch")]
fn shape_of(tensor: &Tensor) -> Vec<usize> {
    tensor.size().iter().map(|&d| d as usize).collect()
}

/// The JSON header for `specs`, padded with spaces to a multiple of 8 bytes.
pub(super) fn header_bytes(
    path: &Path,
    specs: &[TensorSpec],
    metadata: &HashMap<String, String>,
) -> Result<Vec<u8>> {
    let mut seen = HashSet::new();
    let mut offset = 0usize;
    let mut infos = Vec::with_capacity(specs.len());
    for spec in specs {
        if spec.name == "__metadata__" || !seen.insert(spec.name.as_str()) {
            return Err(Error::BadWrite {
                path: path.to_path_buf(),
                reason: format!("tensor name `{}` is reserved or given twice", spec.name),
            });
        }
        let end = offset + spec.nbytes();
        infos.push((
            spec.name.clone(),
            TensorInfo {
                dtype: spec.dtype,
                shape: spec.shape.clone(),
                data_offsets: (offset, end),
            },
        ));
        offset = end;
    }
    // Validate offsets and sizes with the safetensors crate's own checks.
    Metadata::new(None, infos.clone()).map_err(|e| Error::BadWrite {
        path: path.to_path_buf(),
        reason: format!("invalid header: {e:?}"),
    })?;
    // Written by hand so the bytes are deterministic: metadata keys sorted,
    // tensors in the declared order.
    let json_err = |e: serde_json::Error| Error::BadWrite {
        path: path.to_path_buf(),
        reason: format!("header JSON: {e}"),
    };
    let mut entries = Vec::with_capacity(infos.len() + 1);
    if !metadata.is_empty() {
        let sorted: BTreeMap<&String, &String> = metadata.iter().collect();
        entries.push(format!(
            "\"__metadata__\":{}",
            serde_json::to_string(&sorted).map_err(json_err)?
        ));
    }
    for (name, info) in &infos {
        entries.push(format!(
            "{}:{{\"dtype\":{},\"shape\":{},\"data_offsets\":[{},{}]}}",
            serde_json::to_string(name).map_err(json_err)?,
            serde_json::to_string(&info.dtype).map_err(json_err)?,
            serde_json::to_string(&info.shape).map_err(json_err)?,
            info.data_offsets.0,
            info.data_offsets.1
        ));
    }
    let mut bytes = format!("{{{}}}", entries.join(",")).into_bytes();
    bytes.resize(bytes.len().div_ceil(8) * 8, b' ');
    Ok(bytes)
}

/// Splits `specs` (kept in order) into shards of at most `max_shard_bytes`
/// of data; a tensor larger than the limit gets a shard of its own, as
/// Hugging Face does. No limit gives one shard.
pub fn plan_shards(specs: &[TensorSpec], max_shard_bytes: Option<u64>) -> Vec<Vec<TensorSpec>> {
    let mut shards: Vec<Vec<TensorSpec>> = vec![Vec::new()];
    let mut size = 0u64;
    for spec in specs {
        let n = spec.nbytes() as u64;
        let current = shards.last_mut().expect("at least one shard");
        if let Some(max) = max_shard_bytes {
            if !current.is_empty() && size + n > max {
                shards.push(Vec::new());
                size = 0;
            }
        }
        shards
            .last_mut()
            .expect("at least one shard")
            .push(spec.clone());
        size += n;
    }
    shards
}

/// The file name of shard `i` (0-based) of `n`, as Hugging Face names them.
pub fn shard_file_name(i: usize, n: usize) -> String {
    if n == 1 {
        "model.safetensors".into()
    } else {
        format!("model-{:05}-of-{:05}.safetensors", i + 1, n)
    }
}

/// Writes a checkpoint directory in shards, tensor by tensor; see [`super::save_sharded`].
///
/// Shards are fsynced as they complete but renamed into place only by
/// [`finish`](Self::finish), index last; dropping the writer earlier removes them all.
pub struct ShardedWriter {
    dir: PathBuf,
    plan: Vec<Vec<TensorSpec>>,
    metadata: HashMap<String, String>,
    current: Option<SafetensorsWriter>,
    shard: usize,
    done: Vec<SyncedFile>,
    weight_map: BTreeMap<String, String>,
    total_size: u64,
}

impl ShardedWriter {
    /// Plans the shards of `specs` and opens the first; creates `dir` if needed.
    pub fn create(
        dir: impl AsRef<Path>,
        specs: Vec<TensorSpec>,
        metadata: &HashMap<String, String>,
        max_shard_bytes: Option<u64>,
    ) -> Result<Self> {
        let (dir, plan) = prepare_dir(dir.as_ref(), &specs, max_shard_bytes)?;
        let weight_map = weight_map(&plan);
        let total_size = specs.iter().map(|s| s.nbytes() as u64).sum();
        let mut writer = Self {
            dir,
            plan,
            metadata: metadata.clone(),
            current: None,
            shard: 0,
            done: Vec::new(),
            weight_map,
            total_size,
        };
        writer.open_shard()?;
        Ok(writer)
    }

    /// The number of shards planned.
    pub fn shard_count(&self) -> usize {
        self.plan.len()
    }

    fn open_shard(&mut self) -> Result<()> {
        let n = self.plan.len();
        let path = self.dir.join(shard_file_name(self.shard, n));
        let specs = self.plan[self.shard].clone();
        self.current = Some(SafetensorsWriter::create(path, specs, &self.metadata)?);
        Ok(())
    }

    fn advance(&mut self) -> Result<()> {
        while self
            .current
            .as_ref()
            .is_some_and(SafetensorsWriter::is_complete)
            && self.shard + 1 < self.plan.len()
        {
            let finished = self.current.take().expect("checked above");
            self.done.push(finished.finish_synced()?);
            self.shard += 1;
            self.open_shard()?;
        }
        Ok(())
    }

    /// Writes the next declared tensor.
    #[cfg(feature = "tch")]
    pub fn write(&mut self, name: &str, tensor: &Tensor) -> Result<()> {
        self.advance()?;
        self.writer()?.write(name, tensor)
    }

    /// Writes the next declared tensor from raw bytes.
    pub fn write_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.advance()?;
        self.writer()?.write_bytes(name, bytes)
    }

    fn writer(&mut self) -> Result<&mut SafetensorsWriter> {
        let dir = self.dir.clone();
        self.current.as_mut().ok_or_else(|| Error::BadWrite {
            path: dir,
            reason: "writer already finished".into(),
        })
    }

    /// Checks every tensor was written, renames all shards into place, then writes the index.
    pub fn finish(mut self) -> Result<()> {
        self.advance()?;
        let on_last_shard = self.shard + 1 == self.plan.len();
        let last = self.writer()?;
        if !last.is_complete() || !on_last_shard {
            let missing = last
                .expected_next()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            return Err(Error::BadWrite {
                path: self.dir.clone(),
                reason: format!(
                    "declared tensors unwritten, starting with `{missing}`; nothing was written"
                ),
            });
        }
        let last = self.current.take().expect("checked above");
        self.done.push(last.finish_synced()?);
        for file in self.done.drain(..) {
            file.commit()?;
        }
        if self.plan.len() > 1 {
            write_index(&self.dir, self.total_size, &self.weight_map)?;
        }
        Ok(())
    }
}

/// Creates `dir` (if needed) and plans the shards of `specs`; a zero limit
/// is refused.
pub(super) fn prepare_dir(
    dir: &Path,
    specs: &[TensorSpec],
    max_shard_bytes: Option<u64>,
) -> Result<(PathBuf, Vec<Vec<TensorSpec>>)> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    if max_shard_bytes == Some(0) {
        return Err(Error::Invalid("max_shard_bytes must be positive".into()));
    }
    Ok((dir.to_path_buf(), plan_shards(specs, max_shard_bytes)))
}

/// Where each tensor of a shard plan lives: its shard's file name.
pub(super) fn weight_map(plan: &[Vec<TensorSpec>]) -> BTreeMap<String, String> {
    let n = plan.len();
    let mut map = BTreeMap::new();
    for (i, shard) in plan.iter().enumerate() {
        for spec in shard {
            map.insert(spec.name.clone(), shard_file_name(i, n));
        }
    }
    map
}

/// Writes the Hugging Face index of a sharded checkpoint, atomically.
pub(super) fn write_index(
    dir: &Path,
    total_size: u64,
    weight_map: &BTreeMap<String, String>,
) -> Result<()> {
    let index = serde_json::json!({
        "metadata": { "total_size": total_size },
        "weight_map": weight_map,
    });
    let text = serde_json::to_string_pretty(&index).map_err(|e| Error::BadWrite {
        path: dir.join(INDEX_FILE),
        reason: e.to_string(),
    })?;
    write_atomic(dir.join(INDEX_FILE), text.as_bytes())
}
