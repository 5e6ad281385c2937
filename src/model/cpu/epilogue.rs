//! What the kernels do to each value they write: output scale (the demodulation), bias,
//! residual and activation, fused into the write-out of a tile; and the same bias and
//! activation as a pass of their own ([`bias_act`]).

use candle_core::Tensor;
use rayon::prelude::*;

use super::data::{cpu_f32, small_vec};
use super::simd;
use crate::model::error::{ModelError, ModelResult};

/// Activation applied by the epilogue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Act {
    /// Identity.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `leaky_relu(x, 0.2) * sqrt(2)`, as StyleGAN's `FusedLeakyReLU`.
    ScaledLrelu,
}

impl Act {
    /// The activation of one value.
    #[inline(always)]
    pub(super) fn apply(self, v: f32) -> f32 {
        match self {
            Act::None => v,
            Act::Relu => v.max(0.0),
            // Same rounding steps as the tensor path: (x * 0.2) * sqrt(2).
            Act::ScaledLrelu => v.max(v * 0.2) * std::f32::consts::SQRT_2,
        }
    }
}

/// What happens to each accumulated output value:
/// `act(acc * out_scale[b, o] + bias[o] + residual[b, o, y, x])`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// `(B, O)` per-sample output-channel scale (the demodulation).
    pub out_scale: Option<&'a Tensor>,
    /// `O` values (any shape).
    pub bias: Option<&'a Tensor>,
    /// A tensor of the output's shape added before the activation.
    pub residual: Option<&'a Tensor>,
    /// The activation.
    pub act: Act,
}

/// An [`Epilogue`] resolved for one call: its small tensors read into vectors, the
/// residual as a slice of the output's layout `(B, O, ...)`.
pub(super) struct EpiData<'a> {
    /// `(B, O)` output scale.
    scale: Option<Vec<f32>>,
    /// `O` biases.
    bias: Option<Vec<f32>>,
    /// Added before the activation, output-shaped.
    residual: Option<&'a [f32]>,
    act: Act,
    out_ch: usize,
}

impl<'a> EpiData<'a> {
    /// Resolves `epi` for a `(b, o, ...)` output of `out_len` values; `residual` is its
    /// residual's data, which must have `out_len` elements.
    pub(super) fn new(
        epi: &Epilogue,
        residual: Option<&'a [f32]>,
        (b, o): (usize, usize),
        out_len: usize,
    ) -> ModelResult<Self> {
        if let Some(r) = residual
            && r.len() != out_len
        {
            return Err(ModelError::InputShape {
                what: "residual".into(),
                expected: format!("{out_len} values"),
                found: vec![r.len()],
            });
        }
        Ok(Self {
            scale: small_vec(epi.out_scale, b * o, "output scale")?,
            bias: small_vec(epi.bias, o, "bias")?,
            residual,
            act: epi.act,
            out_ch: o,
        })
    }

    /// Output channels.
    #[inline(always)]
    pub(super) fn out_channels(&self) -> usize {
        self.out_ch
    }

    /// The output scale of sample `b`, channel `o` (1 without one).
    #[inline(always)]
    pub(super) fn scale(&self, b: usize, o: usize) -> f32 {
        self.scale.as_ref().map_or(1.0, |v| v[b * self.out_ch + o])
    }

    /// The bias of channel `o` (0 without one).
    #[inline(always)]
    pub(super) fn bias(&self, o: usize) -> f32 {
        self.bias.as_ref().map_or(0.0, |v| v[o])
    }

    /// Writes a contiguous run of one output channel, `dst[i] = act(src[i] * scale + bias
    /// + residual[at + i])`, where `at` is `dst`'s offset in the output.
    #[inline(always)]
    pub(super) fn write(&self, dst: &mut [f32], src: &[f32], scale: f32, bias: f32, at: usize) {
        match self.residual {
            None => epi_run(dst, src, scale, bias, self.act),
            Some(res) => {
                for ((d, &v), &rv) in dst.iter_mut().zip(src).zip(&res[at..]) {
                    *d = self.act.apply(v * scale + bias + rv);
                }
            }
        }
    }

    /// One output value, for the element at offset `at` of the output.
    #[inline(always)]
    pub(super) fn value(&self, v: f32, scale: f32, bias: f32, at: usize) -> f32 {
        let mut v = v * scale + bias;
        if let Some(res) = self.residual {
            v += res[at];
        }
        self.act.apply(v)
    }
}

/// `dst = act(src * scale + bias)`, one loop per activation so that each vectorises.
#[inline(always)]
fn epi_run(dst: &mut [f32], src: &[f32], scale: f32, bias: f32, act: Act) {
    match act {
        Act::None => dst
            .iter_mut()
            .zip(src)
            .for_each(|(d, &v)| *d = v * scale + bias),
        Act::Relu => dst
            .iter_mut()
            .zip(src)
            .for_each(|(d, &v)| *d = (v * scale + bias).max(0.0)),
        Act::ScaledLrelu => dst
            .iter_mut()
            .zip(src)
            .for_each(|(d, &v)| *d = Act::ScaledLrelu.apply(v * scale + bias)),
    }
}

/// `act(x + bias[c])` on an NCHW tensor in one pass (`FusedLeakyReLU` and friends).
pub fn bias_act(x: &Tensor, bias: &Tensor, act: Act) -> ModelResult<Tensor> {
    let x = x.contiguous()?;
    let (b, c, h, w) = x.dims4()?;
    let bias = small_vec(Some(bias), c, "bias")?.unwrap_or_default();
    let (xs, xl) = x.storage_and_layout();
    let xd = cpu_f32(&xs, xl, "activation input")?;
    let plane = h * w;
    let mut out = vec![0f32; xd.len()];
    if plane > 0 {
        out.par_chunks_mut(plane)
            .zip(xd.par_chunks(plane))
            .enumerate()
            .for_each(|(i, (dst, src))| {
                simd::dispatch(
                    #[inline(always)]
                    || epi_run(dst, src, 1.0, bias[i % c], act),
                )
            });
    }
    drop(xs);
    Ok(Tensor::from_vec(out, (b, c, h, w), x.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::{max_abs_diff, seeded_uniform};

    #[test]
    fn bias_act_matches_tensor_ops() {
        let x = seeded_uniform(&[2, 3, 5, 4], 11);
        let bias = seeded_uniform(&[1, 3, 1, 1], 12);
        let want = x.broadcast_add(&bias).unwrap().relu().unwrap();
        let got = bias_act(&x, &bias, Act::Relu).unwrap();
        assert!(max_abs_diff(&got, &want) < 1e-7);
    }
}
