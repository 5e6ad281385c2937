//! The plugin's systems. Per face, a monotonic *frame key* counts 25 fps frames on the
//! face's clock: game time while idle, the sound's playback position while a line plays.
//! Frames are requested a little ahead of the key (`prebuffer`), rendered on the worker
//! and shown when the key reaches them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bevy::asset::{AssetLoadFailedEvent, RenderAssetUsages};
use bevy::image::TextureFormatPixelInfo;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy::tasks::{AsyncComputeTaskPool, Task, block_on, poll_once};

use super::assets::{CharacterAsset, EmotionScriptAsset, VoiceLine};
use super::audio::{EdTalkAudio, Playback};
use super::components::{EmotionState, ExpressionTarget, FacePortrait, IdleMotion, TalkingFace};
use super::diagnostics::EdTalkDiagnostics;
use super::messages::*;
use super::speech;
use super::track_asset::MotionTrackAsset;
use super::{BackendChoice, EdTalkSettings};
use crate::model::audio2lip::Audio2Lip;
use crate::motion::{EmotionLibrary, MotionFrame};
use crate::render::{FaceFrame, IdentityId, Portrait};
use crate::worker::{FrameJob, Worker, WorkerEvent, WorkerSettings};

/// The emotions faces and scripts can use: the eight built-in ones plus custom emotions
/// (add them with `EmotionLibrary::insert` or `load_custom_ron`).
#[derive(Resource, Clone, Debug, Default)]
pub struct Emotions(pub EmotionLibrary);

/// The inference worker, if it could be started.
#[derive(Resource, Default)]
pub(crate) struct WorkerRes {
    pub(crate) worker: Option<Worker>,
    /// Audio2Lip, when its checkpoint loaded: mouth coefficients for the neural renderer.
    pub(crate) audio2lip: Option<Arc<Audio2Lip>>,
    faces: HashMap<IdentityId, Entity>,
    fps_window: (f64, u64),
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
enum Registration {
    #[default]
    None,
    Pending,
    Ready,
    Failed,
}

struct ActiveLine {
    playback: Playback,
    motion: Arc<Vec<MotionFrame>>,
    own_pose: bool,
    base_key: i64,
    tag: String,
    script: Option<EmotionScriptAsset>,
    next_script_key: usize,
}

struct PendingLine {
    request: Speak,
    task: Option<Task<Result<speech::PreparedLine, String>>>,
}

/// Per-face bookkeeping (internal; added with [`FacePortrait`]).
#[derive(Component, Default)]
pub struct FaceRuntime {
    registration: Registration,
    registered: Option<AssetId<Image>>,
    reported_missing: bool,
    line: Option<ActiveLine>,
    pending: Option<PendingLine>,
    key: i64,
    epoch: u32,
    invalid_after: i64,
    requested_upto: i64,
    outstanding: BTreeSet<i64>,
    buffer: BTreeMap<i64, (u32, FaceFrame)>,
    shown: Option<i64>,
    last_motion: Option<MotionFrame>,
}

fn identity_of(entity: Entity) -> IdentityId {
    entity.to_bits()
}

fn report(errors: &mut MessageWriter<EdTalkError>, entity: Option<Entity>, message: String) {
    match entity {
        Some(e) => warn!("bevy_edtalk: {e}: {message}"),
        None => warn!("bevy_edtalk: {message}"),
    }
    errors.write(EdTalkError { entity, message });
}

/// Startup: builds the renderer on the worker thread; neural if asked and possible.
pub(crate) fn start_worker(world: &mut World) {
    let settings = world.resource::<EdTalkSettings>().clone();
    let worker_settings = WorkerSettings {
        threads: settings.inference_threads.max(1),
        ..Default::default()
    };
    let mut failures = Vec::new();
    let mut worker = None;
    let (factories, mut audio2lip) = speech::renderer_factories(&settings, &mut failures);
    for factory in factories {
        match Worker::spawn(factory, worker_settings.clone()) {
            Ok(w) => {
                worker = Some(w);
                break;
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    if worker.as_ref().map(|w| w.backend()) != Some(crate::render::Backend::Neural) {
        // Audio2Lip only feeds the neural renderer.
        audio2lip = None;
    }
    if settings.backend == BackendChoice::Neural && !failures.is_empty() {
        failures.push("falling back to the procedural renderer".into());
    }
    let backend = worker.as_ref().map(|w| w.backend());
    if let Some(b) = backend {
        info!("bevy_edtalk: {b} renderer on the inference thread");
    }
    if backend == Some(crate::render::Backend::Neural)
        && settings.retain_freed_memory
        && crate::heap::retain_freed_memory()
    {
        debug!("bevy_edtalk: glibc keeps freed frame activations for reuse");
    }
    world.resource_mut::<EdTalkDiagnostics>().backend = backend;
    world.insert_resource(WorkerRes {
        worker,
        audio2lip,
        ..Default::default()
    });
    for message in failures {
        warn!("bevy_edtalk: {message}");
        world.write_message(EdTalkError {
            entity: None,
            message,
        });
    }
}

/// Forwards asset load failures of the plugin's asset types as [`EdTalkError`]s.
pub(crate) fn report_asset_errors(
    mut lines: MessageReader<AssetLoadFailedEvent<VoiceLine>>,
    mut scripts: MessageReader<AssetLoadFailedEvent<EmotionScriptAsset>>,
    mut characters: MessageReader<AssetLoadFailedEvent<CharacterAsset>>,
    mut tracks: MessageReader<AssetLoadFailedEvent<MotionTrackAsset>>,
    mut images: MessageReader<AssetLoadFailedEvent<Image>>,
    mut errors: MessageWriter<EdTalkError>,
) {
    let msgs: Vec<String> = lines
        .read()
        .map(|e| e.error.to_string())
        .chain(scripts.read().map(|e| e.error.to_string()))
        .chain(characters.read().map(|e| e.error.to_string()))
        .chain(tracks.read().map(|e| e.error.to_string()))
        .chain(images.read().map(|e| e.error.to_string()))
        .collect();
    for m in msgs {
        // Bevy's error text may carry a backtrace: the first line says what went wrong.
        let first = m.lines().next().unwrap_or_default().to_string();
        report(&mut errors, None, first);
    }
}

fn new_face_image(size: u32) -> Image {
    Image::new_fill(
        Extent3d {
            width: size,
            height: size,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        &[0, 0, 0, 0],
        TextureFormat::Rgba8UnormSrgb,
        // Main and render world: the frame bytes are moved in each update; the GPU texture
        // is written in place (same descriptor), never re-created.
        RenderAssetUsages::default(),
    )
}

/// Converts a Bevy image to the renderers' portrait (RGBA8, optional crop).
fn portrait_from_image(image: &Image, crop: Option<[u32; 4]>) -> Result<Portrait, String> {
    let rgba = match image.texture_descriptor.format {
        TextureFormat::Rgba8UnormSrgb | TextureFormat::Rgba8Unorm => image.clone(),
        other => image
            .convert(TextureFormat::Rgba8UnormSrgb)
            .ok_or_else(|| format!("portrait texture format {other:?} cannot be converted"))?,
    };
    let (w, h) = (rgba.width(), rgba.height());
    let data = rgba.data.ok_or("portrait image has no CPU-side pixels")?;
    debug_assert_eq!(
        TextureFormat::Rgba8UnormSrgb.pixel_size().ok(),
        Some(4),
        "RGBA8 is 4 bytes a pixel"
    );
    let portrait = Portrait::from_rgba(w, h, data).map_err(|e| e.to_string())?;
    match crop {
        None => Ok(portrait),
        Some([x, y, cw, ch]) => {
            if cw == 0 || ch == 0 || x.saturating_add(cw) > w || y.saturating_add(ch) > h {
                return Err(format!(
                    "crop [{x}, {y}, {cw}, {ch}] is outside the {w}x{h} portrait"
                ));
            }
            let mut out = Vec::with_capacity((cw * ch * 4) as usize);
            for row in y..y + ch {
                let start = ((row * w + x) * 4) as usize;
                out.extend_from_slice(&portrait.rgba[start..start + (cw * 4) as usize]);
            }
            Portrait::from_rgba(cw, ch, out).map_err(|e| e.to_string())
        }
    }
}

type PortraitFace = (
    Entity,
    Ref<'static, FacePortrait>,
    &'static mut TalkingFace,
    &'static mut FaceRuntime,
    Option<&'static mut Sprite>,
);

/// Registers new or changed portraits with the worker and gives each face its texture.
#[allow(clippy::too_many_arguments)]
pub(crate) fn register_portraits(
    mut faces: Query<PortraitFace>,
    mut images: ResMut<Assets<Image>>,
    mut image_events: MessageReader<AssetEvent<Image>>,
    asset_server: Res<AssetServer>,
    settings: Res<EdTalkSettings>,
    mut worker: ResMut<WorkerRes>,
    mut errors: MessageWriter<EdTalkError>,
) {
    let modified: Vec<AssetId<Image>> = image_events
        .read()
        .filter_map(|e| match e {
            AssetEvent::Modified { id } => Some(*id),
            _ => None,
        })
        .collect();
    let size = worker
        .worker
        .as_ref()
        .map_or(settings.face_resolution, |w| w.resolution());
    for (entity, portrait, mut face, mut rt, sprite) in &mut faces {
        if face.image == Handle::default() {
            face.image = images.add(new_face_image(size));
        }
        if let Some(mut sprite) = sprite
            && sprite.image != face.image
        {
            sprite.image = face.image.clone();
        }
        let id = portrait.image.id();
        // A replaced component (e.g. a reloaded character's rig or crop) re-registers too.
        let changed = rt.registered != Some(id) || modified.contains(&id) || portrait.is_changed();
        if !changed {
            continue;
        }
        let Some(image) = images.get(id) else {
            if let bevy::asset::LoadState::Failed(e) = asset_server.load_state(id)
                && !rt.reported_missing
            {
                rt.reported_missing = true;
                rt.registration = Registration::Failed;
                report(
                    &mut errors,
                    Some(entity),
                    format!("portrait did not load: {e}"),
                );
            }
            continue;
        };
        rt.registered = Some(id);
        let portrait_px = match portrait_from_image(image, portrait.crop) {
            Ok(p) => p,
            Err(e) => {
                rt.registration = Registration::Failed;
                report(&mut errors, Some(entity), format!("bad portrait: {e}"));
                continue;
            }
        };
        // Show the still portrait until the first rendered frame arrives.
        let still = portrait_px.fit_square(size);
        if let Some(mut img) = images.get_mut(&face.image) {
            img.data = Some(still.rgba);
        }
        let Some(w) = worker.worker.as_ref() else {
            continue;
        };
        let key = identity_of(entity);
        match w.set_identity(key, Arc::new(portrait_px), portrait.rig.clone()) {
            Ok(()) => {
                rt.registration = Registration::Pending;
                worker.faces.insert(key, entity);
            }
            Err(e) => {
                // Try again next frame.
                rt.registered = None;
                report(&mut errors, Some(entity), e.to_string());
            }
        }
    }
}

fn end_line(
    entity: Entity,
    rt: &mut FaceRuntime,
    completed: bool,
    finished: &mut MessageWriter<SpeechFinished>,
) {
    if let Some(mut line) = rt.line.take() {
        if !completed {
            line.playback.stop();
        }
        finished.write(SpeechFinished {
            entity,
            tag: line.tag,
            completed,
        });
    }
}

/// [`StopSpeaking`]: stops audio and lip-sync.
pub(crate) fn handle_stop(
    mut stops: MessageReader<StopSpeaking>,
    mut faces: Query<&mut FaceRuntime>,
    mut finished: MessageWriter<SpeechFinished>,
) {
    for stop in stops.read() {
        if let Ok(mut rt) = faces.get_mut(stop.entity) {
            rt.pending = None;
            end_line(stop.entity, &mut rt, false, &mut finished);
        }
    }
}

/// [`Speak`]: queues the line; it starts once decoded and its motion is prepared.
pub(crate) fn handle_speak(
    mut speaks: MessageReader<Speak>,
    mut faces: Query<&mut FaceRuntime>,
    mut errors: MessageWriter<EdTalkError>,
) {
    for speak in speaks.read() {
        match faces.get_mut(speak.entity) {
            Ok(mut rt) => {
                rt.pending = Some(PendingLine {
                    request: speak.clone(),
                    task: None,
                })
            }
            Err(_) => report(
                &mut errors,
                Some(speak.entity),
                "Speak sent to an entity without a FacePortrait".into(),
            ),
        }
    }
}

/// Prepares queued lines off the main thread and starts them when ready.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_prepared_lines(
    mut faces: Query<(Entity, &mut FaceRuntime)>,
    lines: Res<Assets<VoiceLine>>,
    scripts: Res<Assets<EmotionScriptAsset>>,
    tracks: Res<Assets<MotionTrackAsset>>,
    asset_server: Res<AssetServer>,
    mut audio: NonSendMut<EdTalkAudio>,
    time: Res<Time>,
    worker: Res<WorkerRes>,
    mut started: MessageWriter<SpeechStarted>,
    mut finished: MessageWriter<SpeechFinished>,
    mut errors: MessageWriter<EdTalkError>,
) {
    let now = time.elapsed_secs_f64();
    for (entity, mut rt) in &mut faces {
        let Some(mut pending) = rt.pending.take() else {
            continue;
        };
        if pending.task.is_none() {
            let line_id = pending.request.line.id();
            let Some(line) = lines.get(line_id) else {
                if let bevy::asset::LoadState::Failed(e) = asset_server.load_state(line_id) {
                    report(&mut errors, Some(entity), format!("voice line: {e}"));
                } else {
                    rt.pending = Some(pending);
                }
                continue;
            };
            // A track still loading delays the line; a failed one is reported and the
            // mouth comes from the audio instead.
            let track = match &pending.request.track {
                Some(h) => match tracks.get(h) {
                    Some(t) => Some(t.0.clone()),
                    None => {
                        if let bevy::asset::LoadState::Failed(e) = asset_server.load_state(h) {
                            report(&mut errors, Some(entity), format!("motion track: {e}"));
                            None
                        } else {
                            rt.pending = Some(pending);
                            continue;
                        }
                    }
                },
                None => None,
            };
            let line = line.clone();
            let model = worker.audio2lip.clone();
            let pose = pending.request.pose.clone();
            pending.task =
                Some(AsyncComputeTaskPool::get().spawn(async move {
                    speech::prepare_line(&line, model, pose, track.as_ref())
                }));
        }
        let result = {
            let task = pending.task.as_mut().expect("task set above");
            block_on(poll_once(task))
        };
        let Some(result) = result else {
            rt.pending = Some(pending);
            continue;
        };
        // A script still loading delays the line a little; a failed one is reported.
        let script = match &pending.request.script {
            Some(h) => match scripts.get(h) {
                Some(s) => Some(s.clone()),
                None => {
                    if let bevy::asset::LoadState::Failed(e) = asset_server.load_state(h) {
                        report(&mut errors, Some(entity), format!("emotion script: {e}"));
                        None
                    } else {
                        // Keep the finished preparation and wait for the script.
                        let ready = result;
                        pending.task =
                            Some(AsyncComputeTaskPool::get().spawn(async move { ready }));
                        rt.pending = Some(pending);
                        continue;
                    }
                }
            },
            None => None,
        };
        match result {
            Ok(prepared) => {
                end_line(entity, &mut rt, false, &mut finished);
                let playback = audio.play(&prepared.samples, prepared.sample_rate, now);
                let duration = prepared.samples.len() as f32 / prepared.sample_rate as f32;
                let base_key = rt.key + 1;
                rt.line = Some(ActiveLine {
                    playback,
                    motion: Arc::new(prepared.motion),
                    own_pose: prepared.own_pose,
                    base_key,
                    tag: pending.request.tag.clone(),
                    script,
                    next_script_key: 0,
                });
                // Frames requested before the line carry a closed mouth: re-request them.
                invalidate(&mut rt, base_key - 1);
                started.write(SpeechStarted {
                    entity,
                    tag: pending.request.tag,
                    duration,
                });
            }
            Err(e) => report(&mut errors, Some(entity), format!("voice line: {e}")),
        }
    }
}

/// Frames after `after` are outdated: drop them and request them again.
fn invalidate(rt: &mut FaceRuntime, after: i64) {
    rt.epoch = rt.epoch.wrapping_add(1);
    rt.invalid_after = after;
    rt.buffer.retain(|&k, _| k <= after);
    rt.outstanding.retain(|&k| k <= after);
    rt.requested_upto = rt.requested_upto.min(after);
    rt.last_motion = None;
}

/// [`SetEmotion`]: starts a transition on the face clock.
pub(crate) fn handle_set_emotion(
    mut sets: MessageReader<SetEmotion>,
    mut faces: Query<(&mut EmotionState, &FaceRuntime)>,
    settings: Res<EdTalkSettings>,
    mut errors: MessageWriter<EdTalkError>,
) {
    for set in sets.read() {
        match faces.get_mut(set.entity) {
            Ok((mut state, rt)) => {
                let now = rt.key as f64 / settings.frame_rate as f64;
                state.transition_to(set.target.clone(), now, set.transition);
            }
            Err(_) => report(
                &mut errors,
                Some(set.entity),
                "SetEmotion sent to an entity without a FacePortrait".into(),
            ),
        }
    }
}

/// Moves each face's clock and plays emotion-script keys.
pub(crate) fn advance_emotions(
    mut faces: Query<(&mut FaceRuntime, &mut EmotionState, &mut TalkingFace)>,
    library: Res<Emotions>,
    time: Res<Time>,
    settings: Res<EdTalkSettings>,
) {
    let now = time.elapsed_secs_f64();
    let fps = settings.frame_rate as f64;
    for (mut rt, mut state, mut face) in &mut faces {
        let position = rt.line.as_ref().map(|l| l.playback.position(now) as f32);
        if face.line_position != position {
            face.line_position = position;
        }
        let rt = &mut *rt;
        let key = match &rt.line {
            Some(line) => line.base_key + (line.playback.position(now) * fps).floor() as i64,
            None => (now * fps).floor() as i64,
        };
        rt.key = rt.key.max(key);
        let face_t = rt.key as f64 / fps;
        face.clock = face_t;
        if let Some(line) = &mut rt.line
            && let Some(script) = &line.script
        {
            let line_t = ((rt.key - line.base_key) as f64 / fps) as f32;
            while let Some(k) = script.0.keys.get(line.next_script_key) {
                if k.time > line_t {
                    break;
                }
                // Validated at load, so every key resolves.
                if let Some(target) = k
                    .to_mix()
                    .and_then(|mix| ExpressionTarget::mix(&mix, &library.0).ok())
                {
                    state.transition_to(target, face_t, k.blend);
                }
                line.next_script_key += 1;
            }
        }
    }
}

/// Ends lines that played out.
pub(crate) fn finish_lines(
    mut faces: Query<(Entity, &mut FaceRuntime)>,
    time: Res<Time>,
    mut finished: MessageWriter<SpeechFinished>,
) {
    let now = time.elapsed_secs_f64();
    for (entity, mut rt) in &mut faces {
        if rt.line.as_ref().is_some_and(|l| l.playback.finished(now)) {
            end_line(entity, &mut rt, true, &mut finished);
        }
    }
}

type RequestFace = (
    Entity,
    &'static mut FaceRuntime,
    Ref<'static, EmotionState>,
    Option<Ref<'static, IdleMotion>>,
);

/// Asks the worker for the frames each face needs next, all faces in one batch.
pub(crate) fn request_frames(
    mut faces: Query<RequestFace>,
    worker: Res<WorkerRes>,
    settings: Res<EdTalkSettings>,
    mut diag: ResMut<EdTalkDiagnostics>,
) {
    let Some(w) = worker.worker.as_ref() else {
        return;
    };
    let fps = settings.frame_rate;
    let ahead = (settings.prebuffer.max(0.0) * fps).ceil() as i64;
    let mut jobs = Vec::new();
    let mut requested: Vec<(Entity, i64)> = Vec::new();
    let default_idle = IdleMotion::default();
    for (entity, mut rt, emotion, idle) in &mut faces {
        if rt.registration != Registration::Ready {
            continue;
        }
        let rt = &mut *rt;
        // Added or changed idle settings (e.g. a reloaded character) count too.
        let idle_changed = idle.as_ref().is_some_and(|i| i.is_changed());
        if (emotion.is_changed() && !emotion.is_added()) || idle_changed {
            // Takes effect on the next face frame, not after the prebuffer.
            let k = rt.key;
            invalidate(rt, k);
        }
        let id = identity_of(entity);
        w.set_playhead(id, rt.key);
        let from = rt.requested_upto.max(rt.key - 1) + 1;
        let to = rt.key + ahead;
        let mut last = rt.requested_upto;
        for key in from..=to {
            let motion = speech::motion_at(
                rt.line.as_ref().map(|l| speech::LineView {
                    frames: l.motion.as_slice(),
                    base_key: l.base_key,
                    own_pose: l.own_pose,
                }),
                key,
                fps,
                id,
                &emotion,
                settings
                    .idle_motion
                    .then(|| &idle.as_deref().unwrap_or(&default_idle).0),
            );
            last = key;
            if rt.line.is_none() && rt.last_motion.as_ref() == Some(&motion) {
                continue; // Nothing moves: the face on screen stays right.
            }
            rt.last_motion = Some(motion.clone());
            rt.outstanding.insert(key);
            jobs.push(FrameJob {
                identity: id,
                index: key,
                epoch: rt.epoch,
                motion,
            });
        }
        requested.push((entity, last));
    }
    if jobs.is_empty() {
        return;
    }
    match w.submit(jobs) {
        Ok(()) => {
            for (entity, last) in requested {
                if let Ok((_, mut rt, _, _)) = faces.get_mut(entity) {
                    rt.requested_upto = last;
                }
            }
        }
        Err(_) => {
            // Queue full: ask again next frame (the motion cache must not claim them).
            diag.requests_refused += 1;
            for (entity, _) in requested {
                if let Ok((_, mut rt, _, _)) = faces.get_mut(entity) {
                    let upto = rt.requested_upto;
                    rt.outstanding.retain(|&k| k <= upto);
                    rt.last_motion = None;
                }
            }
        }
    }
}

/// Takes the worker's frames and reports, into the faces' buffers.
pub(crate) fn collect_frames(
    mut worker: ResMut<WorkerRes>,
    mut faces: Query<&mut FaceRuntime>,
    time: Res<Time>,
    mut diag: ResMut<EdTalkDiagnostics>,
    mut errors: MessageWriter<EdTalkError>,
) {
    let Some(w) = worker.worker.as_ref() else {
        return;
    };
    let events = w.poll();
    let stats = w.stats().clone();
    for ev in events {
        match ev {
            WorkerEvent::Frame {
                identity,
                index,
                epoch,
                frame,
            } => {
                let Some(mut rt) = worker
                    .faces
                    .get(&identity)
                    .and_then(|e| faces.get_mut(*e).ok())
                else {
                    continue;
                };
                rt.outstanding.remove(&index);
                let current = epoch == rt.epoch || index <= rt.invalid_after;
                if current && rt.shown.is_none_or(|s| index > s) {
                    rt.buffer.insert(index, (epoch, frame));
                } else {
                    diag.frames_dropped += 1;
                }
            }
            WorkerEvent::IdentityReady(identity) => {
                if let Some(mut rt) = worker
                    .faces
                    .get(&identity)
                    .and_then(|e| faces.get_mut(*e).ok())
                {
                    rt.registration = Registration::Ready;
                    rt.requested_upto = rt.key;
                    rt.last_motion = None;
                }
            }
            WorkerEvent::IdentityFailed { identity, error } => {
                let entity = worker.faces.get(&identity).copied();
                if let Some(mut rt) = entity.and_then(|e| faces.get_mut(e).ok()) {
                    rt.registration = Registration::Failed;
                }
                report(&mut errors, entity, format!("portrait rejected: {error}"));
            }
            WorkerEvent::RenderFailed { identities, error } => {
                let entity = identities
                    .first()
                    .and_then(|i| worker.faces.get(i).copied());
                report(&mut errors, entity, format!("rendering failed: {error}"));
            }
            WorkerEvent::Restarted { reason } => {
                diag.worker_restarts += 1;
                report(
                    &mut errors,
                    None,
                    format!("inference worker restarted after a panic: {reason}"),
                );
                // In-flight frames were lost: ask again.
                for mut rt in &mut faces {
                    let k = rt.key;
                    rt.requested_upto = rt.requested_upto.min(k);
                    rt.outstanding.clear();
                    rt.last_motion = None;
                }
            }
        }
    }
    let rendered = stats.rendered.load(std::sync::atomic::Ordering::Relaxed);
    let micros = stats
        .render_micros
        .load(std::sync::atomic::Ordering::Relaxed);
    diag.frames_rendered = rendered;
    diag.frames_dropped = diag.frames_dropped.max(
        stats
            .dropped_stale
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    diag.inference_ms_per_frame = if rendered > 0 {
        micros as f32 / rendered as f32 / 1000.0
    } else {
        0.0
    };
    diag.last_inference_ms = stats
        .last_frame_micros
        .load(std::sync::atomic::Ordering::Relaxed) as f32
        / 1000.0;
    let now = time.elapsed_secs_f64();
    let (t0, n0) = worker.fps_window;
    if now - t0 >= 1.0 {
        diag.inference_fps = ((rendered - n0) as f64 / (now - t0)) as f32;
        worker.fps_window = (now, rendered);
    }
}

/// Moves the frame for each face's current key into its texture.
pub(crate) fn upload_frames(
    mut faces: Query<(&mut FaceRuntime, &TalkingFace)>,
    mut images: ResMut<Assets<Image>>,
    mut diag: ResMut<EdTalkDiagnostics>,
) {
    for (mut rt, face) in &mut faces {
        let key = rt.key;
        let newest = rt.buffer.range(..=key).next_back().map(|(k, _)| *k);
        match newest {
            Some(k) => {
                // Older frames were overtaken before they could be shown.
                let older: Vec<i64> = rt.buffer.range(..k).map(|(k, _)| *k).collect();
                diag.frames_dropped += older.len() as u64;
                for o in older {
                    rt.buffer.remove(&o);
                }
                let (_, frame) = rt.buffer.remove(&k).expect("key from the buffer");
                if let Some(mut img) = images.get_mut(&face.image)
                    && img.width() == frame.width
                    && img.height() == frame.height
                {
                    img.data = Some(frame.rgba);
                    diag.frames_shown += 1;
                }
                rt.shown = Some(k);
            }
            None => {
                if rt.outstanding.range(..=key).next().is_some() {
                    diag.frames_late += 1;
                }
            }
        }
        // Requests that fell behind will be dropped by the worker.
        rt.outstanding.retain(|&k| k >= key);
    }
}

/// Forgets identities of despawned faces.
pub(crate) fn forget_removed(
    mut removed: RemovedComponents<FaceRuntime>,
    mut worker: ResMut<WorkerRes>,
) {
    for entity in removed.read() {
        let id = identity_of(entity);
        worker.faces.remove(&id);
        if let Some(w) = worker.worker.as_ref() {
            let _ = w.remove_identity(id);
        }
    }
}
