//! `EncoderApp`: the appearance encoder shared by identity and driving images.
//!
//! A 1x1 `ConvLayer`, one residual downsampling block per octave down to 4x4, and a 4x4
//! `EqualConv2d` to the latent `wa`. Besides `wa` it returns the intermediate feature
//! maps from 8 px upwards, which the decoder warps.

use candle_core::Tensor;

use crate::model::error::{ModelError, ModelResult};
use crate::model::layers::{ConvLayer, EqualConv2d};
use crate::model::weights::Weights;

/// `ResBlock`: two 3x3 convs (the second downsampling) plus a 1x1 downsampling skip,
/// summed and divided by `sqrt(2)`.
#[derive(Clone, Debug)]
pub struct ResBlock {
    conv1: ConvLayer,
    conv2: ConvLayer,
    skip: ConvLayer,
}

impl ResBlock {
    /// Loads `conv1`, `conv2`, `skip` below `w`.
    pub fn load(w: &Weights, in_ch: usize) -> ModelResult<Self> {
        let conv1 = ConvLayer::load(&w.pp("conv1"), Some(in_ch), Some(in_ch), 3, false, true)?;
        let conv2 = ConvLayer::load(&w.pp("conv2"), Some(in_ch), None, 3, true, true)?;
        let out = conv2.out_channels();
        let skip = ConvLayer::load(&w.pp("skip"), Some(in_ch), Some(out), 1, true, false)?;
        Ok(Self { conv1, conv2, skip })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.conv2.out_channels()
    }

    /// `(B, C, H, W) -> (B, C', H/2, W/2)`.
    pub fn forward(&self, x: &Tensor) -> ModelResult<Tensor> {
        let out = self.conv2.forward(&self.conv1.forward(x)?)?;
        let skip = self.skip.forward(x)?;
        Ok(((out + skip)? * std::f64::consts::FRAC_1_SQRT_2)?)
    }
}

/// What the encoder produces for a batch of images.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// `(B, 512)` appearance latent.
    pub wa: Tensor,
    /// Feature maps from 8 px up to the image size (`res[::-1][2:]` of the official code).
    pub feats: Vec<Tensor>,
}

/// `EncoderApp` (`enc.net_app`).
#[derive(Clone, Debug)]
pub struct EncoderApp {
    stem: ConvLayer,
    blocks: Vec<ResBlock>,
    out: EqualConv2d,
    size: usize,
}

impl EncoderApp {
    /// Loads `convs.*` below `w` (`enc.net_app`). The number of blocks, hence the image
    /// size, and all widths are read from the tensors.
    pub fn load(w: &Weights, style_dim: usize) -> ModelResult<Self> {
        let w = w.pp("convs");
        // convs.0 is the stem; blocks are convs.1..=n; the last conv follows them.
        let n_blocks = (1..)
            .take_while(|i| w.contains(&format!("{i}.conv1.0.weight")))
            .count();
        if n_blocks < 2 {
            return Err(ModelError::Layout(format!(
                "enc.net_app.convs has {n_blocks} residual blocks, expected at least 2"
            )));
        }
        let stem = ConvLayer::load(&w.pp(0), Some(3), None, 1, false, true)?;
        let mut blocks = Vec::with_capacity(n_blocks);
        let mut ch = stem.out_channels();
        for i in 1..=n_blocks {
            let b = ResBlock::load(&w.pp(i), ch)?;
            ch = b.out_channels();
            blocks.push(b);
        }
        let out = EqualConv2d::load(
            &w.pp(n_blocks + 1),
            Some(ch),
            Some(style_dim),
            4,
            1,
            0,
            false,
        )?;
        Ok(Self {
            stem,
            blocks,
            out,
            size: 4 << n_blocks,
        })
    }

    /// Input image side in pixels.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Encodes `(B, 3, S, S)` images in `[-1, 1]`.
    pub fn forward(&self, x: &Tensor) -> ModelResult<Encoded> {
        let dims = x.dims();
        if dims.len() != 4 || dims[1] != 3 || dims[2] != self.size || dims[3] != self.size {
            return Err(ModelError::InputShape {
                what: "image".into(),
                expected: format!("[B, 3, {0}, {0}]", self.size),
                found: dims.to_vec(),
            });
        }
        let mut outs = Vec::with_capacity(self.blocks.len() + 1);
        let mut h = self.stem.forward(x)?;
        outs.push(h.clone());
        for b in &self.blocks {
            h = b.forward(&h)?;
            outs.push(h.clone());
        }
        let wa = self.out.forward(&h)?.flatten_from(1)?;
        // Drop the 4x4 map, keep 8 px and up, smallest first.
        outs.pop();
        outs.reverse();
        Ok(Encoded { wa, feats: outs })
    }
}
