//! Where graft's cache and fetched assets live.
//!
//! The rule matches `cargo xtask` (which fills the cache): `GRAFT_CACHE`, else
//! `$XDG_CACHE_HOME/graft`, else `~/.cache/graft`. Assets are looked up in
//! `GRAFT_ASSETS` first (`.cargo/config.toml` sets it to `target/assets` for
//! `cargo run` and `cargo test`), then in the cache's `assets/`.

use crate::{Error, Result};
use std::path::PathBuf;

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// graft's cache directory.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = non_empty_env("GRAFT_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = non_empty_env("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("graft");
    }
    let home = non_empty_env("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".cache").join("graft")
}

/// The path of the fetched asset `name` (e.g. `digits.csv.gz`), or an error
/// that says to run `cargo xtask fetch-assets`.
pub fn asset(name: &str) -> Result<PathBuf> {
    let mut tried = Vec::new();
    if let Some(dir) = non_empty_env("GRAFT_ASSETS") {
        tried.push(PathBuf::from(dir).join(name));
    }
    tried.push(cache_dir().join("assets").join(name));
    if let Some(found) = tried.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let places: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(Error::Invalid(format!(
        "asset `{name}` not found (looked in {}); run `cargo xtask fetch-assets`",
        places.join(", ")
    )))
}
