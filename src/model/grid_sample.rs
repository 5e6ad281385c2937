//! Bilinear `grid_sample` with zero padding and `align_corners = false`: the warp that
//! EDTalk's ToFlow applies to every feature map (PyTorch's `F.grid_sample` defaults).
//!
//! Two implementations with the same arithmetic:
//! * a CPU kernel (a candle [`CustomOp2`]) for f32/f64, which computes the four taps and
//!   weights of each output pixel once and reuses them for every channel, parallel over
//!   (batch, channel) planes;
//! * a generic path built from candle tensor ops (`floor`, `gather`, masks) that runs on
//!   every device and dtype (CUDA, Metal, f16/bf16).
//!
//! [`grid_sample`] picks the kernel on CPU for f32/f64 and the generic path otherwise.

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::model::cpu::send_ptr::SendPtr;

/// Samples `input` (N×C×H×W) at the normalised positions of `grid` (N×Ho×Wo×2, x then y,
/// both in [-1, 1]; outside is zero), bilinearly, with `align_corners = false`.
/// Returns N×C×Ho×Wo in `input`'s dtype.
pub fn grid_sample(input: &Tensor, grid: &Tensor) -> Result<Tensor> {
    check_shapes(input, grid)?;
    let kernel_dtype = matches!(input.dtype(), DType::F32 | DType::F64);
    if matches!(input.device(), Device::Cpu) && kernel_dtype {
        grid_sample_cpu(input, grid)
    } else {
        grid_sample_generic(input, grid)
    }
}

/// The CPU kernel (f32 or f64 input; the grid is converted to the input's dtype).
pub fn grid_sample_cpu(input: &Tensor, grid: &Tensor) -> Result<Tensor> {
    check_shapes(input, grid)?;
    if !matches!(input.device(), Device::Cpu) || !matches!(grid.device(), Device::Cpu) {
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

/// The device-generic path: tensor ops only, so it runs wherever candle runs. Coordinates
/// and weights are computed in f32 (f64 for f64 input) whatever the input's dtype.
pub fn grid_sample_generic(input: &Tensor, grid: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = check_shapes(input, grid)?;
    let (_, ho, wo, _) = grid.dims4()?;
    let work = if input.dtype() == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let grid = grid.to_dtype(work)?;
    let gx = grid.narrow(3, 0, 1)?.squeeze(3)?;
    let gy = grid.narrow(3, 1, 1)?.squeeze(3)?;
    // ((g + 1) * size - 1) / 2, in the same order as PyTorch's unnormalize.
    let ix = ((((gx + 1.0)? * w as f64)? - 1.0)? / 2.0)?;
    let iy = ((((gy + 1.0)? * h as f64)? - 1.0)? / 2.0)?;
    let x_nw = ix.floor()?;
    let y_nw = iy.floor()?;
    let x_se = (&x_nw + 1.0)?;
    let y_se = (&y_nw + 1.0)?;
    let w_nw = ((&x_se - &ix)? * (&y_se - &iy)?)?;
    let w_ne = ((&ix - &x_nw)? * (&y_se - &iy)?)?;
    let w_sw = ((&x_se - &ix)? * (&iy - &y_nw)?)?;
    let w_se = ((&ix - &x_nw)? * (&iy - &y_nw)?)?;

    let flat = input.reshape((n, c, h * w))?;
    let pixels = ho * wo;
    let mut out: Option<Tensor> = None;
    for (xs, ys, weight) in [
        (&x_nw, &y_nw, &w_nw),
        (&x_se, &y_nw, &w_ne),
        (&x_nw, &y_se, &w_sw),
        (&x_se, &y_se, &w_se),
    ] {
        let inside = xs
            .ge(0.0)?
            .mul(&xs.le((w - 1) as f64)?)?
            .mul(&ys.ge(0.0)?)?
            .mul(&ys.le((h - 1) as f64)?)?
            .to_dtype(work)?;
        let xi = xs.clamp(0.0, (w - 1) as f64)?;
        let yi = ys.clamp(0.0, (h - 1) as f64)?;
        let index = ((yi * w as f64)? + xi)?
            .to_dtype(DType::U32)?
            .reshape((n, 1, pixels))?
            .broadcast_as((n, c, pixels))?
            .contiguous()?;
        let taps = flat.gather(&index, 2)?.to_dtype(work)?;
        let weight = (weight * inside)?.reshape((n, 1, pixels))?;
        let term = taps.broadcast_mul(&weight)?;
        out = Some(match out {
            None => term,
            Some(acc) => (acc + term)?,
        });
    }
    let out = match out {
        Some(out) => out,
        None => bail!("grid_sample: no taps"),
    };
    out.reshape((n, c, ho, wo))?.to_dtype(input.dtype())
}

/// Validates ranks, the grid's trailing 2, batch sizes, dtypes and devices; returns N, C, H, W.
fn check_shapes(input: &Tensor, grid: &Tensor) -> Result<(usize, usize, usize, usize)> {
    let (n, c, h, w) = match input.dims() {
        &[n, c, h, w] => (n, c, h, w),
        dims => bail!("grid_sample: input must be N×C×H×W, found shape {dims:?}"),
    };
    match grid.dims() {
        &[gn, _, _, 2] if gn == n => {}
        &[gn, _, _, 2] => {
            bail!("grid_sample: input batch is {n} but grid batch is {gn}")
        }
        dims => bail!("grid_sample: grid must be N×Ho×Wo×2, found shape {dims:?}"),
    }
    if h == 0 || w == 0 {
        bail!("grid_sample: input has an empty spatial size {h}×{w}")
    }
    if !input.dtype().is_float() || !grid.dtype().is_float() {
        bail!(
            "grid_sample: input and grid must be floating point, found {:?} and {:?}",
            input.dtype(),
            grid.dtype()
        )
    }
    if !input.device().same_device(grid.device()) {
        bail!("grid_sample: input and grid are on different devices")
    }
    Ok((n, c, h, w))
}

/// The CPU kernel as a candle op; both operands contiguous and of the same dtype.
struct GridSampleCpu;

/// One output pixel's four neighbours in PyTorch's order (nw, ne, sw, se): the flat
/// offset of the nw corner in an H×W plane (the others are +1, +W, +W+1), the bilinear
/// weights, and which corners lie inside. Corners outside the input are skipped, so that
/// non-finite values there cannot leak in. Kept small: a block of these is re-read for
/// every channel.
#[derive(Clone, Copy)]
pub(crate) struct Taps<T> {
    pub(crate) nw: isize,
    pub(crate) weight: [T; 4],
    /// Bit k set: corner k is inside.
    pub(crate) inside: u8,
}
macro_rules! sample_impl {
    ($name:ident, $t:ty) => {
        impl Taps<$t> {
            /// The taps of normalised position (`gx`, `gy`) in a `w`×`h` plane.
            #[inline]
            pub(crate) fn new(gx: $t, gy: $t, w: usize, h: usize) -> Self {
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
                    // SAFETY: this block alone writes pixels p0..p0+len of its batch's
                    // planes, and `out` outlives the loop.
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
pub(crate) const BLOCK: usize = 1024;

/// Runs `f(batch, first_pixel, len)` in parallel over blocks of output pixels. Each block
/// is processed for every channel while its taps are in cache (the taps of a whole plane
/// are megabytes at 256 px).
pub(crate) fn for_blocks(n: usize, out_hw: usize, f: impl Fn(usize, usize, usize) + Sync) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::max_abs_diff;

    fn fixture(name: &str) -> Tensor {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/edtalk/ops_io.safetensors"
        );
        let all = candle_core::safetensors::load(path, &Device::Cpu).expect("ops_io fixture");
        all.get(name)
            .unwrap_or_else(|| panic!("ops_io has no {name}"))
            .to_dtype(DType::F32)
            .expect("to f32")
    }

    #[test]
    fn kernel_matches_pytorch() {
        let (feat, grid, expected) = (fixture("feat"), fixture("grid"), fixture("out"));
        let out = grid_sample_cpu(&feat, &grid).unwrap();
        assert!(max_abs_diff(&out, &expected) < 1e-5);
    }

    #[test]
    fn generic_matches_pytorch() {
        let (feat, grid, expected) = (fixture("feat"), fixture("grid"), fixture("out"));
        let out = grid_sample_generic(&feat, &grid).unwrap();
        assert!(max_abs_diff(&out, &expected) < 1e-5);
    }

    #[test]
    fn dispatch_matches_pytorch_and_transposed_input_is_fine() {
        let (feat, grid, expected) = (fixture("feat"), fixture("grid"), fixture("out"));
        // A non-contiguous view of the same values goes through `contiguous` first.
        let feat_t = feat
            .transpose(2, 3)
            .unwrap()
            .contiguous()
            .unwrap()
            .transpose(2, 3)
            .unwrap();
        assert!(!feat_t.is_contiguous());
        let out = grid_sample(&feat_t, &grid).unwrap();
        assert!(max_abs_diff(&out, &expected) < 1e-5);
    }

    #[test]
    fn kernel_and_generic_agree_on_random_data() {
        let dev = Device::Cpu;
        let feat = Tensor::randn(0f32, 1.0, (3, 7, 19, 23), &dev).unwrap();
        // Some positions outside [-1, 1] to exercise the zero padding.
        let grid = Tensor::rand(-1.3f32, 1.3, (3, 16, 21, 2), &dev).unwrap();
        let a = grid_sample_cpu(&feat, &grid).unwrap();
        let b = grid_sample_generic(&feat, &grid).unwrap();
        assert!(max_abs_diff(&a, &b) < 1e-5);
    }

    #[test]
    fn identity_grid_reproduces_the_input() {
        // With align_corners = false, pixel centres sit at (2i + 1) / size - 1.
        let dev = Device::Cpu;
        let (h, w) = (5usize, 6usize);
        let feat = Tensor::randn(0f32, 1.0, (1, 2, h, w), &dev).unwrap();
        let mut g = Vec::new();
        for y in 0..h {
            for x in 0..w {
                g.push((2 * x + 1) as f32 / w as f32 - 1.0);
                g.push((2 * y + 1) as f32 / h as f32 - 1.0);
            }
        }
        let grid = Tensor::from_vec(g, (1, h, w, 2), &dev).unwrap();
        let out = grid_sample(&feat, &grid).unwrap();
        assert!(max_abs_diff(&out, &feat) < 1e-6);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let dev = Device::Cpu;
        let feat = Tensor::zeros((1, 2, 4, 4), DType::F32, &dev).unwrap();
        let grid3 = Tensor::zeros((1, 4, 4, 3), DType::F32, &dev).unwrap();
        let err = grid_sample(&feat, &grid3).unwrap_err().to_string();
        assert!(err.contains("N×Ho×Wo×2"), "{err}");
        let grid_b = Tensor::zeros((2, 4, 4, 2), DType::F32, &dev).unwrap();
        let err = grid_sample(&feat, &grid_b).unwrap_err().to_string();
        assert!(err.contains("batch"), "{err}");
        let flat = Tensor::zeros((2, 4, 4), DType::F32, &dev).unwrap();
        let err = grid_sample(&flat, &grid_b).unwrap_err().to_string();
        assert!(err.contains("N×C×H×W"), "{err}");
    }
}
