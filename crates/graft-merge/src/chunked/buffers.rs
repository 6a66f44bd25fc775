//! Chunk buffers reused between tensors on each thread.

thread_local! {
    /// Chunk buffers kept between tensors on this thread: a fresh buffer of
    /// a few MiB costs a page fault and a page zeroing per 4 KiB.
    static SPARES: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How many buffers a thread keeps.
pub(super) const MAX_SPARES: usize = 16;

/// A chunk buffer borrowed from this thread's spares, returned on drop.
pub(super) struct Spare(pub(super) Vec<f32>);

impl Spare {
    pub(super) fn take(len: usize) -> Self {
        Self(take_spare(len))
    }
}

/// A buffer of `len` zeros, from this thread's spares when it has one.
pub(super) fn take_spare(len: usize) -> Vec<f32> {
    let mut v = SPARES.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    v.clear();
    v.resize(len, 0.0);
    v
}

pub(super) fn give_back(v: Vec<f32>) {
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
pub(super) struct Spares(pub(super) Vec<Vec<f32>>);

impl Drop for Spares {
    fn drop(&mut self) {
        for v in self.0.drain(..) {
            give_back(v);
        }
    }
}
