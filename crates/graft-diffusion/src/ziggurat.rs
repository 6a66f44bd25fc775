//! Fast f32 standard normals: Marsaglia and Tsang's ziggurat (2000) with 128
//! layers, one 32-bit draw per sample on the fast path (97 % of draws).
//!
//! The draw's low 7 bits pick the layer and its high 25 bits (signed) give
//! the value, so the two never share bits (the defect Leong et al. (2005)
//! found in the original, which used overlapping bits and a weak
//! generator). The 32-bit draws come in bulk from SplitMix64 keyed by one
//! draw of the caller's ChaCha8 stream (so a seed still fixes everything);
//! tails and wedges, rare, draw from the stream itself and are resolved
//! exactly in f64.

use rand::RngCore;
use std::sync::OnceLock;

const LAYERS: usize = 128;
/// The rightmost layer's edge: `R` of the 128-layer normal ziggurat.
const R: f64 = 3.442_619_855_899;
/// The area of each layer (and of the base strip with its tail).
const V: f64 = 9.912_563_035_262_17e-3;
/// Magnitudes of the signed 25-bit value part.
const M: f64 = 16_777_216.0; // 2^24

struct Tables {
    /// Fast-path bound on `|j|` per layer.
    k: [u32; LAYERS],
    /// `x = j · w[i]`.
    w: [f64; LAYERS],
    /// `w` in f32, for the fast path.
    w32: [f32; LAYERS],
    /// `exp(−x²/2)` at the layer's right edge.
    f: [f64; LAYERS],
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut k = [0u32; LAYERS];
        let mut w = [0f64; LAYERS];
        let mut f = [0f64; LAYERS];
        let mut dn = R;
        let mut tn = dn;
        let q = V / (-0.5 * dn * dn).exp();
        k[0] = ((dn / q) * M) as u32;
        k[1] = 0;
        w[0] = q / M;
        w[LAYERS - 1] = dn / M;
        f[0] = 1.0;
        f[LAYERS - 1] = (-0.5 * dn * dn).exp();
        for i in (1..LAYERS - 1).rev() {
            dn = (-2.0 * (V / dn + (-0.5 * dn * dn).exp()).ln()).sqrt();
            k[i + 1] = ((dn / tn) * M) as u32;
            tn = dn;
            f[i] = (-0.5 * dn * dn).exp();
            w[i] = dn / M;
        }
        Tables {
            k,
            w,
            w32: w.map(|v| v as f32),
            f,
        }
    })
}

/// A uniform in (0, 1) from one 32-bit draw.
fn uniform(u: u32) -> f64 {
    (f64::from(u) + 0.5) / 4_294_967_296.0
}

/// One standard normal from the draw `u`, taking more draws from `rng` on
/// the rare slow path.
#[inline]
fn sample(t: &Tables, mut u: u32, rng: &mut dyn RngCore) -> f32 {
    loop {
        let i = (u & (LAYERS as u32 - 1)) as usize;
        let j = (u as i32) >> 7;
        if j.unsigned_abs() < t.k[i] {
            return (f64::from(j) * t.w[i]) as f32;
        }
        let x = f64::from(j) * t.w[i];
        if i == 0 {
            // The tail beyond R (Marsaglia's exponential method).
            loop {
                let a = -uniform(rng.next_u32()).ln() / R;
                let b = -uniform(rng.next_u32()).ln();
                if b + b >= a * a {
                    return (if j > 0 { R + a } else { -R - a }) as f32;
                }
            }
        }
        // The wedge between layer i's rectangle and the density.
        if t.f[i] + uniform(rng.next_u32()) * (t.f[i - 1] - t.f[i]) < (-0.5 * x * x).exp() {
            return x as f32;
        }
        u = rng.next_u32();
    }
}

/// One thread's buffers: the 32-bit draws and, per draw, whether it missed
/// the fast path; kept between calls.
#[derive(Default)]
struct Scratch {
    draws: Vec<u32>,
    missed: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
}

/// Fills `out` with independent standard normals from `rng`.
pub fn fill_standard_normal(rng: &mut dyn RngCore, out: &mut [f32]) {
    let t = tables();
    let mut s = SCRATCH.take();
    s.draws.clear();
    s.draws.resize(out.len(), 0);
    s.missed.clear();
    s.missed.resize(out.len(), 0);
    fast_pass(t, rng.next_u64(), &mut s.draws, &mut s.missed, out);
    // The few draws that missed (about 3 %) are redone exactly, found
    // through one bit mask per 64 flags (a branch per miss, not per flag).
    for (c, flags) in s.missed.chunks(64).enumerate() {
        let mut mask = flags
            .iter()
            .enumerate()
            .fold(0u64, |m, (k, &f)| m | (u64::from(f) << k));
        while mask != 0 {
            let i = 64 * c + mask.trailing_zeros() as usize;
            mask &= mask - 1;
            out[i] = sample(t, s.draws[i], rng);
        }
    }
    SCRATCH.set(s);
}

/// The 32-bit draws and the branch-free fast path for every one of them;
/// each draw's miss flag in `missed`. The draws are SplitMix64 (Steele,
/// Lea and Flood 2014) keyed by `key`, two per 64-bit output; the `k`-th
/// output depends only on `key + (k + 1)·γ`, so the loop has no carried
/// dependency and vectorises. The vector versions compute the same bits
/// (integer ops and one f32 product per value).
fn fast_pass(t: &Tables, key: u64, draws: &mut [u32], missed: &mut [u8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512dq")
            && std::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { fast_pass_avx512(t, key, draws, missed, out) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { fast_pass_avx2(t, key, draws, missed, out) };
        }
    }
    fast_pass_body(t, key, draws, missed, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2")]
fn fast_pass_avx512(t: &Tables, key: u64, draws: &mut [u32], missed: &mut [u8], out: &mut [f32]) {
    fast_pass_body(t, key, draws, missed, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fast_pass_avx2(t: &Tables, key: u64, draws: &mut [u32], missed: &mut [u8], out: &mut [f32]) {
    fast_pass_body(t, key, draws, missed, out)
}

#[inline(always)]
fn splitmix(key: u64, k: u64) -> u64 {
    let mut z = key.wrapping_add(k.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline(always)]
fn fast_pass_body(t: &Tables, key: u64, draws: &mut [u32], missed: &mut [u8], out: &mut [f32]) {
    let mut pairs = draws.chunks_exact_mut(2);
    let mut k = 0u64;
    for pair in &mut pairs {
        let z = splitmix(key, k);
        pair[0] = z as u32;
        pair[1] = (z >> 32) as u32;
        k += 1;
    }
    if let [last] = pairs.into_remainder() {
        *last = splitmix(key, k) as u32;
    }
    for ((o, m), &u) in out.iter_mut().zip(missed.iter_mut()).zip(draws.iter()) {
        let i = (u & (LAYERS as u32 - 1)) as usize;
        let j = (u as i32) >> 7;
        *o = j as f32 * t.w32[i];
        *m = u8::from(j.unsigned_abs() >= t.k[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Φ(x) by the complementary error function's series-free bound (erfc
    /// via Abramowitz–Stegun 7.1.26 is too coarse): integrate in f64.
    fn phi(x: f64) -> f64 {
        // Simpson on [−8, x] with a fine step: exact to ~1e-12 here.
        let lo = -8.0f64;
        if x <= lo {
            return 0.0;
        }
        let n = 20_000usize;
        let h = (x - lo) / n as f64;
        let f = |t: f64| (-0.5 * t * t).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let mut s = f(lo) + f(x);
        for i in 1..n {
            s += f(lo + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0
    }

    #[test]
    fn draws_are_standard_normal() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 1 << 20;
        let mut v = vec![0f32; n];
        fill_standard_normal(&mut rng, &mut v);
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        let kurt = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(4))
            .sum::<f64>()
            / n as f64
            / (var * var);
        let se = 1.0 / (n as f64).sqrt();
        assert!(mean.abs() < 5.0 * se, "mean {mean}");
        assert!((var - 1.0).abs() < 5.0 * 2f64.sqrt() * se, "var {var}");
        assert!(
            (kurt - 3.0).abs() < 5.0 * 24f64.sqrt() * se,
            "kurtosis {kurt}"
        );
        // Kolmogorov–Smirnov against Φ on a sorted subsample.
        let mut s: Vec<f64> = v.iter().step_by(16).map(|&x| f64::from(x)).collect();
        s.sort_by(f64::total_cmp);
        let m = s.len() as f64;
        let ks = s
            .iter()
            .enumerate()
            .step_by(64)
            .map(|(i, &x)| {
                let c = phi(x);
                (c - i as f64 / m).abs().max((c - (i + 1) as f64 / m).abs())
            })
            .fold(0.0, f64::max);
        assert!(ks < 1.95 / m.sqrt(), "KS {ks}");
        // The tail beyond R and beyond 4 sigma, both sides.
        for (cut, p) in [(R, 2.0 * (1.0 - phi(R))), (4.0, 2.0 * (1.0 - phi(4.0)))] {
            let share = v.iter().filter(|&&x| f64::from(x).abs() > cut).count() as f64 / n as f64;
            let se = (p / n as f64).sqrt();
            assert!((share - p).abs() < 5.0 * se, "beyond {cut}: {share} vs {p}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_draws() {
        let draw = |seed| {
            let mut v = vec![0f32; 1000];
            fill_standard_normal(&mut ChaCha8Rng::seed_from_u64(seed), &mut v);
            v
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
    #[test]
    fn the_vector_fast_path_gives_the_portable_bits() {
        let t = tables();
        for n in [0usize, 1, 2, 7, 1000, 4097] {
            let (mut d1, mut d2) = (vec![0u32; n], vec![0u32; n]);
            let (mut m1, mut m2) = (vec![0u8; n], vec![0u8; n]);
            let (mut o1, mut o2) = (vec![0f32; n], vec![0f32; n]);
            fast_pass(t, 42 + n as u64, &mut d1, &mut m1, &mut o1);
            fast_pass_body(t, 42 + n as u64, &mut d2, &mut m2, &mut o2);
            assert_eq!(d1, d2, "draws, n = {n}");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&o1), bits(&o2), "values, n = {n}");
            assert_eq!(m1, m2, "missed, n = {n}");
        }
        // The counter form is the sequential SplitMix64 stream.
        let mut state = 9u64;
        for k in 0..5 {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            assert_eq!(splitmix(9, k), z ^ (z >> 31));
        }
    }
}
