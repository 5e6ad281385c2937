//! The procedural renderer (face-rig warping). Interim: shows the still portrait until the
//! face-rig renderer lands.

use std::collections::HashMap;

use super::rig::FaceRig;
use super::{Backend, FaceFrame, FaceRenderer, FaceRequest, IdentityId, Portrait, RenderError};

/// Procedural renderer.
pub struct ProceduralRenderer {
    size: u32,
    faces: HashMap<IdentityId, Vec<u8>>,
}

impl ProceduralRenderer {
    /// Frames of `size` x `size` pixels.
    pub fn new(size: u32) -> Self {
        Self {
            size,
            faces: HashMap::new(),
        }
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
        _rig: Option<&FaceRig>,
    ) -> Result<(), RenderError> {
        self.faces.insert(id, portrait.fit_square(self.size).rgba);
        Ok(())
    }
    fn remove_identity(&mut self, id: IdentityId) {
        self.faces.remove(&id);
    }
    fn render(&mut self, requests: &[FaceRequest]) -> Result<Vec<FaceFrame>, RenderError> {
        requests
            .iter()
            .map(|r| {
                let px = self
                    .faces
                    .get(&r.identity)
                    .ok_or(RenderError::UnknownIdentity(r.identity, Backend::Procedural))?;
                Ok(FaceFrame {
                    width: self.size,
                    height: self.size,
                    rgba: px.clone(),
                })
            })
            .collect()
    }
}
