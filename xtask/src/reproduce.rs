//! `cargo xtask reproduce [NAME...] [--quick] [--seed N]`: run experiments, write the report.
//!
//! Each experiment runs in its own `graft reproduce NAME` process (so one
//! crash cannot take the others with it) and writes
//! `target/reproduce/<name>/result.json`; this task then assembles
//! `target/reproduce/REPORT.md`: one table of claim vs measured over all
//! experiments, and their plots. It fails when an experiment fails to run;
//! a claim that does not hold is reported, not an error.

use crate::layout;
use crate::shell::{self, step};
use crate::{fetch_assets, setup};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const TASK: &str = "reproduce";

/// `cargo xtask reproduce`.
pub fn run(args: &[String]) -> Result<()> {
    let mut names = Vec::new();
    let mut quick = false;
    let mut seed: Option<String> = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--seed" => seed = Some(iter.next().context("--seed needs a value")?.clone()),
            flag if flag.starts_with('-') => {
                bail!("`cargo xtask reproduce` does not take `{flag}`")
            }
            name => names.push(name.to_string()),
        }
    }
    let started = Instant::now();
    setup::ensure(None)?;
    fetch_assets::ensure()?;
    let graft = build_graft()?;

    let registered: Vec<String> =
        shell::output(Command::new(&graft).args(["reproduce", "--list"]))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
    if names.is_empty() {
        names = registered.clone();
    }
    for name in &names {
        if !registered.contains(name) {
            bail!(
                "no experiment named `{name}` (registered: {})",
                registered.join(", ")
            );
        }
    }

    let out = layout::reproduce_dir();
    fs::create_dir_all(&out)?;
    let mut failures = Vec::new();
    for name in &names {
        let dir = out.join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        step(
            TASK,
            format!("running `{name}`{}", if quick { " (quick)" } else { "" }),
        );
        let mut cmd = Command::new(&graft);
        cmd.args(["reproduce", name, "--out"]).arg(&out);
        if quick {
            cmd.arg("--quick");
        }
        if let Some(seed) = &seed {
            cmd.args(["--seed", seed]);
        }
        if let Err(err) = shell::run(&mut cmd) {
            eprintln!("[{TASK}] experiment `{name}` failed to run: {err:#}");
            failures.push(name.clone());
        }
    }

    let mut results = Vec::new();
    for name in &names {
        let path = out.join(name).join("result.json");
        match fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            Some(v) => results.push(v),
            None if !failures.contains(name) => {
                eprintln!("[{TASK}] `{name}` wrote no readable {}", path.display());
                failures.push(name.clone());
            }
            None => {}
        }
    }
    let report = render_report(&results, &failures, quick);
    let report_path = out.join("REPORT.md");
    write_atomic(&report_path, &report)?;
    let (passed, total) = count_claims(&results);
    step(
        TASK,
        format!(
            "{passed} of {total} claims hold; report at {} ({:.0} s in all)",
            report_path.display(),
            started.elapsed().as_secs_f64()
        ),
    );
    if !failures.is_empty() {
        bail!("experiments that failed to run: {}", failures.join(", "));
    }
    Ok(())
}

/// Builds the `graft` command (release) and returns its path.
///
/// `cargo test --no-run` rather than `cargo build -p graft-cli`: the same
/// feature resolution as `cargo xtask test`, so the two share one build
/// (graft-cli's integration tests make it build target/release/graft).
pub fn build_graft() -> Result<std::path::PathBuf> {
    step(
        TASK,
        "building the graft command (release, shared with `cargo xtask test`)",
    );
    shell::run(shell::cargo().args(["test", "--workspace", "--release", "--no-run"]))?;
    Ok(layout::repo_root()
        .join("target")
        .join("release")
        .join("graft"))
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("md.tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)?;
    Ok(())
}

fn count_claims(results: &[Value]) -> (usize, usize) {
    let claims: Vec<&Value> = results
        .iter()
        .filter_map(|r| r["claims"].as_array())
        .flatten()
        .collect();
    let passed = claims
        .iter()
        .filter(|c| c["pass"].as_bool() == Some(true))
        .count();
    (passed, claims.len())
}

fn cell(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{}", (f * 1e4).round() / 1e4),
            _ => n.to_string(),
        },
        other => other.to_string(),
    };
    s.replace('|', "\\|").replace('\n', " ")
}

/// `"3 min 50 s"` (`"13 s"` under a minute).
fn minutes(s: f64) -> String {
    if !s.is_finite() {
        return "?".into();
    }
    let s = s.round() as u64;
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// The report: a summary with each experiment's wall time, one
/// claim-vs-measured table over all experiments, then the plots.
pub fn render_report(results: &[Value], failures: &[String], quick: bool) -> String {
    let mut md = String::new();
    let (passed, total) = count_claims(results);
    let _ = writeln!(md, "# graft: reproduction report\n");
    let machine = results
        .first()
        .and_then(|r| r["machine"].as_str())
        .unwrap_or("unknown");
    let _ = writeln!(
        md,
        "Mode: {}. Machine: {machine}. Claims holding: {passed} of {total}.\n",
        if quick {
            "quick (`--quick`, reduced sizes)"
        } else {
            "full"
        }
    );
    if !failures.is_empty() {
        let _ = writeln!(
            md,
            "**Experiments that failed to run:** {}\n",
            failures.join(", ")
        );
    }
    // The one place run times are measured: README and docs quote this table.
    let _ = writeln!(md, "| experiment | wall time | claims holding |");
    let _ = writeln!(md, "|---|---|---|");
    let mut total_s = 0.0;
    for r in results {
        let wall = r["wall_s"].as_f64().unwrap_or(f64::NAN);
        total_s += wall;
        let (p, t) = count_claims(std::slice::from_ref(r));
        let _ = writeln!(
            md,
            "| {} | {} | {p} of {t} |",
            cell(&r["experiment"]),
            minutes(wall)
        );
    }
    let _ = writeln!(
        md,
        "| all {} | {} | {passed} of {total} |\n",
        results.len(),
        minutes(total_s)
    );
    let _ = writeln!(md, "| experiment | claim | paper | measured | holds |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for r in results {
        let experiment = cell(&r["experiment"]);
        for c in r["claims"].as_array().into_iter().flatten() {
            let holds = if c["pass"].as_bool() == Some(true) {
                "yes"
            } else {
                "**NO**"
            };
            let _ = writeln!(
                md,
                "| {experiment} | {} ({}) | {} | {} | {holds} |",
                cell(&c["claim"]),
                cell(&c["id"]),
                cell(&c["paper"]),
                cell(&c["measured"]),
            );
        }
    }
    for name in failures {
        let _ = writeln!(md, "| {name} | failed to run | — | — | **NO** |");
    }
    let _ = writeln!(md, "\n## Experiments\n");
    for r in results {
        let name = r["experiment"].as_str().unwrap_or("?");
        let _ = writeln!(
            md,
            "### {name}\n\nseed {}, {:.1} s, {}\n",
            r["seed"],
            r["wall_s"].as_f64().unwrap_or(f64::NAN),
            if r["quick"].as_bool() == Some(true) {
                "quick"
            } else {
                "full"
            }
        );
        for plot in r["plots"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let _ = writeln!(md, "![{plot}]({name}/{plot})\n");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn report_lists_every_claim_and_marks_failures() {
        let results = vec![json!({
            "experiment": "baselines", "quick": true, "seed": 0, "wall_s": 1.5,
            "machine": "test box",
            "claims": [
                {"id": "cnn", "claim": "CNN accuracy", "paper": 0.97, "measured": 0.981, "pass": true},
                {"id": "mlp", "claim": "MLP | accuracy", "paper": "≥ 0.95", "measured": 0.9, "pass": false}
            ],
            "plots": ["curve.svg"]
        })];
        let md = render_report(&results, &["merge".to_string()], true);
        assert!(
            md.contains("| baselines | CNN accuracy (cnn) | 0.97 | 0.981 | yes |"),
            "{md}"
        );
        assert!(md.contains("MLP \\| accuracy"), "{md}");
        assert!(md.contains("| **NO** |"));
        assert!(md.contains("| merge | failed to run |"));
        assert!(md.contains("![curve.svg](baselines/curve.svg)"));
        assert!(md.contains("Claims holding: 1 of 2"));
        assert!(md.contains("| baselines | 2 s | 1 of 2 |"), "{md}");
        assert!(md.contains("| all 1 | 2 s | 1 of 2 |"), "{md}");
        assert_eq!(minutes(230.4), "3 min 50 s");
    }
}
