//! Per-frame motion: what the renderers consume, and where it comes from (audio, emotion
//! state, pose sources).

pub mod audio2motion;
pub mod emotion;
mod frame;
pub mod mix;
pub mod pose;
pub mod script;
pub mod track;

pub use audio2motion::{Audio2Motion, EmotionInput, MotionConfig, MotionError, MotionStream};
pub use emotion::Emotion;
pub use frame::{
    EXP_DIM, ExpressionControls, HeadPose, LIP_DIM, MOTION_FPS, MotionFrame, MouthControls,
    POSE_DIM,
};
pub use mix::{
    CustomEmotion, Easing, EmotionError, EmotionLibrary, EmotionMix, EmotionState,
    ResolvedExpression,
};
pub use pose::{IdleSettings, PoseError, PoseKey, PosePlayer, PoseSource, PoseTrack};
pub use script::{EmotionKey, EmotionScript, ScriptError, ScriptPlayer};
pub use track::{MotionTrack, TrackError};

/// RON options of every motion file (emotions, scripts, pose tracks, baked tracks):
/// `Option` fields may be written without `Some(..)`. Fixed-size number lists (10
/// expression, 6 pose, 20 lip coefficients) are tuples: `(0.1, 0.2, ...)`.
pub fn ron_options() -> ron::Options {
    ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
}
