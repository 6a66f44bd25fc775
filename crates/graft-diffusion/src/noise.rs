//! Noise sources for stochastic samplers: seeded, user-supplied and a
//! Brownian tree (the same seed gives consistent paths at 20 and 40 steps).

use crate::{Error, Result};
use graft_tensor::tch::{Kind, Tensor};
use rand::SeedableRng;
pub use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::VecDeque;

/// Standard normal draws for a step of a stochastic sampler from `t_from` to `t_to`.
pub trait NoiseSource {
    /// A tensor of i.i.d. N(0, 1) with the shape, kind and device of `like`,
    /// for the step from `t_from` to `t_to`.
    fn standard_normal(&mut self, like: &Tensor, t_from: f64, t_to: f64) -> Result<Tensor>;
    /// Standard normals not tied to a time step (a corrector's or a Langevin
    /// chain's noise). By default the next draw of `standard_normal` with
    /// `t_from = t_to = 0`; a source whose draws depend on the step overrides it.
    fn independent_normal(&mut self, like: &Tensor) -> Result<Tensor> {
        self.standard_normal(like, 0.0, 0.0)
    }
}

/// The seeded generator graft-diffusion draws start states and data from.
pub fn seeded_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `n` standard normals from `rng` as an f64 vector.
pub fn normals(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

/// A tensor of standard normals shaped and typed like `like`, drawn from `rng`.
pub fn normal_like(rng: &mut ChaCha8Rng, like: &Tensor) -> Result<Tensor> {
    let n = like.numel();
    // f32 tensors get f32 draws from the ziggurat written straight into the
    // tensor (one 32-bit draw per sample, taken in bulk); everything else
    // f64 draws, one u64 each.
    if like.kind() == Kind::Float {
        let t = Tensor::f_empty(like.size(), (Kind::Float, graft_tensor::tch::Device::Cpu))?;
        if n > 0 {
            // SAFETY: `t` is a fresh contiguous CPU f32 tensor of `n`
            // elements that nothing else references while it is filled.
            let out = unsafe { std::slice::from_raw_parts_mut(t.data_ptr().cast::<f32>(), n) };
            crate::ziggurat::fill_standard_normal(rng, out);
        }
        return Ok(t.f_to_device(like.device())?);
    }
    Ok(Tensor::from_slice(&normals(rng, n))
        .f_reshape(like.size())?
        .f_to_kind(like.kind())?
        .f_to_device(like.device())?)
}

/// Independent draws from a ChaCha8 stream seeded once (deterministic,
/// independent of libtorch's global generator).
pub struct SeededNoise {
    rng: ChaCha8Rng,
}

impl SeededNoise {
    /// A stream from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
    /// The generator, for drawing initial states from the same stream.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }
}

impl NoiseSource for SeededNoise {
    fn standard_normal(&mut self, like: &Tensor, _t_from: f64, _t_to: f64) -> Result<Tensor> {
        normal_like(&mut self.rng, like)
    }
}

/// Noise tensors supplied by the user, consumed in order.
pub struct UserNoise {
    queue: VecDeque<Tensor>,
    used: usize,
}

impl UserNoise {
    /// The tensors to hand out, in order.
    pub fn new(tensors: Vec<Tensor>) -> Self {
        Self {
            queue: tensors.into(),
            used: 0,
        }
    }
}

impl NoiseSource for UserNoise {
    fn standard_normal(&mut self, like: &Tensor, _t_from: f64, _t_to: f64) -> Result<Tensor> {
        let z = self
            .queue
            .pop_front()
            .ok_or(Error::NoiseExhausted { used: self.used })?;
        if z.size() != like.size() {
            return Err(Error::ShapeMismatch {
                what: "user noise vs x",
                expected: like.size(),
                actual: z.size(),
            });
        }
        self.used += 1;
        Ok(z.f_to_kind(like.kind())?.f_to_device(like.device())?)
    }
}

/// A Brownian motion W on `[t_lo, t_hi]` generated lazily by bisection
/// (Brownian bridges with counter-seeded draws at every node), so W(t) does not
/// depend on which times are asked for. A step's noise is
/// `(W(t_to) − W(t_from)) / sqrt(|t_to − t_from|)`.
///
/// Cost: a query draws one normal per element for every level below the
/// last query's shared prefix, about `depth − log2(span / |Δt|)` levels for
/// steps of `Δt` (a dyadic time stops where it is a node). Buffers are kept
/// between queries, so a query allocates nothing once the path is built.
pub struct BrownianTree {
    seed: u64,
    t_lo: f64,
    t_hi: f64,
    depth: u32,
    shape: Option<Vec<i64>>,
    /// The stream of draws not tied to a step, seeded from `seed` on first use.
    independent: Option<ChaCha8Rng>,
    /// The bisection path of the last query, level by level: a sampler's
    /// next time lies close by, so it shares the first levels.
    path: Vec<Level>,
    /// W at the path's points: `[0]` is W(t_lo) = 0, `[1]` W(t_hi), `[k + 2]`
    /// the midpoint drawn below path level `k`. Buffers past the path's end
    /// are spare, kept for reuse.
    values: Vec<Vec<f64>>,
    /// The f32 draws of one node, reused.
    draws: Vec<f32>,
    /// The last two values asked for, most recent last: a step starts where
    /// the last ended.
    recent: VecDeque<(f64, Vec<f64>)>,
}

/// One level of a bisection path: the interval `[a, b]`, the slots of
/// `values` holding W at its ends, and the node numbering its midpoint's draws.
#[derive(Clone, Copy)]
struct Level {
    a: f64,
    b: f64,
    wa: usize,
    wb: usize,
    node: u64,
}

impl BrownianTree {
    /// A tree on `[t_lo, t_hi]` resolved to `(t_hi − t_lo)/2^depth` (linear in between).
    pub fn new(seed: u64, t_lo: f64, t_hi: f64, depth: u32) -> Result<Self> {
        if !(t_hi > t_lo) || !t_lo.is_finite() || !t_hi.is_finite() {
            return Err(Error::Invalid {
                name: "t_hi",
                value: t_hi,
                reason: "a Brownian tree needs t_lo < t_hi",
            });
        }
        Ok(Self {
            seed,
            t_lo,
            t_hi,
            depth: depth.clamp(1, 40),
            shape: None,
            independent: None,
            path: Vec::new(),
            values: Vec::new(),
            draws: Vec::new(),
            recent: VecDeque::new(),
        })
    }

    /// Fills `self.draws` with `n` standard normals from `node`'s own stream.
    fn draw(&mut self, node: u64, n: usize) {
        let key = self
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(node.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut rng = ChaCha8Rng::seed_from_u64(key);
        self.draws.resize(n, 0.0);
        crate::ziggurat::fill_standard_normal(&mut rng, &mut self.draws);
    }

    /// A spare buffer for slot `slot` of `values`, emptied.
    fn take_slot(&mut self, slot: usize) -> Vec<f64> {
        while self.values.len() <= slot {
            self.values.push(Vec::new());
        }
        let mut v = std::mem::take(&mut self.values[slot]);
        v.clear();
        v
    }

    /// Makes W(t) for `n` values the most recent entry of `recent`: bisection from
    /// `[t_lo, t_hi]` down `depth` levels (Brownian bridges at the
    /// midpoints, each drawn from its node's own stream), then linear in the
    /// last interval; a time that is a node's end stops there. The levels
    /// the last query's path shares with this one are reused, and so are
    /// the last two values.
    fn value(&mut self, t: f64, n: usize) {
        let t = t.clamp(self.t_lo, self.t_hi);
        if let Some(i) = self
            .recent
            .iter()
            .position(|(s, w)| *s == t && w.len() == n)
        {
            // Most recent last, so the next miss evicts the other one.
            if let Some(hit) = self.recent.remove(i) {
                self.recent.push_back(hit);
            }
            return;
        }
        if self.values.get(1).is_none_or(|w| w.len() != n) {
            self.draw(0, n);
            let scale = (self.t_hi - self.t_lo).sqrt();
            let mut zero = self.take_slot(0);
            zero.resize(n, 0.0);
            self.values[0] = zero;
            let mut root = self.take_slot(1);
            root.extend(self.draws.iter().map(|&z| f64::from(z) * scale));
            self.values[1] = root;
            self.path = vec![Level {
                a: self.t_lo,
                b: self.t_hi,
                wa: 0,
                wb: 1,
                node: 1,
            }];
        }
        // Keep the levels where t takes the same side as the last query
        // (left when t <= the midpoint), so W(t) is the same bits whatever
        // was asked before.
        let mut keep = 1;
        while keep < self.path.len() {
            let parent = self.path[keep - 1];
            let m = 0.5 * (parent.a + parent.b);
            let went_left = self.path[keep].b == m;
            if (t <= m) != went_left {
                break;
            }
            keep += 1;
        }
        self.path.truncate(keep);
        let mut l = self.path[keep - 1];
        while self.path.len() <= self.depth as usize && t != l.a && t != l.b {
            let m = 0.5 * (l.a + l.b);
            let sd = ((l.b - l.a) / 4.0).sqrt();
            self.draw(l.node, n);
            let slot = self.path.len() + 1;
            let mut wm = self.take_slot(slot);
            let (wa, wb) = (&self.values[l.wa], &self.values[l.wb]);
            wm.extend(
                wa.iter()
                    .zip(wb)
                    .zip(&self.draws)
                    .map(|((&a, &b), &z)| 0.5 * (a + b) + sd * f64::from(z)),
            );
            self.values[slot] = wm;
            l = if t <= m {
                Level {
                    a: l.a,
                    b: m,
                    wa: l.wa,
                    wb: slot,
                    node: 2 * l.node,
                }
            } else {
                Level {
                    a: m,
                    b: l.b,
                    wa: slot,
                    wb: l.wb,
                    node: 2 * l.node + 1,
                }
            };
            self.path.push(l);
        }
        let mut out = if self.recent.len() == 2 {
            self.recent.pop_front().map(|r| r.1).unwrap_or_default()
        } else {
            Vec::new()
        };
        out.clear();
        let (wa, wb) = (&self.values[l.wa], &self.values[l.wb]);
        if t == l.b {
            out.extend_from_slice(wb);
        } else if t == l.a {
            out.extend_from_slice(wa);
        } else {
            let w = (t - l.a) / (l.b - l.a);
            out.extend(wa.iter().zip(wb).map(|(&a, &b)| a + w * (b - a)));
        }
        self.recent.push_back((t, out));
    }
}

impl NoiseSource for BrownianTree {
    fn standard_normal(&mut self, like: &Tensor, t_from: f64, t_to: f64) -> Result<Tensor> {
        match &self.shape {
            Some(s) if *s != like.size() => {
                return Err(Error::ShapeMismatch {
                    what: "Brownian tree vs x",
                    expected: s.clone(),
                    actual: like.size(),
                });
            }
            None => self.shape = Some(like.size()),
            _ => {}
        }
        let dt = (t_to - t_from).abs();
        if !(dt > 0.0) {
            return Err(Error::Invalid {
                name: "dt",
                value: dt,
                reason: "a Brownian increment needs t_from != t_to (draws not tied to a step: independent_normal)",
            });
        }
        let n = like.numel();
        // W(t_from) first: a sampler's step starts where the last one
        // ended, so it is found and becomes the most recent, and the miss on
        // t_to evicts the other entry (asking for t_to first evicted
        // W(t_from), whose path was then drawn again).
        self.value(t_from, n);
        self.value(t_to, n);
        let (c_from, c_to) = (
            t_from.clamp(self.t_lo, self.t_hi),
            t_to.clamp(self.t_lo, self.t_hi),
        );
        let (mut w0, mut w1) = (None, None);
        for (s, w) in &self.recent {
            if *s == c_from {
                w0 = Some(w);
            }
            if *s == c_to {
                w1 = Some(w);
            }
        }
        let (Some(w0), Some(w1)) = (w0, w1) else {
            return Err(Error::Invalid {
                name: "t_to",
                value: t_to,
                reason: "internal: the Brownian tree lost a value it had just made",
            });
        };
        let sd = dt.sqrt();
        let z = w1.iter().zip(w0).map(|(a, b)| (a - b) / sd);
        let out = if like.kind() == Kind::Float {
            let t = Tensor::f_empty(like.size(), (Kind::Float, graft_tensor::tch::Device::Cpu))?;
            if n > 0 {
                // SAFETY: `t` is a fresh contiguous CPU f32 tensor of `n`
                // elements that nothing else references while it is filled.
                let dst = unsafe { std::slice::from_raw_parts_mut(t.data_ptr().cast::<f32>(), n) };
                for (d, v) in dst.iter_mut().zip(z) {
                    *d = v as f32;
                }
            }
            t
        } else {
            Tensor::from_slice(&z.collect::<Vec<f64>>())
                .f_reshape(like.size())?
                .f_to_kind(like.kind())?
        };
        Ok(out.f_to_device(like.device())?)
    }
    /// Draws from a separate ChaCha8 stream of the tree's seed, so the
    /// Brownian path itself is untouched.
    fn independent_normal(&mut self, like: &Tensor) -> Result<Tensor> {
        let seed = self.seed ^ 0x5EED_0F1D_EBE7_u64;
        let rng = self
            .independent
            .get_or_insert_with(|| ChaCha8Rng::seed_from_u64(seed));
        normal_like(rng, like)
    }
}

/// f64 on the CPU: the kind the oracle tests use.
pub const F64: (Kind, graft_tensor::tch::Device) = (Kind::Double, graft_tensor::tch::Device::Cpu);
