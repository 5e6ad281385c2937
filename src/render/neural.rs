//! The neural renderer: EDTalk in candle behind [`FaceRenderer`].
//!
//! Per identity it keeps what does not change from frame to frame: the encoder output
//! (latent, features, the portrait's own coefficients), computed once in `set_identity`,
//! and the EEM output for the current expression, recomputed only when the requested
//! expression coefficients change. A frame then costs one decoder pass; all requests of a
//! `render` call go through the decoder as one batch.
//!
//! [`MotionFrame`](crate::motion::MotionFrame) semantics: `lip_coeffs` are the mouth
//! coefficients (`alpha_lip`, e.g. from Audio2Lip); `pose_coeffs` and `exp_coeffs` are the
//! pose and expression-bank coefficients. `None` means the portrait's own (what the
//! official `--fix_pose` does for pose, and the source's own expression; for the mouth, the
//! portrait's own mouth).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::rig::FaceRig;
use super::{Backend, FaceFrame, FaceRenderer, FaceRequest, IdentityId, Portrait, RenderError};
use crate::model::{ExpressionFeats, Generator, Identity, ModelError};
use crate::motion::{EXP_DIM, LIP_DIM, POSE_DIM};

/// How many expressions per identity keep their EEM output (a character switching
/// between a few emotions does not recompute them).
const EXPRESSIONS_PER_IDENTITY: usize = 4;

/// Key of a cached expression: the exact coefficient bits, or `None` for the own one.
type ExpKey = Option<[u32; EXP_DIM]>;

struct Entry {
    identity: Identity,
    own_lip: [f32; LIP_DIM],
    own_pose: [f32; POSE_DIM],
    /// Most recently used last.
    expressions: Vec<(ExpKey, ExpressionFeats)>,
}

/// Coefficients of one driving image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImageCoefficients {
    /// Mouth coefficients over the lip bank.
    pub lip: [f32; LIP_DIM],
    /// Head-pose coefficients over the pose bank.
    pub pose: [f32; POSE_DIM],
    /// Expression coefficients (`None` for the lip/pose generator, which has no bank).
    pub exp: Option<[f32; EXP_DIM]>,
}

/// EDTalk renderer (see the module docs).
pub struct NeuralRenderer {
    generator: Generator,
    identities: HashMap<IdentityId, Entry>,
    pose_frames: HashMap<u64, [f32; POSE_DIM]>,
}

fn model_err(e: ModelError) -> RenderError {
    RenderError::Model(e)
}

fn candle_err(e: candle_core::Error) -> RenderError {
    RenderError::Model(ModelError::Candle(e))
}

impl NeuralRenderer {
    /// Wraps a loaded generator (either official checkpoint).
    pub fn new(generator: Generator) -> Self {
        Self {
            generator,
            identities: HashMap::new(),
            pose_frames: HashMap::new(),
        }
    }

    /// Loads `EDTalk.pt` / `EDTalk_lip_pose.pt` (or a safetensors copy).
    pub fn load(path: &Path, device: &Device, dtype: DType) -> Result<Self, RenderError> {
        Ok(Self::new(
            Generator::load(path, device, dtype).map_err(model_err)?,
        ))
    }

    /// The generator.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// The arithmetic of the decoder's CPU convolutions ([`Generator::set_precision`]).
    pub fn set_precision(&mut self, precision: crate::model::Precision) {
        self.generator.set_precision(precision);
    }

    /// A portrait as the model's `(1, 3, S, S)` input in `[-1, 1]`.
    pub fn portrait_tensor(&self, portrait: &Portrait) -> Result<Tensor, RenderError> {
        let s = self.generator.size();
        let fitted = portrait.fit_square(s as u32);
        let mut planes = vec![0f32; 3 * s * s];
        for (i, px) in fitted.rgba().chunks_exact(4).enumerate() {
            for c in 0..3 {
                planes[c * s * s + i] = px[c] as f32 / 255.0 * 2.0 - 1.0;
            }
        }
        Tensor::from_vec(planes, (1, 3, s, s), self.generator.device()).map_err(candle_err)
    }

    /// Pose coefficients of a driving image, computed once per `frame` key (e.g. the
    /// index of a frame in a pose video) and cached.
    pub fn pose_from_image(
        &mut self,
        frame: u64,
        image: &Portrait,
    ) -> Result<[f32; POSE_DIM], RenderError> {
        if let Some(p) = self.pose_frames.get(&frame) {
            return Ok(*p);
        }
        let t = self.portrait_tensor(image)?;
        let c = self.generator.coefficients(&t).map_err(model_err)?;
        let pose = row::<POSE_DIM>(&c.pose)?;
        self.pose_frames.insert(frame, pose);
        Ok(pose)
    }

    /// Mouth (20), pose (6) and expression (10; `None` for the lip/pose generator)
    /// coefficients of a driving image, e.g. to pre-extract pose and emotion tracks.
    pub fn coefficients_of(&self, image: &Portrait) -> Result<ImageCoefficients, RenderError> {
        let t = self.portrait_tensor(image)?;
        let c = self.generator.coefficients(&t).map_err(model_err)?;
        Ok(ImageCoefficients {
            lip: row::<LIP_DIM>(&c.lip)?,
            pose: row::<POSE_DIM>(&c.pose)?,
            exp: c.exp.as_ref().map(row::<EXP_DIM>).transpose()?,
        })
    }

    /// Forgets the cached pose frames.
    pub fn clear_pose_frames(&mut self) {
        self.pose_frames.clear();
    }

    /// Makes sure the EEM output for `key` is cached for `id` and most recently used.
    fn ensure_expression(&mut self, id: IdentityId, key: ExpKey) -> Result<(), RenderError> {
        let generator = &self.generator;
        let entry = self
            .identities
            .get_mut(&id)
            .ok_or(RenderError::UnknownIdentity(id, Backend::Neural))?;
        if let Some(pos) = entry.expressions.iter().position(|(k, _)| *k == key) {
            let hit = entry.expressions.remove(pos);
            entry.expressions.push(hit);
            return Ok(());
        }
        // The lip/pose generator has no expression bank: every key maps to its features.
        let alpha = match (key, generator.exp_dim()) {
            (Some(bits), n) if n > 0 => {
                let v: Vec<f32> = bits.iter().map(|b| f32::from_bits(*b)).collect();
                Some(Tensor::from_vec(v, (1, EXP_DIM), generator.device()).map_err(candle_err)?)
            }
            _ => None,
        };
        let feats = generator
            .expression(&entry.identity, alpha.as_ref())
            .map_err(model_err)?;
        if entry.expressions.len() >= EXPRESSIONS_PER_IDENTITY {
            entry.expressions.remove(0);
        }
        entry.expressions.push((key, feats));
        Ok(())
    }
}

/// The first row of a `(B, N)` tensor as an array.
fn row<const N: usize>(t: &Tensor) -> Result<[f32; N], RenderError> {
    let v: Vec<f32> = t
        .narrow(0, 0, 1)
        .and_then(|r| r.flatten_all())
        .and_then(|r| r.to_dtype(DType::F32))
        .and_then(|r| r.to_vec1())
        .map_err(candle_err)?;
    v.try_into().map_err(|v: Vec<f32>| {
        RenderError::Model(ModelError::InputShape {
            what: "coefficients".into(),
            expected: format!("[{N}]"),
            found: vec![v.len()],
        })
    })
}

/// `round((clamp(y, -1, 1) + 1) / 2 * 255)`, alpha 255.
fn to_frames(images: &Tensor) -> Result<Vec<FaceFrame>, RenderError> {
    let (b, _, h, w) = images.dims4().map_err(candle_err)?;
    let data: Vec<f32> = images
        .to_dtype(DType::F32)
        .and_then(|t| t.to_device(&Device::Cpu))
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .map_err(candle_err)?;
    let plane = h * w;
    Ok((0..b)
        .map(|i| {
            let img = &data[i * 3 * plane..(i + 1) * 3 * plane];
            let mut rgba = vec![255u8; plane * 4];
            for p in 0..plane {
                for c in 0..3 {
                    let y = img[c * plane + p].clamp(-1.0, 1.0);
                    rgba[p * 4 + c] = ((y + 1.0) / 2.0 * 255.0).round() as u8;
                }
            }
            FaceFrame {
                width: w as u32,
                height: h as u32,
                rgba,
            }
        })
        .collect())
}

impl FaceRenderer for NeuralRenderer {
    fn backend(&self) -> Backend {
        Backend::Neural
    }

    fn resolution(&self) -> u32 {
        self.generator.size() as u32
    }

    fn set_identity(
        &mut self,
        id: IdentityId,
        portrait: &Portrait,
        _rig: Option<&FaceRig>,
    ) -> Result<(), RenderError> {
        let t = self.portrait_tensor(portrait)?;
        let identity = self.generator.encode_identity(&t).map_err(model_err)?;
        let own_lip = row::<LIP_DIM>(&identity.own.lip)?;
        let own_pose = row::<POSE_DIM>(&identity.own.pose)?;
        self.identities.insert(
            id,
            Entry {
                identity,
                own_lip,
                own_pose,
                expressions: Vec::new(),
            },
        );
        Ok(())
    }

    fn remove_identity(&mut self, id: IdentityId) {
        self.identities.remove(&id);
    }

    fn render(&mut self, requests: &[FaceRequest]) -> Result<Vec<FaceFrame>, RenderError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<ExpKey> = requests
            .iter()
            .map(|r| r.motion.exp_coeffs.map(|c| c.map(f32::to_bits)))
            .collect();
        for (r, key) in requests.iter().zip(&keys) {
            self.ensure_expression(r.identity, *key)?;
        }
        let mut lips = Vec::with_capacity(requests.len() * LIP_DIM);
        let mut poses = Vec::with_capacity(requests.len() * POSE_DIM);
        let mut items = Vec::with_capacity(requests.len());
        for (r, key) in requests.iter().zip(&keys) {
            let entry = self
                .identities
                .get(&r.identity)
                .ok_or(RenderError::UnknownIdentity(r.identity, Backend::Neural))?;
            lips.extend(r.motion.lip_coeffs.unwrap_or(entry.own_lip));
            poses.extend(r.motion.pose_coeffs.unwrap_or(entry.own_pose));
            let expr = entry
                .expressions
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, e)| e)
                .ok_or_else(|| RenderError::Setup("expression cache miss".into()))?;
            items.push((&entry.identity, expr));
        }
        let n = requests.len();
        let device = self.generator.device();
        let lip = Tensor::from_vec(lips, (n, LIP_DIM), device).map_err(candle_err)?;
        let pose = Tensor::from_vec(poses, (n, POSE_DIM), device).map_err(candle_err)?;
        let images = self
            .generator
            .decode_many(&items, &lip, &pose)
            .map_err(model_err)?;
        to_frames(&images)
    }
}
