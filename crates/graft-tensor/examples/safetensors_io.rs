//! Write a sharded checkpoint, read it back one tensor at a time, and bridge to ndarray.
//!
//! `cargo run --release -p graft-tensor --example safetensors_io`

use graft_tensor::safetensors::{Checkpoint, save_sharded};
use graft_tensor::tch::{Kind, Tensor};
use std::collections::HashMap;

fn main() -> anyhow::Result<()> {
    graft_tensor::seed::seed_everything(0);
    let device = graft_tensor::device::default_device()?;
    let tensors: Vec<(String, Tensor)> = (0..4)
        .map(|i| {
            (
                format!("layers.{i}.weight"),
                Tensor::randn([256, 256], (Kind::BFloat16, device)),
            )
        })
        .collect();
    let dir = tempfile_dir()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    // 128 KiB per tensor, 300 KiB shards: two tensors per shard.
    save_sharded(
        &dir,
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        &metadata,
        Some(300 << 10),
    )?;
    let ckpt = Checkpoint::open(&dir)?;
    println!(
        "{} tensors in {} shards, {} bytes of data",
        ckpt.names().len(),
        ckpt.files().len(),
        ckpt.data_bytes()
    );
    let first = ckpt.tensor("layers.0.weight")?;
    let array = graft_tensor::array::to_array::<f32>(&first.to_kind(Kind::Float))?;
    println!(
        "layers.0.weight: shape {:?}, mean {:.4}",
        array.shape(),
        array.mean().unwrap_or(f32::NAN)
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("graft-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
