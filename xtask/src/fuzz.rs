//! `cargo xtask fuzz [TARGET] [--runs N] [--seconds S]`: run graft's
//! libFuzzer targets (`fuzz/`, cargo-fuzz) and tabulate what they did.
//!
//! Each target runs on its seed corpus `fuzz/corpus/TARGET` (read only) and
//! a scratch corpus `fuzz/target/corpus/TARGET`, where libFuzzer writes the
//! inputs it finds (kept between runs, never committed). Crashes land in
//! `fuzz/artifacts/TARGET/`. Needs a nightly toolchain and cargo-fuzz; the
//! stable replay tests (`tests/fuzz_replay.rs` of graft-tensor, graft-merge
//! and graft-diffusion) cover the seeds without either.

use crate::layout;
use crate::shell::{self, step};
use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The fuzz targets, in the order they run.
pub const TARGETS: [&str; 5] = [
    "safetensors_header",
    "safetensors_index",
    "merge_yaml",
    "saved_config",
    "unlearn_files",
];

/// Executions per target when neither `--runs` nor `--seconds` is given.
const DEFAULT_RUNS: u64 = 1_000_000;

/// The sanitizer the targets are built with. AddressSanitizer works with
/// libtorch linked in (the targets that need no tensors still link it,
/// through graft-tensor's `tch` feature, which graft-diffusion turns on).
const SANITIZER: &str = "address";

/// libFuzzer's per-input time limit, seconds: an input slower than this is
/// reported (as a `timeout-*` artifact) like a crash.
const TIMEOUT_S: u64 = 10;

#[derive(Debug, PartialEq)]
struct Options {
    targets: Vec<&'static str>,
    runs: Option<u64>,
    seconds: Option<u64>,
}

/// What one run did.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    executions: Option<u64>,
    coverage: Option<u64>,
    features: Option<u64>,
    crashes: Vec<PathBuf>,
    wall: Duration,
    ok: bool,
}

/// `cargo xtask fuzz`.
pub fn run(args: &[String]) -> Result<()> {
    let options = parse_args(args)?;
    require_nightly_and_cargo_fuzz()?;
    crate::setup::ensure(None)?;
    // The link set-up made, as `.cargo/config.toml` and fuzz/README.md name it.
    let libtorch = layout::libtorch_link();
    let root = layout::repo_root();
    let fuzz_dir = root.join("fuzz");
    let lib = libtorch.join("lib");
    let library_path = match std::env::var_os("LD_LIBRARY_PATH") {
        Some(old) if !old.is_empty() => {
            let mut paths = vec![lib.clone()];
            paths.extend(std::env::split_paths(&old));
            std::env::join_paths(paths).context("LD_LIBRARY_PATH")?
        }
        _ => lib.clone().into_os_string(),
    };
    let fuzz = |sub: &str| {
        let mut cmd = Command::new("cargo");
        cmd.args(["+nightly", "fuzz", sub])
            .current_dir(&fuzz_dir)
            // Whatever toolchain started xtask, cargo-fuzz's own cargo and
            // rustc calls must be nightly ones.
            .env("RUSTUP_TOOLCHAIN", "nightly")
            .env_remove("RUSTC")
            .env_remove("RUSTC_WRAPPER")
            .env_remove("CARGO_TARGET_DIR")
            // cargo-fuzz sets its own RUSTFLAGS, so .cargo/config.toml's rpath
            // does not reach the targets: they find libtorch through these.
            .env("LIBTORCH", &libtorch)
            .env("LD_LIBRARY_PATH", &library_path);
        cmd
    };

    step(
        "fuzz",
        format!(
            "building {} with cargo-fuzz (nightly, release, debug assertions, {SANITIZER} sanitizer; the first build compiles libtorch's C++ bindings into fuzz/target: about 10 minutes on 2 cores)",
            options.targets.join(", ")
        ),
    );
    let mut build = fuzz("build");
    build.args(build_flags());
    if let [one] = options.targets.as_slice() {
        build.arg(one);
    }
    shell::run(&mut build)?;

    let mut outcomes = Vec::new();
    for &target in &options.targets {
        let seeds = fuzz_dir.join("corpus").join(target);
        let scratch = fuzz_dir.join("target").join("corpus").join(target);
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        let artifacts = fuzz_dir.join("artifacts").join(target);
        let before = artifact_files(&artifacts);
        let mut cmd = fuzz("run");
        cmd.args(build_flags())
            .arg(target)
            .arg(&scratch)
            .arg(&seeds)
            .arg("--")
            .args(libfuzzer_flags(&options));
        step(
            "fuzz",
            format!(
                "{target}: {} (new inputs go to {})",
                match (options.runs, options.seconds) {
                    (Some(n), Some(s)) => format!("{n} executions or {s} s, whichever comes first"),
                    (Some(n), None) => format!("{n} executions"),
                    (None, Some(s)) => format!("{s} s"),
                    (None, None) => unreachable!("parse_args sets one"),
                },
                scratch.display()
            ),
        );
        let mut outcome = run_target(&mut cmd)?;
        outcome.crashes = artifact_files(&artifacts)
            .difference(&before)
            .cloned()
            .collect();
        outcomes.push((target, outcome));
    }

    println!();
    print!("{}", table(&outcomes));
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|(_, o)| !o.ok || !o.crashes.is_empty())
        .map(|(t, _)| *t)
        .collect();
    for (target, outcome) in &outcomes {
        for crash in &outcome.crashes {
            println!(
                "{target}: {}\n  replay or minimise it from fuzz/, with LIBTORCH and LD_LIBRARY_PATH as in fuzz/README.md:\n  cargo +nightly fuzz run|tmin {} {target} {}",
                crash.display(),
                build_flags().join(" "),
                crash.display()
            );
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzzing found crashes or failed in {}: see the output above and fuzz/README.md (minimise, add to the seed corpus, fix)",
            failed.join(", ")
        );
    }
    Ok(())
}

fn build_flags() -> [&'static str; 4] {
    ["--release", "--debug-assertions", "--sanitizer", SANITIZER]
}

fn libfuzzer_flags(options: &Options) -> Vec<String> {
    let mut flags = vec![
        format!("-timeout={TIMEOUT_S}"),
        "-print_final_stats=1".to_string(),
        // libtorch's static initialisers allocate memory they never free.
        "-detect_leaks=0".to_string(),
    ];
    if let Some(n) = options.runs {
        flags.push(format!("-runs={n}"));
    }
    if let Some(s) = options.seconds {
        flags.push(format!("-max_total_time={s}"));
    }
    flags
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut targets = Vec::new();
    let mut runs = None;
    let mut seconds = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut number = |flag: &str| -> Result<u64> {
            let value = it
                .next()
                .with_context(|| format!("`{flag}` needs a number"))?;
            match value.replace('_', "").parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => bail!("`{flag} {value}`: expected a positive whole number"),
            }
        };
        match arg.as_str() {
            "--runs" => runs = Some(number("--runs")?),
            "--seconds" => seconds = Some(number("--seconds")?),
            name if !name.starts_with('-') && targets.is_empty() => {
                let Some(&target) = TARGETS.iter().find(|t| **t == name) else {
                    bail!("no fuzz target `{name}` (targets: {})", TARGETS.join(", "));
                };
                targets.push(target);
            }
            other => bail!(
                "`cargo xtask fuzz` does not take `{other}`\n\nusage: cargo xtask fuzz [TARGET] [--runs N] [--seconds S]\ntargets: {}",
                TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    if runs.is_none() && seconds.is_none() {
        runs = Some(DEFAULT_RUNS);
    }
    Ok(Options {
        targets,
        runs,
        seconds,
    })
}

/// Fails with what to install when `cargo +nightly` or cargo-fuzz is missing.
fn require_nightly_and_cargo_fuzz() -> Result<()> {
    let nightly = Command::new("cargo")
        .args(["+nightly", "--version"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .output();
    if !nightly.is_ok_and(|o| o.status.success()) {
        bail!(
            "fuzzing needs a nightly Rust toolchain (libFuzzer's instrumentation uses unstable rustc flags), and `cargo +nightly` does not work here.\n\
             Install it with `rustup toolchain install nightly` and run again.\n\
             (Without nightly, the stable replay tests still cover the seed corpus: `cargo test --release -p graft-tensor --test fuzz_replay`, likewise graft-merge and graft-diffusion.)"
        );
    }
    let cargo_fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .output();
    if !cargo_fuzz.is_ok_and(|o| o.status.success()) {
        bail!(
            "fuzzing needs cargo-fuzz, which is not installed.\n\
             Install it with `cargo install cargo-fuzz --locked` (a few minutes) and run again."
        );
    }
    Ok(())
}

/// Runs one `cargo fuzz run`, passing its output through (less libFuzzer's
/// `NEW`/`REDUCE` lines, one per corpus addition) and reading its final stats.
fn run_target(cmd: &mut Command) -> Result<Outcome> {
    let start = Instant::now();
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {}", shell::describe(cmd)))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut outcome = Outcome::default();
    for line in BufReader::new(stderr).split(b'\n') {
        let line =
            String::from_utf8_lossy(&line.context("reading cargo fuzz's output")?).into_owned();
        read_stats(&line, &mut outcome);
        if !is_progress(&line) {
            eprintln!("{line}");
        }
    }
    let status = child.wait().context("waiting for cargo fuzz")?;
    outcome.wall = start.elapsed();
    outcome.ok = status.success();
    Ok(outcome)
}

/// libFuzzer's `#N NEW ...` and `#N REDUCE ...` lines, the `NEW_FUNC`
/// lines that follow them, and the dictionary
/// it recommends at the end (`"..." # Uses: N` between `######` lines).
fn is_progress(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let first = words.next();
    (first.is_some_and(|w| w.starts_with('#')) && matches!(words.next(), Some("NEW" | "REDUCE")))
        || line.trim_start().starts_with("NEW_FUNC[")
        || (line.starts_with('"') && line.contains("# Uses:"))
        || (line.starts_with("######") && line.contains("dictionary"))
}

/// Reads executions, coverage and features from a libFuzzer status line
/// (`#N  DONE   cov: C ft: F corp: ...`, or any `#N` line when the run
/// stopped early) and `stat::number_of_executed_units: N`.
fn read_stats(line: &str, outcome: &mut Outcome) {
    let line = line.trim();
    if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
        if let Ok(n) = n.trim().parse() {
            outcome.executions = Some(n);
        }
        return;
    }
    let Some(rest) = line.strip_prefix('#') else {
        return;
    };
    let mut words = rest.split_whitespace();
    let Some(Ok(n)) = words.next().map(str::parse::<u64>) else {
        return;
    };
    let words: Vec<&str> = words.collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    outcome.executions = Some(n);
    if let Some(c) = after("cov:") {
        outcome.coverage = Some(c);
    }
    if let Some(f) = after("ft:") {
        outcome.features = Some(f);
    }
}

/// The crash, leak, timeout and out-of-memory inputs libFuzzer wrote to `dir`.
fn artifact_files(dir: &Path) -> BTreeSet<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                ["crash-", "leak-", "timeout-", "oom-"]
                    .iter()
                    .any(|k| n.starts_with(k))
            })
        })
        .collect()
}

fn table(outcomes: &[(&str, Outcome)]) -> String {
    let show = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    let mut out = format!(
        "{:<20} {:>12} {:>9} {:>9} {:>8} {:>10}\n",
        "target", "executions", "coverage", "features", "crashes", "wall time"
    );
    for (target, o) in outcomes {
        let crashes = if o.ok || !o.crashes.is_empty() {
            o.crashes.len().to_string()
        } else {
            "failed".to_string()
        };
        out += &format!(
            "{:<20} {:>12} {:>9} {:>9} {:>8} {:>8.1} s\n",
            target,
            show(o.executions),
            show(o.coverage),
            show(o.features),
            crashes,
            o.wall.as_secs_f64()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_default_to_every_target_and_a_million_runs() {
        let o = parse_args(&[]).unwrap();
        assert_eq!(o.targets, TARGETS.to_vec());
        assert_eq!((o.runs, o.seconds), (Some(DEFAULT_RUNS), None));
        let o = parse_args(&args(&["merge_yaml", "--seconds", "60"])).unwrap();
        assert_eq!(o.targets, vec!["merge_yaml"]);
        assert_eq!((o.runs, o.seconds), (None, Some(60)));
        let o = parse_args(&args(&["--runs", "2_000_000", "saved_config"])).unwrap();
        assert_eq!((o.targets[0], o.runs), ("saved_config", Some(2_000_000)));
        assert!(parse_args(&args(&["nope"])).is_err());
        assert!(parse_args(&args(&["--runs"])).is_err());
        assert!(parse_args(&args(&["--runs", "0"])).is_err());
        assert!(parse_args(&args(&["merge_yaml", "saved_config"])).is_err());
        assert!(parse_args(&args(&["--jobs", "2"])).is_err());
    }

    #[test]
    fn libfuzzer_status_lines_are_read() {
        let mut o = Outcome::default();
        read_stats("INFO: Seed: 1234", &mut o);
        read_stats(
            "#524288\tpulse  cov: 1201 ft: 4000 corp: 200/9Kb lim: 4096 exec/s: 26214 rss: 90Mb",
            &mut o,
        );
        assert_eq!(
            (o.executions, o.coverage, o.features),
            (Some(524288), Some(1201), Some(4000))
        );
        read_stats(
            "#1000000\tDONE   cov: 1250 ft: 4321 corp: 210/10Kb lim: 4096 exec/s: 25000 rss: 95Mb",
            &mut o,
        );
        assert_eq!(
            (o.executions, o.coverage, o.features),
            (Some(1_000_000), Some(1250), Some(4321))
        );
        read_stats("stat::number_of_executed_units: 1000001", &mut o);
        assert_eq!(o.executions, Some(1_000_001));
        assert!(is_progress("#12\tNEW    cov: 10 ft: 11 corp: 2/3b"));
        assert!(!is_progress("#16\tpulse  cov: 10 ft: 11 corp: 2/3b"));
        assert!(!is_progress("    #0 0x55 in __sanitizer_print_stack_trace"));
        assert!(is_progress("\"F32\" # Uses: 42"));
        assert!(is_progress(
            "\tNEW_FUNC[1/2]: 0x55 in serde_json::de::parse"
        ));
        assert!(is_progress("###### Recommended dictionary. ######"));
    }
}
