//! The expression blocks of EDTalk's decoder: `ADAIN` (instance norm + affine from the
//! expression latent) and `EEM` (the `fineadainresblock` residual block).

use candle_core::{D, Tensor};

use super::conv::Conv2d;
use super::linear::Linear;
use crate::model::error::ModelResult;
use crate::model::weights::Weights;

/// `nn.InstanceNorm2d` default epsilon.
const INSTANCE_NORM_EPS: f64 = 1e-5;

/// Per-sample, per-channel normalisation over H and W with the biased variance.
pub fn instance_norm(x: &Tensor) -> ModelResult<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let flat = x.reshape((b, c, h * w))?;
    let mean = flat.mean_keepdim(D::Minus1)?;
    let centred = flat.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let inv = (var + INSTANCE_NORM_EPS)?.sqrt()?.recip()?;
    Ok(centred.broadcast_mul(&inv)?.reshape((b, c, h, w))?)
}

/// `ADAIN`: `instance_norm(x) * (1 + gamma(z)) + beta(z)` with a shared ReLU MLP on `z`.
#[derive(Clone, Debug)]
pub struct Adain {
    mlp_shared: Linear,
    mlp_gamma: Linear,
    mlp_beta: Linear,
}

impl Adain {
    /// Loads `mlp_shared.0`, `mlp_gamma`, `mlp_beta` below `w`.
    pub fn load(w: &Weights, channels: usize, feature_dim: usize) -> ModelResult<Self> {
        let mlp_shared = Linear::load(&w.pp("mlp_shared.0"), Some(feature_dim), None)?;
        let hidden = mlp_shared.out_dim();
        Ok(Self {
            mlp_shared,
            mlp_gamma: Linear::load(&w.pp("mlp_gamma"), Some(hidden), Some(channels))?,
            mlp_beta: Linear::load(&w.pp("mlp_beta"), Some(hidden), Some(channels))?,
        })
    }

    /// `x` `(B, C, H, W)`, `z` `(B, feature_dim)`.
    pub fn forward(&self, x: &Tensor, z: &Tensor) -> ModelResult<Tensor> {
        let b = z.dim(0)?;
        let actv = self.mlp_shared.forward(z)?.relu()?;
        let c = self.mlp_gamma.out_dim();
        let gamma = (self.mlp_gamma.forward(&actv)? + 1.0)?.reshape((b, c, 1, 1))?;
        let beta = self.mlp_beta.forward(&actv)?.reshape((b, c, 1, 1))?;
        Ok(instance_norm(x)?
            .broadcast_mul(&gamma)?
            .broadcast_add(&beta)?)
    }
}

/// `EEM` (`fineadainresblock.i`): `x + ADAIN2(conv2(x), z)`.
///
/// The official forward also computes `actvn(norm1(conv1(x), z))` but overwrites the
/// result before use, so `conv1`/`norm1` do not affect the output and are not loaded.
#[derive(Clone, Debug)]
pub struct Eem {
    conv2: Conv2d,
    norm2: Adain,
}

impl Eem {
    /// Loads `conv2.*` and `norm2.*` below `w`.
    pub fn load(w: &Weights, channels: usize, feature_dim: usize) -> ModelResult<Self> {
        Ok(Self {
            conv2: Conv2d::load(&w.pp("conv2"), Some(channels), Some(channels), 3, 1)?,
            norm2: Adain::load(&w.pp("norm2"), channels, feature_dim)?,
        })
    }

    /// `x` `(B, C, H, W)` encoder feature, `z` `(B, feature_dim)` expression latent.
    pub fn forward(&self, x: &Tensor, z: &Tensor) -> ModelResult<Tensor> {
        let dx = self.norm2.forward(&self.conv2.forward(x)?, z)?;
        Ok((dx + x)?)
    }
}
