//! Plain convolutions: `EqualConv2d`, `FusedLeakyReLU`, the encoder's `ConvLayer`, and
//! `nn.Conv2d`.

use candle_core::Tensor;

use super::im2col;
use super::upfirdn::Fir;
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
        scaled_lrelu(&x.broadcast_add(&self.bias)?)
    }
}

/// `EqualConv2d`: convolution whose weight is scaled by `1/sqrt(fan_in)` (done at load).
#[derive(Clone, Debug)]
pub struct EqualConv2d {
    /// `(out, in*k*k)`, scaled.
    weight: Tensor,
    kernel: usize,
    in_ch: usize,
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
            weight: w.finish(im2col::flatten_weight(&(weight * scale)?)?)?,
            kernel: k,
            in_ch,
            bias,
            stride,
            padding,
        })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_ch
    }

    /// Convolves an NCHW tensor.
    pub fn forward(&self, x: &Tensor) -> ModelResult<Tensor> {
        let y = im2col::conv2d(x, &self.weight, self.kernel, self.stride, self.padding)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
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
        let y = self.conv.forward(&x)?;
        match &self.act {
            Some(a) => a.forward(&y),
            None => Ok(y),
        }
    }
}

/// `nn.Conv2d` with bias, stride 1 (the EEM convolutions).
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `(out, in*k*k)`.
    weight: Tensor,
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
            weight: w.finish(im2col::flatten_weight(&weight)?)?,
            kernel: k,
            bias: w.finish(bias)?,
            padding,
        })
    }

    /// Convolves an NCHW tensor.
    pub fn forward(&self, x: &Tensor) -> ModelResult<Tensor> {
        Ok(
            im2col::conv2d(x, &self.weight, self.kernel, 1, self.padding)?
                .broadcast_add(&self.bias)?,
        )
    }
}
