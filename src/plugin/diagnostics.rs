use bevy::prelude::*;

use crate::render::Backend;

/// What the plugin did, for on-screen stats and tuning. Counters only grow.
#[derive(Resource, Clone, Debug, Default)]
pub struct EdTalkDiagnostics {
    /// Renderer in use; `None` until the worker has started (or if it could not start).
    pub backend: Option<Backend>,
    /// Faces rendered by the worker.
    pub frames_rendered: u64,
    /// Faces uploaded to textures.
    pub frames_shown: u64,
    /// Frames the player missed: rendered faces that came after their time (a later one
    /// was shown first), plus requests the worker skipped because their time had passed.
    /// Zero when the renderer keeps up (render-ahead, paced idle faces). Not counted while
    /// a face has not shown its first rendered frame yet (its still portrait is up).
    pub frames_dropped: u64,
    /// Rendered faces thrown away because the face's look changed before they were shown
    /// (a line started, an emotion changed); their keys are rendered again. Wasted work,
    /// not missed frames.
    pub frames_superseded: u64,
    /// Faces rendered in time but never shown because the game's own frame rate is below
    /// the faces' (25 fps): several face frames fell between two game frames.
    pub frames_skipped: u64,
    /// Game frames on which a face wanted a newer frame than it had: the last frame
    /// stayed up (not counted before the face's first rendered frame).
    pub frames_late: u64,
    /// Mean inference time per face frame over the worker's life, in milliseconds.
    pub inference_ms_per_frame: f32,
    /// Inference time per face of the latest renderer call, in milliseconds.
    pub last_inference_ms: f32,
    /// Face frames rendered per second, over the last second.
    pub inference_fps: f32,
    /// Requests refused because the worker's queue was full.
    pub requests_refused: u64,
    /// Worker restarts after renderer panics.
    pub worker_restarts: u64,
}
