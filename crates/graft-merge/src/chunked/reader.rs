//! Reading the inputs chunk by chunk: [`Reader`] hands out deltas
//! `θ_i − θ0`, refusing non-finite inputs, and [`check_and_sink`] refuses a
//! non-finite result before it reaches the caller.

use super::buffers::{Spare, Spares, take_spare};
use super::source::ChunkModel;
use super::source::Source;
use crate::{Error, Result};

/// Reads base and model chunks and hands out deltas `θ_i − θ0`.
pub(super) struct Reader<'a> {
    pub(super) segment: &'a str,
    pub(super) base: Option<&'a dyn Source>,
    pub(super) n: usize,
    pub(super) chunk: usize,
}

impl Reader<'_> {
    pub(super) fn read_checked(
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
    pub(super) fn each_chunk(
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
/// Whether every value is finite (a branch-free scan the compiler vectorises).
pub(super) fn all_finite(values: &[f32]) -> bool {
    values.iter().fold(true, |ok, v| {
        ok & (v.to_bits() & 0x7f80_0000 != 0x7f80_0000)
    })
}

pub(super) fn check_and_sink(
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
