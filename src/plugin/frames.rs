//! Face frames: requested from the worker a little ahead of each face's clock, collected
//! into per-face buffers, and moved into the face texture when the clock reaches them.

use std::sync::atomic::Ordering;

use bevy::prelude::*;

use super::components::{EmotionState, IdleMotion, TalkingFace};
use super::diagnostics::EdTalkDiagnostics;
use super::messages::{EdTalkError, EdTalkErrorKind};
use super::portraits::new_face_image;
use super::runtime::{FaceRuntime, Registration, WorkerRes, identity_of, report};
use super::settings::EdTalkSettings;
use super::speech;
use crate::worker::{FrameJob, WorkerEvent};

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
    time: Res<Time>,
    mut diag: ResMut<EdTalkDiagnostics>,
) {
    let Some(w) = worker.worker.as_ref() else {
        return;
    };
    let fps = settings.fps();
    // At least two game frames ahead: a game slower than the faces' frame rate would
    // otherwise reach each frame before it is rendered (capped: a hitch is not a rate).
    let game_frame = (time.delta_secs() * 2.0).min(0.5);
    let ahead = (settings.prebuffer_secs().max(game_frame) * fps).ceil() as i64;
    // Jobs for the main worker, and for the procedural fallback (lines it renders).
    let mut jobs = Vec::new();
    let mut fallback_jobs = Vec::new();
    let mut requested: Vec<(Entity, i64, bool)> = Vec::new();
    let default_idle = IdleMotion::default();
    // Idle faces on a renderer slower than real time are paced (see `paced_idle_key`):
    // frames in flight on the main worker decide when a new one would be rendered.
    // The neural renderer counts as slow until measured: its first frames take seconds.
    let neural = worker.is_neural();
    let slow = worker.frame_secs * IDLE_MARGIN > 1.0 / fps as f64
        || (neural && worker.frame_secs_seen == 0);
    let mut in_flight: usize = faces
        .iter()
        .filter(|(_, rt, ..)| !rt.line.as_ref().is_some_and(|l| l.procedural))
        .map(|(_, rt, ..)| rt.outstanding.len() + usize::from(rt.paced.is_some()))
        .sum();
    for (entity, mut rt, emotion, idle) in &mut faces {
        let rt = &mut *rt;
        let procedural_line = rt.fallback_ready && rt.line.as_ref().is_some_and(|l| l.procedural);
        // A line on the procedural fallback plays even before the neural renderer has
        // taken the face.
        if rt.registration != Registration::Ready && !procedural_line {
            continue;
        }
        if rt.line.as_ref().is_some_and(|l| l.clip.is_some()) {
            // A baked clip plays: nothing to render until it ends.
            rt.requested_upto = rt.requested_upto.max(rt.key);
            continue;
        }
        // Added or changed idle settings (e.g. a reloaded character) count too.
        let idle_changed = idle.as_ref().is_some_and(|i| i.is_changed());
        if (emotion.is_changed() && !emotion.is_added()) || idle_changed {
            // Takes effect on the next face frame, not after the prebuffer.
            let k = rt.key;
            rt.invalidate(k);
        }
        let id = identity_of(entity);
        // Until the face shows its first rendered frame (its still portrait is up, and
        // missed frames are not counted), the workers render its frames even late rather
        // than skip them as stale, which would count them as dropped.
        let playhead = if rt.shown.is_some() { rt.key } else { 0 };
        w.set_playhead(id, playhead);
        w.set_epoch(id, rt.epoch);
        let fallback = worker.fallback.as_ref().filter(|_| procedural_line);
        if let Some(f) = fallback {
            f.set_playhead(id, playhead);
            f.set_epoch(id, rt.epoch);
        }
        let queue = if fallback.is_some() {
            &mut fallback_jobs
        } else {
            &mut jobs
        };
        let mut from = rt.requested_upto.max(rt.key - 1) + 1;
        // Render-ahead: the whole line before its audio starts, a few frames at a time
        // (what is queued is wasted if the line falls back to the procedural renderer).
        // On a slow renderer a line goes on that way once its audio has started, so the
        // worker never idles while frames of the line are still to come.
        let window = from + AHEAD_IN_FLIGHT as i64 - 1 - rt.outstanding.len() as i64;
        let mut to = match &rt.line {
            Some(l) if l.waiting.is_some() => (l.base_key + l.motion.len() as i64 - 1).min(window),
            // (Not past the line's end: paced idle frames follow it.)
            Some(l) if slow && !l.procedural => {
                (l.base_key + l.motion.len() as i64 - 1).min(window.max(rt.key + ahead))
            }
            _ => rt.key + ahead,
        };
        let paced = slow && rt.line.is_none();
        if paced {
            if !rt.outstanding.is_empty() || rt.paced.is_some() {
                continue;
            }
            // Never before a frame already asked for: a newer frame would overtake it.
            from = paced_idle_key(rt.key, in_flight, worker.frame_secs, fps).max(from);
            to = from;
        }
        let mut last = rt.requested_upto;
        for key in from..=to {
            let motion = speech::motion_at(
                rt.line.as_ref().and_then(|l| l.view()),
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
            if paced {
                rt.paced = Some(key);
            } else {
                rt.outstanding.insert(key);
            }
            in_flight += usize::from(fallback.is_none());
            queue.push(FrameJob {
                identity: id,
                index: key,
                epoch: rt.epoch,
                motion,
                late_ok: paced,
            });
        }
        requested.push((entity, last, fallback.is_some()));
    }
    let mut submit = |w: Option<&crate::worker::Worker>, jobs: Vec<FrameJob>| {
        let accepted = jobs.is_empty() || w.is_some_and(|w| w.submit(jobs).is_ok());
        if !accepted {
            // Queue full: ask again next frame (the motion cache must not claim them).
            diag.requests_refused += 1;
        }
        accepted
    };
    let accepted = [
        submit(Some(w), jobs),
        submit(worker.fallback.as_ref(), fallback_jobs),
    ];
    for (entity, last, fallback) in requested {
        if let Ok((_, mut rt, _, _)) = faces.get_mut(entity) {
            if accepted[usize::from(fallback)] {
                rt.requested_upto = last;
            } else {
                let upto = rt.requested_upto;
                rt.outstanding.retain(|&k| k <= upto);
                rt.paced = rt.paced.filter(|&k| k <= upto);
                rt.last_motion = None;
            }
        }
    }
}

/// Safety margin on the measured frame time when pacing idle faces.
const IDLE_MARGIN: f64 = 1.3;

/// Most frames of a line being rendered ahead that are queued on the worker at once.
const AHEAD_IN_FLIGHT: usize = 8;

/// The key of an idle face's next frame on a renderer slower than real time: the one the
/// face will be at when the worker gets to it, behind the `in_flight` frames queued
/// before it. With one idle frame in flight per face, the worker only renders frames that
/// will be shown (an unpaced face asks for every key and most are stale when rendered),
/// and the face moves at the rate the renderer sustains.
fn paced_idle_key(key: i64, in_flight: usize, frame_secs: f64, fps: f32) -> i64 {
    let lead = (in_flight + 1) as f64 * frame_secs * IDLE_MARGIN * fps as f64;
    key + (lead.ceil() as i64).max(1)
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
    let stats = w.stats().clone();
    let events = w.poll().into_iter().map(|ev| (false, ev));
    let fallback = worker
        .fallback
        .as_ref()
        .map(|f| f.poll())
        .unwrap_or_default();
    let events: Vec<_> = events
        .chain(fallback.into_iter().map(|ev| (true, ev)))
        .collect();
    for (from_fallback, ev) in events {
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
                let cancelled = rt.cancelled_paced == Some(index);
                if cancelled {
                    rt.cancelled_paced = None;
                }
                if rt.paced == Some(index) {
                    rt.paced = None;
                }
                // A paced idle frame whose request a look change cancelled is no longer
                // wanted, even at a key before the change.
                let current = epoch == rt.epoch || (index <= rt.invalid_after && !cancelled);
                if !current {
                    // Drawn for a look that changed before it was shown (a line started,
                    // an emotion changed): its key is asked for again, so not a miss.
                    diag.frames_superseded += 1;
                } else if rt.shown.is_none_or(|s| index > s) {
                    rt.buffer.insert(index, (epoch, frame));
                } else {
                    // A later frame is already on screen: this one came too late.
                    diag.frames_dropped += 1;
                }
            }
            WorkerEvent::IdentityReady(identity) => {
                if let Some(mut rt) = worker
                    .faces
                    .get(&identity)
                    .and_then(|e| faces.get_mut(*e).ok())
                {
                    if from_fallback {
                        rt.fallback_ready = true;
                        continue;
                    }
                    rt.registration = Registration::Ready;
                    // From the current key, not again what another worker still renders
                    // (the procedural one, when the neural renderer takes a face over).
                    rt.requested_upto = rt.requested_upto.max(rt.key);
                    rt.last_motion = None;
                }
            }
            WorkerEvent::IdentityFailed { identity, error } => {
                let entity = worker.faces.get(&identity).copied();
                if let Some(mut rt) = entity.and_then(|e| faces.get_mut(e).ok()) {
                    if from_fallback {
                        // The main renderer has it: only the per-line fallback is lost.
                        rt.fallback_ready = false;
                        continue;
                    }
                    rt.registration = Registration::Failed;
                }
                report(
                    &mut errors,
                    entity,
                    EdTalkErrorKind::Portrait,
                    format!("portrait rejected: {error}"),
                );
            }
            WorkerEvent::RenderFailed { identities, error } => {
                // Their paced idle frames will not come: ask again.
                for id in &identities {
                    if let Some(mut rt) = worker.faces.get(id).and_then(|e| faces.get_mut(*e).ok())
                    {
                        rt.paced = None;
                    }
                }
                let entity = identities
                    .first()
                    .and_then(|i| worker.faces.get(i).copied());
                report(
                    &mut errors,
                    entity,
                    EdTalkErrorKind::Worker,
                    format!("rendering failed: {error}"),
                );
            }
            WorkerEvent::Restarted { reason } => {
                diag.worker_restarts += 1;
                report(
                    &mut errors,
                    None,
                    EdTalkErrorKind::Worker,
                    format!("inference worker restarted after a panic: {reason}"),
                );
                // In-flight frames were lost: ask again.
                for mut rt in &mut faces {
                    let k = rt.key;
                    rt.requested_upto = rt.requested_upto.min(k);
                    rt.outstanding.clear();
                    rt.paced = None;
                    rt.last_motion = None;
                }
            }
        }
    }
    let rendered = stats.rendered.load(Ordering::Relaxed);
    let micros = stats.render_micros.load(Ordering::Relaxed);
    // Render-ahead plans with recent frames: a running average of the last frame times.
    if rendered > worker.frame_secs_seen {
        let last = stats.last_frame_micros.load(Ordering::Relaxed) as f64 / 1e6;
        worker.frame_secs = if worker.frame_secs_seen == 0 {
            last
        } else {
            0.7 * worker.frame_secs + 0.3 * last
        };
        worker.frame_secs_seen = rendered;
    }
    diag.frames_rendered = rendered;
    // Requests the workers skipped as stale count as dropped frames too; requests
    // outdated before they were rendered are wasted queue slots, not missed frames.
    let stale = worker.counted(|s| &s.dropped_stale);
    diag.frames_dropped += stale.saturating_sub(worker.stale_seen);
    worker.stale_seen = stale;
    let superseded = worker.counted(|s| &s.superseded);
    diag.frames_superseded += superseded.saturating_sub(worker.superseded_seen);
    worker.superseded_seen = superseded;
    diag.inference_ms_per_frame = if rendered > 0 {
        micros as f32 / rendered as f32 / 1000.0
    } else {
        0.0
    };
    diag.last_inference_ms = stats.last_frame_micros.load(Ordering::Relaxed) as f32 / 1000.0;
    let now = time.elapsed_secs_f64();
    let (t0, n0) = worker.fps_window;
    if now - t0 >= 1.0 {
        diag.inference_fps = (rendered.saturating_sub(n0) as f64 / (now - t0)) as f32;
        worker.fps_window = (now, rendered);
    }
}

/// Moves the frame for each face's current key into its texture (or, while a baked clip
/// plays, the clip's frame for the playback position).
pub(crate) fn upload_frames(
    mut faces: Query<(Entity, &mut FaceRuntime, &TalkingFace)>,
    mut images: ResMut<Assets<Image>>,
    mut diag: ResMut<EdTalkDiagnostics>,
    mut errors: MessageWriter<EdTalkError>,
) {
    for (entity, mut rt, face) in &mut faces {
        if rt.line.as_ref().is_some_and(|l| l.clip.is_some()) {
            // Frames of keys the clip now covers (asked for before it started) would show
            // over the clip once it ends: its frames replaced them.
            let key = rt.key;
            while rt.buffer.first_key_value().is_some_and(|(k, _)| *k <= key) {
                rt.buffer.pop_first();
                diag.frames_superseded += 1;
            }
        }
        if let Some(line) = rt.line.as_mut()
            && let Some((clip, cursor)) = line.clip.as_mut()
        {
            let Some(position) = face.line_position else {
                continue;
            };
            let Some(mut img) = images.get_mut(&face.image) else {
                continue;
            };
            if (img.width(), img.height()) != (clip.width(), clip.height()) {
                report(
                    &mut errors,
                    Some(entity),
                    EdTalkErrorKind::Portrait,
                    format!(
                        "face clip frames are {}x{}, the face texture is {}x{}: the line is \
                         rendered instead",
                        clip.width(),
                        clip.height(),
                        img.width(),
                        img.height()
                    ),
                );
                line.clip = None;
                let key = rt.key;
                rt.invalidate(key);
                continue;
            }
            match cursor.at_time(clip, position as f64) {
                Some(Ok(frame)) => {
                    img.data = Some(frame.rgba.clone());
                    diag.frames_shown += 1;
                }
                Some(Err(e)) => {
                    report(
                        &mut errors,
                        Some(entity),
                        EdTalkErrorKind::Portrait,
                        format!("face clip: {e}; the line is rendered instead"),
                    );
                    line.clip = None;
                    let key = rt.key;
                    rt.invalidate(key);
                }
                None => {}
            }
            continue;
        }
        let key = rt.key;
        let previous = rt.uploaded_key.replace(key);
        // Until its first rendered frame the face shows its still portrait: frames racing
        // in during that warm-up are not missed ones.
        let warming_up = rt.shown.is_none();
        // The newest frame at or before the key; older ones were overtaken before they
        // could be shown. One whose time came since the last game frame was on time: the
        // game's own frame rate is below the face's (skipped). One whose time had come
        // before arrived too late (dropped).
        let mut newest: Option<(i64, _)> = None;
        while let Some((k, _)) = rt.buffer.first_key_value() {
            if *k > key {
                break;
            }
            if let Some((overtaken, _)) = &newest
                && !warming_up
            {
                if previous.is_some_and(|p| *overtaken > p) {
                    diag.frames_skipped += 1;
                } else {
                    diag.frames_dropped += 1;
                }
            }
            newest = rt.buffer.pop_first();
        }
        match newest {
            Some((k, (_, frame))) => {
                // A frame of another size (the procedural fallback at another
                // `face_resolution` than the neural renderer's) resizes the texture.
                let resized = images
                    .get(&face.image)
                    .is_some_and(|img| (img.width(), img.height()) != (frame.width, frame.height));
                if resized {
                    let _ = images.insert(&face.image, new_face_image(frame.width, frame.height));
                }
                if let Some(mut img) = images.get_mut(&face.image) {
                    img.data = Some(frame.rgba);
                    diag.frames_shown += 1;
                }
                rt.shown = Some(k);
            }
            None => {
                // A line holding for render-ahead keeps its face still on purpose.
                let holding = rt.line.as_ref().is_some_and(|l| l.waiting.is_some());
                if !warming_up && !holding && rt.outstanding.range(..=key).next().is_some() {
                    diag.frames_late += 1;
                }
            }
        }
        // Requests that fell behind will be dropped by the worker.
        rt.outstanding.retain(|&k| k >= key);
    }
}
