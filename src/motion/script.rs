//! Emotion scripts: a timeline of emotion keys relative to the start of a voice line,
//! written in RON, e.g.
//!
//! ```ron
//! (
//!     keys: [
//!         (time: 0.0, emotion: "neutral"),
//!         (time: 1.2, emotion: "happy", intensity: 0.8, blend: 0.4),
//!         (time: 2.5, mix: [("sad", 0.6), ("fear", 0.4)], blend: 0.6, easing: EaseInOut),
//!     ],
//! )
//! ```
//!
//! Each key starts a transition at `time` toward its emotion or mix, lasting `blend`
//! seconds (default 0.3) with `easing` (default `Smooth`). Before the first key the face is
//! the library's base. Syntax errors carry line and column.

use super::mix::{
    Easing, EmotionError, EmotionLibrary, EmotionMix, EmotionState, ResolvedExpression,
};
use serde::{Deserialize, Serialize};

/// Errors of emotion scripts.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The text is not valid RON for a script.
    #[error("{origin}:{}:{}: {}", .error.span.start.line, .error.span.start.col, .error.code)]
    Syntax {
        /// File name or description of the text.
        origin: String,
        /// ron's error with its position.
        error: Box<ron::error::SpannedError>,
    },
    /// A key is malformed or names an unknown emotion.
    #[error("{origin}: key {index} (time {time} s): {problem}")]
    Key {
        /// File name or description of the text.
        origin: String,
        /// Index of the key in `keys`.
        index: usize,
        /// Its time.
        time: f32,
        /// What is wrong.
        problem: String,
    },
}

/// One key of an emotion script.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmotionKey {
    /// Seconds from the start of the line.
    pub time: f32,
    /// A single emotion by name (give this or `mix`).
    #[serde(default)]
    pub emotion: Option<String>,
    /// Several emotions with weights (give this or `emotion`).
    #[serde(default)]
    pub mix: Option<Vec<(String, f32)>>,
    /// Intensity (see [`EmotionMix::intensity`]).
    #[serde(default = "one")]
    pub intensity: f32,
    /// Transition time in seconds.
    #[serde(default = "default_blend")]
    pub blend: f32,
    /// Transition curve.
    #[serde(default)]
    pub easing: Easing,
}

fn one() -> f32 {
    1.0
}

fn default_blend() -> f32 {
    0.3
}

impl EmotionKey {
    /// The mix this key asks for.
    pub fn to_mix(&self) -> Option<EmotionMix> {
        match (&self.emotion, &self.mix) {
            (Some(name), None) => Some(EmotionMix::single(name.clone(), self.intensity)),
            (None, Some(weights)) => Some(EmotionMix {
                weights: weights.clone(),
                intensity: self.intensity,
            }),
            _ => None,
        }
    }
}

/// A parsed emotion script.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EmotionScript {
    /// Keys in time order (sorted when parsed).
    pub keys: Vec<EmotionKey>,
}

impl EmotionScript {
    /// Parses and checks the structure (not the names: see [`EmotionScript::validate`]).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ScriptError> {
        let mut script: EmotionScript =
            crate::motion::ron_options()
                .from_str(text)
                .map_err(|error| ScriptError::Syntax {
                    origin: origin.to_string(),
                    error: Box::new(error),
                })?;
        for (index, key) in script.keys.iter().enumerate() {
            let fail = |problem: &str| ScriptError::Key {
                origin: origin.to_string(),
                index,
                time: key.time,
                problem: problem.to_string(),
            };
            if !key.time.is_finite() || key.time < 0.0 {
                return Err(fail("time must be a finite number >= 0"));
            }
            if !key.blend.is_finite() || key.blend < 0.0 {
                return Err(fail("blend must be a finite number >= 0"));
            }
            if key.to_mix().is_none() {
                return Err(fail("give exactly one of `emotion` or `mix`"));
            }
        }
        script.keys.sort_by(|a, b| a.time.total_cmp(&b.time));
        Ok(script)
    }

    /// Checks every key's emotion names and weights against a library.
    pub fn validate(&self, library: &EmotionLibrary, origin: &str) -> Result<(), ScriptError> {
        self.resolved(library, origin).map(|_| ())
    }

    /// Every key resolved against a library, in time order: `(time, target, blend,
    /// easing)`. This is what [`ScriptPlayer`] plays, and what the Bevy plugin applies to a
    /// face's emotion state while a line plays.
    pub fn resolved(
        &self,
        library: &EmotionLibrary,
        origin: &str,
    ) -> Result<Vec<(f32, ResolvedExpression, f32, Easing)>, ScriptError> {
        self.keys
            .iter()
            .enumerate()
            .map(|(index, key)| {
                let fail = |problem: String| ScriptError::Key {
                    origin: origin.to_string(),
                    index,
                    time: key.time,
                    problem,
                };
                let mix = key
                    .to_mix()
                    .ok_or_else(|| fail("give exactly one of `emotion` or `mix`".into()))?;
                let r = library
                    .resolve(&mix)
                    .map_err(|e: EmotionError| fail(e.to_string()))?;
                Ok((key.time, r, key.blend, key.easing))
            })
            .collect()
    }

    /// The expression at each of `frames` frames at `fps`.
    pub fn sample_frames(
        &self,
        library: &EmotionLibrary,
        fps: f32,
        frames: usize,
    ) -> Result<Vec<ResolvedExpression>, ScriptError> {
        let mut player = ScriptPlayer::new(self, library, "emotion script")?;
        Ok((0..frames).map(|i| player.sample(i as f32 / fps)).collect())
    }
}

/// Plays a script forward in time (times must not decrease between calls).
#[derive(Clone, Debug)]
pub struct ScriptPlayer {
    keys: Vec<(f32, ResolvedExpression, f32, Easing)>,
    next: usize,
    state: EmotionState,
}

impl ScriptPlayer {
    /// Resolves the script's keys against a library.
    pub fn new(
        script: &EmotionScript,
        library: &EmotionLibrary,
        origin: &str,
    ) -> Result<Self, ScriptError> {
        Ok(Self {
            keys: script.resolved(library, origin)?,
            next: 0,
            state: EmotionState::new(library.base()),
        })
    }

    /// The expression at time `t` seconds from the line's start.
    pub fn sample(&mut self, t: f32) -> ResolvedExpression {
        while let Some(&(time, target, blend, easing)) = self.keys.get(self.next) {
            if time > t {
                break;
            }
            self.state.transition_to(target, time, blend, easing);
            self.next += 1;
        }
        self.state.sample(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motion::Emotion;

    const SCRIPT: &str = r#"(
        keys: [
            (time: 1.0, emotion: "happy", blend: 0.5, easing: Linear),
            (time: 0.0, emotion: "sad", blend: 0.0),
            (time: 3.0, mix: [("angry", 1.0), ("fear", 1.0)], intensity: 0.5),
        ],
    )"#;

    #[test]
    fn keys_play_in_time_order() {
        let lib = EmotionLibrary::new();
        let script = EmotionScript::parse(SCRIPT, "test.ron").unwrap();
        assert_eq!(script.keys[0].emotion.as_deref(), Some("sad"));
        let frames = script.sample_frames(&lib, 25.0, 100).unwrap();
        assert_eq!(frames[10].exp, Emotion::Sad.exp_weights());
        assert_eq!(frames[40].exp, Emotion::Happy.exp_weights());
        // 48% through the linear sad -> happy blend (t = 1.24 s).
        let (s, h) = (
            Emotion::Sad.exp_weights()[0],
            Emotion::Happy.exp_weights()[0],
        );
        assert!((frames[31].exp[0] - (s + (h - s) * 0.48)).abs() < 1e-4);
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let text = "(\n  keys: [\n    (time: 1.0, emotion: \"happy\" blend: 0.5),\n  ],\n)";
        let msg = EmotionScript::parse(text, "line.ron")
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("line.ron:3:"), "{msg}");
    }

    #[test]
    fn unknown_names_are_reported_with_the_key() {
        let lib = EmotionLibrary::new();
        let text = r#"(keys: [(time: 0.0, emotion: "happy"), (time: 2.0, emotion: "grumpy")])"#;
        let script = EmotionScript::parse(text, "s.ron").unwrap();
        let msg = script.validate(&lib, "s.ron").unwrap_err().to_string();
        assert!(
            msg.contains("key 1") && msg.contains("'grumpy'") && msg.contains("neutral"),
            "{msg}"
        );
        let both = r#"(keys: [(time: 0.0, emotion: "happy", mix: [("sad", 1.0)])])"#;
        assert!(EmotionScript::parse(both, "b.ron").is_err());
    }
}
