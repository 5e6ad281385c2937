//! Fully connected layers: StyleGAN's equalised-learning-rate linear and plain `nn.Linear`.

use candle_core::{D, Tensor};

use crate::model::error::ModelResult;
use crate::model::weights::Weights;

/// `EqualLinear` (no activation, `lr_mul` 1, as every EDTalk instance uses): `x W^T s + b`
/// with `s = 1/sqrt(in_dim)`. The scaled, transposed weight is prepared at load.
#[derive(Clone, Debug)]
pub struct EqualLinear {
    /// `(in_dim, out_dim)`, already multiplied by the equalisation scale.
    weight_t: Tensor,
    bias: Tensor,
}

impl EqualLinear {
    /// Loads `weight` `(out, in)` and `bias` `(out)`; `None` sizes are read from the tensor.
    pub fn load(w: &Weights, in_dim: Option<usize>, out_dim: Option<usize>) -> ModelResult<Self> {
        let weight = w.get("weight", &[out_dim, in_dim])?;
        let (out_dim, in_dim) = weight.dims2()?;
        let bias = w.get("bias", &[Some(out_dim)])?;
        let scale = 1.0 / (in_dim as f64).sqrt();
        let weight_t = (weight * scale)?.t()?.contiguous()?;
        Ok(Self {
            weight_t: w.finish(weight_t)?,
            bias: w.finish(bias.unsqueeze(0)?)?,
        })
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.weight_t.dims()[0]
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.weight_t.dims()[1]
    }

    /// `(B, in) -> (B, out)`.
    pub fn forward(&self, x: &Tensor) -> ModelResult<Tensor> {
        Ok(x.matmul(&self.weight_t)?.broadcast_add(&self.bias)?)
    }
}

/// A stack of [`EqualLinear`] without activations in between (the official `nn.Sequential`
/// motion heads `fc`, `lip_fc`, `pose_fc`, `exp_fc`).
#[derive(Clone, Debug)]
pub struct EqualMlp {
    layers: Vec<EqualLinear>,
}

impl EqualMlp {
    /// Loads `prefix.0`, `prefix.1`, ... (`n` layers); the first takes `in_dim` inputs.
    pub fn load(w: &Weights, n: usize, in_dim: usize) -> ModelResult<Self> {
        let mut layers = Vec::with_capacity(n);
        let mut width = in_dim;
        for i in 0..n {
            let layer = EqualLinear::load(&w.pp(i), Some(width), None)?;
            width = layer.out_dim();
            layers.push(layer);
        }
        Ok(Self { layers })
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.layers.last().map_or(0, EqualLinear::out_dim)
    }

    /// Runs the stack.
    pub fn forward(&self, x: &Tensor) -> ModelResult<Tensor> {
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer.forward(&h)?;
        }
        Ok(h)
    }
}

/// Plain `nn.Linear`: `x W^T + b`.
#[derive(Clone, Debug)]
pub struct Linear {
    weight_t: Tensor,
    bias: Tensor,
}

impl Linear {
    /// Loads `weight` `(out, in)` and `bias` `(out)`.
    pub fn load(w: &Weights, in_dim: Option<usize>, out_dim: Option<usize>) -> ModelResult<Self> {
        let weight = w.get("weight", &[out_dim, in_dim])?;
        let out_dim = weight.dims()[0];
        let bias = w.get("bias", &[Some(out_dim)])?;
        Ok(Self {
            weight_t: w.finish(weight.t()?.contiguous()?)?,
            bias: w.finish(bias.unsqueeze(0)?)?,
        })
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.weight_t.dim(D::Minus1).unwrap_or(0)
    }

    /// `(B, in) -> (B, out)`.
    pub fn forward(&self, x: &Tensor) -> ModelResult<Tensor> {
        Ok(x.matmul(&self.weight_t)?.broadcast_add(&self.bias)?)
    }
}
