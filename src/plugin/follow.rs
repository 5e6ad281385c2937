//! Faces that follow sounds the game plays with Bevy's own audio: [`LipSyncTo`].
//!
//! The plugin decodes the same [`AudioSource`] bytes itself (off the main thread) and
//! keys the face to the sink's playback position (`AudioSinkPlayback::position`), so a
//! paused, sped-up or late-starting sound stays in sync. Before Bevy has made a sink (or
//! where it never does, e.g. without an audio device) the face follows the time since
//! the sound appeared.

use std::sync::Arc;

use bevy::asset::LoadState;
use bevy::audio::{AudioPlayer, AudioSink, AudioSinkPlayback, AudioSource, SpatialAudioSink};
use bevy::prelude::*;
use bevy::tasks::{AsyncComputeTaskPool, Task, block_on, poll_once};

use super::assets::VoiceLine;
use super::audio::Playback;
use super::lines::{LineOutput, end_line};
use super::messages::*;
use super::runtime::{ActiveLine, FaceRuntime, WorkerRes};
use super::settings::EdTalkSettings;
use super::speech::{self, PreparedLine};
use crate::audio::{DecodeOptions, decode_bytes};

/// Lip-syncs this face to the sound an entity plays with Bevy's [`AudioPlayer`]
/// (cargo feature `bevy_audio`). Every sound that entity plays is followed, from when it
/// starts until it ends or the entity goes away.
///
/// ```no_run
/// # use bevy::prelude::*;
/// # use bevy_edtalk::plugin::*;
/// fn setup(mut commands: Commands, assets: Res<AssetServer>) {
///     let voice = commands
///         .spawn(AudioPlayer::new(assets.load("voice/greeting.ogg")))
///         .id();
///     commands.spawn((
///         FacePortrait::new(assets.load("portraits/ada.png")),
///         Sprite::default(),
///         LipSyncTo(voice),
///     ));
/// }
/// ```
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq, Reflect)]
#[reflect(Component)]
#[require(Following)]
pub struct LipSyncTo(pub Entity);

/// What a [`LipSyncTo`] face is following (internal).
#[derive(Component, Default)]
pub struct Following {
    /// The sound being followed.
    source: Option<AssetId<AudioSource>>,
    /// When it was first seen: the clock where no sink position is exposed.
    seen_at: f64,
    task: Option<Task<Result<Prepared, String>>>,
    /// Its analysis failed (reported once; not retried).
    failed: bool,
    /// Its line has started (it is not started again when it ends or is stopped).
    started: bool,
}

/// A prepared line and the sound's own (rate, channels).
type Prepared = (PreparedLine, (u32, usize));

type Target<'a> = (
    &'a AudioPlayer,
    Option<&'a AudioSink>,
    Option<&'a SpatialAudioSink>,
);

/// The followed sound's position and whether it has played out, from its sink when there
/// is one, else from the time since it appeared.
fn sink_state(target: &Target, seen_at: f64, now: f64, duration: f64) -> (f64, bool) {
    match (target.1, target.2) {
        (Some(s), _) => (s.position().as_secs_f64(), s.empty()),
        (None, Some(s)) => (s.position().as_secs_f64(), s.empty()),
        (None, None) => {
            let t = (now - seen_at).max(0.0);
            (t.min(duration), t >= duration)
        }
    }
}

/// Starts, keys and ends the lines of [`LipSyncTo`] faces.
pub(crate) fn follow_bevy_audio(
    mut faces: Query<(Entity, &LipSyncTo, &mut FaceRuntime, &mut Following)>,
    targets: Query<Target>,
    sources: Option<Res<Assets<AudioSource>>>,
    server: Res<AssetServer>,
    worker: Res<WorkerRes>,
    clock: (Res<Time>, Res<EdTalkSettings>),
    mut out: LineOutput,
) {
    let now = clock.0.elapsed_secs_f64();
    let fps = clock.1.fps() as f64;
    for (entity, lip, mut rt, mut follow) in &mut faces {
        let rt = &mut *rt;
        let ours = |rt: &FaceRuntime| rt.line.as_ref().is_some_and(|l| l.follows.is_some());
        let Ok(target) = targets.get(lip.0) else {
            // The sound's entity is gone or plays nothing: its line (if any) ends.
            if ours(rt) {
                out.end(entity, rt, true);
            }
            *follow = Following::default();
            continue;
        };
        let id = target.0.0.id();
        if follow.source != Some(id) {
            if ours(rt) {
                out.end(entity, rt, false);
            }
            *follow = Following {
                source: Some(id),
                seen_at: now,
                ..Default::default()
            };
        }
        if follow.failed || (follow.started && !ours(rt)) {
            continue;
        }
        // Keep a following line keyed to the sink.
        if let Some(line) = rt.line.as_mut().filter(|l| l.follows == Some(lip.0)) {
            let duration = line.motion.len() as f64 / fps;
            let (position, done) = sink_state(&target, follow.seen_at, now, duration);
            line.playback = Playback::External {
                position,
                finished: done,
            };
            continue;
        }
        if follow.task.is_none() {
            let Some(sources) = sources.as_deref() else {
                follow.failed = true;
                out.report(
                    entity,
                    EdTalkErrorKind::Audio,
                    "LipSyncTo: the app has no Bevy audio assets (add Bevy's AudioPlugin)".into(),
                );
                continue;
            };
            let Some(source) = sources.get(id) else {
                if let LoadState::Failed(e) = server.load_state(id) {
                    follow.failed = true;
                    out.report(
                        entity,
                        EdTalkErrorKind::Audio,
                        format!("LipSyncTo: the followed sound did not load: {e}"),
                    );
                }
                continue;
            };
            let bytes = source.bytes.to_vec();
            let name = target
                .0
                .0
                .path()
                .map_or("followed sound".into(), |p| p.to_string());
            let model = worker.audio2lip.clone();
            follow.task = Some(AsyncComputeTaskPool::get().spawn(async move {
                let decoded = decode_bytes(bytes, &name, &DecodeOptions::default())
                    .map_err(|e| e.to_string())?;
                let format = (decoded.source_rate, decoded.source_channels.min(2));
                let line = VoiceLine::from_mono(decoded.samples, crate::audio::SAMPLE_RATE);
                speech::prepare_line(&line, model, None, None).map(|p| (p, format))
            }));
        }
        let Some(task) = follow.task.as_mut() else {
            continue;
        };
        let Some(result) = block_on(poll_once(task)) else {
            continue;
        };
        follow.task = None;
        match result {
            Ok((prepared, (rate, channels))) => {
                follow.started = true;
                out.end(entity, rt, false);
                let duration = prepared.samples.len() as f64 / prepared.sample_rate.max(1) as f64;
                let (position, done) = sink_state(&target, follow.seen_at, now, duration);
                // The face joins the sound where it is now.
                let base_key = rt.key + 1 - (position * fps).floor() as i64;
                rt.line = Some(ActiveLine {
                    playback: Playback::External {
                        position,
                        finished: done,
                    },
                    motion: Arc::new(prepared.motion),
                    own_pose: false,
                    base_key,
                    tag: String::new(),
                    script: None,
                    next_script_key: 0,
                    stream: None,
                    starved: None,
                    follows: Some(lip.0),
                    waiting: None,
                    clip: None,
                    procedural: false,
                });
                let current = rt.key;
                rt.invalidate(current);
                let event = SpeechStarted {
                    entity,
                    tag: String::new(),
                    duration: duration as f32,
                    sample_rate: rate,
                    channels,
                };
                out.started(event);
            }
            Err(e) => {
                follow.failed = true;
                out.report(entity, EdTalkErrorKind::Audio, format!("LipSyncTo: {e}"));
            }
        }
    }
}

/// A face that stops following: its following line ends.
pub(crate) fn on_lip_sync_removed(
    removed: On<Remove, LipSyncTo>,
    mut faces: Query<&mut FaceRuntime>,
    mut finished: MessageWriter<SpeechFinished>,
    mut commands: Commands,
) {
    if let Ok(mut rt) = faces.get_mut(removed.entity)
        && rt.line.as_ref().is_some_and(|l| l.follows.is_some())
    {
        end_line(removed.entity, &mut rt, false, &mut finished, &mut commands);
    }
}
