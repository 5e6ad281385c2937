//! The components a game puts on its faces.

use bevy::prelude::*;

use super::align::PortraitAlign;
use super::assets::CharacterAsset;
use super::runtime::FaceRuntime;
use crate::motion::{
    EXP_DIM, Easing, Emotion, EmotionError, EmotionLibrary, EmotionMix, ExpressionControls,
    IdleSettings, ResolvedExpression,
};
use crate::render::rig::FaceRig;

/// The identity: the portrait image a face is made from. Adding it makes the entity a
/// talking face ([`TalkingFace`] and [`EmotionState`] come with it).
#[derive(Component, Clone, Debug, Reflect)]
#[reflect(Component)]
#[require(TalkingFace, EmotionState, FaceRuntime)]
pub struct FacePortrait {
    /// Any size and aspect; it is centre-cropped to a square and resized (see
    /// [`crate::render::Portrait::fit_square`]).
    pub image: Handle<Image>,
    /// Landmarks for the procedural renderer; `None` uses the default rig for aligned
    /// face crops.
    #[reflect(ignore)]
    pub rig: Option<FaceRig>,
    /// Pixel rectangle `[x, y, width, height]` to cut from the image first.
    pub crop: Option<[u32; 4]>,
    /// Face detection and EDTalk alignment for art that is not already a face crop (a
    /// photo, a painted bust, a character sheet): see [`PortraitAlign`].
    pub align: PortraitAlign,
    /// With alignment: show the whole portrait (at its own resolution) with the animated
    /// face pasted back through a feathered mask, instead of the 256 px face crop.
    pub paste_back: bool,
}

impl FacePortrait {
    /// A portrait from an image handle, default rig, no crop, used as it is.
    pub fn new(image: Handle<Image>) -> Self {
        Self {
            image,
            rig: None,
            crop: None,
            align: PortraitAlign::Off,
            paste_back: false,
        }
    }

    /// Any picture with a face in it: the face is found, aligned and rigged automatically.
    pub fn auto(image: Handle<Image>) -> Self {
        Self {
            align: PortraitAlign::Auto,
            ..Self::new(image)
        }
    }

    /// With a rig.
    pub fn with_rig(mut self, rig: FaceRig) -> Self {
        self.rig = Some(rig);
        self
    }

    /// With an alignment mode.
    pub fn with_align(mut self, align: PortraitAlign) -> Self {
        self.align = align;
        self
    }

    /// Shows the whole portrait with the animated face pasted back (needs alignment).
    pub fn with_paste_back(mut self) -> Self {
        self.paste_back = true;
        self
    }
}

/// Where the face is shown. The plugin creates the texture; if the entity has a
/// [`Sprite`], the sprite shows it. For meshes or UI, use [`TalkingFace::image`] in your
/// material or `ImageNode`.
#[derive(Component, Clone, Debug, Default, Reflect)]
#[reflect(Component, Default)]
pub struct TalkingFace {
    /// The face texture, updated in place every face frame (set up by the plugin).
    pub image: Handle<Image>,
    /// Seconds into the line being spoken, from the audio playback position; `None` when
    /// silent. Read-only: written by the plugin each frame (handy for subtitles).
    pub line_position: Option<f32>,
    /// The face clock in seconds (game time, or line time while speaking; after a line
    /// it catches up with game time over a few frames). Read-only.
    pub clock: f64,
}

/// Builds a [`FacePortrait`] (and emotion, idle motion) from a RON character file once
/// it has loaded. Lines sent before the file has loaded are queued.
///
/// When the file changes (hot reload with the `file_watcher` feature, or an edit through
/// `Assets<CharacterAsset>`), the portrait, crop, rig and idle settings are applied again;
/// a changed `default_emotion` moves the face to it. The backend preference is not
/// re-applied: the plugin runs one backend for all faces.
#[derive(Component, Clone, Debug, Reflect)]
#[reflect(Component)]
#[require(Transform, Visibility, FaceRuntime)]
pub struct Character(pub Handle<CharacterAsset>);

/// Idle head sway and blinks of one face, used while it is not speaking a line with its
/// own pose ([`super::Speak::with_pose`]). Without it a face gets the plugin's default
/// idle motion; [`super::EdTalkSettings::idle_motion`] off stills every face.
///
/// `seed` is mixed with the entity, so copies of one character do not sway in lockstep;
/// `sway` is the peak yaw in radians (pitch and roll move less); `blink_interval` is the
/// mean seconds between blinks. `nod` only applies to a line's own idle pose.
#[derive(Component, Clone, Debug, PartialEq, Reflect)]
#[reflect(Component, Default)]
pub struct IdleMotion(#[reflect(ignore)] pub IdleSettings);

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

/// Where a face's expression should go.
#[derive(Clone, Debug, PartialEq, Reflect)]
pub enum EmotionTarget {
    /// The portrait's own expression: no expression-bank weights (the neural renderer keeps
    /// the face as painted) and the neutral procedural look.
    Own,
    /// Named emotions (the eight built-in ones or custom ones from the
    /// [`super::Emotions`] library) with weights and an intensity.
    Mix(EmotionMix),
}

impl EmotionTarget {
    /// Resolves the target against a library: `None` is the portrait's own expression.
    pub fn resolve(
        &self,
        library: &EmotionLibrary,
    ) -> Result<Option<ResolvedExpression>, EmotionError> {
        match self {
            EmotionTarget::Own => Ok(None),
            EmotionTarget::Mix(mix) => library.resolve(mix).map(Some),
        }
    }

    /// A short label, e.g. `happy:1.00 x0.80`.
    pub fn label(&self) -> String {
        match self {
            EmotionTarget::Own => "own".into(),
            EmotionTarget::Mix(mix) => {
                let names: Vec<String> = mix
                    .weights
                    .iter()
                    .map(|(n, w)| format!("{n}:{w:.2}"))
                    .collect();
                format!("{} x{:.2}", names.join("+"), mix.intensity)
            }
        }
    }
}

/// A transition that was asked for but not yet resolved against the emotion library.
#[derive(Clone, Debug, PartialEq, Reflect)]
pub(crate) struct RequestedEmotion {
    pub(crate) target: EmotionTarget,
    pub(crate) transition: f32,
    pub(crate) easing: Easing,
}

/// The face's emotion: where its expression is, where it is going, and how fast.
///
/// The transitions run on [`crate::motion::EmotionState`], the engine that `edtalk render`
/// uses too, so a face eases the same in a game and offline. Constructors such as
/// [`EmotionState::emotion`] record a request that the plugin resolves against the
/// [`super::Emotions`] library on its next update (a bad name or intensity is reported as
/// an [`super::EdTalkError`], never a panic).
#[derive(Component, Clone, Debug, Reflect)]
#[reflect(Component, Default)]
pub struct EmotionState {
    #[reflect(ignore)]
    engine: crate::motion::EmotionState,
    /// Whether the transition's start and end are the portrait's own expression.
    own: (bool, bool),
    label: String,
    requested: Option<RequestedEmotion>,
}

impl Default for EmotionState {
    fn default() -> Self {
        Self {
            engine: crate::motion::EmotionState::new(ResolvedExpression {
                exp: EmotionLibrary::new().base().exp,
                look: ExpressionControls::default(),
            }),
            own: (true, true),
            label: "own".into(),
            requested: None,
        }
    }
}

impl EmotionState {
    /// Settled at the target once the plugin has resolved it (the portrait's own
    /// expression until then).
    pub fn new(target: EmotionTarget) -> Self {
        Self {
            requested: Some(RequestedEmotion {
                target,
                transition: 0.0,
                easing: Easing::Linear,
            }),
            ..Default::default()
        }
    }

    /// Settled at one built-in emotion at an intensity (0 neutral, 1 full, up to 2).
    pub fn emotion(emotion: Emotion, intensity: f32) -> Self {
        Self::new(EmotionTarget::Mix(EmotionMix::single(
            emotion.name(),
            intensity,
        )))
    }

    /// The label of the latest target (e.g. `happy:1.00 x0.80`, or `own`).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Takes the request a constructor recorded (resolved by the plugin).
    pub(crate) fn take_request(&mut self) -> Option<RequestedEmotion> {
        self.requested.take()
    }

    /// Whether a constructor's request waits to be resolved.
    pub(crate) fn has_request(&self) -> bool {
        self.requested.is_some()
    }

    /// Starts a transition at face-clock time `now` (seconds) toward `target` (`None`: the
    /// portrait's own expression), from wherever the expression is at `now`.
    pub fn transition_to(
        &mut self,
        target: Option<ResolvedExpression>,
        label: String,
        now: f64,
        seconds: f32,
        easing: Easing,
    ) {
        let now = now as f32;
        let was_own = self.own_at(now);
        // The portrait's own expression has no weights; its look is the neutral one.
        let resolved = target.unwrap_or_else(|| ResolvedExpression {
            look: ExpressionControls::default(),
            ..self.engine.sample(now)
        });
        self.engine.transition_to(resolved, now, seconds, easing);
        self.own = (was_own, target.is_none());
        self.label = label;
    }

    fn own_at(&self, t: f32) -> bool {
        // Weights and the own expression cannot be blended: switch halfway.
        if self.engine.progress(t) < 0.5 {
            self.own.0
        } else {
            self.own.1
        }
    }

    /// Transition progress at face-clock time `t`, eased, 0..1 (1 when settled).
    pub fn progress(&self, t: f64) -> f32 {
        self.engine.progress(t as f32)
    }

    /// The expression at face-clock time `t`: expression-bank weights (`None`: the
    /// portrait's own expression) and the procedural look.
    pub fn sample(&self, t: f64) -> (Option<[f32; EXP_DIM]>, ExpressionControls) {
        let t = t as f32;
        let r = self.engine.sample(t);
        let exp = (!self.own_at(t)).then_some(r.exp);
        (exp, r.look)
    }
}
