//! Audio2Motion: 16 kHz speech plus an emotion state and a pose source in, one
//! [`MotionFrame`] per 25 fps frame out (`floor(samples / 640)` frames).
//!
//! Every frame gets the DSP mouth controls; with an Audio2Lip model it also gets the 20
//! EDTalk mouth coefficients (official mel windows, then the demo's 3-tap Gaussian
//! smoothing). The whole-clip path and the streaming path are the same code: a clip is a
//! stream pushed at once, so baked and live motion agree frame for frame.
//!
//! Streaming lookahead: without a model, frame `i` is released once
//! `640 i + 832` samples are in (52 ms after the frame's end); with Audio2Lip it needs the
//! mel window's last row and one smoothing frame: at most `640 i + 3400` samples, i.e.
//! 172 ms after the frame's end. [`MotionStream::LOOKAHEAD_SAMPLES`] states the bound.

use super::mix::{EmotionError, EmotionLibrary, EmotionMix, ResolvedExpression};
use super::pose::{PoseError, PosePlayer, PoseSource};
use super::script::{EmotionScript, ScriptError, ScriptPlayer};
use super::track::MotionTrack;
use super::{LIP_DIM, MotionFrame};
use crate::audio::lipsync::WINDOW as DSP_WINDOW;
use crate::audio::mel::{HOP, MEL_BANDS, MelSpectrogram, N_FFT, PREEMPHASIS, reflect_index};
use crate::audio::windows::{MEL_WINDOW, window_start};
use crate::audio::{LipSync, LipSyncSettings, SAMPLES_PER_FRAME};
use crate::model::audio2lip::{Audio2Lip, Audio2LipError, StreamSmoother};
use std::collections::VecDeque;
use std::sync::Arc;

/// Errors of motion generation.
#[derive(Debug, thiserror::Error)]
pub enum MotionError {
    /// The emotion script is invalid.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// The emotion mix is invalid.
    #[error(transparent)]
    Emotion(#[from] EmotionError),
    /// The pose track is invalid.
    #[error(transparent)]
    Pose(#[from] PoseError),
    /// Audio2Lip failed.
    #[error(transparent)]
    Model(#[from] Audio2LipError),
}

/// Where the expression comes from.
#[derive(Clone, Debug, Default)]
pub enum EmotionInput {
    /// The portrait's own expression: `exp_coeffs` stay `None`, neutral look.
    #[default]
    Own,
    /// A fixed mix.
    Mix(EmotionMix),
    /// A timeline relative to the line's start.
    Script(EmotionScript),
}

/// Everything but the audio and the model.
#[derive(Clone, Debug)]
pub struct MotionConfig {
    /// Known emotions (built-in plus custom).
    pub library: EmotionLibrary,
    /// Expression source.
    pub emotion: EmotionInput,
    /// Head-pose source.
    pub pose: PoseSource,
    /// DSP lip-sync tuning.
    pub lipsync: LipSyncSettings,
    /// Apply the official 3-tap smoothing to Audio2Lip output (default true).
    pub smooth_lips: bool,
    /// Windows per Audio2Lip batch (bounds memory).
    pub batch: usize,
}

impl Default for MotionConfig {
    fn default() -> Self {
        Self {
            library: EmotionLibrary::new(),
            emotion: EmotionInput::Own,
            pose: PoseSource::Fixed,
            lipsync: LipSyncSettings::default(),
            smooth_lips: true,
            batch: 64,
        }
    }
}

enum EmotionDriver {
    Own,
    Fixed(ResolvedExpression),
    Script(ScriptPlayer),
}

impl EmotionDriver {
    fn sample(&mut self, t: f32) -> Option<ResolvedExpression> {
        match self {
            EmotionDriver::Own => None,
            EmotionDriver::Fixed(r) => Some(*r),
            EmotionDriver::Script(p) => Some(p.sample(t)),
        }
    }
}

/// Push 16 kHz samples, pull motion frames (see the module docs for the lookahead).
pub struct MotionStream {
    model: Option<Arc<Audio2Lip>>,
    mel: MelSpectrogram,
    lipsync: LipSync,
    emotion: EmotionDriver,
    pose: PosePlayer,
    smooth_lips: bool,
    batch: usize,
    /// Raw samples from absolute index `base`.
    samples: Vec<f32>,
    base: usize,
    total: usize,
    finished: bool,
    next_frame: usize,
    smoother: StreamSmoother<LIP_DIM>,
    awaiting_lips: VecDeque<MotionFrame>,
    ready: VecDeque<MotionFrame>,
}

impl MotionStream {
    /// Worst-case samples past the end of a frame before it is released (with Audio2Lip).
    pub const LOOKAHEAD_SAMPLES: usize = 3400 - SAMPLES_PER_FRAME;

    /// A stream with this configuration and optional Audio2Lip model.
    pub fn new(config: MotionConfig, model: Option<Arc<Audio2Lip>>) -> Result<Self, MotionError> {
        let emotion = match &config.emotion {
            EmotionInput::Own => EmotionDriver::Own,
            EmotionInput::Mix(mix) => EmotionDriver::Fixed(config.library.resolve(mix)?),
            EmotionInput::Script(script) => EmotionDriver::Script(ScriptPlayer::new(
                script,
                &config.library,
                "emotion script",
            )?),
        };
        if let PoseSource::Track(track) = &config.pose {
            track.validate("pose track")?;
        }
        Ok(Self {
            model,
            mel: MelSpectrogram::new(),
            lipsync: LipSync::new(config.lipsync.clone()),
            emotion,
            pose: PosePlayer::new(config.pose.clone()),
            smooth_lips: config.smooth_lips,
            batch: config.batch.max(1),
            samples: Vec::new(),
            base: 0,
            total: 0,
            finished: false,
            next_frame: 0,
            smoother: StreamSmoother::default(),
            awaiting_lips: VecDeque::new(),
            ready: VecDeque::new(),
        })
    }

    /// Appends 16 kHz mono samples (ignored after [`MotionStream::finish`]).
    pub fn push(&mut self, samples: &[f32]) {
        if self.finished {
            return;
        }
        self.samples
            .extend(samples.iter().map(|&v| if v.is_finite() { v } else { 0.0 }));
        self.total += samples.len();
    }

    /// Marks the end of the audio; the remaining frames become available.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Frames so far: `floor(samples / 640)`.
    pub fn frames_total(&self) -> usize {
        self.total / SAMPLES_PER_FRAME
    }

    /// Computes every frame whose audio is available and returns all frames ready now.
    pub fn pull(&mut self) -> Result<Vec<MotionFrame>, MotionError> {
        let mut todo = Vec::new();
        let mut i = self.next_frame;
        while self.frame_ready(i) {
            todo.push(i);
            i += 1;
        }
        for chunk in todo.chunks(self.batch) {
            self.compute(chunk)?;
        }
        if self.finished && self.awaiting_lips.front().is_some() {
            if let Some(lip) = self.smoother.finish()
                && let Some(mut f) = self.awaiting_lips.pop_front()
            {
                f.lip_coeffs = Some(lip);
                self.ready.push_back(f);
            }
            self.ready.extend(self.awaiting_lips.drain(..));
        }
        self.trim();
        Ok(self.ready.drain(..).collect())
    }

    fn frame_ready(&self, i: usize) -> bool {
        if self.finished {
            return i < self.frames_total();
        }
        if i >= self.frames_total()
            || i * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME / 2 + DSP_WINDOW / 2 > self.total
        {
            return false;
        }
        if self.model.is_some() {
            // The last mel row of the window must lie inside audio that the final cut to
            // whole frames will keep, so it matches the whole-clip computation.
            let whole = self.frames_total() * SAMPLES_PER_FRAME;
            let last_row = (window_start(i) + MEL_WINDOW as isize - 1).max(0) as usize;
            return last_row * HOP + N_FFT / 2 <= whole;
        }
        true
    }

    /// Raw sample at absolute index `n` (0 outside what is kept).
    fn x(&self, n: isize) -> f32 {
        if n < self.base as isize {
            return 0.0;
        }
        self.samples
            .get(n as usize - self.base)
            .copied()
            .unwrap_or(0.0)
    }

    fn compute(&mut self, frames: &[usize]) -> Result<(), MotionError> {
        let lips = match &self.model {
            Some(model) => {
                let per = MEL_BANDS * MEL_WINDOW;
                let mut windows = vec![0.0f32; frames.len() * per];
                for (w, &i) in windows.chunks_exact_mut(per).zip(frames) {
                    self.window_into(i, w);
                }
                Some(model.lip_coeffs(&windows, frames.len(), self.batch)?)
            }
            None => None,
        };
        for (k, &i) in frames.iter().enumerate() {
            let centre = (i * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME / 2) as isize;
            let window: Vec<f32> = (0..DSP_WINDOW as isize)
                .map(|j| self.x(centre - (DSP_WINDOW / 2) as isize + j))
                .collect();
            let mouth = self.lipsync.process_window(&window);
            let loudness = self.lipsync.last_features().loudness;
            let pose = self.pose.sample(i, loudness);
            let t = i as f32 / super::MOTION_FPS;
            let resolved = self.emotion.sample(t);
            let mut expression = resolved.map(|r| r.look).unwrap_or_default();
            expression.eye_open *= pose.blink;
            let frame = MotionFrame {
                mouth,
                lip_coeffs: None,
                head: pose.head,
                pose_coeffs: pose.coeffs,
                expression,
                exp_coeffs: resolved.map(|r| r.exp),
            };
            match &lips {
                Some(l) if self.smooth_lips => {
                    self.awaiting_lips.push_back(frame);
                    if let Some(smoothed) = self.smoother.push(l[k])
                        && let Some(mut f) = self.awaiting_lips.pop_front()
                    {
                        f.lip_coeffs = Some(smoothed);
                        self.ready.push_back(f);
                    }
                }
                Some(l) => self.ready.push_back(MotionFrame {
                    lip_coeffs: Some(l[k]),
                    ..frame
                }),
                None => self.ready.push_back(frame),
            }
            self.next_frame = i + 1;
        }
        Ok(())
    }

    /// The 80x16 mel window of frame `i` (band-major), rows computed from the buffer.
    fn window_into(&self, i: usize, out: &mut [f32]) {
        let whole = (self.frames_total() * SAMPLES_PER_FRAME) as isize;
        // Rows past the audio are clamped away only at the end of the stream.
        let rows = 1 + whole / HOP as isize;
        let start = window_start(i);
        let mut segment = vec![0.0f32; N_FFT];
        for k in 0..MEL_WINDOW {
            let r = (start + k as isize).clamp(0, rows - 1);
            for (j, s) in segment.iter_mut().enumerate() {
                let n = reflect_index(r * HOP as isize - (N_FFT / 2) as isize + j as isize, whole)
                    as isize;
                let prev = if n > 0 { self.x(n - 1) } else { 0.0 };
                *s = self.x(n) - PREEMPHASIS * prev;
            }
            let row = self.mel.row(&segment);
            for (band, v) in row.iter().enumerate() {
                out[band * MEL_WINDOW + k] = *v;
            }
        }
    }

    /// Drops samples no pending frame can need any more.
    fn trim(&mut self) {
        let keep_from = (self.next_frame * SAMPLES_PER_FRAME).saturating_sub(4 * N_FFT);
        if keep_from > self.base + 16_000 {
            let drop = keep_from - self.base;
            self.samples.drain(..drop.min(self.samples.len()));
            self.base += drop;
        }
    }
}

/// Whole-clip motion generation.
pub struct Audio2Motion {
    /// Emotion, pose and lip-sync settings.
    pub config: MotionConfig,
    /// Audio2Lip, when a checkpoint is loaded.
    pub model: Option<Arc<Audio2Lip>>,
}

impl Audio2Motion {
    /// A generator; `model` is optional (DSP mouth only without it).
    pub fn new(config: MotionConfig, model: Option<Arc<Audio2Lip>>) -> Self {
        Self { config, model }
    }

    /// Motion for a whole 16 kHz mono clip: `floor(len / 640)` frames.
    pub fn generate(&self, samples_16k: &[f32]) -> Result<Vec<MotionFrame>, MotionError> {
        let mut stream = MotionStream::new(self.config.clone(), self.model.clone())?;
        stream.push(samples_16k);
        stream.finish();
        stream.pull()
    }

    /// [`Audio2Motion::generate`] as a bakeable [`MotionTrack`].
    pub fn bake(&self, samples_16k: &[f32]) -> Result<MotionTrack, MotionError> {
        Ok(MotionTrack::new(self.generate(samples_16k)?))
    }
}
