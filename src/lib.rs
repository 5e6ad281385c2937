//! # bevy_edtalk
//!
//! Talking, emotional character portraits for Bevy games.
//!
//! A portrait image (the *identity*) is animated so that its mouth follows the character's
//! voice, its head moves, and its expression follows the character's emotion state. Two
//! renderers sit behind one trait ([`render::FaceRenderer`]):
//!
//! * **neural** — a [candle](https://github.com/huggingface/candle) port of EDTalk
//!   (ECCV 2024), where mouth (20), head pose (6) and expression (10) are separate
//!   coefficient vectors over learned orthogonal bases. Needs the official checkpoints in
//!   `ckpts/`.
//! * **procedural** — a parametric face rig that warps the portrait, driven by
//!   signal-processing lip-sync. Always available; what a fresh clone runs.
//!
//! The engine modules ([`model`], [`audio`], [`motion`], [`render`], [`worker`], [`clip`])
//! are plain Rust with no Bevy types. The Bevy plugin lives in [`plugin`] (cargo feature
//! `plugin`).

pub mod audio;
#[cfg(feature = "cli")]
pub mod bench;
pub mod clip;
pub mod face;
pub mod heap;
pub mod model;
pub mod motion;
pub mod render;
pub mod worker;

#[cfg(feature = "plugin")]
pub mod plugin;

/// What a game uses first: `use bevy_edtalk::prelude::*;`.
pub mod prelude {
    pub use crate::model::Precision;
    pub use crate::motion::{
        EXP_DIM, Easing, Emotion, EmotionMix, ExpressionControls, HeadPose, IdleSettings, LIP_DIM,
        MOTION_FPS, MotionFrame, MouthControls, POSE_DIM, PoseSource,
    };
    #[cfg(feature = "bevy_audio")]
    pub use crate::plugin::LipSyncTo;
    #[cfg(feature = "plugin")]
    pub use crate::plugin::{
        BackendChoice, Character, EdTalkDiagnostics, EdTalkError, EdTalkErrorKind, EdTalkPlugin,
        EdTalkSettings, EdTalkSystems, EmotionState, EmotionTarget, Emotions, FaceClipAsset,
        FacePortrait, IdleMotion, PortraitAlign, RendererReady, SetEmotion, Speak, SpeakStream,
        SpeechFinished, SpeechReady, SpeechStarted, StopSpeaking, TalkingFace, VoiceLine,
        VoiceStream, Volume,
    };
    pub use crate::render::{Backend, FaceFrame, FaceRenderer, FaceRequest, IdentityId, Portrait};
}
