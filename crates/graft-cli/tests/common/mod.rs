//! Running the `graft` binary in the CLI tests.

// Each test binary uses the helpers it needs.
#![allow(dead_code)]

use std::process::{Command, Output};

/// `graft args` with no device or fault injection from the environment.
pub fn graft_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graft"));
    cmd.args(args)
        .env_remove("GRAFT_DEVICE")
        .env_remove("GRAFT_FAULT");
    cmd
}

/// Runs graft and returns what it did.
pub fn graft(args: &[&str]) -> Output {
    graft_cmd(args).output().expect("graft runs")
}

/// Runs graft expecting success and returns its stderr.
pub fn ok(args: &[&str]) -> String {
    let out = graft(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {err}");
    err
}

/// Runs graft expecting a clean failure (exit 1, not a panic's 101 or a
/// signal) and returns its stderr.
pub fn fails(args: &[&str]) -> String {
    let out = graft(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}
