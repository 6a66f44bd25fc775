//! Merging checkpoint files: reads the base and the
//! models one tensor at a time (memory-mapped), merges each float tensor with
//! [`crate::chunked::merge_chunked`], and streams each merged chunk straight
//! to its place in a sharded safetensors directory
//! ([`graft_tensor::safetensors::ParallelWriter`]) built beside the output
//! and renamed into place at the end.
//!
//! Worker threads take tensors one at a time, in any order; the file layout
//! is fixed up front, so the bytes do not depend on the order or the thread
//! count. Within a tensor the merge streams in chunks ([`crate::chunked`]),
//! releases the mapped input pages behind it and writes each merged chunk at
//! once, so no whole tensor is ever held: the anonymous memory of a merge is
//! about `threads × (n + 3) × chunk_elems × 4` bytes (n models, the base,
//! the merged chunk and its encoding) plus the chunk buffers each thread
//! keeps for reuse (at most 16 per thread) and TIES' or PCB's 2¹⁶-bucket
//! histograms, whatever the model or tensor size. Mapped input pages count
//! as file-backed memory while a chunk is in use, and are released behind it.
//! `scope = global` (TIES, PCB) streams the flattened model — the float
//! tensors in the base's order — through one chunked merge, in one thread:
//! TIES' and PCB's global quantiles come from shared read passes over the
//! whole model, so memory stays bounded the same way.

use crate::chunked::{ChunkModel, Source, merge_chunked};
pub use crate::codec::{decode_f32, encode_f32};
use crate::codec::{decode_into, encode_extend, is_float};
use crate::config::{MergeConfig, Scope};
use crate::dtype::DType;
use crate::param::{layer_count, layer_index};
use crate::types::Method;
use crate::{Error, Result};
use graft_tensor::atomic::StagingDir;
use graft_tensor::output::OutputRules;
use graft_tensor::safetensors::{Checkpoint, Dtype, ParallelWriter, TensorSpec};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How to run a merge (beyond what the configuration says).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Largest shard in bytes (`None`: one file).
    pub max_shard_bytes: Option<u64>,
    /// Worker threads merging tensors in parallel (0: one per core). Every
    /// tensor is merged on its own, so the thread count changes no bit.
    pub threads: usize,
    /// Elements per chunk when streaming through a tensor (the chunk size
    /// changes no bit either).
    pub chunk_elems: usize,
    /// Replace an existing output directory that an earlier graft command
    /// wrote (never one holding anything else; see
    /// [`graft_tensor::output::OutputRules`]).
    pub force: bool,
    /// Copy the base's values for tensors graft cannot merge (integer and
    /// 8-bit float dtypes) even when the models' values differ, with a
    /// warning; by default that is an error ([`Error::Unmergeable`]).
    pub copy_unmergeable: bool,
}

/// The most worker threads a merge may use.
pub const MAX_THREADS: usize = 1024;

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            max_shard_bytes: Some(5_000_000_000),
            threads: 0,
            chunk_elems: 1 << 20,
            force: false,
            copy_unmergeable: false,
        }
    }
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MergeReport {
    /// Float tensors merged.
    pub merged: usize,
    /// Other tensors copied from the base.
    pub copied: usize,
    /// Bytes of tensor data read.
    pub bytes_read: u64,
    /// Bytes of tensor data written.
    pub bytes_written: u64,
    /// Wall time in seconds.
    pub wall_s: f64,
    /// Things the user should know (degenerate weights, copied tensors);
    /// each is also logged as a `tracing` warning.
    pub warnings: Vec<String>,
}

fn open(path: &Path) -> Result<Checkpoint> {
    Ok(Checkpoint::open(path)?)
}

/// Where a merge stands, reported after each tensor is written, in the order
/// they complete (the library
/// draws nothing: the `graft` command turns these into a progress bar).
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The tensor just written.
    pub tensor: &'a str,
    /// Bytes of base tensor data done so far.
    pub done_bytes: u64,
    /// Bytes of base tensor data in all.
    pub total_bytes: u64,
}

/// Runs the merge `config` describes and writes the merged model to `out_dir`
/// (a directory with `model.safetensors` or shards and an index, plus the
/// base's `config.json`). Nothing appears at `out_dir` unless the merge succeeds.
pub fn run_merge(
    config: &MergeConfig,
    out_dir: &Path,
    options: &RunOptions,
) -> Result<MergeReport> {
    run_merge_with_progress(config, out_dir, options, &mut |_| {})
}

/// [`run_merge`], calling `progress` after each tensor is written.
pub fn run_merge_with_progress(
    config: &MergeConfig,
    out_dir: &Path,
    options: &RunOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<MergeReport> {
    let started = Instant::now();
    // Cheap checks first: nothing is mapped or created before they pass.
    config.validate()?;
    if options.threads > MAX_THREADS {
        return Err(Error::BadOption {
            option: "threads".into(),
            reason: format!(
                "{} threads asked for; at most {MAX_THREADS} (0 = one per core)",
                options.threads
            ),
        });
    }
    if options.chunk_elems == 0 {
        return Err(Error::BadOption {
            option: "chunk_elems".into(),
            reason: "must be at least 1".into(),
        });
    }
    if options.max_shard_bytes == Some(0) {
        return Err(Error::BadOption {
            option: "max_shard_bytes".into(),
            reason: "must be positive".into(),
        });
    }
    let base_path = config
        .base_model
        .clone()
        .unwrap_or_else(|| config.models[0].path.clone());
    let paths: Vec<PathBuf> = config.models.iter().map(|m| m.path.clone()).collect();
    check_distinct(&paths)?;
    let rules = OutputRules::new()
        .force(options.force)
        .input(&base_path)
        .inputs(paths.iter().cloned());
    rules.check(out_dir)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()
        .map_err(|e| Error::BadOption {
            option: "threads".into(),
            reason: format!("cannot start {} threads: {e}", options.threads),
        })?;
    let base = open(&base_path)?;
    let models: Vec<Checkpoint> = paths.iter().map(|p| open(p)).collect::<Result<_>>()?;
    let ids: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let base_specs = base.specs()?;
    let layers = layer_count(base_specs.iter().map(|s| s.name.as_str()));
    let mut warnings = validate(&base, &base_path, &models, &paths, options.copy_unmergeable)?;
    warnings.extend(degenerate_weights(config, &base_specs, layers));
    for w in &warnings {
        tracing::warn!("{w}");
    }

    let out_dtype = config.out_dtype.or(config.dtype).map(DType::safetensors);
    let out_specs: Vec<TensorSpec> = base_specs
        .iter()
        .map(|s| TensorSpec {
            dtype: if is_float(s.dtype) {
                out_dtype.unwrap_or(s.dtype)
            } else {
                s.dtype
            },
            ..s.clone()
        })
        .collect();

    let mut metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    metadata.insert("graft.version".into(), env!("CARGO_PKG_VERSION").into());
    metadata.insert(
        "graft.merge".into(),
        serde_json::to_string(config).unwrap_or_default(),
    );

    let staging = StagingDir::create(out_dir, &rules, "graft merge")?;
    let writer = ParallelWriter::create(
        staging.path(),
        out_specs.clone(),
        &metadata,
        options.max_shard_bytes,
    )?;
    let total: u64 = base_specs.iter().map(|s| s.nbytes() as u64).sum();
    let mut done_bytes = 0u64;

    let mut report = MergeReport {
        merged: 0,
        copied: 0,
        bytes_read: 0,
        bytes_written: 0,
        wall_s: 0.0,
        warnings,
    };
    let jobs: Vec<(&TensorSpec, &TensorSpec)> = base_specs.iter().zip(&out_specs).collect();
    let job = Job {
        config,
        base: &base,
        models: &models,
        ids: &ids,
        layers,
        chunk: options.chunk_elems,
        writer: &writer,
    };
    let mut record = |spec: &TensorSpec, done: Written| {
        report.bytes_read += done.bytes_read;
        report.bytes_written += done.bytes_written;
        if done.copied {
            report.copied += 1;
        } else {
            report.merged += 1;
        }
        done_bytes += spec.nbytes() as u64;
        progress(Progress {
            tensor: &spec.name,
            done_bytes,
            total_bytes: total,
        });
    };
    if config.scope == Scope::Global && matches!(config.method, Method::Ties | Method::Pcb(_)) {
        job.global(&jobs, &mut record)?;
    } else {
        // Workers take tensors as they free up; this thread reports each one
        // as it completes (the callback need not be thread-safe).
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Written)>();
        std::thread::scope(|scope| -> Result<()> {
            let jobs = &jobs;
            let job = &job;
            let pool = &pool;
            let workers = scope.spawn(move || {
                pool.install(|| {
                    use rayon::prelude::*;
                    jobs.par_iter().enumerate().try_for_each_with(
                        tx,
                        |tx, (i, (spec, out_spec))| {
                            let done = job.tensor(spec, out_spec)?;
                            // The receiver lives until every sender is gone.
                            let _ = tx.send((i, done));
                            Ok(())
                        },
                    )
                })
            });
            for (i, done) in rx {
                record(jobs[i].0, done);
            }
            match workers.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })?;
    }
    writer.finish()?;
    let config_json = base_dir(&base_path).join("config.json");
    if config_json.is_file() {
        let dest = staging.path().join("config.json");
        std::fs::copy(&config_json, &dest).map_err(|e| Error::Io {
            path: config_json.clone(),
            source: e,
        })?;
    }
    staging.commit()?;
    report.wall_s = started.elapsed().as_secs_f64();
    tracing::info!(merged = report.merged, copied = report.copied, wall_s = report.wall_s, out = %out_dir.display(), "merge done");
    Ok(report)
}

/// What writing one merged (or copied) tensor took.
struct Written {
    bytes_read: u64,
    bytes_written: u64,
    copied: bool,
}

thread_local! {
    /// Each thread's buffer for encoding merged chunks, kept between tensors.
    static ENCODED: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Encodes `values` as `dtype` into this thread's reused buffer and writes
/// them as the bytes of tensor `name` from byte `at` on.
fn write_encoded(
    writer: &ParallelWriter,
    name: &str,
    at: u64,
    dtype: Dtype,
    values: &[f32],
) -> Result<u64> {
    let mut buf = ENCODED.take();
    buf.clear();
    let ok = encode_extend(dtype, values, &mut buf);
    let result = if ok {
        writer
            .write_range(name, at, &buf)
            .map(|()| buf.len() as u64)
            .map_err(Error::from)
    } else {
        Err(Error::Mismatch {
            tensor: name.into(),
            reason: format!("cannot write dtype {dtype:?}"),
        })
    };
    ENCODED.set(buf);
    result
}

/// One tensor of one checkpoint as a chunked [`Source`]: decodes ranges of
/// its bytes and releases the mapped pages it has been through.
struct FileSource<'a> {
    file: &'a graft_tensor::safetensors::SafetensorsFile,
    name: &'a str,
    dtype: Dtype,
    bytes: &'a [u8],
}

impl<'a> FileSource<'a> {
    fn new(ckpt: &'a Checkpoint, name: &'a str) -> Result<Self> {
        let file = ckpt.file_of(name)?;
        Ok(Self {
            file,
            name,
            dtype: file.spec(name)?.dtype,
            bytes: file.bytes(name)?,
        })
    }

    fn width(&self) -> usize {
        self.dtype.bitsize() / 8
    }
}

impl Source for FileSource<'_> {
    fn len(&self) -> usize {
        self.bytes.len() / self.width()
    }

    fn read(&self, start: usize, out: &mut [f32]) -> Result<()> {
        let w = self.width();
        if !decode_into(
            self.dtype,
            &self.bytes[start * w..(start + out.len()) * w],
            out,
        ) {
            return Err(Error::Mismatch {
                tensor: self.name.into(),
                reason: format!("dtype {:?} is not a float type", self.dtype),
            });
        }
        Ok(())
    }

    fn release(&self, start: usize, len: usize) {
        let w = self.width();
        release_behind(self.file, self.name, start * w, len * w);
    }
}

/// The page size `madvise` works in.
const PAGE: usize = 4096;

/// Drops the mapped pages of bytes `start .. start + len` of tensor `name`
/// once a front-to-back reader is done with them. `release` keeps the pages
/// a range only partly covers; reaching one page back also drops the page
/// the previous range ended in, so no page per range stays behind. Best
/// effort: a failed madvise only costs memory.
fn release_behind(
    file: &graft_tensor::safetensors::SafetensorsFile,
    name: &str,
    start: usize,
    len: usize,
) {
    let back = start.min(PAGE);
    let _ = file.release(name, start - back, len + back);
}

/// What every tensor's merge reads.
struct Job<'a> {
    config: &'a MergeConfig,
    base: &'a Checkpoint,
    models: &'a [Checkpoint],
    ids: &'a [String],
    layers: Option<usize>,
    chunk: usize,
    /// Where merged chunks go.
    writer: &'a ParallelWriter,
}

impl Job<'_> {
    /// Copies a tensor the merge leaves alone from the base, a chunk's worth
    /// of bytes at a time, releasing the mapped pages behind it.
    fn copy(&self, spec: &TensorSpec) -> Result<Written> {
        let file = self.base.file_of(&spec.name)?;
        let bytes = file.bytes(&spec.name)?;
        let step = (self.chunk * 4).max(1);
        for (i, piece) in bytes.chunks(step).enumerate() {
            self.writer
                .write_range(&spec.name, (i * step) as u64, piece)?;
            release_behind(file, &spec.name, i * step, piece.len());
        }
        self.writer.check_complete(&spec.name)?;
        Ok(Written {
            bytes_read: bytes.len() as u64,
            bytes_written: bytes.len() as u64,
            copied: true,
        })
    }

    /// Merges (or copies) one tensor, writing it chunk by chunk.
    fn tensor(&self, spec: &TensorSpec, out_spec: &TensorSpec) -> Result<Written> {
        if !is_float(spec.dtype) {
            return self.copy(spec);
        }
        let layer = layer_index(&spec.name).zip(self.layers);
        let base_source = FileSource::new(self.base, &spec.name)?;
        let sources: Vec<FileSource> = self
            .models
            .iter()
            .map(|m| FileSource::new(m, &spec.name))
            .collect::<Result<_>>()?;
        let bytes_read = base_source.bytes.len() as u64
            + sources.iter().map(|s| s.bytes.len() as u64).sum::<u64>();
        let models = chunk_models(self.config, self.ids, &spec.name, layer, &sources)?;
        let base_arg: Option<&dyn Source> = if self.config.method == Method::Linear {
            None
        } else {
            Some(&base_source)
        };
        let params = self.config.params_for(&spec.name, layer)?;
        let mut at = 0u64;
        merge_chunked(
            &self.config.method,
            &params,
            &spec.name,
            base_arg,
            &models,
            self.chunk,
            &mut |part: &[f32]| {
                at += write_encoded(self.writer, &spec.name, at, out_spec.dtype, part)?;
                Ok(())
            },
        )?;
        self.writer.check_complete(&spec.name)?;
        Ok(Written {
            bytes_read,
            bytes_written: at,
            copied: false,
        })
    }
}

impl Job<'_> {
    /// Global scope: merges the flattened model — the float tensors in the
    /// base's order, one segment — in one chunked stream (so the TIES trim
    /// thresholds and the paper's majority sign are over the whole model),
    /// and hands each tensor to `write` as it completes, copying the
    /// non-float ones in their places. Memory stays bounded by chunks and
    /// the largest tensor.
    fn global(
        &self,
        jobs: &[(&TensorSpec, &TensorSpec)],
        record: &mut dyn FnMut(&TensorSpec, Written),
    ) -> Result<()> {
        if let Some(m) = self
            .config
            .models
            .iter()
            .find(|m| !m.weight.is_uniform() || !m.density.is_uniform())
        {
            return Err(Error::Config {
                origin: "<config>".into(),
                key: format!("{}: parameters", m.path.display()),
                reason:
                    "scope = global needs one weight and density per model (no gradients or filters)"
                        .into(),
            });
        }
        if self.config.lambda.is_some() {
            return Err(Error::Config {
                origin: "<config>".into(),
                key: "parameters.lambda".into(),
                reason: "scope = global needs one lambda (no gradients or filters)".into(),
            });
        }
        let floats: Vec<&str> = jobs
            .iter()
            .filter(|(s, _)| is_float(s.dtype))
            .map(|(s, _)| s.name.as_str())
            .collect();
        let base_source = ConcatSource::open(self.base, &floats)?;
        let sources: Vec<ConcatSource> = self
            .models
            .iter()
            .map(|m| ConcatSource::open(m, &floats))
            .collect::<Result<_>>()?;
        let models = chunk_models(self.config, self.ids, GLOBAL, None, &sources)?;

        // The sink fills tensors in declared order, writing each piece at
        // once; non-float tensors are copied as they are reached, and empty
        // float ones (which receive no elements) completed.
        let mut next = 0usize;
        let mut filled = 0usize;
        let mut written = 0u64;
        let skip_done =
            |next: &mut usize, record: &mut dyn FnMut(&TensorSpec, Written)| -> Result<()> {
                while let Some((spec, _)) = jobs.get(*next) {
                    if !is_float(spec.dtype) {
                        record(spec, self.copy(spec)?);
                    } else if spec.numel() == 0 {
                        self.writer.check_complete(&spec.name)?;
                        record(
                            spec,
                            Written {
                                bytes_read: 0,
                                bytes_written: 0,
                                copied: false,
                            },
                        );
                    } else {
                        break;
                    }
                    *next += 1;
                }
                Ok(())
            };
        skip_done(&mut next, record)?;
        merge_chunked(
            &self.config.method,
            &self.config.params,
            GLOBAL,
            Some(&base_source),
            &models,
            self.chunk,
            &mut |mut part: &[f32]| {
                while !part.is_empty() {
                    let Some((spec, out_spec)) = jobs.get(next) else {
                        break;
                    };
                    let take = (spec.numel() - filled).min(part.len());
                    written += write_encoded(
                        self.writer,
                        &spec.name,
                        written,
                        out_spec.dtype,
                        &part[..take],
                    )?;
                    filled += take;
                    part = &part[take..];
                    if filled == spec.numel() {
                        self.writer.check_complete(&spec.name)?;
                        record(
                            spec,
                            Written {
                                bytes_read: (spec.nbytes() * (1 + self.models.len())) as u64,
                                bytes_written: written,
                                copied: false,
                            },
                        );
                        filled = 0;
                        written = 0;
                        next += 1;
                        skip_done(&mut next, record)?;
                    }
                }
                Ok(())
            },
        )
    }
}

/// The segment name of a global-scope merge (keys its random streams).
const GLOBAL: &str = "__global__";

/// Tensors of one checkpoint read as one flat [`Source`], in order.
struct ConcatSource<'a> {
    parts: Vec<FileSource<'a>>,
    /// `starts[i]` is the flat index of part `i`'s first element.
    starts: Vec<usize>,
    len: usize,
}

impl<'a> ConcatSource<'a> {
    /// The tensors `names` of `ckpt`, in that order.
    fn open(ckpt: &'a Checkpoint, names: &[&'a str]) -> Result<Self> {
        let parts = names
            .iter()
            .map(|n| FileSource::new(ckpt, n))
            .collect::<Result<Vec<_>>>()?;
        let mut starts = Vec::with_capacity(parts.len());
        let mut len = 0;
        for p in &parts {
            starts.push(len);
            len += p.len();
        }
        Ok(Self { parts, starts, len })
    }

    /// Calls `f(part, offset in part, offset in the range, count)` for the
    /// parts overlapping elements `start .. start + len`.
    fn each_part(
        &self,
        start: usize,
        len: usize,
        mut f: impl FnMut(&FileSource<'a>, usize, usize, usize) -> Result<()>,
    ) -> Result<()> {
        let end = start + len;
        let first = self
            .starts
            .partition_point(|&s| s <= start)
            .saturating_sub(1);
        for (part, &at) in self.parts.iter().zip(&self.starts).skip(first) {
            if at >= end {
                break;
            }
            let from = start.max(at);
            let to = end.min(at + part.len());
            if from < to {
                f(part, from - at, from - start, to - from)?;
            }
        }
        Ok(())
    }
}

impl Source for ConcatSource<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn read(&self, start: usize, out: &mut [f32]) -> Result<()> {
        self.each_part(start, out.len(), |part, at, pos, count| {
            part.read(at, &mut out[pos..pos + count])
        })
    }

    fn release(&self, start: usize, len: usize) {
        let _ = self.each_part(start, len, |part, at, _, count| {
            part.release(at, count);
            Ok(())
        });
    }
}

fn base_dir(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

/// Each model's `(id, weight, density)` for `tensor` (gradients and filters resolved).
fn model_params(
    config: &MergeConfig,
    ids: &[String],
    tensor: &str,
    layer: Option<(usize, usize)>,
) -> Result<Vec<(String, f32, f64)>> {
    config
        .models
        .iter()
        .zip(ids)
        .map(|(m, id)| {
            let weight = m
                .weight
                .resolve(tensor, layer)
                .ok_or_else(|| no_value(tensor, id, "weight"))?;
            let density = m
                .density
                .resolve(tensor, layer)
                .ok_or_else(|| no_value(tensor, id, "density"))?;
            Ok((id.clone(), weight as f32, density))
        })
        .collect()
}

/// The models of one segment: their sources with the weight and density
/// that apply to `tensor`.
pub(crate) fn chunk_models<'s, S: Source>(
    config: &MergeConfig,
    ids: &[String],
    tensor: &str,
    layer: Option<(usize, usize)>,
    sources: &'s [S],
) -> Result<Vec<ChunkModel<'s>>> {
    Ok(model_params(config, ids, tensor, layer)?
        .into_iter()
        .zip(sources)
        .map(|((id, weight, density), source)| ChunkModel {
            id,
            weight,
            density,
            source,
        })
        .collect())
}

fn no_value(tensor: &str, model: &str, what: &str) -> Error {
    Error::Config {
        origin: "<config>".into(),
        key: format!("{model}: {what}"),
        reason: format!("no filter matches tensor `{tensor}` and there is no fallback value"),
    }
}

/// Models must be distinct files: the same checkpoint twice is almost
/// always a typo, and their random streams (DARE) would coincide.
fn check_distinct(paths: &[PathBuf]) -> Result<()> {
    let mut seen = std::collections::HashMap::new();
    for p in paths {
        let key = p.canonicalize().unwrap_or_else(|_| p.clone());
        if let Some(first) = seen.insert(key, p) {
            return Err(Error::DuplicateModel(if first == p {
                p.display().to_string()
            } else {
                format!("{} (also listed as {})", p.display(), first.display())
            }));
        }
    }
    Ok(())
}

/// Warnings for weights that make mergekit's normalisation degenerate:
/// where the weights of a tensor sum to 0, `normalize` divides by 1
/// instead (mergekit's rule), so the result is the raw weighted sum. (TIES
/// normalises per element over the models that agree with the elected
/// sign, which no static check can foresee.)
fn degenerate_weights(
    config: &MergeConfig,
    specs: &[TensorSpec],
    layers: Option<usize>,
) -> Vec<String> {
    let normalize = match config.method {
        Method::Linear => config.params.normalize.unwrap_or(true),
        Method::TaskArithmetic | Method::DareLinear => config.params.normalize.unwrap_or(false),
        _ => false,
    };
    if !normalize {
        return Vec::new();
    }
    let mut hit = Vec::new();
    for spec in specs.iter().filter(|s| is_float(s.dtype)) {
        let layer = layer_index(&spec.name).zip(layers);
        let sum: f64 = config
            .models
            .iter()
            .filter_map(|m| m.weight.resolve(&spec.name, layer))
            .sum();
        if sum.abs() < 1e-8 {
            hit.push(spec.name.as_str());
        }
    }
    match hit.as_slice() {
        [] => Vec::new(),
        [first, ..] => vec![format!(
            "the models' weights sum to 0 for {} tensor(s) (first: `{first}`), so normalize divides by 1 there (mergekit's rule) and writes the raw weighted sum; check the weights",
            hit.len()
        )],
    }
}

/// Every model must hold exactly the base's tensors, with the same shapes
/// and dtypes; tensors graft cannot merge must hold the base's values
/// (else an error, or a warning with `copy_unmergeable`). Returns the warnings.
fn validate(
    base: &Checkpoint,
    base_path: &Path,
    models: &[Checkpoint],
    paths: &[PathBuf],
    copy_unmergeable: bool,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for (m, path) in models.iter().zip(paths) {
        for name in base.names() {
            let b = base.spec(name)?;
            let Ok(s) = m.spec(name) else {
                return Err(Error::Mismatch {
                    tensor: name.clone(),
                    reason: format!(
                        "in the base {} but missing from {}",
                        base_path.display(),
                        path.display()
                    ),
                });
            };
            if s.shape != b.shape {
                return Err(Error::Mismatch {
                    tensor: name.clone(),
                    reason: format!(
                        "shape {:?} in {} but {:?} in the base {}",
                        s.shape,
                        path.display(),
                        b.shape,
                        base_path.display()
                    ),
                });
            }
            if s.dtype != b.dtype {
                return Err(Error::Mismatch {
                    tensor: name.clone(),
                    reason: format!(
                        "dtype {:?} in {} but {:?} in the base {}",
                        s.dtype,
                        path.display(),
                        b.dtype,
                        base_path.display()
                    ),
                });
            }
            if !is_float(b.dtype)
                && base.file_of(name)?.bytes(name)? != m.file_of(name)?.bytes(name)?
            {
                if !copy_unmergeable {
                    return Err(Error::Unmergeable {
                        tensor: name.clone(),
                        dtype: format!("{:?}", b.dtype),
                        model: path.display().to_string(),
                    });
                }
                warnings.push(format!(
                    "tensor `{name}` ({:?}) differs in {} but cannot be merged: the base's values were copied",
                    b.dtype,
                    path.display()
                ));
            }
        }
        if let Some(extra) = m.names().iter().find(|n| !base.contains(n)) {
            return Err(Error::Mismatch {
                tensor: extra.clone(),
                reason: format!(
                    "in {} but not in the base {}",
                    path.display(),
                    base_path.display()
                ),
            });
        }
    }
    Ok(warnings)
}
