//! The extension point: [`Source`], one model's tensor readable in ranges,
//! [`SliceSource`] over a slice in memory, and [`ChunkModel`], a source
//! with its weight and density.

use crate::Result;

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
