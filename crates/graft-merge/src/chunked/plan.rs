//! What each element-wise method does, as data the driver in
//! [`super::merge_chunked`] runs: per-model sparsification fixed by read
//! passes before merging, and the rule that combines a chunk of the
//! sparsified deltas. Adding such a method is one arm of [`plan`] plus its
//! [`Method`] variant and `merge_method` name (`yaml.rs`).

use super::reader::Reader;
use super::source::ChunkModel;
use super::sparsify_state::{Sparsify, dare_state, trim_states};
use crate::rng::{stable_hash, stream_key};
use crate::types::{Compat, EmptyTrim, MergeParams, Method, Rescale, VoteRule};
use crate::{Error, Result};

/// How a chunk of sparsified deltas becomes the merged chunk.
pub(super) enum Combine {
    /// mergekit's weighted sum, optionally after a sign vote and normalised
    /// by the weights (of the agreeing entries, with a vote); the base is
    /// added back (times `λ`) unless the models' values themselves are
    /// averaged (`linear`).
    Weighted {
        vote: Option<VoteRule>,
        normalize: bool,
        add_base: bool,
    },
    /// The TIES paper's code: mean of the entries agreeing with the elected
    /// sign, a zero vote broken by the segment's majority sign (an extra
    /// read pass).
    PaperTies,
}

/// A method's sparsification states (one per model, in the merge's order)
/// and its combination rule.
pub(super) struct Plan {
    pub(super) sparsify: Vec<Sparsify>,
    pub(super) combine: Combine,
}

/// The plan of `method` (not PCB, which streams by its own route), running
/// the read passes its sparsification needs.
pub(super) fn plan(
    method: &Method,
    params: &MergeParams,
    reader: &Reader,
    order: &[&ChunkModel],
) -> Result<Plan> {
    let paper = params.compat == Compat::Paper;
    let keep = || order.iter().map(|_| Sparsify::Keep).collect::<Vec<_>>();
    let weighted = |vote, default_normalize| Combine::Weighted {
        vote,
        normalize: params.normalize.unwrap_or(default_normalize),
        add_base: true,
    };
    let ties_combine = |default_normalize| -> Result<Combine> {
        if paper {
            no_weights_in_paper_ties(reader.segment, order)?;
            Ok(Combine::PaperTies)
        } else {
            Ok(weighted(Some(params.vote), default_normalize))
        }
    };
    Ok(match method {
        Method::Linear => Plan {
            sparsify: keep(),
            combine: Combine::Weighted {
                vote: None,
                normalize: params.normalize.unwrap_or(true),
                add_base: false,
            },
        },
        Method::TaskArithmetic => Plan {
            sparsify: keep(),
            combine: weighted(None, false),
        },
        Method::Ties => Plan {
            sparsify: trim_states(
                reader,
                order,
                params.trim_rule,
                EmptyTrim::of(params.compat),
            )?,
            combine: ties_combine(true)?,
        },
        Method::DareLinear => Plan {
            sparsify: dare_states(params, reader, order)?,
            combine: weighted(None, false),
        },
        Method::DareTies => Plan {
            sparsify: dare_states(params, reader, order)?,
            combine: ties_combine(false)?,
        },
        Method::Pcb(_) => {
            return Err(Error::BadParameter {
                tensor: reader.segment.into(),
                what: "internal: PCB has no element-wise plan".into(),
            });
        }
    })
}

/// DARE's state of every model: its counter stream and rescale factor.
fn dare_states(
    params: &MergeParams,
    reader: &Reader,
    order: &[&ChunkModel],
) -> Result<Vec<Sparsify>> {
    let rescale = params.rescale.unwrap_or(match params.compat {
        Compat::Paper => Rescale::InverseKeep,
        Compat::Mergekit => Rescale::L1,
    });
    let tensor = stable_hash(reader.segment);
    order
        .iter()
        .map(|m| {
            let stream = stream_key(params.seed, stable_hash(&m.id), tensor);
            dare_state(reader, m, rescale, stream)
        })
        .collect()
}

/// The paper's TIES has no per-model weights: refuse them rather than drop them.
fn no_weights_in_paper_ties(segment: &str, order: &[&ChunkModel]) -> Result<()> {
    match order.iter().find(|m| m.weight != 1.0) {
        Some(m) => Err(Error::BadParameter {
            tensor: segment.into(),
            what: format!(
                "model `{}` has weight {}: the paper's TIES has no per-model weights (use compat = mergekit)",
                m.id, m.weight
            ),
        }),
        None => Ok(()),
    }
}
