//! The separable FIR filter of `upfirdn2d` (blur, 2x upsampling with blur) as a candle
//! [`CustomOp1`] on f32: per (batch, channel) plane a horizontal then a vertical pass, with
//! the zero-stuffed, padded input read virtually instead of materialised.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::simd;
use crate::model::error::ModelResult;

/// Filters `x` `(B, C, H, W)` (f32 on the CPU) with the 2-D kernel `outer(taps, taps)`:
/// upsampled by `up` (zeros inserted), padded by `pads` (before, after) on both axes, then
/// correlated with `taps` (already flipped). The taps are rounded to f32 first.
pub(crate) fn fir(
    x: &Tensor,
    taps: &[f64],
    (pad0, pad1): (usize, usize),
    up: usize,
) -> ModelResult<Tensor> {
    let op = FirCpu {
        taps: taps.iter().map(|&t| t as f32).collect(),
        pad0,
        pad1,
        up,
    };
    Ok(x.contiguous()?.apply_op1_no_bwd(&op)?)
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
                simd::dispatch(
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
