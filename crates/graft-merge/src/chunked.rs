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

use crate::combine;
use crate::rng::{stable_hash, stream_key, uniform};
use crate::types::{Compat, MergeParams, Method, Rescale, TrimRule};
use crate::{Error, Result};

/// Values of one model's tensor, readable in ranges.
pub trait Source: Sync {
    /// Number of elements.
    fn len(&self) -> usize;
    /// Whether there are no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes elements `start .. start + out.len()` as f32 into `out`.
    fn read(&self, start: usize, out: &mut [f32]) -> Result<()>;
    /// Says elements `start .. start + len` will not be needed again soon.
    fn release(&self, _start: usize, _len: usize) {}
}

/// An in-memory [`Source`].
pub struct SliceSource<'a>(pub &'a [f32]);

impl Source for SliceSource<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn read(&self, start: usize, out: &mut [f32]) -> Result<()> {
        out.copy_from_slice(&self.0[start..start + out.len()]);
        Ok(())
    }
}

/// One model of a chunked merge.
pub struct ChunkModel<'a> {
    /// Stable identifier (orders the sums, keys DARE's stream).
    pub id: String,
    /// `w_i`.
    pub weight: f32,
    /// TIES keep fraction / DARE keep probability.
    pub density: f64,
    /// Its values `θ_i`.
    pub source: &'a dyn Source,
}

/// Per-model sparsification state, fixed by the read passes.
enum Sparsify {
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
    let paper = params.compat == Compat::Paper;
    let reader = Reader {
        segment,
        base,
        n,
        chunk,
    };

    if let Method::Pcb(pcb) = method {
        return pcb_streamed(pcb, params, &reader, &order, &weights, sink);
    }

    // Passes before the merge: sparsification thresholds and factors.
    let tensor_hash = stable_hash(segment);
    let dare_rescale = params.rescale.unwrap_or(if paper {
        Rescale::InverseKeep
    } else {
        Rescale::L1
    });
    let state = match method {
        Method::Ties => trim_states(
            &reader,
            &order,
            params.trim_rule == TrimRule::Reference,
            !paper,
        )?,
        Method::DareLinear | Method::DareTies => order
            .iter()
            .map(|m| {
                dare_state(
                    &reader,
                    m,
                    dare_rescale,
                    stream_key(params.seed, stable_hash(&m.id), tensor_hash),
                )
            })
            .collect::<Result<Vec<_>>>()?,
        _ => order.iter().map(|_| Sparsify::Keep).collect(),
    };
    if paper && matches!(method, Method::Ties | Method::DareTies) {
        if let Some(m) = order.iter().find(|m| m.weight != 1.0) {
            return Err(Error::BadParameter {
                tensor: segment.into(),
                what: format!(
                    "model `{}` has weight {}: the paper's TIES has no per-model weights (use compat = mergekit)",
                    m.id, m.weight
                ),
            });
        }
    }
    let majority = if paper && matches!(method, Method::Ties | Method::DareTies) {
        let mut balance = 0i64;
        let mut st = fresh(&state);
        reader.each_chunk(&order, |_, _, deltas| {
            apply(&mut st, deltas, 0);
            balance += combine::ties_vote_balance(deltas);
            Ok(())
        })?;
        combine::sign(balance as f32)
    } else {
        0.0
    };

    // The merge pass: sparsify the deltas in place, combine into `out`.
    let mut st = fresh(&state);
    let mut out = Vec::with_capacity(chunk.min(n));
    let (mut tally, mut div) = (Spare::take(0), Spare::take(0));
    reader.each_chunk(&order, |start, base_chunk, deltas| {
        apply(&mut st, deltas, start);
        match method {
            Method::Linear => {
                // Linear merges the models' values; with no base the "deltas" are those values.
                let normalize = params.normalize.unwrap_or(true);
                combine::mergekit(
                    deltas,
                    &weights,
                    None,
                    normalize,
                    &mut out,
                    [&mut tally.0, &mut div.0],
                );
                return check_and_sink(segment, start, &out, sink);
            }
            Method::TaskArithmetic | Method::DareLinear => {
                let normalize = params.normalize.unwrap_or(false);
                combine::mergekit(
                    deltas,
                    &weights,
                    None,
                    normalize,
                    &mut out,
                    [&mut tally.0, &mut div.0],
                );
            }
            Method::Ties | Method::DareTies => {
                if paper {
                    combine::ties_reference_with(deltas, majority, &mut out);
                } else {
                    let normalize = params.normalize.unwrap_or(*method == Method::Ties);
                    combine::mergekit(
                        deltas,
                        &weights,
                        Some(params.vote),
                        normalize,
                        &mut out,
                        [&mut tally.0, &mut div.0],
                    );
                }
            }
            Method::Pcb(_) => unreachable!("PCB is merged by pcb_streamed above"),
        }
        if params.lambda == 1.0 {
            for (o, b) in out.iter_mut().zip(base_chunk) {
                *o += b;
            }
        } else {
            for (o, b) in out.iter_mut().zip(base_chunk) {
                *o = b + *o * params.lambda;
            }
        }
        check_and_sink(segment, start, &out, sink)
    })
}

/// Reads base and model chunks and hands out deltas `θ_i − θ0`.
struct Reader<'a> {
    segment: &'a str,
    base: Option<&'a dyn Source>,
    n: usize,
    chunk: usize,
}

impl Reader<'_> {
    fn read_checked(
        &self,
        src: &dyn Source,
        who: &str,
        start: usize,
        out: &mut [f32],
    ) -> Result<()> {
        src.read(start, out)?;
        if !all_finite(out)
            && let Some((i, v)) = out.iter().enumerate().find(|(_, v)| !v.is_finite())
        {
            return Err(Error::NonFinite {
                tensor: self.segment.into(),
                value: *v,
                index: start + i,
                place: format!("in model `{who}`"),
            });
        }
        Ok(())
    }

    /// Calls `f(start, base chunk, deltas)` for every chunk in order (base zeros for `None`).
    fn each_chunk(
        &self,
        models: &[&ChunkModel],
        mut f: impl FnMut(usize, &[f32], &mut [Vec<f32>]) -> Result<()>,
    ) -> Result<()> {
        let mut start = 0;
        let width = self.chunk.min(self.n);
        let mut base_buf = Spare::take(width);
        let mut deltas = Spares(models.iter().map(|_| take_spare(width)).collect());
        let base_buf = &mut base_buf.0;
        let deltas = &mut deltas.0;
        while start < self.n {
            let len = self.chunk.min(self.n - start);
            base_buf.resize(len, 0.0);
            match self.base {
                Some(b) => {
                    self.read_checked(b, "base", start, base_buf)?;
                    b.release(start, len);
                }
                None => base_buf.fill(0.0),
            }
            for (m, d) in models.iter().zip(deltas.iter_mut()) {
                d.resize(len, 0.0);
                self.read_checked(m.source, &m.id, start, d)?;
                m.source.release(start, len);
                for (x, b) in d.iter_mut().zip(base_buf.iter()) {
                    *x -= b;
                }
            }
            f(start, base_buf, deltas)?;
            start += len;
        }
        Ok(())
    }
}

thread_local! {
    /// Chunk buffers kept between tensors on this thread: a fresh buffer of
    /// a few MiB costs a page fault and a page zeroing per 4 KiB.
    static SPARES: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How many buffers a thread keeps.
const MAX_SPARES: usize = 16;

/// A chunk buffer borrowed from this thread's spares, returned on drop.
struct Spare(Vec<f32>);

impl Spare {
    fn take(len: usize) -> Self {
        Self(take_spare(len))
    }
}

/// A buffer of `len` zeros, from this thread's spares when it has one.
fn take_spare(len: usize) -> Vec<f32> {
    let mut v = SPARES.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    v.clear();
    v.resize(len, 0.0);
    v
}

fn give_back(v: Vec<f32>) {
    SPARES.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < MAX_SPARES {
            s.push(v);
        }
    });
}

impl Drop for Spare {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.0));
    }
}

/// Several [`Spare`]s.
struct Spares(Vec<Vec<f32>>);

impl Drop for Spares {
    fn drop(&mut self) {
        for v in self.0.drain(..) {
            give_back(v);
        }
    }
}

/// What a magnitude trim of one model needs from the selection passes.
enum TrimTarget {
    /// Density 1 (or `K ≥ n`): keep everything.
    Keep,
    /// Find the `k`-th largest `|δ|`; `reference` keeps ties at it inclusively.
    Kth { k: usize, reference: bool },
}

fn trim_target(
    segment: &str,
    n: usize,
    d: f64,
    reference: bool,
    at_least_one: bool,
) -> Result<TrimTarget> {
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
    if at_least_one && n > 0 {
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
fn trim_states(
    reader: &Reader,
    models: &[&ChunkModel],
    reference: bool,
    at_least_one: bool,
) -> Result<Vec<Sparsify>> {
    let targets: Vec<TrimTarget> = models
        .iter()
        .map(|m| trim_target(reader.segment, reader.n, m.density, reference, at_least_one))
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

const BUCKETS: usize = 1 << 16;

/// A 2¹⁶-bucket histogram of 16-bit keys, counted in `u32` (half the cache
/// footprint of `usize`) and folded into `usize` totals before it could
/// overflow. Keys go round-robin to four sub-histograms, so runs of equal
/// keys do not wait on each other's increments.
struct Histogram {
    parts: [Box<[u32; BUCKETS]>; 4],
    counted: u64,
    totals: Vec<usize>,
}

impl Histogram {
    fn new() -> Self {
        Self {
            parts: std::array::from_fn(|_| Box::new([0; BUCKETS])),
            counted: 0,
            totals: vec![0; BUCKETS],
        }
    }

    /// Counts the high 16 bits of each key.
    fn count_high(&mut self, keys: &[u32]) {
        for block in keys.chunks(1 << 30) {
            if self.counted + block.len() as u64 > u64::from(u32::MAX) {
                self.fold();
            }
            let [a, b, c, d] = &mut self.parts;
            let mut quads = block.chunks_exact(4);
            for q in &mut quads {
                a[(q[0] >> 16) as usize] += 1;
                b[(q[1] >> 16) as usize] += 1;
                c[(q[2] >> 16) as usize] += 1;
                d[(q[3] >> 16) as usize] += 1;
            }
            for k in quads.remainder() {
                a[(k >> 16) as usize] += 1;
            }
            self.counted += block.len() as u64;
        }
    }

    /// Counts the low 16 bits of the keys whose high 16 bits are `bucket`.
    fn count_low_in(&mut self, keys: &[u32], bucket: u32) {
        for k in keys {
            if k >> 16 == bucket {
                if self.counted == u64::from(u32::MAX) {
                    self.fold();
                }
                self.parts[0][(k & 0xffff) as usize] += 1;
                self.counted += 1;
            }
        }
    }

    fn fold(&mut self) {
        for part in &mut self.parts {
            for (t, p) in self.totals.iter_mut().zip(part.iter_mut()) {
                *t += *p as usize;
                *p = 0;
            }
        }
        self.counted = 0;
    }

    fn totals(mut self) -> Vec<usize> {
        self.fold();
        self.totals
    }
}

/// An order statistic found by [`select_ascending`].
#[derive(Clone, Copy)]
struct Rank {
    /// The key at the asked ascending index.
    key: u32,
    /// Keys strictly below it.
    below: usize,
    /// Keys equal to it.
    equal: usize,
}

/// The key of `x` whose unsigned order is the float order (−0.0 < +0.0).
fn float_key(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}

/// The float of a [`float_key`].
fn key_float(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

/// Exact order statistics of derived keys, by radix selection in two read
/// passes shared by all models: a histogram of the keys' high 16 bits, then
/// one of the low 16 bits inside each asked-for bucket. `keys` fills each
/// model's keys for a chunk of deltas; `ranks[i]` are model `i`'s ascending
/// 0-based indices (each `< n`).
fn select_ascending(
    reader: &Reader,
    models: &[&ChunkModel],
    ranks: &[Vec<usize>],
    mut keys: impl FnMut(&[Vec<f32>], &mut [Vec<u32>]),
) -> Result<Vec<Vec<Rank>>> {
    let mut buf: Vec<Vec<u32>> = models.iter().map(|_| Vec::new()).collect();
    let mut high: Vec<Histogram> = models.iter().map(|_| Histogram::new()).collect();
    reader.each_chunk(models, |_, _, deltas| {
        for (b, d) in buf.iter_mut().zip(deltas.iter()) {
            b.resize(d.len(), 0);
        }
        keys(deltas, &mut buf);
        for (h, k) in high.iter_mut().zip(&buf) {
            h.count_high(k);
        }
        Ok(())
    })?;
    // The bucket of each asked-for index, and the count below the bucket.
    let located: Vec<Vec<(u32, usize)>> = high
        .into_iter()
        .map(Histogram::totals)
        .zip(ranks)
        .map(|(h, rs)| {
            rs.iter()
                .map(|&r| {
                    let mut below = 0usize;
                    for (bucket, &c) in h.iter().enumerate() {
                        if below + c > r {
                            return (bucket as u32, below);
                        }
                        below += c;
                    }
                    (BUCKETS as u32 - 1, below)
                })
                .collect()
        })
        .collect();
    let mut low: Vec<Vec<(u32, Histogram)>> = located
        .iter()
        .map(|l| {
            let mut buckets: Vec<u32> = l.iter().map(|(b, _)| *b).collect();
            buckets.sort_unstable();
            buckets.dedup();
            buckets.into_iter().map(|b| (b, Histogram::new())).collect()
        })
        .collect();
    reader.each_chunk(models, |_, _, deltas| {
        for (b, d) in buf.iter_mut().zip(deltas.iter()) {
            b.resize(d.len(), 0);
        }
        keys(deltas, &mut buf);
        for (hs, k) in low.iter_mut().zip(&buf) {
            for (bucket, h) in hs.iter_mut() {
                h.count_low_in(k, *bucket);
            }
        }
        Ok(())
    })?;
    Ok(low
        .into_iter()
        .zip(located)
        .zip(ranks)
        .map(|((hs, located), rs)| {
            let totals: Vec<(u32, Vec<usize>)> =
                hs.into_iter().map(|(b, h)| (b, h.totals())).collect();
            rs.iter()
                .zip(located)
                .map(|(&r, (bucket, mut below))| {
                    let h = totals
                        .iter()
                        .find(|(b, _)| *b == bucket)
                        .map(|(_, h)| h.as_slice())
                        .unwrap_or(&[]);
                    for (l, &c) in h.iter().enumerate() {
                        if below + c > r {
                            return Rank {
                                key: (bucket << 16) | l as u32,
                                below,
                                equal: c,
                            };
                        }
                        below += c;
                    }
                    Rank {
                        key: u32::MAX,
                        below,
                        equal: 0,
                    }
                })
                .collect()
        })
        .collect())
}

/// For each model, the bits of its `k`-th largest `|δ|` (1-based) and how
/// many are strictly larger (`|δ|` bits order like the values).
fn kth_largest(reader: &Reader, models: &[&ChunkModel], ks: &[usize]) -> Result<Vec<(u32, usize)>> {
    let n = reader.n;
    let ranks: Vec<Vec<usize>> = ks.iter().map(|k| vec![n - k]).collect();
    let found = select_ascending(reader, models, &ranks, |deltas, keys| {
        for (k, d) in keys.iter_mut().zip(deltas) {
            for (k, x) in k.iter_mut().zip(d) {
                *k = x.abs().to_bits();
            }
        }
    })?;
    Ok(found
        .into_iter()
        .map(|r| (r[0].key, n - r[0].below - r[0].equal))
        .collect())
}

/// PCB streamed (spec §4, "exact"): two shared selection passes find each
/// model's clamp bounds (quantiles of `|δ_i|`), two more its drop threshold
/// and maximum of `β_i`, and a last pass merges; the per-element formulas
/// are [`crate::pcb`]'s, so the result equals the in-memory PCB bit for bit.
fn pcb_streamed(
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

fn dare_state(reader: &Reader, m: &ChunkModel, rescale: Rescale, stream: u64) -> Result<Sparsify> {
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
    Trim { reference: bool, at_least_one: bool },
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
        One::Trim {
            reference,
            at_least_one,
        } => trim_states(&reader, &[&model], reference, at_least_one)?
            .pop()
            .unwrap_or(Sparsify::Keep),
        One::Dare { rescale, stream } => dare_state(&reader, &model, rescale, stream)?,
    };
    let mut values = [delta.to_vec()];
    apply(&mut [state], &mut values, 0);
    let [values] = values;
    Ok(values)
}

/// A copy of the states with the tie counters at their start.
fn fresh(state: &[Sparsify]) -> Vec<Sparsify> {
    state
        .iter()
        .map(|s| match s {
            Sparsify::Keep => Sparsify::Keep,
            Sparsify::Trim {
                threshold,
                ties,
                inclusive,
            } => Sparsify::Trim {
                threshold: *threshold,
                ties: *ties,
                inclusive: *inclusive,
            },
            Sparsify::Dare {
                stream,
                drop,
                factor,
                zero,
            } => Sparsify::Dare {
                stream: *stream,
                drop: *drop,
                factor: *factor,
                zero: *zero,
            },
        })
        .collect()
}

/// Sparsifies one chunk of every model's delta (elements `start ..`) in place, in order.
fn apply(state: &mut [Sparsify], deltas: &mut [Vec<f32>], start: usize) {
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

/// Whether every value is finite (a branch-free scan the compiler vectorises).
fn all_finite(values: &[f32]) -> bool {
    values.iter().fold(true, |ok, v| {
        ok & (v.to_bits() & 0x7f80_0000 != 0x7f80_0000)
    })
}

fn check_and_sink(
    segment: &str,
    start: usize,
    out: &[f32],
    sink: &mut dyn FnMut(&[f32]) -> Result<()>,
) -> Result<()> {
    if !all_finite(out)
        && let Some((i, v)) = out.iter().enumerate().find(|(_, v)| !v.is_finite())
    {
        return Err(Error::NonFinite {
            tensor: segment.into(),
            value: *v,
            index: start + i,
            place: "in the result".into(),
        });
    }
    sink(out)
}
