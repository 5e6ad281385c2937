//! Glue between the plugin and the engine: which renderer to build, a line's motion track,
//! and the motion of one face frame.

use std::sync::Arc;

use super::assets::VoiceLine;
use super::components::EmotionState;
use super::settings::{BackendChoice, EdTalkSettings, InferenceDevice};
use crate::audio::SAMPLES_PER_FRAME;
use crate::model::audio2lip::Audio2Lip;
use crate::model::checkpoint::load_state_dict;
use crate::model::ckpt_dir::CheckpointDir;
use crate::motion::{
    Audio2Motion, ExpressionControls, HeadPose, IdleSettings, MOTION_FPS, MotionConfig,
    MotionFrame, MotionTrack, MouthControls, PosePlayer, PoseSource,
};
use crate::render::neural::NeuralRenderer;
use crate::render::procedural::ProceduralRenderer;
use crate::render::{FaceRenderer, IdentityId};
use crate::worker::RendererFactory;
use candle_core::{DType, Device};

/// A decoded line with its motion track, ready to play.
pub(crate) struct PreparedLine {
    pub samples: Arc<[f32]>,
    pub sample_rate: u32,
    /// The file's own samples: what is played when present.
    pub source: Option<Arc<crate::audio::SourceAudio>>,
    pub motion: Vec<MotionFrame>,
    /// The line brings its own head pose (and blinks), which replace the idle motion.
    pub own_pose: bool,
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

/// Where the neural renderer's files are, when the settings ask for it and they are there.
pub(crate) struct NeuralFiles {
    generator: std::path::PathBuf,
    audio2lip: std::path::PathBuf,
    device: Device,
    precision: crate::model::Precision,
}

/// Whether the settings want the neural renderer and its checkpoints are present: a
/// directory scan only, cheap enough for the main thread. Problems go to `failures`.
pub(crate) fn neural_files(
    settings: &EdTalkSettings,
    failures: &mut Vec<String>,
) -> Option<NeuralFiles> {
    let ckpts = CheckpointDir::scan(&settings.ckpt_dir);
    let want = match settings.backend {
        BackendChoice::Procedural => false,
        BackendChoice::Auto => ckpts.neural_ready(),
        BackendChoice::Neural => {
            if !ckpts.neural_ready() {
                failures.push(format!(
                    "neural renderer requested, but {} lacks EDTalk.pt (or EDTalk_lip_pose.pt) \
                     and Audio2Lip.pt; staying on the procedural renderer",
                    settings.ckpt_dir.display()
                ));
            }
            ckpts.neural_ready()
        }
    };
    if !want {
        return None;
    }
    let device = match device(settings) {
        Ok(d) => d,
        Err(e) => {
            failures.push(e);
            return None;
        }
    };
    Some(NeuralFiles {
        generator: ckpts.generator()?.to_path_buf(),
        audio2lip: ckpts.audio2lip.clone()?,
        device,
        precision: settings.precision,
    })
}

/// Loads Audio2Lip and returns the neural renderer's factory: seconds of work for the
/// full-size checkpoints, so the plugin calls it off the main thread.
pub(crate) fn load_neural(files: NeuralFiles) -> Result<(RendererFactory, Arc<Audio2Lip>), String> {
    let a2l = load_state_dict(&files.audio2lip, Some("audio2lip"))
        .map_err(|e| e.to_string())
        .and_then(|t| {
            Audio2Lip::from_tensors(t, &files.device)
                .map_err(|e| format!("{}: {e}", files.audio2lip.display()))
        })
        .map_err(|e| format!("Audio2Lip did not load: {e}"))?;
    let (path, dev, precision) = (files.generator, files.device, files.precision);
    let factory: RendererFactory = Arc::new(move || {
        let mut renderer = NeuralRenderer::load(&path, &dev, DType::F32)?;
        renderer.set_precision(precision);
        Ok(Box::new(renderer) as Box<dyn FaceRenderer>)
    });
    Ok((factory, Arc::new(a2l)))
}

/// The procedural renderer's factory: always available, built in milliseconds.
pub(crate) fn procedural_factory(settings: &EdTalkSettings) -> RendererFactory {
    let size = settings.face_resolution.clamp(32, 1024);
    Arc::new(move || Ok(Box::new(ProceduralRenderer::with_size(size)) as Box<dyn FaceRenderer>))
}

/// Computes the motion track of a decoded line: from a baked track when one is given,
/// else from the audio (Audio2Lip coefficients when the model is loaded, signal-processing
/// mouth controls always). `pose` is the line's own head pose, if any.
pub(crate) fn prepare_line(
    line: &VoiceLine,
    model: Option<Arc<Audio2Lip>>,
    pose: Option<PoseSource>,
    track: Option<&MotionTrack>,
) -> Result<PreparedLine, String> {
    let own_pose = pose.is_some();
    let pose = pose.unwrap_or(PoseSource::Fixed);
    let motion = match track {
        Some(track) => from_track(track, line.samples.len() / SAMPLES_PER_FRAME, pose)?,
        None => {
            let config = MotionConfig {
                pose,
                ..Default::default()
            };
            Audio2Motion::new(config, model)
                .generate(&line.samples)
                .map_err(|e| e.to_string())?
        }
    };
    if motion.is_empty() {
        return Err(format!(
            "line is {:.3} s long, shorter than one face frame",
            line.duration()
        ));
    }
    Ok(PreparedLine {
        samples: line.samples.clone(),
        sample_rate: line.sample_rate,
        source: line.source.clone(),
        motion,
        own_pose,
    })
}

/// A line whose faces come from a baked clip: no analysis, only its length in frames
/// (the frames' motion is unused: the clip's pictures are shown).
pub(crate) fn prepare_clip_line(line: &VoiceLine) -> Result<PreparedLine, String> {
    let frames = line.samples.len() / SAMPLES_PER_FRAME;
    if frames == 0 {
        return Err(format!(
            "line is {:.3} s long, shorter than one face frame",
            line.duration()
        ));
    }
    Ok(PreparedLine {
        samples: line.samples.clone(),
        sample_rate: line.sample_rate,
        source: line.source.clone(),
        motion: vec![MotionFrame::default(); frames],
        own_pose: false,
    })
}

/// `frames` motion frames with the mouth from a baked track (sampled at 25 fps whatever
/// its rate; past its end the mouth is at rest) and the head from `pose`.
fn from_track(
    track: &MotionTrack,
    frames: usize,
    pose: PoseSource,
) -> Result<Vec<MotionFrame>, String> {
    if let PoseSource::Track(t) = &pose {
        t.validate("pose track").map_err(|e| e.to_string())?;
    }
    let mut player = PosePlayer::new(pose);
    let seconds = track.seconds();
    Ok((0..frames)
        .map(|i| {
            let t = i as f32 / MOTION_FPS;
            let baked = if t < seconds { track.frame_at(t) } else { None };
            let (mouth, lip_coeffs) = baked.map_or((MouthControls::default(), None), |f| {
                (f.mouth, f.lip_coeffs)
            });
            // The jaw stands in for speech loudness (idle nods follow emphasis).
            let p = player.sample(i, mouth.jaw_open);
            MotionFrame {
                mouth,
                lip_coeffs,
                head: p.head,
                pose_coeffs: p.coeffs,
                expression: ExpressionControls {
                    eye_open: p.blink,
                    ..Default::default()
                },
                exp_coeffs: None,
            }
        })
        .collect())
}

/// A playing line as [`motion_at`] sees it.
#[derive(Clone, Copy)]
pub(crate) struct LineView<'a> {
    pub frames: &'a [MotionFrame],
    /// Frame key of the line's first frame.
    pub base_key: i64,
    pub own_pose: bool,
}

/// The motion of face frame `key`: the line's mouth (if a line covers it), the emotion
/// state's expression at that time, and the head and blinks: the line's own pose while a
/// line with one plays, else the idle motion (`None`: a still head).
pub(crate) fn motion_at(
    line: Option<LineView<'_>>,
    key: i64,
    fps: f32,
    id: IdentityId,
    emotion: &EmotionState,
    idle_motion: Option<&IdleSettings>,
) -> MotionFrame {
    let t = key as f64 / fps as f64;
    let current = line.and_then(|l| {
        let i = usize::try_from(key - l.base_key).ok()?;
        l.frames.get(i).map(|f| (f, l.own_pose))
    });
    let mut m = current.map_or_else(MotionFrame::default, |(f, _)| f.clone());
    // The line's frames carry its pose's blinks in eye openness (1 without a pose).
    let line_blink = m.expression.eye_open;
    let (exp, look) = emotion.sample(t);
    m.exp_coeffs = exp;
    m.expression = look;
    match (current, idle_motion) {
        (Some((_, true)), _) => m.expression.eye_open *= line_blink,
        (_, Some(settings)) => {
            let (head, blink) = idle(id, t, settings);
            m.head = head;
            m.expression.eye_open *= 1.0 - blink;
        }
        _ => {}
    }
    m
}

/// Small seeded head sway and blinks, so idle faces look alive. A pure function of time
/// (frames may be requested again, in any order); the plugin's default
/// ([`super::IdleMotion::default`]) is a 0.035 / 0.02 / 0.015 rad sway and a blink every
/// 3.2..4.8 s.
fn idle(id: IdentityId, t: f64, settings: &IdleSettings) -> (HeadPose, f32) {
    let mixed = id ^ settings.seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let seed = (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64;
    let sway = if settings.sway.is_finite() {
        settings.sway as f64
    } else {
        0.0
    };
    let w = std::f64::consts::TAU;
    let head = HeadPose {
        yaw: (0.875 * sway * (w * (0.11 * t + seed)).sin()) as f32,
        pitch: (0.5 * sway * (w * (0.07 * t + 2.0 * seed)).sin()) as f32,
        roll: (0.375 * sway * (w * (0.05 * t + 3.0 * seed)).sin()) as f32,
    };
    // A blink (0.16 s) every 0.8..1.2 intervals, phase from the seed.
    let interval = match settings.blink_interval {
        b if b.is_finite() && b > 0.2 => b as f64,
        _ => 4.0,
    };
    let period = interval * (0.8 + 0.4 * seed);
    let phase = (t + seed * period).rem_euclid(period);
    let blink = if phase < 0.16 {
        (std::f64::consts::PI * phase / 0.16).sin() as f32
    } else {
        0.0
    };
    (head, blink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motion::{PoseKey, PoseTrack};
    use crate::plugin::IdleMotion;

    fn line_of(seconds: f32) -> VoiceLine {
        let n = (16_000.0 * seconds) as usize;
        let samples: Vec<f32> = (0..n)
            .map(|i| 0.4 * (std::f32::consts::TAU * 150.0 * i as f32 / 16_000.0).sin())
            .collect();
        VoiceLine::from_mono(samples, 16_000)
    }

    fn turned(yaw: f32) -> PoseSource {
        PoseSource::Track(PoseTrack {
            frames: vec![PoseKey {
                head: HeadPose {
                    yaw,
                    ..Default::default()
                },
                coeffs: Some([0.5; crate::motion::POSE_DIM]),
            }],
        })
    }

    fn view(line: &PreparedLine) -> LineView<'_> {
        LineView {
            frames: &line.motion,
            base_key: 100,
            own_pose: line.own_pose,
        }
    }

    #[test]
    fn a_lines_pose_reaches_the_frame_and_replaces_idle() {
        let idle = IdleMotion::default().0;
        let emotion = EmotionState::default();
        let posed = prepare_line(&line_of(0.4), None, Some(turned(0.2)), None).unwrap();
        assert!(posed.own_pose);
        let m = motion_at(Some(view(&posed)), 103, 25.0, 9, &emotion, Some(&idle));
        assert_eq!(m.head.yaw, 0.2);
        assert_eq!(m.pose_coeffs, Some([0.5; crate::motion::POSE_DIM]));
        // Past the line's frames the idle motion is back.
        let after = motion_at(Some(view(&posed)), 100 + 10, 25.0, 9, &emotion, Some(&idle));
        assert_eq!(after.head, idle_head(110));

        // Without a pose the idle sway goes on while the line plays (as before).
        let plain = prepare_line(&line_of(0.4), None, None, None).unwrap();
        assert!(!plain.own_pose);
        let m = motion_at(Some(view(&plain)), 103, 25.0, 9, &emotion, Some(&idle));
        assert_eq!(m.head, idle_head(103));
        assert_eq!(m.pose_coeffs, None);
        assert_eq!(m.mouth, plain.motion[3].mouth);
        // Idle off: a still head.
        let m = motion_at(Some(view(&plain)), 103, 25.0, 9, &emotion, None);
        assert_eq!(m.head, HeadPose::default());
    }

    fn idle_head(key: i64) -> HeadPose {
        idle(9, key as f64 / 25.0, &IdleMotion::default().0).0
    }

    #[test]
    fn a_track_gives_the_mouth_and_rests_it_past_its_end() {
        let open = MotionFrame {
            mouth: MouthControls {
                jaw_open: 0.9,
                ..Default::default()
            },
            lip_coeffs: Some([0.25; crate::motion::LIP_DIM]),
            ..Default::default()
        };
        let track = MotionTrack::new(vec![open.clone(); 4]);
        let line = prepare_line(&line_of(0.4), None, None, Some(&track)).unwrap();
        assert_eq!(line.motion.len(), 10);
        for (i, f) in line.motion.iter().enumerate() {
            if i < 4 {
                assert_eq!(
                    (f.mouth, f.lip_coeffs),
                    (open.mouth, open.lip_coeffs),
                    "{i}"
                );
            } else {
                assert_eq!(
                    (f.mouth, f.lip_coeffs),
                    (MouthControls::default(), None),
                    "{i}"
                );
            }
        }
        // An invalid pose track is an error, not a panic.
        let empty = PoseSource::Track(PoseTrack::default());
        assert!(prepare_line(&line_of(0.4), None, Some(empty), Some(&track)).is_err());
    }

    #[test]
    fn idle_settings_scale_the_sway_and_survive_bad_numbers() {
        let calm = IdleSettings {
            sway: 0.0,
            ..Default::default()
        };
        let bad = IdleSettings {
            sway: f32::NAN,
            blink_interval: f32::INFINITY,
            ..Default::default()
        };
        for t in [0.0, 1.3, 7.9] {
            assert_eq!(idle(5, t, &calm).0, HeadPose::default());
            let (head, blink) = idle(5, t, &bad);
            assert!(head.yaw.is_finite() && blink.is_finite());
        }
        let wide = IdleSettings {
            sway: 0.3,
            ..Default::default()
        };
        let peak = (0..250)
            .map(|k| idle(5, k as f64 * 0.04, &wide).0.yaw.abs())
            .fold(0.0, f32::max);
        assert!(peak > 0.15 && peak <= 0.3, "{peak}");
    }
}
