//! Exact order statistics over a streamed segment by two-pass radix
//! selection on f32 bit patterns (TIES' K-th largest `|δ|`, PCB's quantiles).

use super::reader::Reader;
use super::source::ChunkModel;
use crate::Result;

pub(super) const BUCKETS: usize = 1 << 16;

/// A 2¹⁶-bucket histogram of 16-bit keys, counted in `u32` (half the cache
/// footprint of `usize`) and folded into `usize` totals before it could
/// overflow. Keys go round-robin to four sub-histograms, so runs of equal
/// keys do not wait on each other's increments.
pub(super) struct Histogram {
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
pub(super) struct Rank {
    /// The key at the asked ascending index.
    pub(super) key: u32,
    /// Keys strictly below it.
    pub(super) below: usize,
    /// Keys equal to it.
    pub(super) equal: usize,
}

/// The key of `x` whose unsigned order is the float order (−0.0 < +0.0).
pub(super) fn float_key(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}

/// The float of a [`float_key`].
pub(super) fn key_float(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

/// Exact order statistics of derived keys, by radix selection in two read
/// passes shared by all models: a histogram of the keys' high 16 bits, then
/// one of the low 16 bits inside each asked-for bucket. `keys` fills each
/// model's keys for a chunk of deltas; `ranks[i]` are model `i`'s ascending
/// 0-based indices (each `< n`).
pub(super) fn select_ascending(
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
pub(super) fn kth_largest(
    reader: &Reader,
    models: &[&ChunkModel],
    ks: &[usize],
) -> Result<Vec<(u32, usize)>> {
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
