//! Synthetic 4-channel brain-tumour-like volumes with nested labels (spec
//! §2): a blurred-noise background and a tumour of three nested ellipsoids —
//! necrotic core (label 1) inside an enhancing rim (label 4) inside oedema
//! (label 2). Channel contrasts: FLAIR bright on the whole tumour, T1 dark
//! on the core, T1ce bright on the enhancing rim, T2 bright on the oedema;
//! N(0, 0.1) noise, each channel z-scored. Targets are the BraTS regions
//! WT = {1, 2, 4}, TC = {1, 4}, ET = {4}.

use crate::{Error, Result};
use graft_tensor::tch::{Kind, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// One synthetic case.
pub struct Volume {
    /// `[4, S, S, S]`: FLAIR, T1, T1ce, T2, each z-scored.
    pub image: Tensor,
    /// `[3, S, S, S]` in {0, 1}: WT, TC, ET.
    pub target: Tensor,
}

fn randn(rng: &mut ChaCha8Rng, shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    Tensor::from_slice(&v).view(shape)
}

/// Generates the case of `seed` on an `S³` grid (`S ≥ 8`).
pub fn volume(size: i64, seed: u64) -> Result<Volume> {
    if size < 8 {
        return Err(Error::Config(format!(
            "synthetic volumes need S >= 8, got {size}"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let s = size as f64;
    let centre: Vec<f64> = (0..3).map(|_| rng.random_range(0.38..0.62) * s).collect();
    let edema: Vec<f64> = (0..3).map(|_| rng.random_range(0.16..0.28) * s).collect();
    let core_frac = rng.random_range(0.35..0.5);
    let rim_frac = core_frac * rng.random_range(1.25..1.45);
    // Normalised squared distance to the centre, in units of the oedema radii.
    let axis = |i: usize| {
        let shape: [i64; 3] = match i {
            0 => [size, 1, 1],
            1 => [1, size, 1],
            _ => [1, 1, size],
        };
        ((Tensor::arange(size, (Kind::Float, graft_tensor::tch::Device::Cpu)) + 0.5 - centre[i])
            / edema[i])
            .square()
            .view(shape)
    };
    let d = axis(0) + axis(1) + axis(2);
    let wt = d.le(1.0).to_kind(Kind::Float);
    let tc = d.le(rim_frac * rim_frac).to_kind(Kind::Float);
    let necrosis = d.le(core_frac * core_frac).to_kind(Kind::Float);
    let et = &tc - &necrosis;
    let oedema = &wt - &tc;
    // Background: blurred noise per channel.
    let bg = randn(&mut rng, &[1, 4, size, size, size])
        .avg_pool3d([5, 5, 5], [1, 1, 1], [2, 2, 2], false, true, None::<i64>)
        .squeeze_dim(0)
        * 3.0;
    let contrast = [
        &wt * 2.0,                   // FLAIR: whole tumour bright
        &tc * -1.5,                  // T1: core dark
        &et * 2.5 + &necrosis * 0.3, // T1ce: enhancing rim bright
        &oedema * 2.0 + &tc * 0.8,   // T2: oedema bright
    ];
    let tumour = Tensor::stack(&contrast, 0);
    let noise = randn(&mut rng, &[4, size, size, size]) * 0.1;
    let raw = bg + tumour + noise;
    let mean = raw.mean_dim(&[1i64, 2, 3][..], true, Kind::Float);
    let std = raw.std_dim(&[1i64, 2, 3][..], false, true);
    let image = (raw - mean) / (std + 1e-6);
    let target = Tensor::stack(&[wt, tc, et], 0);
    Ok(Volume { image, target })
}

/// A batch `[B, 4, S, S, S]` and `[B, 3, S, S, S]` of the cases `seeds`.
pub fn batch(size: i64, seeds: &[u64]) -> Result<(Tensor, Tensor)> {
    let vols = seeds
        .iter()
        .map(|&s| volume(size, s))
        .collect::<Result<Vec<_>>>()?;
    let images: Vec<&Tensor> = vols.iter().map(|v| &v.image).collect();
    let targets: Vec<&Tensor> = vols.iter().map(|v| &v.target).collect();
    Ok((Tensor::f_stack(&images, 0)?, Tensor::f_stack(&targets, 0)?))
}
