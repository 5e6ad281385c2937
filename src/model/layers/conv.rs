//! Plain convolutions: `EqualConv2d`, `FusedLeakyReLU`, the encoder's `ConvLayer`, and
//! `nn.Conv2d`.

use candle_core::Tensor;

use super::im2col;
use super::upfirdn::Fir;
use crate::model::cpu::{self, Act, Epilogue, TapWeight};
use crate::model::error::ModelResult;
use crate::model::weights::Weights;

/// `sqrt(2)`, the gain StyleGAN applies after its leaky ReLUs.
pub const LRELU_GAIN: f64 = std::f64::consts::SQRT_2;
/// Negative slope of the fused leaky ReLU.
pub const LRELU_SLOPE: f64 = 0.2;

/// `leaky_relu(x, 0.2) * sqrt(2)`.
pub fn scaled_lrelu(x: &Tensor) -> ModelResult<Tensor> {
    let neg = x.affine(LRELU_SLOPE, 0.0)?;
    Ok(x.maximum(&neg)?.affine(LRELU_GAIN, 0.0)?)
}

/// `FusedLeakyReLU`: per-channel bias, leaky ReLU (0.2), gain `sqrt(2)`.
#[derive(Clone, Debug)]
pub struct FusedLeakyRelu {
    /// `(1, C, 1, 1)`.
    bias: Tensor,
}

impl FusedLeakyRelu {
    /// Loads `bias` of shape `(1, channels, 1, 1)`.
    pub fn load(w: &Weights, channels: usize) -> ModelResult<Self> {
        let bias = w.get("bias", &[Some(1), Some(channels), Some(1), Some(1)])?;
        Ok(Self {
            bias: w.finish(bias)?,
        })
    }

    /// The `(1, C, 1, 1)` bias.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// Applies bias and activation to an NCHW tensor.
    pub fn forward(&self, x: &Tensor) -> ModelResult<Tensor> {
        cpu::bias_act_or(x, &self.bias, Act::ScaledLrelu, || {
            scaled_lrelu(&x.broadcast_add(&self.bias)?)
        })
    }
}

/// A conv weight in the layout its device's kernels take: per-tap matrices for the f32 CPU
/// kernels ([`cpu`]), a flattened GEMM matrix for the tensor-op path ([`im2col`]).
/// [`cpu::tap_weight`] picks which when the weight is made.
#[derive(Clone, Debug)]
pub enum ConvWeight {
    /// `(k*k, O, C)` for the CPU kernels.
    Taps(TapWeight),
    /// `(O, C*k*k)`, or `(O*k*k, C)` for the transposed conv.
    Flat(Tensor),
}

/// How a convolution weight is used, which picks its layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvUse {
    /// Always stride 1 with padding `k / 2` ("same"): a 3x3 kernel runs as Winograd on the
    /// CPU.
    Same,
    /// Any stride and padding.
    Any,
    /// The stride-2 transposed conv of the upsampling layers.
    Transposed,
}

impl ConvUse {
    /// The use of a conv that always runs with `stride` and `padding`.
    pub fn of(k: usize, stride: usize, padding: usize) -> Self {
        if stride == 1 && padding == k / 2 {
            Self::Same
        } else {
            Self::Any
        }
    }
}

impl ConvWeight {
    /// `w` `(O, C, k, k)`, scaled, on the compute device and dtype, laid out for `usage`.
    pub fn new(w: &Tensor, usage: ConvUse) -> ModelResult<Self> {
        if let Some(taps) = cpu::tap_weight(w, usage == ConvUse::Same)? {
            return Ok(Self::Taps(taps));
        }
        Ok(Self::Flat(match usage {
            ConvUse::Transposed => im2col::transpose_weight(w)?,
            _ => im2col::flatten_weight(w)?,
        }))
    }

    /// `conv2d` with input scale and epilogue; the tensor path applies them as ops.
    pub fn conv2d(
        &self,
        x: &Tensor,
        k: usize,
        stride: usize,
        pad: usize,
        in_scale: Option<&Tensor>,
        epi: &Epilogue,
    ) -> ModelResult<Tensor> {
        match self {
            Self::Taps(t) => cpu::conv2d(x, t, (stride, stride), pad, in_scale, epi),
            Self::Flat(w) => {
                let (b, c, _, _) = x.dims4()?;
                let x = match in_scale {
                    Some(s) => x.broadcast_mul(&s.reshape((b, c, 1, 1))?)?,
                    None => x.clone(),
                };
                let y = im2col::conv2d(&x, w, k, stride, pad)?;
                epilogue_ops(y, epi)
            }
        }
    }
}

/// The [`Epilogue`] as tensor ops (the non-CPU path).
pub fn epilogue_ops(mut y: Tensor, epi: &Epilogue) -> ModelResult<Tensor> {
    let (b, o, _, _) = y.dims4()?;
    if let Some(s) = epi.out_scale {
        y = y.broadcast_mul(&s.reshape((b, o, 1, 1))?)?;
    }
    if let Some(bias) = epi.bias {
        y = y.broadcast_add(&bias.reshape((1, o, 1, 1))?)?;
    }
    if let Some(r) = epi.residual {
        y = (y + r)?;
    }
    Ok(match epi.act {
        Act::None => y,
        Act::Relu => y.relu()?,
        Act::ScaledLrelu => scaled_lrelu(&y)?,
    })
}

/// `EqualConv2d`: convolution whose weight is scaled by `1/sqrt(fan_in)` (done at load).
#[derive(Clone, Debug)]
pub struct EqualConv2d {
    /// The scaled weight.
    weight: ConvWeight,
    kernel: usize,
    in_ch: usize,
    out_ch: usize,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl EqualConv2d {
    /// Loads `weight` `(out, in, k, k)` (and `bias` `(out)` when `bias`).
    pub fn load(
        w: &Weights,
        in_ch: Option<usize>,
        out_ch: Option<usize>,
        k: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> ModelResult<Self> {
        let weight = w.get("weight", &[out_ch, in_ch, Some(k), Some(k)])?;
        let (out_ch, in_ch, _, _) = weight.dims4()?;
        let scale = 1.0 / ((in_ch * k * k) as f64).sqrt();
        let bias = if bias {
            Some(w.finish(w.get("bias", &[Some(out_ch)])?.reshape((1, out_ch, 1, 1))?)?)
        } else {
            None
        };
        Ok(Self {
            weight: ConvWeight::new(
                &w.finish((weight * scale)?)?,
                ConvUse::of(k, stride, padding),
            )?,
            kernel: k,
            in_ch,
            out_ch,
            bias,
            stride,
            padding,
        })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_ch
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_ch
    }

    /// Convolves an NCHW tensor.
    pub fn forward(&self, x: &Tensor) -> ModelResult<Tensor> {
        self.forward_act(x, None)
    }

    /// Convolves, then applies `act` (bias + leaky ReLU), fused into the conv's epilogue
    /// when this conv has no bias of its own (as in `ConvLayer`).
    pub fn forward_act(&self, x: &Tensor, act: Option<&FusedLeakyRelu>) -> ModelResult<Tensor> {
        let epi = match (act, &self.bias) {
            (Some(a), None) => Epilogue {
                bias: Some(a.bias()),
                act: Act::ScaledLrelu,
                ..Default::default()
            },
            (_, bias) => Epilogue {
                bias: bias.as_ref(),
                ..Default::default()
            },
        };
        let y = self
            .weight
            .conv2d(x, self.kernel, self.stride, self.padding, None, &epi)?;
        match (act, &self.bias) {
            (Some(a), Some(_)) => a.forward(&y),
            _ => Ok(y),
        }
    }
}

/// The encoder's `ConvLayer`: optional blur + stride-2 downsampling, `EqualConv2d`, and a
/// `FusedLeakyReLU` when activated (the conv then has no bias of its own).
#[derive(Clone, Debug)]
pub struct ConvLayer {
    blur: Option<Fir>,
    conv: EqualConv2d,
    act: Option<FusedLeakyRelu>,
}

impl ConvLayer {
    /// Loads the `nn.Sequential` below `w`: `0` conv, `1` activation, or with downsampling
    /// `0` blur (a fixed buffer, not read), `1` conv, `2` activation.
    pub fn load(
        w: &Weights,
        in_ch: Option<usize>,
        out_ch: Option<usize>,
        k: usize,
        downsample: bool,
        activate: bool,
    ) -> ModelResult<Self> {
        let (blur, idx, stride, padding) = if downsample {
            let p = (4 - 2) + (k - 1);
            (Some(Fir::blur(p.div_ceil(2), p / 2, 1.0)), 1, 2, 0)
        } else {
            (None, 0, 1, k / 2)
        };
        let conv = EqualConv2d::load(&w.pp(idx), in_ch, out_ch, k, stride, padding, false)?;
        let act = if activate {
            Some(FusedLeakyRelu::load(&w.pp(idx + 1), conv.out_channels())?)
        } else {
            None
        };
        Ok(Self { blur, conv, act })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.conv.out_channels()
    }

    /// Runs the layer.
    pub fn forward(&self, x: &Tensor) -> ModelResult<Tensor> {
        let x = match &self.blur {
            Some(f) => f.forward(x)?,
            None => x.clone(),
        };
        self.conv.forward_act(&x, self.act.as_ref())
    }
}

/// `nn.Conv2d` with bias, stride 1 (the EEM convolutions).
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: ConvWeight,
    kernel: usize,
    bias: Tensor,
    padding: usize,
}

impl Conv2d {
    /// Loads `weight` `(out, in, k, k)` and `bias` `(out)`.
    pub fn load(
        w: &Weights,
        in_ch: Option<usize>,
        out_ch: Option<usize>,
        k: usize,
        padding: usize,
    ) -> ModelResult<Self> {
        let weight = w.get("weight", &[out_ch, in_ch, Some(k), Some(k)])?;
        let out_ch = weight.dims()[0];
        let bias = w.get("bias", &[Some(out_ch)])?.reshape((1, out_ch, 1, 1))?;
        Ok(Self {
            weight: ConvWeight::new(&w.finish(weight)?, ConvUse::of(k, 1, padding))?,
            kernel: k,
            bias: w.finish(bias)?,
            padding,
        })
    }

    /// Convolves an NCHW tensor.
    pub fn forward(&self, x: &Tensor) -> ModelResult<Tensor> {
        let epi = Epilogue {
            bias: Some(&self.bias),
            ..Default::default()
        };
        self.weight
            .conv2d(x, self.kernel, 1, self.padding, None, &epi)
    }
}
