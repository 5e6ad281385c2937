//! Per-thread scratch memory for the kernels' tiles.

use std::cell::RefCell;

thread_local! {
    /// Per-thread scratch for the kernels' tiles, kept between calls so that the big
    /// per-tile buffers are neither zeroed nor page-faulted in again on every tile.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch buffer, at least `len` floats long. Its contents are
/// whatever an earlier call left there: callers write before they read. Not re-entrant:
/// `f` must not call it again (the kernels' GEMMs run single-threaded inside a tile).
pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}
