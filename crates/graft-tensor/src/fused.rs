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

/// The broadcast shape of `shapes` under libtorch's rules (None: incompatible).
fn broadcast_shape(shapes: &[Vec<i64>]) -> Option<Vec<i64>> {
    let dims = shapes.iter().map(Vec::len).max()?;
    let mut out = vec![1i64; dims];
    for s in shapes {
        for (o, &d) in out[dims - s.len()..].iter_mut().zip(s) {
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
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
    // The output takes libtorch's broadcast shape of all terms.
    let shapes: Vec<Vec<i64>> = terms.iter().map(|(_, t)| t.size()).collect();
    let shape = broadcast_shape(&shapes)?;
    let n = shape.iter().product::<i64>();
    if n <= 0 {
        return None;
    }
    let n = n as usize;
    for ((_, t), size) in terms.iter().zip(&shapes) {
        if t.device() != Device::Cpu
            || t.kind() != kind
            || !t.is_contiguous()
            || t.requires_grad()
            || !broadcasts_as_suffix(size, &shape)
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
    if !combine_rows(&inputs, dst) {
        combine(&inputs, dst);
    }
}

/// The common shapes, fast: every term is full-size, one row of `period`
/// elements repeated (a `[d]` mean), or a scalar. Up to 6 non-scalar terms are
/// combined in registers, one pass, with AVX2 where the CPU has it. Returns
/// false (nothing written) for other shapes.
fn combine_rows<T: Elem>(inputs: &[(f64, &[T])], dst: &mut [T]) -> bool {
    let n = dst.len();
    let mut constant = 0.0;
    let mut rest: Vec<(f64, &[T])> = Vec::with_capacity(inputs.len());
    for &(c, src) in inputs {
        if src.len() == 1 && n != 1 {
            constant += c * src[0].widen();
        } else {
            rest.push((c, src));
        }
    }
    let period = rest
        .iter()
        .map(|(_, s)| s.len())
        .filter(|&l| l != n)
        .max()
        .unwrap_or(n);
    if period == 0 || n % period != 0 || rest.iter().any(|(_, s)| s.len() != n && s.len() != period)
    {
        return false;
    }
    macro_rules! dispatch {
        ($($k:literal)*) => {
            match rest.len() {
                $($k => rows_dispatch::<T, $k>(constant, &rest, dst, period),)*
                _ => return false,
            }
        };
    }
    dispatch!(0 1 2 3 4 5 6);
    true
}

fn rows_dispatch<T: Elem, const N: usize>(
    constant: f64,
    terms: &[(f64, &[T])],
    dst: &mut [T],
    period: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe { rows_avx2::<T, N>(constant, terms, dst, period) };
        return;
    }
    rows::<T, N>(constant, terms, dst, period);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rows_avx2<T: Elem, const N: usize>(
    constant: f64,
    terms: &[(f64, &[T])],
    dst: &mut [T],
    period: usize,
) {
    rows::<T, N>(constant, terms, dst, period);
}

#[inline(always)]
fn rows<T: Elem, const N: usize>(
    constant: f64,
    terms: &[(f64, &[T])],
    dst: &mut [T],
    period: usize,
) {
    let n = dst.len();
    let coef: [f64; N] = std::array::from_fn(|k| terms[k].0);
    for (r, out) in dst.chunks_mut(period).enumerate() {
        let srcs: [&[T]; N] = std::array::from_fn(|k| {
            let s = terms[k].1;
            if s.len() == n {
                &s[r * period..r * period + out.len()]
            } else {
                &s[..out.len()]
            }
        });
        for (j, o) in out.iter_mut().enumerate() {
            let mut acc = constant;
            for k in 0..N {
                acc += coef[k] * srcs[k][j].widen();
            }
            *o = T::narrow(acc);
        }
    }
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

/// `Σ_k c_k[r] · t_k[r, …]`: a linear combination whose coefficients vary
/// along the first dimension (one per sample of a batch), the update of a
/// Langevin corrector or of any per-sample step size.
///
/// Every tensor must have the same shape `[B, …]` and every coefficient
/// slice `B` entries, or one entry (the same for every row). Fast path as in
/// [`lincomb`] (contiguous CPU f32/f64 of one kind, no gradient history):
/// one pass, accumulated in f64 and rounded once. Otherwise libtorch ops
/// with the coefficients as a `[B, 1, …]` tensor.
pub fn lincomb_rows(terms: &[(&[f64], &Tensor)]) -> Result<Tensor> {
    let Some((_, first)) = terms.first() else {
        return Err(Error::Invalid(
            "lincomb_rows needs at least one term".to_string(),
        ));
    };
    let shape = first.size();
    let Some(&rows) = shape.first() else {
        return Err(Error::Invalid(
            "lincomb_rows needs tensors with a batch dimension, got a scalar".to_string(),
        ));
    };
    for (k, (c, t)) in terms.iter().enumerate() {
        if t.size() != shape {
            return Err(Error::Invalid(format!(
                "lincomb_rows: term {k} has shape {:?}, term 0 {shape:?}",
                t.size()
            )));
        }
        if c.len() != rows as usize && c.len() != 1 {
            return Err(Error::Invalid(format!(
                "lincomb_rows: term {k} has {} coefficients for {rows} rows",
                c.len()
            )));
        }
    }
    let kind = first.kind();
    let fast = matches!(kind, Kind::Float | Kind::Double)
        && first.numel() > 0
        && terms.iter().all(|(_, t)| {
            t.device() == Device::Cpu && t.kind() == kind && t.is_contiguous() && !t.requires_grad()
        });
    if fast {
        let out = Tensor::f_empty(shape.as_slice(), (kind, Device::Cpu))?;
        match kind {
            Kind::Float => run_rows::<f32>(terms, &out, rows as usize),
            _ => run_rows::<f64>(terms, &out, rows as usize),
        }
        return Ok(out);
    }
    let coef_shape: Vec<i64> = std::iter::once(-1)
        .chain(std::iter::repeat_n(1, shape.len() - 1))
        .collect();
    let mut acc: Option<Tensor> = None;
    for (c, t) in terms {
        // f64 coefficients: the product promotes, the sum is rounded once.
        let c = Tensor::from_slice(c)
            .f_to_device(t.device())?
            .f_reshape(coef_shape.as_slice())?;
        let term = t.f_mul(&c)?;
        acc = Some(match acc {
            None => term,
            Some(a) => a.f_add(&term)?,
        });
    }
    acc.ok_or_else(|| Error::Invalid("lincomb_rows needs at least one term".to_string()))?
        .f_to_kind(kind)
        .map_err(Error::from)
}

fn run_rows<T: Elem>(terms: &[(&[f64], &Tensor)], out: &Tensor, rows: usize) {
    let n = out.numel();
    // SAFETY: as in `run`: every tensor is a contiguous CPU tensor of element
    // type T with `n > 0` elements (checked by `lincomb_rows`), and `out` is
    // fresh and aliases none of them.
    let inputs: Vec<(&[f64], &[T])> = terms
        .iter()
        .map(|(c, t)| {
            let s = unsafe { std::slice::from_raw_parts(t.data_ptr() as *const T, n) };
            (*c, s)
        })
        .collect();
    let dst = unsafe { std::slice::from_raw_parts_mut(out.data_ptr() as *mut T, n) };
    let width = n / rows;
    macro_rules! dispatch {
        ($($k:literal)*) => {
            match inputs.len() {
                $($k => each_row::<T, $k>(&inputs, dst, width),)*
                _ => each_row_any(&inputs, dst, width),
            }
        };
    }
    dispatch!(1 2 3 4 5 6);
}

/// Row by row through the register loop of [`lincomb`], `N` terms.
fn each_row<T: Elem, const N: usize>(inputs: &[(&[f64], &[T])], dst: &mut [T], width: usize) {
    for (r, row) in dst.chunks_mut(width).enumerate() {
        let terms: [(f64, &[T]); N] = std::array::from_fn(|k| {
            let (c, src) = inputs[k];
            (
                if c.len() == 1 { c[0] } else { c[r] },
                &src[r * width..(r + 1) * width],
            )
        });
        rows_dispatch::<T, N>(0.0, &terms, row, width);
    }
}

/// Any number of terms, one element at a time.
fn each_row_any<T: Elem>(inputs: &[(&[f64], &[T])], dst: &mut [T], width: usize) {
    for (r, row) in dst.chunks_mut(width).enumerate() {
        for (j, o) in row.iter_mut().enumerate() {
            let mut acc = 0.0;
            for (c, src) in inputs {
                let c = if c.len() == 1 { c[0] } else { c[r] };
                acc += c * src[r * width + j].widen();
            }
            *o = T::narrow(acc);
        }
    }
}

/// Row norms with eight independent f64 accumulators per row (a single
/// running sum would wait on every addition's latency).
fn norms_of<T: Elem>(s: &[T], width: usize) -> Vec<f64> {
    s.chunks(width.max(1))
        .map(|row| {
            let mut acc = [0.0f64; 8];
            let mut lanes = row.chunks_exact(8);
            for c in &mut lanes {
                for (a, v) in acc.iter_mut().zip(c) {
                    *a += v.widen() * v.widen();
                }
            }
            let tail: f64 = lanes
                .remainder()
                .iter()
                .map(|v| v.widen() * v.widen())
                .sum();
            (acc.iter().sum::<f64>() + tail).sqrt()
        })
        .collect()
}

/// The L2 norm of each row `t[r, …]` over all its other dimensions, in f64
/// (one pass over contiguous CPU f32/f64; otherwise libtorch's norm).
pub fn row_norms(t: &Tensor) -> Result<Vec<f64>> {
    let Some(&rows) = t.size().first() else {
        return Err(Error::Invalid(
            "row_norms needs a tensor with a batch dimension, got a scalar".to_string(),
        ));
    };
    let kind = t.kind();
    if t.numel() > 0
        && t.device() == Device::Cpu
        && t.is_contiguous()
        && matches!(kind, Kind::Float | Kind::Double)
    {
        let n = t.numel();
        let width = n / rows as usize;
        // SAFETY: a contiguous CPU tensor of `n` elements of the matched kind,
        // read while `t` is borrowed.
        return Ok(if kind == Kind::Float {
            norms_of(
                unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, n) },
                width,
            )
        } else {
            norms_of(
                unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f64, n) },
                width,
            )
        });
    }
    if t.numel() == 0 {
        return Ok(vec![0.0; rows.max(0) as usize]);
    }
    let flat = t.f_reshape([rows, -1])?.f_to_kind(Kind::Double)?;
    let norms = flat.f_norm_scalaropt_dim(2.0, [1], false)?;
    Ok(Vec::<f64>::try_from(norms.f_to_device(Device::Cpu)?)?)
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

    #[test]
    fn broadcast_shapes_follow_libtorch() {
        assert_eq!(broadcast_shape(&[vec![1, 3], vec![3]]), Some(vec![1, 3]));
        assert_eq!(broadcast_shape(&[vec![3], vec![1, 3]]), Some(vec![1, 3]));
        assert_eq!(
            broadcast_shape(&[vec![2, 1, 3], vec![1, 1, 1, 3]]),
            Some(vec![1, 2, 1, 3])
        );
        assert_eq!(broadcast_shape(&[vec![4, 3], vec![2, 3]]), None);
        assert_eq!(broadcast_shape(&[vec![], vec![5]]), Some(vec![5]));
    }
}
