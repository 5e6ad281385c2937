//! The Bevy plugin: talking, emoting portraits as components.
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_edtalk::plugin::*;
//!
//! fn setup(mut commands: Commands, assets: Res<AssetServer>, mut speak: MessageWriter<Speak>) {
//!     let npc = commands
//!         .spawn((
//!             FacePortrait::new(assets.load("portraits/ada.png")),
//!             Sprite::default(), // the face is shown on this sprite
//!         ))
//!         .id();
//!     speak.write(Speak::new(npc, assets.load("voice/greeting.wav")));
//! }
//! ```
//!
//! Data flow: [`Speak`] decodes the line off the main thread and starts it on the kira
//! audio output; every game frame the plugin asks the inference worker for the next few
//! 25 fps frames of each face (mouth from the line, expression from [`EmotionState`], head
//! from the pose source) and moves the frame for the sound's playback position into the
//! face's [`Image`].

mod assets;
mod audio;
mod characters;
mod components;
mod diagnostics;
mod messages;
mod speech;
mod systems;
mod track_asset;

pub use assets::{
    CharacterAsset, CharacterLoader, DefaultEmotion, EmotionScriptAsset, EmotionScriptLoader,
    RonAssetError, VoiceLine, VoiceLineLoader,
};
pub use audio::{AudioOutput, EdTalkAudio};
pub use components::{
    Character, EmotionState, ExpressionTarget, FacePortrait, IdleMotion, TalkingFace,
};
pub use diagnostics::EdTalkDiagnostics;
pub use messages::{EdTalkError, SetEmotion, Speak, SpeechFinished, SpeechStarted, StopSpeaking};
pub use systems::Emotions;
pub use track_asset::{MotionTrackAsset, MotionTrackLoader};

use std::path::PathBuf;

use bevy::prelude::*;

/// Which renderer the plugin uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BackendChoice {
    /// Neural when the checkpoints are in [`EdTalkSettings::ckpt_dir`], else procedural.
    #[default]
    Auto,
    /// Always the neural renderer; if the checkpoints fail to load, the plugin reports it
    /// and falls back to procedural so the game keeps running.
    Neural,
    /// Always the procedural face rig.
    Procedural,
}

/// Where inference runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InferenceDevice {
    #[default]
    Cpu,
    /// CUDA device N (cargo feature `cuda`).
    Cuda(usize),
    /// Metal (cargo feature `metal`).
    Metal,
}

/// Plugin settings; insert before adding the plugin, or pass through [`EdTalkPlugin`].
#[derive(Resource, Clone, Debug)]
pub struct EdTalkSettings {
    pub backend: BackendChoice,
    pub device: InferenceDevice,
    /// Directory holding EDTalk.pt / Audio2Lip.pt (see ckpts/README.md).
    pub ckpt_dir: PathBuf,
    /// Threads of the inference worker's own pool.
    pub inference_threads: usize,
    /// Face frames per second (EDTalk's rate is 25).
    pub frame_rate: f32,
    /// Side of the generated face textures in pixels (the neural model fixes it at 256).
    pub face_resolution: u32,
    /// How far ahead of the playback position frames are requested, in seconds.
    pub prebuffer: f32,
    /// Audio output for voice lines.
    pub audio: AudioOutput,
    /// Small head sway and blinks while faces are on screen (off: faces hold still
    /// between lines). Per-face settings: [`IdleMotion`].
    pub idle_motion: bool,
    /// With the neural renderer, keep the memory that each frame's activations free in
    /// the process for the next frame instead of returning it to the OS
    /// ([`crate::heap::retain_freed_memory`]; Linux/glibc only, process-wide).
    pub retain_freed_memory: bool,
}

impl Default for EdTalkSettings {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            device: InferenceDevice::Cpu,
            ckpt_dir: PathBuf::from("ckpts"),
            inference_threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .saturating_sub(1)
                .max(1),
            frame_rate: crate::motion::MOTION_FPS,
            face_resolution: 256,
            prebuffer: 0.12,
            audio: AudioOutput::Auto,
            idle_motion: true,
            retain_freed_memory: true,
        }
    }
}

/// The plugin's systems, in the order they run in `Update`. Order your own systems against
/// them, e.g. write [`SetEmotion`] `.before(EdTalkSet::Input)`.
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EdTalkSet {
    /// Reads messages, registers portraits, starts and stops lines.
    Input,
    /// Advances emotion transitions and scripts, requests frames from the worker.
    Schedule,
    /// Collects frames and uploads the one for the current playback position.
    Upload,
}

/// Adds talking portraits to an app.
#[derive(Default)]
pub struct EdTalkPlugin {
    pub settings: EdTalkSettings,
}

impl Plugin for EdTalkPlugin {
    fn build(&self, app: &mut App) {
        if !app.world().contains_resource::<EdTalkSettings>() {
            app.insert_resource(self.settings.clone());
        }
        let output = app.world().resource::<EdTalkSettings>().audio;
        app.insert_non_send(EdTalkAudio::new(output));
        app.init_asset::<VoiceLine>()
            .init_asset::<CharacterAsset>()
            .init_asset::<EmotionScriptAsset>()
            .init_asset::<MotionTrackAsset>()
            .init_asset_loader::<VoiceLineLoader>()
            .init_asset_loader::<MotionTrackLoader>()
            .init_asset_loader::<CharacterLoader>()
            .init_asset_loader::<EmotionScriptLoader>()
            .add_message::<Speak>()
            .add_message::<StopSpeaking>()
            .add_message::<SetEmotion>()
            .add_message::<SpeechStarted>()
            .add_message::<SpeechFinished>()
            .add_message::<EdTalkError>()
            .init_resource::<EdTalkDiagnostics>()
            .init_resource::<Emotions>()
            .configure_sets(
                Update,
                (EdTalkSet::Input, EdTalkSet::Schedule, EdTalkSet::Upload).chain(),
            )
            .add_systems(Startup, systems::start_worker)
            .add_systems(
                Update,
                (
                    (
                        systems::report_asset_errors,
                        characters::apply_characters,
                        characters::reload_characters,
                        systems::register_portraits,
                        systems::handle_stop,
                        systems::handle_speak,
                        systems::start_prepared_lines,
                        systems::handle_set_emotion,
                    )
                        .chain()
                        .in_set(EdTalkSet::Input),
                    (
                        systems::advance_emotions,
                        systems::finish_lines,
                        systems::request_frames,
                    )
                        .chain()
                        .in_set(EdTalkSet::Schedule),
                    (
                        systems::collect_frames,
                        systems::upload_frames,
                        systems::forget_removed,
                    )
                        .chain()
                        .in_set(EdTalkSet::Upload),
                ),
            );
    }
}

/// Makes the inference worker's renderer panic once, to exercise recovery (tests, chaos
/// drills). The worker rebuilds its renderer and an [`EdTalkError`] reports it.
#[doc(hidden)]
pub fn inject_worker_panic(world: &mut World) {
    if let Some(w) = world
        .get_resource::<systems::WorkerRes>()
        .and_then(|r| r.worker.as_ref())
    {
        let _ = w.inject_panic();
    }
}
