//! Emotion mixes: several emotions with weights and an intensity, resolved against a
//! library of the eight EDTalk emotions plus custom ones defined in RON, and smooth
//! time-based transitions between mixes.
//!
//! Resolution: the weights are normalised to sum to 1 and the members' expression-bank
//! coefficients and looks are averaged with them. Intensity then interpolates from the
//! library's *base* (by default the official neutral weights and the neutral look, i.e.
//! the portrait's resting face) toward that blend: `base + intensity * (blend - base)`.
//! 0 is the base, 1 the emotions as defined, values up to 2 exaggerate.

use super::{EXP_DIM, Emotion, ExpressionControls};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Errors of emotion mixes and custom emotion files.
#[derive(Debug, thiserror::Error)]
pub enum EmotionError {
    /// A name that is neither built in nor defined.
    #[error("unknown emotion '{name}'; valid emotions: {}", .valid.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
        /// Every name the library knows.
        valid: Vec<String>,
    },
    /// A custom emotion file that does not parse.
    #[error("{origin}:{}:{}: {}", .error.span.start.line, .error.span.start.col, .error.code)]
    Syntax {
        /// File name or description of the text.
        origin: String,
        /// ron's error with its position.
        error: Box<ron::error::SpannedError>,
    },
    /// A definition with non-finite numbers or an empty/duplicate name.
    #[error("{origin}: custom emotion '{name}': {problem}")]
    Invalid {
        /// File name or description of the text.
        origin: String,
        /// The emotion's name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// A mix whose weights are not finite and non-negative, or sum to zero.
    #[error("emotion mix: {0}")]
    BadMix(String),
}

/// A user-defined emotion: 10 expression-bank coefficients (e.g. extracted from a
/// reference image with the neural encoder) and an optional look for the procedural
/// renderer (neutral look when absent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomEmotion {
    /// Name used in mixes and scripts (case-insensitive).
    pub name: String,
    /// Expression-bank coefficients.
    pub exp: [f32; EXP_DIM],
    /// Procedural look at full intensity.
    #[serde(default)]
    pub look: Option<ExpressionControls>,
}

/// What a mix resolves to: both renderers' view of the expression.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResolvedExpression {
    /// Expression-bank coefficients for the neural renderer.
    pub exp: [f32; EXP_DIM],
    /// Semantic expression for the procedural renderer.
    pub look: ExpressionControls,
}

impl ResolvedExpression {
    /// Linear interpolation, `t` in [0, 1].
    pub fn lerp(&self, other: &Self, t: f32) -> Self {
        // This form is exact at both ends.
        let l = |a: f32, b: f32| a * (1.0 - t) + b * t;
        let (a, b) = (&self.look, &other.look);
        Self {
            exp: std::array::from_fn(|i| l(self.exp[i], other.exp[i])),
            look: ExpressionControls {
                smile: l(a.smile, b.smile),
                frown: l(a.frown, b.frown),
                brow_raise: l(a.brow_raise, b.brow_raise),
                brow_furrow: l(a.brow_furrow, b.brow_furrow),
                eye_open: l(a.eye_open, b.eye_open),
                squint: l(a.squint, b.squint),
            },
        }
    }
}

/// Several emotions with weights, and an intensity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "plugin", derive(bevy::reflect::Reflect))]
pub struct EmotionMix {
    /// (emotion name, weight); weights are relative (normalised when resolved).
    pub weights: Vec<(String, f32)>,
    /// 0 = the base (neutral) face, 1 = as defined, up to 2 exaggerated.
    #[serde(default = "one")]
    pub intensity: f32,
}

fn one() -> f32 {
    1.0
}

impl EmotionMix {
    /// One emotion at an intensity.
    pub fn single(name: impl Into<String>, intensity: f32) -> Self {
        Self {
            weights: vec![(name.into(), 1.0)],
            intensity,
        }
    }

    /// The neutral face.
    pub fn neutral() -> Self {
        Self::single("neutral", 1.0)
    }
}

/// The emotions a character can use: the eight built-in ones plus custom definitions.
#[derive(Clone, Debug)]
pub struct EmotionLibrary {
    entries: BTreeMap<String, ResolvedExpression>,
    base: ResolvedExpression,
}

impl Default for EmotionLibrary {
    fn default() -> Self {
        let entries = Emotion::ALL
            .iter()
            .map(|e| {
                (
                    e.name().to_string(),
                    ResolvedExpression {
                        exp: e.exp_weights(),
                        look: e.default_look(),
                    },
                )
            })
            .collect();
        let base = ResolvedExpression {
            exp: Emotion::Neutral.exp_weights(),
            look: ExpressionControls::default(),
        };
        Self { entries, base }
    }
}

impl EmotionLibrary {
    /// The eight built-in emotions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets what intensity 0 means (e.g. the portrait's own expression coefficients).
    pub fn set_base(&mut self, base: ResolvedExpression) {
        self.base = base;
    }

    /// The face at intensity 0.
    pub fn base(&self) -> ResolvedExpression {
        self.base
    }

    /// All known names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Adds (or replaces) a custom emotion.
    pub fn insert(&mut self, emotion: CustomEmotion) {
        let look = emotion.look.unwrap_or_default();
        self.entries.insert(
            emotion.name.trim().to_lowercase(),
            ResolvedExpression {
                exp: emotion.exp,
                look,
            },
        );
    }

    /// Parses a RON list of custom emotions, e.g.
    /// `[(name: "smug", exp: (0.1, ...10 numbers), look: (smile: 0.4))]`, validates
    /// them and adds them. `origin` names the text in errors.
    pub fn load_custom_ron(
        &mut self,
        text: &str,
        origin: &str,
    ) -> Result<Vec<String>, EmotionError> {
        let list: Vec<CustomEmotion> =
            crate::motion::ron_options()
                .from_str(text)
                .map_err(|error| EmotionError::Syntax {
                    origin: origin.to_string(),
                    error: Box::new(error),
                })?;
        let mut names = Vec::new();
        for e in &list {
            let invalid = |problem: String| EmotionError::Invalid {
                origin: origin.to_string(),
                name: e.name.clone(),
                problem,
            };
            if e.name.trim().is_empty() {
                return Err(invalid("the name is empty".into()));
            }
            if let Some(i) = e.exp.iter().position(|v| !v.is_finite()) {
                return Err(invalid(format!(
                    "exp[{i}] is {}, expected a finite number",
                    e.exp[i]
                )));
            }
            if let Some(look) = &e.look {
                let values = [
                    look.smile,
                    look.frown,
                    look.brow_raise,
                    look.brow_furrow,
                    look.eye_open,
                    look.squint,
                ];
                if values.iter().any(|v| !v.is_finite()) {
                    return Err(invalid("the look holds a non-finite number".into()));
                }
            }
            if names.contains(&e.name.trim().to_lowercase()) {
                return Err(invalid("defined twice in this file".into()));
            }
            names.push(e.name.trim().to_lowercase());
        }
        for e in list {
            self.insert(e);
        }
        Ok(names)
    }

    /// Looks one emotion up by name (case-insensitive).
    pub fn get(&self, name: &str) -> Result<ResolvedExpression, EmotionError> {
        self.entries
            .get(&name.trim().to_lowercase())
            .copied()
            .ok_or_else(|| EmotionError::Unknown {
                name: name.to_string(),
                valid: self.names(),
            })
    }

    /// Checks that every name in the mix is known and the weights are usable.
    pub fn validate(&self, mix: &EmotionMix) -> Result<(), EmotionError> {
        self.resolve(mix).map(|_| ())
    }

    /// Resolves a mix to expression coefficients and a look (see the module docs).
    pub fn resolve(&self, mix: &EmotionMix) -> Result<ResolvedExpression, EmotionError> {
        if !mix.intensity.is_finite() {
            return Err(EmotionError::BadMix(format!(
                "intensity is {}, expected a finite number",
                mix.intensity
            )));
        }
        let mut total = 0.0f32;
        let mut exp = [0.0f32; EXP_DIM];
        let mut look = [0.0f32; 6];
        for (name, w) in &mix.weights {
            let entry = self.get(name)?;
            if !w.is_finite() || *w < 0.0 {
                return Err(EmotionError::BadMix(format!(
                    "weight of '{name}' is {w}, expected a finite number >= 0"
                )));
            }
            total += w;
            for (e, v) in exp.iter_mut().zip(entry.exp) {
                *e += w * v;
            }
            for (l, v) in look.iter_mut().zip(look_array(&entry.look)) {
                *l += w * v;
            }
        }
        if total <= 0.0 {
            if mix.weights.is_empty() {
                return Ok(self.base);
            }
            return Err(EmotionError::BadMix("the weights sum to zero".into()));
        }
        let blend = ResolvedExpression {
            exp: exp.map(|v| v / total),
            look: look_from_array(look.map(|v| v / total)),
        };
        let intensity = mix.intensity.clamp(0.0, 2.0);
        Ok(self.base.lerp(&blend, intensity))
    }
}

fn look_array(l: &ExpressionControls) -> [f32; 6] {
    [
        l.smile,
        l.frown,
        l.brow_raise,
        l.brow_furrow,
        l.eye_open,
        l.squint,
    ]
}

fn look_from_array(a: [f32; 6]) -> ExpressionControls {
    ExpressionControls {
        smile: a[0],
        frown: a[1],
        brow_raise: a[2],
        brow_furrow: a[3],
        eye_open: a[4],
        squint: a[5],
    }
}

/// Easing curves for transitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "plugin", derive(bevy::reflect::Reflect))]
pub enum Easing {
    /// Constant speed.
    Linear,
    /// Hermite smoothstep (gentle start and end).
    #[default]
    Smooth,
    /// Cubic, slow start.
    EaseIn,
    /// Cubic, slow end.
    EaseOut,
    /// Cubic, slow start and end.
    EaseInOut,
}

impl Easing {
    /// Maps progress `t` (clamped to [0, 1]) through the curve.
    pub fn apply(self, t: f32) -> f32 {
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            1.0
        };
        match self {
            Easing::Linear => t,
            Easing::Smooth => t * t * (3.0 - 2.0 * t),
            Easing::EaseIn => t * t * t,
            Easing::EaseOut => 1.0 - (1.0 - t).powi(3),
            Easing::EaseInOut => {
                if t < 0.5 {
                    4.0 * t * t * t
                } else {
                    1.0 - (-2.0 * t + 2.0).powi(3) / 2.0
                }
            }
        }
    }
}

/// A character's current expression with time-based transitions between mixes.
#[derive(Clone, Debug)]
pub struct EmotionState {
    from: ResolvedExpression,
    to: ResolvedExpression,
    start: f32,
    duration: f32,
    easing: Easing,
}

impl EmotionState {
    /// Starts at `initial`, with no transition running.
    pub fn new(initial: ResolvedExpression) -> Self {
        Self {
            from: initial,
            to: initial,
            start: 0.0,
            duration: 0.0,
            easing: Easing::Linear,
        }
    }

    /// Starts a transition at time `now` (seconds) toward `target`, taking `blend` seconds,
    /// from wherever the expression is at `now` (so interrupting a transition is smooth).
    pub fn transition_to(
        &mut self,
        target: ResolvedExpression,
        now: f32,
        blend: f32,
        easing: Easing,
    ) {
        self.from = self.sample(now);
        self.to = target;
        self.start = now;
        self.duration = if blend.is_finite() {
            blend.max(0.0)
        } else {
            0.0
        };
        self.easing = easing;
    }

    /// The expression at time `t` (seconds).
    pub fn sample(&self, t: f32) -> ResolvedExpression {
        if self.duration <= 0.0 || t >= self.start + self.duration {
            return self.to;
        }
        if t <= self.start {
            return self.from;
        }
        let p = self.easing.apply((t - self.start) / self.duration);
        self.from.lerp(&self.to, p)
    }

    /// The target of the latest transition.
    pub fn target(&self) -> ResolvedExpression {
        self.to
    }

    /// Eased progress of the latest transition at time `t`: 0 at its start, 1 once it is
    /// done (and always 1 for an instant change).
    pub fn progress(&self, t: f32) -> f32 {
        if self.duration <= 0.0 || t >= self.start + self.duration {
            return 1.0;
        }
        if t <= self.start {
            return 0.0;
        }
        self.easing.apply((t - self.start) / self.duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_emotion_at_full_intensity_is_its_weights() {
        let lib = EmotionLibrary::new();
        let r = lib.resolve(&EmotionMix::single("Happy", 1.0)).unwrap();
        assert_eq!(r.exp, Emotion::Happy.exp_weights());
        assert_eq!(r.look, Emotion::Happy.default_look());
        let zero = lib.resolve(&EmotionMix::single("happy", 0.0)).unwrap();
        assert_eq!(zero.exp, Emotion::Neutral.exp_weights());
    }

    #[test]
    fn mix_is_the_weighted_mean() {
        let lib = EmotionLibrary::new();
        let mix = EmotionMix {
            weights: vec![("happy".into(), 3.0), ("sad".into(), 1.0)],
            intensity: 1.0,
        };
        let r = lib.resolve(&mix).unwrap();
        let (h, s) = (Emotion::Happy.exp_weights(), Emotion::Sad.exp_weights());
        for i in 0..EXP_DIM {
            assert!((r.exp[i] - (0.75 * h[i] + 0.25 * s[i])).abs() < 1e-5);
        }
        let smile =
            0.75 * Emotion::Happy.default_look().smile + 0.25 * Emotion::Sad.default_look().smile;
        assert!((r.look.smile - smile).abs() < 1e-6);
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let lib = EmotionLibrary::new();
        let err = lib.resolve(&EmotionMix::single("bored", 1.0)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("'bored'") && msg.contains("surprised") && msg.contains("angry"),
            "{msg}"
        );
    }

    #[test]
    fn custom_emotions_load_and_report_positions() {
        let mut lib = EmotionLibrary::new();
        let text =
            r#"[(name: "Smug", exp: (1,2,3,4,5,6,7,8,9,10), look: (smile: 0.4, squint: 0.2))]"#;
        assert_eq!(
            lib.load_custom_ron(text, "smug.ron").unwrap(),
            vec!["smug".to_string()]
        );
        let r = lib.resolve(&EmotionMix::single("smug", 1.0)).unwrap();
        assert_eq!(r.exp[9], 10.0);
        assert_eq!(r.look.smile, 0.4);
        assert_eq!(r.look.eye_open, 1.0);
        let bad = "[\n  (name: \"x\", exp: (1, 2,, 3))\n]";
        let msg = lib.load_custom_ron(bad, "bad.ron").unwrap_err().to_string();
        assert!(msg.starts_with("bad.ron:2:"), "{msg}");
    }

    #[test]
    fn transitions_ease_between_mixes() {
        let lib = EmotionLibrary::new();
        let a = lib.resolve(&EmotionMix::neutral()).unwrap();
        let b = lib.resolve(&EmotionMix::single("surprised", 1.0)).unwrap();
        let mut s = EmotionState::new(a);
        s.transition_to(b, 1.0, 0.5, Easing::Linear);
        assert_eq!(s.sample(0.5), a);
        assert_eq!(s.sample(2.0), b);
        let mid = s.sample(1.25).look.brow_raise;
        assert!((mid - 0.5 * b.look.brow_raise).abs() < 1e-5);
        assert!(Easing::Smooth.apply(0.25) < 0.25 && Easing::EaseOut.apply(0.25) > 0.25);
    }
}
