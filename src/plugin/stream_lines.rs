//! [`SpeakStream`] lines: started at once, fed every frame from the stream's analysis
//! thread (motion frames, problems) and its player (position, buffering, end).

use std::sync::Arc;

use bevy::prelude::*;

use super::audio::{EdTalkAudio, StreamOutput};
use super::lines::LineOutput;
use super::messages::*;
use super::runtime::{ActiveLine, FaceRuntime, WorkerRes, report};
use super::settings::EdTalkSettings;
use super::voice_stream::{self, StreamEvent};

/// [`SpeakStream`]: attaches the stream to the face and starts its line.
pub(crate) fn handle_speak_stream(
    mut speaks: MessageReader<SpeakStream>,
    mut faces: Query<&mut FaceRuntime>,
    worker: Res<WorkerRes>,
    time: Res<Time>,
    mut audio: NonSendMut<EdTalkAudio>,
    mut out: LineOutput,
) {
    let now = time.elapsed_secs_f64();
    for speak in speaks.read() {
        let Ok(mut rt) = faces.get_mut(speak.entity) else {
            out.report(
                speak.entity,
                EdTalkErrorKind::Request,
                "SpeakStream sent to an entity without a FacePortrait".into(),
            );
            continue;
        };
        let mut problems = Vec::new();
        let (volume_db, panning, track) = audio.checked_mix(
            "SpeakStream",
            speak.volume,
            speak.panning,
            speak.mixer_track.as_deref(),
            &mut problems,
        );
        for p in problems {
            out.report(speak.entity, EdTalkErrorKind::Request, p);
        }
        let gain = kira::Decibels(volume_db).as_amplitude();
        let (player, mut line) =
            match voice_stream::open(&speak.stream, worker.audio2lip.clone(), gain, panning) {
                Ok(opened) => opened,
                Err(e) => {
                    out.report(
                        speak.entity,
                        EdTalkErrorKind::Request,
                        format!("SpeakStream: {e}"),
                    );
                    continue;
                }
            };
        match audio.play_stream(player, track.as_deref()) {
            StreamOutput::Kira => {}
            StreamOutput::Clock(player) => line.clock = Some(player),
            StreamOutput::Failed(e) => {
                out.report(
                    speak.entity,
                    EdTalkErrorKind::Audio,
                    format!("voice stream could not play: {e}"),
                );
                continue;
            }
        }
        rt.pending = None;
        out.end(speak.entity, &mut rt, false);
        let key = rt.key;
        rt.line = Some(ActiveLine {
            playback: super::audio::Playback::External {
                position: 0.0,
                finished: false,
            },
            motion: Arc::new(Vec::new()),
            own_pose: false,
            base_key: key + 1,
            tag: speak.tag.clone(),
            script: None,
            next_script_key: 0,
            stream: Some(line),
            starved: Some((now, key)),
            follows: None,
            waiting: None,
            clip: None,
            procedural: false,
        });
    }
}

/// Feeds each streaming line: its player's position, new motion frames, problems; and
/// hands the face between the line's clock and game time as the buffer runs dry and
/// refills.
pub(crate) fn pump_streams(
    mut faces: Query<(Entity, &mut FaceRuntime)>,
    time: Res<Time>,
    settings: Res<EdTalkSettings>,
    mut started: MessageWriter<SpeechStarted>,
    mut errors: MessageWriter<EdTalkError>,
    mut commands: Commands,
) {
    let now = time.elapsed_secs_f64();
    let fps = settings.fps() as f64;
    for (entity, mut rt) in &mut faces {
        let rt = &mut *rt;
        let Some(line) = rt.line.as_mut() else {
            continue;
        };
        let Some(stream) = line.stream.as_mut() else {
            continue;
        };
        stream.advance_clock(time.delta_secs_f64());
        let mut new_from = None;
        while let Ok(event) = stream.events.try_recv() {
            match event {
                StreamEvent::Started { rate, channels } => {
                    let event = SpeechStarted {
                        entity,
                        tag: line.tag.clone(),
                        duration: 0.0,
                        sample_rate: rate,
                        channels: channels as usize,
                    };
                    commands.trigger(event.clone());
                    started.write(event);
                }
                StreamEvent::Motion(frames) => {
                    new_from.get_or_insert(line.motion.len());
                    Arc::make_mut(&mut line.motion).extend(frames);
                }
                StreamEvent::Problem(p) => report(
                    &mut errors,
                    Some(entity),
                    EdTalkErrorKind::Audio,
                    format!("voice stream: {p}"),
                ),
            }
        }
        let position = stream.player.position();
        let waiting = stream.player.buffering() && !stream.player.done();
        line.playback = super::audio::Playback::External {
            position,
            finished: stream.player.done(),
        };
        let frame_of_position = (position * fps).floor() as i64;
        let mut invalidate_after = None;
        match (line.starved, waiting) {
            (None, true) => {
                // Ran dry: the face goes on with game time, mouth closed.
                line.starved = Some((now, rt.key));
                invalidate_after = Some(rt.key);
            }
            (Some(_), false) => {
                // Playing again: the line's clock takes over where the face is.
                line.starved = None;
                line.base_key = rt.key + 1 - frame_of_position;
                invalidate_after = Some(rt.key);
            }
            (None, false) => {
                // Motion that arrived after its frames were requested: ask again.
                if let Some(i) = new_from {
                    let first = line.base_key + i as i64;
                    if first <= rt.requested_upto {
                        invalidate_after = Some((first - 1).max(rt.key));
                    }
                }
            }
            (Some(_), true) => {}
        }
        if let Some(after) = invalidate_after {
            rt.invalidate(after);
        }
    }
}
