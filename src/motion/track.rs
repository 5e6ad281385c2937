//! Baked motion tracks: a whole line's motion written to RON (for shipping pre-baked
//! lip-sync, like Rhubarb or uLipSync exports) and read back.

use super::{MOTION_FPS, MotionFrame};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Errors reading or writing a motion track.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// File system error.
    #[error("motion track {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid RON for a motion track.
    #[error("motion track {origin}:{}:{}: {}", .error.span.start.line, .error.span.start.col, .error.code)]
    Syntax {
        /// File name or description.
        origin: String,
        /// ron's error with its position.
        error: Box<ron::error::SpannedError>,
    },
    /// Serialisation failed.
    #[error("motion track {origin}: cannot write RON: {reason}")]
    Write {
        /// File name or description.
        origin: String,
        /// ron's message.
        reason: String,
    },
    /// Bad contents: wrong frame rate or non-finite numbers.
    #[error("motion track {origin}: {problem}")]
    Invalid {
        /// File name or description.
        origin: String,
        /// What is wrong.
        problem: String,
    },
}

/// A baked line: frames at `fps` (25).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MotionTrack {
    /// Frames per second (always [`MOTION_FPS`] for tracks this crate writes).
    pub fps: f32,
    /// One frame per 1/fps seconds from the line's start.
    pub frames: Vec<MotionFrame>,
}

impl MotionTrack {
    /// A 25 fps track.
    pub fn new(frames: Vec<MotionFrame>) -> Self {
        Self {
            fps: MOTION_FPS,
            frames,
        }
    }

    /// Duration in seconds.
    pub fn seconds(&self) -> f32 {
        self.frames.len() as f32 / self.fps
    }

    /// The frame at time `t` seconds (clamped to the track; `None` when empty).
    pub fn frame_at(&self, t: f32) -> Option<&MotionFrame> {
        let last = self.frames.len().checked_sub(1)?;
        let i = if t.is_finite() && t > 0.0 {
            (t * self.fps) as usize
        } else {
            0
        };
        self.frames.get(i.min(last))
    }

    /// Serialises to pretty RON.
    pub fn to_ron(&self) -> Result<String, TrackError> {
        let config = ron::ser::PrettyConfig::new()
            .depth_limit(3)
            .compact_arrays(true);
        ron::ser::to_string_pretty(self, config).map_err(|e| TrackError::Write {
            origin: "(in memory)".into(),
            reason: e.to_string(),
        })
    }

    /// Parses and validates RON; `origin` names the text in errors.
    pub fn from_ron(text: &str, origin: &str) -> Result<Self, TrackError> {
        let track: MotionTrack = crate::motion::ron_options()
            .from_str(text)
            .map_err(|error| TrackError::Syntax {
                origin: origin.to_string(),
                error: Box::new(error),
            })?;
        track.validate(origin)?;
        Ok(track)
    }

    /// Checks the frame rate and that every number is finite, naming the first bad frame.
    pub fn validate(&self, origin: &str) -> Result<(), TrackError> {
        let fail = |problem: String| TrackError::Invalid {
            origin: origin.to_string(),
            problem,
        };
        if !(self.fps.is_finite() && self.fps > 0.0) {
            return Err(fail(format!(
                "fps is {}, expected a positive number",
                self.fps
            )));
        }
        for (i, f) in self.frames.iter().enumerate() {
            if !frame_values(f).all(f32::is_finite) {
                return Err(fail(format!("frame {i} holds a non-finite number")));
            }
        }
        Ok(())
    }

    /// Writes the track to a RON file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), TrackError> {
        let path = path.as_ref();
        let text = self.to_ron().map_err(|e| match e {
            TrackError::Write { reason, .. } => TrackError::Write {
                origin: path.display().to_string(),
                reason,
            },
            other => other,
        })?;
        std::fs::write(path, text).map_err(|source| TrackError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a track from a RON file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TrackError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TrackError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_ron(&text, &path.display().to_string())
    }
}

fn frame_values(f: &MotionFrame) -> impl Iterator<Item = f32> + '_ {
    let m = &f.mouth;
    let e = &f.expression;
    [
        m.jaw_open,
        m.lip_width,
        m.lip_round,
        m.lips_pressed,
        f.head.yaw,
        f.head.pitch,
        f.head.roll,
        e.smile,
        e.frown,
        e.brow_raise,
        e.brow_furrow,
        e.eye_open,
        e.squint,
    ]
    .into_iter()
    .chain(f.lip_coeffs.iter().flatten().copied())
    .chain(f.pose_coeffs.iter().flatten().copied())
    .chain(f.exp_coeffs.iter().flatten().copied())
}
