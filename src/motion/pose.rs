//! Head-pose sources: fixed (the portrait's own pose), idle (seeded procedural sway with
//! blinks and small nods that follow speech energy), and recorded tracks played ping-pong
//! when shorter than the speech, as the official demo does with pose videos
//! (frames 0..n-1, then n-1..0, and again).

use super::{HeadPose, POSE_DIM};
use serde::{Deserialize, Serialize};

/// Errors of pose tracks.
#[derive(Debug, thiserror::Error)]
pub enum PoseError {
    /// The text is not valid RON for a pose track.
    #[error("{origin}:{}:{}: {}", .error.span.start.line, .error.span.start.col, .error.code)]
    Syntax {
        /// File name or description.
        origin: String,
        /// ron's error with its position.
        error: Box<ron::error::SpannedError>,
    },
    /// A frame holds a non-finite number.
    #[error("{origin}: pose track frame {frame}: {field} is not a finite number")]
    NonFinite {
        /// File name or description.
        origin: String,
        /// Index of the frame.
        frame: usize,
        /// Which value.
        field: String,
    },
    /// The track has no frames.
    #[error("{origin}: pose track has no frames")]
    Empty {
        /// File name or description.
        origin: String,
    },
}

/// One recorded pose frame: a semantic head pose and/or EDTalk pose coefficients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoseKey {
    /// Semantic head rotation (procedural renderer).
    pub head: HeadPose,
    /// EDTalk pose coefficients (neural renderer).
    pub coeffs: Option<[f32; POSE_DIM]>,
}

/// A recorded pose track at 25 fps, e.g. `(frames: [(head: (yaw: 0.1)), (coeffs: (0, 0, 0, 0, 0, 0))])`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PoseTrack {
    /// Frames in order.
    pub frames: Vec<PoseKey>,
}

impl PoseTrack {
    /// Parses and validates a RON track; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, PoseError> {
        let track: PoseTrack = crate::motion::ron_options()
            .from_str(text)
            .map_err(|error| PoseError::Syntax {
                origin: origin.to_string(),
                error: Box::new(error),
            })?;
        track.validate(origin)?;
        Ok(track)
    }

    /// Checks for an empty track and non-finite values, naming the frame.
    pub fn validate(&self, origin: &str) -> Result<(), PoseError> {
        if self.frames.is_empty() {
            return Err(PoseError::Empty {
                origin: origin.to_string(),
            });
        }
        for (frame, key) in self.frames.iter().enumerate() {
            let fail = |field: String| PoseError::NonFinite {
                origin: origin.to_string(),
                frame,
                field,
            };
            for (name, v) in [
                ("head.yaw", key.head.yaw),
                ("head.pitch", key.head.pitch),
                ("head.roll", key.head.roll),
            ] {
                if !v.is_finite() {
                    return Err(fail(name.to_string()));
                }
            }
            if let Some(c) = key.coeffs
                && let Some(i) = c.iter().position(|v| !v.is_finite())
            {
                return Err(fail(format!("coeffs[{i}]")));
            }
        }
        Ok(())
    }

    /// The frame shown at motion frame `i`: ping-pong over the track.
    pub fn ping_pong(&self, i: usize) -> PoseKey {
        let n = self.frames.len();
        if n == 0 {
            return PoseKey::default();
        }
        let j = i % (2 * n);
        self.frames[if j < n { j } else { 2 * n - 1 - j }]
    }
}

/// Settings of the idle motion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdleSettings {
    /// Seed: same seed and audio, same motion.
    pub seed: u64,
    /// Peak sway in radians.
    pub sway: f32,
    /// Extra nod (radians of pitch) at full speech emphasis.
    pub nod: f32,
    /// Mean seconds between blinks.
    pub blink_interval: f32,
}

impl Default for IdleSettings {
    fn default() -> Self {
        Self {
            seed: 1,
            sway: 0.04,
            nod: 0.06,
            blink_interval: 3.5,
        }
    }
}

/// Where a character's head pose comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PoseSource {
    /// The portrait's own pose: neutral head, no pose coefficients.
    Fixed,
    /// Procedural idle motion.
    Idle(IdleSettings),
    /// A recorded track.
    Track(PoseTrack),
}

/// Pose output for one frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoseSample {
    /// Head rotation.
    pub head: HeadPose,
    /// EDTalk pose coefficients, when the source has them.
    pub coeffs: Option<[f32; POSE_DIM]>,
    /// Multiplier for eye openness (blinks), 1 = open.
    pub blink: f32,
}

/// Frame-by-frame player of a [`PoseSource`] (frames must come in order).
#[derive(Clone, Debug)]
pub struct PosePlayer {
    source: PoseSource,
    phases: [f32; 6],
    rates: [f32; 6],
    rng: u64,
    next_blink: usize,
    energy_slow: f32,
    nod: f32,
}

const FPS: f32 = super::MOTION_FPS;

impl PosePlayer {
    /// A player starting at frame 0.
    pub fn new(source: PoseSource) -> Self {
        let seed = match &source {
            PoseSource::Idle(s) => s.seed,
            _ => 0,
        };
        let mut rng = seed ^ 0x9E37_79B9_7F4A_7C15;
        let mut uniform = || next_uniform(&mut rng);
        // Two incommensurate slow sines per axis.
        let phases = std::array::from_fn(|_| uniform() * std::f32::consts::TAU);
        let rates = std::array::from_fn(|k| {
            if k % 2 == 0 {
                0.11 + 0.1 * uniform()
            } else {
                0.29 + 0.15 * uniform()
            }
        });
        let mut player = Self {
            source,
            phases,
            rates,
            rng,
            next_blink: 0,
            energy_slow: 0.0,
            nod: 0.0,
        };
        player.next_blink = player.blink_gap();
        player
    }

    fn blink_gap(&mut self) -> usize {
        let mean = match &self.source {
            PoseSource::Idle(s) if s.blink_interval.is_finite() && s.blink_interval > 0.2 => {
                s.blink_interval
            }
            _ => 3.5,
        };
        // Between half and one and a half times the mean.
        ((mean * (0.5 + next_uniform(&mut self.rng))) * FPS).max(4.0) as usize
    }

    /// The pose of frame `i`, given that frame's speech loudness (0..1).
    pub fn sample(&mut self, i: usize, loudness: f32) -> PoseSample {
        match &self.source {
            PoseSource::Fixed => PoseSample {
                head: HeadPose::default(),
                coeffs: None,
                blink: 1.0,
            },
            PoseSource::Track(track) => {
                let key = track.ping_pong(i);
                PoseSample {
                    head: key.head,
                    coeffs: key.coeffs,
                    blink: 1.0,
                }
            }
            PoseSource::Idle(settings) => {
                let (sway, nod_amount) = (settings.sway, settings.nod);
                let t = i as f32 / FPS;
                let wave =
                    |k: usize| (std::f32::consts::TAU * self.rates[k] * t + self.phases[k]).sin();
                let loud = if loudness.is_finite() {
                    loudness.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                // Nods follow emphasis: loudness rising above its slow average dips the chin.
                self.energy_slow += 0.08 * (loud - self.energy_slow);
                let emphasis = (loud - self.energy_slow).max(0.0);
                self.nod += 0.3 * (emphasis - self.nod);
                let head = HeadPose {
                    yaw: sway * (0.7 * wave(0) + 0.3 * wave(1)),
                    pitch: sway * 0.6 * (0.7 * wave(2) + 0.3 * wave(3))
                        + nod_amount * self.nod * 2.0,
                    roll: sway * 0.4 * (0.7 * wave(4) + 0.3 * wave(5)),
                };
                // Blinks: a 5-frame close/open profile.
                const PROFILE: [f32; 5] = [0.6, 0.1, 0.05, 0.35, 0.8];
                let blink = if i >= self.next_blink {
                    let k = i - self.next_blink;
                    if k + 1 >= PROFILE.len() {
                        self.next_blink = i + 1 + self.blink_gap();
                    }
                    PROFILE[k.min(PROFILE.len() - 1)]
                } else {
                    1.0
                };
                PoseSample {
                    head,
                    coeffs: None,
                    blink,
                }
            }
        }
    }
}

fn next_uniform(state: &mut u64) -> f32 {
    // xorshift64*: small, seeded, reproducible.
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    ((state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32) / (1u64 << 24) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_pong_matches_the_demo() {
        let track = PoseTrack {
            frames: (0..3)
                .map(|k| PoseKey {
                    head: HeadPose {
                        yaw: k as f32,
                        ..Default::default()
                    },
                    coeffs: None,
                })
                .collect(),
        };
        let yaws: Vec<f32> = (0..8).map(|i| track.ping_pong(i).head.yaw).collect();
        assert_eq!(yaws, vec![0.0, 1.0, 2.0, 2.0, 1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn nan_in_a_track_names_the_frame() {
        let text = "(frames: [(head: (yaw: 0.1)), (coeffs: (0, 0, NaN, 0, 0, 0))])";
        let msg = PoseTrack::parse(text, "walk.ron").unwrap_err().to_string();
        assert!(
            msg.contains("frame 1") && msg.contains("coeffs[2]"),
            "{msg}"
        );
        assert!(PoseTrack::parse("(frames: [])", "e.ron").is_err());
    }

    #[test]
    fn idle_is_seeded_smooth_and_blinks() {
        let run = |seed| {
            let mut p = PosePlayer::new(PoseSource::Idle(IdleSettings {
                seed,
                ..Default::default()
            }));
            (0..500).map(|i| p.sample(i, 0.0)).collect::<Vec<_>>()
        };
        let (a, b, c) = (run(7), run(7), run(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let max_step = a
            .windows(2)
            .map(|w| (w[1].head.yaw - w[0].head.yaw).abs())
            .fold(0.0, f32::max);
        assert!(max_step < 0.01, "yaw jumps by {max_step}");
        assert!(a.iter().any(|s| s.blink < 0.2), "no blink in 20 s");
        assert!(a.iter().filter(|s| s.blink < 1.0).count() < 100);
    }

    #[test]
    fn speech_emphasis_nods() {
        let mut quiet = PosePlayer::new(PoseSource::Idle(IdleSettings::default()));
        let mut loud = PosePlayer::new(PoseSource::Idle(IdleSettings::default()));
        let mut diff = 0.0f32;
        for i in 0..50 {
            let e = if (20..30).contains(&i) { 1.0 } else { 0.0 };
            let (q, l) = (quiet.sample(i, 0.0), loud.sample(i, e));
            diff = diff.max(l.head.pitch - q.head.pitch);
        }
        assert!(diff > 0.02, "nod {diff}");
    }
}
