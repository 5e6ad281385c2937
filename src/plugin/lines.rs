//! Voice lines: [`Speak`] queues a line, which is decoded and analysed off the main thread
//! and starts once ready; lines end when played out or stopped.

use bevy::asset::LoadState;
use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy::tasks::{AsyncComputeTaskPool, block_on, poll_once};

use super::assets::{EmotionScriptAsset, VoiceLine};
use super::audio::{EdTalkAudio, PlayOptions};
use super::components::EmotionTarget;
use super::emotions::Emotions;
use super::messages::*;
use super::runtime::{
    ActiveLine, FaceRuntime, PendingLine, Registration, ResolvedKeys, ScriptKey, WaitingAudio,
    WorkerRes, report,
};
use super::settings::EdTalkSettings;
use super::speech;
use super::track_asset::{FaceClipAsset, MotionTrackAsset};

/// Ends the face's line, if any, and says so (message and entity event).
pub(crate) fn end_line(
    entity: Entity,
    rt: &mut FaceRuntime,
    completed: bool,
    finished: &mut MessageWriter<SpeechFinished>,
    commands: &mut Commands,
) {
    if let Some(mut line) = rt.line.take() {
        if !completed {
            line.playback.stop();
        }
        let event = SpeechFinished {
            entity,
            tag: line.tag,
            completed,
        };
        commands.trigger(event.clone());
        finished.write(event);
    }
}

/// [`StopSpeaking`]: stops audio and lip-sync.
pub(crate) fn handle_stop(
    mut stops: MessageReader<StopSpeaking>,
    mut faces: Query<&mut FaceRuntime>,
    mut finished: MessageWriter<SpeechFinished>,
    mut commands: Commands,
) {
    for stop in stops.read() {
        if let Ok(mut rt) = faces.get_mut(stop.entity) {
            rt.pending = None;
            end_line(stop.entity, &mut rt, false, &mut finished, &mut commands);
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
                    clip: None,
                    task: None,
                })
            }
            Err(_) => report(
                &mut errors,
                Some(speak.entity),
                EdTalkErrorKind::Request,
                "Speak sent to an entity without a FacePortrait".into(),
            ),
        }
    }
}

/// The assets and resources a starting line reads.
#[derive(SystemParam)]
pub(crate) struct LineAssets<'w> {
    lines: Res<'w, Assets<VoiceLine>>,
    scripts: Res<'w, Assets<EmotionScriptAsset>>,
    tracks: Res<'w, Assets<MotionTrackAsset>>,
    clips: Res<'w, Assets<FaceClipAsset>>,
    asset_server: Res<'w, AssetServer>,
    library: Res<'w, Emotions>,
    worker: Res<'w, WorkerRes>,
    time: Res<'w, Time>,
    settings: Res<'w, EdTalkSettings>,
}

/// What a starting line writes.
#[derive(SystemParam)]
pub(crate) struct LineOutput<'w, 's> {
    pub(crate) started: MessageWriter<'w, SpeechStarted>,
    pub(crate) finished: MessageWriter<'w, SpeechFinished>,
    pub(crate) errors: MessageWriter<'w, EdTalkError>,
    pub(crate) commands: Commands<'w, 's>,
}

impl LineOutput<'_, '_> {
    /// Says a line started (message and entity event).
    pub(crate) fn started(&mut self, event: SpeechStarted) {
        self.commands.trigger(event.clone());
        self.started.write(event);
    }

    /// Ends the face's line, if any (see [`end_line`]).
    pub(crate) fn end(&mut self, entity: Entity, rt: &mut FaceRuntime, completed: bool) {
        end_line(
            entity,
            rt,
            completed,
            &mut self.finished,
            &mut self.commands,
        );
    }

    /// Reports a problem (see [`report`]).
    pub(crate) fn report(&mut self, entity: Entity, kind: EdTalkErrorKind, message: String) {
        report(&mut self.errors, Some(entity), kind, message);
    }
}

/// An asset a line waits for: loaded, still loading, or failed (with the error text).
enum Wait<T> {
    Ready(T),
    Loading,
    Failed(String),
}

fn wait_for<A: Asset + Clone>(
    assets: &Assets<A>,
    server: &AssetServer,
    handle: &Handle<A>,
) -> Wait<A> {
    match assets.get(handle) {
        Some(a) => Wait::Ready(a.clone()),
        None => match server.load_state(handle) {
            LoadState::Failed(e) => Wait::Failed(e.to_string()),
            _ => Wait::Loading,
        },
    }
}

/// An optional asset a line waits for: `None` while it loads; `Some(None)` when there is
/// none or it failed to load (reported as `what`, of `kind`).
fn optional_asset<A: Asset + Clone>(
    assets: &Assets<A>,
    server: &AssetServer,
    handle: Option<&Handle<A>>,
    (entity, kind, what): (Entity, EdTalkErrorKind, &str),
    errors: &mut MessageWriter<EdTalkError>,
) -> Option<Option<A>> {
    let Some(handle) = handle else {
        return Some(None);
    };
    match wait_for(assets, server, handle) {
        Wait::Ready(a) => Some(Some(a)),
        Wait::Loading => None,
        Wait::Failed(e) => {
            report(errors, Some(entity), kind, format!("{what}: {e}"));
            Some(None)
        }
    }
}

/// Prepares queued lines off the main thread and starts them when ready.
pub(crate) fn start_prepared_lines(
    mut faces: Query<(Entity, &mut FaceRuntime)>,
    assets: LineAssets,
    mut audio: NonSendMut<EdTalkAudio>,
    mut out: LineOutput,
) {
    let now = assets.time.elapsed_secs_f64();
    let fps = assets.settings.fps() as f64;
    for (entity, mut rt) in &mut faces {
        let Some(mut pending) = rt.pending.take() else {
            continue;
        };
        if pending.task.is_none() {
            let line = match wait_for(&assets.lines, &assets.asset_server, &pending.request.line) {
                Wait::Ready(line) => line,
                Wait::Loading => {
                    rt.pending = Some(pending);
                    continue;
                }
                Wait::Failed(e) => {
                    report(
                        &mut out.errors,
                        Some(entity),
                        EdTalkErrorKind::Audio,
                        format!("voice line: {e}"),
                    );
                    continue;
                }
            };
            // A track or clip still loading delays the line. A failed track is reported and
            // the mouth comes from the audio; a failed clip is reported and the line is
            // rendered as usual.
            let loaded = optional_asset(
                &assets.tracks,
                &assets.asset_server,
                pending.request.track.as_ref(),
                (entity, EdTalkErrorKind::Script, "motion track"),
                &mut out.errors,
            )
            .and_then(|track| {
                let clip = optional_asset(
                    &assets.clips,
                    &assets.asset_server,
                    pending.request.clip.as_ref(),
                    (entity, EdTalkErrorKind::Portrait, "face clip"),
                    &mut out.errors,
                )?;
                Some((track.map(|t| t.0), clip.map(|c| c.0)))
            });
            let Some((track, clip)) = loaded else {
                rt.pending = Some(pending);
                continue;
            };
            pending.clip = clip;
            let model = assets.worker.audio2lip.clone();
            let pose = pending.request.pose.clone();
            let baked = pending.clip.is_some();
            pending.task = Some(AsyncComputeTaskPool::get().spawn(async move {
                if baked {
                    speech::prepare_clip_line(&line)
                } else {
                    speech::prepare_line(&line, model, pose, track.as_ref())
                }
            }));
        }
        let Some(task) = pending.task.as_mut() else {
            continue;
        };
        let Some(result) = block_on(poll_once(task)) else {
            rt.pending = Some(pending);
            continue;
        };
        // A script still loading delays the line a little; a failed one is reported. Its
        // emotion names are checked against the game's library (custom emotions work).
        let script: Option<ResolvedKeys> = match &pending.request.script {
            Some(h) => match wait_for(&assets.scripts, &assets.asset_server, h) {
                Wait::Ready(s) => {
                    let origin = h.path().map_or("emotion script".into(), |p| p.to_string());
                    match s.0.resolved(&assets.library.0, &origin) {
                        Ok(keys) => Some(
                            keys.into_iter()
                                .zip(&s.0.keys)
                                .map(|((time, target, blend, easing), key)| ScriptKey {
                                    time,
                                    target,
                                    blend,
                                    easing,
                                    label: key
                                        .to_mix()
                                        .map(|m| EmotionTarget::Mix(m).label())
                                        .unwrap_or_default(),
                                })
                                .collect(),
                        ),
                        Err(e) => {
                            report(
                                &mut out.errors,
                                Some(entity),
                                EdTalkErrorKind::Script,
                                e.to_string(),
                            );
                            None
                        }
                    }
                }
                Wait::Loading => {
                    // Keep the finished preparation and wait for the script.
                    pending.task = Some(AsyncComputeTaskPool::get().spawn(async move { result }));
                    rt.pending = Some(pending);
                    continue;
                }
                Wait::Failed(e) => {
                    report(
                        &mut out.errors,
                        Some(entity),
                        EdTalkErrorKind::Script,
                        format!("emotion script: {e}"),
                    );
                    None
                }
            },
            None => None,
        };
        match result {
            Ok(prepared) => {
                let duration = prepared.samples.len() as f32 / prepared.sample_rate.max(1) as f32;
                let options = match play_options(&pending.request, duration, &audio) {
                    Ok((options, problems)) => {
                        for p in problems {
                            report(&mut out.errors, Some(entity), EdTalkErrorKind::Request, p);
                        }
                        options
                    }
                    Err(e) => {
                        report(&mut out.errors, Some(entity), EdTalkErrorKind::Request, e);
                        continue;
                    }
                };
                end_line(entity, &mut rt, false, &mut out.finished, &mut out.commands);
                // The line's frame keys count from its start: an offset start shows frame
                // `start * fps` first.
                let skipped = (options.start * fps).floor() as i64;
                let base_key = rt.key + 1 - skipped;
                let to_render = (prepared.motion.len() as i64 - skipped).max(1) as usize;
                let clip = pending.clip.take();
                let plan = if clip.is_some() {
                    AheadPlan::No // Baked: nothing to render.
                } else {
                    let ready = rt.registration == Registration::Ready;
                    render_ahead_plan(&assets.settings, &assets.worker, ready, to_render)
                };
                // Whether the audio waits for frames (render-ahead, or a line moved to the
                // procedural fallback waiting for its first frame), and why a line cannot
                // render ahead on this renderer.
                let tag = line_name(&pending.request.tag);
                let (hold, problem) = match plan {
                    AheadPlan::No => (false, None),
                    AheadPlan::Wait => (true, None),
                    AheadPlan::NotRegistered => (
                        true,
                        Some(format!(
                            "{tag} starts while the neural renderer is still preparing this \
                             face's portrait"
                        )),
                    ),
                    AheadPlan::TooLong(wait) => (
                        true,
                        Some(format!(
                            "render-ahead would hold {tag} for {wait:.1} s, above the {:.1} s \
                             allowed (max_render_ahead_wait)",
                            assets.settings.max_wait_secs()
                        )),
                    ),
                };
                let mut procedural = false;
                let hold = match problem {
                    None => hold,
                    Some(why) => {
                        procedural = assets.worker.fallback.is_some() && rt.fallback_ready;
                        report(
                            &mut out.errors,
                            Some(entity),
                            EdTalkErrorKind::Worker,
                            format!(
                                "{why}: it is {} (bake the line into a face clip to ship it \
                                 with neural faces)",
                                fallback_note(procedural)
                            ),
                        );
                        procedural
                    }
                };
                let waiting = hold.then(|| {
                    Box::new(WaitingAudio {
                        samples: prepared.samples.clone(),
                        sample_rate: prepared.sample_rate,
                        source: prepared.source.clone(),
                        options: options.clone(),
                        since: now,
                        duration,
                    })
                });
                let started = waiting.is_none().then(|| {
                    audio.play(
                        &prepared.samples,
                        prepared.sample_rate,
                        prepared.source.as_deref(),
                        &options,
                        now,
                    )
                });
                let (playback, format) = match started {
                    Some((playback, format)) => (playback, Some(format)),
                    None => (
                        super::audio::Playback::External {
                            position: options.start,
                            finished: false,
                        },
                        None,
                    ),
                };
                rt.line = Some(ActiveLine {
                    playback,
                    motion: std::sync::Arc::new(prepared.motion),
                    own_pose: prepared.own_pose,
                    base_key,
                    tag: pending.request.tag.clone(),
                    script,
                    next_script_key: 0,
                    stream: None,
                    starved: None,
                    follows: None,
                    waiting,
                    clip: clip.map(|c| (c, crate::clip::ClipCursor::new())),
                    procedural,
                });
                // Frames requested before the line carry a closed mouth: re-request them.
                let current = rt.key;
                rt.invalidate(current);
                if let Some((sample_rate, channels)) = format {
                    let event = SpeechStarted {
                        entity,
                        tag: pending.request.tag,
                        duration,
                        sample_rate,
                        channels,
                    };
                    out.started(event);
                }
            }
            Err(e) => report(
                &mut out.errors,
                Some(entity),
                EdTalkErrorKind::Audio,
                format!("voice line: {e}"),
            ),
        }
    }
}

/// A line as messages name it: by its tag when it has one.
fn line_name(tag: &str) -> String {
    if tag.is_empty() {
        "the line".into()
    } else {
        format!("line `{tag}`")
    }
}

/// What happens to a line that render-ahead cannot prepare in time.
fn fallback_note(procedural: bool) -> &'static str {
    if procedural {
        "rendered with the procedural renderer"
    } else {
        "played at once, and frames will drop"
    }
}

/// Whether a line renders ahead before its audio starts.
enum AheadPlan {
    /// The renderer keeps up (or render-ahead is off): play at once.
    No,
    /// Render ahead, then play.
    Wait,
    /// It would wait this many seconds, above the setting: the procedural fallback renders
    /// the line (or it plays at once without one); reported.
    TooLong(f64),
    /// The slow renderer has not taken the face's portrait yet: as `TooLong`.
    NotRegistered,
}

/// How much longer than `max_render_ahead_wait` a line moved to the procedural fallback
/// waits for that renderer's first frames (they take a game frame or two; this bounds the
/// wait should the fallback fail).
const PROCEDURAL_GRACE_SECS: f64 = 1.0;

/// Safety margin on the measured frame time (frame times vary).
const AHEAD_MARGIN: f64 = 1.2;

/// How many of a line's `n` frames must be rendered before its audio starts, so that with
/// `r` seconds per frame every later frame is ready when playback reaches it: frame `j`
/// (from the first one played) is ready `(j - k + 1) * r` after the start and needed
/// `j / fps` after it, for all `j` in `k..n` (checked at both ends: it is linear in `j`).
pub(crate) fn frames_before_start(n: usize, r: f64, fps: f64) -> usize {
    let r = r * AHEAD_MARGIN;
    let fits = |k: usize| {
        let ok_at = |j: usize| (j + 1 - k) as f64 * r <= j as f64 / fps;
        k >= n || (ok_at(k) && ok_at(n - 1))
    };
    (0..=n).find(|&k| fits(k)).unwrap_or(n)
}

fn render_ahead_plan(
    settings: &EdTalkSettings,
    worker: &WorkerRes,
    registered: bool,
    frames: usize,
) -> AheadPlan {
    let fps = settings.fps() as f64;
    let neural = worker.is_neural();
    if !settings.render_ahead {
        return AheadPlan::No;
    }
    if !registered {
        return if neural {
            AheadPlan::NotRegistered
        } else {
            AheadPlan::No
        };
    }
    // Even a renderer that keeps up holds the audio until the line's first frame is ready
    // (a game frame or two), so the first mouth frame is never late. Not measured yet:
    // the neural renderer is held until its first frames say how fast it is (see
    // `start_rendered_ahead`).
    let r = worker.frame_secs;
    if worker.frame_secs_seen == 0 || r * AHEAD_MARGIN <= 1.0 / fps {
        return AheadPlan::Wait;
    }
    let wait = frames_before_start(frames, r, fps) as f64 * r;
    if wait > settings.max_wait_secs() {
        AheadPlan::TooLong(wait)
    } else {
        AheadPlan::Wait
    }
}

/// Starts the audio of lines rendered ahead once enough of their frames are ready (or the
/// wait bound is reached), with [`SpeechReady`] and [`SpeechStarted`].
pub(crate) fn start_rendered_ahead(
    mut faces: Query<(Entity, &mut FaceRuntime)>,
    assets: LineAssets,
    mut audio: NonSendMut<EdTalkAudio>,
    mut ready: MessageWriter<SpeechReady>,
    mut out: LineOutput,
) {
    let now = assets.time.elapsed_secs_f64();
    let fps = assets.settings.fps() as f64;
    for (entity, mut rt) in &mut faces {
        let rt = &mut *rt;
        let Some(line) = rt.line.as_mut() else {
            continue;
        };
        let Some(wait) = line.waiting.as_ref() else {
            continue;
        };
        let first = rt.key + 1;
        let n = (line.base_key + line.motion.len() as i64 - first).max(0) as usize;
        let have = (first..first + n as i64)
            .take_while(|k| rt.buffer.contains_key(k))
            .count();
        // At least the first frame; until the neural renderer's speed is measured, every
        // frame counts as needed.
        let r = assets.worker.frame_secs;
        let neural = assets.worker.is_neural();
        let measured = assets.worker.frame_secs_seen > 0 || !neural;
        let need = if line.procedural {
            n.min(1) // The procedural fallback keeps up: its first frame.
        } else if measured {
            frames_before_start(n, r, fps).max(1).min(n)
        } else {
            n
        };
        let waited = now - wait.since;
        let max = assets.settings.max_wait_secs();
        // Give up as soon as the rest would not fit in the allowed wait, not only at its end.
        let rest = if line.procedural {
            0.0
        } else {
            need.saturating_sub(have) as f64 * r * AHEAD_MARGIN
        };
        // A line moved to the procedural fallback still waits for that renderer's first
        // frames (its audio would otherwise start ahead of them), a little past the bound.
        let over = if line.procedural {
            waited > max + PROCEDURAL_GRACE_SECS
        } else {
            waited > max || (measured && waited + rest > max)
        };
        if have < need && !over {
            continue;
        }
        if over && have < need {
            // The renderer turned out slower than measured: the frames already rendered
            // play, the rest of the line comes from the procedural renderer.
            let procedural = assets.worker.fallback.is_some() && rt.fallback_ready;
            out.report(
                entity,
                EdTalkErrorKind::Worker,
                format!(
                    "render-ahead of {} cannot finish within max_render_ahead_wait ({:.1} s): \
                     {have} of {need} frames ready after {waited:.1} s; it is {}",
                    line_name(&line.tag),
                    max,
                    fallback_note(procedural),
                ),
            );
            if procedural {
                line.procedural = true;
                rt.invalidate(first + have as i64 - 1);
                // Its audio starts once the fallback's first frames are there.
                continue;
            }
        }
        let Some(line) = rt.line.as_mut() else {
            continue;
        };
        let Some(wait) = line.waiting.take() else {
            continue;
        };
        let (playback, (sample_rate, channels)) = audio.play(
            &wait.samples,
            wait.sample_rate,
            wait.source.as_deref(),
            &wait.options,
            now,
        );
        line.playback = playback;
        let tag = line.tag.clone();
        ready.write(SpeechReady {
            entity,
            tag: tag.clone(),
            waited: waited as f32,
        });
        out.started(SpeechStarted {
            entity,
            tag,
            duration: wait.duration,
            sample_rate,
            channels,
        });
    }
}

/// Checks a line's playback options. Numbers that make no sense (NaN, inf) fall back to
/// the default and are reported (the second value); a start past the line's end is an
/// error (the line is not played).
fn play_options(
    speak: &Speak,
    duration: f32,
    audio: &EdTalkAudio,
) -> Result<(PlayOptions, Vec<String>), String> {
    let mut problems = Vec::new();
    let start = match speak.start_at {
        s if !s.is_finite() || s < 0.0 => {
            return Err(format!("Speak start_at {s} s is not a time in the line"));
        }
        s if s >= duration => {
            return Err(format!(
                "Speak start_at {s:.3} s is past the line's end ({duration:.3} s)"
            ));
        }
        s => s as f64,
    };
    let (volume_db, panning, track) = audio.checked_mix(
        "Speak",
        speak.volume,
        speak.panning,
        speak.mixer_track.as_deref(),
        &mut problems,
    );
    Ok((
        PlayOptions {
            volume_db,
            panning,
            start,
            track,
        },
        problems,
    ))
}

/// Ends lines that played out.
pub(crate) fn finish_lines(
    mut faces: Query<(Entity, &mut FaceRuntime)>,
    time: Res<Time>,
    mut finished: MessageWriter<SpeechFinished>,
    mut commands: Commands,
) {
    let now = time.elapsed_secs_f64();
    for (entity, mut rt) in &mut faces {
        if rt.line.as_ref().is_some_and(|l| l.playback.finished(now)) {
            end_line(entity, &mut rt, true, &mut finished, &mut commands);
        }
    }
}
