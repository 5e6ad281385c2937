//! Messages in and out of the plugin. [`SpeechStarted`] and [`SpeechFinished`] are also
//! triggered as entity events on the face, so a game can observe one NPC:
//! `commands.entity(npc).observe(|started: On<SpeechStarted>| ...)`.

use bevy::prelude::*;

use super::assets::{EmotionScriptAsset, VoiceLine};
use super::audio::Volume;
use super::components::EmotionTarget;
use super::track_asset::{FaceClipAsset, MotionTrackAsset};
use super::voice_stream::VoiceStream;
use crate::motion::{Easing, Emotion, EmotionMix, PoseSource};

/// Makes a face speak a voice line (played on the audio output, lip-synced).
/// A line already playing on that face is stopped.
#[derive(Message, Clone, Debug, Reflect)]
pub struct Speak {
    /// The face (an entity with a [`super::FacePortrait`] or [`super::Character`]).
    pub entity: Entity,
    /// The voice line.
    pub line: Handle<VoiceLine>,
    /// Emotion keys over the line's time. Emotion names are checked against the
    /// [`super::Emotions`] library when the line starts (custom emotions work).
    pub script: Option<Handle<EmotionScriptAsset>>,
    /// Head pose for the line. `None`: the face's idle motion (or a still head) goes on
    /// while it speaks. `Some`: the line's own pose replaces the idle motion until the
    /// line ends (a [`PoseSource::Track`] is played ping-pong when shorter than the line).
    #[reflect(ignore)]
    pub pose: Option<PoseSource>,
    /// A pre-baked motion track (`edtalk bake`, `*.track.ron`): the mouth comes from its
    /// frames instead of analysing the audio. Frames past the track's end hold the mouth
    /// at rest; a track longer than the line is cut at the line's end. The head still
    /// comes from [`Speak::pose`] and the expression from the [`super::EmotionState`].
    /// The neural renderer reads the track's Audio2Lip coefficients: a track baked without
    /// the checkpoint leaves its mouth at the portrait's own.
    pub track: Option<Handle<MotionTrackAsset>>,
    /// A baked face clip (`edtalk bake-clip`, `*.faceclip`): the line's faces are played
    /// from it in sync with the audio, with no inference (no checkpoints needed). Its frames
    /// must be the face texture's size (256x256 by default). The emotion state and idle
    /// motion do not apply while it plays: they are baked in.
    pub clip: Option<Handle<FaceClipAsset>>,
    /// Subtitle or caller tag, echoed in [`SpeechStarted`] / [`SpeechFinished`].
    pub tag: String,
    /// How loud the line plays (default: as recorded).
    pub volume: Volume,
    /// Stereo position, -1 (left) .. 1 (right); default 0 (centre).
    pub panning: f32,
    /// Seconds into the line where playback (and the face) starts; default 0.
    pub start_at: f32,
    /// The kira mixer track the line plays through (e.g. the game's voice bus), by the name
    /// it was registered under with [`super::EdTalkAudio::add_track`] or
    /// [`super::EdTalkAudio::insert_track`]. `None`: the manager's main track.
    pub mixer_track: Option<String>,
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
            clip: None,
            tag: String::new(),
            volume: Volume::default(),
            panning: 0.0,
            start_at: 0.0,
            mixer_track: None,
        }
    }

    /// At a volume, e.g. `Volume::Decibels(-6.0)` or `Volume::Amplitude(0.5)`.
    pub fn with_volume(mut self, volume: Volume) -> Self {
        self.volume = volume;
        self
    }

    /// Panned: -1 (left) .. 1 (right).
    pub fn with_panning(mut self, panning: f32) -> Self {
        self.panning = panning;
        self
    }

    /// Starting `seconds` into the line (audio and face together).
    pub fn starting_at(mut self, seconds: f32) -> Self {
        self.start_at = seconds;
        self
    }

    /// Through the kira mixer track registered under `name` (see [`Speak::mixer_track`]).
    pub fn on_mixer_track(mut self, name: impl Into<String>) -> Self {
        self.mixer_track = Some(name.into());
        self
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

    /// With a baked face clip (see [`Speak::clip`]).
    pub fn with_clip(mut self, clip: Handle<FaceClipAsset>) -> Self {
        self.clip = Some(clip);
        self
    }

    /// With a tag (e.g. the subtitle).
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = tag.into();
        self
    }
}

/// Makes a face speak a live [`VoiceStream`] (e.g. a TTS engine's output pushed in
/// chunks): played as it arrives, behind a jitter buffer as long as the lip-sync's
/// lookahead, and lip-synced with the engine's streaming path. A line already playing on
/// that face is stopped. [`SpeechStarted`] is sent when the first chunk arrives (its
/// `duration` is 0: a stream's length is not known), [`SpeechFinished`] once the stream
/// was finished and has played out. The emotion comes from the face's [`super::EmotionState`].
#[derive(Message, Clone, Debug)]
pub struct SpeakStream {
    /// The face.
    pub entity: Entity,
    /// The stream (a clone of the producer's handle).
    pub stream: VoiceStream,
    /// Subtitle or caller tag, echoed in [`SpeechStarted`] / [`SpeechFinished`].
    pub tag: String,
    /// How loud the stream plays.
    pub volume: Volume,
    /// Stereo position, -1 (left) .. 1 (right).
    pub panning: f32,
    /// The kira mixer track it plays through (see [`Speak::mixer_track`]).
    pub mixer_track: Option<String>,
}

impl SpeakStream {
    /// Speak `stream` on `entity`.
    pub fn new(entity: Entity, stream: &VoiceStream) -> Self {
        Self {
            entity,
            stream: stream.clone(),
            tag: String::new(),
            volume: Volume::default(),
            panning: 0.0,
            mixer_track: None,
        }
    }

    /// With a tag (e.g. the subtitle).
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = tag.into();
        self
    }

    /// At a volume.
    pub fn with_volume(mut self, volume: Volume) -> Self {
        self.volume = volume;
        self
    }

    /// Panned: -1 (left) .. 1 (right).
    pub fn with_panning(mut self, panning: f32) -> Self {
        self.panning = panning;
        self
    }

    /// Through the kira mixer track registered under `name`.
    pub fn on_mixer_track(mut self, name: impl Into<String>) -> Self {
        self.mixer_track = Some(name.into());
        self
    }
}

/// Stops the face's current line (audio and lip-sync).
#[derive(Message, Clone, Debug, Reflect)]
pub struct StopSpeaking {
    /// The face.
    pub entity: Entity,
}

/// Moves a face's expression to a new target over `transition` seconds.
///
/// The target is resolved against the [`super::Emotions`] library when the plugin handles
/// the message: an unknown name or a non-finite intensity or weight is reported as an
/// [`EdTalkError`] (kind [`EdTalkErrorKind::Emotion`]) and the face keeps its expression.
#[derive(Message, Clone, Debug, Reflect)]
pub struct SetEmotion {
    /// The face.
    pub entity: Entity,
    /// Where the expression goes.
    pub target: EmotionTarget,
    /// Transition time in seconds.
    pub transition: f32,
    /// Transition curve (default: smoothstep).
    pub easing: Easing,
}

impl SetEmotion {
    /// One predefined emotion at full intensity, over 0.4 s.
    pub fn new(entity: Entity, emotion: Emotion) -> Self {
        Self::with_intensity(entity, emotion, 1.0)
    }

    /// One predefined emotion at an intensity (0..1; above 1 exaggerates, up to 2), over
    /// 0.4 s.
    pub fn with_intensity(entity: Entity, emotion: Emotion, intensity: f32) -> Self {
        Self::mix(entity, EmotionMix::single(emotion.name(), intensity))
    }

    /// An emotion by name (built-in or custom, from the [`super::Emotions`] library) at an
    /// intensity, over 0.4 s.
    pub fn named(entity: Entity, name: impl Into<String>, intensity: f32) -> Self {
        Self::mix(entity, EmotionMix::single(name, intensity))
    }

    /// A mix of emotions, over 0.4 s.
    pub fn mix(entity: Entity, mix: EmotionMix) -> Self {
        Self {
            entity,
            target: EmotionTarget::Mix(mix),
            transition: 0.4,
            easing: Easing::Smooth,
        }
    }

    /// Back to the portrait's own expression, over 0.4 s.
    pub fn own(entity: Entity) -> Self {
        Self {
            entity,
            target: EmotionTarget::Own,
            transition: 0.4,
            easing: Easing::Smooth,
        }
    }

    /// With a transition time in seconds.
    pub fn over(mut self, seconds: f32) -> Self {
        self.transition = seconds;
        self
    }

    /// With a transition curve.
    pub fn with_easing(mut self, easing: Easing) -> Self {
        self.easing = easing;
        self
    }
}

/// A line started playing on a face. Also triggered as an entity event on the face.
#[derive(Message, EntityEvent, Clone, Debug, Reflect)]
pub struct SpeechStarted {
    /// The face.
    pub entity: Entity,
    /// The [`Speak::tag`].
    pub tag: String,
    /// Line length in seconds.
    pub duration: f32,
    /// Sample rate of what is played: the file's own for voice-line files (the 16 kHz
    /// copy is only for lip-sync analysis).
    pub sample_rate: u32,
    /// Channels of what is played (the file's, up to two).
    pub channels: usize,
}

/// A line's first frames are ready: its audio starts now (with [`SpeechStarted`]). With
/// render-ahead on ([`super::EdTalkSettings::render_ahead`]) every rendered line waits for
/// this: a game frame or two on a renderer that keeps up, seconds when a slow renderer
/// renders the line ahead. Not sent for lines that start at once (render-ahead off, baked
/// clips).
#[derive(Message, Clone, Debug, Reflect)]
pub struct SpeechReady {
    /// The face.
    pub entity: Entity,
    /// The [`Speak::tag`].
    pub tag: String,
    /// Seconds the line waited for its frames.
    pub waited: f32,
}

/// A line ended (played out or stopped). Also triggered as an entity event on the face.
#[derive(Message, EntityEvent, Clone, Debug, Reflect)]
pub struct SpeechFinished {
    /// The face.
    pub entity: Entity,
    /// The [`Speak::tag`].
    pub tag: String,
    /// False when stopped early by [`StopSpeaking`] or a new [`Speak`].
    pub completed: bool,
}

/// The plugin's renderer changed: sent when the neural renderer, loaded in the background
/// after start-up, takes over the faces (until then they run on the procedural one).
#[derive(Message, Clone, Debug, Reflect)]
pub struct RendererReady {
    /// The renderer now in use.
    pub backend: crate::render::Backend,
}

/// What an [`EdTalkError`] is about, for games that handle some kinds themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Reflect)]
pub enum EdTalkErrorKind {
    /// A portrait image that did not load or cannot be used (format, size, crop, rig).
    Portrait,
    /// A voice line that did not load or decode.
    Audio,
    /// An emotion script or motion track that did not load, or names unknown emotions.
    Script,
    /// A character file that did not load or holds bad values.
    Character,
    /// An emotion request (a [`SetEmotion`], a default emotion) that does not resolve.
    Emotion,
    /// Neural checkpoints that are missing, corrupt or do not fit, or a device that is not
    /// available; the plugin falls back to the procedural renderer.
    Checkpoint,
    /// The inference worker: a render failure or a restart after a panic.
    Worker,
    /// A message sent to an entity that is not a face.
    Request,
}

/// Something went wrong for an entity (or for the plugin when `entity` is `None`): a bad
/// portrait, an unplayable line, a malformed RON file, a worker restart. The plugin also
/// logs it; the game keeps running.
#[derive(Message, Clone, Debug, Reflect)]
pub struct EdTalkError {
    /// The face concerned, if any.
    pub entity: Option<Entity>,
    /// What it is about.
    pub kind: EdTalkErrorKind,
    /// What went wrong, naming the file or value.
    pub message: String,
}
