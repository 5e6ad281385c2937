use bevy::prelude::*;

use super::assets::CharacterAsset;
use super::systems::FaceRuntime;
use crate::motion::{
    EXP_DIM, Emotion, EmotionError, EmotionLibrary, EmotionMix, ExpressionControls, IdleSettings,
};
use crate::render::rig::FaceRig;

/// The identity: the portrait image a face is made from. Adding it makes the entity a
/// talking face ([`TalkingFace`] and [`EmotionState`] come with it).
#[derive(Component, Clone, Debug)]
#[require(TalkingFace, EmotionState, FaceRuntime)]
pub struct FacePortrait {
    /// Any size and aspect; it is centre-cropped to a square and resized (see
    /// [`crate::render::Portrait::fit_square`]).
    pub image: Handle<Image>,
    /// Landmarks for the procedural renderer; `None` uses the default rig for aligned
    /// face crops.
    pub rig: Option<FaceRig>,
    /// Pixel rectangle `[x, y, width, height]` to cut from the image first, for art that
    /// is not already a face crop.
    pub crop: Option<[u32; 4]>,
}

impl FacePortrait {
    /// A portrait from an image handle, default rig, no crop.
    pub fn new(image: Handle<Image>) -> Self {
        Self {
            image,
            rig: None,
            crop: None,
        }
    }

    /// With a rig.
    pub fn with_rig(mut self, rig: FaceRig) -> Self {
        self.rig = Some(rig);
        self
    }
}

/// Where the face is shown. The plugin creates the texture; if the entity has a
/// [`Sprite`], the sprite shows it. For meshes or UI, use [`TalkingFace::image`] in your
/// material or `ImageNode`.
#[derive(Component, Clone, Debug, Default)]
pub struct TalkingFace {
    /// The face texture, updated in place every face frame (set up by the plugin).
    pub image: Handle<Image>,
    /// Seconds into the line being spoken, from the audio playback position; `None` when
    /// silent. Read-only: written by the plugin each frame (handy for subtitles).
    pub line_position: Option<f32>,
    /// The face clock in seconds (game time, or line time while speaking). Read-only.
    pub clock: f64,
}

/// Builds a [`FacePortrait`] (and emotion, idle motion) from a RON character file once
/// it has loaded. Lines sent before the file has loaded are queued.
///
/// When the file changes (hot reload with the `file_watcher` feature, or an edit through
/// `Assets<CharacterAsset>`), the portrait, crop, rig and idle settings are applied again;
/// a changed `default_emotion` moves the face to it. The backend preference is not
/// re-applied: the plugin runs one backend for all faces.
#[derive(Component, Clone, Debug)]
#[require(Transform, Visibility, FaceRuntime)]
pub struct Character(pub Handle<CharacterAsset>);

/// Idle head sway and blinks of one face, used while it is not speaking a line with its
/// own pose ([`super::Speak::with_pose`]). Without it a face gets the plugin's default
/// idle motion; [`super::EdTalkSettings::idle_motion`] off stills every face.
///
/// `seed` is mixed with the entity, so copies of one character do not sway in lockstep;
/// `sway` is the peak yaw in radians (pitch and roll move less); `blink_interval` is the
/// mean seconds between blinks. `nod` only applies to a line's own idle pose.
#[derive(Component, Clone, Debug, PartialEq)]
pub struct IdleMotion(pub IdleSettings);

impl Default for IdleMotion {
    /// The plugin's default idle motion.
    fn default() -> Self {
        Self(IdleSettings {
            seed: 0,
            sway: 0.04,
            blink_interval: 4.0,
            ..Default::default()
        })
    }
}

/// Expression target: EDTalk bank weights plus the procedural look.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpressionTarget {
    /// Human-readable label (e.g. "happy x0.8"), for debugging and UI.
    pub label: String,
    /// EDTalk expression weights; `None` keeps the portrait's own expression.
    pub exp: Option<[f32; EXP_DIM]>,
    /// Procedural renderer controls.
    pub look: ExpressionControls,
}

impl ExpressionTarget {
    /// The portrait's own expression.
    pub fn own() -> Self {
        Self {
            label: "own".into(),
            exp: None,
            look: ExpressionControls::default(),
        }
    }

    /// One predefined emotion at an intensity (0 = neutral, 1 = full; values above 1
    /// exaggerate, up to 2). Scales both the bank weights (from neutral's) and the look.
    pub fn emotion(emotion: Emotion, intensity: f32) -> Self {
        let mix = EmotionMix::single(emotion.name(), intensity);
        Self::mix(&mix, &EmotionLibrary::new()).expect("built-in emotions always resolve")
    }

    /// A mix of emotions from a library (built-in plus custom ones).
    pub fn mix(mix: &EmotionMix, library: &EmotionLibrary) -> Result<Self, EmotionError> {
        let resolved = library.resolve(mix)?;
        let names: Vec<String> = mix
            .weights
            .iter()
            .map(|(n, w)| format!("{n}:{w:.2}"))
            .collect();
        Ok(Self {
            label: format!("{} x{:.2}", names.join("+"), mix.intensity),
            exp: Some(resolved.exp),
            look: resolved.look,
        })
    }
}

fn lerp_look(a: &ExpressionControls, b: &ExpressionControls, t: f32) -> ExpressionControls {
    let l = |x: f32, y: f32| x + (y - x) * t;
    ExpressionControls {
        smile: l(a.smile, b.smile),
        frown: l(a.frown, b.frown),
        brow_raise: l(a.brow_raise, b.brow_raise),
        brow_furrow: l(a.brow_furrow, b.brow_furrow),
        eye_open: l(a.eye_open, b.eye_open),
        squint: l(a.squint, b.squint),
    }
}

/// The face's emotion: where it is, where it is going, and how fast.
#[derive(Component, Clone, Debug)]
pub struct EmotionState {
    from: ExpressionTarget,
    to: ExpressionTarget,
    /// Face-clock seconds when the transition started, and its length.
    start: f64,
    duration: f32,
}

impl Default for EmotionState {
    fn default() -> Self {
        Self::new(ExpressionTarget::own())
    }
}

impl EmotionState {
    /// Settled at `target`.
    pub fn new(target: ExpressionTarget) -> Self {
        Self {
            from: target.clone(),
            to: target,
            start: 0.0,
            duration: 0.0,
        }
    }

    /// Settled at one emotion.
    pub fn emotion(emotion: Emotion, intensity: f32) -> Self {
        Self::new(ExpressionTarget::emotion(emotion, intensity))
    }

    /// The target being moved to.
    pub fn target(&self) -> &ExpressionTarget {
        &self.to
    }

    /// Starts a transition at time `now` (seconds on the face clock) from wherever the
    /// expression is now.
    pub fn transition_to(&mut self, target: ExpressionTarget, now: f64, duration: f32) {
        let (exp, look) = self.sample(now);
        self.from = ExpressionTarget {
            label: format!("blend to {}", target.label),
            exp,
            look,
        };
        self.to = target;
        self.start = now;
        self.duration = if duration.is_finite() {
            duration.max(0.0)
        } else {
            0.0
        };
    }

    /// Transition progress at `t`, 0..1 (1 when settled).
    pub fn progress(&self, t: f64) -> f32 {
        if self.duration <= 0.0 {
            return 1.0;
        }
        (((t - self.start) / self.duration as f64) as f32).clamp(0.0, 1.0)
    }

    /// The expression at face-clock time `t` (smoothstep easing).
    pub fn sample(&self, t: f64) -> (Option<[f32; EXP_DIM]>, ExpressionControls) {
        let p = self.progress(t);
        let e = p * p * (3.0 - 2.0 * p);
        let look = lerp_look(&self.from.look, &self.to.look, e);
        let exp = match (self.from.exp, self.to.exp) {
            (Some(a), Some(b)) => Some(std::array::from_fn(|i| a[i] + (b[i] - a[i]) * e)),
            // The portrait's own expression has no weights to blend with: switch halfway.
            (a, b) => {
                if e < 0.5 {
                    a
                } else {
                    b
                }
            }
        };
        (exp, look)
    }
}
