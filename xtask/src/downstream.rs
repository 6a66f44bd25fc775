//! The README's "Use graft in your own project" route, kept true: a tiny
//! crate outside the workspace, depending on graft-tensor and
//! graft-diffusion by path, configured only by `cargo xtask setup
//! --print-config`, is built and run.

use crate::layout;
use crate::shell::{self, step};
use anyhow::{Context, Result, bail};
use std::fs;
use std::path::Path;

const MAIN: &str = r#"//! A user's program: sample graft's built-in 2-D ring with MRS.
use graft_diffusion::gmm::GmmModel;
use graft_diffusion::grid::StepGrid;
use graft_diffusion::integrator::Form;
use graft_diffusion::noise::SeededNoise;
use graft_diffusion::param::Parameterization;
use graft_diffusion::samplers::{Mrs, Sampler};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let p = graft_diffusion::problems::r1()?;
    let grid = StepGrid::UniformLambda { lambda_min: p.lambda_min };
    let sampler = Mrs::ode(2, Form::Data);
    let times = grid.times(&*p.process, sampler.steps_for_nfe(10), p.t_start, p.t_end)?;
    let mut rng = graft_diffusion::noise::seeded_rng(0);
    let x0 = p.gmm.sample_marginal(&*p.process, times[0], 64, &mut rng)?;
    let model = GmmModel::new(p.gmm.clone(), p.process.clone(), Parameterization::Noise);
    let (x, stats) = sampler.sample(&*p.process, &model, &x0, &times, &mut SeededNoise::new(1))?;
    println!("downstream: {:?} samples after {} NFE", x.size(), stats.nfe);
    Ok(())
}
"#;

/// Builds and runs the downstream crate in a temporary directory, with its
/// own target directory under `target/downstream` (kept, so a second run
/// builds nothing).
pub fn check(libtorch: &Path) -> Result<()> {
    step(
        "test",
        "a crate outside the workspace using graft by the README's route (cargo xtask setup --print-config)",
    );
    let root = layout::repo_root();
    let tmp = std::env::temp_dir().join(format!("graft-downstream-{}", std::process::id()));
    let result = (|| -> Result<()> {
        fs::create_dir_all(tmp.join("src"))?;
        fs::create_dir_all(tmp.join(".cargo"))?;
        let crates = root.join("crates");
        fs::write(
            tmp.join("Cargo.toml"),
            format!(
                "[package]\nname = \"graft-downstream\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n[dependencies]\ngraft-tensor = {{ path = \"{t}\" }}\ngraft-diffusion = {{ path = \"{d}\" }}\n\n[workspace]\n",
                t = crates.join("graft-tensor").display(),
                d = crates.join("graft-diffusion").display()
            ),
        )?;
        fs::write(tmp.join("src/main.rs"), MAIN)?;
        let flavour = crate::setup::linked_flavour().unwrap_or_else(|| "cpu".into());
        fs::write(
            tmp.join(".cargo/config.toml"),
            crate::setup::downstream_config(libtorch, &flavour),
        )?;
        // The workspace's lock file pins the same versions graft is tested with.
        fs::copy(root.join("Cargo.lock"), tmp.join("Cargo.lock"))?;
        let target = root.join("target").join("downstream");
        shell::run(
            shell::cargo()
                .current_dir(&tmp)
                .args(["build", "--release", "--target-dir"])
                .arg(&target)
                .env_remove("LIBTORCH")
                .env_remove("CPLUS_INCLUDE_PATH")
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS"),
        )?;
        let out = shell::output(
            std::process::Command::new(target.join("release").join("graft-downstream"))
                .env_remove("LD_LIBRARY_PATH"),
        )
        .context("running the downstream binary")?;
        if !out.contains("NFE") {
            bail!("the downstream binary printed: {out}");
        }
        print!("{out}");
        Ok(())
    })();
    let _ = fs::remove_dir_all(&tmp);
    result
}
