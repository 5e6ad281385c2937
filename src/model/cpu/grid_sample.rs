//! The `grid_sample` kernel (bilinear, zero padding, `align_corners = false`) as a candle
//! [`CustomOp2`] for f32 and f64, and the per-pixel taps that the fused warp reuses.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::send_ptr::SendPtr;

/// Samples `input` `(N, C, H, W)` at `grid` `(N, Ho, Wo, 2)`, both on the CPU, `input` f32
/// or f64 (the grid is converted to its dtype). Shapes are checked by the caller.
pub(crate) fn grid_sample(input: &Tensor, grid: &Tensor) -> Result<Tensor> {
    if !input.device().is_cpu() || !grid.device().is_cpu() {
        bail!("grid_sample_cpu: input and grid must be on the CPU")
    }
    if !matches!(input.dtype(), DType::F32 | DType::F64) {
        bail!(
            "grid_sample_cpu: input dtype must be f32 or f64, found {:?}",
            input.dtype()
        )
    }
    let input = input.contiguous()?;
    let grid = grid.to_dtype(input.dtype())?.contiguous()?;
    input.apply_op2_no_bwd(&grid, &GridSampleCpu)
}

/// The CPU kernel as a candle op; both operands contiguous and of the same dtype.
struct GridSampleCpu;

/// One output pixel's four neighbours in PyTorch's order (nw, ne, sw, se): the flat
/// offset of the nw corner in an H×W plane (the others are +1, +W, +W+1), the bilinear
/// weights, and which corners lie inside. Corners outside the input are skipped, so that
/// non-finite values there cannot leak in. Kept small: a block of these is re-read for
/// every channel.
#[derive(Clone, Copy)]
pub(super) struct Taps<T> {
    pub(super) nw: isize,
    pub(super) weight: [T; 4],
    /// Bit k set: corner k is inside.
    pub(super) inside: u8,
}
macro_rules! sample_impl {
    ($name:ident, $t:ty) => {
        impl Taps<$t> {
            /// The taps of normalised position (`gx`, `gy`) in a `w`×`h` plane.
            #[inline]
            pub(super) fn new(gx: $t, gy: $t, w: usize, h: usize) -> Self {
                let (wf, hf) = (w as $t, h as $t);
                let ix = ((gx + 1.0) * wf - 1.0) / 2.0;
                let iy = ((gy + 1.0) * hf - 1.0) / 2.0;
                let x0 = ix.floor();
                let y0 = iy.floor();
                let (x1, y1) = (x0 + 1.0, y0 + 1.0);
                let weight = [
                    (x1 - ix) * (y1 - iy),
                    (ix - x0) * (y1 - iy),
                    (x1 - ix) * (iy - y0),
                    (ix - x0) * (iy - y0),
                ];
                let corners = [(x0, y0), (x1, y0), (x0, y1), (x1, y1)];
                let mut inside = 0u8;
                for (k, &(cx, cy)) in corners.iter().enumerate() {
                    // Also rejects NaN coordinates.
                    if cx >= 0.0 && cx <= wf - 1.0 && cy >= 0.0 && cy <= hf - 1.0 {
                        inside |= 1 << k;
                    }
                }
                // Only read when some corner is inside, so x0, y0 are in [-1, size).
                let nw = if inside != 0 {
                    y0 as isize * w as isize + x0 as isize
                } else {
                    0
                };
                Taps { nw, weight, inside }
            }

            /// The bilinear sample of plane `src` (row length `w`).
            #[inline(always)]
            fn sample(&self, src: &[$t], w: usize) -> $t {
                let mut acc: $t = 0.0;
                if self.inside == 0b1111 {
                    let o = self.nw as usize;
                    acc += src[o] * self.weight[0];
                    acc += src[o + 1] * self.weight[1];
                    acc += src[o + w] * self.weight[2];
                    acc += src[o + w + 1] * self.weight[3];
                } else {
                    let corner = [0, 1, w as isize, w as isize + 1];
                    for k in 0..4 {
                        if self.inside & (1 << k) != 0 {
                            acc += src[(self.nw + corner[k]) as usize] * self.weight[k];
                        }
                    }
                }
                acc
            }
        }

        /// Samples every (batch, channel) plane; `x` is N×C×H×W, `g` N×Ho×Wo×2, contiguous.
        fn $name(x: &[$t], g: &[$t], dims: (usize, usize, usize, usize), out_hw: usize) -> Vec<$t> {
            let (n, c, h, w) = dims;
            let taps: Vec<Taps<$t>> = g
                .chunks_exact(2)
                .map(|xy| Taps::<$t>::new(xy[0], xy[1], w, h))
                .collect();
            let plane = h * w;
            let mut out = vec![0.0 as $t; n * c * out_hw];
            if out_hw == 0 {
                return out;
            }
            let dst = SendPtr(out.as_mut_ptr());
            for_blocks(n, out_hw, |batch, p0, len| {
                let taps = &taps[batch * out_hw + p0..][..len];
                for ch in 0..c {
                    let index = batch * c + ch;
                    let src = &x[index * plane..(index + 1) * plane];
                    // SAFETY: `index * out_hw + p0 + len <= n * c * out_hw`, the length of
                    // `out`, which outlives the parallel loop; this block alone writes pixels
                    // p0..p0+len of its batch's planes (blocks split the pixels, this loop the
                    // channels), so no other job touches this slice.
                    let d = unsafe {
                        std::slice::from_raw_parts_mut(dst.get().add(index * out_hw + p0), len)
                    };
                    for (d, t) in d.iter_mut().zip(taps) {
                        *d = t.sample(src, w);
                    }
                }
            });
            out
        }
    };
}

sample_impl!(sample_f32, f32);
sample_impl!(sample_f64, f64);

/// Output pixels per parallel job (see [`for_blocks`]).
pub(super) const BLOCK: usize = 1024;

/// Runs `f(batch, first_pixel, len)` in parallel over blocks of output pixels. Each block
/// is processed for every channel while its taps are in cache (the taps of a whole plane
/// are megabytes at 256 px).
pub(super) fn for_blocks(n: usize, out_hw: usize, f: impl Fn(usize, usize, usize) + Sync) {
    let blocks = out_hw.div_ceil(BLOCK);
    (0..n * blocks).into_par_iter().for_each(|job| {
        let (batch, blk) = (job / blocks, job % blocks);
        let p0 = blk * BLOCK;
        f(batch, p0, BLOCK.min(out_hw - p0));
    });
}

impl CustomOp2 for GridSampleCpu {
    fn name(&self) -> &'static str {
        "grid-sample-bilinear-zeros"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = l1.shape().dims4()?;
        let (_, ho, wo, _) = l2.shape().dims4()?;
        let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            bail!("grid_sample kernel: operands must be contiguous")
        };
        let shape = Shape::from((dims.0, dims.1, ho, wo));
        let storage = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => {
                CpuStorage::F32(sample_f32(&x[a0..a1], &g[b0..b1], dims, ho * wo))
            }
            (CpuStorage::F64(x), CpuStorage::F64(g)) => {
                CpuStorage::F64(sample_f64(&x[a0..a1], &g[b0..b1], dims, ho * wo))
            }
            _ => bail!("grid_sample kernel: operands must both be f32 or both f64"),
        };
        Ok((storage, shape))
    }
}
