//! Where graft keeps things: the repository, the cache, libtorch, assets, peers.

use std::path::{Path, PathBuf};

/// The libtorch version tch 0.26 is built against.
pub const TORCH_VERSION: &str = "2.13.0";

/// The repository root (xtask lives one level below it).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cache directory: `GRAFT_CACHE`, else `$XDG_CACHE_HOME/graft`, else `~/.cache/graft`.
///
/// `graft_tensor::cache::cache_dir` follows the same rule.
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

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Downloaded wheels, kept so a second set-up downloads nothing.
pub fn downloads_dir() -> PathBuf {
    cache_dir().join("downloads")
}

/// The assembled libtorch for a flavour (`cpu` or `cuda`).
pub fn libtorch_dir(flavour: &str) -> PathBuf {
    cache_dir()
        .join("libtorch")
        .join(format!("{TORCH_VERSION}-{flavour}"))
}

/// The link the build uses (`.cargo/config.toml` points `LIBTORCH` here).
pub fn libtorch_link() -> PathBuf {
    repo_root().join("target").join("libtorch")
}

/// Extracted data files (digits, MNIST 5k, ...).
pub fn assets_dir() -> PathBuf {
    cache_dir().join("assets")
}

/// The link the crates read assets through (`GRAFT_ASSETS` in `.cargo/config.toml`).
pub fn assets_link() -> PathBuf {
    repo_root().join("target").join("assets")
}

/// The Python virtual environment for peers (fixtures and benchmarks only).
pub fn peers_dir() -> PathBuf {
    cache_dir().join("peers")
}

/// Where `graft reproduce` writes results and xtask the report.
pub fn reproduce_dir() -> PathBuf {
    repo_root().join("target").join("reproduce")
}

/// Points `link` at `target`, replacing whatever link was there.
pub fn point_link(link: &Path, target: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Ok(current) = std::fs::read_link(link) {
        if current == target {
            return Ok(());
        }
        std::fs::remove_file(link)
            .with_context(|| format!("removing old link {}", link.display()))?;
    } else if link.exists() {
        anyhow::bail!(
            "{} exists and is not a link; remove it so set-up can link it to {}",
            link.display(),
            target.display()
        );
    }
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("linking {} -> {}", link.display(), target.display()))
}
