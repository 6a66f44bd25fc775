//! Parity with the real mergekit (spec `merging.md` §5 "Compat oracle", §6).
//!
//! `tests/fixtures/mergekit/` holds a tiny Llama-shaped base, three
//! fine-tunes, five mergekit YAML files and what mergekit 0.1.5 (torch
//! 2.13.0, CPU, `dtype: float32`, `--random-seed 0`) wrote for each; `make.py`
//! there made them. No Python runs here: graft merges the same YAML (model
//! paths pointed at the fixture directories) and its output is compared with mergekit's.
//!
//! * `linear`, `task_arithmetic`, `ties` are deterministic: every tensor must
//!   agree value for value, up to the rounding of a differently ordered sum
//!   (see [`TOL_EPS`]).
//! * `dare_linear`, `dare_ties` draw their masks from different generators
//!   (graft's counter-based stream, torch's global one), so per tensor the
//!   share of non-zero merged deltas, their mean and their variance are
//!   compared, within 5 standard errors (see [`check_dare`]).

mod fixture_io;

use fixture_io::{Model, absolutize, fixture_root, read_model};
use graft_merge::config::MergeConfig;
use graft_merge::files::{RunOptions, run_merge};
use graft_tensor::safetensors::Dtype;
use std::path::{Path, PathBuf};

/// The fine-tunes, in the YAML's order.
const FINE_TUNES: [&str; 3] = ["ft1", "ft2", "ft3"];

struct Run {
    config: MergeConfig,
    base: Model,
    fine_tunes: Vec<Model>,
    graft: Model,
    mergekit: Model,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mergekit")
}

fn yaml_root() -> PathBuf {
    fixture_root()
}

/// Merges `<method>.yml` with graft and reads both outputs.
fn run(method: &str) -> Run {
    let yml = fixture_dir().join(format!("{method}.yml"));
    let root = yaml_root();
    let text = std::fs::read_to_string(&yml).unwrap();
    let (text, replaced) = absolutize(&text, &root);
    let expected = if method == "linear" { 3 } else { 4 };
    assert_eq!(
        replaced, expected,
        "{method}.yml: model paths replaced\n{text}"
    );
    let config = MergeConfig::from_yaml(&text, &yml.display().to_string()).unwrap();
    assert_eq!(config.models.len(), 3);
    for (m, ft) in config.models.iter().zip(FINE_TUNES) {
        assert_eq!(m.path, root.join(ft));
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let options = RunOptions {
        ..Default::default()
    };
    run_merge(&config, &out, &options).unwrap();
    let graft = read_model(&out);
    let mergekit = read_model(&root.join(format!("out_{method}")));
    let run = Run {
        config,
        base: read_model(&root.join("base")),
        fine_tunes: FINE_TUNES
            .iter()
            .map(|f| read_model(&root.join(f)))
            .collect(),
        graft,
        mergekit,
    };
    check_layout(method, &run);
    run
}

/// Names, shapes and dtypes: exactly mergekit's (and the base's).
fn check_layout(method: &str, run: &Run) {
    let names = |m: &Model| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&run.graft), names(&run.mergekit), "{method}: names");
    assert_eq!(names(&run.graft), names(&run.base), "{method}: names");
    assert_eq!(
        run.graft.len(),
        21,
        "{method}: a 2-layer Llama has 21 tensors"
    );
    for (name, g) in &run.graft {
        let m = &run.mergekit[name];
        assert_eq!(g.shape, m.shape, "{method}: {name} shape");
        assert_eq!(g.dtype, m.dtype, "{method}: {name} dtype");
        assert_eq!(
            g.dtype,
            Dtype::F32,
            "{method}: {name} dtype (out_dtype float32)"
        );
        assert_eq!(g.values.len(), g.shape.iter().product::<usize>());
    }
}

fn weights_and_densities(run: &Run, tensor: &str) -> Vec<(f64, f64)> {
    run.config
        .models
        .iter()
        .map(|m| {
            (
                m.weight.resolve(tensor, None).unwrap(),
                m.density.resolve(tensor, None).unwrap(),
            )
        })
        .collect()
}

/// Distance in units in the last place between two finite f32 (0 for equal
/// values, 1 for neighbours, across zero too).
fn ulps(a: f32, b: f32) -> u64 {
    let key = |x: f32| {
        let bits = x.to_bits() as i32;
        let k = if bits < 0 {
            i32::MIN.wrapping_sub(bits)
        } else {
            bits
        };
        i64::from(k)
    };
    (key(a) - key(b)).unsigned_abs()
}

/// The spacing of f32 at `x`.
fn ulp_of(x: f32) -> f64 {
    let x = x.abs();
    if x < f32::MIN_POSITIVE {
        return f64::from(f32::from_bits(1));
    }
    f64::from(f32::from_bits(x.to_bits() + 1) - x)
}

/// How far graft and mergekit may differ at one element, in units of
/// `ε·S` on top of one ulp of the output.
///
/// Both take `δ_i = x_i − b` (the same exact f32 subtraction) and
/// `D_i = w_i δ_i`; they differ in the order of the three-term sums (graft
/// sums in the canonical order of stable model-id hashes, mergekit in list
/// order) and, for `linear`, in mergekit's fused multiply-add (`addcmul_`).
/// With `u = 2⁻²⁴ = ε/2` and `S = |λ|·Σ|w_i v_i| / div_min` (`v` = the
/// values for `linear`, the deltas otherwise; `div_min` the smallest divisor
/// the method can use: `Σ w = 1.4` for linear, 1 for task_arithmetic (no
/// normalisation), the smallest weight 0.6 for ties), first order:
/// each side's `Σ w_i v_i` is within `3u·Σ|w_i v_i|` of the exact sum (both
/// sides: `3ε`), the divisor `Σ w_i` within a relative `2u` (both sides:
/// `2ε`), the division and the `λ` product one rounding each (`ε` each for
/// both sides): `|Δmix| ≤ 7ε·S`; the final `b + mix` rounds each side by at
/// most half an ulp of the output. Hence `|graft − mergekit| ≤ ulp(out) +
/// 8ε·S`. Outputs near zero (where `b ≈ −mix`) may then be hundreds of ulps
/// apart while agreeing to ~1e-8 absolutely, so ulps alone are no measure.
const TOL_EPS: f64 = 8.0;

fn tolerance(out: f32, scale: f64) -> f64 {
    ulp_of(out) + TOL_EPS * f64::from(f32::EPSILON) * scale
}

struct Agreement {
    elements: usize,
    identical: usize,
    max_ulps: u64,
    /// Elements more than 1 ulp apart.
    over_one_ulp: usize,
    /// Largest `|graft − mergekit|` in ulps of `max(|out|, S)`.
    max_scale_ulps: f64,
    max_abs: f64,
    /// Largest `|graft − mergekit| / tolerance`.
    max_ratio: f64,
}

/// Compares every value of every tensor (spec §9's "share of bit-identical
/// elements and max ulp gap").
fn compare_exact(method: &str, run: &Run, lambda: f64, deltas: bool, min_div: f64) -> Agreement {
    let mut a = Agreement {
        elements: 0,
        identical: 0,
        max_ulps: 0,
        over_one_ulp: 0,
        max_scale_ulps: 0.0,
        max_abs: 0.0,
        max_ratio: 0.0,
    };
    for (name, g) in &run.graft {
        let m = &run.mergekit[name];
        let b = &run.base[name].values;
        let wd = weights_and_densities(run, name);
        for (e, &be) in b.iter().enumerate() {
            let (gv, mv) = (g.values[e], m.values[e]);
            let scale: f64 = lambda.abs()
                * wd.iter()
                    .zip(&run.fine_tunes)
                    .map(|((w, _), ft)| {
                        let x = ft[name].values[e];
                        let v = if deltas { x - be } else { x };
                        w.abs() * f64::from(v.abs())
                    })
                    .sum::<f64>()
                / min_div;
            let diff = (f64::from(gv) - f64::from(mv)).abs();
            let tol = tolerance(mv, scale);
            assert!(
                diff <= tol,
                "{method}: {name}[{e}]: graft {gv:e} vs mergekit {mv:e} (|diff| {diff:e} > {tol:e})"
            );
            a.elements += 1;
            a.identical += usize::from(gv.to_bits() == mv.to_bits());
            let u = ulps(gv, mv);
            a.over_one_ulp += usize::from(u > 1);
            a.max_ulps = a.max_ulps.max(u);
            a.max_scale_ulps = a
                .max_scale_ulps
                .max(diff / ulp_of(mv.abs().max(scale as f32)));
            a.max_abs = a.max_abs.max(diff);
            a.max_ratio = a.max_ratio.max(diff / tol);
        }
    }
    eprintln!(
        "{method}: {} of {} elements bit-identical, {} more than 1 ulp apart, max {} ulp, \
         max {:.3} ulp of max(|out|, S), max |diff| {:e}, max |diff|/tolerance {:.3}",
        a.identical,
        a.elements,
        a.over_one_ulp,
        a.max_ulps,
        a.max_scale_ulps,
        a.max_abs,
        a.max_ratio
    );
    a
}

/// Rounding differences are the exception: a systematic difference (another
/// compute precision, another formula that agrees to 1e-7) would make most
/// elements differ. Measured: 84% (linear), 95% (task_arithmetic), 99.7% (ties).
fn assert_mostly_identical(method: &str, a: &Agreement) {
    assert!(
        a.identical * 4 > a.elements * 3,
        "{method}: only {} of {} elements bit-identical",
        a.identical,
        a.elements
    );
}

/// Guards against a fixture where the merge would be trivially the base.
fn assert_merge_moved(method: &str, run: &Run) {
    let moved = run
        .mergekit
        .iter()
        .map(|(n, t)| {
            t.values
                .iter()
                .zip(&run.base[n].values)
                .filter(|(a, b)| a != b)
                .count()
        })
        .sum::<usize>();
    let total: usize = run.base.values().map(|t| t.values.len()).sum();
    assert!(
        moved * 2 > total,
        "{method}: mergekit's output equals the base at {} of {total} elements",
        total - moved
    );
}

/// The fixture is what `make.py` says: ~20% exact-zero deltas per model and
/// mean deltas of `0.01 · offset · 0.8` (offsets 0.5, −0.3, 0.8).
#[test]
fn fixture_has_exact_zero_deltas_and_offsets() {
    let root = fixture_dir();
    let base = read_model(&root.join("base"));
    for (ft, offset) in FINE_TUNES.into_iter().zip([0.5, -0.3, 0.8]) {
        let m = read_model(&root.join(ft));
        let (mut zero, mut total, mut sum) = (0usize, 0usize, 0.0f64);
        for (name, t) in &m {
            for (x, b) in t.values.iter().zip(&base[name].values) {
                zero += usize::from(x == b);
                sum += f64::from(x - b);
            }
            total += t.values.len();
        }
        let share = zero as f64 / total as f64;
        assert!(
            (0.15..0.25).contains(&share),
            "{ft}: {share} exact-zero deltas (make.py draws 20%)"
        );
        let mean = sum / total as f64;
        let want = 0.01 * offset * (1.0 - share);
        assert!(
            (mean - want).abs() < 0.2 * want.abs(),
            "{ft}: mean delta {mean:e}, make.py's offset gives {want:e}"
        );
    }
}

#[test]
fn linear_matches_mergekit() {
    let run = run("linear");
    assert_merge_moved("linear", &run);
    // Measured (mergekit 0.1.5, torch 2.13.0): 18085 of 21584 elements
    // bit-identical, 859 more than 1 ulp apart (outputs near zero), max 366
    // ulp (at an output of 1.04e-5), max 2 ulp of max(|out|, S), max |diff|
    // 1.2e-7, max |diff|/tolerance 0.18.
    let a = compare_exact("linear", &run, 1.0, false, 1.4);
    assert_mostly_identical("linear", &a);
}

#[test]
fn task_arithmetic_matches_mergekit() {
    let run = run("task_arithmetic");
    assert_merge_moved("task_arithmetic", &run);
    assert_eq!(run.config.params.lambda, 0.9);
    // Measured: 20509 of 21584 bit-identical, 324 more than 1 ulp apart,
    // max 256 ulp (at an output of 1.1e-4), max 2 ulp of max(|out|, S), max
    // |diff| 1.5e-8, max |diff|/tolerance 0.62 (1 ulp of an output where S
    // is small).
    let a = compare_exact("task_arithmetic", &run, 0.9, true, 1.0);
    assert_mostly_identical("task_arithmetic", &a);
}

#[test]
fn ties_matches_mergekit() {
    let run = run("ties");
    assert_merge_moved("ties", &run);
    // Measured: 21530 of 21584 bit-identical, 23 more than 1 ulp apart, max
    // 32 ulp, max 1 ulp of max(|out|, S), max |diff| 7.5e-9, max
    // |diff|/tolerance 0.11. The trim (floor(d·n) largest |δ|), the weighted
    // sign vote and the weighted disjoint mean therefore select exactly the
    // same entries as mergekit: one different choice would be off by ~1e-2.
    let a = compare_exact("ties", &run, 1.0, true, 0.6);
    assert_mostly_identical("ties", &a);
}

/// Sample statistics of one merged delta `Δ = out − base` (in f64).
#[derive(Debug)]
struct Stats {
    n: f64,
    /// Share of non-zero entries.
    nonzero: f64,
    mean: f64,
    /// Second central moment (population variance over the entries).
    var: f64,
    /// Standard error of `mean`: sample sd of `Δ − predictor` / √n.
    se_mean: f64,
    /// Standard error of `var`: sd of `(Δ − mean)²` / √n.
    se_var: f64,
}

/// `predictor`: a fixed per-entry value (the undropped merge `Σ w_i δ_i`)
/// whose subtraction leaves the mean's variance unchanged but takes the
/// spread of the entries' expectations out of its estimate.
fn stats(delta: &[f64], predictor: &[f64]) -> Stats {
    let n = delta.len() as f64;
    let mean = delta.iter().sum::<f64>() / n;
    let resid: Vec<f64> = delta.iter().zip(predictor).map(|(d, p)| d - p).collect();
    let resid_mean = resid.iter().sum::<f64>() / n;
    let resid_var = resid
        .iter()
        .map(|r| (r - resid_mean) * (r - resid_mean))
        .sum::<f64>()
        / n;
    let sq: Vec<f64> = delta.iter().map(|d| (d - mean) * (d - mean)).collect();
    let var = sq.iter().sum::<f64>() / n;
    let var_sq = sq.iter().map(|s| (s - var) * (s - var)).sum::<f64>() / n;
    Stats {
        n,
        nonzero: delta.iter().filter(|d| **d != 0.0).count() as f64 / n,
        mean,
        var,
        se_mean: (resid_var / n).sqrt(),
        se_var: (var_sq / n).sqrt(),
    }
}

/// The number of standard errors allowed: the fixture and graft's seed are
/// fixed, so the test is deterministic, but 5σ keeps it from failing on a
/// legitimate change of either stream (two-sided p ≈ 6e-7 per comparison,
/// ~150 comparisons).
const SIGMAS: f64 = 5.0;

/// Tensors this large or larger are compared one by one (the MLP matrices
/// have 512 entries, the embedding and lm_head 8192); smaller ones only
/// count in the pooled whole-model comparison.
const MIN_NUMEL: usize = 512;

/// Statistical parity of a DARE merge.
///
/// Given the committed deltas `δ_i,e`, the masks are independent across
/// entries and models, so for each tensor:
///
/// * **non-zero share**: entry `e` of the merged delta is non-zero iff some
///   model with `δ_i,e ≠ 0` keeps it (for `dare_ties` too: among non-zero kept
///   entries one always has the elected sign, positive if their sum is ≥ 0,
///   negative otherwise, so the disjoint sum is not zero; exact cancellations
///   in `dare_linear` and deltas below half an ulp of the base have
///   probability ~0). So its expectation is `p̄ = mean_e (1 − Π_{i: δ_i,e≠0}
///   (1 − d_i))`, with binomial standard error `√(Σ_e p_e(1 − p_e))/n`; both
///   graft and mergekit must be within 5 SE of `p̄`, and of each other within
///   5·√(SE_g² + SE_m²) where each SE = √(p̂(1 − p̂)/n) (for independent
///   Bernoulli entries with different `p_e` this over-estimates the variance:
///   `Σ p_e(1−p_e) ≤ n p̄(1−p̄)`).
/// * **mean and variance** of the merged delta: graft vs mergekit within
///   5·√(SE_g² + SE_m²) (CLT), with the SEs estimated from the sample (sd of
///   `Δ_e − Σ_i w_i δ_i,e` / √n for the mean: subtracting a fixed value per
///   entry does not change the mean's variance; sd of the squared
///   deviations / √n for the variance). For independent entries of different
///   expectations these estimates include the spread of the expectations, so
///   they over-estimate the true SE: conservative. The fine-tunes' deltas
///   have non-zero means (offsets in `make.py`), so a missing rescale or a
///   normalisation moves the mean by many SE (tried by adding
///   `rescale: false` to the YAML: |z| ≈ 20–24; `normalize: true` on
///   dare_linear: |z| ≈ 12), and dropping at the wrong rate moves the
///   variance.
/// * for `dare_linear` also the expectation of the mean:
///   `E[Δ_e] = Σ w_i δ_i,e` (the rescale keeps the expectation; L1 matching
///   only changes it at O(1/n)), with `Var[Δ_e] = Σ w_i² δ_i,e² (1 − d_i)/d_i`.
///
/// The same is checked on the whole model pooled (all 21 tensors,
/// 21 584 entries).
fn check_dare(method: &str, run: &Run) {
    let linear = method == "dare_linear";
    let mut pooled_g = Vec::new();
    let mut pooled_m = Vec::new();
    let mut pooled_p = Vec::new();
    let mut pooled_expect = Vec::new();
    let mut worst = [0.0f64; 5];
    let mut checks = Vec::new();
    for (name, g) in &run.graft {
        let b = &run.base[name].values;
        let wd = weights_and_densities(run, name);
        let n = b.len();
        let dg: Vec<f64> = (0..n)
            .map(|e| f64::from(g.values[e]) - f64::from(b[e]))
            .collect();
        let dm: Vec<f64> = (0..n)
            .map(|e| f64::from(run.mergekit[name].values[e]) - f64::from(b[e]))
            .collect();
        // Per entry: the probability of a non-zero merged delta, and (dare_linear)
        // the expectation and variance of the merged delta.
        let mut p = Vec::with_capacity(n);
        let mut expect = Vec::with_capacity(n);
        for (e, &be) in b.iter().enumerate() {
            let mut all_dropped = 1.0;
            let (mut mu, mut var) = (0.0, 0.0);
            for ((w, d), ft) in wd.iter().zip(&run.fine_tunes) {
                let delta = f64::from(ft[name].values[e] - be);
                if delta != 0.0 {
                    all_dropped *= 1.0 - d;
                }
                mu += w * delta;
                var += w * w * delta * delta * (1.0 - d) / d;
            }
            p.push(1.0 - all_dropped);
            expect.push((mu, var));
        }
        if n >= MIN_NUMEL {
            checks.push((
                name.clone(),
                dg.clone(),
                dm.clone(),
                p.clone(),
                expect.clone(),
            ));
        }
        pooled_g.extend(dg);
        pooled_m.extend(dm);
        pooled_p.extend(p);
        pooled_expect.extend(expect);
    }
    checks.push((
        "<whole model>".into(),
        pooled_g,
        pooled_m,
        pooled_p,
        pooled_expect,
    ));
    for (name, dg, dm, p, expect) in &checks {
        let predictor: Vec<f64> = expect.iter().map(|(mu, _)| *mu).collect();
        let (sg, sm) = (stats(dg, &predictor), stats(dm, &predictor));
        let n = sg.n;
        let p_bar = p.iter().sum::<f64>() / n;
        let se_p = p.iter().map(|p| p * (1.0 - p)).sum::<f64>().sqrt() / n;
        let z_nz_g = (sg.nonzero - p_bar) / se_p;
        let z_nz_m = (sm.nonzero - p_bar) / se_p;
        let se_nz_diff =
            (sg.nonzero * (1.0 - sg.nonzero) / n + sm.nonzero * (1.0 - sm.nonzero) / n).sqrt();
        let z_nz = (sg.nonzero - sm.nonzero) / se_nz_diff;
        let z_mean = (sg.mean - sm.mean) / sg.se_mean.hypot(sm.se_mean);
        let z_var = (sg.var - sm.var) / sg.se_var.hypot(sm.se_var);
        eprintln!(
            "{method}: {name} (n {n}): non-zero graft {:.4} mergekit {:.4} expected {p_bar:.4} \
             (z {z_nz:+.2}, {z_nz_g:+.2}, {z_nz_m:+.2}); mean {:.3e} vs {:.3e} (z {z_mean:+.2}); \
             var {:.3e} vs {:.3e} (z {z_var:+.2})",
            sg.nonzero, sm.nonzero, sg.mean, sm.mean, sg.var, sm.var
        );
        for (what, z) in [
            ("non-zero share, graft vs mergekit", z_nz),
            ("non-zero share, graft vs expectation", z_nz_g),
            ("non-zero share, mergekit vs expectation", z_nz_m),
            ("mean, graft vs mergekit", z_mean),
            ("variance, graft vs mergekit", z_var),
        ]
        .iter()
        .enumerate()
        .map(|(i, (w, z))| {
            worst[i] = worst[i].max(z.abs());
            (w, z)
        }) {
            assert!(
                z.abs() < SIGMAS,
                "{method}: {name}: {what}: z = {z:.2} (graft {sg:?}, mergekit {sm:?})"
            );
        }
        if linear {
            let mu = expect.iter().map(|(m, _)| m).sum::<f64>() / n;
            let se = expect.iter().map(|(_, v)| v).sum::<f64>().sqrt() / n;
            for (who, s) in [("graft", &sg), ("mergekit", &sm)] {
                let z = (s.mean - mu) / se;
                eprintln!("{method}: {name}: mean of {who} vs E = {mu:.3e}: z {z:+.2}");
                assert!(
                    z.abs() < SIGMAS,
                    "{method}: {name}: {who}'s mean {:.4e} vs expectation {mu:.4e} (z = {z:.2})",
                    s.mean
                );
            }
        }
    }
    eprintln!(
        "{method}: largest |z| over {} comparisons: non-zero {:.2} / vs E {:.2} {:.2}, mean {:.2}, variance {:.2}",
        checks.len(),
        worst[0],
        worst[1],
        worst[2],
        worst[3],
        worst[4]
    );
}

/// Per-model drop rate and rescale, from the entries where exactly one model
/// has a non-zero delta (~3% of the entries per model): there the merged
/// delta is `w_i·f·δ_i,e` if model `i` kept the entry and 0 otherwise (for
/// `dare_ties` too: a lone non-zero entry elects its own sign; normalize is
/// off). This pins each model's own density (a density handed to the wrong
/// model after graft's canonical reordering would show here, not in the
/// pooled share, which is symmetric in the densities 0.5, 0.7, 0.3) and its
/// rescale factor `f` per tensor:
///
/// * keep rate of model `i`, pooled over the model: `d_i` within 5 binomial SE
///   `√(d_i(1 − d_i)/m)`, for graft and for mergekit;
/// * `f` is one number per (tensor, model): every kept lone entry satisfies
///   `Δ_e = f̂·w_i·δ_i,e` up to the output's rounding (`f̂` = the L1-weighted
///   estimate over them; `Δ_e = fl(b + fl(w·fl(f·δ))) − b` is within half an
///   ulp of the output plus 2u·|Δ_e| of `f·w·δ`: allowed `4·ulp(out) +
///   1e-5·|Δ_e|`);
/// * L1 rescale (spec §6): `f = ‖δ_i‖₁/‖kept δ_i‖₁ = 1/d̂` with
///   `d̂ = Σ_e m_e|δ_e| / Σ_e|δ_e|`, `E d̂ = d_i`,
///   `sd(d̂) = √(d_i(1 − d_i)Σδ²)/Σ|δ|`; so `z = (1/f̂ − d_i)/sd(d̂)` is about
///   N(0, 1) on tensors of ≥ 256 entries: each |z| < 5, and the mean of z²
///   over the (up to 48) (tensor, model) cells with a kept lone entry must
///   look like a χ²ₖ/k (mean 1, sd √(2/k) ≈ 0.2): within [0.2, 2.5]. Dividing
///   by the density instead (z ≡ 0, tried with `rescale: inverse_keep`) or
///   not rescaling fails.
fn check_dare_per_model(method: &str, run: &Run) {
    let (w_d, n_models) = (
        weights_and_densities(run, "lm_head.weight"),
        FINE_TUNES.len(),
    );
    for (who, out) in [("graft", &run.graft), ("mergekit", &run.mergekit)] {
        let mut kept = vec![0usize; n_models];
        let mut lone = vec![0usize; n_models];
        let mut z2 = Vec::new();
        for (name, o) in out {
            let b = &run.base[name].values;
            let wd = weights_and_densities(run, name);
            let deltas: Vec<Vec<f32>> = run
                .fine_tunes
                .iter()
                .map(|ft| ft[name].values.iter().zip(b).map(|(x, b)| x - b).collect())
                .collect();
            for i in 0..n_models {
                let (w, d) = wd[i];
                let mut pairs = Vec::new();
                for e in 0..b.len() {
                    let alone =
                        deltas[i][e] != 0.0 && (0..n_models).all(|j| j == i || deltas[j][e] == 0.0);
                    if !alone {
                        continue;
                    }
                    lone[i] += 1;
                    let delta_out = f64::from(o.values[e]) - f64::from(b[e]);
                    if delta_out != 0.0 {
                        kept[i] += 1;
                        pairs.push((e, delta_out, w * f64::from(deltas[i][e])));
                    }
                }
                if pairs.is_empty() {
                    continue;
                }
                let f_hat = pairs.iter().map(|(_, x, _)| x.abs()).sum::<f64>()
                    / pairs.iter().map(|(_, _, y)| y.abs()).sum::<f64>();
                for &(e, x, y) in &pairs {
                    let tol = 4.0 * ulp_of(o.values[e]) + 1e-5 * x.abs();
                    assert!(
                        (x - f_hat * y).abs() <= tol,
                        "{method}: {who}: {name}[{e}]: model {i}'s kept entry {x:e} is not \
                         {f_hat}·{y:e}: not one rescale factor per tensor"
                    );
                }
                if b.len() >= 256 {
                    let abs_sum: f64 = deltas[i].iter().map(|x| f64::from(x.abs())).sum();
                    let sq_sum: f64 = deltas[i].iter().map(|x| f64::from(*x).powi(2)).sum();
                    let sd = (d * (1.0 - d) * sq_sum).sqrt() / abs_sum;
                    let z = (1.0 / f_hat - d) / sd;
                    assert!(
                        z.abs() < SIGMAS,
                        "{method}: {who}: {name}: model {i}'s rescale factor {f_hat} is not \
                         the L1 factor ≈ 1/{d} (z = {z:.2})"
                    );
                    z2.push(z * z);
                }
            }
        }
        for i in 0..n_models {
            let d = w_d[i].1;
            let rate = kept[i] as f64 / lone[i] as f64;
            let z = (rate - d) / (d * (1.0 - d) / lone[i] as f64).sqrt();
            eprintln!(
                "{method}: {who}: model {i} (density {d}): kept {} of {} lone entries = {rate:.4} (z {z:+.2})",
                kept[i], lone[i]
            );
            assert!(
                z.abs() < SIGMAS,
                "{method}: {who}: model {i} keeps {rate:.4} of its lone entries, density {d} (z = {z:.2})"
            );
        }
        let mean_z2 = z2.iter().sum::<f64>() / z2.len() as f64;
        eprintln!(
            "{method}: {who}: L1 rescale factors: mean z² {mean_z2:.3} over {} (tensor, model) cells",
            z2.len()
        );
        assert!(
            z2.len() >= 40,
            "{method}: {who}: only {} cells with a kept lone entry",
            z2.len()
        );
        assert!(
            (0.2..2.5).contains(&mean_z2),
            "{method}: {who}: mean z² of the rescale factors {mean_z2:.3}: not L1 matching"
        );
    }
}

#[test]
fn dare_linear_statistics_match_mergekit() {
    let run = run("dare_linear");
    assert_merge_moved("dare_linear", &run);
    check_dare("dare_linear", &run);
    check_dare_per_model("dare_linear", &run);
}

#[test]
fn dare_ties_statistics_match_mergekit() {
    let run = run("dare_ties");
    assert_merge_moved("dare_ties", &run);
    check_dare("dare_ties", &run);
    check_dare_per_model("dare_ties", &run);
}
