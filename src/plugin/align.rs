//! Bring-your-own portraits: a portrait that is not already an EDTalk crop is aligned
//! (face detection, or hand-placed anchors) off the main thread before it is registered,
//! its rig fitted to the landmarks, and optionally its animated face pasted back into the
//! whole picture.

use std::sync::Arc;

use bevy::prelude::*;

use crate::face::{AlignedPortrait, Anchors, CROP_SIZE, FaceError};
use crate::render::Portrait;
use crate::render::rig::FaceRig;
use crate::worker::PasteTarget;

/// How a portrait is prepared before it is animated.
#[derive(Clone, Debug, Default, PartialEq, Reflect)]
pub enum PortraitAlign {
    /// Use the image as it is (after [`super::FacePortrait::crop`]): for portraits that
    /// already are EDTalk-style face crops, like the bundled cast.
    #[default]
    Off,
    /// Find the face (MTCNN, bundled weights) and crop it as EDTalk's preprocessing does;
    /// the procedural rig is fitted to the landmarks unless the portrait brings its own.
    /// When no face is found the plugin reports it (kind `Portrait`) and animates the image
    /// as it is; give [`PortraitAlign::Anchors`] for such art.
    Auto,
    /// Align from hand-placed points in image pixels (after `crop`): the centres of the
    /// eye on the image's left, the eye on its right, and the mouth.
    Anchors {
        /// Centre of the eye on the image's left.
        left_eye: Vec2,
        /// Centre of the eye on the image's right.
        right_eye: Vec2,
        /// Centre of the mouth.
        mouth: Vec2,
    },
}

/// What the worker gets for one face, prepared off the main thread.
pub(crate) struct PreparedPortrait {
    /// The identity image the renderer animates.
    pub(crate) identity: Arc<Portrait>,
    /// The rig: the portrait's own, or one fitted to the found landmarks.
    pub(crate) rig: Option<FaceRig>,
    /// Where the frames are pasted back, when asked for.
    pub(crate) paste: Option<PasteTarget>,
    /// Shown until the first rendered frame: the whole portrait when pasting back.
    pub(crate) still: Portrait,
    /// Something the game should know (no face found, several faces); logged as an error.
    pub(crate) note: Option<String>,
}

/// Aligns (or not) and fits the rig. `size` is the renderer's frame size.
pub(crate) fn prepare_portrait(
    portrait: Portrait,
    align: &PortraitAlign,
    rig: Option<FaceRig>,
    paste_back: bool,
    size: u32,
) -> PreparedPortrait {
    let found: Option<Result<AlignedPortrait, FaceError>> = match align {
        PortraitAlign::Off => None,
        PortraitAlign::Auto => Some(crate::face::align_portrait(&portrait)),
        PortraitAlign::Anchors {
            left_eye,
            right_eye,
            mouth,
        } => Some(crate::face::align_from_anchors(
            &portrait,
            Anchors {
                left_eye: left_eye.to_array(),
                right_eye: right_eye.to_array(),
                mouth: mouth.to_array(),
            },
        )),
    };
    let mut note = None;
    let aligned = match found {
        None => None,
        Some(Ok(a)) => {
            if a.faces_found > 1 {
                note = Some(format!(
                    "{} faces found in the portrait; animating the largest",
                    a.faces_found
                ));
            }
            Some(a)
        }
        Some(Err(e)) => {
            note = Some(match e {
                FaceError::NoFace { .. } => format!(
                    "{e}; animating the image as it is. Give PortraitAlign::Anchors (or \
                     `anchors` in the character file) with the eye and mouth centres"
                ),
                e => format!("portrait alignment failed: {e}; animating the image as it is"),
            });
            None
        }
    };
    // Without an aligned face there is nothing to paste back into: the note says why.
    let Some(a) = aligned else {
        let still = portrait.fit_square(size);
        return PreparedPortrait {
            identity: Arc::new(portrait),
            rig,
            paste: None,
            still,
            note,
        };
    };
    let rig = rig.or_else(|| {
        let s = CROP_SIZE as f32;
        let five = a.landmarks.map(|p| {
            let q = a.transform.apply(p);
            [q[0] / s, q[1] / s]
        });
        Some(FaceRig::fit_landmarks(&five))
    });
    let original = Arc::new(portrait);
    let (paste, still) = if paste_back {
        (
            Some(PasteTarget {
                original: original.clone(),
                transform: a.transform,
            }),
            (*original).clone(),
        )
    } else {
        (None, a.image.fit_square(size))
    };
    PreparedPortrait {
        identity: Arc::new(a.image),
        rig,
        paste,
        still,
        note,
    }
}
