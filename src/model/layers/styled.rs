//! The style-modulated layers of the decoder: `ModulatedConv2d`, `StyledConv`, `ToRGB`,
//! `ToFlow` and `ConstantInput`.
//!
//! The official code folds the per-sample style into a per-sample weight and runs a
//! grouped convolution. Here the style scales the *input* channels instead and the
//! demodulation scales the output channels, which is the same linear map
//! (`(W * s) x = W (s * x)`) but lets a whole batch share one weight, one GEMM, and keeps
//! the weight preparation (scale, squared sums) at load time.

use candle_core::Tensor;

use super::conv::{ConvUse, ConvWeight, EqualConv2d, FusedLeakyRelu};
use super::im2col;
use super::linear::EqualLinear;
use super::upfirdn::Fir;
use crate::model::cpu::{self, Act, Epilogue};
use crate::model::error::{ModelError, ModelResult};
use crate::model::grid_sample::grid_sample;
use crate::model::weights::Weights;

/// `ModulatedConv2d` (no downsampling: EDTalk's decoder never downsamples).
#[derive(Clone, Debug)]
pub struct ModulatedConv2d {
    /// The scaled weight (transposed-conv layout for the upsampling path).
    weight: ConvWeight,
    out_ch: usize,
    /// `(in, out)`: sum over the kernel window of the squared scaled weight, so that the
    /// demodulation factor of a style `s` is `rsqrt(s^2 @ wsq + 1e-8)`.
    wsq: Option<Tensor>,
    modulation: EqualLinear,
    kernel: usize,
    up_blur: Option<Fir>,
}

impl ModulatedConv2d {
    /// Loads `weight` `(1, out, in, k, k)` and `modulation.*` below `w`.
    pub fn load(
        w: &Weights,
        in_ch: Option<usize>,
        out_ch: Option<usize>,
        k: usize,
        style_dim: usize,
        demodulate: bool,
        upsample: bool,
    ) -> ModelResult<Self> {
        let weight = w.get("weight", &[Some(1), out_ch, in_ch, Some(k), Some(k)])?;
        let weight = weight.squeeze(0)?;
        let (out_ch, in_ch, _, _) = weight.dims4()?;
        let weight = (weight * (1.0 / ((in_ch * k * k) as f64).sqrt()))?;
        let wsq = if demodulate {
            let s = weight.sqr()?.sum((2, 3))?.t()?.contiguous()?;
            Some(w.finish(s)?)
        } else {
            None
        };
        let modulation = EqualLinear::load(&w.pp("modulation"), Some(style_dim), Some(in_ch))?;
        let (weight, up_blur) = if upsample {
            if k != 3 {
                return Err(ModelError::TensorShape {
                    name: w.name("weight"),
                    expected: "a 3x3 kernel for the upsampling conv".into(),
                    found: vec![1, out_ch, in_ch, k, k],
                });
            }
            // Blur after the stride-2 transposed conv, pads ((p+1)/2 + 1, p/2 + 1) with
            // p = (4 - 2) - (k - 1) = 0; the GEMM path's output already carries the
            // trailing zero row/column of the second pad.
            let fir = Fir::blur(1, 0, 2.0);
            (
                ConvWeight::new(&w.finish(weight)?, ConvUse::Transposed)?,
                Some(fir),
            )
        } else {
            (ConvWeight::new(&w.finish(weight)?, ConvUse::Same)?, None)
        };
        Ok(Self {
            weight,
            out_ch,
            wsq,
            modulation,
            kernel: k,
            up_blur,
        })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_ch
    }

    /// The per-sample style `(B, in)` this layer derives from a latent `(B, style_dim)`.
    pub fn style(&self, latent: &Tensor) -> ModelResult<Tensor> {
        self.modulation.forward(latent)
    }

    /// Runs the convolution on `x` `(B, in, H, W)` with the style `(B, in)` from
    /// [`ModulatedConv2d::style`]. `bias_act` (a `FusedLeakyReLU`) and `bias` are applied
    /// after the demodulation (and after the blur of the upsampling path), fused into the
    /// convolution where the kernels allow.
    pub fn forward_styled(
        &self,
        x: &Tensor,
        style: &Tensor,
        bias_act: Option<&FusedLeakyRelu>,
        bias: Option<&Tensor>,
    ) -> ModelResult<Tensor> {
        let (b, c) = style.dims2()?;
        let demod = match &self.wsq {
            Some(wsq) => Some((style.sqr()?.matmul(wsq)? + 1e-8)?.sqrt()?.recip()?),
            None => None,
        };
        let epi = Epilogue {
            out_scale: demod.as_ref(),
            ..Default::default()
        };
        match (&self.weight, &self.up_blur) {
            (ConvWeight::Taps(t), Some(fir)) => {
                let y = cpu::conv_transpose3x3_s2(x, t, Some(style), demod.as_ref())?;
                let y = fir.forward(&y)?;
                finish(y, bias_act, bias)
            }
            (_, None) => {
                let epi = match (bias_act, bias) {
                    (Some(a), None) => Epilogue {
                        bias: Some(a.bias()),
                        act: Act::ScaledLrelu,
                        ..epi
                    },
                    (None, Some(bias)) => Epilogue {
                        bias: Some(bias),
                        ..epi
                    },
                    _ => epi,
                };
                let fused = epi.bias.is_some();
                let y =
                    self.weight
                        .conv2d(x, self.kernel, 1, self.kernel / 2, Some(style), &epi)?;
                if fused {
                    Ok(y)
                } else {
                    finish(y, bias_act, bias)
                }
            }
            (ConvWeight::Flat(w), Some(fir)) => {
                let xm = x.broadcast_mul(&style.reshape((b, c, 1, 1))?)?;
                let y = im2col::conv_transpose3x3_s2(&xm, w)?;
                let y = super::conv::epilogue_ops(y, &epi)?;
                finish(fir.forward(&y)?, bias_act, bias)
            }
        }
    }

    /// Modulation and convolution from a latent.
    pub fn forward(&self, x: &Tensor, latent: &Tensor) -> ModelResult<Tensor> {
        self.forward_styled(x, &self.style(latent)?, None, None)
    }
}

/// Applies what could not be fused: a `FusedLeakyReLU`, then a plain bias.
fn finish(
    y: Tensor,
    bias_act: Option<&FusedLeakyRelu>,
    bias: Option<&Tensor>,
) -> ModelResult<Tensor> {
    let y = match bias_act {
        Some(a) => a.forward(&y)?,
        None => y,
    };
    Ok(match bias {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// `StyledConv`: modulated 3x3 conv (optionally upsampling) + `FusedLeakyReLU`. The noise
/// injection is inert at inference (no noise is passed) and is not loaded.
#[derive(Clone, Debug)]
pub struct StyledConv {
    conv: ModulatedConv2d,
    activate: FusedLeakyRelu,
}

impl StyledConv {
    /// Loads `conv.*` and `activate.bias` below `w`.
    pub fn load(
        w: &Weights,
        in_ch: Option<usize>,
        out_ch: Option<usize>,
        style_dim: usize,
        upsample: bool,
    ) -> ModelResult<Self> {
        let conv =
            ModulatedConv2d::load(&w.pp("conv"), in_ch, out_ch, 3, style_dim, true, upsample)?;
        let activate = FusedLeakyRelu::load(&w.pp("activate"), conv.out_channels())?;
        Ok(Self { conv, activate })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.conv.out_channels()
    }

    /// Runs the layer for a latent `(B, style_dim)`.
    pub fn forward(&self, x: &Tensor, latent: &Tensor) -> ModelResult<Tensor> {
        let style = self.conv.style(latent)?;
        self.conv
            .forward_styled(x, &style, Some(&self.activate), None)
    }
}

/// `ToRGB`: 1x1 `EqualConv2d` to 3 channels, leaky ReLU with bias, another bias, plus the
/// upsampled skip from the level below. Not style-modulated in EDTalk.
#[derive(Clone, Debug)]
pub struct ToRgb {
    conv: EqualConv2d,
    act: FusedLeakyRelu,
    bias: Tensor,
    upsample: Fir,
}

impl ToRgb {
    /// Loads `conv.0.weight`, `conv.1.bias` and `bias` below `w`.
    pub fn load(w: &Weights, in_ch: Option<usize>) -> ModelResult<Self> {
        let conv = EqualConv2d::load(&w.pp("conv.0"), in_ch, Some(3), 1, 1, 0, false)?;
        let act = FusedLeakyRelu::load(&w.pp("conv.1"), 3)?;
        let bias = w.finish(w.get("bias", &[Some(1), Some(3), Some(1), Some(1)])?)?;
        Ok(Self {
            conv,
            act,
            bias,
            upsample: Fir::upsample2(),
        })
    }

    /// `x` `(B, in, H, W)`, `skip` `(B, 3, H/2, W/2)` -> `(B, 3, H, W)`.
    pub fn forward(&self, x: &Tensor, skip: Option<&Tensor>) -> ModelResult<Tensor> {
        let y = self.conv.forward_act(x, Some(&self.act))?;
        let y = y.broadcast_add(&self.bias)?;
        Ok(match skip {
            Some(s) => (y + self.upsample.forward(s)?)?,
            None => y,
        })
    }
}

/// What [`ToFlow::forward`] returns.
#[derive(Clone, Debug)]
pub struct FlowOutput {
    /// The encoder feature warped by the predicted flow, times the mask.
    pub warped: Tensor,
    /// `warped + x * (1 - mask)`, the decoder stream for the next level.
    pub blended: Tensor,
    /// The raw 3-channel flow/mask prediction, upsampled into the next level's.
    pub flow: Tensor,
}

/// `ToFlow`: a modulated 1x1 conv (no demodulation) predicting a 2-D offset (tanh) and a
/// mask (sigmoid); warps the encoder feature with `grid_sample` and blends.
#[derive(Clone, Debug)]
pub struct ToFlow {
    conv: ModulatedConv2d,
    bias: Tensor,
    upsample: Fir,
}

impl ToFlow {
    /// Loads `conv.*` and `bias` below `w`.
    pub fn load(w: &Weights, in_ch: Option<usize>, style_dim: usize) -> ModelResult<Self> {
        let conv =
            ModulatedConv2d::load(&w.pp("conv"), in_ch, Some(3), 1, style_dim, false, false)?;
        let bias = w.finish(w.get("bias", &[Some(1), Some(3), Some(1), Some(1)])?)?;
        Ok(Self {
            conv,
            bias,
            upsample: Fir::upsample2(),
        })
    }

    /// `x` `(B, C, H, W)` decoder stream, `feat` `(B, C, H, W)` encoder feature, `skip`
    /// the previous level's [`FlowOutput::flow`].
    pub fn forward(
        &self,
        x: &Tensor,
        latent: &Tensor,
        feat: &Tensor,
        skip: Option<&Tensor>,
    ) -> ModelResult<FlowOutput> {
        let (_, _, h, w) = x.dims4()?;
        let style = self.conv.style(latent)?;
        let mut out = self
            .conv
            .forward_styled(x, &style, None, Some(&self.bias))?;
        if let Some(s) = skip {
            out = (out + self.upsample.forward(s)?)?;
        }
        let (lin_x, lin_y) = identity_axes(h, w);
        let (warped, blended) = cpu::warp_blend_or(feat, x, &out, (&lin_x, &lin_y), || {
            let offset = out.narrow(1, 0, 2)?.tanh()?;
            let mask = candle_nn::ops::sigmoid(&out.narrow(1, 2, 1)?)?;
            let base = identity_grid(h, w, x)?;
            let grid = offset.permute((0, 2, 3, 1))?.broadcast_add(&base)?;
            let warped = grid_sample(feat, &grid)?.broadcast_mul(&mask)?;
            let keep = mask.affine(-1.0, 1.0)?;
            let blended = (&warped + x.broadcast_mul(&keep)?)?;
            Ok((warped, blended))
        })?;
        Ok(FlowOutput {
            warped,
            blended,
            flow: out,
        })
    }
}

/// The `(1, H, W, 2)` sampling grid of `np.meshgrid(linspace(-1, 1, H))`: x along the
/// width, y along the height (the official code uses `H` points for both axes).
fn identity_grid(h: usize, w: usize, like: &Tensor) -> ModelResult<Tensor> {
    let (lin_x, lin_y) = identity_axes(h, w);
    let mut data = Vec::with_capacity(h * w * 2);
    for &gy in &lin_y {
        for &gx in &lin_x {
            data.push(gx);
            data.push(gy);
        }
    }
    Ok(Tensor::from_vec(data, (1, h, w, 2), like.device())?.to_dtype(like.dtype())?)
}

/// The identity grid's x values (one per column) and y values (one per row).
fn identity_axes(h: usize, w: usize) -> (Vec<f32>, Vec<f32>) {
    let n = h;
    let lin: Vec<f32> = (0..n)
        .map(|i| {
            if n == 1 {
                -1.0
            } else {
                (-1.0 + 2.0 * i as f64 / (n - 1) as f64) as f32
            }
        })
        .collect();
    let lin_x = (0..w).map(|x| lin[x.min(n.saturating_sub(1))]).collect();
    (lin_x, lin)
}

/// `ConstantInput`: the learned `(1, C, 4, 4)` start of the decoder.
#[derive(Clone, Debug)]
pub struct ConstantInput {
    input: Tensor,
}

impl ConstantInput {
    /// Loads `input` `(1, C, S, S)`.
    pub fn load(w: &Weights) -> ModelResult<Self> {
        let input = w.get("input", &[Some(1), None, None, None])?;
        Ok(Self {
            input: w.finish(input)?,
        })
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.input.dims()[1]
    }

    /// The constant repeated `batch` times.
    pub fn forward(&self, batch: usize) -> ModelResult<Tensor> {
        let (_, c, h, w) = self.input.dims4()?;
        Ok(self.input.broadcast_as((batch, c, h, w))?.contiguous()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::max_abs_diff;
    use candle_core::{DType, Device};

    #[test]
    fn fused_warp_blend_matches_the_tensor_ops() {
        let dev = Device::Cpu;
        let (b, c, h, w) = (2, 5, 9, 9);
        let feat = Tensor::randn(0f32, 1.0, (b, c, h, w), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (b, c, h, w), &dev).unwrap();
        // Offsets large enough that some samples fall outside the map.
        let flow = (Tensor::randn(0f32, 1.0, (b, 3, h, w), &dev).unwrap() * 2.0).unwrap();
        let offset = flow.narrow(1, 0, 2).unwrap().tanh().unwrap();
        let mask = candle_nn::ops::sigmoid(&flow.narrow(1, 2, 1).unwrap()).unwrap();
        let grid = offset
            .permute((0, 2, 3, 1))
            .unwrap()
            .broadcast_add(&identity_grid(h, w, &x).unwrap())
            .unwrap();
        let warped = grid_sample(&feat, &grid)
            .unwrap()
            .broadcast_mul(&mask)
            .unwrap();
        let blended =
            (&warped + x.broadcast_mul(&mask.affine(-1.0, 1.0).unwrap()).unwrap()).unwrap();
        let (lin_x, lin_y) = identity_axes(h, w);
        let (fw, fb) = cpu::warp_blend(&feat, &x, &flow, &lin_x, &lin_y).unwrap();
        assert!(max_abs_diff(&fw, &warped) < 1e-6);
        assert!(max_abs_diff(&fb, &blended) < 1e-6);
        // Mismatched shapes are errors.
        let small = Tensor::zeros((b, c, h - 1, w), DType::F32, &dev).unwrap();
        assert!(cpu::warp_blend(&small, &x, &flow, &lin_x, &lin_y).is_err());
    }
}
