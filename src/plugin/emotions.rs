//! Emotions: the library faces and scripts resolve against, [`SetEmotion`] messages,
//! requests recorded by [`EmotionState`] constructors, and emotion-script keys as a line
//! plays. Every transition runs on the motion module's engine.

use bevy::prelude::*;

use super::components::{EmotionState, TalkingFace};
use super::messages::{EdTalkError, EdTalkErrorKind, SetEmotion};
use super::runtime::{ActiveLine, FaceRuntime, report};
use super::settings::EdTalkSettings;
use crate::motion::EmotionLibrary;

/// The emotions faces and scripts can use: the eight built-in ones plus custom emotions
/// (add them with `EmotionLibrary::insert` or `load_custom_ron`).
#[derive(Resource, Clone, Debug, Default)]
pub struct Emotions(pub EmotionLibrary);

/// Resolves the requests that [`EmotionState`] constructors (and character files'
/// default emotions) recorded; a bad one is reported and the face keeps its expression.
pub(crate) fn resolve_requested_emotions(
    mut faces: Query<(Entity, &mut EmotionState, &TalkingFace)>,
    library: Res<Emotions>,
    mut errors: MessageWriter<EdTalkError>,
) {
    for (entity, mut state, face) in &mut faces {
        if !state.has_request() {
            continue;
        }
        let Some(request) = state.take_request() else {
            continue;
        };
        match request.target.resolve(&library.0) {
            Ok(resolved) => state.transition_to(
                resolved,
                request.target.label(),
                face.clock,
                request.transition,
                request.easing,
            ),
            Err(e) => report(
                &mut errors,
                Some(entity),
                EdTalkErrorKind::Emotion,
                format!("emotion {}: {e}", request.target.label()),
            ),
        }
    }
}

/// [`SetEmotion`]: starts a transition on the face clock.
pub(crate) fn handle_set_emotion(
    mut sets: MessageReader<SetEmotion>,
    mut faces: Query<(&mut EmotionState, &FaceRuntime)>,
    settings: Res<EdTalkSettings>,
    library: Res<Emotions>,
    mut errors: MessageWriter<EdTalkError>,
) {
    for set in sets.read() {
        let Ok((mut state, rt)) = faces.get_mut(set.entity) else {
            report(
                &mut errors,
                Some(set.entity),
                EdTalkErrorKind::Request,
                "SetEmotion sent to an entity without a FacePortrait".into(),
            );
            continue;
        };
        match set.target.resolve(&library.0) {
            Ok(resolved) => {
                let now = rt.key as f64 / settings.fps() as f64;
                state.transition_to(
                    resolved,
                    set.target.label(),
                    now,
                    set.transition,
                    set.easing,
                );
            }
            Err(e) => report(
                &mut errors,
                Some(set.entity),
                EdTalkErrorKind::Emotion,
                format!("SetEmotion {}: {e}", set.target.label()),
            ),
        }
    }
}

/// Moves each face's clock and applies the playing line's emotion-script keys, each at
/// its own time on the line (as `edtalk render --script` does).
pub(crate) fn advance_emotions(
    mut faces: Query<(&mut FaceRuntime, &mut EmotionState, &mut TalkingFace)>,
    time: Res<Time>,
    settings: Res<EdTalkSettings>,
) {
    let now = time.elapsed_secs_f64();
    let fps = settings.fps() as f64;
    for (mut rt, mut state, mut face) in &mut faces {
        let position = rt
            .line
            .as_ref()
            .filter(|l| l.waiting.is_none())
            .map(|l| l.playback.position(now) as f32);
        if face.line_position != position {
            face.line_position = position;
        }
        let rt = &mut *rt;
        let key = match &rt.line {
            // A stream waiting for audio: the face goes on with game time.
            Some(ActiveLine {
                starved: Some((t0, k0)),
                ..
            }) => k0 + ((now - t0) * fps).floor() as i64,
            // Rendering ahead: the face holds until the audio starts.
            Some(line) if line.waiting.is_some() => rt.key,
            Some(line) => line.base_key + (line.playback.position(now) * fps).floor() as i64,
            None => idle_key(rt, now, time.delta_secs_f64(), fps),
        };
        rt.key = rt.key.max(key);
        let face_t = rt.key as f64 / fps;
        face.clock = face_t;
        if let Some(line) = &mut rt.line
            && let Some(keys) = &line.script
        {
            let line_start = line.base_key as f64 / fps;
            let line_t = face_t - line_start;
            while let Some(k) = keys.get(line.next_script_key) {
                if k.time as f64 > line_t {
                    break;
                }
                let start = line_start + k.time as f64;
                state.transition_to(Some(k.target), k.label.clone(), start, k.blend, k.easing);
                line.next_script_key += 1;
            }
        }
    }
}

/// The key of a face without a line: game time. A face that has shown frames and is
/// behind game time (a line ended: its clock was the sound's, which started late by its
/// render-ahead wait) catches up one frame per game frame faster than the clock runs,
/// instead of jumping: a jump would land on keys never requested, whose frames would come
/// after their time.
fn idle_key(rt: &FaceRuntime, now: f64, delta: f64, fps: f64) -> i64 {
    let game = (now * fps).floor() as i64;
    if rt.shown.is_none() {
        return game;
    }
    let advance = game - ((now - delta) * fps).floor() as i64;
    game.min(rt.key + advance + 1)
}
