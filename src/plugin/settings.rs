//! The plugin's settings.

use std::path::PathBuf;

use bevy::prelude::*;

use super::audio::AudioOutput;
use crate::model::Precision;

/// Which renderer the plugin uses.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, Reflect,
)]
pub enum BackendChoice {
    /// Neural when the checkpoints are in [`EdTalkSettings::ckpt_dir`], else procedural.
    #[default]
    Auto,
    /// Always the neural renderer; if the checkpoints fail to load, the plugin reports it
    /// and falls back to procedural so the game keeps running.
    Neural,
    /// Always the procedural face rig.
    Procedural,
}

/// Where inference runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Reflect)]
pub enum InferenceDevice {
    /// The CPU (candle's CPU backend, the crate's own AVX-512/AVX2 kernels).
    #[default]
    Cpu,
    /// CUDA device N (cargo feature `cuda`).
    Cuda(usize),
    /// Metal (cargo feature `metal`).
    Metal,
}

/// Plugin settings; insert before adding the plugin, or pass through
/// [`super::EdTalkPlugin`].
#[derive(Resource, Clone, Debug, Reflect)]
#[reflect(Resource)]
pub struct EdTalkSettings {
    /// Which renderer to run.
    pub backend: BackendChoice,
    /// Where the neural renderer runs.
    pub device: InferenceDevice,
    /// Directory holding EDTalk.pt / Audio2Lip.pt (see ckpts/README.md).
    pub ckpt_dir: PathBuf,
    /// Threads of the inference worker's own pool.
    pub inference_threads: usize,
    /// Face frames per second (EDTalk's rate is 25).
    pub frame_rate: f32,
    /// Side of the generated face textures in pixels (the neural model fixes it at 256).
    pub face_resolution: u32,
    /// How far ahead of the playback position frames are requested, in seconds.
    pub prebuffer: f32,
    /// Audio output for voice lines.
    pub audio: AudioOutput,
    /// Small head sway and blinks while faces are on screen (off: faces hold still
    /// between lines). Per-face settings: [`super::IdleMotion`].
    pub idle_motion: bool,
    /// With the neural renderer, keep the memory that each frame's activations free in
    /// the process for the next frame instead of returning it to the OS
    /// ([`crate::heap::retain_freed_memory`]; Linux/glibc only, process-wide).
    pub retain_freed_memory: bool,
    /// A line's audio starts once its first frames are rendered ([`super::SpeechReady`]
    /// says so): its first frame, on a renderer that keeps up; when the renderer is slower
    /// than real time (as the worker measures it), enough of the line that the rest fits
    /// behind playback. Off: lines start at once and a slow renderer drops frames.
    pub render_ahead: bool,
    /// The longest a line may wait for render-ahead, in seconds. A line that would wait
    /// longer starts at once on the procedural renderer (the neural tier keeps it beside
    /// itself for this; without it, on the slow renderer, and frames drop), and an
    /// [`super::EdTalkError`] of kind `Worker` says so; bake such lines into face clips to
    /// play them with neural faces.
    pub max_render_ahead_wait: f32,
    /// The arithmetic of the neural decoder on the CPU: [`Precision::F32`] (the default
    /// and the reference) or [`Precision::Bf16`]: about 3x faster frames where the CPU has
    /// Intel AMX, a little faster with AVX-512 BF16 alone (Zen 4), f32 elsewhere; about 3
    /// significant digits per product (the README gives the measured error).
    pub precision: Precision,
}

impl Default for EdTalkSettings {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            device: InferenceDevice::Cpu,
            ckpt_dir: PathBuf::from("ckpts"),
            inference_threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .saturating_sub(1)
                .max(1),
            frame_rate: crate::motion::MOTION_FPS,
            face_resolution: 256,
            prebuffer: 0.12,
            audio: AudioOutput::Auto,
            idle_motion: true,
            retain_freed_memory: true,
            render_ahead: true,
            max_render_ahead_wait: 3.0,
            precision: Precision::F32,
        }
    }
}

impl EdTalkSettings {
    /// The frame rate the plugin runs at: the setting when it is a usable number
    /// (1..=120), else EDTalk's 25 fps, so no division or key computation sees 0 or NaN.
    pub(crate) fn fps(&self) -> f32 {
        if self.frame_rate.is_finite() && (1.0..=120.0).contains(&self.frame_rate) {
            self.frame_rate
        } else {
            crate::motion::MOTION_FPS
        }
    }

    /// The render-ahead wait bound in seconds (a non-finite or negative setting is 0).
    pub(crate) fn max_wait_secs(&self) -> f64 {
        if self.max_render_ahead_wait.is_finite() {
            self.max_render_ahead_wait.max(0.0) as f64
        } else {
            0.0
        }
    }

    /// The prebuffer in seconds, 0..=2 (a non-finite or negative setting is 0).
    pub(crate) fn prebuffer_secs(&self) -> f32 {
        if self.prebuffer.is_finite() {
            self.prebuffer.clamp(0.0, 2.0)
        } else {
            0.0
        }
    }
}
