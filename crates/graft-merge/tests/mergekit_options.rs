//! Parity with the real mergekit on the YAML options beyond the plain
//! methods (`tests/fixtures/mergekit/make.py` made every fixture with
//! mergekit 0.1.5; see its docstring for the semantics it verified):
//!
//! * per-layer weight and density gradients and `filter` lists (a 5-layer
//!   model set, `*_deep`), with a filtered `lambda` and a top-level default;
//! * `normalize: false` for TIES and linear; DARE with `rescale: false`;
//! * sharded inputs (`*_sharded`, shards cutting through a layer);
//! * `out_dtype` other than `dtype`, and bf16 compute.
//!
//! Where mergekit computes in f32, graft must agree to the rounding of a
//! differently ordered f32 sum. Where mergekit computes in bf16 it rounds
//! after every operation (deltas, weighted deltas, the sum, the division);
//! graft computes in f32 and rounds once, so the two differ by a few bf16
//! ulps where mergekit's intermediate roundings add up: those tests bound
//! the share of values more than one bf16 ulp apart and the largest gap.

mod fixture_io;

use fixture_io::{Model, absolutize, fixture_root as root, read_model};
use graft_merge::config::MergeConfig;
use graft_merge::files::{RunOptions, run_merge};
use graft_tensor::safetensors::Dtype;

/// What a comparison found.
#[derive(Debug, Default)]
struct Gap {
    values: usize,
    equal: usize,
    /// Values more than `tol` apart (f32 outputs) or more than one ulp
    /// apart (bf16 outputs).
    over: usize,
    max_abs: f64,
    max_ulps: u64,
    /// The largest gap in bf16 ulps of the element's input scale
    /// (`max |θ|` over the base and the models there).
    max_scale_ulps: f64,
    /// Elements more than four bf16 ulps of their input scale apart (what
    /// the five roundings of a bf16 merge can add up to).
    over_four_scale_ulps: usize,
}

/// One bf16 ulp at magnitude `x`: `2^(⌊log2 x⌋ − 7)`.
fn bf16_ulp(x: f64) -> f64 {
    if x > 0.0 {
        (x.log2().floor() - 7.0).exp2()
    } else {
        f64::from(f32::MIN_POSITIVE)
    }
}

/// Distance in ulps of `dtype` between two values of that dtype.
fn ulps(dtype: Dtype, a: f32, b: f32) -> u64 {
    let key = |x: f32| -> i64 {
        let (bits, width) = match dtype {
            Dtype::BF16 => ((x.to_bits() >> 16) as i64, 16),
            _ => (x.to_bits() as i64, 32),
        };
        let sign = 1i64 << (width - 1);
        if bits & sign != 0 {
            -(bits & (sign - 1))
        } else {
            bits
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

/// Merges `<name>.yml` with graft and compares with `out_<name>`: names,
/// shapes, dtypes (`out_dtype`) exactly; values as [`Gap`] says, with
/// `tol(scale)` the allowed f32 gap at an element whose inputs are at most
/// `scale` in magnitude.
fn compare(name: &str, inputs: &[&str]) -> Gap {
    let root = root();
    let yml = root.join(format!("{name}.yml"));
    let (text, _) = absolutize(&std::fs::read_to_string(&yml).unwrap(), &root);
    let config = MergeConfig::from_yaml(&text, &yml.display().to_string())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    run_merge(&config, &out, &RunOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let graft = read_model(&out);
    let mergekit = read_model(&root.join(format!("out_{name}")));
    let models: Vec<Model> = inputs.iter().map(|m| read_model(&root.join(m))).collect();
    assert_eq!(
        graft.keys().collect::<Vec<_>>(),
        mergekit.keys().collect::<Vec<_>>(),
        "{name}: tensor names"
    );
    let mut gap = Gap::default();
    for (tensor, g) in &graft {
        let m = &mergekit[tensor];
        assert_eq!(g.dtype, m.dtype, "{name}: {tensor} dtype");
        assert_eq!(g.shape, m.shape, "{name}: {tensor} shape");
        for (i, (&a, &b)) in g.values.iter().zip(&m.values).enumerate() {
            gap.values += 1;
            gap.equal += usize::from(a.to_bits() == b.to_bits());
            let d = (f64::from(a) - f64::from(b)).abs();
            gap.max_abs = gap.max_abs.max(d);
            let u = ulps(g.dtype, a, b);
            gap.max_ulps = gap.max_ulps.max(u);
            let scale = models
                .iter()
                .map(|mm| f64::from(mm[tensor].values[i].abs()))
                .fold(0.0, f64::max);
            let su = d / bf16_ulp(scale);
            gap.max_scale_ulps = gap.max_scale_ulps.max(su);
            gap.over_four_scale_ulps += usize::from(su > 4.0);
            let over = match g.dtype {
                Dtype::BF16 => u > 1,
                _ => {
                    // One ulp of the output plus the rounding of an f32 sum
                    // of a few terms of the inputs' size.
                    let ulp = f64::from(f32::EPSILON) * f64::from(b.abs());
                    d > ulp + 16.0 * f64::from(f32::EPSILON) * scale
                }
            };
            gap.over += usize::from(over);
        }
    }
    println!("{name}: {gap:?}");
    gap
}

const DEEP: [&str; 4] = ["base_deep", "ft1_deep", "ft2_deep", "ft3_deep"];
const FLAT: [&str; 4] = ["base", "ft1", "ft2", "ft3"];

#[test]
fn weight_gradients_over_the_layers_match() {
    let gap = compare("task_arithmetic_gradient", &DEEP);
    assert_eq!(gap.over, 0, "{gap:?}");
}

#[test]
fn weight_and_density_gradients_and_filtered_densities_match_in_ties() {
    let gap = compare("ties_gradient", &DEEP);
    assert_eq!(gap.over, 0, "{gap:?}");
}

#[test]
fn filter_lists_with_gradients_a_filtered_lambda_and_a_top_level_default_match() {
    let gap = compare("task_arithmetic_filter", &DEEP);
    assert_eq!(gap.over, 0, "{gap:?}");
}

#[test]
fn normalize_false_matches_for_ties_and_linear() {
    for name in ["ties_no_normalize", "linear_no_normalize"] {
        let gap = compare(name, &FLAT);
        assert_eq!(gap.over, 0, "{name}: {gap:?}");
    }
}

#[test]
fn sharded_inputs_merge_like_single_files() {
    let sharded = compare(
        "ties_sharded",
        &["base_sharded", "ft1_sharded", "ft2_sharded", "ft3_sharded"],
    );
    assert_eq!(sharded.over, 0, "{sharded:?}");
}

#[test]
fn out_dtype_bf16_of_an_f32_merge_is_its_rounding() {
    // mergekit computes in f32 and rounds once, as graft does: the same
    // bits up to f32 sums landing on either side of a bf16 rounding tie.
    let gap = compare("task_arithmetic_f32_to_bf16", &FLAT);
    assert!(gap.max_ulps <= 1, "{gap:?}");
}

/// Round to the nearest bf16, ties to even (finite values).
fn bf16(x: f32) -> f32 {
    let b = x.to_bits();
    f32::from_bits((b + 0x7fff + ((b >> 16) & 1)) & 0xffff_0000)
}

/// With `dtype: bfloat16` mergekit computes in bf16, rounding the inputs,
/// the deltas, each weighted delta, the sums and the quotient; graft
/// computes in f32 and rounds once (`dtype` is recorded, not emulated). For
/// Task Arithmetic and linear merges the two stay within a few bf16 ulps
/// of the inputs' scale. For TIES, a vote tally of bf16-rounded terms can
/// elect the other sign (or drop a term that rounds to zero) where the f32
/// tally is near zero: there the outputs differ by whole deltas. The test
/// bounds both (four bf16 ulps of the inputs' scale: what five roundings
/// add up to) and, without trimming (`ties_bf16_to_f32`, density 1), checks
/// that every larger gap sits where the bf16 vote differs from the f32 one.
#[test]
fn bf16_compute_differs_from_mergekit_only_by_rounding_and_near_zero_votes() {
    for (name, max_scale_ulps) in [("task_arithmetic_bf16", 4.0), ("linear_bf16", 1.0)] {
        let gap = compare(name, &FLAT);
        assert!(gap.max_scale_ulps <= max_scale_ulps, "{name}: {gap:?}");
        assert_eq!(gap.over_four_scale_ulps, 0, "{name}: {gap:?}");
    }
    for name in ["ties_bf16", "ties_bf16_to_f32"] {
        let gap = compare(name, &FLAT);
        assert!(
            gap.over_four_scale_ulps * 50 <= gap.values,
            "{name}: {gap:?}"
        );
    }
    // Every gap over four ulps of the scale in the untrimmed TIES is a vote
    // that bf16 rounding changes.
    let root = root();
    let m: Vec<Model> = FLAT.iter().map(|d| read_model(&root.join(d))).collect();
    let out = read_model(&root.join("out_ties_bf16_to_f32"));
    let yml = root.join("ties_bf16_to_f32.yml");
    let (text, _) = absolutize(&std::fs::read_to_string(&yml).unwrap(), &root);
    let config = MergeConfig::from_yaml(&text, "ties_bf16_to_f32.yml").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    run_merge(&config, &tmp.path().join("out"), &RunOptions::default()).unwrap();
    let graft = read_model(&tmp.path().join("out"));
    let w = [0.6f32, 1.0, 0.8];
    let (mut gaps, mut explained) = (0, 0);
    for (tensor, g) in &graft {
        for (i, &gv) in g.values.iter().enumerate() {
            let mv = out[tensor].values[i];
            let scale = m
                .iter()
                .map(|mm| f64::from(mm[tensor].values[i].abs()))
                .fold(0.0, f64::max);
            if (f64::from(gv) - f64::from(mv)).abs() <= 4.0 * bf16_ulp(scale) {
                continue;
            }
            gaps += 1;
            let b = m[0][tensor].values[i];
            let terms32: Vec<f32> = (0..3)
                .map(|k| w[k] * (m[k + 1][tensor].values[i] - b))
                .collect();
            let terms16: Vec<f32> = (0..3)
                .map(|k| bf16(bf16(w[k]) * bf16(bf16(m[k + 1][tensor].values[i]) - bf16(b))))
                .collect();
            let vote = |t: &[f32]| -> Vec<bool> {
                let s = if t.iter().sum::<f32>() >= 0.0 {
                    1.0
                } else {
                    -1.0
                };
                t.iter().map(|x| *x != 0.0 && x.signum() == s).collect()
            };
            explained += usize::from(vote(&terms32) != vote(&terms16));
        }
    }
    println!(
        "ties_bf16_to_f32: {gaps} gaps over four scale ulps, {explained} where the bf16 vote differs"
    );
    assert_eq!(gaps, explained, "gaps the vote does not explain");
}

/// `rescale: false` keeps DARE's surviving deltas as they are: every merged
/// value is `θ0 + Σ w_i m_i δ_i` for some keep mask `m ∈ {0, 1}³`, in graft's
/// output as in mergekit's, and the masks keep each model's share of
/// entries near its density (the generators differ, so only statistically).
#[test]
fn dare_without_rescale_keeps_unscaled_deltas_at_the_densities() {
    let root = root();
    let name = "dare_linear_no_rescale";
    let yml = root.join(format!("{name}.yml"));
    let (text, _) = absolutize(&std::fs::read_to_string(&yml).unwrap(), &root);
    let config = MergeConfig::from_yaml(&text, &yml.display().to_string()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    run_merge(&config, &out, &RunOptions::default()).unwrap();
    let models: Vec<Model> = FLAT.iter().map(|m| read_model(&root.join(m))).collect();
    let weights = [0.5f64, 0.8, 0.6];
    let densities = [0.5f64, 0.7, 0.3];
    for (who, merged) in [
        ("graft", read_model(&out)),
        ("mergekit", read_model(&root.join(format!("out_{name}")))),
    ] {
        // (kept, decided) per model, over elements whose mask is unambiguous.
        let mut kept = [(0usize, 0usize); 3];
        for (tensor, t) in &merged {
            for (i, &v) in t.values.iter().enumerate() {
                let b = f64::from(models[0][tensor].values[i]);
                let d: Vec<f64> = (1..4)
                    .map(|k| f64::from(models[k][tensor].values[i]) - b)
                    .collect();
                let scale = d.iter().map(|x| x.abs()).sum::<f64>() + b.abs();
                let tol = 16.0 * f64::from(f32::EPSILON) * scale;
                let fits: Vec<u32> = (0..8u32)
                    .filter(|mask| {
                        let mix: f64 = (0..3)
                            .filter(|k| mask >> k & 1 == 1)
                            .map(|k| weights[k] * d[k])
                            .sum();
                        (b + mix - f64::from(v)).abs() <= tol
                    })
                    .collect();
                assert!(
                    !fits.is_empty(),
                    "{who}: {tensor}[{i}] = {v} is no unscaled DARE sum"
                );
                if let [mask] = fits[..] {
                    for (k, c) in kept.iter_mut().enumerate() {
                        if d[k] != 0.0 {
                            c.0 += (mask >> k & 1) as usize;
                            c.1 += 1;
                        }
                    }
                }
            }
        }
        for (k, &(hit, n)) in kept.iter().enumerate() {
            let p = densities[k];
            let share = hit as f64 / n as f64;
            let se = (p * (1.0 - p) / n as f64).sqrt();
            println!("{who}: model {k} keeps {share:.4} of {n} (density {p})");
            assert!(
                (share - p).abs() <= 5.0 * se,
                "{who}: model {k} keeps {share:.4}, density {p} (±{:.4})",
                5.0 * se
            );
        }
    }
}
