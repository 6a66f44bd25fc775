//! Magnitude selection with explicit tie rules (spec §2).

/// Which entries a magnitude trim keeps.
///
/// `Exact`: exactly `K = floor(density · n)` entries of largest `|x|`, ties
/// broken by ascending flat index (graft's rule; mergekit keeps the same
/// count, with torch's unspecified tie order). `Reference`: the TIES and
/// MergeLM code's rule: the threshold is the `(n − K)`-th smallest `|x|`
/// and every `|x| ≥ threshold` is kept (K or more entries).
pub fn keep_mask_top_magnitude(values: &[f32], keep: usize, reference_rule: bool) -> Vec<bool> {
    let n = values.len();
    if keep >= n {
        return vec![true; n];
    }
    if keep == 0 {
        return vec![false; n];
    }
    let mut order: Vec<usize> = (0..n).collect();
    if reference_rule {
        order.sort_by(|&a, &b| values[a].abs().total_cmp(&values[b].abs()));
        // The (n − K)-th smallest |x|, 1-based: index n − K − 1 ascending (K < n here).
        let threshold = values[order[n - keep - 1]].abs();
        return values.iter().map(|v| v.abs() >= threshold).collect();
    }
    order.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()).then(a.cmp(&b)));
    let mut mask = vec![false; n];
    for &i in &order[..keep] {
        mask[i] = true;
    }
    mask
}

/// The value at ascending rank `index` (0-based) of `values` (a copy is sorted).
pub fn kth_smallest(values: &[f32], index: usize) -> f32 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    sorted[index.min(sorted.len().saturating_sub(1))]
}
