//! Reading the mergekit fixtures, shared by the parity tests.

use graft_merge::files::decode_f32;
use graft_tensor::safetensors::{Checkpoint, Dtype};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One tensor, widened to f32.
pub struct Tensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// A checkpoint's tensors by name.
pub type Model = BTreeMap<String, Tensor>;

/// Reads every float tensor of the checkpoint at `dir` (file or shards).
pub fn read_model(dir: &Path) -> Model {
    let ckpt = Checkpoint::open(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    ckpt.names()
        .iter()
        .map(|n| {
            let spec = ckpt.spec(n).unwrap();
            let bytes = ckpt.file_of(n).unwrap().bytes(n).unwrap();
            let values = decode_f32(spec.dtype, bytes)
                .unwrap_or_else(|| panic!("{n}: not a float tensor ({:?})", spec.dtype));
            (
                n.clone(),
                Tensor {
                    dtype: spec.dtype,
                    shape: spec.shape.clone(),
                    values,
                },
            )
        })
        .collect()
}

/// The fixture directory relative to the crate root, where `cargo test`
/// runs integration tests. graft orders its sums by a hash of each model's
/// path as written, so relative paths keep the order (and the share of
/// bit-identical elements) the same wherever the repository is checked out.
pub fn fixture_root() -> PathBuf {
    let rel = PathBuf::from("tests/fixtures/mergekit");
    assert!(
        rel.join("base").is_dir(),
        "run from the graft-merge crate root, as `cargo test` does (cwd = {:?})",
        std::env::current_dir()
    );
    rel
}

/// The YAML with its `model:` / `base_model:` values that name a directory
/// under `root` pointed at it; returns the text and how many it replaced.
pub fn absolutize(yaml: &str, root: &Path) -> (String, usize) {
    let mut replaced = 0;
    let lines: Vec<String> = yaml
        .lines()
        .map(|line| {
            let body = line.trim_start();
            let body = body.strip_prefix("- ").unwrap_or(body);
            let value = body
                .strip_prefix("model:")
                .or_else(|| body.strip_prefix("base_model:"))
                .map(str::trim);
            match value {
                Some(v) if !v.is_empty() && root.join(v).is_dir() => {
                    replaced += 1;
                    let keep = line.trim_end().len() - v.len();
                    format!("{}{}", &line[..keep], root.join(v).display())
                }
                _ => line.to_string(),
            }
        })
        .collect();
    (lines.join("\n") + "\n", replaced)
}
