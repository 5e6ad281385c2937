//! Runtime selection of the widest x86 vector extension for the crate's own CPU kernels.
//!
//! The crate is built for the baseline target (x86-64: SSE2), so that one binary runs on
//! every player's machine. Its hot loops (Winograd transforms, packing, FIR, warping,
//! epilogues) are written as plain element loops that LLVM vectorises; [`dispatch`] runs
//! such a loop inside a function compiled with AVX-512 or AVX2 enabled when the CPU has
//! them, so the same code gets 16- or 8-lane vectors instead of SSE2's 4. (The GEMMs get
//! this from the `gemm` crate's own runtime dispatch.) Results are unchanged: no FMA
//! contraction happens without explicit `mul_add`, so every lane rounds as before.

/// The vector extensions a hand-written kernel can be specialised for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// AVX-512F (16 f32 lanes, masked gathers).
    Avx512,
    /// AVX2 with FMA (8 f32 lanes, gathers).
    Avx2,
    /// Anything else: plain Rust.
    Base,
}

/// The widest extension this CPU has, for kernels that use intrinsics (gathers) that
/// [`dispatch`]'s auto-vectorised loops cannot express.
pub(crate) fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        match level() {
            3 => Isa::Avx512,
            2 => Isa::Avx2,
            _ => Isa::Base,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Isa::Base
    }
}

/// The widest vector extension this CPU supports, detected once.
#[cfg(target_arch = "x86_64")]
fn level() -> u8 {
    use std::sync::atomic::{AtomicU8, Ordering};
    static LEVEL: AtomicU8 = AtomicU8::new(0);
    match LEVEL.load(Ordering::Relaxed) {
        0 => {
            let l = if std::is_x86_feature_detected!("avx512f") {
                3
            } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            {
                2
            } else {
                1
            };
            LEVEL.store(l, Ordering::Relaxed);
            l
        }
        l => l,
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Runs `f` (inlined) in code compiled for the widest vector extension the CPU has. Mark
/// the kernels `f` calls `#[inline(always)]` so that they are compiled there too.
#[inline(always)]
pub(crate) fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        match level() {
            // SAFETY: `level()` is 3 only when the CPU reported AVX-512F, the one feature
            // `run_avx512` is compiled for.
            3 => unsafe { run_avx512(f) },
            // SAFETY: `level()` is 2 only when the CPU reported AVX2 and FMA, the features
            // `run_avx2` is compiled for.
            2 => unsafe { run_avx2(f) },
            _ => f(),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        f()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dispatch_runs_the_closure_once_with_its_result() {
        let mut calls = 0;
        let sum = super::dispatch(|| {
            calls += 1;
            (0..100).map(|i| i as f32 * 0.5).sum::<f32>()
        });
        assert_eq!((calls, sum), (1, 2475.0));
    }
}
