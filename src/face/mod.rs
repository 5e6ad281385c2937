//! Face detection and alignment: find the face in an arbitrary portrait, crop it the way
//! EDTalk expects (a 256 px crop with the face at a fixed place), and paste an animated
//! crop back into the original picture.
//!
//! * [`mtcnn`] — an MTCNN detector (P-, R- and O-Net, facenet-pytorch's weights bundled):
//!   face boxes and five landmarks (eye centres, nose tip, mouth corners).
//! * [`align`] — similarity transforms, the five-point crop, a manual three-anchor
//!   fallback, and [`align_portrait`], the one call most users need.
//! * [`paste`] — the animated crop warped back onto the original with a feathered mask.
//!
//! Everything runs on the CPU and holds no Bevy types.

pub mod align;
pub mod mtcnn;
pub mod paste;

mod area_resize;
mod nets;
mod nms;

pub use align::{
    AlignedPortrait, Anchors, CROP_CORRECTION, CROP_SIZE, FIVE_POINT_TARGETS, FIVE_POINT_WEIGHTS,
    SimilarityTransform, THREE_POINT_TARGETS, align_detection, align_from_anchors, align_portrait,
    align_with, warp_to_crop,
};
pub use mtcnn::{Detection, FaceDetector};
pub use paste::paste_back;

use crate::render::Portrait;

/// Everything that can go wrong finding or aligning a face.
#[derive(Debug, thiserror::Error)]
pub enum FaceError {
    /// The detector found nothing that looks like a face.
    #[error("no face was found in {what}")]
    NoFace {
        /// What was searched, e.g. `a 640x480 portrait`.
        what: String,
    },
    /// Manually given anchors cannot describe a face.
    #[error("invalid face anchors: {0}")]
    InvalidAnchors(String),
    /// Point sets handed to a transform fit cannot determine one.
    #[error("cannot fit a similarity transform: {0}")]
    DegeneratePoints(String),
    /// The detector weights are unreadable, miss a tensor or have the wrong shape, or a
    /// network layer failed.
    #[error("MTCNN model: {0}")]
    Model(String),
    /// A candle operation failed while running the detector.
    #[error("MTCNN inference: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Width, height and straight RGBA8 bytes of a portrait. The one place that reads its
/// fields, so a move to accessor methods is a one-line edit.
fn pixels(p: &Portrait) -> (u32, u32, &[u8]) {
    (p.width(), p.height(), p.rgba())
}

/// Wraps a buffer this module built itself (sizes are correct by construction, and at most
/// the input's size or a fixed crop size, so within the portrait limits).
fn portrait(width: u32, height: u32, rgba: Vec<u8>) -> Portrait {
    Portrait::from_rgba(width, height, rgba).expect("face module builds well-sized buffers")
}
