//! [`Precision`]: the arithmetic the CPU convolutions use, chosen per call by the model
//! that runs them ([`with_precision`]).

use std::cell::Cell;

/// The arithmetic of the CPU convolutions' products.
///
/// `F32` is the default and the reference: it is what the parity tests check against the
/// official PyTorch code. `Bf16` rounds each GEMM's two inputs to bfloat16 (8 bits of
/// mantissa) and sums the products in f32, on Intel AMX tiles, or with AVX-512 BF16 where
/// there is no AMX (Zen 4 and later); where the CPU has neither it falls back to `F32`
/// ([`Precision::effective`]). Only the convolutions'
/// GEMMs change: packing, Winograd transforms, epilogues, blurs and warps stay f32.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "plugin", derive(bevy::reflect::Reflect))]
pub enum Precision {
    /// f32 products: the reference.
    #[default]
    F32,
    /// bf16 products with f32 sums (Intel AMX-BF16 or AVX-512 BF16); about 3 significant
    /// digits per product (see the README for the measured error).
    Bf16,
}

impl Precision {
    /// What actually runs on this machine: `Bf16` only where a bf16 GEMM is available.
    pub fn effective(self) -> Self {
        match self {
            Precision::Bf16 if super::amx::available() => Precision::Bf16,
            _ => Precision::F32,
        }
    }

    /// The setting's name, as the CLI and the bench print it (`"f32"`, `"bf16"`).
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!(
                "unknown precision {other:?} (expected f32 or bf16)"
            )),
        }
    }
}

thread_local! {
    /// The precision of the convolutions started on this thread.
    static CURRENT: Cell<Precision> = const { Cell::new(Precision::F32) };
}

/// Runs `f` with the convolutions it starts on this thread using `precision` (its
/// [`effective`](Precision::effective) value), then restores the previous one, also when
/// `f` panics. A convolution reads it once, when it starts, and hands it to its workers.
pub fn with_precision<R>(precision: Precision, f: impl FnOnce() -> R) -> R {
    struct Restore(Precision);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(precision.effective())));
    f()
}

/// The precision for a convolution starting on this thread now.
pub(crate) fn current() -> Precision {
    CURRENT.with(|c| c.get())
}
