//! Sparsification of one model's delta: magnitude trim (TIES) and random
//! drop with rescaling (DARE). Both run the merge's own chunked state
//! machinery on a single chunk, so they cannot drift from what a merge does.

use crate::Result;
use crate::chunked::{One, sparsify_one};
use crate::rng::stream_key;
use crate::types::{DareStream, EmptyTrim, Rescale, TrimRule};

/// Keeps the `floor(density · n)` largest-magnitude entries of `delta` and
/// zeroes the rest, ties at the threshold broken by ascending index
/// ([`TrimRule::Reference`]: keep every `|x|` at or above the TIES reference
/// code's threshold, the `(n − K)`-th smallest `|x|`, instead). `density = 1`
/// keeps everything; a density outside (0, 1] is an error naming `tensor`.
/// `empty` says what a trim that would keep nothing does.
pub fn trim(
    tensor: &str,
    delta: &[f32],
    density: f64,
    rule: TrimRule,
    empty: EmptyTrim,
) -> Result<Vec<f32>> {
    sparsify_one(tensor, delta, density, One::Trim { rule, empty })
}

/// DARE: drops each entry with probability `1 − density` (draw `u < 1 − density`
/// from the counter stream `stream`), then rescales
/// the kept entries: by `1/density` (the paper), so that the L1 / L2 / L∞
/// norm matches the unmasked delta's (mergekit's `rescale`, skipped when
/// either norm is below 1e-7), or not at all. `density ≥ 1` returns `delta`
/// unchanged, bit for bit; `density = 0` returns zeros.
pub fn dare(
    tensor: &str,
    delta: &[f32],
    density: f64,
    rescale: Rescale,
    stream: DareStream,
) -> Result<Vec<f32>> {
    let stream = stream_key(stream.seed, stream.model, stream.tensor);
    sparsify_one(tensor, delta, density, One::Dare { rescale, stream })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sorting definition of the exact rule, for comparison.
    fn by_sorting(values: &[f32], keep: usize) -> Vec<f32> {
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()).then(a.cmp(&b)));
        let mut out = vec![0.0; values.len()];
        for &i in order.iter().take(keep) {
            out[i] = values[i];
        }
        out
    }

    #[test]
    fn trim_equals_the_sorting_definition_and_the_reference_rule_keeps_ties() {
        let values = [0.5f32, -0.5, 0.0, 2.0, -2.0, 0.5, 1.0, -0.0, 0.5, 3.0];
        for keep in 1..values.len() {
            let density = keep as f64 / values.len() as f64;
            assert_eq!(
                trim("t", &values, density, TrimRule::Exact, EmptyTrim::Refuse).unwrap(),
                by_sorting(&values, keep),
                "keep {keep}"
            );
        }
        // K = 2 of 10: threshold = 8th smallest |x| = 2.0, so 2.0, −2.0 and 3.0 stay.
        let reference = trim("t", &values, 0.2, TrimRule::Reference, EmptyTrim::Refuse).unwrap();
        assert_eq!(reference.iter().filter(|x| **x != 0.0).count(), 3);
    }
}
