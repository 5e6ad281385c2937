//! The procedural renderer: animates a portrait by warping it around its face rig.
//!
//! Per identity the portrait is fitted to a square ([`Portrait::fit_square`]), the rig is
//! validated and scaled, and the warp's basis fields are sampled on a coarse node grid.
//! Per frame the controls weight those fields, the grid is interpolated per pixel with
//! fixed-point bilinear sampling, and the mouth interior and eyelids are painted on top.
//! A frame allocates nothing but its output buffer.

pub mod controls;
mod eyes;
pub mod geometry;
mod mouth;
mod warp;

use std::collections::HashMap;

use super::rig::FaceRig;
use super::{Backend, FaceFrame, FaceRenderer, FaceRequest, IdentityId, Portrait, RenderError};
use crate::motion::MotionFrame;
pub use controls::Controls;
use geometry::FaceGeometry;

/// Default frame size, EDTalk's 256 px.
pub const DEFAULT_SIZE: u32 = 256;
/// Smallest and largest frame sizes accepted by [`ProceduralRenderer::with_size`].
pub const SIZE_RANGE: std::ops::RangeInclusive<u32> = 32..=2048;

/// Everything about one identity that does not change from frame to frame.
struct Identity {
    /// The fitted portrait, packed and padded by [`warp::pad_source`].
    pixels: Vec<u32>,
    geom: FaceGeometry,
    grid: warp::WarpGrid,
    lids: [eyes::LidColors; 2],
    notes: Vec<String>,
}

/// Portrait warping with a parametric face rig; see the module docs.
pub struct ProceduralRenderer {
    size: u32,
    identities: HashMap<IdentityId, Identity>,
    mouth_scratch: mouth::MouthScratch,
}

impl Default for ProceduralRenderer {
    fn default() -> Self {
        Self::new()
    }
}

impl ProceduralRenderer {
    /// A renderer producing [`DEFAULT_SIZE`] px frames.
    pub fn new() -> Self {
        Self::with_size(DEFAULT_SIZE)
    }

    /// A renderer producing `size` px frames; `size` is clamped into [`SIZE_RANGE`].
    pub fn with_size(size: u32) -> Self {
        Self {
            size: size.clamp(*SIZE_RANGE.start(), *SIZE_RANGE.end()),
            identities: HashMap::new(),
            mouth_scratch: mouth::MouthScratch::default(),
        }
    }

    /// Repairs made to an identity's rig when it was registered (clamped or swapped
    /// landmarks), one sentence each; `None` for unknown ids.
    pub fn rig_notes(&self, id: IdentityId) -> Option<&[String]> {
        self.identities.get(&id).map(|i| i.notes.as_slice())
    }

    /// Renders one frame of one identity into `frame`, reusing its buffer.
    pub fn render_into(
        &mut self,
        id: IdentityId,
        motion: &MotionFrame,
        frame: &mut FaceFrame,
    ) -> Result<(), RenderError> {
        let size = self.size as usize;
        let ident = self
            .identities
            .get_mut(&id)
            .ok_or(RenderError::UnknownIdentity(id, Backend::Procedural))?;
        let c = Controls::from_frame(motion);
        frame.width = self.size;
        frame.height = self.size;
        frame.rgba.resize(size * size * 4, 0);
        ident.grid.set_weights(&c.basis_weights());
        ident.grid.warp(&ident.pixels, &mut frame.rgba);
        mouth::paint(
            &mut frame.rgba,
            size,
            &ident.geom,
            &ident.grid,
            &c,
            &mut self.mouth_scratch,
        );
        eyes::paint(
            &mut frame.rgba,
            size,
            &ident.geom,
            &ident.grid,
            &c,
            &ident.lids,
        );
        Ok(())
    }

    /// Renders one frame of one identity.
    pub fn render_one(
        &mut self,
        id: IdentityId,
        motion: &MotionFrame,
    ) -> Result<FaceFrame, RenderError> {
        let mut frame = FaceFrame {
            width: 0,
            height: 0,
            rgba: Vec::new(),
        };
        self.render_into(id, motion, &mut frame)?;
        Ok(frame)
    }
}

impl FaceRenderer for ProceduralRenderer {
    fn backend(&self) -> Backend {
        Backend::Procedural
    }

    fn resolution(&self) -> u32 {
        self.size
    }

    fn set_identity(
        &mut self,
        id: IdentityId,
        portrait: &Portrait,
        rig: Option<&FaceRig>,
    ) -> Result<(), RenderError> {
        let default_rig;
        let rig = match rig {
            Some(r) => r,
            None => {
                default_rig = FaceRig::default();
                &default_rig
            }
        };
        let (rig, notes) = rig
            .validated()
            .map_err(|e| RenderError::Rig(format!("identity {id}: {e}")))?;
        let fitted = portrait.fit_square(self.size);
        let size = self.size as usize;
        let pixels = warp::pad_source(fitted.rgba(), size);
        let geom = FaceGeometry::new(&rig, self.size);
        let grid = warp::WarpGrid::new(&geom, size);
        let lids = [0, 1]
            .map(|i| eyes::LidColors::sample(&pixels, size, &geom.eyes[i], geom.brows[i].mid.y));
        self.identities.insert(
            id,
            Identity {
                pixels,
                geom,
                grid,
                lids,
                notes,
            },
        );
        Ok(())
    }

    fn remove_identity(&mut self, id: IdentityId) {
        self.identities.remove(&id);
    }

    fn render(&mut self, requests: &[FaceRequest]) -> Result<Vec<FaceFrame>, RenderError> {
        requests
            .iter()
            .map(|r| self.render_one(r.identity, &r.motion))
            .collect()
    }
}
