//! Merging one tensor chunk by chunk, so memory does not grow with its size.
//!
//! [`merge_chunked`] is graft's one implementation of the elementwise
//! methods: [`merge_segment`](crate::merge_segment) is it with a single
//! chunk, and the tests hold every chunk size to the same bits. It holds
//! only `(n + 2)` chunks of f32 at a time. Methods that
//! need statistics of the whole tensor make extra read passes first:
//! TIES' trim finds each model's exact K-th largest `|δ|` by a two-pass
//! radix selection on the f32 bit patterns (a 2¹⁶-bucket histogram of the
//! high half, then of the low half inside the chosen bucket); DARE with a
//! norm-matching rescale sums the norms in a pass of its own; the paper's
//! TIES counts the segment's majority sign in another. PCB selects quantiles
//! of `|δ|`, then of its derived scores, in four shared passes before merging.

mod buffers;
mod pcb_stream;
mod plan;
mod reader;
mod select;
mod source;
mod sparsify_state;

pub use source::{ChunkModel, SliceSource, Source};
pub(crate) use sparsify_state::{One, sparsify_one};

use crate::combine;
use crate::rng::stable_hash;
use crate::types::{MergeParams, Method};
use crate::{Error, Result};
use buffers::Spare;
use pcb_stream::pcb_streamed;
use plan::{Combine, Plan, plan};
use reader::{Reader, check_and_sink};
use sparsify_state::apply;

/// The checks every merge makes of its inputs, given `(id, length, weight)`
/// per model: at least one model, distinct ids, one length (the base's when
/// there is one, else the first model's), finite weights. Returns the length.
pub(crate) fn check_models(
    segment: &str,
    base_len: Option<usize>,
    models: &[(&str, usize, f32)],
) -> Result<usize> {
    let &(first, first_len, _) = models
        .first()
        .ok_or_else(|| Error::NoModels(segment.into()))?;
    let n = base_len.unwrap_or(first_len);
    let mut seen = std::collections::HashSet::new();
    for &(id, len, _) in models {
        if !seen.insert(id) {
            return Err(Error::DuplicateModel(id.into()));
        }
        if len != n {
            return Err(Error::LengthMismatch {
                tensor: segment.into(),
                first: if base_len.is_some() {
                    "base".into()
                } else {
                    first.into()
                },
                expected: n,
                model: id.into(),
                got: len,
            });
        }
    }
    if let Some((id, _, w)) = models.iter().find(|m| !m.2.is_finite()) {
        return Err(Error::BadParameter {
            tensor: segment.into(),
            what: format!("model `{id}` has weight {w}"),
        });
    }
    Ok(n)
}

/// Merges one tensor in chunks of `chunk` elements, handing each merged
/// chunk to `sink` in order. `base` is `None` for `linear` (which averages
/// the values themselves) and for merging deltas directly.
pub fn merge_chunked(
    method: &Method,
    params: &MergeParams,
    segment: &str,
    base: Option<&dyn Source>,
    models: &[ChunkModel],
    chunk: usize,
    sink: &mut dyn FnMut(&[f32]) -> Result<()>,
) -> Result<()> {
    let shapes: Vec<(&str, usize, f32)> = models
        .iter()
        .map(|m| (m.id.as_str(), m.source.len(), m.weight))
        .collect();
    let n = check_models(segment, base.map(|b| b.len()), &shapes)?;
    let mut order: Vec<&ChunkModel> = models.iter().collect();
    order.sort_by(|a, b| {
        stable_hash(&a.id)
            .cmp(&stable_hash(&b.id))
            .then(a.id.cmp(&b.id))
    });
    let weights: Vec<f32> = order.iter().map(|m| m.weight).collect();
    let chunk = chunk.max(1);
    let reader = Reader {
        segment,
        base,
        n,
        chunk,
    };

    if let Method::Pcb(pcb) = method {
        return pcb_streamed(pcb, params, &reader, &order, &weights, sink);
    }

    let Plan { sparsify, combine } = plan(method, params, &reader, &order)?;
    let majority = match combine {
        Combine::PaperTies => {
            let mut balance = 0i64;
            let mut st = sparsify.clone();
            reader.each_chunk(&order, |_, _, deltas| {
                apply(&mut st, deltas, 0);
                balance += combine::ties_vote_balance(deltas);
                Ok(())
            })?;
            combine::sign(balance as f32)
        }
        Combine::Weighted { .. } => 0.0,
    };

    // The merge pass: sparsify the deltas in place, combine into `out`.
    let mut st = sparsify;
    let mut out = Vec::with_capacity(chunk.min(n));
    let (mut tally, mut div) = (Spare::take(0), Spare::take(0));
    reader.each_chunk(&order, |start, base_chunk, deltas| {
        apply(&mut st, deltas, start);
        let add_base = match combine {
            Combine::Weighted {
                vote,
                normalize,
                add_base,
            } => {
                combine::mergekit(
                    deltas,
                    &weights,
                    vote,
                    normalize,
                    &mut out,
                    [&mut tally.0, &mut div.0],
                );
                add_base
            }
            Combine::PaperTies => {
                combine::ties_reference_with(deltas, majority, &mut out);
                true
            }
        };
        if add_base {
            if params.lambda == 1.0 {
                for (o, b) in out.iter_mut().zip(base_chunk) {
                    *o += b;
                }
            } else {
                for (o, b) in out.iter_mut().zip(base_chunk) {
                    *o = b + *o * params.lambda;
                }
            }
        }
        check_and_sink(segment, start, &out, sink)
    })
}
