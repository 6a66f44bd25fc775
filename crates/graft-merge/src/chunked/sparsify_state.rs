//! Per-model sparsification state fixed by the read passes before the
//! merge pass (TIES' trim threshold and tie budget, DARE's stream and
//! rescale factor), and its application to each chunk.

use super::reader::Reader;
use super::select::kth_largest;
use super::source::ChunkModel;
use super::source::SliceSource;
use crate::rng::uniform;
use crate::types::{EmptyTrim, Rescale, TrimRule};
use crate::{Error, Result};

/// Per-model sparsification state, fixed by the read passes (a clone
/// starts the tie counters afresh for another pass).
#[derive(Clone)]
pub(super) enum Sparsify {
    Keep,
    /// Keep `|δ|` bits above `threshold`, and the first `ties` equal to it.
    Trim {
        threshold: u32,
        ties: usize,
        inclusive: bool,
    },
    Dare {
        stream: u64,
        drop: f64,
        factor: Option<f32>,
        zero: bool,
    },
}

/// What a magnitude trim of one model needs from the selection passes.
pub(super) enum TrimTarget {
    /// Density 1 (or `K ≥ n`): keep everything.
    Keep,
    /// Find the `k`-th largest `|δ|`; `reference` keeps ties at it inclusively.
    Kth { k: usize, reference: bool },
}

pub(super) fn trim_target(
    segment: &str,
    n: usize,
    d: f64,
    rule: TrimRule,
    empty: EmptyTrim,
) -> Result<TrimTarget> {
    let reference = rule == TrimRule::Reference;
    if d.is_nan() || d <= 0.0 || d > 1.0 {
        return Err(Error::BadParameter {
            tensor: segment.into(),
            what: format!("density {d} must be in (0, 1]"),
        });
    }
    if d == 1.0 {
        return Ok(TrimTarget::Keep);
    }
    let mut keep = (d * n as f64).floor() as usize;
    if empty == EmptyTrim::KeepLargest && n > 0 {
        keep = keep.max(1);
    }
    if keep == 0 {
        return Err(Error::EmptyTrim {
            tensor: segment.into(),
            density: d,
            numel: n,
        });
    }
    Ok(if keep >= n {
        TrimTarget::Keep
    } else if reference {
        // Keep |δ| ≥ the (n − K)-th smallest = the (K + 1)-th largest.
        TrimTarget::Kth {
            k: keep + 1,
            reference,
        }
    } else {
        TrimTarget::Kth { k: keep, reference }
    })
}

/// The trim state of every model in `models`. The exact `k`-th largest `|δ|`
/// of every model that needs one comes from two read passes shared by all
/// models: a 2¹⁶-bucket histogram of the high half of the f32 bit patterns,
/// then one of the low half inside each model's chosen bucket.
pub(super) fn trim_states(
    reader: &Reader,
    models: &[&ChunkModel],
    rule: TrimRule,
    empty: EmptyTrim,
) -> Result<Vec<Sparsify>> {
    let targets: Vec<TrimTarget> = models
        .iter()
        .map(|m| trim_target(reader.segment, reader.n, m.density, rule, empty))
        .collect::<Result<_>>()?;
    let picked: Vec<(&ChunkModel, usize)> = models
        .iter()
        .zip(&targets)
        .filter_map(|(m, t)| match t {
            TrimTarget::Kth { k, .. } => Some((*m, *k)),
            TrimTarget::Keep => None,
        })
        .collect();
    let mut found = if picked.is_empty() {
        Vec::new()
    } else {
        let chosen: Vec<&ChunkModel> = picked.iter().map(|(m, _)| *m).collect();
        let ks: Vec<usize> = picked.iter().map(|(_, k)| *k).collect();
        kth_largest(reader, &chosen, &ks)?
    }
    .into_iter();
    targets
        .into_iter()
        .map(|t| {
            Ok(match t {
                TrimTarget::Keep => Sparsify::Keep,
                TrimTarget::Kth { k, reference } => {
                    let (threshold, above) = found.next().ok_or_else(|| Error::BadParameter {
                        tensor: reader.segment.into(),
                        what: "internal: a trim threshold is missing".into(),
                    })?;
                    if reference {
                        Sparsify::Trim {
                            threshold,
                            ties: usize::MAX,
                            inclusive: true,
                        }
                    } else {
                        Sparsify::Trim {
                            threshold,
                            ties: k - above,
                            inclusive: false,
                        }
                    }
                }
            })
        })
        .collect()
}

pub(super) fn dare_state(
    reader: &Reader,
    m: &ChunkModel,
    rescale: Rescale,
    stream: u64,
) -> Result<Sparsify> {
    let d = m.density;
    if !(0.0..=1.0).contains(&d) {
        return Err(Error::BadParameter {
            tensor: reader.segment.into(),
            what: format!("DARE density (keep probability) {d} must be in [0, 1]"),
        });
    }
    if d >= 1.0 {
        return Ok(Sparsify::Keep);
    }
    let drop = 1.0 - d;
    if d == 0.0 {
        return Ok(Sparsify::Dare {
            stream,
            drop,
            factor: None,
            zero: true,
        });
    }
    let factor = match rescale {
        Rescale::None => None,
        Rescale::InverseKeep => Some((1.0 / d) as f32),
        kind => {
            let (mut old, mut new) = (0.0f64, 0.0f64);
            reader.each_chunk(&[m], |start, _, delta| {
                for (i, &x) in delta[0].iter().enumerate() {
                    let kept = if uniform(stream, (start + i) as u64) < drop {
                        0.0
                    } else {
                        x
                    };
                    match kind {
                        Rescale::L1 => {
                            old += f64::from(x.abs());
                            new += f64::from(kept.abs());
                        }
                        Rescale::L2 => {
                            old += f64::from(x) * f64::from(x);
                            new += f64::from(kept) * f64::from(kept);
                        }
                        _ => {
                            old = old.max(f64::from(x.abs()));
                            new = new.max(f64::from(kept.abs()));
                        }
                    }
                }
                Ok(())
            })?;
            if kind == Rescale::L2 {
                (old, new) = (old.sqrt(), new.sqrt());
            }
            if old < 1e-7 || new < 1e-7 {
                None
            } else {
                Some((old / new) as f32)
            }
        }
    };
    Ok(Sparsify::Dare {
        stream,
        drop,
        factor,
        zero: false,
    })
}

/// How [`sparsify_one`] sparsifies a single delta.
pub(crate) enum One {
    /// TIES' magnitude trim.
    Trim { rule: TrimRule, empty: EmptyTrim },
    /// DARE's random drop and rescale, drawing from `stream`.
    Dare { rescale: Rescale, stream: u64 },
}

/// Sparsifies one whole delta with the same state machinery as the merge
/// (one chunk), for the public [`crate::trim`] and [`crate::dare`].
pub(crate) fn sparsify_one(
    segment: &str,
    delta: &[f32],
    density: f64,
    how: One,
) -> Result<Vec<f32>> {
    let source = SliceSource(delta);
    let model = ChunkModel {
        id: String::new(),
        weight: 1.0,
        density,
        source: &source,
    };
    let reader = Reader {
        segment,
        base: None,
        n: delta.len(),
        chunk: delta.len().max(1),
    };
    let state = match how {
        One::Trim { rule, empty } => trim_states(&reader, &[&model], rule, empty)?
            .pop()
            .unwrap_or(Sparsify::Keep),
        One::Dare { rescale, stream } => dare_state(&reader, &model, rescale, stream)?,
    };
    let mut values = [delta.to_vec()];
    apply(&mut [state], &mut values, 0);
    let [values] = values;
    Ok(values)
}

/// Sparsifies one chunk of every model's delta (elements `start ..`) in place, in order.
pub(super) fn apply(state: &mut [Sparsify], deltas: &mut [Vec<f32>], start: usize) {
    for (s, d) in state.iter_mut().zip(deltas) {
        match s {
            Sparsify::Keep => {}
            Sparsify::Trim {
                threshold,
                ties,
                inclusive,
            } => {
                let t = *threshold;
                let at_threshold = d.iter().filter(|x| x.abs().to_bits() == t).count();
                // Keep `|δ| > t`, and the ties at `t` while the budget lasts:
                // all of this chunk's, none, or (one chunk per tensor) some.
                let budget_here = *ties;
                let keep_ties = if *inclusive || at_threshold <= *ties {
                    Some(true)
                } else if *ties == 0 {
                    Some(false)
                } else {
                    None
                };
                if !*inclusive {
                    *ties = ties.saturating_sub(at_threshold);
                }
                match keep_ties {
                    Some(true) => {
                        for x in d.iter_mut() {
                            *x = if x.abs().to_bits() >= t { *x } else { 0.0 };
                        }
                    }
                    Some(false) => {
                        for x in d.iter_mut() {
                            *x = if x.abs().to_bits() > t { *x } else { 0.0 };
                        }
                    }
                    None => {
                        let mut budget = budget_here;
                        for x in d.iter_mut() {
                            let b = x.abs().to_bits();
                            let keep = b > t
                                || (b == t && budget > 0 && {
                                    budget -= 1;
                                    true
                                });
                            if !keep {
                                *x = 0.0;
                            }
                        }
                    }
                }
            }
            Sparsify::Dare {
                stream,
                drop,
                factor,
                zero,
            } => {
                for (i, x) in d.iter_mut().enumerate() {
                    *x = if *zero || uniform(*stream, (start + i) as u64) < *drop {
                        0.0
                    } else {
                        factor.map_or(*x, |f| *x * f)
                    };
                }
            }
        }
    }
}
