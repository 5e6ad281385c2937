use bevy::prelude::*;

use super::assets::{EmotionScriptAsset, VoiceLine};
use super::components::ExpressionTarget;
use super::track_asset::MotionTrackAsset;
use crate::motion::{Emotion, PoseSource};

/// Makes a face speak a voice line (played on the audio output, lip-synced).
/// A line already playing on that face is stopped.
#[derive(Message, Clone, Debug)]
pub struct Speak {
    pub entity: Entity,
    pub line: Handle<VoiceLine>,
    /// Emotion keys over the line's time.
    pub script: Option<Handle<EmotionScriptAsset>>,
    /// Head pose for the line. `None`: the face's idle motion (or a still head) goes on
    /// while it speaks. `Some`: the line's own pose replaces the idle motion until the
    /// line ends (a [`PoseSource::Track`] is played ping-pong when shorter than the line).
    pub pose: Option<PoseSource>,
    /// A pre-baked motion track (`edtalk bake`, `*.track.ron`): the mouth comes from its
    /// frames instead of analysing the audio. Frames past the track's end hold the mouth
    /// at rest; a track longer than the line is cut at the line's end. The head still
    /// comes from [`Speak::pose`] and the expression from the [`super::EmotionState`].
    /// The neural renderer reads the track's Audio2Lip coefficients: a track baked without
    /// the checkpoint leaves its mouth at the portrait's own.
    pub track: Option<Handle<MotionTrackAsset>>,
    /// Subtitle or caller tag, echoed in [`SpeechStarted`] / [`SpeechFinished`].
    pub tag: String,
}

impl Speak {
    /// Speak a loaded or loading voice line.
    pub fn new(entity: Entity, line: Handle<VoiceLine>) -> Self {
        Self {
            entity,
            line,
            script: None,
            pose: None,
            track: None,
            tag: String::new(),
        }
    }

    /// With an emotion script.
    pub fn with_script(mut self, script: Handle<EmotionScriptAsset>) -> Self {
        self.script = Some(script);
        self
    }

    /// With a head-pose source for this line (see [`Speak::pose`]).
    pub fn with_pose(mut self, pose: PoseSource) -> Self {
        self.pose = Some(pose);
        self
    }

    /// With a baked motion track for the mouth (see [`Speak::track`]).
    pub fn with_track(mut self, track: Handle<MotionTrackAsset>) -> Self {
        self.track = Some(track);
        self
    }

    /// With a tag (e.g. the subtitle).
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = tag.into();
        self
    }
}

/// Stops the face's current line (audio and lip-sync).
#[derive(Message, Clone, Debug)]
pub struct StopSpeaking {
    pub entity: Entity,
}

/// Moves a face's expression to a new target over `transition` seconds.
#[derive(Message, Clone, Debug)]
pub struct SetEmotion {
    pub entity: Entity,
    pub target: ExpressionTarget,
    pub transition: f32,
}

impl SetEmotion {
    /// One predefined emotion at full intensity, over 0.4 s.
    pub fn new(entity: Entity, emotion: Emotion) -> Self {
        Self {
            entity,
            target: ExpressionTarget::emotion(emotion, 1.0),
            transition: 0.4,
        }
    }

    /// One predefined emotion at an intensity (0..1; above 1 exaggerates), over 0.4 s.
    pub fn with_intensity(entity: Entity, emotion: Emotion, intensity: f32) -> Self {
        Self {
            entity,
            target: ExpressionTarget::emotion(emotion, intensity),
            transition: 0.4,
        }
    }

    /// With a transition time in seconds.
    pub fn over(mut self, seconds: f32) -> Self {
        self.transition = seconds;
        self
    }
}

/// A line started playing on a face.
#[derive(Message, Clone, Debug)]
pub struct SpeechStarted {
    pub entity: Entity,
    pub tag: String,
    /// Line length in seconds.
    pub duration: f32,
}

/// A line ended (played out or stopped).
#[derive(Message, Clone, Debug)]
pub struct SpeechFinished {
    pub entity: Entity,
    pub tag: String,
    /// False when stopped early by [`StopSpeaking`] or a new [`Speak`].
    pub completed: bool,
}

/// Something went wrong for an entity (or for the plugin when `entity` is `None`): a bad
/// portrait, an unplayable line, a malformed RON file, a worker restart. The plugin also
/// logs it; the game keeps running.
#[derive(Message, Clone, Debug)]
pub struct EdTalkError {
    pub entity: Option<Entity>,
    pub message: String,
}
