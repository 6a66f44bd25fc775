//! Running commands and saying what is being done.

use anyhow::{Context, Result, bail};
use std::process::Command;

/// Prints one step of progress, prefixed by the task that takes it.
pub fn step(task: &str, message: impl std::fmt::Display) {
    eprintln!("[{task}] {message}");
}

/// Runs `cmd` with inherited output; fails naming the command when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Runs `cmd` and returns its standard output; fails when it fails.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {}", describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The command line of `cmd`, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    format!("`{s}`")
}

/// The `cargo` that started xtask.
pub fn cargo() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(crate::layout::repo_root());
    cmd
}

/// Checks that `python3 -m pip` works, with a message naming what to install.
pub fn require_python_pip() -> Result<()> {
    let python = Command::new("python3").arg("--version").output();
    match python {
        Ok(out) if out.status.success() => {}
        _ => bail!(
            "python3 was not found: graft fetches libtorch and its data from PyPI with pip.\n\
             Install Python 3 and pip (Debian/Ubuntu: `apt-get install python3 python3-pip python3-venv`) and run again."
        ),
    }
    let pip = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output();
    match pip {
        Ok(out) if out.status.success() => Ok(()),
        _ => bail!(
            "python3 has no pip: graft fetches libtorch and its data from PyPI with pip.\n\
             Install pip (Debian/Ubuntu: `apt-get install python3-pip`, or `python3 -m ensurepip`) and run again."
        ),
    }
}
