//! `graft adapter merge` and `graft adapter inspect`: PEFT adapter
//! directories applied to and read from checkpoint files.

use anyhow::Result;
use graft_tensor::output::OutputRules;
use std::path::PathBuf;

/// Arguments of `graft adapter`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Merge an adapter into a base checkpoint (merge_and_unload on disk), sharded like the base.
    Merge {
        /// The base model directory (config.json, model.safetensors or shards).
        #[arg(long)]
        base: PathBuf,
        /// The adapter directory (adapter_config.json, adapter_model.safetensors).
        #[arg(long)]
        adapter: PathBuf,
        /// Which adapter of the directory (`default`: the root's; else a sub-folder's).
        #[arg(long, default_value = "default")]
        name: String,
        /// Where the merged checkpoint goes; it appears only when the merge succeeds.
        #[arg(long)]
        out: PathBuf,
        /// Replace OUT if it holds an earlier graft output.
        #[arg(long)]
        force: bool,
    },
    /// Print an adapter directory's method, targets, ranks, scales and parameter counts.
    Inspect {
        /// The adapter directory.
        dir: PathBuf,
    },
}

/// Runs `graft adapter`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Merge {
            base,
            adapter,
            name,
            out,
            force,
        } => {
            let rules = OutputRules::new().force(force).input(&base).input(&adapter);
            let s = graft_peft::files::merge_into_checkpoint(
                &base, &adapter, &name, &out, &rules, true,
            )?;
            eprintln!(
                "merged {} adapted layers, replaced {} and added {} tensors (modules_to_save) into {}",
                s.merged.len(),
                s.replaced.len(),
                s.added.len(),
                out.display()
            );
            if !s.prefix.is_empty() {
                eprintln!(
                    "the adapter names layers with the prefix `{}` that the base's keys lack: the output's keys carry it",
                    s.prefix
                );
            }
            for (path, key) in s
                .merged
                .iter()
                .filter(|(p, k)| k.strip_suffix(".weight") != Some(p.as_str()))
            {
                eprintln!("  adapter module `{path}` merged into base tensor `{key}`");
            }
        }
        Command::Inspect { dir } => print!("{}", graft_peft::files::describe(&dir)?),
    }
    Ok(())
}
