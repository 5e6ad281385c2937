//! The bf16 GEMM of [`Precision::Bf16`](super::Precision): Intel AMX tiles (Sapphire Rapids
//! and later), or AVX-512 BF16 dot products where there is no AMX (Zen 4 and later); f32
//! in and out, bf16 products summed in f32.
//!
//! Same contract as `gemm_rows` (`dst (m x n) (+)= lhs (m x k) @ rhs (k x n)`, row-major
//! f32 blocks with row strides), so that every tiled convolution can take either. Each call
//! rounds its inputs to bf16 (round to nearest even) into per-thread buffers laid out as
//! the tiles want them: `lhs` as rows of `k` (padded to 32) values, `rhs` in AMX's "VNNI"
//! layout, rows `2i` and `2i + 1` interleaved so that one 64-byte tile row holds 16
//! columns x 2 depths. Rounding costs O(m k + k n) per call against the O(m n k) products,
//! and the convolutions call with m of 64..128 and n of 256..1024, so it is not worth
//! keeping pre-rounded weights.
//!
//! The 8 tile registers hold a 32 x 32 block of `dst` (4 accumulators), 2 `lhs` and 2
//! `rhs` tiles; one `tdpbf16ps` is 16 x 16 x 32 multiply-adds. Measured on this machine's
//! AMX: about 3.6 TFLOP/s per core for the instruction alone (a dependent chain), some 20x
//! the f32 AVX-512 peak, so what is left of a convolution's time is rounding, tile loads
//! and the f32 write-out.
//!
//! Linux hands out the AMX register state only on request (`arch_prctl(ARCH_REQ_XCOMP_PERM)`,
//! once per process); [`kernel`] asks, and picks the AVX-512 BF16 kernel where the OS
//! refuses or the CPU has no AMX, and none where it lacks AVX-512 BF16 too.

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::asm;
    use std::arch::x86_64::*;
    use std::cell::RefCell;

    use super::Kernel;

    /// Rows and columns of the block the 4 accumulator tiles hold; also the depth step.
    const BLOCK: usize = 32;
    /// Floats per accumulator tile row (16 rows of 64 bytes).
    const TILE: usize = 16;

    /// `ldtilecfg`'s 64-byte operand: palette 1, all 8 tiles 16 rows x 64 bytes.
    #[repr(C, align(64))]
    struct TileConfig([u8; 64]);

    impl TileConfig {
        fn full() -> Self {
            let mut c = [0u8; 64];
            c[0] = 1;
            for t in 0..8 {
                // colsb (u16 little endian) at 16 + 2t, rows at 48 + t.
                c[16 + 2 * t] = 64;
                c[48 + t] = TILE as u8;
            }
            Self(c)
        }
    }

    /// The f32 block tiles are stored to before the write-out into `dst`.
    #[repr(C, align(64))]
    struct Block([f32; BLOCK * BLOCK]);

    thread_local! {
        /// Per-thread bf16 copies of `lhs` (`u16` each) and `rhs` (two `u16` per `u32`).
        static BUFFERS: RefCell<(Vec<u16>, Vec<u32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    }

    /// The bf16 kernel this CPU runs, if any.
    pub(super) fn detect() -> Option<Kernel> {
        if !(std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512bf16"))
        {
            return None;
        }
        // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
        let edx = __cpuid_count(7, 0).edx;
        if edx & (1 << 22) != 0 && edx & (1 << 24) != 0 && request_permission() {
            Some(Kernel::Amx)
        } else {
            Some(Kernel::Avx512Bf16)
        }
    }

    #[cfg(target_os = "linux")]
    fn request_permission() -> bool {
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        unsafe extern "C" {
            fn syscall(num: i64, ...) -> i64;
        }
        // SAFETY: `syscall` is libc's variadic `long syscall(long, ...)`; arch_prctl with
        // ARCH_REQ_XCOMP_PERM takes one integer argument and only changes which register
        // state the kernel lets this process use.
        unsafe { syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
    }

    #[cfg(not(target_os = "linux"))]
    fn request_permission() -> bool {
        // Windows enables AMX state for every thread; other systems are untested.
        cfg!(target_os = "windows")
    }

    /// `dst (+)= lhs @ rhs` (see `gemm_rows`), in bf16 with f32 sums.
    ///
    /// # Safety
    /// As `gemm_rows`; and [`detect`] must have returned `kernel` (or AMX, which implies
    /// AVX-512 BF16).
    pub(super) unsafe fn gemm(
        kernel: Kernel,
        (m, n, k): (usize, usize, usize),
        (dst, dst_rs, accumulate): (*mut f32, usize, bool),
        (lhs, lhs_rs): (*const f32, usize),
        rounded: Option<(*const u16, usize)>,
        (rhs, rhs_rs): (*const f32, usize),
        rhs_rounded: Option<(*const u32, usize)>,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        let (mp, np, kp) = (
            m.next_multiple_of(BLOCK),
            n.next_multiple_of(BLOCK),
            k.next_multiple_of(BLOCK),
        );
        BUFFERS.with(|cell| {
            let mut bufs = cell.borrow_mut();
            let (a, b) = &mut *bufs;
            // SAFETY: the caller's contract covers the f32 blocks and the pre-rounded
            // `lhs`; `a` and `b` are sized for the padded shapes here, and `detect` saw
            // every feature these use.
            unsafe {
                let (a_ptr, a_rs) = match rounded {
                    Some((p, rs)) => (p, rs),
                    None => {
                        if a.len() < mp * kp {
                            a.resize(mp * kp, 0);
                        }
                        round_lhs(lhs, lhs_rs, (m, k), (mp, kp), a);
                        (a.as_ptr(), kp)
                    }
                };
                let (b_ptr, b_rs) = match rhs_rounded {
                    Some((p, rs)) => (p, rs),
                    None => {
                        if b.len() < kp / 2 * np {
                            b.resize(kp / 2 * np, 0);
                        }
                        round_rhs(rhs, rhs_rs, (k, n), (kp, np), b);
                        (b.as_ptr(), np)
                    }
                };
                let shapes = ((m, n), (mp, np, kp));
                let (a, b, d) = ((a_ptr, a_rs), (b_ptr, b_rs), (dst, dst_rs, accumulate));
                match kernel {
                    Kernel::Amx => tiles(shapes.0, shapes.1, a, b, d),
                    Kernel::Avx512Bf16 => dots(shapes.0, shapes.1, a, b, d),
                }
            }
        })
    }

    /// Rows of the AVX-512 BF16 kernel's block (its columns are [`BLOCK`]).
    const DOT_ROWS: usize = 8;

    /// The tile loop's work without AMX (Zen 4 and later, or an OS without AMX state): an
    /// 8 x 32 block of 16 accumulators, each step one broadcast `lhs` pair per row times
    /// two 16-column `rhs` pair vectors (`vdpbf16ps`, two products per lane). Same
    /// operands, layout and contract as [`tiles`].
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn dots(
        (m, n): (usize, usize),
        (_mp, np, kp): (usize, usize, usize),
        (a, a_rs): (*const u16, usize),
        (b, b_rs): (*const u32, usize),
        (dst, dst_rs, accumulate): (*mut f32, usize, bool),
    ) {
        let mut block = Block([0.0; BLOCK * BLOCK]);
        for n0 in (0..np).step_by(BLOCK) {
            for m0 in (0..m).step_by(DOT_ROWS) {
                let mut acc = [[_mm512_setzero_ps(); 2]; DOT_ROWS];
                for kk in 0..kp / 2 {
                    // SAFETY: pair row `kk < kp / 2`, columns `n0..n0 + 32 <= np` of `b`, and
                    // rows `m0..m0 + 8 <= mp` (`m` rounded up to 32), pair `kk` of `a`.
                    unsafe {
                        let row = b.add(kk * b_rs + n0);
                        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(row.cast()));
                        let b1: __m512bh =
                            std::mem::transmute(_mm512_loadu_si512(row.add(TILE).cast()));
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let pair = a
                                .add((m0 + r) * a_rs + 2 * kk)
                                .cast::<u32>()
                                .read_unaligned();
                            let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair as i32));
                            acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
                            acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    // SAFETY: row `r < 8` of the 32 x 32 block, 16 floats each.
                    unsafe {
                        _mm512_storeu_ps(block.0.as_mut_ptr().add(r * BLOCK), acc[0]);
                        _mm512_storeu_ps(block.0.as_mut_ptr().add(r * BLOCK + TILE), acc[1]);
                    }
                }
                // Only the block's first DOT_ROWS rows are filled: `m` is cut to them.
                let rows_end = m.min(m0 + DOT_ROWS);
                // SAFETY: as in `tiles`.
                unsafe {
                    write_block(&block.0, (m0, n0), (rows_end, n), (dst, dst_rs, accumulate))
                };
            }
        }
    }

    /// `lhs` rounded to bf16 as `mp` rows of `kp` values, zeros past `m` and `k`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn round_lhs(
        lhs: *const f32,
        rs: usize,
        (m, k): (usize, usize),
        (mp, kp): (usize, usize),
        a: &mut [u16],
    ) {
        for i in 0..mp {
            let row = &mut a[i * kp..(i + 1) * kp];
            if i >= m {
                row.fill(0);
                continue;
            }
            // SAFETY: row `i < m` of `lhs` holds `k` floats (the caller's contract).
            let src = unsafe { std::slice::from_raw_parts(lhs.add(i * rs), k) };
            for (j, out) in row.chunks_exact_mut(BLOCK).enumerate() {
                let lo = load16(src, j * BLOCK);
                let hi = load16(src, j * BLOCK + TILE);
                // SAFETY: `__m512bh` and `__m512i` are both 64 bytes of plain bits.
                let v: __m512i = unsafe { std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo)) };
                // SAFETY: `out` is 32 u16 = 64 bytes.
                unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), v) };
            }
        }
    }

    /// `rhs` rounded to bf16 in VNNI layout: `kp / 2` rows of `np` pairs, pair `(i, j)`
    /// holding rows `2i` (low half) and `2i + 1` of column `j`; zeros past `k` and `n`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn round_rhs(
        rhs: *const f32,
        rs: usize,
        (k, n): (usize, usize),
        (kp, np): (usize, usize),
        b: &mut [u32],
    ) {
        let empty: &[f32] = &[];
        for i in 0..kp / 2 {
            let out = &mut b[i * np..(i + 1) * np];
            let (r0, r1) = (2 * i, 2 * i + 1);
            if r0 >= k {
                out.fill(0);
                continue;
            }
            // SAFETY: rows `r0 < k` (and `r1` when `< k`) of `rhs` hold `n` floats.
            let row = |r: usize| unsafe { std::slice::from_raw_parts(rhs.add(r * rs), n) };
            let (s0, s1) = (row(r0), if r1 < k { row(r1) } else { empty });
            for (j, o) in out.chunks_exact_mut(TILE).enumerate() {
                let even = _mm512_cvtepu16_epi32(bf16x16(load16(s0, j * TILE)));
                let odd = _mm512_cvtepu16_epi32(bf16x16(load16(s1, j * TILE)));
                let v = _mm512_or_si512(even, _mm512_slli_epi32(odd, 16));
                // SAFETY: `o` is 16 u32 = 64 bytes.
                unsafe { _mm512_storeu_si512(o.as_mut_ptr().cast(), v) };
            }
        }
    }

    /// 16 floats of `src` from `at`, zeros past its end.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load16(src: &[f32], at: usize) -> __m512 {
        let left = src.len().saturating_sub(at);
        if left >= TILE {
            // SAFETY: `at + 16 <= src.len()`.
            unsafe { _mm512_loadu_ps(src.as_ptr().add(at)) }
        } else if left == 0 {
            _mm512_setzero_ps()
        } else {
            let mask = (1u16 << left) - 1;
            // SAFETY: the mask enables only the `left` lanes inside `src`.
            unsafe { _mm512_maskz_loadu_ps(mask, src.as_ptr().add(at)) }
        }
    }

    /// 16 floats rounded to bf16 bits.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bf16")]
    fn bf16x16(v: __m512) -> __m256i {
        // SAFETY: `__m256bh` and `__m256i` are both 32 bytes of plain bits.
        unsafe { std::mem::transmute(_mm512_cvtneps_pbh(v)) }
    }

    /// The tile loop over the rounded buffers; writes `dst` rows `< m`, columns `< n`.
    ///
    /// # Safety
    /// `a` addresses `mp` rows of at least `kp` values, `a_rs` apart, zero from `k` to
    /// `kp`; `b` `kp / 2` pair rows of at least `np` values, `b_rs` apart, zero from pair
    /// row `k / 2` (the padded shapes); `dst` as in `gemm`; AMX permission granted.
    #[target_feature(enable = "avx512f")]
    unsafe fn tiles(
        (m, n): (usize, usize),
        (mp, np, kp): (usize, usize, usize),
        (a, a_rs): (*const u16, usize),
        (b, b_rs): (*const u32, usize),
        (dst, dst_rs, accumulate): (*mut f32, usize, bool),
    ) {
        let cfg = TileConfig::full();
        let mut block = Block([0.0; BLOCK * BLOCK]);
        let (a_stride, b_stride, c_rs) = (a_rs * 2, b_rs * 4, BLOCK * 4);
        // SAFETY: every tile load reads 16 rows of 64 bytes at the given stride inside `a`
        // (rows m0..m0 + 32 <= mp, values k0..k0 + 32 <= kp) or `b` (pair rows
        // k0 / 2..k0 / 2 + 16 <= kp / 2, columns n0..n0 + 32 <= np); stores write the
        // 32 x 32 `block`. Tile registers are not used by compiled code, so their state
        // lives across these asm blocks; `tilerelease` ends it.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
            for n0 in (0..np).step_by(BLOCK) {
                for m0 in (0..mp).step_by(BLOCK) {
                    asm!(
                        "tilezero tmm0",
                        "tilezero tmm1",
                        "tilezero tmm2",
                        "tilezero tmm3",
                        options(nostack, nomem)
                    );
                    for k0 in (0..kp).step_by(BLOCK) {
                        let a0 = a.add(m0 * a_rs + k0);
                        let a1 = a0.add(TILE * a_rs);
                        let b0 = b.add(k0 / 2 * b_rs + n0);
                        let b1 = b0.add(TILE);
                        asm!(
                            "tileloadd tmm4, [{a0} + {ars}*1]",
                            "tileloadd tmm5, [{a1} + {ars}*1]",
                            "tileloadd tmm6, [{b0} + {brs}*1]",
                            "tileloadd tmm7, [{b1} + {brs}*1]",
                            "tdpbf16ps tmm0, tmm4, tmm6",
                            "tdpbf16ps tmm1, tmm4, tmm7",
                            "tdpbf16ps tmm2, tmm5, tmm6",
                            "tdpbf16ps tmm3, tmm5, tmm7",
                            a0 = in(reg) a0,
                            a1 = in(reg) a1,
                            b0 = in(reg) b0,
                            b1 = in(reg) b1,
                            ars = in(reg) a_stride,
                            brs = in(reg) b_stride,
                            options(nostack, readonly)
                        );
                    }
                    let c = block.0.as_mut_ptr();
                    asm!(
                        "tilestored [{c0} + {crs}*1], tmm0",
                        "tilestored [{c1} + {crs}*1], tmm1",
                        "tilestored [{c2} + {crs}*1], tmm2",
                        "tilestored [{c3} + {crs}*1], tmm3",
                        c0 = in(reg) c,
                        c1 = in(reg) c.add(TILE),
                        c2 = in(reg) c.add(TILE * BLOCK),
                        c3 = in(reg) c.add(TILE * BLOCK + TILE),
                        crs = in(reg) c_rs,
                        options(nostack)
                    );
                    write_block(&block.0, (m0, n0), (m, n), (dst, dst_rs, accumulate));
                }
            }
            asm!("tilerelease", options(nostack, nomem));
        }
    }

    /// Copies (or adds) the part of a finished block inside `m x n` into `dst`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn write_block(
        block: &[f32; BLOCK * BLOCK],
        (m0, n0): (usize, usize),
        (m, n): (usize, usize),
        (dst, dst_rs, accumulate): (*mut f32, usize, bool),
    ) {
        let rows = BLOCK.min(m - m0);
        let cols = BLOCK.min(n - n0);
        for r in 0..rows {
            let src = &block[r * BLOCK..r * BLOCK + cols];
            // SAFETY: row `m0 + r < m`, columns `n0..n0 + cols <= n` of `dst` (the caller's
            // contract), which overlaps neither input nor `block`.
            let out =
                unsafe { std::slice::from_raw_parts_mut(dst.add((m0 + r) * dst_rs + n0), cols) };
            if accumulate {
                for (o, &v) in out.iter_mut().zip(src) {
                    *o += v;
                }
            } else {
                out.copy_from_slice(src);
            }
        }
    }
}

/// The two bf16 GEMM kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// Intel AMX tiles (Sapphire Rapids and later).
    Amx,
    /// AVX-512 BF16 dot products (`vdpbf16ps`): Zen 4 and later, Cooper Lake, and AMX
    /// CPUs whose OS withholds the AMX state.
    Avx512Bf16,
}

/// The bf16 kernel this machine runs, if any. Checked once. On an AMX machine the
/// environment variable `EDTALK_BF16_KERNEL=avx512bf16` picks the AVX-512 BF16 kernel
/// instead (to measure what Zen 4-class CPUs get).
pub(crate) fn kernel() -> Option<Kernel> {
    static KERNEL: std::sync::OnceLock<Option<Kernel>> = std::sync::OnceLock::new();
    *KERNEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let forced = std::env::var("EDTALK_BF16_KERNEL").is_ok_and(|v| v == "avx512bf16");
            match x86::detect() {
                Some(Kernel::Amx) if forced => Some(Kernel::Avx512Bf16),
                found => found,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    })
}

/// Whether this machine runs the bf16 GEMM (either [`Kernel`]).
pub(crate) fn available() -> bool {
    kernel().is_some()
}

/// `dst (m x n) (+)= lhs (m x k) @ rhs (k x n)` with both inputs rounded to bf16 and the
/// sums in f32 (see the module docs).
///
/// # Safety
/// As `gemm_rows`, and [`available`] must be true.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn gemm_rows_bf16(
    shape: (usize, usize, usize),
    dst: (*mut f32, usize, bool),
    lhs: (*const f32, usize),
    rounded: Option<(*const u16, usize)>,
    rhs: (*const f32, usize),
    rhs_rounded: Option<(*const u32, usize)>,
) {
    let Some(kernel) = kernel() else {
        unreachable!("gemm_rows_bf16 called without a bf16 kernel");
    };
    // SAFETY: forwarded from the caller; `kernel` is what `detect` found.
    unsafe { x86::gemm(kernel, shape, dst, lhs, rounded, rhs, rhs_rounded) }
}

/// `rows` rows of `width` f32 (`src`, `rs` apart) rounded to bf16 in the VNNI pair layout
/// `gemm_rows_bf16` takes as `rhs_rounded`: pair row `i` holds rows `2i` (low half) and
/// `2i + 1` of each column, `width + PAD_COLS` pairs per pair row (the extra columns
/// zero), and pair rows up to `rows.next_multiple_of(32) / 2` (the missing rows zero).
/// Pair rows are filled in parallel. Returns the buffer and its pair-row stride.
pub(super) fn round_pairs(src: &[f32], rs: usize, rows: usize, width: usize) -> (Vec<u32>, usize) {
    use rayon::prelude::*;
    let ld = width + PAD_COLS;
    let pair_rows = rows.next_multiple_of(32) / 2;
    let mut out = vec![0u32; pair_rows * ld];
    out.par_chunks_mut(ld).enumerate().for_each(|(i, dst)| {
        let row = |r: usize| (r < rows).then(|| &src[r * rs..r * rs + width]);
        super::simd::dispatch(
            #[inline(always)]
            || match (row(2 * i), row(2 * i + 1)) {
                (Some(even), Some(odd)) => {
                    for ((d, &e), &o) in dst.iter_mut().zip(even).zip(odd) {
                        *d = round_bf16(e) as u32 | (round_bf16(o) as u32) << 16;
                    }
                }
                (Some(even), None) => {
                    for (d, &e) in dst.iter_mut().zip(even) {
                        *d = round_bf16(e) as u32;
                    }
                }
                _ => {}
            },
        )
    });
    (out, ld)
}

/// Zero columns after each pair row of [`round_pairs`]: a tile block reads up to 32
/// columns from its first.
pub(super) const PAD_COLS: usize = 32;

/// `x` rounded to bf16 bits (nearest even), as the hardware's `vcvtneps2bf16` does
/// (denormals to signed zero, NaN to a quiet NaN).
#[inline(always)]
pub(super) fn round_bf16(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7fc0;
    }
    if x.abs() < f32::MIN_POSITIVE {
        return ((x.to_bits() >> 16) & 0x8000) as u16;
    }
    let b = x.to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// `mats` row-major `(rows, k)` f32 matrices, stored back to back, rounded to bf16 with
/// each row padded to a multiple of 32 values and [`PAD_ROWS`] zero rows after the last
/// matrix: the layout `gemm_rows_bf16` takes as `rounded`, row stride
/// `k.next_multiple_of(32)`, so that row blocks can be read whole past a matrix's end.
pub(super) fn round_matrices(w: &[f32], k: usize) -> Vec<u16> {
    let kp = k.next_multiple_of(32);
    let rows = w.len().checked_div(k).unwrap_or(0);
    let mut out = vec![0u16; (rows + PAD_ROWS) * kp];
    for (src, dst) in w.chunks_exact(k.max(1)).zip(out.chunks_exact_mut(kp)) {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = round_bf16(v);
        }
    }
    out
}

/// Zero rows after pre-rounded matrices: a tile block reads up to 32 rows from its first.
pub(super) const PAD_ROWS: usize = 32;

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// bf16 rounding of one value (round to nearest even), for the reference.
    fn bf16(v: f32) -> f32 {
        let b = v.to_bits();
        f32::from_bits((b + 0x7fff + ((b >> 16) & 1)) & 0xffff_0000)
    }

    #[test]
    fn bf16_gemm_matches_a_rounded_reference_on_ragged_shapes() {
        // Both kernels where the CPU has AMX (its AVX-512 BF16 too), else the one it has.
        let kernels: &[Kernel] = match kernel() {
            Some(Kernel::Amx) => &[Kernel::Amx, Kernel::Avx512Bf16],
            Some(Kernel::Avx512Bf16) => &[Kernel::Avx512Bf16],
            None => {
                eprintln!("no bf16 GEMM on this CPU: skipped");
                return;
            }
        };
        let mut seed = 7u32;
        let mut rnd = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        for &(m, n, k, acc) in &[
            (1, 1, 1, false),
            (5, 17, 3, true),
            (33, 65, 70, false),
            (64, 40, 512, true),
            (128, 1024, 96, false),
        ] {
            let (lhs_rs, rhs_rs, dst_rs) = (k + 3, n + 5, n + 2);
            let lhs: Vec<f32> = (0..m * lhs_rs).map(|_| rnd()).collect();
            let rhs: Vec<f32> = (0..k * rhs_rs).map(|_| rnd()).collect();
            let init: Vec<f32> = (0..m * dst_rs).map(|_| rnd()).collect();
            let packed: Vec<f32> = (0..m)
                .flat_map(|i| lhs[i * lhs_rs..i * lhs_rs + k].iter().copied())
                .collect();
            let rounded = round_matrices(&packed, k);
            let (pairs, ld) = round_pairs(&rhs, rhs_rs, k, n);
            for &kernel in kernels {
                let run = |pre_lhs: bool, pre_rhs: bool| {
                    let mut dst = init.clone();
                    // SAFETY: each block has its shape and stride inside its vector;
                    // `rounded` has `m + PAD_ROWS` rows of `k` rounded up to 32, `pairs`
                    // the padded pair rows and columns; `kernel` is one this CPU runs.
                    unsafe {
                        x86::gemm(
                            kernel,
                            (m, n, k),
                            (dst.as_mut_ptr(), dst_rs, acc),
                            (lhs.as_ptr(), lhs_rs),
                            pre_lhs.then_some((rounded.as_ptr(), k.next_multiple_of(32))),
                            (rhs.as_ptr(), rhs_rs),
                            pre_rhs.then_some((pairs.as_ptr(), ld)),
                        );
                    }
                    dst
                };
                let dst = run(false, false);
                assert_eq!(dst, run(true, false), "{kernel:?}: pre-rounded lhs differs");
                assert_eq!(dst, run(false, true), "{kernel:?}: pre-rounded rhs differs");
                assert_eq!(
                    dst,
                    run(true, true),
                    "{kernel:?}: pre-rounded inputs differ"
                );
                for i in 0..m {
                    for j in 0..dst_rs {
                        let got = dst[i * dst_rs + j];
                        if j >= n {
                            assert_eq!(got, init[i * dst_rs + j], "wrote past column {n}");
                            continue;
                        }
                        let sum: f64 = (0..k)
                            .map(|p| {
                                bf16(lhs[i * lhs_rs + p]) as f64 * bf16(rhs[p * rhs_rs + j]) as f64
                            })
                            .sum();
                        let want = sum
                            + if acc {
                                init[i * dst_rs + j] as f64
                            } else {
                                0.0
                            };
                        let tol = 1e-5 * (k as f64).sqrt() + 1e-6;
                        assert!(
                            (got as f64 - want).abs() < tol,
                            "{kernel:?} {:?} at ({i}, {j}): {got} vs {want}",
                            (m, n, k, acc)
                        );
                    }
                }
            }
        }
    }
}
