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
    let libtorch = setup::ensure(None)?;
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
    shell::run(&mut cargo)?;
    if extra.is_empty() {
        libtorch_free_merge()?;
        crate::downstream::check(&libtorch)?;
    }
    Ok(())
}

/// The promise that merging needs no libtorch, kept: graft-merge without
/// default features has no `tch`/`torch-sys` in its dependency tree, and a
/// `graft` binary with only `merge` builds (in its own target directory, so
/// `target/release/graft` stays the full one) and starts with no libtorch
/// anywhere on its library path.
fn libtorch_free_merge() -> Result<()> {
    step(
        "test",
        "graft-merge without libtorch: dependency tree, and a merge-only `graft` binary",
    );
    let tree = shell::output(shell::cargo().args([
        "tree",
        "-p",
        "graft-merge",
        "--no-default-features",
        "-e",
        "normal",
        "--prefix",
        "none",
    ]))?;
    if let Some(line) = tree
        .lines()
        .find(|l| l.starts_with("tch ") || l.starts_with("torch-sys "))
    {
        anyhow::bail!("graft-merge --no-default-features depends on libtorch: {line}");
    }
    let target = crate::layout::repo_root().join("target").join("notorch");
    shell::run(
        shell::cargo()
            .args([
                "build",
                "--release",
                "-p",
                "graft-cli",
                "--no-default-features",
                "--features",
                "merge",
                "--target-dir",
            ])
            .arg(&target),
    )?;
    let help = shell::output(
        std::process::Command::new(target.join("release").join("graft"))
            .arg("--help")
            .env_remove("LD_LIBRARY_PATH"),
    )?;
    if !help.contains("merge") || help.contains("sample") {
        anyhow::bail!("the merge-only graft binary offers the wrong commands:\n{help}");
    }
    println!(
        "libtorch-free merge: ok (no tch in graft-merge's tree; merge-only graft starts without libtorch)"
    );
    Ok(())
}
