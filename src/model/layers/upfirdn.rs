//! `upfirdn2d` for StyleGAN's separable FIR kernels: blur, and 2x upsampling with blur.
//!
//! The official kernel `[1, 3, 3, 1]` becomes the 4x4 outer product normalised to sum 1
//! (times `factor^2` when upsampling). Because it is an outer product, filtering is done
//! as two 1-D passes, which is exact up to float rounding and 2x cheaper.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

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
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            let taps: Vec<f32> = self.taps.iter().map(|&t| t as f32).collect();
            let op = FirCpu {
                taps,
                pad0: self.pad0,
                pad1: self.pad1,
                up: self.up,
            };
            return Ok(x.contiguous()?.apply_op1_no_bwd(&op)?);
        }
        self.forward_generic(x)
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

/// The CPU kernel: per (batch, channel) plane, a horizontal then a vertical pass, reading
/// the zero-stuffed, padded input virtually instead of materialising it.
struct FirCpu {
    taps: Vec<f32>,
    pad0: usize,
    pad1: usize,
    up: usize,
}

impl FirCpu {
    fn out_len(&self, n: usize) -> usize {
        n * self.up + self.pad0 + self.pad1 + 1 - self.taps.len()
    }

    /// Sample `i` of the upsampled, padded signal `get` of length `n`.
    #[inline]
    fn tap_index(&self, i: usize, n: usize) -> Option<usize> {
        let j = i.checked_sub(self.pad0)?;
        if j % self.up != 0 || j / self.up >= n {
            return None;
        }
        Some(j / self.up)
    }
}

impl CustomOp1 for FirCpu {
    fn name(&self) -> &'static str {
        "upfirdn2d-separable"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = s else {
            candle_core::bail!("upfirdn2d: the CPU kernel takes f32 only")
        };
        let (b, c, h, w) = l.shape().dims4()?;
        let Some((start, end)) = l.contiguous_offsets() else {
            candle_core::bail!("upfirdn2d: input must be contiguous")
        };
        let data = &data[start..end];
        let (ho, wo) = (self.out_len(h), self.out_len(w));
        let k = self.taps.len();
        // Which input row feeds (output row, tap); precomputed once.
        let row_src: Vec<Option<usize>> = (0..ho * k)
            .map(|i| self.tap_index(i / k + i % k, h))
            .collect();
        // The horizontal pass reads a zero-stuffed, padded copy of each row, so that its
        // inner loops are plain shifted multiply-adds (which vectorise).
        let (up, pad0) = (self.up, self.pad0);
        let padded_len = wo + k - 1;
        let mut out = vec![0f32; b * c * ho * wo];
        out.par_chunks_mut(ho * wo)
            .zip(data.par_chunks(h * w))
            .for_each(|(o, x)| {
                crate::model::cpu::simd::dispatch(
                    #[inline(always)]
                    || {
                        let mut tmp = vec![0f32; h * wo];
                        let mut padded = vec![0f32; padded_len];
                        for y in 0..h {
                            let row = &x[y * w..(y + 1) * w];
                            for (i, &v) in row.iter().enumerate() {
                                if let Some(p) = padded.get_mut(pad0 + i * up) {
                                    *p = v;
                                }
                            }
                            let t = &mut tmp[y * wo..(y + 1) * wo];
                            for (j, &tap) in self.taps.iter().enumerate() {
                                for (tv, &pv) in t.iter_mut().zip(&padded[j..j + wo]) {
                                    *tv += pv * tap;
                                }
                            }
                        }
                        for oy in 0..ho {
                            let orow = &mut o[oy * wo..(oy + 1) * wo];
                            for (j, tap) in self.taps.iter().enumerate() {
                                if let Some(src) = row_src[oy * k + j] {
                                    let trow = &tmp[src * wo..(src + 1) * wo];
                                    for (ov, tv) in orow.iter_mut().zip(trow) {
                                        *ov += tv * tap;
                                    }
                                }
                            }
                        }
                    },
                )
            });
        Ok((CpuStorage::F32(out), Shape::from((b, c, ho, wo))))
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
    use candle_core::Device;

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
