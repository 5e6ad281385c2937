//! The plugin's runtime state: the inference worker resource and each face's bookkeeping.
//! Components and systems both use these; nothing here depends on them.
//!
//! Per face, a monotonic *frame key* counts 25 fps frames on the face's clock: game time
//! while idle, the sound's playback position while a line plays. Frames are requested a
//! little ahead of the key (`prebuffer`), rendered on the worker and shown when the key
//! reaches them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bevy::prelude::*;
use bevy::tasks::Task;

use super::audio::Playback;
use super::messages::{EdTalkError, EdTalkErrorKind, Speak};
use super::speech::PreparedLine;
use crate::model::audio2lip::Audio2Lip;
use crate::motion::{Easing, MotionFrame, ResolvedExpression};
use crate::render::{FaceFrame, IdentityId};
use crate::worker::Worker;

/// The inference worker, if it could be started.
#[derive(Resource, Default)]
pub(crate) struct WorkerRes {
    pub(crate) worker: Option<Worker>,
    /// The procedural worker, kept beside the neural one once that has been adopted: a
    /// line that render-ahead cannot prepare within `max_render_ahead_wait` is rendered
    /// here instead (see [`ActiveLine::procedural`]).
    pub(crate) fallback: Option<Worker>,
    /// Audio2Lip, when its checkpoint loaded: mouth coefficients for the neural renderer.
    pub(crate) audio2lip: Option<Arc<Audio2Lip>>,
    /// Which entity each registered identity belongs to.
    pub(crate) faces: HashMap<IdentityId, Entity>,
    /// Game time and rendered-frame count at the start of the inference-fps window.
    pub(crate) fps_window: (f64, u64),
    /// Seconds per rendered frame as the worker measures it (a running average; 0 until
    /// measured): what render-ahead plans with.
    pub(crate) frame_secs: f64,
    /// Rendered-frame count when `frame_secs` was last updated.
    pub(crate) frame_secs_seen: u64,
    /// Stale requests the workers had skipped when last counted into the diagnostics.
    pub(crate) stale_seen: u64,
    /// The same for requests skipped as outdated.
    pub(crate) superseded_seen: u64,
}

impl WorkerRes {
    /// Whether the main worker runs the neural renderer.
    pub(crate) fn is_neural(&self) -> bool {
        self.worker
            .as_ref()
            .is_some_and(|w| w.backend() == crate::render::Backend::Neural)
    }

    /// A counter of [`crate::worker::WorkerStats`], summed over the main and the
    /// fallback worker.
    pub(crate) fn counted(
        &self,
        counter: impl Fn(&crate::worker::WorkerStats) -> &std::sync::atomic::AtomicU64,
    ) -> u64 {
        self.worker
            .iter()
            .chain(&self.fallback)
            .map(|w| counter(w.stats()).load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }
}

/// A line whose frames are being rendered ahead: its audio starts later.
pub(crate) struct WaitingAudio {
    pub(crate) samples: Arc<[f32]>,
    pub(crate) sample_rate: u32,
    pub(crate) source: Option<Arc<crate::audio::SourceAudio>>,
    pub(crate) options: super::audio::PlayOptions,
    /// Game time the wait began.
    pub(crate) since: f64,
    pub(crate) duration: f32,
}

/// Where a face's portrait is with the worker.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Registration {
    /// Not sent yet (image loading, or no worker).
    #[default]
    None,
    /// Sent; the worker is preparing the identity.
    Pending,
    /// The worker renders this face.
    Ready,
    /// The portrait was rejected (reported); the still image stays up.
    Failed,
}

/// One emotion-script key, resolved when its line started.
pub(crate) struct ScriptKey {
    /// Seconds from the line's start.
    pub(crate) time: f32,
    pub(crate) target: ResolvedExpression,
    pub(crate) blend: f32,
    pub(crate) easing: Easing,
    /// The key's emotion mix as text, shown by [`super::EmotionState::label`].
    pub(crate) label: String,
}

/// A script's keys resolved when its line started, applied as the line plays.
pub(crate) type ResolvedKeys = Vec<ScriptKey>;

/// A line that is playing on a face.
pub(crate) struct ActiveLine {
    pub(crate) playback: Playback,
    pub(crate) motion: Arc<Vec<MotionFrame>>,
    pub(crate) own_pose: bool,
    /// Frame key of the line's first frame.
    pub(crate) base_key: i64,
    pub(crate) tag: String,
    /// The emotion script's keys, resolved against the game's emotion library.
    pub(crate) script: Option<ResolvedKeys>,
    pub(crate) next_script_key: usize,
    /// A live voice stream's plugin end (dropping it closes the stream).
    pub(crate) stream: Option<super::voice_stream::StreamLine>,
    /// While a stream waits for audio, the face runs on game time from (time, key) with
    /// its mouth closed; playback re-bases the line when it resumes.
    pub(crate) starved: Option<(f64, i64)>,
    /// The entity whose Bevy audio this line follows ([`super::LipSyncTo`]).
    #[cfg_attr(not(feature = "bevy_audio"), allow(dead_code))]
    pub(crate) follows: Option<Entity>,
    /// Render-ahead: the audio waiting for the line's frames (the face holds meanwhile).
    pub(crate) waiting: Option<Box<WaitingAudio>>,
    /// A baked face clip the line's faces are played from (no frames are rendered).
    pub(crate) clip: Option<(crate::clip::FaceClip, crate::clip::ClipCursor)>,
    /// The line's frames come from the procedural fallback worker: the neural renderer
    /// could not render it ahead within `max_render_ahead_wait`.
    pub(crate) procedural: bool,
}

impl ActiveLine {
    /// The line's frames for [`super::speech::motion_at`], unless it is waiting for audio.
    pub(crate) fn view(&self) -> Option<super::speech::LineView<'_>> {
        self.starved.is_none().then(|| super::speech::LineView {
            frames: self.motion.as_slice(),
            base_key: self.base_key,
            own_pose: self.own_pose,
        })
    }
}

/// A [`Speak`] waiting for its assets and its preparation task.
pub(crate) struct PendingLine {
    pub(crate) request: Speak,
    /// The line's face clip, once loaded.
    pub(crate) clip: Option<crate::clip::FaceClip>,
    pub(crate) task: Option<Task<Result<PreparedLine, String>>>,
}

/// Per-face bookkeeping (internal; added with [`super::FacePortrait`]).
#[derive(Component, Default)]
pub struct FaceRuntime {
    pub(crate) registration: Registration,
    /// The portrait image registered last; `None` forces (re-)registration.
    pub(crate) registered: Option<AssetId<Image>>,
    pub(crate) reported_missing: bool,
    /// The portrait being aligned off the main thread.
    pub(crate) preparing: Option<Task<super::align::PreparedPortrait>>,
    pub(crate) line: Option<ActiveLine>,
    pub(crate) pending: Option<PendingLine>,
    pub(crate) key: i64,
    pub(crate) epoch: u32,
    pub(crate) invalid_after: i64,
    pub(crate) requested_upto: i64,
    pub(crate) outstanding: BTreeSet<i64>,
    pub(crate) buffer: BTreeMap<i64, (u32, FaceFrame)>,
    pub(crate) shown: Option<i64>,
    pub(crate) last_motion: Option<MotionFrame>,
    /// The fallback worker ([`WorkerRes::fallback`]) has this face's identity.
    pub(crate) fallback_ready: bool,
    /// The paced idle frame in flight on a slow renderer (its key): rendered even if late,
    /// so it counts neither as outstanding nor as late.
    pub(crate) paced: Option<i64>,
    /// A paced idle frame still in flight when a look change cancelled it (see
    /// [`Self::invalidate`]): if it comes, it is superseded work, not a missed frame.
    pub(crate) cancelled_paced: Option<i64>,
    /// The key at the last texture upload.
    pub(crate) uploaded_key: Option<i64>,
}

impl FaceRuntime {
    /// Frames after `after` are outdated: drop them and request them again.
    pub(crate) fn invalidate(&mut self, after: i64) {
        self.epoch = self.epoch.wrapping_add(1);
        self.invalid_after = after;
        self.buffer.retain(|&k, _| k <= after);
        self.outstanding.retain(|&k| k <= after);
        self.requested_upto = self.requested_upto.min(after);
        self.last_motion = None;
        // A slow renderer may be drawing it already; a new one is asked for at once.
        if let Some(k) = self.paced.take() {
            self.cancelled_paced = Some(k);
        }
    }
}

/// The assets that changed (hot reload, or an edit through `Assets::get_mut`).
pub(crate) fn modified_ids<A: Asset>(events: &mut MessageReader<AssetEvent<A>>) -> Vec<AssetId<A>> {
    events
        .read()
        .filter_map(|e| match e {
            AssetEvent::Modified { id } => Some(*id),
            _ => None,
        })
        .collect()
}

/// The worker's key for an entity's identity.
pub(crate) fn identity_of(entity: Entity) -> IdentityId {
    entity.to_bits()
}

/// Logs a problem and sends it as an [`EdTalkError`]; the game goes on.
pub(crate) fn report(
    errors: &mut MessageWriter<EdTalkError>,
    entity: Option<Entity>,
    kind: EdTalkErrorKind,
    message: String,
) {
    match entity {
        Some(e) => warn!("bevy_edtalk: {e}: {message}"),
        None => warn!("bevy_edtalk: {message}"),
    }
    errors.write(EdTalkError {
        entity,
        kind,
        message,
    });
}
