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
    /// or `(1, C, H, W)` (shared by the batch) per level, to `(B, 3, S, S)` images. `taps`
    /// collects per-level intermediates.
    pub fn forward(
        &self,
        latent: &Tensor,
        feats: &[Tensor],
        taps: Option<&mut Vec<LevelTap>>,
    ) -> ModelResult<Tensor> {
        self.check_feats(feats)?;
        self.run(latent, Feats::Batch(feats), taps)
    }

    /// [`Synthesis::forward`] for a batch of different identities: `items[k]` holds image
    /// k's features, batch 1, one per level. The wide levels run image by image on these
    /// directly, so the batch's features are never concatenated there.
    pub fn forward_items(&self, latent: &Tensor, items: &[&[Tensor]]) -> ModelResult<Tensor> {
        let b = latent.dim(0)?;
        if items.len() != b {
            return Err(ModelError::InputShape {
                what: "decoder feature sets".into(),
                expected: format!("one per latent row ({b})"),
                found: vec![items.len()],
            });
        }
        for f in items {
            self.check_feats(f)?;
        }
        self.run(latent, Feats::Items(items), None)
    }

    fn run(
        &self,
        latent: &Tensor,
        feats: Feats,
        mut taps: Option<&mut Vec<LevelTap>>,
    ) -> ModelResult<Tensor> {
        let (b, d) = latent.dims2()?;
        if d != self.style_dim {
            return Err(ModelError::InputShape {
                what: "latent".into(),
                expected: format!("[B, {}]", self.style_dim),
                found: vec![b, d],
            });
        }
        let n = self.levels.len();
        let mut stream = Stream {
            out: self.conv1.forward(&self.input.forward(b)?, latent)?,
            skip_flow: None,
            skip_rgb: None,
        };
        // Batched up to the first level wide enough to run per image (all of them when
        // taps are collected, so that they stay in level order).
        let split = match taps {
            Some(_) => n,
            None if b == 1 => n,
            None => (0..n)
                .find(|&i| self.side(i) >= PER_IMAGE_SIDE)
                .unwrap_or(n),
        };
        for i in 0..split {
            let feat = feats.batched(i, b)?;
            self.level(i, &mut stream, latent, &feat, taps.as_deref_mut())?;
        }
        if split == n {
            return stream
                .skip_rgb
                .ok_or_else(|| ModelError::Layout("decoder without levels".into()));
        }
        let mut images = Vec::with_capacity(b);
        for item in 0..b {
            let one = |t: &Tensor| t.narrow(0, item, 1);
            let mut s = Stream {
                out: one(&stream.out)?,
                skip_flow: stream.skip_flow.as_ref().map(one).transpose()?,
                skip_rgb: stream.skip_rgb.as_ref().map(one).transpose()?,
            };
            let latent = one(latent)?;
            for i in split..n {
                self.level(i, &mut s, &latent, &feats.item(i, item)?, None)?;
            }
            images.push(
                s.skip_rgb
                    .ok_or_else(|| ModelError::Layout("decoder without levels".into()))?,
            );
        }
        Ok(Tensor::cat(&images, 0)?)
    }

    /// Side of level `i`'s feature maps (8 px for the first).
    fn side(&self, i: usize) -> usize {
        8 << i
    }

    /// Runs level `i` on `s`: upsampling conv, conv, flow/warp, RGB skip.
    fn level(
        &self,
        i: usize,
        s: &mut Stream,
        latent: &Tensor,
        feat: &Tensor,
        taps: Option<&mut Vec<LevelTap>>,
    ) -> ModelResult<()> {
        let level = &self.levels[i];
        let out = level.up.forward(&s.out, latent)?;
        let out = level.conv.forward(&out, latent)?;
        let flow = level
            .to_flow
            .forward(&out, latent, feat, s.skip_flow.as_ref())?;
        s.skip_rgb = Some(level.to_rgb.forward(&flow.warped, s.skip_rgb.as_ref())?);
        if let Some(t) = taps {
            t.push(LevelTap {
                feat: feat.clone(),
                out_warp: flow.warped.clone(),
            });
        }
        s.out = flow.blended;
        s.skip_flow = Some(flow.flow);
        Ok(())
    }
}

/// From this side up, a batch runs one image at a time: one image's maps already give the
/// convolutions' GEMMs tens of thousands of columns, so batching gains nothing there, and
/// a batch's maps (64 MB and more at 256 px) would be fresh pages from the OS every frame.
const PER_IMAGE_SIDE: usize = 128;

/// Where a decode's per-level features come from.
#[derive(Clone, Copy)]
enum Feats<'a> {
    /// One tensor per level, batch B or 1 (shared).
    Batch(&'a [Tensor]),
    /// Per image, one batch-1 tensor per level.
    Items(&'a [&'a [Tensor]]),
}

impl Feats<'_> {
    /// Level `i`'s features for the whole batch of `b`.
    fn batched(&self, i: usize, b: usize) -> ModelResult<Tensor> {
        match self {
            Feats::Batch(f) => broadcast_batch(&f[i], b),
            Feats::Items(items) => {
                let level: Vec<&Tensor> = items.iter().map(|f| &f[i]).collect();
                Ok(Tensor::cat(&level, 0)?)
            }
        }
    }

    /// Level `i`'s features for image `k`.
    fn item(&self, i: usize, k: usize) -> ModelResult<Tensor> {
        Ok(match self {
            Feats::Batch(f) if f[i].dim(0)? == 1 => f[i].clone(),
            Feats::Batch(f) => f[i].narrow(0, k, 1)?,
            Feats::Items(items) => items[k][i].clone(),
        })
    }
}

/// `t` with batch `b`: itself, or its single item repeated.
pub(crate) fn broadcast_batch(t: &Tensor, b: usize) -> ModelResult<Tensor> {
    let d = t.dims();
    if d[0] == b {
        return Ok(t.clone());
    }
    if d[0] != 1 {
        return Err(ModelError::InputShape {
            what: "batch".into(),
            expected: format!("batch 1 or {b}"),
            found: d.to_vec(),
        });
    }
    let mut shape = d.to_vec();
    shape[0] = b;
    Ok(t.broadcast_as(shape)?.contiguous()?)
}

/// What flows from one decoder level to the next.
struct Stream {
    /// The feature stream (`blended` of the previous level).
    out: Tensor,
    /// The previous level's flow and RGB image.
    skip_flow: Option<Tensor>,
    skip_rgb: Option<Tensor>,
}
