//! What may stand at the path of an output directory before a command
//! writes it: graft never deletes what it did not write.
//!
//! [`OutputRules::check`] refuses, with the path named and what to do:
//! - an output that is a file, a symbolic link or anything but a directory;
//! - an existing directory that is not empty, unless `force` is set, and
//!   even then unless it is an earlier graft output (it holds
//!   [`MARKER_FILE`] and only the entries that file lists);
//! - an output that is one of the inputs, contains one, or lies inside one.
//!
//! An empty existing directory is replaced without `--force`: nothing is lost.
//! [`crate::atomic::StagingDir::create`] applies these rules.

use crate::{Error, Result};
use std::path::{Component, Path, PathBuf};

/// The name of the file graft writes into every output directory it
/// commits: which command wrote it and which entries are graft's. An
/// existing directory is replaced (with `--force`) only when it holds this
/// file and nothing else than the entries it lists.
pub const MARKER_FILE: &str = ".graft-output.json";

/// The rules an output directory is checked against.
#[derive(Debug, Clone, Default)]
pub struct OutputRules {
    /// Replace an existing, non-empty earlier graft output.
    pub force: bool,
    /// Files and directories the command reads: the output may not be,
    /// contain or lie inside any of them.
    pub inputs: Vec<PathBuf>,
}

impl OutputRules {
    /// Rules that refuse any non-empty existing directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same rules, replacing an earlier graft output when `force`.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// The same rules with one more input.
    pub fn input(mut self, path: impl Into<PathBuf>) -> Self {
        self.inputs.push(path.into());
        self
    }

    /// The same rules with more inputs.
    pub fn inputs<I: IntoIterator<Item = P>, P: Into<PathBuf>>(mut self, paths: I) -> Self {
        self.inputs.extend(paths.into_iter().map(Into::into));
        self
    }

    /// Checks that writing the directory `dest` loses nothing (see the module docs).
    pub fn check(&self, dest: &Path) -> Result<()> {
        let refuse = |reason: String| Error::UnsafeOutput {
            path: dest.to_path_buf(),
            reason,
        };
        let target = resolve(dest).map_err(|e| Error::io(dest, e))?;
        for input in &self.inputs {
            let Ok(input_path) = input.canonicalize() else {
                continue; // a missing input cannot be overwritten
            };
            if target == input_path {
                return Err(refuse(format!(
                    "it is the input {}; choose another output directory",
                    input.display()
                )));
            }
            if input_path.starts_with(&target) {
                return Err(refuse(format!(
                    "it contains the input {}; choose an output directory outside the inputs",
                    input.display()
                )));
            }
            if target.starts_with(&input_path) {
                return Err(refuse(format!(
                    "it lies inside the input {}; choose an output directory outside the inputs",
                    input.display()
                )));
            }
        }
        let meta = match std::fs::symlink_metadata(dest) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(dest, e)),
        };
        if meta.file_type().is_symlink() {
            return Err(refuse(
                "it is a symbolic link; give the directory it points to, or a new path".into(),
            ));
        }
        if !meta.is_dir() {
            return Err(refuse(
                "it exists and is not a directory; choose a new directory name".into(),
            ));
        }
        let mut entries: Vec<String> = std::fs::read_dir(dest)
            .map_err(|e| Error::io(dest, e))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        entries.sort();
        if !self.force {
            return Err(refuse(format!(
                "it exists and holds {} ({}); pass --force to replace an earlier graft output, or choose a new directory",
                count(entries.len()),
                preview(&entries)
            )));
        }
        let listed = graft_entries(dest);
        let foreign: Vec<String> = match &listed {
            Some(listed) => entries
                .into_iter()
                .filter(|e| e != MARKER_FILE && !listed.contains(e))
                .collect(),
            None => entries,
        };
        if listed.is_none() {
            return Err(refuse(format!(
                "it was not written by graft (no {MARKER_FILE}) and holds {} ({}); graft never deletes what it did not write: empty it yourself or choose a new directory",
                count(foreign.len()),
                preview(&foreign)
            )));
        }
        if !foreign.is_empty() {
            return Err(refuse(format!(
                "besides an earlier graft output it holds {} graft did not write ({}); move them away or choose a new directory",
                count(foreign.len()),
                preview(&foreign)
            )));
        }
        Ok(())
    }
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 entry".into()
    } else {
        format!("{n} entries")
    }
}

fn preview(entries: &[String]) -> String {
    let mut shown = entries
        .iter()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if entries.len() > 3 {
        shown.push_str(", …");
    }
    shown
}

/// The entries an earlier graft output's marker lists, if `dir` has a readable one.
fn graft_entries(dir: &Path) -> Option<Vec<String>> {
    let path = dir.join(MARKER_FILE);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > (16 << 20) {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("files")?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// An absolute, symlink-free form of `path`, which need not exist: its
/// longest existing ancestor canonicalized, the rest appended (`..` in the
/// rest is refused by staying lexical).
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let mut existing = absolute.clone();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(base) => {
                let mut out = base;
                for part in rest.iter().rev() {
                    out.push(part);
                }
                return Ok(normalize(&out));
            }
            Err(_) => match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name.to_os_string());
                    existing = parent.to_path_buf();
                }
                _ => return Ok(normalize(&absolute)),
            },
        }
    }
}

/// Removes `.` and resolves `..` lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
