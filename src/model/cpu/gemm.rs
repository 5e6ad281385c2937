//! The single-threaded GEMM call that the tiled convolutions share.

use gemm::Parallelism;

/// `dst (m x n) = lhs (m x k) @ rhs (k x n)`, or `+=` when `accumulate`, for row-major
/// blocks with the given row strides, on the calling thread (the kernels parallelise over
/// tiles themselves).
///
/// # Safety
/// Each pointer must address a block of its shape and row stride, and `dst` must not
/// overlap `lhs` or `rhs`.
pub(super) unsafe fn gemm_rows(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs, accumulate): (*mut f32, usize, bool),
    (lhs, lhs_rs): (*const f32, usize),
    (rhs, rhs_rs): (*const f32, usize),
) {
    // SAFETY: the caller guarantees that each pointer addresses a block of its shape with
    // these row strides and that `dst` overlaps neither input; column strides are 1
    // (row-major), so gemm reads and writes only inside those blocks.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs,
            1,
            lhs_rs as isize,
            rhs,
            1,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}
