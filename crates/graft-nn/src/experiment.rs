//! Experiments for `graft reproduce`: their context, claims and results.
//!
//! An experiment is a function in the crate whose method it tests, taking an
//! [`ExperimentContext`] (size, seed, output directory) and returning an
//! [`Outcome`] (claims and plots). `graft reproduce` times it, adds the
//! machine, and writes `result.json` in the shape [`ExperimentResult`]
//! serialises to, which `cargo xtask reproduce` assembles into the report.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The one error type of every experiment, whatever crate it lives in:
/// any error raised inside it (`?` converts them), kept with its chain, so
/// `graft reproduce`'s registry holds every experiment's `run` as it is.
#[derive(Debug)]
pub struct ExperimentError(Box<dyn std::error::Error + Send + Sync>);

impl<E: std::error::Error + Send + Sync + 'static> From<E> for ExperimentError {
    fn from(e: E) -> Self {
        Self(Box::new(e))
    }
}

impl ExperimentError {
    /// An error with only a message.
    pub fn msg(text: impl Into<String>) -> Self {
        Self(text.into().into())
    }

    /// The error itself.
    pub fn into_boxed(self) -> Box<dyn std::error::Error + Send + Sync> {
        self.0
    }
}

impl std::fmt::Display for ExperimentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

/// What an experiment's `run` returns.
pub type RunResult = std::result::Result<Outcome, ExperimentError>;

/// An experiment's entry point, as `graft reproduce` registers it.
pub type Run = fn(&ExperimentContext) -> RunResult;

/// Reduced (`--quick`, minutes for all experiments) or full size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Size {
    /// Reduced size.
    Quick,
    /// The size the report is meant for.
    Full,
}

/// What an experiment is given.
#[derive(Debug, Clone)]
pub struct ExperimentContext {
    /// Quick or full.
    pub size: Size,
    /// The seed everything random derives from.
    pub seed: u64,
    /// The experiment's own output directory (`target/reproduce/<name>`).
    pub out_dir: PathBuf,
}

impl ExperimentContext {
    /// Whether this is the quick variant.
    pub fn quick(&self) -> bool {
        self.size == Size::Quick
    }

    /// `quick` or `full` depending on the size.
    pub fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick() { quick } else { full }
    }

    /// A path inside the output directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.out_dir.join(file)
    }
}

/// One claim of a paper (or of graft's own acceptance criteria) against what was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// A short stable identifier.
    pub id: String,
    /// The claim in words.
    pub claim: String,
    /// The paper's (or the target's) value: a number or a phrase.
    pub paper: Value,
    /// What graft measured: a number or a phrase.
    pub measured: Value,
    /// Whether the measurement supports the claim.
    pub pass: bool,
}

impl Claim {
    /// A claim that holds when `measured >= threshold`.
    pub fn at_least(id: &str, claim: &str, threshold: f64, measured: f64) -> Self {
        Self {
            id: id.into(),
            claim: claim.into(),
            paper: Value::String(format!(">= {threshold}")),
            measured: round_value(measured),
            pass: measured >= threshold,
        }
    }

    /// A claim that holds when `measured <= threshold`.
    pub fn at_most(id: &str, claim: &str, threshold: f64, measured: f64) -> Self {
        Self {
            id: id.into(),
            claim: claim.into(),
            paper: Value::String(format!("<= {threshold}")),
            measured: round_value(measured),
            pass: measured <= threshold,
        }
    }

    /// A claim with free-form values and a verdict computed by the caller.
    pub fn new(
        id: &str,
        claim: &str,
        paper: impl Into<Value>,
        measured: impl Into<Value>,
        pass: bool,
    ) -> Self {
        Self {
            id: id.into(),
            claim: claim.into(),
            paper: paper.into(),
            measured: measured.into(),
            pass,
        }
    }
}

fn round_value(x: f64) -> Value {
    if x.is_finite() {
        Value::from((x * 1e4).round() / 1e4)
    } else {
        Value::String(format!("{x}"))
    }
}

/// What an experiment returns.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Claims vs measurements.
    pub claims: Vec<Claim>,
    /// SVG files written into the output directory (names relative to it).
    pub plots: Vec<String>,
}

/// `result.json`: read by `cargo xtask reproduce` and other tools; keep the shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentResult {
    /// The experiment's registered name.
    pub experiment: String,
    /// Whether it ran at quick size.
    pub quick: bool,
    /// Its seed.
    pub seed: u64,
    /// Wall time in seconds.
    pub wall_s: f64,
    /// The machine it ran on, in words.
    pub machine: String,
    /// Claims vs measurements.
    pub claims: Vec<Claim>,
    /// SVG files beside `result.json`.
    pub plots: Vec<String>,
}

impl ExperimentResult {
    /// Writes `result.json` into `dir`, atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Invalid(format!("result.json: {e}")))?;
        graft_tensor::atomic::write_atomic(dir.join("result.json"), &json)?;
        Ok(())
    }
}

/// The machine in words: CPU model, cores, memory, and libtorch's threads.
pub fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(String::new(), |kib| {
            format!(", {:.0} GiB", kib / (1024.0 * 1024.0))
        });
    format!(
        "{cpu}, {cores} cores{mem_gib}, {} {}, libtorch threads {}",
        std::env::consts::OS,
        std::env::consts::ARCH,
        graft_tensor::tch::get_num_threads()
    )
}
