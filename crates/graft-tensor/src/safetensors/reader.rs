//! One safetensors file, memory-mapped; tensors are read one at a time on demand.

use super::TensorSpec;
#[cfg(feature = "tch")]
use crate::dtype;
use crate::{Error, Result};
use ::safetensors::SafeTensorError;
use ::safetensors::tensor::{Metadata, SafeTensors};
use memmap2::Mmap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
#[cfg(feature = "tch")]
use tch::{Kind, Tensor};

/// A memory-mapped safetensors file. Opening parses and validates the header
/// only; tensor data is paged in when a tensor is read.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
    data_start: usize,
    metadata: Metadata,
    order: Vec<String>,
}

impl std::fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("path", &self.path)
            .field("tensors", &self.order.len())
            .finish()
    }
}

impl SafetensorsFile {
    /// Opens and validates `path`: a bad length prefix, bad JSON, overlapping
    /// offsets or a truncated data section are errors naming the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = crate::input::open_regular(&path)?;
        // SAFETY: the map is read-only; graft never writes a file it has mapped
        // (writes go to a temporary file and are renamed), but another process
        // truncating the file while it is mapped would fault, as with any mmap.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
        let (header_len, metadata) = read_metadata(&path, &mmap)?;
        let order = storage_order(&mmap[8..8 + header_len], &metadata);
        Ok(Self {
            path,
            mmap,
            data_start: 8 + header_len,
            metadata,
            order,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names in the order their data is stored.
    pub fn names(&self) -> &[String] {
        &self.order
    }

    /// Whether the file holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.metadata.info(name).is_some()
    }

    /// The `__metadata__` string map (empty when the file has none).
    pub fn metadata(&self) -> HashMap<String, String> {
        self.metadata.metadata().clone().unwrap_or_default()
    }

    /// Name, dtype and shape of `name`.
    pub fn spec(&self, name: &str) -> Result<TensorSpec> {
        let info = self.metadata.info(name).ok_or_else(|| self.missing(name))?;
        Ok(TensorSpec {
            name: name.to_string(),
            dtype: info.dtype,
            shape: info.shape.clone(),
        })
    }

    /// Specs of every tensor, in storage order.
    pub fn specs(&self) -> Vec<TensorSpec> {
        self.order
            .iter()
            .filter_map(|n| self.spec(n).ok())
            .collect()
    }

    /// The raw little-endian bytes of `name`, borrowed from the map.
    pub fn bytes(&self, name: &str) -> Result<&[u8]> {
        let info = self.metadata.info(name).ok_or_else(|| self.missing(name))?;
        let (start, end) = info.data_offsets;
        // read_metadata checked that the offsets tile the data section exactly.
        Ok(&self.mmap[self.data_start + start..self.data_start + end])
    }

    /// Drops this process's resident pages for bytes `start..start + len` of
    /// tensor `name`'s data (`MADV_DONTNEED`, rounded inwards to whole
    /// pages), so that streaming through a large checkpoint does not keep
    /// it all resident. The bytes stay readable: the next access reads them
    /// again from the page cache or the file. Out-of-range spans are clipped.
    pub fn release(&self, name: &str, start: usize, len: usize) -> Result<()> {
        let info = self.metadata.info(name).ok_or_else(|| self.missing(name))?;
        let (t0, t1) = info.data_offsets;
        let begin = self.data_start + t0 + start.min(t1 - t0);
        let end = self.data_start + t0 + start.saturating_add(len).min(t1 - t0);
        let page = 4096;
        let (a, b) = (begin.div_ceil(page) * page, end / page * page);
        if b > a {
            // SAFETY: the map is a private, read-only mapping of a file graft
            // does not modify; MADV_DONTNEED only drops resident pages, which
            // are read back from the file on the next access, so borrowed
            // slices keep seeing the same bytes.
            unsafe {
                self.mmap
                    .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, a, b - a)
            }
            .map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }

    /// Reads `name` into a new CPU tensor (one copy out of the map).
    #[cfg(feature = "tch")]
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let spec = self.spec(name)?;
        let kind = dtype::from_safetensors(spec.dtype, name)?;
        let bytes = self.bytes(name)?;
        let shape: Vec<i64> = spec.shape.iter().map(|&d| d as i64).collect();
        Ok(Tensor::f_from_data_size(bytes, &shape, kind)?)
    }

    /// Reads `name`, checking it has the expected kind and shape.
    #[cfg(feature = "tch")]
    pub fn tensor_checked(&self, name: &str, kind: Kind, shape: &[usize]) -> Result<Tensor> {
        let spec = self.spec(name)?;
        spec.check(&self.path, kind, shape)?;
        self.tensor(name)
    }

    fn missing(&self, name: &str) -> Error {
        Error::MissingTensor {
            name: name.to_string(),
            path: self.path.clone(),
        }
    }
}

/// Parses and validates the header of the safetensors bytes `bytes` (the
/// whole file: length prefix, header, data) as [`SafetensorsFile::open`]
/// does, returning the tensors in storage order; `origin` names the bytes
/// in errors. Exposed for fuzzing and for callers holding a file in memory.
pub fn parse_header(bytes: &[u8], origin: &Path) -> Result<Vec<TensorSpec>> {
    let (header_len, metadata) = read_metadata(origin, bytes)?;
    let order = storage_order(&bytes[8..8 + header_len], &metadata);
    Ok(order
        .into_iter()
        .filter_map(|name| {
            let info = metadata.info(&name)?;
            Some(TensorSpec {
                dtype: info.dtype,
                shape: info.shape.clone(),
                name,
            })
        })
        .collect())
}

/// safetensors' `read_metadata`, behind a guard: that function adds the
/// largest end offset, 8 and the header length unchecked (safetensors 0.8.0,
/// `src/tensor.rs`), so offsets near 2^64 overflow (a panic in builds with
/// overflow checks, found by fuzzing). A header whose offsets reach past the
/// file is refused here first, as the truncation it describes.
fn read_metadata(path: &Path, bytes: &[u8]) -> Result<(usize, Metadata)> {
    if let Some(header_len) = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        && let Some(end) = data_len_in_header(bytes, header_len)
        && end > bytes.len() as u64
    {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            expected: end,
            actual: bytes.len() as u64,
        });
    }
    SafeTensors::read_metadata(bytes).map_err(|err| header_error(path, bytes, err))
}

/// Turns a header parse failure into an error that says what is wrong with `path`.
fn header_error(path: &Path, bytes: &[u8], err: SafeTensorError) -> Error {
    let actual = bytes.len() as u64;
    let declared_header = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    match err {
        SafeTensorError::HeaderTooSmall => Error::Truncated {
            path: path.to_path_buf(),
            expected: 8,
            actual,
        },
        SafeTensorError::InvalidHeaderLength => Error::Truncated {
            path: path.to_path_buf(),
            expected: 8 + declared_header.unwrap_or(0),
            actual,
        },
        SafeTensorError::MetadataIncompleteBuffer => {
            let expected = declared_header
                .and_then(|n| data_len_in_header(bytes, n))
                .unwrap_or(0);
            Error::Truncated {
                path: path.to_path_buf(),
                expected,
                actual,
            }
        }
        other => Error::BadHeader {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

/// 8 + header + the end of the last tensor's data, read from a header that parses.
fn data_len_in_header(bytes: &[u8], header_len: u64) -> Option<u64> {
    let header = bytes.get(8..(header_len as usize).saturating_add(8))?;
    let json: HashMap<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let end = json
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(_, v)| v["data_offsets"][1].as_u64())
        .max()
        .unwrap_or(0);
    // Offsets near 2^64 (which read_metadata's own sum wraps past) must not
    // overflow here: the file then needs more bytes than any can hold.
    Some(header_len.saturating_add(8).saturating_add(end))
}

/// Tensor names by data offset; zero-sized tensors (which share an offset
/// with their neighbour) keep their position in the header's JSON.
fn storage_order(header: &[u8], metadata: &Metadata) -> Vec<String> {
    let json_order = json_key_order(header).unwrap_or_default();
    let position: HashMap<&str, usize> = json_order
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let mut names = metadata.offset_keys();
    names.sort_by_key(|n| {
        let offsets = metadata.info(n).map_or((0, 0), |i| i.data_offsets);
        (
            offsets.0,
            offsets.1,
            position.get(n.as_str()).copied().unwrap_or(usize::MAX),
        )
    });
    names
}

/// The keys of a JSON object in the order they appear.
fn json_key_order(header: &[u8]) -> Option<Vec<String>> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(k) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    serde_json::from_slice::<Keys>(header).ok().map(|k| k.0)
}
