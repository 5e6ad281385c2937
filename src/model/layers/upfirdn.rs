//! `upfirdn2d` for StyleGAN's separable FIR kernels: blur, and 2x upsampling with blur.
//!
//! The official kernel `[1, 3, 3, 1]` becomes the 4x4 outer product normalised to sum 1
//! (times `factor^2` when upsampling). Because it is an outer product, filtering is done
//! as two 1-D passes, which is exact up to float rounding and 2x cheaper.

use candle_core::Tensor;

use crate::model::cpu;
use crate::model::error::ModelResult;

/// The official blur taps before normalisation.
pub const BLUR_TAPS: [f32; 4] = [1.0, 3.0, 3.0, 1.0];

/// A separable FIR filter with its padding, as `Blur`/`Upsample` set them up.
#[derive(Clone, Debug)]
pub struct Fir {
    /// 1-D taps, already normalised and flipped (the 2-D kernel is their outer product).
    taps: Vec<f64>,
    pad0: usize,
    pad1: usize,
    /// 1 for a plain blur, 2 for `Upsample` (zeros inserted before filtering).
    up: usize,
}

impl Fir {
    /// `Blur(kernel, pad, upsample_factor)`: the 2-D kernel sums to `gain^2`.
    pub fn blur(pad0: usize, pad1: usize, gain: f64) -> Self {
        Self::with_up(pad0, pad1, gain, 1)
    }

    /// `Upsample(kernel, factor=2)` of the ToRGB/ToFlow skips: pads `(2, 1)` after zero
    /// insertion, kernel scaled by 4.
    pub fn upsample2() -> Self {
        let p = BLUR_TAPS.len() - 2;
        Self::with_up(p.div_ceil(2) + 1, p / 2, 2.0, 2)
    }

    fn with_up(pad0: usize, pad1: usize, gain: f64, up: usize) -> Self {
        let sum: f64 = BLUR_TAPS.iter().map(|&t| t as f64).sum();
        // upfirdn2d correlates with the flipped kernel.
        let taps = BLUR_TAPS
            .iter()
            .rev()
            .map(|&t| t as f64 / sum * gain)
            .collect();
        Self {
            taps,
            pad0,
            pad1,
            up,
        }
    }

    /// The 1-D taps (flipped, normalised).
    pub fn taps(&self) -> &[f64] {
        &self.taps
    }

    /// Padding before and after, per spatial axis.
    pub fn pads(&self) -> (usize, usize) {
        (self.pad0, self.pad1)
    }

    /// Output side for an input side `n`.
    pub fn out_len(&self, n: usize) -> usize {
        n * self.up + self.pad0 + self.pad1 + 1 - self.taps.len()
    }

    /// Filters an NCHW tensor (a fused kernel for f32 on the CPU, tensor ops elsewhere;
    /// both sum the taps in the same order).
    pub fn forward(&self, x: &Tensor) -> ModelResult<Tensor> {
        let pads = (self.pad0, self.pad1);
        cpu::fir_or(x, &self.taps, pads, self.up, || self.forward_generic(x))
    }

    /// The device-generic path.
    pub fn forward_generic(&self, x: &Tensor) -> ModelResult<Tensor> {
        let mut x = x.clone();
        if self.up == 2 {
            x = zero_stuff2(&x)?;
        }
        let x = self.pass(&x, 3)?;
        self.pass(&x, 2)
    }

    fn pass(&self, x: &Tensor, dim: usize) -> ModelResult<Tensor> {
        let x = x.pad_with_zeros(dim, self.pad0, self.pad1)?;
        let n = x.dim(dim)? + 1 - self.taps.len();
        let mut acc: Option<Tensor> = None;
        for (j, &t) in self.taps.iter().enumerate() {
            let term = x.narrow(dim, j, n)?.affine(t, 0.0)?;
            acc = Some(match acc {
                None => term,
                Some(a) => (a + term)?,
            });
        }
        Ok(acc.expect("a FIR filter has taps"))
    }
}

/// Inserts a zero after every sample along H and W: `(B, C, H, W) -> (B, C, 2H, 2W)`.
fn zero_stuff2(x: &Tensor) -> ModelResult<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let z = x.zeros_like()?;
    let x = Tensor::stack(&[x, &z], 4)?.reshape((b, c, h, 2 * w))?;
    let z = x.zeros_like()?;
    Ok(Tensor::stack(&[&x, &z], 3)?.reshape((b, c, 2 * h, 2 * w))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn cpu_kernel_matches_tensor_ops() {
        let x = Tensor::randn(0f32, 1.0, (2, 3, 9, 7), &Device::Cpu).unwrap();
        for fir in [
            Fir::blur(1, 0, 2.0),
            Fir::blur(2, 2, 1.0),
            Fir::blur(1, 1, 1.0),
            Fir::upsample2(),
        ] {
            let a = fir.forward(&x).unwrap();
            let b = fir.forward_generic(&x).unwrap();
            let d = crate::model::test_util::max_abs_diff(&a, &b);
            assert!(d < 1e-6, "{fir:?}: {d}");
        }
    }

    #[test]
    fn blur_of_constant_is_constant_inside() {
        // The normalised kernel sums to gain^2.
        let x = Tensor::ones((1, 1, 8, 8), DType::F32, &Device::Cpu).unwrap();
        let y = Fir::blur(2, 2, 1.0).forward(&x).unwrap();
        let v: Vec<Vec<f32>> = y.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        assert!((v[4][4] - 1.0).abs() < 1e-6);
    }
}
