//! Combining sparsified deltas: weighted sums, sign votes, disjoint means.

use crate::types::VoteRule;

/// mergekit's `generalized_task_arithmetic` combine (spec §6): `D_i = w_i δ̃_i`;
/// with a vote, `s = +1` where the vote is `≥ 0` else `−1`, `M_i = [sgn D_i = s]`
/// (zeros excluded), `mix = Σ M_i D_i`, `div = Σ M_i w_i` (0 → 1); without,
/// `mix = Σ D_i`, `div = Σ w_i` (`|div| < 1e-8` → 1). `normalize` divides by
/// `div`. Sums run over the models in the order given.
/// The result replaces the contents of `out`; `scratch` holds the vote's
/// tallies and divisors (kept by the caller so chunks reuse them).
pub(crate) fn mergekit(
    deltas: &[Vec<f32>],
    weights: &[f32],
    vote: Option<VoteRule>,
    normalize: bool,
    out: &mut Vec<f32>,
    scratch: [&mut Vec<f32>; 2],
) {
    let n = deltas.first().map_or(0, Vec::len);
    out.clear();
    let Some(rule) = vote else {
        // Model-major loops (vectorised) that add in the same order as
        // `Iterator::sum`, which starts from −0.0: the same bits.
        out.resize(n, -0.0);
        for (delta, &w) in deltas.iter().zip(weights) {
            for (o, x) in out.iter_mut().zip(delta) {
                *o += w * x;
            }
        }
        if normalize {
            let div: f32 = weights.iter().sum();
            let div = if div.abs() < 1e-8 { 1.0 } else { div };
            for o in out.iter_mut() {
                *o /= div;
            }
        }
        return;
    };
    // The vote, model-major as above: `tally` adds like `Iterator::sum`
    // (from −0.0); `mix` and `div` start at +0.0 and add the agreeing
    // entries, where adding +0.0 instead of skipping leaves the same bits
    // (neither sum can become −0.0).
    let [tally, div] = scratch;
    tally.clear();
    tally.resize(n, -0.0);
    for (delta, &w) in deltas.iter().zip(weights) {
        match rule {
            VoteRule::Sum => {
                for (t, x) in tally.iter_mut().zip(delta) {
                    *t += w * x;
                }
            }
            VoteRule::Count => {
                for (t, x) in tally.iter_mut().zip(delta) {
                    *t += sign(w * x);
                }
            }
        }
    }
    out.resize(n, 0.0);
    div.clear();
    div.resize(n, 0.0);
    for (delta, &w) in deltas.iter().zip(weights) {
        for (((o, v), t), x) in out
            .iter_mut()
            .zip(div.iter_mut())
            .zip(tally.iter())
            .zip(delta)
        {
            let d = w * x;
            let s = if *t >= 0.0 { 1.0 } else { -1.0 };
            let agrees = sign(d) == s;
            *o += if agrees { d } else { 0.0 };
            *v += if agrees { w } else { 0.0 };
        }
    }
    if normalize {
        for (o, v) in out.iter_mut().zip(div.iter()) {
            *o /= if *v == 0.0 { 1.0 } else { *v };
        }
    }
}

/// `Σ_p sgn(Σ_i τ̂_i,p)` over a (part of a) segment, exactly.
pub(crate) fn ties_vote_balance(trimmed: &[Vec<f32>]) -> i64 {
    let n = trimmed.first().map_or(0, Vec::len);
    (0..n)
        .map(|p| sign(trimmed.iter().map(|t| t[p]).sum()) as i64)
        .sum()
}

/// The TIES reference code's elect and disjoint mean over trimmed deltas:
/// `γ = sgn(Σ_i τ̂_i)`, where 0 the segment's `majority` sign (`sgn Σ_p γ_p`,
/// from [`ties_vote_balance`] over the whole segment); keep `τ̂_i,p` of sign
/// `γ_p` (where `γ_p` is still 0, the negative ones, as the reference's
/// `where(γ > 0, τ̂ > 0, τ̂ < 0)` does); mean over the kept non-zero entries
/// (0 where none). The result replaces the contents of `out`.
pub(crate) fn ties_reference_with(trimmed: &[Vec<f32>], majority: f32, out: &mut Vec<f32>) {
    let n = trimmed.first().map_or(0, Vec::len);
    out.clear();
    out.extend((0..n).map(|p| {
        let mut gamma = sign(trimmed.iter().map(|t| t[p]).sum());
        if gamma == 0.0 {
            gamma = majority;
        }
        let (mut sum, mut count) = (0.0f32, 0u32);
        for t in trimmed {
            let x = t[p];
            let agrees = if gamma > 0.0 { x > 0.0 } else { x < 0.0 };
            if agrees {
                sum += x;
                count += 1;
            }
        }
        sum / count.max(1) as f32
    }));
}

/// The sign of `x` as torch computes it: −1, 0 or +1 (−0.0 gives 0).
pub(crate) fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}
