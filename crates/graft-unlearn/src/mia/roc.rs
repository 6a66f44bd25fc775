//! ROC-AUC and the balanced-accuracy threshold of a score, exactly (ties
//! counted half), as scikit-learn's `roc_auc_score` and `roc_curve`.

use crate::{Error, Result};

/// The area under the ROC curve of `positives` vs `negatives` (higher
/// score = more likely positive): `P(s⁺ > s⁻) + ½·P(s⁺ = s⁻)`.
pub fn roc_auc(positives: &[f64], negatives: &[f64]) -> Result<f64> {
    check(positives, negatives)?;
    let mut all: Vec<(f64, bool)> = positives
        .iter()
        .map(|&s| (s, true))
        .chain(negatives.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann-Whitney U from mid-ranks.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid_rank * all[i..=j].iter().filter(|e| e.1).count() as f64;
        i = j + 1;
    }
    let (np, nn) = (positives.len() as f64, negatives.len() as f64);
    Ok((rank_sum - np * (np + 1.0) / 2.0) / (np * nn))
}

/// The threshold `t` on a loss (member when `loss ≤ t`) that maximises the
/// balanced accuracy `(TPR + TNR)/2` of members vs non-members; the
/// smallest such `t`, and that accuracy. Calling nobody a member (0.5) is
/// always a candidate; then `t` is `-inf`.
pub fn best_loss_threshold(members: &[f64], nonmembers: &[f64]) -> Result<(f64, f64)> {
    check(members, nonmembers)?;
    let mut m = members.to_vec();
    let mut n = nonmembers.to_vec();
    m.sort_by(f64::total_cmp);
    n.sort_by(f64::total_cmp);
    let mut candidates: Vec<f64> = m.iter().chain(&n).copied().collect();
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();
    let (mut best_t, mut best) = (f64::NEG_INFINITY, 0.5);
    let (mut im, mut in_) = (0usize, 0usize);
    for t in candidates {
        while im < m.len() && m[im] <= t {
            im += 1;
        }
        while in_ < n.len() && n[in_] <= t {
            in_ += 1;
        }
        let tpr = im as f64 / m.len() as f64;
        let tnr = 1.0 - in_ as f64 / n.len() as f64;
        let acc = 0.5 * (tpr + tnr);
        if acc > best {
            (best_t, best) = (t, acc);
        }
    }
    Ok((best_t, best))
}

fn check(a: &[f64], b: &[f64]) -> Result<()> {
    if a.is_empty() || b.is_empty() {
        return Err(Error::data(
            "membership inference",
            format!("needs both groups ({} and {} scores)", a.len(), b.len()),
        ));
    }
    if a.iter().chain(b).any(|x| x.is_nan()) {
        return Err(Error::data("membership inference", "a score is NaN"));
    }
    Ok(())
}
