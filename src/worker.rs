//! The inference thread: owns a renderer, takes batched frame requests through bounded
//! channels and hands frames back. No call here blocks the caller.
//!
//! * Requests carry a per-identity frame index; the caller moves a *playhead* forward and
//!   the worker drops requests that fell behind it instead of rendering stale frames.
//! * A panic inside the renderer is caught: the renderer is rebuilt from its factory, the
//!   identities are registered again, and a [`WorkerEvent::Restarted`] says so.
//! * The worker runs its renderer inside its own rayon pool, sized by
//!   [`WorkerSettings::threads`], so inference never competes with the game's task pools
//!   for threads it did not ask for.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError, bounded};

use crate::motion::MotionFrame;
use crate::render::rig::FaceRig;
use crate::render::{
    Backend, FaceFrame, FaceRenderer, FaceRequest, IdentityId, Portrait, RenderError,
};

/// Builds the renderer on the worker thread (again after a panic).
pub type RendererFactory =
    Arc<dyn Fn() -> Result<Box<dyn FaceRenderer>, RenderError> + Send + Sync>;

/// Worker settings.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// Threads of the worker's own pool (used by candle and by batched rendering).
    pub threads: usize,
    /// Capacity of the command channel; a full channel makes `submit` fail, never block.
    pub queue_capacity: usize,
    /// Most frames rendered in one renderer call.
    pub max_batch: usize,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .saturating_sub(1)
                .max(1),
            queue_capacity: 256,
            max_batch: 8,
        }
    }
}

/// One frame to render: an identity in one frame of motion, at an index on that identity's
/// timeline. `epoch` is echoed back so the caller can discard frames made before a change.
#[derive(Clone, Debug)]
pub struct FrameJob {
    /// The registered identity.
    pub identity: IdentityId,
    /// Frame index on the identity's timeline (the plugin's frame key).
    pub index: i64,
    /// Echoed in the answer.
    pub epoch: u32,
    /// What the face does in this frame.
    pub motion: MotionFrame,
    /// Rendered even once the playhead has passed `index`. For idle frames on a renderer
    /// slower than real time: a late idle frame is still the newest picture of the face,
    /// and skipping it would leave the face frozen.
    pub late_ok: bool,
}

/// What the worker reports.
#[derive(Debug)]
pub enum WorkerEvent {
    /// A rendered frame.
    Frame {
        /// The identity.
        identity: IdentityId,
        /// The job's index.
        index: i64,
        /// The job's epoch.
        epoch: u32,
        /// The face (at the portrait's size when it is pasted back).
        frame: FaceFrame,
    },
    /// The identity is registered and can be rendered.
    IdentityReady(IdentityId),
    /// Registering the identity failed; its frames will fail too.
    IdentityFailed {
        /// The identity.
        identity: IdentityId,
        /// What was wrong.
        error: String,
    },
    /// Rendering these frames failed (the worker keeps running).
    RenderFailed {
        /// The identities of the failed frames.
        identities: Vec<IdentityId>,
        /// What went wrong.
        error: String,
    },
    /// The renderer panicked and was rebuilt; `reason` is the panic message.
    Restarted {
        /// The panic message.
        reason: String,
    },
}

/// Errors of the worker's API.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The command queue is full (its capacity); try again next frame.
    #[error("inference worker queue is full ({0} commands); request dropped")]
    Busy(usize),
    /// The thread has ended.
    #[error("inference worker thread is gone and could not be restarted: {0}")]
    Gone(String),
    /// The thread or its renderer could not be started.
    #[error("could not start the inference worker: {0}")]
    Spawn(String),
}

/// Counters shared with the caller (read them any time).
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Frames rendered.
    pub rendered: AtomicU64,
    /// Requests dropped because they were behind the playhead.
    pub dropped_stale: AtomicU64,
    /// Total time inside the renderer, in microseconds.
    pub render_micros: AtomicU64,
    /// Time of the last renderer call divided by its frames, in microseconds.
    pub last_frame_micros: AtomicU64,
    /// Renderer restarts after panics.
    pub restarts: AtomicU64,
    /// Requests skipped because their epoch was outdated ([`Worker::set_epoch`]).
    pub superseded: AtomicU64,
}

/// What the caller last said of an identity's timeline.
#[derive(Clone, Copy, Debug, Default)]
struct Head {
    /// Jobs below this index are stale.
    index: i64,
    /// Jobs of another epoch are outdated.
    epoch: Option<u32>,
}

/// Where an identity's rendered crops go back into its whole portrait (see
/// [`crate::face::paste_back`]): the worker pastes each frame before sending it, so the
/// caller receives frames at the portrait's own resolution.
#[derive(Clone, Debug)]
pub struct PasteTarget {
    /// The whole portrait.
    pub original: Arc<Portrait>,
    /// Portrait pixels -> 256-crop pixels (an [`crate::face::AlignedPortrait::transform`]).
    pub transform: crate::face::SimilarityTransform,
}

enum Command {
    SetIdentity {
        id: IdentityId,
        portrait: Arc<Portrait>,
        rig: Option<FaceRig>,
    },
    SetPasteBack {
        id: IdentityId,
        target: Option<PasteTarget>,
    },
    RemoveIdentity(IdentityId),
    Render(Vec<FrameJob>),
    /// Test hook: panic inside the renderer call.
    #[cfg(feature = "test-hooks")]
    InjectPanic,
    /// Test hook: every frame takes at least this long (a slow renderer).
    #[cfg(feature = "test-hooks")]
    SetMinFrameTime(std::time::Duration),
}

/// Handle to the inference thread. Dropping it stops the thread.
pub struct Worker {
    cmd_tx: Sender<Command>,
    ev_rx: Receiver<WorkerEvent>,
    playheads: Arc<Mutex<HashMap<IdentityId, Head>>>,
    stats: Arc<WorkerStats>,
    backend: Backend,
    resolution: u32,
    join: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread and builds the renderer on it. Fails if the renderer cannot be
    /// built (e.g. a corrupt checkpoint), with the renderer's error.
    pub fn spawn(factory: RendererFactory, settings: WorkerSettings) -> Result<Self, WorkerError> {
        let (cmd_tx, cmd_rx) = bounded(settings.queue_capacity.max(1));
        // Events are small except frames; the caller drains every game frame.
        let (ev_tx, ev_rx) = bounded(settings.queue_capacity.max(1) * 4);
        let (ready_tx, ready_rx) = bounded(1);
        let playheads = Arc::new(Mutex::new(HashMap::new()));
        let stats = Arc::new(WorkerStats::default());
        let thread_state = WorkerThread {
            factory,
            settings: settings.clone(),
            cmd_rx,
            ev_tx,
            playheads: playheads.clone(),
            stats: stats.clone(),
            identities: HashMap::new(),
            paste: HashMap::new(),
            #[cfg(feature = "test-hooks")]
            min_frame_time: std::time::Duration::ZERO,
        };
        let join = std::thread::Builder::new()
            .name("edtalk-inference".into())
            .spawn(move || thread_state.run(ready_tx))
            .map_err(|e| WorkerError::Spawn(e.to_string()))?;
        let (backend, resolution) = ready_rx
            .recv()
            .map_err(|_| WorkerError::Spawn("worker thread exited during start".into()))?
            .map_err(|e: RenderError| WorkerError::Spawn(e.to_string()))?;
        Ok(Self {
            cmd_tx,
            ev_rx,
            playheads,
            stats,
            backend,
            resolution,
            join: Some(join),
        })
    }

    /// The renderer's tier.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Side of the square frames produced.
    pub fn resolution(&self) -> u32 {
        self.resolution
    }

    /// Shared counters.
    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.stats
    }

    fn send(&self, cmd: Command) -> Result<(), WorkerError> {
        self.cmd_tx.try_send(cmd).map_err(|e| match e {
            TrySendError::Full(_) => WorkerError::Busy(self.cmd_tx.capacity().unwrap_or(0)),
            TrySendError::Disconnected(_) => WorkerError::Gone("channel closed".into()),
        })
    }

    /// Registers or replaces an identity. Answered by `IdentityReady` or `IdentityFailed`.
    pub fn set_identity(
        &self,
        id: IdentityId,
        portrait: Arc<Portrait>,
        rig: Option<FaceRig>,
    ) -> Result<(), WorkerError> {
        self.send(Command::SetIdentity { id, portrait, rig })
    }

    /// Frames of `id` are pasted back into a whole portrait (`None`: sent as rendered).
    pub fn set_paste_back(
        &self,
        id: IdentityId,
        target: Option<PasteTarget>,
    ) -> Result<(), WorkerError> {
        self.send(Command::SetPasteBack { id, target })
    }

    /// Forgets an identity.
    pub fn remove_identity(&self, id: IdentityId) -> Result<(), WorkerError> {
        self.playheads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.send(Command::RemoveIdentity(id))
    }

    /// Queues frames. Fails with `Busy` instead of blocking when the queue is full.
    pub fn submit(&self, jobs: Vec<FrameJob>) -> Result<(), WorkerError> {
        if jobs.is_empty() {
            return Ok(());
        }
        self.send(Command::Render(jobs))
    }

    /// Frames of `id` with an index below `index` are stale from now on and are dropped.
    pub fn set_playhead(&self, id: IdentityId, index: i64) {
        self.playheads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default()
            .index = index;
    }

    /// Queued frames of `id` with another epoch are outdated from now on (the caller
    /// changed the face's look) and are skipped, counted in [`WorkerStats::superseded`].
    pub fn set_epoch(&self, id: IdentityId, epoch: u32) {
        self.playheads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default()
            .epoch = Some(epoch);
    }

    /// Everything the worker has reported since the last call; never blocks.
    pub fn poll(&self) -> Vec<WorkerEvent> {
        // Empty and disconnected both mean: nothing more now.
        self.ev_rx.try_iter().collect()
    }

    /// Whether the thread is still running.
    pub fn is_alive(&self) -> bool {
        self.join.as_ref().is_some_and(|j| !j.is_finished())
    }

    /// Makes the renderer panic on its next call (for tests of the recovery path; cargo
    /// feature `test-hooks`, not part of the public API).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn inject_panic(&self) -> Result<(), WorkerError> {
        self.send(Command::InjectPanic)
    }

    /// Test hook: makes every frame take at least `per_frame` (a slow renderer), counted
    /// in the worker's timing as real render time.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn set_min_frame_time(&self, per_frame: std::time::Duration) -> Result<(), WorkerError> {
        self.send(Command::SetMinFrameTime(per_frame))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        let (dead_tx, _) = bounded(1);
        drop(std::mem::replace(&mut self.cmd_tx, dead_tx));
        if let Some(join) = self.join.take() {
            let _ = join.join();
        }
    }
}

struct WorkerThread {
    factory: RendererFactory,
    settings: WorkerSettings,
    cmd_rx: Receiver<Command>,
    ev_tx: Sender<WorkerEvent>,
    playheads: Arc<Mutex<HashMap<IdentityId, Head>>>,
    stats: Arc<WorkerStats>,
    identities: HashMap<IdentityId, (Arc<Portrait>, Option<FaceRig>)>,
    paste: HashMap<IdentityId, PasteTarget>,
    /// Test hook: the least time a frame takes.
    #[cfg(feature = "test-hooks")]
    min_frame_time: std::time::Duration,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl WorkerThread {
    fn run(mut self, ready: Sender<Result<(Backend, u32), RenderError>>) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.settings.threads.max(1))
            .thread_name(|i| format!("edtalk-inference-{i}"))
            .build();
        let pool = match pool {
            Ok(p) => p,
            Err(e) => {
                let _ = ready.send(Err(RenderError::Setup(format!("thread pool: {e}"))));
                return;
            }
        };
        pool.install(move || {
            let mut renderer = match (self.factory)() {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let _ = ready.send(Ok((renderer.backend(), renderer.resolution())));
            self.serve(&mut renderer);
        });
    }

    fn emit(&self, ev: WorkerEvent) {
        // A full event queue means the caller stopped draining; dropping is the only
        // non-blocking option and the frame would be stale anyway.
        let _ = self.ev_tx.try_send(ev);
    }

    /// Takes commands as they come and renders the queued jobs most urgent first (see
    /// [`Self::next_chunk`]), one renderer call at a time, so a job that is due soon never
    /// waits behind frames of other faces that are due much later. Commands that arrive
    /// meanwhile join the queue before the next call.
    fn serve(&mut self, renderer: &mut Box<dyn FaceRenderer>) {
        // Jobs taken from the channel and not rendered yet.
        let mut pending: Vec<FrameJob> = Vec::new();
        loop {
            // Wait only while there is nothing to render.
            let first = if pending.is_empty() {
                match self.cmd_rx.recv() {
                    Ok(cmd) => Some(cmd),
                    Err(_) => return,
                }
            } else {
                match self.cmd_rx.try_recv() {
                    Ok(cmd) => Some(cmd),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                }
            };
            // Gather what is already queued so several characters share one renderer call.
            let mut next = first;
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Render(mut batch) => pending.append(&mut batch),
                    other => {
                        // Keep order: render what came before an identity change first.
                        self.render_jobs(renderer, std::mem::take(&mut pending));
                        self.apply(renderer, other);
                    }
                }
                next = self.cmd_rx.try_recv().ok();
            }
            let chunk = self.next_chunk(&mut pending);
            self.render_chunk(renderer, &chunk);
        }
    }

    fn apply(&mut self, renderer: &mut Box<dyn FaceRenderer>, cmd: Command) {
        match cmd {
            Command::SetIdentity { id, portrait, rig } => {
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    renderer.set_identity(id, &portrait, rig.as_ref())
                }));
                match result {
                    Ok(Ok(())) => {
                        self.identities.insert(id, (portrait, rig));
                        self.emit(WorkerEvent::IdentityReady(id));
                    }
                    Ok(Err(e)) => self.emit(WorkerEvent::IdentityFailed {
                        identity: id,
                        error: e.to_string(),
                    }),
                    Err(p) => {
                        self.emit(WorkerEvent::IdentityFailed {
                            identity: id,
                            error: format!("renderer panicked: {}", panic_message(&*p)),
                        });
                        self.restart(renderer, panic_message(&*p));
                    }
                }
            }
            Command::SetPasteBack { id, target } => match target {
                Some(t) => {
                    self.paste.insert(id, t);
                }
                None => {
                    self.paste.remove(&id);
                }
            },
            Command::RemoveIdentity(id) => {
                self.paste.remove(&id);
                self.identities.remove(&id);
                renderer.remove_identity(id);
            }
            #[cfg(feature = "test-hooks")]
            Command::InjectPanic => {
                self.restart(renderer, "injected panic (test hook)".into());
            }
            #[cfg(feature = "test-hooks")]
            Command::SetMinFrameTime(d) => self.min_frame_time = d,
            Command::Render(jobs) => self.render_jobs(renderer, jobs),
        }
    }

    fn restart(&mut self, renderer: &mut Box<dyn FaceRenderer>, reason: String) {
        self.stats.restarts.fetch_add(1, Ordering::Relaxed);
        match (self.factory)() {
            Ok(fresh) => {
                *renderer = fresh;
                for (id, (portrait, rig)) in &self.identities {
                    if let Err(e) = renderer.set_identity(*id, portrait, rig.as_ref()) {
                        let _ = self.ev_tx.try_send(WorkerEvent::IdentityFailed {
                            identity: *id,
                            error: e.to_string(),
                        });
                    }
                }
            }
            Err(e) => {
                // Keep the old renderer: a failed rebuild is worse than a possibly
                // inconsistent cache, and the next panic will try again.
                let _ = self.ev_tx.try_send(WorkerEvent::RenderFailed {
                    identities: vec![],
                    error: format!("renderer rebuild failed: {e}"),
                });
            }
        }
        self.emit(WorkerEvent::Restarted { reason });
    }

    /// Drops jobs behind their identity's playhead (unless `late_ok`) or of an outdated
    /// epoch, counting them.
    fn skip_outdated(&self, jobs: &mut Vec<FrameJob>) {
        let heads = self.playheads.lock().unwrap_or_else(|p| p.into_inner());
        let (mut stale, mut superseded) = (0, 0);
        jobs.retain(|j| {
            let Some(h) = heads.get(&j.identity) else {
                return true;
            };
            if h.epoch.is_some_and(|e| e != j.epoch) {
                superseded += 1;
                false
            } else if !j.late_ok && j.index < h.index {
                stale += 1;
                false
            } else {
                true
            }
        });
        self.stats.dropped_stale.fetch_add(stale, Ordering::Relaxed);
        self.stats
            .superseded
            .fetch_add(superseded, Ordering::Relaxed);
    }

    /// Renders all of `jobs`, most urgent first.
    fn render_jobs(&mut self, renderer: &mut Box<dyn FaceRenderer>, mut jobs: Vec<FrameJob>) {
        while !jobs.is_empty() {
            let chunk = self.next_chunk(&mut jobs);
            self.render_chunk(renderer, &chunk);
        }
    }

    /// Takes the next renderer call's jobs out of `pending`: outdated ones are skipped
    /// (checked before every call: playheads move while earlier calls render), the rest
    /// ordered by how soon they are due (index minus their identity's playhead; the order
    /// they came in among equals, and for identities without a playhead), and the first
    /// `max_batch` taken. In arrival order, the last of sixteen faces' frames would wait
    /// behind every other face's frames of the same game frame, even those due later.
    fn next_chunk(&self, pending: &mut Vec<FrameJob>) -> Vec<FrameJob> {
        self.skip_outdated(pending);
        {
            let heads = self.playheads.lock().unwrap_or_else(|p| p.into_inner());
            // Stable: one identity's frames stay in order.
            pending.sort_by_key(|j| heads.get(&j.identity).map_or(0, |h| j.index - h.index));
        }
        let n = self.settings.max_batch.max(1).min(pending.len());
        pending.drain(..n).collect()
    }

    /// One renderer call for `chunk`; its frames (or its failure) are reported.
    fn render_chunk(&mut self, renderer: &mut Box<dyn FaceRenderer>, chunk: &[FrameJob]) {
        if chunk.is_empty() {
            return;
        }
        let requests: Vec<FaceRequest> = chunk
            .iter()
            .map(|j| FaceRequest {
                identity: j.identity,
                motion: j.motion.clone(),
            })
            .collect();
        let t0 = Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| renderer.render(&requests)));
        #[cfg(feature = "test-hooks")]
        if let Some(rest) = (self.min_frame_time * chunk.len() as u32).checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
        let micros = t0.elapsed().as_micros() as u64;
        match result {
            Ok(Ok(frames)) => {
                self.stats
                    .render_micros
                    .fetch_add(micros, Ordering::Relaxed);
                self.stats
                    .last_frame_micros
                    .store(micros / chunk.len() as u64, Ordering::Relaxed);
                self.stats
                    .rendered
                    .fetch_add(frames.len() as u64, Ordering::Relaxed);
                for (job, frame) in chunk.iter().zip(frames) {
                    let frame = match self.paste.get(&job.identity) {
                        Some(t) => pasted(frame, t),
                        None => frame,
                    };
                    self.emit(WorkerEvent::Frame {
                        identity: job.identity,
                        index: job.index,
                        epoch: job.epoch,
                        frame,
                    });
                }
            }
            Ok(Err(e)) => self.emit(WorkerEvent::RenderFailed {
                identities: chunk.iter().map(|j| j.identity).collect(),
                error: e.to_string(),
            }),
            Err(p) => self.restart(renderer, panic_message(&*p)),
        }
    }
}

/// A rendered crop pasted back into its whole portrait (the frame as it is if its buffer
/// is not a portrait, which a renderer never produces).
fn pasted(frame: FaceFrame, target: &PasteTarget) -> FaceFrame {
    match Portrait::from_rgba(frame.width, frame.height, frame.rgba) {
        Ok(crop) => {
            let out = crate::face::paste_back(&target.original, &crop, &target.transform);
            FaceFrame {
                width: out.width(),
                height: out.height(),
                rgba: out.into_rgba(),
            }
        }
        Err(_) => FaceFrame {
            width: 0,
            height: 0,
            rgba: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Fills the frame with the jaw value; panics when asked to render jaw_open = -1.
    struct Flat {
        ids: Vec<IdentityId>,
    }

    impl FaceRenderer for Flat {
        fn backend(&self) -> Backend {
            Backend::Procedural
        }
        fn resolution(&self) -> u32 {
            4
        }
        fn set_identity(
            &mut self,
            id: IdentityId,
            _: &Portrait,
            _: Option<&FaceRig>,
        ) -> Result<(), RenderError> {
            self.ids.push(id);
            Ok(())
        }
        fn remove_identity(&mut self, id: IdentityId) {
            self.ids.retain(|&i| i != id);
        }
        fn render(&mut self, reqs: &[FaceRequest]) -> Result<Vec<FaceFrame>, RenderError> {
            reqs.iter()
                .map(|r| {
                    if !self.ids.contains(&r.identity) {
                        return Err(RenderError::UnknownIdentity(
                            r.identity,
                            Backend::Procedural,
                        ));
                    }
                    assert!(r.motion.mouth.jaw_open >= 0.0, "bad jaw");
                    let v = (r.motion.mouth.jaw_open * 255.0) as u8;
                    Ok(FaceFrame {
                        width: 4,
                        height: 4,
                        rgba: vec![v; 64],
                    })
                })
                .collect()
        }
    }

    fn worker() -> Worker {
        let factory: RendererFactory = Arc::new(|| Ok(Box::new(Flat { ids: vec![] }) as _));
        Worker::spawn(factory, WorkerSettings::default()).unwrap()
    }

    fn portrait() -> Arc<Portrait> {
        Arc::new(Portrait::from_rgba(2, 2, vec![0; 16]).unwrap())
    }

    fn job(identity: IdentityId, index: i64, jaw: f32) -> FrameJob {
        let mut motion = MotionFrame::default();
        motion.mouth.jaw_open = jaw;
        FrameJob {
            identity,
            index,
            epoch: 0,
            motion,
            late_ok: false,
        }
    }

    fn wait_for(w: &Worker, mut done: impl FnMut(&[WorkerEvent]) -> bool) -> Vec<WorkerEvent> {
        let mut all = Vec::new();
        for _ in 0..400 {
            all.extend(w.poll());
            if done(&all) {
                return all;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("worker did not answer in time; got {all:?}");
    }

    fn frames(evs: &[WorkerEvent]) -> Vec<(IdentityId, i64, u8)> {
        evs.iter()
            .filter_map(|e| match e {
                WorkerEvent::Frame {
                    identity,
                    index,
                    frame,
                    ..
                } => Some((*identity, *index, frame.rgba[0])),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn renders_in_order_for_several_identities() {
        let w = worker();
        w.set_identity(1, portrait(), None).unwrap();
        w.set_identity(2, portrait(), None).unwrap();
        w.submit(vec![job(1, 0, 0.0), job(2, 0, 1.0), job(1, 1, 0.5)])
            .unwrap();
        let evs = wait_for(&w, |e| frames(e).len() == 3);
        assert_eq!(frames(&evs), vec![(1, 0, 0), (2, 0, 255), (1, 1, 127)]);
        assert_eq!(w.stats().rendered.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn the_frames_due_soonest_render_first() {
        let w = worker();
        w.set_identity(1, portrait(), None).unwrap();
        w.set_identity(2, portrait(), None).unwrap();
        // Face 1 is 5 frames ahead of its playhead, face 2 due now: in arrival order face
        // 2 would wait behind frames that are due later.
        w.set_playhead(1, 0);
        w.set_playhead(2, 10);
        w.submit(vec![
            job(1, 5, 0.0),
            job(1, 6, 0.0),
            job(2, 10, 1.0),
            job(2, 11, 1.0),
        ])
        .unwrap();
        let evs = wait_for(&w, |e| frames(e).len() == 4);
        let order: Vec<_> = frames(&evs).iter().map(|&(id, i, _)| (id, i)).collect();
        assert_eq!(order, vec![(2, 10), (2, 11), (1, 5), (1, 6)]);
    }

    #[test]
    fn frames_behind_the_playhead_are_dropped() {
        let w = worker();
        w.set_identity(7, portrait(), None).unwrap();
        w.set_playhead(7, 5);
        w.submit(vec![job(7, 3, 0.0), job(7, 4, 0.0), job(7, 5, 0.0)])
            .unwrap();
        let evs = wait_for(&w, |e| !frames(e).is_empty());
        assert_eq!(frames(&evs), vec![(7, 5, 0)]);
        assert_eq!(w.stats().dropped_stale.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn unknown_identity_is_an_error_not_a_crash() {
        let w = worker();
        w.submit(vec![job(9, 0, 0.0)]).unwrap();
        let evs = wait_for(&w, |e| {
            e.iter()
                .any(|e| matches!(e, WorkerEvent::RenderFailed { .. }))
        });
        let msg = format!("{evs:?}");
        assert!(msg.contains("identity 9 is not registered"), "{msg}");
    }

    #[test]
    fn a_renderer_panic_restarts_it_with_identities_kept() {
        let w = worker();
        w.set_identity(1, portrait(), None).unwrap();
        w.submit(vec![job(1, 0, -1.0)]).unwrap();
        wait_for(&w, |e| {
            e.iter()
                .any(|e| matches!(e, WorkerEvent::Restarted { reason } if reason == "bad jaw"))
        });
        // Same identity renders after the restart.
        w.submit(vec![job(1, 1, 1.0)]).unwrap();
        let evs = wait_for(&w, |e| !frames(e).is_empty());
        assert_eq!(frames(&evs), vec![(1, 1, 255)]);
        assert_eq!(w.stats().restarts.load(Ordering::Relaxed), 1);
        assert!(w.is_alive());
    }

    #[test]
    fn a_full_queue_fails_fast() {
        let factory: RendererFactory = Arc::new(|| Ok(Box::new(Flat { ids: vec![] }) as _));
        let w = Worker::spawn(
            factory,
            WorkerSettings {
                queue_capacity: 1,
                ..Default::default()
            },
        )
        .unwrap();
        // Far more commands than capacity: some must be refused, none may block.
        let t0 = Instant::now();
        let refused = (0..1000)
            .filter(|i| w.submit(vec![job(1, *i, 0.0)]).is_err())
            .count();
        assert!(refused > 0);
        assert!(t0.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_failing_factory_is_reported_at_spawn() {
        let factory: RendererFactory = Arc::new(|| {
            Err(RenderError::Setup(
                "checkpoint ckpts/EDTalk.pt: truncated".into(),
            ))
        });
        let err = Worker::spawn(factory, WorkerSettings::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("ckpts/EDTalk.pt: truncated"));
    }
}
