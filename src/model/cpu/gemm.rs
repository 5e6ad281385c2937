//! The single-threaded GEMM call that the tiled convolutions share.

use gemm::Parallelism;

use super::precision::Precision;

/// Rows from which a GEMM runs in bf16 when asked (see [`gemm_rows_in`]).
pub(super) const BF16_MIN_ROWS: usize = 16;

/// [`gemm_rows`] in `precision`: the bf16 GEMM (AMX or AVX-512 BF16) for [`Precision::Bf16`] (which
/// [`super::with_precision`] sets only where it is available), else f32.
///
/// GEMMs of fewer than [`BF16_MIN_ROWS`] rows stay f32 in either precision: the rows are
/// a conv's output channels, so these are the 3-channel heads (`ToRgb`, and `ToFlow`,
/// whose flow field the warp amplifies errors of), cheap in f32 and a tile's 16 rows
/// mostly wasted in bf16.
///
/// `rounded`: the same `lhs` already rounded to bf16 (`amx::round_matrices`' layout,
/// with its row stride), which spares rounding the weights on every call.
///
/// # Safety
/// As [`gemm_rows`]; `rounded`, when given, addresses the rounded `lhs` with 32 readable
/// rows past its last.
#[inline]
pub(super) unsafe fn gemm_rows_in(
    precision: Precision,
    shape: (usize, usize, usize),
    dst: (*mut f32, usize, bool),
    lhs: (*const f32, usize),
    rounded: Option<(*const u16, usize)>,
    rhs: (*const f32, usize),
) {
    #[cfg(target_arch = "x86_64")]
    if precision == Precision::Bf16 && shape.0 >= BF16_MIN_ROWS && super::amx::available() {
        // SAFETY: the caller's contract is `gemm_rows`'s, which `gemm_rows_bf16` shares;
        // a bf16 kernel was just checked.
        unsafe { super::amx::gemm_rows_bf16(shape, dst, lhs, rounded, rhs, None) };
        return;
    }
    let _ = (precision, rounded);
    // SAFETY: forwarded from the caller.
    unsafe { gemm_rows(shape, dst, lhs, rhs) }
}

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

/// `dst (m x n) (+)= lhs @ rhs` in bf16 from inputs already rounded: `lhs` in
/// `amx::round_matrices`' layout and `rhs` in `amx::round_pairs`' (each with its row
/// stride). For the direct convolutions, whose taps all read one rounded input.
///
/// # Safety
/// `dst` as in [`gemm_rows`]; `lhs` addresses `m` rows (and 32 more readable) of
/// `k.next_multiple_of(32)` values, zero past `k`; `rhs` `k.next_multiple_of(32) / 2`
/// pair rows of `n.next_multiple_of(32)` readable pairs, zero past row `k`; the bf16 GEMM
/// is available (`amx::available`).
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn gemm_rows_rounded(
    shape: (usize, usize, usize),
    dst: (*mut f32, usize, bool),
    lhs: (*const u16, usize),
    rhs: (*const u32, usize),
) {
    // SAFETY: forwarded from the caller; the f32 operands are never read when both
    // rounded ones are given.
    unsafe {
        super::amx::gemm_rows_bf16(
            shape,
            dst,
            (std::ptr::null(), 0),
            Some(lhs),
            (std::ptr::null(), 0),
            Some(rhs),
        )
    }
}
