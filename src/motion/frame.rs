use serde::{Deserialize, Serialize};

/// Frame rate of every motion track and of the generated faces (EDTalk's video rate).
pub const MOTION_FPS: f32 = 25.0;
/// Number of EDTalk mouth coefficients (`lip_dim`).
pub const LIP_DIM: usize = 20;
/// Number of EDTalk head-pose coefficients (`pose_dim`).
pub const POSE_DIM: usize = 6;
/// Number of EDTalk expression coefficients (`exp_dim`).
pub const EXP_DIM: usize = 10;

/// Semantic mouth controls, the procedural renderer's view of the mouth.
///
/// Produced by the signal-processing lip-sync; all values are unitless.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MouthControls {
    /// How far the jaw is open, 0 (closed) to 1 (wide open).
    pub jaw_open: f32,
    /// Lip corners pulled wide (+1, "ee") or drawn in (-1).
    pub lip_width: f32,
    /// Lip rounding / protrusion, 0 to 1 ("oo").
    pub lip_round: f32,
    /// Lips pressed together, 0 to 1 (bilabials "m", "b", "p").
    pub lips_pressed: f32,
}

/// Semantic expression controls, the procedural renderer's view of the emotion state.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExpressionControls {
    /// Mouth corners up, 0 to 1.
    pub smile: f32,
    /// Mouth corners down, 0 to 1.
    pub frown: f32,
    /// Brows raised, 0 to 1.
    pub brow_raise: f32,
    /// Brows drawn together and down, 0 to 1.
    pub brow_furrow: f32,
    /// Eye openness: 1 is the portrait's own, 0 closed, above 1 wide.
    pub eye_open: f32,
    /// Lower lids raised, 0 to 1.
    pub squint: f32,
}

impl Default for ExpressionControls {
    fn default() -> Self {
        Self {
            smile: 0.0,
            frown: 0.0,
            brow_raise: 0.0,
            brow_furrow: 0.0,
            eye_open: 1.0,
            squint: 0.0,
        }
    }
}

/// Small head rotation in radians, relative to the portrait's own pose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeadPose {
    /// Turn left/right (positive: the character's left).
    pub yaw: f32,
    /// Nod (positive: chin down).
    pub pitch: f32,
    /// Tilt (positive: clockwise on screen).
    pub roll: f32,
}

/// Everything a renderer needs for one 25 fps frame of one character.
///
/// Both renderers read what they understand: the neural renderer the EDTalk coefficient
/// vectors, the procedural renderer the semantic controls. Sources fill both where they can.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MotionFrame {
    /// Semantic mouth (procedural renderer).
    pub mouth: MouthControls,
    /// EDTalk mouth coefficients from Audio2Lip; `None` when no Audio2Lip checkpoint ran.
    pub lip_coeffs: Option<[f32; LIP_DIM]>,
    /// Semantic head pose (procedural renderer).
    pub head: HeadPose,
    /// EDTalk pose coefficients; `None` means the portrait's own pose.
    pub pose_coeffs: Option<[f32; POSE_DIM]>,
    /// Semantic expression (procedural renderer).
    pub expression: ExpressionControls,
    /// EDTalk expression-bank weights; `None` means the portrait's own expression.
    pub exp_coeffs: Option<[f32; EXP_DIM]>,
}
