//! `cargo xtask env`: where graft keeps its things and whether they are ready.

use crate::layout::{self, TORCH_VERSION};
use crate::{fetch_assets, peers, setup};
use anyhow::Result;
use std::process::Command;

/// `cargo xtask env`.
pub fn run(args: &[String]) -> Result<()> {
    crate::reject_unknown("env", args, &[])?;
    let cache = layout::cache_dir();
    println!(
        "cache          {}  (GRAFT_CACHE overrides)",
        cache.display()
    );
    for flavour in ["cpu", "cuda"] {
        let dir = layout::libtorch_dir(flavour);
        let state = if setup::is_complete(&dir) {
            "ready"
        } else {
            "not set up"
        };
        println!("libtorch {flavour:<5} {} ({state})", dir.display());
    }
    let link = layout::libtorch_link();
    match std::fs::read_link(&link) {
        Ok(target) => println!("build uses     {} -> {}", link.display(), target.display()),
        Err(_) => println!(
            "build uses     {} (missing: run `cargo xtask setup`)",
            link.display()
        ),
    }
    println!("torch version  {TORCH_VERSION} (tch 0.26)");
    for (name, what, present) in fetch_assets::status() {
        let state = if present {
            "present"
        } else {
            "missing: run `cargo xtask fetch-assets`"
        };
        println!("asset          {name}: {what} ({state})");
    }
    let peers_state = if peers::installed("core") {
        "core installed"
    } else {
        "not created"
    };
    println!(
        "python peers   {} ({peers_state})",
        layout::peers_dir().display()
    );
    println!("python3        {}", version_of("python3", &["--version"]));
    println!(
        "cargo          {}",
        version_of(env!("CARGO"), &["--version"])
    );
    println!(
        "cores          {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if let Some(line) = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal"))
            .map(str::to_string)
    }) {
        println!(
            "memory         {}",
            line.trim_start_matches("MemTotal:").trim()
        );
    }
    Ok(())
}

fn version_of(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "not found".into())
}
