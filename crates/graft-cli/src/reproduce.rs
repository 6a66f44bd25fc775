//! `graft reproduce`: run experiments and write their `result.json`.

use crate::registry::{Experiment, experiments};
use anyhow::{Context, Result, bail};
use graft_nn::experiment::{ExperimentContext, ExperimentResult, Size, machine_description};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `graft reproduce`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiments to run (all when none is named).
    names: Vec<String>,
    /// Reduced sizes: every experiment in a few minutes in all.
    #[arg(long)]
    quick: bool,
    /// The seed everything random derives from.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write `<name>/result.json` and plots.
    #[arg(long, default_value = "target/reproduce")]
    out: PathBuf,
    /// Print the registered experiments' names, one per line, and exit.
    #[arg(long)]
    list: bool,
}

/// Runs the named (or all) experiments; fails if any failed to run.
pub fn run(args: Args) -> Result<()> {
    let registry = experiments();
    if args.list {
        for e in &registry {
            println!("{}", e.name);
        }
        return Ok(());
    }
    let chosen: Vec<&Experiment> = if args.names.is_empty() {
        registry.iter().collect()
    } else {
        args.names
            .iter()
            .map(|n| {
                registry.iter().find(|e| e.name == n).with_context(|| {
                    let known: Vec<&str> = registry.iter().map(|e| e.name).collect();
                    format!(
                        "no experiment named `{n}` (registered: {})",
                        known.join(", ")
                    )
                })
            })
            .collect::<Result<_>>()?
    };
    let mut failed = Vec::new();
    for experiment in chosen {
        if let Err(err) = run_one(experiment, &args) {
            eprintln!("graft: experiment `{}` failed: {err:#}", experiment.name);
            failed.push(experiment.name);
        }
    }
    if !failed.is_empty() {
        bail!("experiments that failed to run: {}", failed.join(", "));
    }
    Ok(())
}

fn run_one(experiment: &Experiment, args: &Args) -> Result<()> {
    let out_dir = args.out.join(experiment.name);
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let ctx = ExperimentContext {
        size: if args.quick { Size::Quick } else { Size::Full },
        seed: args.seed,
        out_dir: out_dir.clone(),
    };
    tracing::info!(
        experiment = experiment.name,
        quick = args.quick,
        seed = args.seed,
        "{}",
        experiment.about
    );
    let started = Instant::now();
    // The libraries draw nothing; a spinner says the experiment is alive.
    let spinner = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message(format!("running {}", experiment.name));
        s.enable_steady_tick(std::time::Duration::from_millis(200));
        s
    } else {
        indicatif::ProgressBar::hidden()
    };
    let outcome = (experiment.run)(&ctx);
    spinner.finish_and_clear();
    let outcome = outcome.map_err(|e| anyhow::Error::from_boxed(e.into_boxed()))?;
    let result = ExperimentResult {
        experiment: experiment.name.to_string(),
        quick: args.quick,
        seed: args.seed,
        wall_s: started.elapsed().as_secs_f64(),
        machine: machine_description(),
        claims: outcome.claims,
        plots: outcome.plots,
    };
    result.write(&out_dir)?;
    for claim in &result.claims {
        tracing::info!(
            "{} {}: measured {} vs {}",
            if claim.pass { "PASS" } else { "FAIL" },
            claim.claim,
            claim.measured,
            claim.paper
        );
    }
    Ok(())
}
