//! `Synthesis` (`dec`): the StyleGAN2-style decoder that turns a latent and the identity's
//! encoder features into an image, warping those features level by level with `ToFlow`.
//!
//! EDTalk.pt's decoder also has one EEM block per level (`fineadainresblock`) that moves
//! the identity features toward an expression; EDTalk_lip_pose.pt's has none. The EEM
//! outputs depend only on (identity, expression), so they are a separate step
//! ([`Synthesis::apply_eem`]) whose result callers cache.

use candle_core::Tensor;

use crate::model::error::{ModelError, ModelResult};
use crate::model::layers::{ConstantInput, Eem, StyledConv, ToFlow, ToRgb};
use crate::model::weights::Weights;

/// One resolution level: upsampling conv, conv, flow/warp, RGB skip, optional EEM.
#[derive(Clone, Debug)]
struct Level {
    up: StyledConv,
    conv: StyledConv,
    to_rgb: ToRgb,
    to_flow: ToFlow,
    eem: Option<Eem>,
}

/// Intermediate tensors of one decoder level, for parity checks.
#[derive(Clone, Debug)]
pub struct LevelTap {
    /// The (EEM-processed) feature the level warps.
    pub feat: Tensor,
    /// `ToFlow`'s warped feature.
    pub out_warp: Tensor,
}

/// The decoder (`dec`).
#[derive(Clone, Debug)]
pub struct Synthesis {
    input: ConstantInput,
    conv1: StyledConv,
    levels: Vec<Level>,
    style_dim: usize,
}

impl Synthesis {
    /// Loads the decoder below `w` (`dec`). Levels, widths and the EEM blocks are found
    /// from the tensors present.
    pub fn load(w: &Weights, style_dim: usize) -> ModelResult<Self> {
        let n_levels = w.count("to_rgbs", "conv.0.weight");
        if n_levels == 0 {
            return Err(ModelError::MissingTensor {
                name: w.name("to_rgbs.0.conv.0.weight"),
                expected: "[3, ?, 1, 1]".into(),
            });
        }
        let has_eem = w.contains("fineadainresblock.0.conv2.weight");
        let input = ConstantInput::load(&w.pp("input"))?;
        let mut ch = input.channels();
        let conv1 = StyledConv::load(&w.pp("conv1"), Some(ch), Some(ch), style_dim, false)?;
        let mut levels = Vec::with_capacity(n_levels);
        for i in 0..n_levels {
            let up = StyledConv::load(
                &w.pp(format!("convs.{}", 2 * i)),
                Some(ch),
                None,
                style_dim,
                true,
            )?;
            let out = up.out_channels();
            let conv = StyledConv::load(
                &w.pp(format!("convs.{}", 2 * i + 1)),
                Some(out),
                Some(out),
                style_dim,
                false,
            )?;
            let to_rgb = ToRgb::load(&w.pp(format!("to_rgbs.{i}")), Some(out))?;
            let to_flow = ToFlow::load(&w.pp(format!("to_flows.{i}")), Some(out), style_dim)?;
            let eem = if has_eem {
                Some(Eem::load(
                    &w.pp(format!("fineadainresblock.{i}")),
                    out,
                    style_dim,
                )?)
            } else {
                None
            };
            levels.push(Level {
                up,
                conv,
                to_rgb,
                to_flow,
                eem,
            });
            ch = out;
        }
        Ok(Self {
            input,
            conv1,
            levels,
            style_dim,
        })
    }

    /// Number of levels (6 for 256 px).
    pub fn num_levels(&self) -> usize {
        self.levels.len()
    }

    /// Output image side.
    pub fn size(&self) -> usize {
        4 << self.levels.len()
    }

    /// Whether the decoder has the expression blocks.
    pub fn has_eem(&self) -> bool {
        self.levels.first().is_some_and(|l| l.eem.is_some())
    }

    /// Runs the EEM blocks on identity features (`feats`, one per level, batch B) with the
    /// expression latent `exp` `(B, 512)`. Without EEM blocks the features pass through.
    pub fn apply_eem(&self, feats: &[Tensor], exp: &Tensor) -> ModelResult<Vec<Tensor>> {
        self.check_feats(feats)?;
        self.levels
            .iter()
            .zip(feats)
            .map(|(l, f)| match &l.eem {
                Some(e) => e.forward(f, exp),
                None => Ok(f.clone()),
            })
            .collect()
    }

    fn check_feats(&self, feats: &[Tensor]) -> ModelResult<()> {
        if feats.len() < self.levels.len() {
            return Err(ModelError::InputShape {
                what: "decoder features".into(),
                expected: format!("{} feature maps", self.levels.len()),
                found: vec![feats.len()],
            });
        }
        Ok(())
    }

    /// Decodes latents `(B, style_dim)` with (EEM-processed) features, one `(B, C, H, W)`
    /// per level, to `(B, 3, S, S)` images. `taps` collects per-level intermediates.
    pub fn forward(
        &self,
        latent: &Tensor,
        feats: &[Tensor],
        mut taps: Option<&mut Vec<LevelTap>>,
    ) -> ModelResult<Tensor> {
        self.check_feats(feats)?;
        let (b, d) = latent.dims2()?;
        if d != self.style_dim {
            return Err(ModelError::InputShape {
                what: "latent".into(),
                expected: format!("[B, {}]", self.style_dim),
                found: vec![b, d],
            });
        }
        let mut out = self.conv1.forward(&self.input.forward(b)?, latent)?;
        let mut skip_flow: Option<Tensor> = None;
        let mut skip_rgb: Option<Tensor> = None;
        for (level, feat) in self.levels.iter().zip(feats) {
            out = level.up.forward(&out, latent)?;
            out = level.conv.forward(&out, latent)?;
            let flow = level
                .to_flow
                .forward(&out, latent, feat, skip_flow.as_ref())?;
            skip_rgb = Some(level.to_rgb.forward(&flow.warped, skip_rgb.as_ref())?);
            if let Some(t) = taps.as_deref_mut() {
                t.push(LevelTap {
                    feat: feat.clone(),
                    out_warp: flow.warped.clone(),
                });
            }
            out = flow.blended;
            skip_flow = Some(flow.flow);
        }
        skip_rgb.ok_or_else(|| ModelError::Layout("decoder without levels".into()))
    }
}
