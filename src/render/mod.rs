//! Face renderers: turn a portrait plus per-frame motion into RGBA frames.
//!
//! [`FaceRenderer`] is the one interface the worker and the plugin use; the neural (EDTalk)
//! and procedural (face rig) renderers implement it.

pub mod neural;
mod portrait;
pub mod procedural;
pub mod rig;
mod rig_fit;

pub use neural::NeuralRenderer;
pub use portrait::{Portrait, PortraitError};

use crate::motion::MotionFrame;

/// Which quality tier a renderer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "plugin", derive(bevy::reflect::Reflect))]
pub enum Backend {
    /// EDTalk in candle; needs the official checkpoints.
    Neural,
    /// Portrait warping with a parametric face rig; always available.
    Procedural,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Neural => "neural",
            Backend::Procedural => "procedural",
        })
    }
}

/// Caller-chosen key of a registered identity (one portrait, one character).
pub type IdentityId = u64;

/// One rendered face: straight (non-premultiplied) sRGB RGBA8, row-major, `width * height * 4`
/// bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct FaceFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The pixels, `width * height * 4` bytes.
    pub rgba: Vec<u8>,
}

/// What to render: a registered identity in one frame of motion.
#[derive(Clone, Debug)]
pub struct FaceRequest {
    /// A registered identity.
    pub identity: IdentityId,
    /// Mouth, head and expression for the frame.
    pub motion: MotionFrame,
}

/// Errors of the renderers.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A request named an identity that was never registered (or was removed).
    #[error("identity {0} is not registered with the {1} renderer")]
    UnknownIdentity(IdentityId, Backend),
    /// The portrait could not be used.
    #[error(transparent)]
    Portrait(#[from] PortraitError),
    /// The rig is inconsistent with the portrait.
    #[error("face rig: {0}")]
    Rig(String),
    /// The neural model failed (missing or misshaped tensor, device error...).
    #[error("neural renderer: {0}")]
    Model(#[from] crate::model::ModelError),
    /// The renderer or its thread could not be set up (e.g. the thread pool).
    #[error("renderer setup: {0}")]
    Setup(String),
}

/// A face renderer: one portrait per identity, any number of identities, batched frames.
///
/// Implementations keep per-identity caches (encoder outputs, warp meshes) between calls, so
/// `set_identity` is the expensive call and `render` the cheap one.
pub trait FaceRenderer: Send {
    /// Which tier this is.
    fn backend(&self) -> Backend;
    /// Side length in pixels of the square frames it produces.
    fn resolution(&self) -> u32;
    /// Registers (or replaces) an identity. The portrait is fitted to the renderer's size.
    fn set_identity(
        &mut self,
        id: IdentityId,
        portrait: &Portrait,
        rig: Option<&rig::FaceRig>,
    ) -> Result<(), RenderError>;
    /// Forgets an identity and its caches. Unknown ids are ignored.
    fn remove_identity(&mut self, id: IdentityId);
    /// Renders one frame per request, in order. Several identities may share one call
    /// (renderers batch them).
    fn render(&mut self, requests: &[FaceRequest]) -> Result<Vec<FaceFrame>, RenderError>;
}
