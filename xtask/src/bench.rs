//! `cargo xtask bench [NAME]`: set up, then run the criterion benchmarks in `benches/`.

use crate::shell::{self, step};
use crate::{fetch_assets, peers, setup};
use anyhow::{Result, bail};

/// `cargo xtask bench [NAME]`.
pub fn run(args: &[String]) -> Result<()> {
    if args.len() > 1 {
        bail!("`cargo xtask bench` takes at most one benchmark name");
    }
    setup::ensure(None)?;
    fetch_assets::ensure()?;
    // The PEFT benchmark needs PEFT and torch in the peers environment, the
    // merge benchmark mergekit.
    let group = match args.first().map(String::as_str) {
        Some("peft") => "peft",
        Some("merge") => "mergekit",
        _ => "core",
    };
    let python = peers::ensure(group)?;
    // Benchmarks that run the `graft` command (merge) need it built.
    crate::reproduce::build_graft()?;
    let mut cargo = shell::cargo();
    cargo
        .args(["bench", "--package", "graft-benches"])
        .env("GRAFT_PEERS_PYTHON", python);
    if let Some(name) = args.first() {
        cargo.args(["--bench", name]);
        step("bench", format!("running benchmark `{name}`"));
    } else {
        step("bench", "running every benchmark");
    }
    shell::run(&mut cargo)
}
