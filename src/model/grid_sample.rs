//! Bilinear `grid_sample` with zero padding and `align_corners = false`: the warp that
//! EDTalk's ToFlow applies to every feature map (PyTorch's `F.grid_sample` defaults).
//!
//! Two implementations with the same arithmetic:
//! * a CPU kernel for f32/f64 ([`grid_sample_cpu`], in [`crate::model::cpu`]), which
//!   computes the four taps and weights of each output pixel once and reuses them for
//!   every channel, parallel over (batch, channel) planes;
//! * a generic path built from candle tensor ops (`floor`, `gather`, masks) that runs on
//!   every device and dtype (CUDA, Metal, f16/bf16).
//!
//! [`grid_sample`] takes the kernel on the CPU for f32 and f64 and the generic path
//! otherwise (the choice is made in [`crate::model::cpu`], with the other kernels').

use candle_core::{DType, Result, Tensor, bail};

use crate::model::cpu;

/// Samples `input` (N×C×H×W) at the normalised positions of `grid` (N×Ho×Wo×2, x then y,
/// both in [-1, 1]; outside is zero), bilinearly, with `align_corners = false`.
/// Returns N×C×Ho×Wo in `input`'s dtype.
pub fn grid_sample(input: &Tensor, grid: &Tensor) -> Result<Tensor> {
    check_shapes(input, grid)?;
    cpu::grid_sample_or(input, grid, || grid_sample_generic(input, grid))
}

/// The CPU kernel (f32 or f64 input; the grid is converted to the input's dtype).
pub fn grid_sample_cpu(input: &Tensor, grid: &Tensor) -> Result<Tensor> {
    check_shapes(input, grid)?;
    cpu::grid_sample(input, grid)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::max_abs_diff;
    use candle_core::Device;

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
