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

mod align;
mod asset_errors;
mod assets;
mod audio;
mod characters;
mod components;
mod diagnostics;
mod emotions;
#[cfg(feature = "bevy_audio")]
mod follow;
mod frames;
mod lines;
mod messages;
mod portraits;
mod runtime;
mod settings;
mod speech;
mod startup;
mod stream_lines;
mod track_asset;
mod voice_stream;

pub use crate::model::Precision;
pub use align::PortraitAlign;
pub use assets::{
    AssetFileError, CharacterAsset, CharacterLoader, DefaultEmotion, EmotionScriptAsset,
    EmotionScriptLoader, VoiceLine, VoiceLineLoader,
};
pub use audio::{AudioOutput, EdTalkAudio, EdTalkAudioError, Volume};
pub use components::{
    Character, EmotionState, EmotionTarget, FacePortrait, IdleMotion, TalkingFace,
};
pub use diagnostics::EdTalkDiagnostics;
pub use emotions::Emotions;
#[cfg(feature = "bevy_audio")]
pub use follow::{Following, LipSyncTo};
/// The kira version the plugin plays voice on: name its types (`TrackBuilder`,
/// `AudioManager`) through this path to share a manager or add a voice track.
pub use kira;
pub use messages::{
    EdTalkError, EdTalkErrorKind, RendererReady, SetEmotion, Speak, SpeakStream, SpeechFinished,
    SpeechReady, SpeechStarted, StopSpeaking,
};
pub use runtime::FaceRuntime;
pub use settings::{BackendChoice, EdTalkSettings, InferenceDevice};
pub use track_asset::{FaceClipAsset, FaceClipLoader, MotionTrackAsset, MotionTrackLoader};
pub use voice_stream::{STREAM_PREBUFFER_SECS, VoiceStream, VoiceStreamError};

use bevy::prelude::*;

/// The plugin's systems, in the order they run in `Update`. Order your own systems against
/// them, e.g. write [`SetEmotion`] `.before(EdTalkSystems::Input)`.
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EdTalkSystems {
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
    /// Used unless the app already has an [`EdTalkSettings`] resource.
    pub settings: EdTalkSettings,
}

impl Plugin for EdTalkPlugin {
    fn build(&self, app: &mut App) {
        if !app.world().contains_resource::<EdTalkSettings>() {
            app.insert_resource(self.settings.clone());
        }
        // A game that handed its own kira manager over keeps it (one audio device).
        if !app.world().contains_non_send::<EdTalkAudio>() {
            let output = app.world().resource::<EdTalkSettings>().audio;
            app.insert_non_send(EdTalkAudio::new(output));
        }
        app.init_asset::<VoiceLine>()
            .init_asset::<CharacterAsset>()
            .init_asset::<EmotionScriptAsset>()
            .init_asset::<MotionTrackAsset>()
            .init_asset::<FaceClipAsset>()
            .init_asset_loader::<FaceClipLoader>()
            .init_asset_loader::<VoiceLineLoader>()
            .init_asset_loader::<MotionTrackLoader>()
            .init_asset_loader::<CharacterLoader>()
            .init_asset_loader::<EmotionScriptLoader>()
            .add_message::<Speak>()
            .add_message::<SpeakStream>()
            .add_message::<SpeechReady>()
            .register_type::<SpeechReady>()
            .add_message::<StopSpeaking>()
            .add_message::<SetEmotion>()
            .add_message::<SpeechStarted>()
            .add_message::<SpeechFinished>()
            .add_message::<EdTalkError>()
            .add_message::<RendererReady>()
            .register_type::<EdTalkSettings>()
            .register_type::<FacePortrait>()
            .register_type::<PortraitAlign>()
            .register_type::<TalkingFace>()
            .register_type::<Character>()
            .register_type::<IdleMotion>()
            .register_type::<EmotionState>()
            .register_type::<Speak>()
            .register_type::<StopSpeaking>()
            .register_type::<SetEmotion>()
            .register_type::<SpeechStarted>()
            .register_type::<SpeechFinished>()
            .register_type::<EdTalkError>()
            .register_type::<RendererReady>()
            .init_resource::<EdTalkDiagnostics>()
            .init_resource::<Emotions>()
            .add_observer(portraits::on_portrait_inserted)
            .add_observer(portraits::on_portrait_removed)
            .configure_sets(
                Update,
                (
                    EdTalkSystems::Input,
                    EdTalkSystems::Schedule,
                    EdTalkSystems::Upload,
                )
                    .chain(),
            )
            .add_systems(Startup, startup::start_worker);
        #[cfg(feature = "bevy_audio")]
        app.register_type::<LipSyncTo>()
            .add_observer(follow::on_lip_sync_removed)
            .add_systems(
                Update,
                follow::follow_bevy_audio
                    .after(lines::start_prepared_lines)
                    .before(emotions::resolve_requested_emotions)
                    .in_set(EdTalkSystems::Input),
            );
        app.add_systems(
            Update,
            (
                (
                    asset_errors::report_asset_errors,
                    startup::adopt_neural_renderer,
                    characters::apply_characters,
                    characters::reload_characters,
                    portraits::reregister_modified_images,
                    portraits::register_portraits,
                    lines::handle_stop,
                    lines::handle_speak,
                    stream_lines::handle_speak_stream,
                    lines::start_prepared_lines,
                    lines::start_rendered_ahead,
                    emotions::resolve_requested_emotions,
                    emotions::handle_set_emotion,
                )
                    .chain()
                    .in_set(EdTalkSystems::Input),
                (
                    stream_lines::pump_streams,
                    emotions::advance_emotions,
                    lines::finish_lines,
                    frames::request_frames,
                )
                    .chain()
                    .in_set(EdTalkSystems::Schedule),
                (frames::collect_frames, frames::upload_frames)
                    .chain()
                    .in_set(EdTalkSystems::Upload),
            ),
        );
    }
}

/// Makes every frame of the inference worker take at least `per_frame`: a deliberately
/// slow renderer, to exercise render-ahead (tests). Cargo feature `test-hooks`; not part of
/// the public API.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub fn set_min_frame_time(world: &mut World, per_frame: std::time::Duration) {
    if let Some(w) = world
        .get_resource::<runtime::WorkerRes>()
        .and_then(|r| r.worker.as_ref())
    {
        let _ = w.set_min_frame_time(per_frame);
    }
}

/// Whether the neural renderer is still loading in the background.
#[cfg(feature = "cli")]
pub(crate) fn neural_loading(world: &World) -> bool {
    world.contains_resource::<startup::PendingNeural>()
}

/// Makes the inference worker's renderer panic once, to exercise recovery (tests, chaos
/// drills). The worker rebuilds its renderer and an [`EdTalkError`] reports it. Cargo
/// feature `test-hooks`; not part of the public API.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub fn inject_worker_panic(world: &mut World) {
    if let Some(w) = world
        .get_resource::<runtime::WorkerRes>()
        .and_then(|r| r.worker.as_ref())
    {
        let _ = w.inject_panic();
    }
}
