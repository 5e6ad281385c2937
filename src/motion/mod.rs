//! Per-frame motion: what the renderers consume, and where it comes from (audio, emotion
//! state, pose sources).

mod frame;

pub use frame::{
    EXP_DIM, ExpressionControls, HeadPose, LIP_DIM, MOTION_FPS, MotionFrame, MouthControls,
    POSE_DIM,
};
