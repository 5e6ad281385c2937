//! A raw output pointer that parallel kernels share to write disjoint parts of one buffer.

/// Shared by rayon jobs that each write their own, disjoint elements of a buffer that
/// outlives them (the callers' `SAFETY` comments say why theirs are disjoint).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);

// SAFETY: moving the pointer to another thread dereferences nothing; the kernels write
// through it only in `unsafe` blocks whose comments show that each job writes its own
// elements of a buffer that outlives the jobs. `T: Send`: values written from another
// thread end up owned by the buffer's thread.
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as for `Send`: a shared `SendPtr` only hands out copies of the pointer
// (`get`), and the writes through them are disjoint, so no element is accessed from two
// threads at once.
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}
