//! `cargo xtask setup [--cuda]`: assemble libtorch in the cache and link it at `target/libtorch`.
//!
//! CPU (default): three pinned wheels give a 425 MB libtorch: `include/` and
//! `share/` from torch's wheel, and of its `lib/` only `libtorch_cpu.so`,
//! `libc10.so` and `libgomp.so.1`, plus the two CUDA runtime libraries that
//! `libtorch_cpu.so` links against. The wheel's `libtorch.so` only pulls in
//! `libtorch_cuda.so` (and ~3 GB of cuDNN/cuBLAS/NCCL), so `lib/libtorch.so`
//! becomes a link to `libtorch_cpu.so`, which is what tch links with `-ltorch`.
//!
//! CUDA (`--cuda`): the same torch wheel with every library in its `lib/`,
//! plus the CUDA libraries pip resolves as its dependencies.

use crate::layout::{self, TORCH_VERSION};
use crate::shell::{self, step};
use crate::wheel::{Archive, Wheel};
use anyhow::{Context, Result, bail};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TASK: &str = "setup";

/// The torch wheel tch 0.26 is built against.
pub const TORCH: Wheel = Wheel {
    requirement: "torch==2.13.0",
    file: "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl",
    sha256: "60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7",
};

const CUDA_RUNTIME: Wheel = Wheel {
    requirement: "nvidia-cuda-runtime==13.0.96",
    file: "nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    sha256: "7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548",
};

const CUDA_CUPTI: Wheel = Wheel {
    requirement: "nvidia-cuda-cupti==13.0.85",
    file: "nvidia_cuda_cupti-13.0.85-py3-none-manylinux_2_25_x86_64.whl",
    sha256: "4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8",
};

/// Written last into a finished libtorch directory; its presence makes set-up a no-op.
const COMPLETE_MARKER: &str = ".graft-complete";

/// `cargo xtask setup [--cuda] [--print-config]`.
pub fn run(args: &[String]) -> Result<()> {
    crate::reject_unknown("setup", args, &["--cuda", "--print-config"])?;
    let flavour = if args.iter().any(|a| a == "--cuda") {
        "cuda"
    } else {
        "cpu"
    };
    let dir = ensure(Some(flavour))?;
    if args.iter().any(|a| a == "--print-config") {
        print!("{}", downstream_config(&dir, flavour));
    }
    Ok(())
}

/// The `.cargo/config.toml` lines another project needs to build against
/// graft's libtorch in `dir`: torch-sys finds it through `LIBTORCH`, and
/// the binaries, tests and examples find its shared libraries at run time
/// through an rpath (absolute: the project is elsewhere).
pub fn downstream_config(dir: &Path, flavour: &str) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    format!(
        "# graft's libtorch {TORCH_VERSION} ({flavour}), assembled by `cargo xtask setup`.\n\
         # Put these lines in your project's .cargo/config.toml.\n\
         [env]\n\
         LIBTORCH = \"{dir}\"\n\
         \n\
         [target.x86_64-unknown-linux-gnu]\n\
         rustflags = [\"-C\", \"link-arg=-Wl,-rpath,{dir}/lib\"]\n",
        dir = dir.display()
    )
}

/// Makes sure a libtorch is assembled and linked; returns its directory.
///
/// With `None`, keeps whichever finished flavour `target/libtorch` already
/// points at, and sets up the CPU one otherwise.
pub fn ensure(flavour: Option<&str>) -> Result<PathBuf> {
    let flavour = match flavour {
        Some(f) => f.to_string(),
        None => linked_flavour().unwrap_or_else(|| "cpu".into()),
    };
    let dir = layout::libtorch_dir(&flavour);
    if is_complete(&dir) {
        step(
            TASK,
            format!(
                "libtorch {TORCH_VERSION} ({flavour}) is already set up at {}: nothing to do",
                dir.display()
            ),
        );
    } else {
        assemble(&flavour, &dir)?;
    }
    let link = layout::libtorch_link();
    layout::point_link(&link, &dir)?;
    step(TASK, format!("{} -> {}", link.display(), dir.display()));
    Ok(dir)
}

/// The flavour of the finished libtorch `target/libtorch` points at, if any.
pub fn linked_flavour() -> Option<String> {
    let target = fs::read_link(layout::libtorch_link()).ok()?;
    if !is_complete(&target) {
        return None;
    }
    let name = target.file_name()?.to_string_lossy().into_owned();
    name.rsplit('-').next().map(str::to_string)
}

/// Whether `dir` holds a finished libtorch.
pub fn is_complete(dir: &Path) -> bool {
    dir.join(COMPLETE_MARKER).is_file() && dir.join("lib").join("libtorch_cpu.so").exists()
}

fn assemble(flavour: &str, dir: &Path) -> Result<()> {
    step(
        TASK,
        format!(
            "assembling libtorch {TORCH_VERSION} ({flavour}) in {}",
            dir.display()
        ),
    );
    let parent = dir.parent().context("libtorch directory has no parent")?;
    fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(".tmp-{TORCH_VERSION}-{flavour}"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    fs::create_dir_all(tmp.join("lib"))?;

    let torch = TORCH.ensure(TASK)?;
    let mut archive = Archive::open(&torch)?;
    step(TASK, "extracting headers (torch/include, torch/share)");
    let headers = archive.extract_tree("torch/include/", &tmp.join("include"))?;
    archive.extract_tree("torch/share/", &tmp.join("share"))?;
    step(TASK, format!("extracted {headers} headers"));

    match flavour {
        "cpu" => {
            for lib in ["libtorch_cpu.so", "libc10.so", "libgomp.so.1"] {
                step(TASK, format!("extracting lib/{lib}"));
                archive.extract(&format!("torch/lib/{lib}"), &tmp.join("lib").join(lib))?;
            }
            for (wheel, lib) in [
                (&CUDA_RUNTIME, "libcudart.so.13"),
                (&CUDA_CUPTI, "libcupti.so.13"),
            ] {
                let path = wheel.ensure(TASK)?;
                step(TASK, format!("extracting lib/{lib}"));
                Archive::open(&path)?.extract(
                    &format!("nvidia/cu13/lib/{lib}"),
                    &tmp.join("lib").join(lib),
                )?;
            }
            std::os::unix::fs::symlink("libtorch_cpu.so", tmp.join("lib").join("libtorch.so"))?;
        }
        "cuda" => {
            // libtorch_python.so needs libpython and only serves Python extensions.
            let libs = archive.members("torch/lib/", |n| {
                n.contains(".so") && !n.ends_with("libtorch_python.so")
            });
            for member in libs {
                let name = member.trim_start_matches("torch/lib/");
                step(TASK, format!("extracting lib/{name}"));
                archive.extract(&member, &tmp.join("lib").join(name))?;
            }
            extract_cuda_dependencies(&tmp.join("lib"))?;
        }
        other => bail!("unknown libtorch flavour `{other}` (expected cpu or cuda)"),
    }
    fs::write(
        tmp.join("build-version"),
        format!("{TORCH_VERSION}+{flavour}\n"),
    )?;
    fs::write(tmp.join(COMPLETE_MARKER), format!("{}\n", TORCH.sha256))?;
    if dir.exists() {
        fs::remove_dir_all(dir)
            .with_context(|| format!("removing unfinished {}", dir.display()))?;
    }
    fs::rename(&tmp, dir)
        .with_context(|| format!("moving {} to {}", tmp.display(), dir.display()))?;
    step(TASK, format!("libtorch {TORCH_VERSION} ({flavour}) ready"));
    Ok(())
}

/// Downloads torch's CUDA dependencies (as pip resolves them) and copies their libraries into `lib`.
fn extract_cuda_dependencies(lib: &Path) -> Result<()> {
    shell::require_python_pip()?;
    let dir = layout::downloads_dir().join("cuda-deps");
    fs::create_dir_all(&dir)?;
    step(
        TASK,
        "downloading torch's CUDA dependencies with pip (several GB)",
    );
    let mut pip = Command::new("python3");
    pip.args([
        "-m",
        "pip",
        "download",
        "--only-binary=:all:",
        "--python-version",
        "3.11",
    ])
    .args(crate::wheel::platform_args())
    .args(["--disable-pip-version-check", "--progress-bar", "on", "-d"])
    .arg(&dir)
    .arg(TORCH.requirement);
    shell::run(&mut pip)?;
    for entry in fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.starts_with("nvidia") || !name.ends_with(".whl") {
            continue;
        }
        let mut archive = Archive::open(&path)?;
        for member in archive.members("nvidia/", |n| n.contains("/lib/") && n.contains(".so")) {
            let file = member.rsplit('/').next().unwrap_or(&member).to_string();
            archive.extract(&member, &lib.join(file))?;
        }
        step(TASK, format!("took the libraries of {name}"));
    }
    Ok(())
}
