//! `cargo xtask peers [GROUP]`: the Python virtual environment for peers.
//!
//! Python peers (the `safetensors` package now; PEFT and mergekit later) make
//! fixtures and serve as baselines in benchmarks. They live in a virtual
//! environment in the cache, created on demand, never in the system Python.
//! Each group is a pinned requirements file in `xtask/peers/`.

use crate::layout;
use crate::shell::{self, step};
use anyhow::{Context, Result, bail};
use std::fs;
use std::path::PathBuf;
use std::process::Command;

const TASK: &str = "peers";

/// The groups, each a requirements file under `xtask/peers/`.
const GROUPS: &[&str] = &["core", "mergekit", "peft", "unlearn"];

/// `cargo xtask peers [GROUP]`.
pub fn run(args: &[String]) -> Result<()> {
    let group = match args {
        [] => "core",
        [g] => g.as_str(),
        _ => bail!(
            "`cargo xtask peers` takes at most one group ({})",
            GROUPS.join(", ")
        ),
    };
    let python = ensure(group)?;
    println!("{}", python.display());
    Ok(())
}

/// The peers' Python interpreter.
pub fn python() -> PathBuf {
    layout::peers_dir().join("venv").join("bin").join("python")
}

/// Makes sure the peers environment exists with `group` installed; returns its Python.
pub fn ensure(group: &str) -> Result<PathBuf> {
    if !GROUPS.contains(&group) {
        bail!(
            "unknown peers group `{group}` (known: {})",
            GROUPS.join(", ")
        );
    }
    let requirements = layout::repo_root()
        .join("xtask")
        .join("peers")
        .join(format!("{group}.txt"));
    let wanted = fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let venv = layout::peers_dir().join("venv");
    let marker = venv.join(format!(".graft-{group}"));
    let python = python();
    if python.exists() && fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        step(
            TASK,
            format!(
                "group `{group}` already installed in {}: nothing to do",
                venv.display()
            ),
        );
        return Ok(python);
    }
    shell::require_python_pip()?;
    if !python.exists() {
        step(
            TASK,
            format!("creating the peers environment {}", venv.display()),
        );
        let created = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status();
        if !created.is_ok_and(|s| s.success()) {
            bail!(
                "python3 could not create a virtual environment at {}: install venv support \
                 (Debian/Ubuntu: `apt-get install python3-venv`) and run again",
                venv.display()
            );
        }
    }
    step(
        TASK,
        format!("installing group `{group}` ({})", requirements.display()),
    );
    shell::run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--only-binary=:all:",
                "-r",
            ])
            .arg(&requirements),
    )?;
    fs::write(&marker, wanted)?;
    Ok(python)
}

/// Whether `group` is installed.
pub fn installed(group: &str) -> bool {
    layout::peers_dir()
        .join("venv")
        .join(format!(".graft-{group}"))
        .is_file()
}
