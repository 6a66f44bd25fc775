//! A checkpoint writer for many threads at once: the layout (shards,
//! headers, offsets) is fixed up front from [`TensorSpec`]s, so each tensor's
//! bytes can go straight to their place in the file, in ranges, while other
//! threads write other tensors. Nothing needs a whole tensor in memory.

use super::TensorSpec;
use super::writer::{header_bytes, prepare_dir, shard_file_name, weight_map, write_index};
use crate::atomic::AtomicFile;
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes a (sharded) checkpoint directory whose tensors arrive in any
/// order, from any thread, each one front to back in one or more ranges.
///
/// Like [`ShardedWriter`](super::ShardedWriter), the shards are renamed into
/// place only by [`finish`](Self::finish), index last, and only when every
/// declared byte was written; dropping the writer earlier removes them all.
/// The files are the same bytes [`ShardedWriter`](super::ShardedWriter)
/// writes for the same specs, metadata and shard limit.
pub struct ParallelWriter {
    dir: PathBuf,
    shards: Vec<AtomicFile>,
    /// The declared tensors, in order.
    slots: Vec<Slot>,
    by_name: HashMap<String, usize>,
    weight_map: BTreeMap<String, String>,
    total_size: u64,
}

/// Where one tensor goes and how much of it has been written.
struct Slot {
    name: String,
    shard: usize,
    /// The tensor's first byte in its shard file.
    offset: u64,
    nbytes: u64,
    /// Bytes written so far (always a prefix of the tensor).
    written: AtomicU64,
}

impl ParallelWriter {
    /// Plans the shards of `specs` (at most `max_shard_bytes` of data each;
    /// `None`: one file) and writes their headers; creates `dir` if needed.
    pub fn create(
        dir: impl AsRef<Path>,
        specs: Vec<TensorSpec>,
        metadata: &HashMap<String, String>,
        max_shard_bytes: Option<u64>,
    ) -> Result<Self> {
        let (dir, plan) = prepare_dir(dir.as_ref(), &specs, max_shard_bytes)?;
        let n = plan.len();
        let mut shards = Vec::with_capacity(n);
        let mut slots = Vec::with_capacity(specs.len());
        for (i, shard) in plan.iter().enumerate() {
            let path = dir.join(shard_file_name(i, n));
            let header = header_bytes(&path, shard, metadata)?;
            let mut out = AtomicFile::create(&path)?;
            out.write_all(&(header.len() as u64).to_le_bytes())
                .and_then(|()| out.write_all(&header))
                .and_then(|()| out.flush())
                .map_err(|e| Error::io(&path, e))?;
            let mut offset = 8 + header.len() as u64;
            for spec in shard {
                let nbytes = spec.nbytes() as u64;
                slots.push(Slot {
                    name: spec.name.clone(),
                    shard: i,
                    offset,
                    nbytes,
                    written: AtomicU64::new(0),
                });
                offset += nbytes;
            }
            shards.push(out);
        }
        let by_name = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Ok(Self {
            dir,
            shards,
            slots,
            by_name,
            weight_map: weight_map(&plan),
            total_size: specs.iter().map(|s| s.nbytes() as u64).sum(),
        })
    }

    /// The number of shards planned.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn bad(&self, reason: String) -> Error {
        Error::BadWrite {
            path: self.dir.clone(),
            reason,
        }
    }

    /// Writes `bytes` of tensor `name` starting at byte `at` of the tensor.
    /// `at` must be where the tensor's earlier ranges ended (tensors are
    /// written front to back), and the range must fit the declared size.
    pub fn write_range(&self, name: &str, at: u64, bytes: &[u8]) -> Result<()> {
        let slot = self
            .by_name
            .get(name)
            .map(|&i| &self.slots[i])
            .ok_or_else(|| self.bad(format!("tensor `{name}` was not declared")))?;
        let end = at.saturating_add(bytes.len() as u64);
        if end > slot.nbytes {
            return Err(self.bad(format!(
                "tensor `{name}` declared {} bytes; a write of {} bytes at {at} runs past it",
                slot.nbytes,
                bytes.len()
            )));
        }
        // Claim the range first, so two threads cannot write the same bytes.
        slot.written
            .compare_exchange(at, end, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|done| {
                self.bad(format!(
                    "tensor `{name}` is written front to back: {done} bytes written, a write starts at {at}"
                ))
            })?;
        let out = &self.shards[slot.shard];
        let file = out
            .file()
            .ok_or_else(|| self.bad("writer already finished".into()))?;
        file.write_all_at(bytes, slot.offset + at)
            .map_err(|e| Error::io(out.temp_path(), e))
    }

    /// Writes the whole of tensor `name` at once.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.write_range(name, 0, bytes)?;
        self.check_complete(name)
    }

    /// Errs unless every byte of tensor `name` has been written.
    pub fn check_complete(&self, name: &str) -> Result<()> {
        let slot = self
            .by_name
            .get(name)
            .map(|&i| &self.slots[i])
            .ok_or_else(|| self.bad(format!("tensor `{name}` was not declared")))?;
        let done = slot.written.load(Ordering::Acquire);
        if done != slot.nbytes {
            return Err(self.bad(format!(
                "tensor `{name}` declared {} bytes, {done} written",
                slot.nbytes
            )));
        }
        Ok(())
    }

    /// Checks every declared byte was written, fsyncs and renames all shards
    /// into place, then writes the index (when there are several shards).
    pub fn finish(self) -> Result<()> {
        let missing: Vec<&Slot> = self
            .slots
            .iter()
            .filter(|s| s.written.load(Ordering::Acquire) != s.nbytes)
            .collect();
        if let Some(first) = missing.first() {
            return Err(self.bad(format!(
                "{} of {} declared tensors not fully written, starting with `{}` ({} of {} bytes); nothing was written",
                missing.len(),
                self.slots.len(),
                first.name,
                first.written.load(Ordering::Acquire),
                first.nbytes
            )));
        }
        let synced = self
            .shards
            .into_iter()
            .map(AtomicFile::sync)
            .collect::<Result<Vec<_>>>()?;
        let several = synced.len() > 1;
        for file in synced {
            file.commit()?;
        }
        if several {
            write_index(&self.dir, self.total_size, &self.weight_map)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safetensors::{Dtype, ShardedWriter};

    fn specs() -> Vec<TensorSpec> {
        [("a", 3usize), ("b", 0), ("c", 5), ("d", 2)]
            .iter()
            .map(|&(n, len)| TensorSpec {
                name: n.into(),
                dtype: Dtype::F32,
                shape: vec![len],
            })
            .collect()
    }

    fn bytes_of(spec: &TensorSpec) -> Vec<u8> {
        (0..spec.nbytes())
            .map(|i| (i as u8).wrapping_mul(31) ^ spec.name.as_bytes()[0])
            .collect()
    }

    fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn out_of_order_ranges_give_the_sequential_writers_bytes() {
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        for shard in [None, Some(12)] {
            let tmp = tempfile::tempdir().unwrap();
            let (seq, par) = (tmp.path().join("seq"), tmp.path().join("par"));
            let mut w = ShardedWriter::create(&seq, specs(), &meta, shard).unwrap();
            for s in specs() {
                w.write_bytes(&s.name, &bytes_of(&s)).unwrap();
            }
            w.finish().unwrap();
            let p = ParallelWriter::create(&par, specs(), &meta, shard).unwrap();
            for s in specs().iter().rev() {
                let b = bytes_of(s);
                let mut at = 0;
                for piece in b.chunks(3) {
                    p.write_range(&s.name, at as u64, piece).unwrap();
                    at += piece.len();
                }
                p.check_complete(&s.name).unwrap();
            }
            p.finish().unwrap();
            assert_eq!(read_dir(&seq), read_dir(&par), "shard limit {shard:?}");
        }
    }

    #[test]
    fn gaps_overlaps_overruns_and_missing_tensors_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let p = ParallelWriter::create(&dir, specs(), &HashMap::new(), None).unwrap();
        assert!(p.write_range("a", 4, &[0; 4]).is_err(), "gap");
        p.write_range("a", 0, &[0; 8]).unwrap();
        assert!(p.write_range("a", 4, &[0; 4]).is_err(), "overlap");
        assert!(p.write_range("a", 8, &[0; 8]).is_err(), "overrun");
        assert!(p.write_range("zz", 0, &[0; 4]).is_err(), "undeclared");
        assert!(p.check_complete("a").is_err());
        let err = p.finish().unwrap_err().to_string();
        assert!(err.contains("`a` (8 of 12 bytes)"), "{err}");
        assert!(!dir.join("model.safetensors").exists());
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "temp files left"
        );
    }
}
