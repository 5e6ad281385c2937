//! A raw output pointer that parallel kernels share to write disjoint parts of one buffer.

/// Shared by rayon jobs that each write their own, disjoint elements of a buffer that
/// outlives them (the callers' `SAFETY` comments say why theirs are disjoint).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);

// SAFETY: only handed to jobs writing disjoint elements of a buffer that outlives them.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}
