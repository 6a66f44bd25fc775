//! Merge tensors stored in your own format: implement `graft_merge::Source`
//! (read a range of a flattened tensor as f32) and stream it through
//! `merge_chunked`. Nothing here touches libtorch (the example binary links
//! it only through graft-merge's test dependencies):
//!
//! `cargo run --release -p graft-merge --example custom_source`

use graft_merge::{ChunkModel, MergeParams, Method, Source, merge_chunked};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A tensor kept as raw little-endian f32 values in a file of its own.
struct RawF32File {
    file: File,
    len: usize,
}

impl RawF32File {
    fn create(path: &Path, values: &[f32]) -> std::io::Result<Self> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(path, bytes)?;
        Ok(Self {
            file: File::open(path)?,
            len: values.len(),
        })
    }
}

impl Source for RawF32File {
    fn len(&self) -> usize {
        self.len
    }

    fn read(&self, start: usize, out: &mut [f32]) -> graft_merge::Result<()> {
        let mut bytes = vec![0u8; out.len() * 4];
        // A failure of your own storage travels through graft as your own error.
        self.file
            .read_exact_at(&mut bytes, (start * 4) as u64)
            .map_err(graft_merge::Error::wrap)?;
        for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("graft-custom-source-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let n = 10_000;
    let base: Vec<f32> = (0..n).map(|i| (i as f32 * 0.01).sin()).collect();
    let tuned = |shift: f32| base.iter().map(|b| b + shift).collect::<Vec<f32>>();
    let base_src = RawF32File::create(&dir.join("base.f32"), &base)?;
    let a = RawF32File::create(&dir.join("a.f32"), &tuned(0.2))?;
    let b = RawF32File::create(&dir.join("b.f32"), &tuned(-0.1))?;
    let models = [
        ChunkModel {
            id: "a".into(),
            weight: 1.0,
            density: 0.5,
            source: &a,
        },
        ChunkModel {
            id: "b".into(),
            weight: 1.0,
            density: 0.5,
            source: &b,
        },
    ];
    // TIES, streamed 1,024 elements at a time: memory does not grow with n.
    let mut merged = Vec::with_capacity(n);
    merge_chunked(
        &Method::Ties,
        &MergeParams::default(),
        "my.tensor",
        Some(&base_src),
        &models,
        1024,
        &mut |chunk| {
            merged.extend_from_slice(chunk);
            Ok(())
        },
    )?;
    let mean_shift = merged.iter().zip(&base).map(|(m, b)| m - b).sum::<f32>() / n as f32;
    println!(
        "merged {} values; mean change from the base {mean_shift:+.3}",
        merged.len()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
