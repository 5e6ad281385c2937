//! The rig's controls for one frame, read from a [`MotionFrame`] and made safe to render.

use crate::motion::MotionFrame;

/// Largest head angle rendered (radians); the warp only holds up for small turns.
pub const MAX_HEAD_ANGLE: f32 = 0.35;

/// Sanitised controls of one frame: NaN becomes the neutral value, everything is clamped to
/// the range the warp was designed for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Controls {
    /// Jaw opening, 0..1, already reduced by `lips_pressed`.
    pub jaw: f32,
    /// Corners wide (+) or drawn in (-), -1..1.
    pub lip_width: f32,
    /// Rounding, 0..1, already reduced by `lips_pressed`.
    pub lip_round: f32,
    /// Lips pressed together, 0..1.
    pub pressed: f32,
    /// Mouth corners up, 0..1.
    pub smile: f32,
    /// Mouth corners down, 0..1.
    pub frown: f32,
    /// Brows up, 0..1.
    pub brow_raise: f32,
    /// Brows together and down, 0..1.
    pub brow_furrow: f32,
    /// Eye openness, 0 (closed) ..1.5 (wide).
    pub eye_open: f32,
    /// Lower lids raised, 0..1.
    pub squint: f32,
    /// Head turn, radians, positive towards the character's left (image right).
    pub yaw: f32,
    /// Head nod, radians, positive chin down.
    pub pitch: f32,
    /// Head tilt, radians, positive clockwise on screen.
    pub roll: f32,
}

fn clean(v: f32, neutral: f32, lo: f32, hi: f32) -> f32 {
    if v.is_finite() {
        v.clamp(lo, hi)
    } else {
        neutral
    }
}

impl Controls {
    /// The portrait's own look.
    pub const NEUTRAL: Controls = Controls {
        jaw: 0.0,
        lip_width: 0.0,
        lip_round: 0.0,
        pressed: 0.0,
        smile: 0.0,
        frown: 0.0,
        brow_raise: 0.0,
        brow_furrow: 0.0,
        eye_open: 1.0,
        squint: 0.0,
        yaw: 0.0,
        pitch: 0.0,
        roll: 0.0,
    };

    /// Reads the semantic controls of a motion frame.
    pub fn from_frame(frame: &MotionFrame) -> Self {
        let m = &frame.mouth;
        let e = &frame.expression;
        let h = &frame.head;
        let a = MAX_HEAD_ANGLE;
        let pressed = clean(m.lips_pressed, 0.0, 0.0, 1.0);
        // Pressed lips cannot be open or rounded at the same time.
        let open_scale = 1.0 - pressed;
        Controls {
            jaw: clean(m.jaw_open, 0.0, 0.0, 1.0) * open_scale,
            lip_width: clean(m.lip_width, 0.0, -1.0, 1.0),
            lip_round: clean(m.lip_round, 0.0, 0.0, 1.0) * open_scale,
            pressed,
            smile: clean(e.smile, 0.0, 0.0, 1.0),
            frown: clean(e.frown, 0.0, 0.0, 1.0),
            brow_raise: clean(e.brow_raise, 0.0, 0.0, 1.0),
            brow_furrow: clean(e.brow_furrow, 0.0, 0.0, 1.0),
            eye_open: clean(e.eye_open, 1.0, 0.0, 1.5),
            squint: clean(e.squint, 0.0, 0.0, 1.0),
            yaw: clean(h.yaw, 0.0, -a, a),
            pitch: clean(h.pitch, 0.0, -a, a),
            roll: clean(h.roll, 0.0, -a, a),
        }
    }

    /// Weights of the warp's basis fields, in [`super::geometry::Basis`] order.
    pub fn basis_weights(&self) -> [f32; super::geometry::BASIS_COUNT] {
        [
            self.jaw,
            self.lip_width,
            self.lip_round,
            self.lip_round,
            self.pressed,
            self.smile,
            self.frown,
            self.brow_raise,
            self.brow_furrow,
            (self.eye_open - 1.0).max(0.0),
            self.squint,
            self.yaw.sin(),
            self.yaw.cos() - 1.0,
            self.pitch.sin(),
            self.pitch.cos() - 1.0,
            self.roll.sin(),
            self.roll.cos() - 1.0,
        ]
    }

    /// How far the upper lids are lowered, 0 (the portrait's own) to 1 (shut).
    pub fn lid_closure(&self) -> f32 {
        (1.0 - self.eye_open).clamp(0.0, 1.0)
    }
}
