//! `graft sample`: run a graft-diffusion sampler and write the samples.

use anyhow::{Result, bail};

/// Arguments of `graft sample`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `graft sample`.
pub fn run(_args: Args) -> Result<()> {
    bail!("`graft sample` is not built yet")
}
