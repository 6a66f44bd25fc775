//! `cargo xtask test [-- ARGS]`: set up what is missing, then `cargo test --workspace --release`.
//!
//! Tests run in the release profile so they share the build (and torch-sys's
//! four-minute C++ compile) with `cargo xtask reproduce` and `bench`.

use crate::shell::{self, step};
use crate::{fetch_assets, peers, setup};
use anyhow::Result;

/// `cargo xtask test`.
pub fn run(args: &[String]) -> Result<()> {
    let extra: Vec<String> = match args.iter().position(|a| a == "--") {
        Some(i) => {
            crate::reject_unknown("test", &args[..i], &[])?;
            args[i + 1..].to_vec()
        }
        None => {
            crate::reject_unknown("test", args, &[])?;
            Vec::new()
        }
    };
    setup::ensure(None)?;
    fetch_assets::ensure()?;
    let python = peers::ensure("core")?;
    step(
        "test",
        "cargo test --workspace --release (the first build compiles libtorch's C++ bindings: about 5 minutes on 2 cores)",
    );
    let mut cargo = shell::cargo();
    cargo
        .args(["test", "--workspace", "--release"])
        .env("GRAFT_PEERS_PYTHON", python);
    if !extra.is_empty() {
        cargo.arg("--").args(&extra);
    }
    shell::run(&mut cargo)
}
