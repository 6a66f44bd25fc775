//! `graft`: reproduce graft's experiments and run its tools.

#[cfg(feature = "torch")]
mod adapter;
#[cfg(feature = "torch")]
mod finetune;
#[cfg(feature = "merge")]
mod merge;
#[cfg(feature = "torch")]
mod registry;
#[cfg(feature = "torch")]
mod reproduce;
#[cfg(feature = "torch")]
mod sample;
#[cfg(feature = "torch")]
mod unlearn;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// graft: memory- and parameter-efficient surgery on neural networks.
#[derive(Parser)]
#[command(name = "graft", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run registered experiments and write target/reproduce/<name>/result.json.
    #[cfg(feature = "torch")]
    Reproduce(reproduce::Args),
    /// Merge fine-tuned models described by a mergekit-style YAML into OUT_DIR.
    #[cfg(feature = "merge")]
    Merge(merge::Args),
    /// Merge a PEFT adapter into a checkpoint, or inspect one.
    #[cfg(feature = "torch")]
    Adapter(adapter::Args),
    /// Fine-tune a BERT-style sentence classifier from CSV files through adapters (or fully).
    #[cfg(feature = "torch")]
    Finetune(Box<finetune::Args>),
    /// Make a classifier forget training samples (SSD).
    #[cfg(feature = "torch")]
    Unlearn(unlearn::Args),
    /// Sample a diffusion model (a built-in GMM problem or a saved model) with any graft sampler.
    #[cfg(feature = "torch")]
    Sample(Box<sample::Args>),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GRAFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    if let Err(err) = run(Cli::parse()) {
        eprintln!("graft: error: {}", one_line(&err));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, each cause once: a cause whose
/// text the message already holds (an OS error a library put into its own
/// message) is not repeated.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

fn run(cli: Cli) -> Result<()> {
    // A device named in the environment must exist, whatever the command.
    #[cfg(feature = "torch")]
    if std::env::var("GRAFT_DEVICE").is_ok_and(|v| !v.trim().is_empty()) {
        graft_tensor::device::default_device()?;
    }
    match cli.command {
        #[cfg(feature = "torch")]
        Command::Reproduce(args) => reproduce::run(args),
        #[cfg(feature = "merge")]
        Command::Merge(args) => merge::run(args),
        #[cfg(feature = "torch")]
        Command::Sample(args) => sample::run(*args),
        #[cfg(feature = "torch")]
        Command::Finetune(args) => finetune::run(*args),
        #[cfg(feature = "torch")]
        Command::Adapter(args) => adapter::run(args),
        #[cfg(feature = "torch")]
        Command::Unlearn(args) => unlearn::run(args),
    }
}
