//! Fused element-wise arithmetic: a linear combination `Σ_k c_k · t_k` in one
//! pass over memory.
//!
//! Samplers and optimisers spend their time outside the model in chains of
//! small element-wise ops (`a·y + b·q0 + c·q1 + …`). On the CPU each libtorch op
//! costs a dispatch, an allocation and a pass over memory, which at a few
//! thousand elements is more than the arithmetic. [`lincomb`] computes the
//! whole combination in one loop, accumulating in f64 and rounding once, when
//! every term is a contiguous CPU f32/f64 tensor of one kind without autograd
//! history; otherwise it falls back to libtorch ops (which broadcast, run on
//! any device and record gradients).

use crate::{Error, Result};
use tch::{Device, Kind, Tensor};

/// Elements per block of the fused loop: the f64 accumulator stays in L1.
const BLOCK: usize = 512;

/// `Σ_k c_k · t_k`, one pass and one rounding on the CPU fast path.
///
/// Fast path: every tensor on the CPU, contiguous, of one kind (f32 or f64),
/// not requiring gradients, and each term's shape equal to the output's shape
/// or to a suffix of it (a term such as a `[d]` mean broadcasts over the leading
/// dimensions; leading 1s are ignored). The result is accumulated in f64 and
/// rounded once to the tensors' kind, so it can differ from the libtorch chain
/// in the last bit of f32. Anything else goes through libtorch's `f_` ops, with
/// their broadcasting and their errors.
pub fn lincomb(terms: &[(f64, &Tensor)]) -> Result<Tensor> {
    if terms.is_empty() {
        return Err(Error::Invalid(
            "lincomb needs at least one term".to_string(),
        ));
    }
    if let Some(out) = fast_path(terms) {
        return Ok(out);
    }
    let mut acc: Option<Tensor> = None;
    for &(c, t) in terms {
        let scaled = if c == 1.0 {
            t.shallow_clone()
        } else {
            t.f_mul_scalar(c)?
        };
        acc = Some(match acc {
            None => scaled,
            Some(a) => a.f_add(&scaled)?,
        });
    }
    // `terms` is non-empty, so `acc` is set.
    acc.ok_or_else(|| Error::Invalid("lincomb needs at least one term".to_string()))
}

/// Whether `term`'s shape is `out`'s shape or a suffix of it (leading 1s ignored).
fn broadcasts_as_suffix(term: &[i64], out: &[i64]) -> bool {
    let first = term.iter().position(|&d| d != 1).unwrap_or(term.len());
    let term = &term[first..];
    term.len() <= out.len() && out[out.len() - term.len()..] == *term
}

/// Conversions between the stored element type and the f64 accumulator.
trait Elem: Copy {
    fn widen(self) -> f64;
    fn narrow(v: f64) -> Self;
}

impl Elem for f32 {
    #[inline(always)]
    fn widen(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn narrow(v: f64) -> Self {
        v as f32
    }
}

impl Elem for f64 {
    #[inline(always)]
    fn widen(self) -> f64 {
        self
    }
    #[inline(always)]
    fn narrow(v: f64) -> Self {
        v
    }
}

fn fast_path(terms: &[(f64, &Tensor)]) -> Option<Tensor> {
    let kind = terms[0].1.kind();
    if !matches!(kind, Kind::Float | Kind::Double) {
        return None;
    }
    // The output takes the shape of the largest term.
    let (_, widest) = terms.iter().max_by_key(|(_, t)| t.numel())?;
    let shape = widest.size();
    let n = widest.numel();
    if n == 0 {
        return None;
    }
    for (_, t) in terms {
        if t.device() != Device::Cpu
            || t.kind() != kind
            || !t.is_contiguous()
            || t.requires_grad()
            || !broadcasts_as_suffix(&t.size(), &shape)
        {
            return None;
        }
    }
    let out = Tensor::empty(shape.as_slice(), (kind, Device::Cpu));
    match kind {
        Kind::Float => run::<f32>(terms, &out, n),
        _ => run::<f64>(terms, &out, n),
    }
    Some(out)
}

fn run<T: Elem>(terms: &[(f64, &Tensor)], out: &Tensor, n: usize) {
    // SAFETY: every tensor is a contiguous CPU tensor of element type T (checked
    // by `fast_path`) with at least one element, so `data_ptr` points at
    // `numel` valid, initialised Ts that live as long as the borrowed tensor.
    // `out` is freshly allocated here and aliases none of the inputs; nothing
    // else can reach it until this function returns.
    let inputs: Vec<(f64, &[T])> = terms
        .iter()
        .map(|(c, t)| {
            let s = unsafe { std::slice::from_raw_parts(t.data_ptr() as *const T, t.numel()) };
            (*c, s)
        })
        .collect();
    let dst = unsafe { std::slice::from_raw_parts_mut(out.data_ptr() as *mut T, n) };
    combine(&inputs, dst);
}

/// The fused loop: `dst[i] = Σ_k c_k · src_k[i mod len_k]`, blockwise in f64.
fn combine<T: Elem>(inputs: &[(f64, &[T])], dst: &mut [T]) {
    let n = dst.len();
    let mut acc = [0.0f64; BLOCK];
    for (b, out) in dst.chunks_mut(BLOCK).enumerate() {
        let start = b * BLOCK;
        let acc = &mut acc[..out.len()];
        acc.fill(0.0);
        for &(c, src) in inputs {
            if src.len() == 1 {
                let v = c * src[0].widen();
                acc.iter_mut().for_each(|a| *a += v);
            } else if src.len() == n {
                let src = &src[start..start + out.len()];
                for (a, &s) in acc.iter_mut().zip(src) {
                    *a += c * s.widen();
                }
            } else {
                // A broadcast term: walk its runs across the block.
                let mut j = 0;
                let mut off = start % src.len();
                while j < acc.len() {
                    let run = (acc.len() - j).min(src.len() - off);
                    for (a, &s) in acc[j..j + run].iter_mut().zip(&src[off..off + run]) {
                        *a += c * s.widen();
                    }
                    j += run;
                    off = 0;
                }
            }
        }
        for (o, &a) in out.iter_mut().zip(acc.iter()) {
            *o = T::narrow(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_rule() {
        assert!(broadcasts_as_suffix(&[4, 3], &[4, 3]));
        assert!(broadcasts_as_suffix(&[3], &[4, 3]));
        assert!(broadcasts_as_suffix(&[1, 3], &[4, 3]));
        assert!(broadcasts_as_suffix(&[1], &[4, 3]));
        assert!(!broadcasts_as_suffix(&[4, 1], &[4, 3]));
        assert!(!broadcasts_as_suffix(&[4], &[4, 3]));
    }
}
