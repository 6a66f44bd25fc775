//! Sample-quality metrics (spec §7.3), in f64, for samples `[n, d]`.

use crate::gmm::Gmm;
use crate::noise::normals;
use crate::{Error, Result};
use graft_tensor::tch::{Kind, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn check_2d(what: &'static str, x: &Tensor, d: Option<i64>) -> Result<()> {
    let s = x.size();
    if s.len() != 2 || d.is_some_and(|d| s[1] != d) || s[0] < 2 {
        return Err(Error::ShapeMismatch {
            what,
            expected: vec![-1, d.unwrap_or(-1)],
            actual: s,
        });
    }
    Ok(())
}

/// Root mean squared Euclidean distance between paired samples
/// `sqrt(mean_i ‖a_i − b_i‖²)` (pathwise error of an ODE sampler).
pub fn pathwise_rmse(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.size() != b.size() {
        return Err(Error::ShapeMismatch {
            what: "pathwise RMSE pair",
            expected: a.size(),
            actual: b.size(),
        });
    }
    let n = a.size().first().copied().unwrap_or(1);
    let d = (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).reshape([n, -1]);
    Ok(d.square()
        .sum_dim_intlist(1, false, Kind::Double)
        .mean(Kind::Double)
        .sqrt()
        .double_value(&[]))
}

/// The median pairwise Euclidean distance within `x` (the RBF bandwidth scale).
pub fn median_distance(x: &Tensor) -> Result<f64> {
    check_2d("median distance samples", x, None)?;
    let x = x.to_kind(Kind::Double);
    let n = x.size()[0];
    let d = Tensor::cdist(&x, &x, 2.0, None::<i64>);
    let iu = Tensor::ones([n, n], (Kind::Bool, x.device())).triu(1);
    Ok(d.masked_select(&iu).median().double_value(&[]))
}

/// The bandwidth multiples of the spec's MMD² (§7.3): ½, 1 and 2 × the median distance.
pub const MMD_SCALES: [f64; 3] = [0.5, 1.0, 2.0];

/// The unbiased MMD² with the sum of RBF kernels `exp(−‖a−b‖²/(2ℓ²))` over
/// the bandwidths `ℓ ∈ scales × base` (the spec uses {½, 1, 2} × the median
/// distance of a reference set; fix `base` when comparing samplers).
pub fn mmd2_unbiased(x: &Tensor, y: &Tensor, base: f64, scales: &[f64]) -> Result<f64> {
    check_2d("MMD x", x, None)?;
    check_2d("MMD y", y, Some(x.size()[1]))?;
    let (x, y) = (x.to_kind(Kind::Double), y.to_kind(Kind::Double));
    let (n, m) = (x.size()[0] as f64, y.size()[0] as f64);
    let dxx = Tensor::cdist(&x, &x, 2.0, None::<i64>).square();
    let dyy = Tensor::cdist(&y, &y, 2.0, None::<i64>).square();
    let dxy = Tensor::cdist(&x, &y, 2.0, None::<i64>).square();
    let mut total = 0.0;
    for s in scales {
        let l2 = 2.0 * (s * base).powi(2);
        let k = |d: &Tensor| (d / (-l2)).exp();
        let kxx = k(&dxx).sum(Kind::Double).double_value(&[]) - n;
        let kyy = k(&dyy).sum(Kind::Double).double_value(&[]) - m;
        let kxy = k(&dxy).sum(Kind::Double).double_value(&[]);
        total += kxx / (n * (n - 1.0)) + kyy / (m * (m - 1.0)) - 2.0 * kxy / (n * m);
    }
    Ok(total)
}

/// The sliced 2-Wasserstein distance over `projections` random directions
/// (seeded), quantile matching; the two sets must have the same size.
pub fn sliced_w2(x: &Tensor, y: &Tensor, projections: usize, seed: u64) -> Result<f64> {
    check_2d("sliced W2 x", x, None)?;
    check_2d("sliced W2 y", y, Some(x.size()[1]))?;
    if x.size()[0] != y.size()[0] {
        return Err(Error::ShapeMismatch {
            what: "sliced W2 sample counts",
            expected: x.size(),
            actual: y.size(),
        });
    }
    let d = x.size()[1];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dirs = Tensor::from_slice(&normals(&mut rng, projections * d as usize))
        .reshape([d, projections as i64]);
    let dirs = &dirs / dirs.norm_scalaropt_dim(2.0, [0], true);
    let px = x.to_kind(Kind::Double).matmul(&dirs).sort(0, false).0;
    let py = y.to_kind(Kind::Double).matmul(&dirs).sort(0, false).0;
    Ok((px - py)
        .square()
        .mean(Kind::Double)
        .sqrt()
        .double_value(&[]))
}

/// Mode statistics of samples under a data mixture (assignment by maximum
/// responsibility of the data GMM).
#[derive(Debug, Clone, PartialEq)]
pub struct ModeStats {
    /// Total variation between the mode-weight histogram and π.
    pub tv: f64,
    /// Modes holding at least ½π_k·n samples.
    pub coverage: usize,
    /// `sqrt(mean ‖x − m_k‖²/(d s_k²))` over all samples (target 1).
    pub std_ratio: f64,
    /// Fraction of samples beyond the χ²_{d, 0.999} Mahalanobis radius of their mode.
    pub outliers: f64,
}

fn ln_gamma(x: f64) -> f64 {
    // Lanczos (g = 7, n = 9), |relative error| < 1e-13 for x > 0.
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularised lower incomplete gamma function P(a, x).
fn gamma_p(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let lead = -x + a * x.ln() - ln_gamma(a);
    if x < a + 1.0 {
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        sum * lead.exp()
    } else {
        // Continued fraction for Q(a, x) (modified Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-16 {
                break;
            }
        }
        1.0 - lead.exp() * h
    }
}

/// The 0.999 quantile of χ²_d (bisection on the regularised incomplete gamma function).
pub fn chi2_999(d: i64) -> f64 {
    let a = d.max(1) as f64 / 2.0;
    let (mut lo, mut hi) = (0.0, 10.0 * a + 100.0);
    for _ in 0..200 {
        let m = 0.5 * (lo + hi);
        if gamma_p(a, m / 2.0) < 0.999 {
            lo = m;
        } else {
            hi = m;
        }
    }
    0.5 * (lo + hi)
}

/// Mode TV, coverage, within-mode std ratio and outlier fraction of `x` under
/// `gmm` (components need s_k > 0).
pub fn mode_stats(x: &Tensor, gmm: &Gmm) -> Result<ModeStats> {
    check_2d("mode-stat samples", x, Some(gmm.dim()))?;
    if let Some(s) = gmm.stds().iter().find(|s| !(**s > 0.0)) {
        return Err(Error::Invalid {
            name: "std",
            value: *s,
            reason: "mode statistics need s_k > 0",
        });
    }
    let x = x.to_kind(Kind::Double);
    let n = x.size()[0];
    let d = gmm.dim();
    let k = gmm.components();
    let (assign, sq) = assignment(&x, gmm);
    let s2 = Tensor::from_slice(&gmm.stds().iter().map(|s| s * s).collect::<Vec<_>>());
    let maha =
        sq.gather(1, &assign.unsqueeze(1), false).squeeze_dim(1) / s2.index_select(0, &assign);
    let counts = assign.bincount(None::<Tensor>, k as i64);
    let counts: Vec<f64> = Vec::<i64>::try_from(&counts)
        .map_err(Error::Torch)?
        .into_iter()
        .map(|c| c as f64)
        .collect();
    let nf = n as f64;
    let tv = 0.5
        * counts
            .iter()
            .zip(gmm.weights())
            .map(|(c, w)| (c / nf - w).abs())
            .sum::<f64>();
    let coverage = counts
        .iter()
        .zip(gmm.weights())
        .filter(|(c, w)| **c >= 0.5 * **w * nf)
        .count();
    let std_ratio = (maha.mean(Kind::Double).double_value(&[]) / d as f64).sqrt();
    let outliers = maha
        .gt(chi2_999(d))
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[]);
    Ok(ModeStats {
        tv,
        coverage,
        std_ratio,
        outliers,
    })
}

/// Assignment by the data-level responsibilities `log π_k + log N(x; m_k, s_k²)`:
/// `(argmax [n], squared distances to the means [n, K])`.
fn assignment(x: &Tensor, gmm: &Gmm) -> (Tensor, Tensor) {
    let d = gmm.dim();
    let diff = gmm.means().unsqueeze(0) - x.unsqueeze(1);
    let sq = diff.square().sum_dim_intlist(-1, false, Kind::Double); // [n,K]
    let s2 = Tensor::from_slice(
        &gmm.stds()
            .iter()
            .map(|s| s.max(1e-300).powi(2))
            .collect::<Vec<_>>(),
    );
    let logw = Tensor::from_slice(&gmm.weights().iter().map(|w| w.ln()).collect::<Vec<_>>());
    let score = logw - &sq / (&s2 * 2.0) - s2.log() * (d as f64 / 2.0);
    (score.argmax(1, false), sq)
}

/// The mode each sample of `x` `[n, d]` belongs to (maximum data-level responsibility), `[n]` i64.
pub fn assign_modes(x: &Tensor, gmm: &Gmm) -> Result<Tensor> {
    check_2d("mode assignment samples", x, Some(gmm.dim()))?;
    Ok(assignment(&x.to_kind(Kind::Double), gmm).0)
}

/// Mean negative log-likelihood of `x` under the data mixture (needs s_k > 0).
pub fn mean_nll(x: &Tensor, gmm: &Gmm) -> Result<f64> {
    check_2d("NLL samples", x, Some(gmm.dim()))?;
    let x = x.to_kind(Kind::Double);
    let diff = gmm.means().unsqueeze(0) - x.unsqueeze(1);
    let sq = diff.square().sum_dim_intlist(-1, false, Kind::Double);
    let d = gmm.dim() as f64;
    let s2 = Tensor::from_slice(&gmm.stds().iter().map(|s| s * s).collect::<Vec<_>>());
    let logw = Tensor::from_slice(&gmm.weights().iter().map(|w| w.ln()).collect::<Vec<_>>());
    let logn = logw - &sq / (&s2 * 2.0) - (&s2 * (2.0 * std::f64::consts::PI)).log() * (d / 2.0);
    Ok(-logn
        .logsumexp(-1, false)
        .mean(Kind::Double)
        .double_value(&[]))
}
