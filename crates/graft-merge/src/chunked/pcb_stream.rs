//! PCB-merging streamed in five passes, bit for bit the in-memory PCB.

use super::reader::{Reader, check_and_sink};
use super::select::{float_key, key_float, select_ascending};
use super::source::ChunkModel;
use crate::Result;
use crate::types::MergeParams;

/// PCB streamed (spec §4, "exact"): two shared selection passes find each
/// model's clamp bounds (quantiles of `|δ_i|`), two more its drop threshold
/// and maximum of `β_i`, and a last pass merges; the per-element formulas
/// are [`crate::pcb`]'s, so the result equals the in-memory PCB bit for bit.
pub(super) fn pcb_streamed(
    pcb: &crate::PcbParams,
    params: &MergeParams,
    reader: &Reader,
    order: &[&ChunkModel],
    weights: &[f32],
    sink: &mut dyn FnMut(&[f32]) -> Result<()>,
) -> Result<()> {
    use crate::pcb::{Clamp, clamp_ranks, drop_rank, element_betas, score};
    crate::pcb::validate(reader.segment, pcb)?;
    let (m, d) = (order.len(), reader.n);
    if d == 0 {
        return Ok(());
    }
    let (lo, hi) = clamp_ranks(pcb, d);
    let mags = select_ascending(reader, order, &vec![vec![lo, hi]; m], |deltas, keys| {
        for (k, x) in keys.iter_mut().zip(deltas) {
            for (k, x) in k.iter_mut().zip(x) {
                *k = x.abs().to_bits();
            }
        }
    })?;
    let clamps: Vec<Clamp> = mags
        .iter()
        .map(|r| Clamp::new(f32::from_bits(r[0].key), f32::from_bits(r[1].key)))
        .collect();
    // β of every model over a chunk.
    // β (into `beta`) and the clamped deltas δc (into `clamped`) of every model at element `p`.
    let (mut xs, mut us) = (vec![0.0f32; m], vec![0.0f32; m]);
    let mut element = |deltas: &[Vec<f32>], p: usize, beta: &mut [f32], clamped: &mut [f32]| {
        for i in 0..m {
            xs[i] = deltas[i][p];
            (clamped[i], us[i]) = clamps[i].apply(xs[i]);
        }
        element_betas(pcb.inter, &xs, &us, beta);
    };
    let mut cs = vec![0.0f32; m];
    let mut col = vec![0.0f32; m];
    let top = select_ascending(
        reader,
        order,
        &vec![vec![drop_rank(pcb, d), d - 1]; m],
        |deltas, keys| {
            for p in 0..deltas[0].len() {
                element(deltas, p, &mut col, &mut cs);
                for (k, b) in keys.iter_mut().zip(&col) {
                    k[p] = float_key(*b);
                }
            }
        },
    )?;
    let (t, max): (Vec<f32>, Vec<f32>) = top
        .iter()
        .map(|r| (key_float(r[0].key), key_float(r[1].key)))
        .unzip();
    let mut out = Vec::with_capacity(reader.chunk.min(d));
    reader.each_chunk(order, |start, base_chunk, deltas| {
        out.clear();
        for (p, b) in base_chunk.iter().enumerate() {
            element(deltas, p, &mut col, &mut cs);
            let (mut num, mut den) = (0.0f32, 0.0f32);
            for i in 0..m {
                let s = score(col[i], t[i], max[i]);
                num += weights[i] * s * cs[i];
                den += s;
            }
            let mix = num / den.max(1e-12);
            out.push(if params.lambda == 1.0 {
                b + mix
            } else {
                b + mix * params.lambda
            });
        }
        check_and_sink(reader.segment, start, &out, sink)
    })
}
