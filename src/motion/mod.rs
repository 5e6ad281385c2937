//! Per-frame motion: what the renderers consume, and where it comes from (audio, emotion
//! state, pose sources).

pub mod emotion;
mod frame;

pub use emotion::Emotion;
pub use frame::{
    EXP_DIM, ExpressionControls, HeadPose, LIP_DIM, MOTION_FPS, MotionFrame, MouthControls,
    POSE_DIM,
};
