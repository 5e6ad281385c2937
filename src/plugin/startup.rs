//! Startup: builds the renderer on the worker thread; neural if asked and possible.

use bevy::prelude::*;

use super::diagnostics::EdTalkDiagnostics;
use super::messages::{EdTalkError, EdTalkErrorKind};
use super::runtime::WorkerRes;
use super::settings::{BackendChoice, EdTalkSettings};
use super::speech;
use crate::render::Backend;
use crate::worker::{Worker, WorkerSettings};

/// Starts the inference worker with the best renderer that loads; every failure is
/// reported and the next renderer (finally the procedural one) is tried.
pub(crate) fn start_worker(world: &mut World) {
    let settings = world.resource::<EdTalkSettings>().clone();
    let worker_settings = WorkerSettings {
        threads: settings.inference_threads.clamp(1, 256),
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
    if worker.as_ref().map(|w| w.backend()) != Some(Backend::Neural) {
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
    if backend == Some(Backend::Neural)
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
            kind: EdTalkErrorKind::Checkpoint,
            message,
        });
    }
}
