//! The EDTalk generators: `EDTalk.pt` (mouth + pose + expression, networks/generator.py)
//! and `EDTalk_lip_pose.pt` (mouth + pose, networks/generator_lip_pose.py), as one type.
//!
//! A face is `wa + alpha @ Q^T` decoded with the identity's features, where `wa` is the
//! identity's appearance latent, `alpha` the concatenated coefficients (mouth 20, pose 6,
//! and for EDTalk.pt expression 10) and `Q` the orthonormal basis of the learned motion
//! bank (Householder QR of `direction_*.weight + 1e-8`, computed once at load). EDTalk.pt
//! additionally feeds the expression part of the latent to the EEM blocks, which reshape
//! the identity features before they are warped.
//!
//! The work splits along what changes how often, so callers can cache:
//! [`Generator::encode_identity`] once per portrait, [`Generator::expression`] once per
//! (portrait, expression), [`Generator::coefficients`] once per driving image, and
//! [`Generator::decode`] per frame.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::model::checkpoint::load_state_dict;
use crate::model::cpu::{Precision, with_precision};
use crate::model::encoder::{Encoded, EncoderApp};
use crate::model::error::{ModelError, ModelResult};
use crate::model::layers::EqualMlp;
use crate::model::qr::qr;
use crate::model::synthesis::{LevelTap, Synthesis, broadcast_batch};
use crate::model::weights::{StateDict, Weights};

/// Which official checkpoint a [`Generator`] was built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `EDTalk.pt`: mouth, pose and expression banks, EEM blocks in the decoder.
    Expression,
    /// `EDTalk_lip_pose.pt`: mouth and pose only.
    LipPose,
}

/// Motion coefficients of a batch of driving images (or of a portrait).
#[derive(Clone, Debug)]
pub struct Coefficients {
    /// `(B, lip_dim)` mouth coefficients.
    pub lip: Tensor,
    /// `(B, pose_dim)` head-pose coefficients.
    pub pose: Tensor,
    /// `(B, exp_dim)` expression coefficients; `None` for the lip/pose generator.
    pub exp: Option<Tensor>,
}

/// Everything the decoder needs from a portrait, computed once per portrait.
#[derive(Clone, Debug)]
pub struct Identity {
    /// `(B, style_dim)` appearance latent.
    pub wa: Tensor,
    /// Encoder features, one per decoder level (8 px up).
    pub feats: Vec<Tensor>,
    /// The portrait's own coefficients (its mouth, pose and expression).
    pub own: Coefficients,
}

/// The identity's features after the EEM blocks for one expression; computed once per
/// (identity, expression) and reused while the expression stays the same.
#[derive(Clone, Debug)]
pub struct ExpressionFeats {
    /// Features, one per decoder level.
    pub feats: Vec<Tensor>,
    /// `(B, exp_dim)` expression coefficients they were made with (`None` for lip/pose).
    pub exp: Option<Tensor>,
}

/// An EDTalk generator with its motion bases prepared.
#[derive(Clone, Debug)]
pub struct Generator {
    variant: Variant,
    enc: EncoderApp,
    fc: EqualMlp,
    lip_fc: EqualMlp,
    pose_fc: EqualMlp,
    exp_fc: Option<EqualMlp>,
    dec: Synthesis,
    /// Q of `direction_lipnonlip.weight + 1e-8`: `(style_dim, lip+pose)`.
    q_lipnonlip: Tensor,
    /// Q of `cat(direction_lipnonlip.weight, direction_exp.weight) + 1e-8`.
    q_exp: Option<Tensor>,
    /// The basis the latent is built with, transposed: `(lip+pose[+exp], style_dim)`.
    basis_t: Tensor,
    lip_dim: usize,
    pose_dim: usize,
    exp_dim: usize,
    style_dim: usize,
    device: Device,
    dtype: DType,
    /// The arithmetic of the decoder's CPU convolutions (f32 unless set).
    precision: Precision,
}

fn orthonormal_basis(w: &Tensor) -> ModelResult<Tensor> {
    // The official code adds 1e-8 in the weight's dtype (f32) before factorising.
    let shifted = (w.to_dtype(DType::F32)? + 1e-8)?;
    Ok(qr(&shifted)?.0)
}

impl Generator {
    /// Loads an official checkpoint (`EDTalk.pt`, `EDTalk_lip_pose.pt`: a torch zip with the
    /// state dict under `gen`) or a `.safetensors` file with the same names.
    pub fn load(path: &Path, device: &Device, dtype: DType) -> ModelResult<Self> {
        let map = load_state_dict(path, Some("gen"))?;
        Self::from_state_dict(map, device, dtype).map_err(|e| ModelError::InFile {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// Builds a generator from a state dict with the official names (the contents of
    /// `ckpt['gen']`). Which variant it is, the widths, image size and bank sizes are all
    /// read from the tensors. Tensors are converted to `dtype` on `device`. The caller's
    /// map keeps the raw tensors alive; [`Generator::from_state_dict`] frees them as it goes.
    pub fn from_tensors(
        map: &HashMap<String, Tensor>,
        device: &Device,
        dtype: DType,
    ) -> ModelResult<Self> {
        Self::from_state_dict(map.clone(), device, dtype)
    }

    /// [`Generator::from_tensors`] taking the map, so that each raw tensor is freed once
    /// its layer is built: the load's peak memory is then about the built generator's
    /// rather than the raw checkpoint's plus the generator's.
    pub fn from_state_dict(
        map: HashMap<String, Tensor>,
        device: &Device,
        dtype: DType,
    ) -> ModelResult<Self> {
        let map = StateDict::new(map);
        let w = Weights::new(&map, device, dtype);
        let dir = w.get("direction_lipnonlip.weight", &[None, None])?;
        let (style_dim, lip_pose) = dir.dims2()?;
        let enc = EncoderApp::load(&w.pp("enc.net_app"), style_dim)?;
        let fc = EqualMlp::load(&w.pp("fc"), 4, style_dim)?;
        let lip_fc = EqualMlp::load(&w.pp("lip_fc"), 3, style_dim)?;
        let pose_fc = EqualMlp::load(&w.pp("pose_fc"), 3, style_dim)?;
        let (lip_dim, pose_dim) = (lip_fc.out_dim(), pose_fc.out_dim());
        if lip_dim + pose_dim != lip_pose {
            return Err(ModelError::TensorShape {
                name: "direction_lipnonlip.weight".into(),
                expected: format!(
                    "[{style_dim}, {}] (lip_fc + pose_fc outputs)",
                    lip_dim + pose_dim
                ),
                found: dir.dims().to_vec(),
            });
        }
        let dec = Synthesis::load(&w.pp("dec"), style_dim)?;
        if dec.size() != enc.size() {
            return Err(ModelError::Layout(format!(
                "encoder takes {} px images but the decoder makes {} px",
                enc.size(),
                dec.size()
            )));
        }
        let q_lipnonlip = orthonormal_basis(&dir)?;
        let (variant, exp_fc, q_exp, exp_dim) = if w.contains("direction_exp.weight") {
            let exp_fc = EqualMlp::load(&w.pp("exp_fc"), 3, style_dim)?;
            let exp_dim = exp_fc.out_dim();
            let dir_exp = w.get("direction_exp.weight", &[Some(style_dim), Some(exp_dim)])?;
            if !dec.has_eem() {
                return Err(ModelError::MissingTensor {
                    name: "dec.fineadainresblock.0.conv2.weight".into(),
                    expected: "[?, ?, 3, 3]".into(),
                });
            }
            let q = orthonormal_basis(&Tensor::cat(&[&dir, &dir_exp], 1)?)?;
            (Variant::Expression, Some(exp_fc), Some(q), exp_dim)
        } else {
            (Variant::LipPose, None, None, 0)
        };
        let basis = q_exp.as_ref().unwrap_or(&q_lipnonlip);
        let basis_t = w.finish(basis.t()?.contiguous()?)?;
        drop(map);
        crate::heap::release_free_memory();
        Ok(Self {
            variant,
            enc,
            fc,
            lip_fc,
            pose_fc,
            exp_fc,
            dec,
            q_lipnonlip,
            q_exp,
            basis_t,
            lip_dim,
            pose_dim,
            exp_dim,
            style_dim,
            device: device.clone(),
            dtype,
            precision: Precision::F32,
        })
    }

    /// Which checkpoint this is.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Image side in pixels (256 for the official checkpoints).
    pub fn size(&self) -> usize {
        self.enc.size()
    }

    /// Mouth coefficients per frame (20).
    pub fn lip_dim(&self) -> usize {
        self.lip_dim
    }

    /// Pose coefficients per frame (6).
    pub fn pose_dim(&self) -> usize {
        self.pose_dim
    }

    /// Expression coefficients (10; 0 for the lip/pose generator).
    pub fn exp_dim(&self) -> usize {
        self.exp_dim
    }

    /// Latent width (512).
    pub fn style_dim(&self) -> usize {
        self.style_dim
    }

    /// Compute device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The arithmetic the decoder's CPU convolutions use per frame (`decode*`); f32 by
    /// default. Identity and expression encoding stay f32. Where the CPU lacks bf16
    /// support the setting falls back to f32: [`Generator::precision`] says what runs.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision.effective();
    }

    /// The precision the decoder runs in on this machine (see [`Generator::set_precision`]).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The decoder.
    pub fn synthesis(&self) -> &Synthesis {
        &self.dec
    }

    /// `Q` of the mouth+pose bank, `(style_dim, lip+pose)`, f32 (`direction_lipnonlip`).
    pub fn q_lipnonlip(&self) -> &Tensor {
        &self.q_lipnonlip
    }

    /// `Q` of the mouth+pose+expression bank, `(style_dim, lip+pose+exp)`, f32.
    pub fn q_exp(&self) -> Option<&Tensor> {
        self.q_exp.as_ref()
    }

    /// Converts images to the compute dtype/device and checks their shape.
    fn prepare(&self, images: &Tensor, what: &str) -> ModelResult<Tensor> {
        let s = self.size();
        let d = images.dims();
        if d.len() != 4 || d[1] != 3 || d[2] != s || d[3] != s {
            return Err(ModelError::InputShape {
                what: what.into(),
                expected: format!("[B, 3, {s}, {s}]"),
                found: d.to_vec(),
            });
        }
        Ok(images.to_device(&self.device)?.to_dtype(self.dtype)?)
    }

    fn prepare_coeffs(&self, t: &Tensor, what: &str, width: usize) -> ModelResult<Tensor> {
        let d = t.dims();
        if d.len() != 2 || d[1] != width {
            return Err(ModelError::InputShape {
                what: what.into(),
                expected: format!("[B, {width}]"),
                found: d.to_vec(),
            });
        }
        Ok(t.to_device(&self.device)?.to_dtype(self.dtype)?)
    }

    /// `enc.net_app` on `(B, 3, S, S)` images in `[-1, 1]`: `wa` and the feature maps.
    pub fn encode(&self, images: &Tensor) -> ModelResult<Encoded> {
        self.enc.forward(&self.prepare(images, "images")?)
    }

    /// The motion coefficients of appearance latents `wa` `(B, style_dim)`:
    /// `lip_fc(fc(wa))`, `pose_fc(fc(wa))`, `exp_fc(fc(wa))`.
    pub fn coefficients_from_latent(&self, wa: &Tensor) -> ModelResult<Coefficients> {
        let shared = self.fc.forward(wa)?;
        Ok(Coefficients {
            lip: self.lip_fc.forward(&shared)?,
            pose: self.pose_fc.forward(&shared)?,
            exp: self
                .exp_fc
                .as_ref()
                .map(|f| f.forward(&shared))
                .transpose()?,
        })
    }

    /// Mouth, pose and expression coefficients of driving images `(B, 3, S, S)`, so pose
    /// and emotion tracks can be extracted ahead of time.
    pub fn coefficients(&self, images: &Tensor) -> ModelResult<Coefficients> {
        let enc = self.encode(images)?;
        self.coefficients_from_latent(&enc.wa)
    }

    /// Encodes portraits `(B, 3, S, S)`: latent, features and their own coefficients.
    pub fn encode_identity(&self, source: &Tensor) -> ModelResult<Identity> {
        let enc = self.encode(source)?;
        let own = self.coefficients_from_latent(&enc.wa)?;
        Ok(Identity {
            wa: enc.wa,
            feats: enc.feats,
            own,
        })
    }

    /// The expression latent `alpha_exp @ Q_exp^T` `(B, style_dim)` that drives the EEMs.
    pub fn expression_latent(&self, alpha_exp: &Tensor) -> ModelResult<Tensor> {
        let alpha = self.prepare_coeffs(alpha_exp, "alpha_exp", self.exp_dim)?;
        let rows = self
            .basis_t
            .narrow(0, self.lip_dim + self.pose_dim, self.exp_dim)?;
        Ok(alpha.matmul(&rows)?)
    }

    /// Runs the EEM blocks for an expression (`alpha_exp` `(B, exp_dim)`, `None`: the
    /// portrait's own). For the lip/pose generator this is the identity's features
    /// unchanged, and `alpha_exp` must be `None`.
    pub fn expression(
        &self,
        identity: &Identity,
        alpha_exp: Option<&Tensor>,
    ) -> ModelResult<ExpressionFeats> {
        if self.variant == Variant::LipPose {
            if alpha_exp.is_some() {
                return Err(ModelError::NoExpressionBank("an expression"));
            }
            return Ok(ExpressionFeats {
                feats: identity.feats.clone(),
                exp: None,
            });
        }
        let alpha = match (alpha_exp, &identity.own.exp) {
            (Some(a), _) => self.prepare_coeffs(a, "alpha_exp", self.exp_dim)?,
            (None, Some(own)) => own.clone(),
            (None, None) => return Err(ModelError::NoExpressionBank("the own expression")),
        };
        let b = alpha.dim(0)?;
        let feats = identity
            .feats
            .iter()
            .map(|f| broadcast_batch(f, b))
            .collect::<ModelResult<Vec<_>>>()?;
        let z = self.expression_latent(&alpha)?;
        let feats = self.dec.apply_eem(&feats, &z)?;
        Ok(ExpressionFeats {
            feats,
            exp: Some(alpha),
        })
    }

    /// The decoder latent `wa + [lip, pose, exp] @ Q^T`.
    fn latent(
        &self,
        wa: &Tensor,
        lip: &Tensor,
        pose: &Tensor,
        exp: Option<&Tensor>,
    ) -> ModelResult<Tensor> {
        let b = lip.dim(0)?;
        let mut parts = vec![lip.clone(), pose.clone()];
        if self.variant == Variant::Expression {
            let e = exp.ok_or(ModelError::NoExpressionBank("decoding"))?;
            parts.push(broadcast_batch(e, b)?);
        }
        let alpha = Tensor::cat(&parts, 1)?;
        let dirs = alpha.matmul(&self.basis_t)?;
        Ok(broadcast_batch(wa, b)?.add(&dirs)?)
    }

    /// Decodes a batch of frames of one identity: `lip` `(B, lip_dim)` and `pose`
    /// `(B, pose_dim)`; identity and expression have batch 1 (shared by all frames) or B.
    /// Returns `(B, 3, S, S)` images in about `[-1, 1]`.
    pub fn decode(
        &self,
        identity: &Identity,
        expression: &ExpressionFeats,
        lip: &Tensor,
        pose: &Tensor,
    ) -> ModelResult<Tensor> {
        self.decode_with_taps(identity, expression, lip, pose, None)
    }

    /// [`Generator::decode`], also collecting each level's feature and warped feature.
    pub fn decode_with_taps(
        &self,
        identity: &Identity,
        expression: &ExpressionFeats,
        lip: &Tensor,
        pose: &Tensor,
        taps: Option<&mut Vec<LevelTap>>,
    ) -> ModelResult<Tensor> {
        let lip = self.prepare_coeffs(lip, "lip", self.lip_dim)?;
        let b = lip.dim(0)?;
        let pose = broadcast_batch(&self.prepare_coeffs(pose, "pose", self.pose_dim)?, b)?;
        let latent = self.latent(&identity.wa, &lip, &pose, expression.exp.as_ref())?;
        with_precision(self.precision, || {
            self.dec.forward(&latent, &expression.feats, taps)
        })
    }

    /// Decodes one frame for each of several identities in one batched forward.
    /// `items[i]` is (identity, expression) with batch 1; `lip` has one row per item,
    /// `pose` one per item or one for all. The wide levels run image by image (see
    /// [`Synthesis::forward_items`]), so the batch gains where it helps, in the narrow
    /// levels' GEMMs, without concatenating the big feature maps.
    pub fn decode_many(
        &self,
        items: &[(&Identity, &ExpressionFeats)],
        lip: &Tensor,
        pose: &Tensor,
    ) -> ModelResult<Tensor> {
        if items.len() == 1 {
            return self.decode(items[0].0, items[0].1, lip, pose);
        }
        let cat = |f: &dyn Fn(&(&Identity, &ExpressionFeats)) -> Tensor| -> ModelResult<Tensor> {
            let ts: Vec<Tensor> = items.iter().map(f).collect();
            Ok(Tensor::cat(&ts, 0)?)
        };
        let wa = cat(&|(i, _)| i.wa.clone())?;
        let exp = match self.variant {
            Variant::Expression => {
                let mut ts = Vec::with_capacity(items.len());
                for (_, e) in items {
                    ts.push(
                        e.exp
                            .clone()
                            .ok_or(ModelError::NoExpressionBank("decoding"))?,
                    );
                }
                Some(Tensor::cat(&ts, 0)?)
            }
            Variant::LipPose => None,
        };
        let lip = self.prepare_coeffs(lip, "lip", self.lip_dim)?;
        if lip.dim(0)? != items.len() {
            return Err(ModelError::InputShape {
                what: "decode_many lip".into(),
                expected: format!("[{}, {}] (one row per item)", items.len(), self.lip_dim),
                found: lip.dims().to_vec(),
            });
        }
        let pose = self.prepare_coeffs(pose, "pose", self.pose_dim)?;
        let pose = broadcast_batch(&pose, items.len())?;
        let latent = self.latent(&wa, &lip, &pose, exp.as_ref())?;
        let feats: Vec<&[Tensor]> = items.iter().map(|(_, e)| e.feats.as_slice()).collect();
        with_precision(self.precision, || self.dec.forward_items(&latent, &feats))
    }

    // ---- the official inference modes -------------------------------------------------

    /// `test_EDTalk_A_use_exp_weight`: mouth from coefficients (e.g. Audio2Lip), pose from
    /// a driving image (`None`: the source itself, what `--fix_pose` does), expression
    /// from bank weights.
    pub fn edtalk_a_use_exp_weight(
        &self,
        source: &Tensor,
        alpha_lip: &Tensor,
        pose_img: Option<&Tensor>,
        alpha_exp: &Tensor,
    ) -> ModelResult<Tensor> {
        let id = self.encode_identity(source)?;
        let pose = self.pose_of(&id, pose_img)?;
        let expr = self.expression(&id, Some(alpha_exp))?;
        self.decode(&id, &expr, alpha_lip, &pose)
    }

    /// `test_EDTalk_A`: as [`Generator::edtalk_a_use_exp_weight`] with the expression
    /// taken from a reference image.
    pub fn edtalk_a(
        &self,
        source: &Tensor,
        alpha_lip: &Tensor,
        pose_img: Option<&Tensor>,
        exp_img: &Tensor,
    ) -> ModelResult<Tensor> {
        let id = self.encode_identity(source)?;
        let pose = self.pose_of(&id, pose_img)?;
        let exp = self
            .coefficients(exp_img)?
            .exp
            .ok_or(ModelError::NoExpressionBank("EDTalk_A"))?;
        let expr = self.expression(&id, Some(&exp))?;
        self.decode(&id, &expr, alpha_lip, &pose)
    }

    /// `test_EDTalk_V`: mouth, pose and expression all from driving images. `pose_img`
    /// `None` keeps the source's pose; `exp_img` `None` its expression (it must be `None`
    /// for the lip/pose generator, whose `test_EDTalk_V` takes no expression).
    pub fn edtalk_v(
        &self,
        source: &Tensor,
        lip_img: &Tensor,
        pose_img: Option<&Tensor>,
        exp_img: Option<&Tensor>,
    ) -> ModelResult<Tensor> {
        let id = self.encode_identity(source)?;
        let pose = self.pose_of(&id, pose_img)?;
        let lip = self.coefficients(lip_img)?.lip;
        let exp = match exp_img {
            Some(img) => Some(
                self.coefficients(img)?
                    .exp
                    .ok_or(ModelError::NoExpressionBank("an expression image"))?,
            ),
            None => None,
        };
        let expr = self.expression(&id, exp.as_ref())?;
        self.decode(&id, &expr, &lip, &pose)
    }

    /// `test_from_audio_pose_image` of the lip/pose generator: mouth from coefficients,
    /// pose from an image (`None`: fixed pose). On EDTalk.pt the source's own expression
    /// is kept.
    pub fn from_audio_pose_image(
        &self,
        source: &Tensor,
        alpha_lip: &Tensor,
        pose_img: Option<&Tensor>,
    ) -> ModelResult<Tensor> {
        let id = self.encode_identity(source)?;
        let pose = self.pose_of(&id, pose_img)?;
        let expr = self.expression(&id, None)?;
        self.decode(&id, &expr, alpha_lip, &pose)
    }

    fn pose_of(&self, id: &Identity, pose_img: Option<&Tensor>) -> ModelResult<Tensor> {
        match pose_img {
            Some(img) => Ok(self.coefficients(img)?.pose),
            None => Ok(id.own.pose.clone()),
        }
    }
}
