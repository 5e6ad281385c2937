//! Glue between the plugin and the engine: which renderer to build, a line's motion track,
//! and the motion of one face frame.

use std::sync::Arc;

use super::assets::VoiceLine;
use super::components::EmotionState;
use super::{BackendChoice, EdTalkSettings, InferenceDevice};
use crate::model::audio2lip::Audio2Lip;
use crate::model::checkpoint::load_state_dict;
use crate::model::ckpt_dir::CheckpointDir;
use crate::motion::{Audio2Motion, HeadPose, MotionConfig, MotionFrame};
use crate::render::neural::NeuralRenderer;
use crate::render::procedural::ProceduralRenderer;
use crate::render::{FaceRenderer, IdentityId};
use crate::worker::RendererFactory;
use candle_core::{DType, Device};

/// A decoded line with its motion track, ready to play.
pub(crate) struct PreparedLine {
    pub samples: Arc<[f32]>,
    pub sample_rate: u32,
    pub motion: Vec<MotionFrame>,
}

/// The candle device for the settings (errors name what is missing, e.g. the `cuda`
/// cargo feature).
pub(crate) fn device(settings: &EdTalkSettings) -> Result<Device, String> {
    match settings.device {
        InferenceDevice::Cpu => Ok(Device::Cpu),
        InferenceDevice::Cuda(n) => {
            Device::new_cuda(n).map_err(|e| format!("cuda:{n} unavailable: {e}"))
        }
        InferenceDevice::Metal => {
            Device::new_metal(0).map_err(|e| format!("metal unavailable: {e}"))
        }
    }
}

/// Renderers to try, best first (the procedural one always last), and Audio2Lip when the
/// neural tier is chosen. Problems go to `failures` (reported, never fatal).
pub(crate) fn renderer_factories(
    settings: &EdTalkSettings,
    failures: &mut Vec<String>,
) -> (Vec<RendererFactory>, Option<Arc<Audio2Lip>>) {
    let mut out: Vec<RendererFactory> = Vec::new();
    let mut audio2lip = None;
    let ckpts = CheckpointDir::scan(&settings.ckpt_dir);
    let want_neural = match settings.backend {
        BackendChoice::Procedural => false,
        BackendChoice::Auto => ckpts.neural_ready(),
        BackendChoice::Neural => {
            if !ckpts.neural_ready() {
                failures.push(format!(
                    "neural renderer requested, but {} lacks EDTalk.pt (or EDTalk_lip_pose.pt) \
                     and Audio2Lip.pt",
                    settings.ckpt_dir.display()
                ));
            }
            ckpts.neural_ready()
        }
    };
    if want_neural {
        match (device(settings), ckpts.audio2lip.clone()) {
            (Ok(dev), Some(a2l_path)) => {
                let loaded = load_state_dict(&a2l_path, Some("audio2lip"))
                    .map_err(|e| e.to_string())
                    .and_then(|t| {
                        Audio2Lip::from_tensors(t, &dev)
                            .map_err(|e| format!("{}: {e}", a2l_path.display()))
                    });
                match loaded {
                    Ok(model) => {
                        audio2lip = Some(Arc::new(model));
                        let path = ckpts.generator().expect("neural_ready").to_path_buf();
                        out.push(Arc::new(move || {
                            NeuralRenderer::load(&path, &dev, DType::F32)
                                .map(|r| Box::new(r) as Box<dyn FaceRenderer>)
                        }));
                    }
                    Err(e) => failures.push(format!("Audio2Lip did not load: {e}")),
                }
            }
            (Err(e), _) => failures.push(e),
            (_, None) => {}
        }
    }
    let size = settings.face_resolution.clamp(32, 1024);
    out.push(Arc::new(move || {
        Ok(Box::new(ProceduralRenderer::with_size(size)) as Box<dyn FaceRenderer>)
    }));
    (out, audio2lip)
}

/// Computes the mouth track of a decoded line: Audio2Lip coefficients when the model is
/// loaded, signal-processing mouth controls always.
pub(crate) fn prepare_line(
    line: &VoiceLine,
    model: Option<Arc<Audio2Lip>>,
) -> Result<PreparedLine, String> {
    let motion = Audio2Motion::new(MotionConfig::default(), model)
        .generate(&line.samples)
        .map_err(|e| e.to_string())?;
    if motion.is_empty() {
        return Err(format!(
            "line is {:.3} s long, shorter than one face frame",
            line.duration()
        ));
    }
    Ok(PreparedLine {
        samples: line.samples.clone(),
        sample_rate: line.sample_rate,
        motion,
    })
}

/// The motion of face frame `key`: the line's mouth (if a line covers it), the emotion
/// state's expression at that time, idle head motion and blinks.
pub(crate) fn motion_at(
    line: Option<(&[MotionFrame], i64)>,
    key: i64,
    fps: f32,
    id: IdentityId,
    emotion: &EmotionState,
    idle_motion: bool,
) -> MotionFrame {
    let t = key as f64 / fps as f64;
    let mut m = match line {
        Some((track, base)) if key >= base && ((key - base) as usize) < track.len() => {
            track[(key - base) as usize].clone()
        }
        _ => MotionFrame::default(),
    };
    let (exp, look) = emotion.sample(t);
    m.exp_coeffs = exp;
    m.expression = look;
    if idle_motion {
        let (head, blink) = idle(id, t);
        m.head = head;
        m.expression.eye_open *= 1.0 - blink;
    }
    m
}

/// Small seeded head sway and blinks, so idle faces look alive.
fn idle(id: IdentityId, t: f64) -> (HeadPose, f32) {
    let seed = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64;
    let w = std::f64::consts::TAU;
    let head = HeadPose {
        yaw: (0.035 * (w * (0.11 * t + seed)).sin()) as f32,
        pitch: (0.02 * (w * (0.07 * t + 2.0 * seed)).sin()) as f32,
        roll: (0.015 * (w * (0.05 * t + 3.0 * seed)).sin()) as f32,
    };
    // A blink (0.16 s) every 3.2..4.8 s, phase from the seed.
    let period = 3.2 + 1.6 * seed;
    let phase = (t + seed * period).rem_euclid(period);
    let blink = if phase < 0.16 {
        (std::f64::consts::PI * phase / 0.16).sin() as f32
    } else {
        0.0
    };
    (head, blink)
}
