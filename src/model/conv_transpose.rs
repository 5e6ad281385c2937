//! Transposed 2-D convolution as one GEMM plus a col2im scatter, for the decoder's
//! upsampling convs.
//!
//! candle 0.11's CPU `conv_transpose2d` computes every output pixel with a dot product
//! over strided input, which made it half of the full-size decoder's time. Here the GEMM
//! `Wᵀ (Cout·K·K × Cin) · X (Cin × H·W)` runs in candle's matmul (gemm, multi-threaded), and
//! a small CPU kernel adds each column into the K×K window it belongs to. Other devices
//! use candle's own `conv_transpose2d`.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// `conv_transpose2d(x, w, padding 0, output padding 0, stride, dilation 1, groups 1)`:
/// `x` `(B, Cin, H, W)`, `w` `(Cin, Cout, K, K)` (candle's and PyTorch's layout for a
/// transposed conv), output `(B, Cout, (H−1)·stride + K, (W−1)·stride + K)`.
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, stride: usize) -> Result<Tensor> {
    let (b, cin, h, wd) = x.dims4()?;
    let (wcin, cout, kh, kw) = w.dims4()?;
    if wcin != cin {
        bail!("conv_transpose2d: input has {cin} channels, kernel expects {wcin}")
    }
    if stride == 0 {
        bail!("conv_transpose2d: stride must be positive")
    }
    let cpu_f32 = x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32;
    if !cpu_f32 {
        return x.conv_transpose2d(w, 0, 0, stride, 1);
    }
    // One GEMM for the whole batch: (Cout·K·K, Cin) @ (Cin, B·H·W) -> (Cout·K·K, B·H·W).
    let wt = w.reshape((cin, cout * kh * kw))?.t()?;
    let xs = if b == 1 {
        x.reshape((cin, h * wd))?
    } else {
        x.transpose(0, 1)?
            .contiguous()?
            .reshape((cin, b * h * wd))?
    };
    let cols = wt.matmul(&xs)?;
    cols.apply_op1_no_bwd(&Col2Im {
        batch: b,
        cout,
        kh,
        kw,
        h,
        w: wd,
        stride,
    })
}

/// Adds `(Cout·K·K, B·H·W)` columns into `(B, Cout, (H−1)s+K, (W−1)s+K)`.
struct Col2Im {
    batch: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    h: usize,
    w: usize,
    stride: usize,
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im-transposed-conv"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((o0, o1)) = l.contiguous_offsets() else {
            bail!("col2im: columns must be contiguous")
        };
        let cols = match s {
            CpuStorage::F32(v) => &v[o0..o1],
            _ => bail!("col2im: columns must be f32"),
        };
        let (rows, all_pix) = l.shape().dims2()?;
        let Self {
            batch: b,
            cout,
            kh,
            kw,
            h,
            w,
            stride,
        } = *self;
        let pix = h * w;
        if rows != cout * kh * kw || all_pix != b * pix {
            bail!("col2im: columns {rows}×{all_pix} do not fit {cout}×{kh}×{kw} over {b}×{h}×{w}")
        }
        let (oh, ow) = ((h - 1) * stride + kh, (w - 1) * stride + kw);
        let mut out = vec![0f32; b * cout * oh * ow];
        out.par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(plane, dst)| {
                let (bi, co) = (plane / cout, plane % cout);
                for ky in 0..kh {
                    for kx in 0..kw {
                        let row = (co * kh + ky) * kw + kx;
                        let src = &cols[row * all_pix + bi * pix..][..pix];
                        for y in 0..h {
                            let line = &src[y * w..(y + 1) * w];
                            let base = (y * stride + ky) * ow + kx;
                            if stride == 1 {
                                for (d, v) in dst[base..base + w].iter_mut().zip(line) {
                                    *d += v;
                                }
                            } else {
                                for (x, v) in line.iter().enumerate() {
                                    dst[base + x * stride] += v;
                                }
                            }
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((b, cout, oh, ow))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_candle_conv_transpose2d() {
        let dev = Device::Cpu;
        for (b, cin, cout, h, w, k, s) in [
            (2, 5, 3, 6, 7, 3, 2),
            (1, 4, 6, 5, 5, 3, 1),
            (1, 3, 2, 4, 3, 4, 2),
        ] {
            let x = Tensor::randn(0f32, 1.0, (b, cin, h, w), &dev).unwrap();
            let wt = Tensor::randn(0f32, 1.0, (cin, cout, k, k), &dev).unwrap();
            let ours = conv_transpose2d(&x, &wt, s).unwrap();
            let theirs = x.conv_transpose2d(&wt, 0, 0, s, 1).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let d = (ours - theirs)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-4, "differs by {d}");
        }
    }

    /// Timing of the decoder's largest upsampling conv, ours vs candle's; run with
    /// `--ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing_against_candle() {
        let dev = Device::Cpu;
        for (cin, cout, h) in [
            (512usize, 512usize, 16usize),
            (512, 256, 32),
            (128, 64, 128),
        ] {
            let x = Tensor::randn(0f32, 1.0, (1, cin, h, h), &dev).unwrap();
            let w = Tensor::randn(0f32, 1.0, (cin, cout, 3, 3), &dev).unwrap();
            let t = std::time::Instant::now();
            let a = conv_transpose2d(&x, &w, 2).unwrap();
            let ours = t.elapsed();
            let t = std::time::Instant::now();
            let b = x.conv_transpose2d(&w, 0, 0, 2, 1).unwrap();
            let theirs = t.elapsed();
            assert_eq!(a.dims(), b.dims());
            // The phase-interleave path of the model layers, for comparison.
            let wt = crate::model::layers::im2col::transpose_weight(&w.transpose(0, 1).unwrap())
                .unwrap();
            let t = std::time::Instant::now();
            let c = crate::model::layers::im2col::conv_transpose3x3_s2(&x, &wt).unwrap();
            let phases = t.elapsed();
            let c = c
                .narrow(2, 0, 2 * h + 1)
                .unwrap()
                .narrow(3, 0, 2 * h + 1)
                .unwrap();
            let d = (&a - &c)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            println!(
                "{cin}->{cout} at {h}px: col2im {ours:?}, phase interleave {phases:?}, candle {theirs:?} (max diff {d})"
            );
        }
    }

    #[test]
    fn channel_mismatch_is_an_error() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 3, 4, 4), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((2, 3, 3, 3), DType::F32, &dev).unwrap();
        assert!(
            conv_transpose2d(&x, &w, 2)
                .unwrap_err()
                .to_string()
                .contains("channels")
        );
    }
}
