//! Startup without a stall: the plugin starts on the procedural renderer at once, and when
//! the neural checkpoints are there they load on a thread of their own (seconds for the
//! full-size model); once the neural renderer is up, every face moves to it and a
//! [`RendererReady`] message says so.

use std::sync::Arc;

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use crossbeam_channel::{Receiver, TryRecvError, bounded};

use super::diagnostics::EdTalkDiagnostics;
use super::messages::{EdTalkError, EdTalkErrorKind, RendererReady};
use super::portraits::NeedsRegistration;
use super::runtime::{FaceRuntime, Registration, WorkerRes, report};
use super::settings::{BackendChoice, EdTalkSettings};
use super::speech;
use crate::model::audio2lip::Audio2Lip;
use crate::render::Backend;
use crate::worker::{Worker, WorkerSettings};

/// The neural renderer being loaded off the main thread.
#[derive(Resource)]
pub(crate) struct PendingNeural(Receiver<Result<(Worker, Arc<Audio2Lip>), String>>);

fn worker_settings(settings: &EdTalkSettings) -> WorkerSettings {
    WorkerSettings {
        threads: settings.inference_threads.clamp(1, 256),
        ..Default::default()
    }
}

/// Starts the procedural worker, and the neural one's loading when it is wanted.
pub(crate) fn start_worker(world: &mut World) {
    let settings = world.resource::<EdTalkSettings>().clone();
    let mut failures = Vec::new();
    let worker = match Worker::spawn(
        speech::procedural_factory(&settings),
        worker_settings(&settings),
    ) {
        Ok(w) => Some(w),
        Err(e) => {
            failures.push(e.to_string());
            None
        }
    };
    if let Some(files) = speech::neural_files(&settings, &mut failures) {
        let (tx, rx) = bounded(1);
        let threads = worker_settings(&settings);
        let spawned = std::thread::Builder::new()
            .name("edtalk-neural-load".into())
            .spawn(move || {
                let loaded = speech::load_neural(files).and_then(|(factory, a2l)| {
                    Worker::spawn(factory, threads)
                        .map(|w| (w, a2l))
                        .map_err(|e| e.to_string())
                });
                let _ = tx.send(loaded);
            });
        match spawned {
            Ok(_) => {
                info!("bevy_edtalk: loading the neural renderer in the background");
                world.insert_resource(PendingNeural(rx));
            }
            Err(e) => failures.push(format!("could not start loading the checkpoints: {e}")),
        }
    }
    let backend = worker.as_ref().map(|w| w.backend());
    if let Some(b) = backend {
        info!("bevy_edtalk: {b} renderer on the inference thread");
    }
    world.resource_mut::<EdTalkDiagnostics>().backend = backend;
    world.insert_resource(WorkerRes {
        worker,
        ..Default::default()
    });
    for message in failures {
        warn!("bevy_edtalk: {message}");
        world.write_message(EdTalkError {
            entity: None,
            kind: EdTalkErrorKind::Checkpoint,
            message,
        });
    }
}

/// What switching renderers writes.
#[derive(SystemParam)]
pub(crate) struct SwitchOutput<'w, 's> {
    diag: ResMut<'w, EdTalkDiagnostics>,
    ready: MessageWriter<'w, RendererReady>,
    errors: MessageWriter<'w, EdTalkError>,
    commands: Commands<'w, 's>,
}

/// Moves every face to the neural renderer once it has loaded (or reports why it did not).
pub(crate) fn adopt_neural_renderer(
    pending: Option<Res<PendingNeural>>,
    mut worker: ResMut<WorkerRes>,
    mut faces: Query<(Entity, &mut FaceRuntime)>,
    settings: Res<EdTalkSettings>,
    mut out: SwitchOutput,
) {
    let Some(pending) = pending else {
        return;
    };
    let loaded = match pending.0.try_recv() {
        Err(TryRecvError::Empty) => return,
        Err(TryRecvError::Disconnected) => Err("the loading thread ended without a result".into()),
        Ok(result) => result,
    };
    out.commands.remove_resource::<PendingNeural>();
    let (neural, audio2lip) = match loaded {
        Ok(pair) => pair,
        Err(e) => {
            let then = if settings.backend == BackendChoice::Neural {
                "; falling back to the procedural renderer"
            } else {
                "; staying on the procedural renderer"
            };
            report(
                &mut out.errors,
                None,
                EdTalkErrorKind::Checkpoint,
                format!("neural renderer: {e}{then}"),
            );
            return;
        }
    };
    if settings.retain_freed_memory && crate::heap::retain_freed_memory() {
        debug!("bevy_edtalk: glibc keeps freed frame activations for reuse");
    }
    // The procedural worker stays as the per-line fallback; every face registers again
    // (with both).
    worker.fallback = worker.worker.replace(neural);
    worker.audio2lip = Some(audio2lip);
    worker.faces.clear();
    // The new worker counts from zero, and its speed is its own.
    worker.frame_secs = 0.0;
    worker.frame_secs_seen = 0;
    // The new worker counts from zero; the fallback keeps its counts.
    worker.stale_seen = worker.counted(|s| &s.dropped_stale);
    worker.superseded_seen = worker.counted(|s| &s.superseded);
    worker.fps_window.1 = 0;
    for (entity, mut rt) in &mut faces {
        // The procedural worker, now the fallback, already has the faces it rendered; a
        // line already playing finishes on it (it was planned for that renderer's speed).
        rt.fallback_ready = rt.registration == Registration::Ready;
        if let Some(line) = rt.line.as_mut()
            && line.waiting.is_none()
            && line.clip.is_none()
        {
            line.procedural = true;
        }
        // A line still being prepared is analysed again, with Audio2Lip's mouth.
        if let Some(pending) = rt.pending.as_mut() {
            pending.task = None;
        }
        // Frames already asked of the procedural worker still come (through the fallback's
        // events) and are shown: nothing is dropped at the switch.
        rt.last_motion = None;
        rt.registration = Registration::None;
        rt.registered = None;
        out.commands.entity(entity).insert(NeedsRegistration);
    }
    out.diag.backend = Some(Backend::Neural);
    info!("bevy_edtalk: neural renderer ready; faces move to it");
    out.ready.write(RendererReady {
        backend: Backend::Neural,
    });
}
