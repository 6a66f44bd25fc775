//! Magnitude selection with explicit tie rules (spec §2), in linear time.

/// Which entries a magnitude trim keeps.
///
/// `reference_rule = false` (graft's rule): exactly `K = keep` entries of
/// largest `|x|`, ties at the threshold broken by ascending flat index
/// (mergekit keeps the same count, with torch's unspecified tie order).
/// `reference_rule = true`: the TIES and MergeLM code's rule: the threshold
/// is the `(n − K)`-th smallest `|x|` and every `|x| ≥ threshold` is kept
/// (K or more entries).
pub fn keep_mask_top_magnitude(values: &[f32], keep: usize, reference_rule: bool) -> Vec<bool> {
    let n = values.len();
    if keep >= n {
        return vec![true; n];
    }
    if keep == 0 {
        return vec![false; n];
    }
    let mut mags: Vec<f32> = values.iter().map(|v| v.abs()).collect();
    if reference_rule {
        // The (n − K)-th smallest |x|, 1-based: ascending index n − K − 1 (K < n here).
        let threshold = *mags.select_nth_unstable_by(n - keep - 1, f32::total_cmp).1;
        return values.iter().map(|v| v.abs() >= threshold).collect();
    }
    // The K-th largest |x|: ascending index n − K.
    let threshold = *mags.select_nth_unstable_by(n - keep, f32::total_cmp).1;
    let above = values
        .iter()
        .filter(|v| v.abs().total_cmp(&threshold).is_gt())
        .count();
    let mut ties_left = keep - above;
    values
        .iter()
        .map(|v| match v.abs().total_cmp(&threshold) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal if ties_left > 0 => {
                ties_left -= 1;
                true
            }
            _ => false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sort-based definition of the exact rule, for comparison.
    fn by_sorting(values: &[f32], keep: usize) -> Vec<bool> {
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()).then(a.cmp(&b)));
        let mut mask = vec![false; values.len()];
        for &i in order.iter().take(keep) {
            mask[i] = true;
        }
        mask
    }

    #[test]
    fn linear_time_selection_equals_the_sorting_definition() {
        let values = [0.5f32, -0.5, 0.0, 2.0, -2.0, 0.5, 1.0, -0.0, 0.5, 3.0];
        for keep in 0..=values.len() {
            assert_eq!(
                keep_mask_top_magnitude(&values, keep, false),
                by_sorting(&values, keep),
                "keep {keep}"
            );
        }
        // Reference rule: K = 2 of 10 → threshold = 8th smallest |x| = 2.0 → keeps 2.0, −2.0, 3.0.
        let reference = keep_mask_top_magnitude(&values, 2, true);
        assert_eq!(reference.iter().filter(|k| **k).count(), 3);
    }
}
