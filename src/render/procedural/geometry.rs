//! The face rig in pixels and the warp's basis fields.
//!
//! Every control moves the portrait through one fixed displacement field (a *basis*), so a
//! frame's warp is a weighted sum of fields that are evaluated once per identity. The fields
//! are forward displacements (where a portrait pixel moves to), in pixels at weight 1, and
//! all fade to zero at the image border so the frame edge never tears.

use crate::render::rig::{Brow, Eye, FaceRig, Point};

/// Number of basis fields.
pub const BASIS_COUNT: usize = 17;

/// The basis fields, in weight order (see `Controls::basis_weights`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
#[allow(missing_docs)] // Each is the control of the same name (see `Controls`).
pub enum Basis {
    Jaw,
    LipWidth,
    LipRound,
    RoundPush,
    Pressed,
    Smile,
    Frown,
    BrowRaise,
    BrowFurrow,
    EyeWide,
    Squint,
    YawSin,
    YawCos,
    PitchSin,
    PitchCos,
    RollSin,
    RollCos,
}

impl Basis {
    /// All fields in weight order.
    pub const ALL: [Basis; BASIS_COUNT] = [
        Basis::Jaw,
        Basis::LipWidth,
        Basis::LipRound,
        Basis::RoundPush,
        Basis::Pressed,
        Basis::Smile,
        Basis::Frown,
        Basis::BrowRaise,
        Basis::BrowFurrow,
        Basis::EyeWide,
        Basis::Squint,
        Basis::YawSin,
        Basis::YawCos,
        Basis::PitchSin,
        Basis::PitchCos,
        Basis::RollSin,
        Basis::RollCos,
    ];

    /// Whether the field splits the lips apart at the seam (a step across it). The warp
    /// applies these after undoing the smooth fields, so the split follows the lips when
    /// they move.
    pub fn is_split(self) -> bool {
        matches!(self, Basis::Jaw | Basis::RoundPush)
    }
}

/// A point in pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct P2 {
    /// Pixels from the left edge.
    pub x: f32,
    /// Pixels from the top edge.
    pub y: f32,
}

impl P2 {
    /// A point from its coordinates.
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }
}

/// An eye in pixels.
#[derive(Clone, Copy, Debug)]
pub struct EyePx {
    /// Corner towards the face outline.
    pub outer: P2,
    /// Corner towards the nose.
    pub inner: P2,
    /// Apex of the upper lid.
    pub upper: P2,
    /// Apex of the lower lid.
    pub lower: P2,
}

impl EyePx {
    /// Middle of the eye: between the corners, between the lids.
    pub fn center(&self) -> P2 {
        P2::new(
            (self.outer.x + self.inner.x) * 0.5,
            (self.upper.y + self.lower.y) * 0.5,
        )
    }
    /// Half the corner-to-corner width.
    pub fn half_width(&self) -> f32 {
        (self.inner.x - self.outer.x).abs() * 0.5
    }
    /// Lid-to-lid height.
    pub fn height(&self) -> f32 {
        self.lower.y - self.upper.y
    }
}

/// A brow in pixels.
#[derive(Clone, Copy, Debug)]
pub struct BrowPx {
    /// End towards the temple.
    pub outer: P2,
    /// Middle of the arch.
    pub mid: P2,
    /// End towards the nose.
    pub inner: P2,
}

/// The rig in pixels plus the sizes the fields are scaled by.
#[derive(Clone, Debug)]
pub struct FaceGeometry {
    /// Image side in pixels.
    pub size: f32,
    /// Image-left then image-right eye.
    pub eyes: [EyePx; 2],
    /// Image-left then image-right brow.
    pub brows: [BrowPx; 2],
    /// Nose tip.
    pub nose: P2,
    /// Mouth corner on the image's left.
    pub mouth_left: P2,
    /// Mouth corner on the image's right.
    pub mouth_right: P2,
    /// Top of the upper lip at the middle.
    pub upper_lip: P2,
    /// Bottom of the lower lip at the middle.
    pub lower_lip: P2,
    /// Bottom of the chin.
    pub chin: P2,
    /// Horizontal centre of the face outline.
    pub face_cx: f32,
    /// Half width of the face outline.
    pub face_rx: f32,
    /// Top of the face outline (temples).
    pub face_top: f32,
}

fn px(p: Point, s: f32) -> P2 {
    P2::new(p.x * s, p.y * s)
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn gauss2(dx: f32, dy: f32, sx: f32, sy: f32) -> f32 {
    (-0.5 * ((dx / sx).powi(2) + (dy / sy).powi(2))).exp()
}

impl FaceGeometry {
    /// The (validated) rig scaled to a `size` px square.
    pub fn new(rig: &FaceRig, size: u32) -> Self {
        let s = size as f32;
        let eye = |e: &Eye| EyePx {
            outer: px(e.outer, s),
            inner: px(e.inner, s),
            upper: px(e.upper, s),
            lower: px(e.lower, s),
        };
        let brow = |b: &Brow| BrowPx {
            outer: px(b.outer, s),
            mid: px(b.mid, s),
            inner: px(b.inner, s),
        };
        let (mut lo, mut hi, mut top) = (f32::MAX, f32::MIN, f32::MAX);
        for p in &rig.face_outline {
            lo = lo.min(p.x * s);
            hi = hi.max(p.x * s);
            top = top.min(p.y * s);
        }
        // A degenerate outline still gets a face-sized region.
        let rx = ((hi - lo) * 0.5).max(0.15 * s);
        Self {
            size: s,
            eyes: [eye(&rig.left_eye), eye(&rig.right_eye)],
            brows: [brow(&rig.left_brow), brow(&rig.right_brow)],
            nose: px(rig.nose_tip, s),
            mouth_left: px(rig.mouth_left, s),
            mouth_right: px(rig.mouth_right, s),
            upper_lip: px(rig.upper_lip, s),
            lower_lip: px(rig.lower_lip, s),
            chin: px(rig.chin, s),
            face_cx: (lo + hi) * 0.5,
            face_rx: rx,
            face_top: top,
        }
    }

    /// Half the mouth width.
    pub fn mouth_half_width(&self) -> f32 {
        ((self.mouth_right.x - self.mouth_left.x) * 0.5).max(1.0)
    }

    /// Centre of the mouth (between the corners).
    pub fn mouth_center(&self) -> P2 {
        P2::new(
            (self.mouth_left.x + self.mouth_right.x) * 0.5,
            (self.mouth_left.y + self.mouth_right.y) * 0.5,
        )
    }

    /// Height of the line between the lips at column `x` (straight from corner to corner).
    pub fn seam_y(&self, x: f32) -> f32 {
        let (l, r) = (self.mouth_left, self.mouth_right);
        let t = ((x - l.x) / (r.x - l.x).max(1.0)).clamp(0.0, 1.0);
        l.y + (r.y - l.y) * t
    }

    /// Rows (min, max) from the brows to the lower lids, where the warp needs pixel-fine
    /// rows: the lids and lashes are thin and the brow fields bend sharply above them.
    pub fn eye_rows(&self) -> (f32, f32) {
        let top = self
            .brows
            .iter()
            .map(|b| b.mid.y.min(b.inner.y).min(b.outer.y))
            .fold(f32::MAX, f32::min);
        let bot = self.eyes.iter().map(|e| e.lower.y).fold(f32::MIN, f32::max);
        (top, bot)
    }

    /// Rows (min, max) the lips' seam spans, where the warp needs pixel-fine rows.
    pub fn seam_rows(&self) -> (f32, f32) {
        let a = self.mouth_left.y.min(self.mouth_right.y);
        let b = self.mouth_left.y.max(self.mouth_right.y);
        (a, b)
    }

    /// Weight that fades every field to zero at the image border. It is exactly zero for
    /// the outer 6 px, so the outermost cells of the warp grid (4 px) never move.
    fn border(&self, x: f32, y: f32) -> f32 {
        let d = x.min(y).min(self.size - 1.0 - x).min(self.size - 1.0 - y);
        smoothstep(6.0, 6.0 + 0.08 * self.size, d)
    }

    /// How far the jaw opens at weight 1, in pixels.
    pub fn jaw_drop(&self) -> f32 {
        0.075 * self.size
    }

    /// How far the upper lip rises when the jaw opens fully.
    pub fn upper_lift(&self) -> f32 {
        0.012 * self.size
    }

    /// How far rounding pushes each lip away from the seam.
    pub fn round_push(&self) -> f32 {
        0.012 * self.size
    }

    /// Lateral opening profile of the mouth at column `x`: 1 in the middle, 0 at the corners
    /// and beyond, smooth at both.
    pub fn mouth_profile(&self, x: f32) -> f32 {
        let c = self.mouth_center();
        let t = (x - c.x) / (self.mouth_half_width() * 1.04);
        let q = (1.0 - t * t).max(0.0);
        q * q * (3.0 - 2.0 * q)
    }

    /// Field that opens the lips: the lower lip and jaw move down by `drop`, the upper lip up
    /// by `lift`, split along the seam.
    fn lip_split(&self, x: f32, y: f32, drop: f32, lift: f32) -> f32 {
        let s = y - self.seam_y(x);
        let below = smoothstep(-1.5, 1.5, s);
        let c = self.mouth_center();
        let jaw_len = (self.chin.y - c.y).max(4.0);
        // The lateral extent widens from the mouth to the jaw, but only well below the lower
        // lip, so the lips themselves open as a lens between the corners.
        let widen = smoothstep(0.55 * jaw_len, jaw_len, s);
        let hw = self.mouth_half_width() * 1.04 * (1.0 - widen) + self.face_rx * 0.8 * widen;
        let t = (x - c.x) / hw;
        let q = (1.0 - t * t).max(0.0);
        let lat_lo = q * q * (3.0 - 2.0 * q);
        let chin_fade = 1.0 - smoothstep(self.chin.y, self.chin.y + 0.07 * self.size, y);
        // The chin travels a little less than the lower lip, so it does not swallow the neck.
        let lip_lo = (self.lower_lip.y - c.y).max(1.0);
        let chin_ease = 1.0 - 0.35 * smoothstep(lip_lo, jaw_len, s);
        let lower = drop * lat_lo * below * chin_fade * chin_ease;
        // Above the seam only the lip moves; the skin up to the nose takes up the stretch.
        let up_fade = smoothstep(self.nose.y, self.upper_lip.y, y);
        let upper = -lift * self.mouth_profile(x) * (1.0 - below) * up_fade;
        lower + upper
    }

    /// Forward displacement of basis `b` at pixel (x, y), at weight 1.
    pub fn basis(&self, b: Basis, x: f32, y: f32) -> (f32, f32) {
        let border = self.border(x, y);
        if border <= 0.0 {
            return (0.0, 0.0);
        }
        let (dx, dy) = self.basis_raw(b, x, y);
        (dx * border, dy * border)
    }

    fn basis_raw(&self, b: Basis, x: f32, y: f32) -> (f32, f32) {
        let s = self.size;
        let c = self.mouth_center();
        let mw = self.mouth_half_width();
        // Sideways motion of the lips: peaks at the corners, dies off beyond them and above
        // and below the lips, so the jaw line does not follow.
        let u = (x - c.x) / mw;
        let sideways = u * (-0.5 * u * u).exp() * gauss2(0.0, y - c.y, 1.0, 0.7 * mw);
        match b {
            Basis::Jaw => (
                0.0,
                self.lip_split(x, y, self.jaw_drop(), self.upper_lift()),
            ),
            Basis::LipWidth => {
                // Corners out by about 0.025 of the image ("ee"), and a touch up.
                let w = 0.04 * s;
                (w * sideways, -0.15 * w * sideways.abs())
            }
            Basis::LipRound => (-0.04 * s * sideways, 0.0),
            // Rounded lips part a little: protrusion shows as a small opening.
            Basis::RoundPush => (
                0.0,
                self.lip_split(x, y, self.round_push(), self.round_push()),
            ),
            Basis::Pressed => {
                // Lips squeezed towards the seam: thinner lips, skin around takes the slack.
                let sd = y - self.seam_y(x);
                let lip = if sd < 0.0 {
                    (self.seam_y(x) - self.upper_lip.y).max(1.0)
                } else {
                    (self.lower_lip.y - self.seam_y(x)).max(1.0)
                };
                let a = sd.abs() / lip;
                let ramp = if a < 1.0 { a } else { (2.0 - a).max(0.0) };
                let lat = gauss2(x - c.x, 0.0, 1.1 * mw, 1.0);
                (0.0, -sd.signum() * 0.45 * lip * ramp * lat)
            }
            Basis::Smile => {
                let sm = 0.032 * s;
                let mut v = (0.0, 0.0);
                for (corner, side) in [(self.mouth_left, -1.0), (self.mouth_right, 1.0)] {
                    let g = gauss2(x - corner.x, y - corner.y, 0.6 * mw, 0.6 * mw);
                    // Cheeks bunch up above and outside the corners.
                    let ch = gauss2(
                        x - (corner.x + side * 0.3 * mw),
                        y - (corner.y - 0.9 * mw),
                        0.8 * mw,
                        0.7 * mw,
                    );
                    v.0 += side * 0.3 * sm * g;
                    v.1 += -sm * g - 0.3 * sm * ch;
                }
                v
            }
            Basis::Frown => {
                let fr = 0.024 * s;
                let mut v = (0.0, 0.0);
                for (corner, side) in [(self.mouth_left, -1.0), (self.mouth_right, 1.0)] {
                    let g = gauss2(x - corner.x, y - corner.y, 0.5 * mw, 0.55 * mw);
                    v.0 -= side * 0.1 * fr * g;
                    v.1 += fr * g;
                }
                v
            }
            Basis::BrowRaise => {
                let r = 0.02 * s;
                let mut v = 0.0;
                for (brow, eye) in self.brows.iter().zip(&self.eyes) {
                    v -= r * self.brow_weight(brow, eye, x, y, 2.0, false);
                }
                (0.0, v)
            }
            Basis::BrowFurrow => {
                let f = 0.018 * s;
                let mut v = (0.0, 0.0);
                let mid_x = (self.brows[0].inner.x + self.brows[1].inner.x) * 0.5;
                for (brow, eye) in self.brows.iter().zip(&self.eyes) {
                    let w = self.brow_weight(brow, eye, x, y, 0.8, true);
                    let toward = (mid_x - brow.inner.x).signum();
                    v.0 += toward * 0.45 * f * w;
                    v.1 += f * w;
                }
                v
            }
            Basis::EyeWide => {
                let mut v = 0.0;
                for e in &self.eyes {
                    let ce = e.center();
                    let g = gauss2(x - ce.x, y - e.upper.y, 1.5 * e.half_width(), e.height());
                    let above = 1.0 - smoothstep(e.upper.y - 0.2 * e.height(), e.lower.y, y);
                    v -= 0.8 * e.height() * g * above;
                }
                (0.0, v)
            }
            Basis::Squint => {
                let mut v = 0.0;
                for e in &self.eyes {
                    let ce = e.center();
                    let g = gauss2(
                        x - ce.x,
                        y - (e.lower.y + 0.6 * e.height()),
                        1.1 * e.half_width(),
                        1.2 * e.height(),
                    );
                    let below = smoothstep(ce.y, e.lower.y, y);
                    v -= 0.012 * s * g * below;
                }
                (0.0, v)
            }
            Basis::YawSin => (self.depth(x, y) * self.head_mask(x, y), 0.0),
            Basis::YawCos => ((x - self.face_cx) * self.head_mask(x, y), 0.0),
            Basis::PitchSin => (0.0, self.depth(x, y) * self.head_mask(x, y)),
            Basis::PitchCos => (0.0, (y - self.head_cy()) * self.head_mask(x, y)),
            Basis::RollSin | Basis::RollCos => {
                // Tilt about the neck, just below the chin.
                let pivot = P2::new(self.face_cx, self.chin.y + 0.04 * s);
                let m = self.head_mask(x, y);
                let (dx, dy) = (x - pivot.x, y - pivot.y);
                if b == Basis::RollSin {
                    (-dy * m, dx * m)
                } else {
                    (dx * m, dy * m)
                }
            }
        }
    }

    /// Weight of a brow's motion at (x, y): full over the brow and the forehead above it,
    /// falling to zero at the upper lid so the eye itself stays put.
    fn brow_weight(
        &self,
        brow: &BrowPx,
        eye: &EyePx,
        x: f32,
        y: f32,
        spread: f32,
        inner: bool,
    ) -> f32 {
        let half = ((brow.inner.x - brow.outer.x).abs() * 0.5).max(2.0);
        let (cx, cy) = if inner {
            (brow.inner.x, brow.inner.y)
        } else {
            (brow.mid.x, brow.mid.y)
        };
        let gap = (eye.upper.y - cy).max(2.0);
        let lateral = gauss2(x - cx, 0.0, spread * half, 1.0);
        // Falls linearly to zero at the lash line, spreading the stretch evenly over the lid:
        // the backward sampling magnifies by 1 / (1 - motion * slope), so a steep fall would
        // smear the lashes.
        let vertical = if y <= cy {
            gauss2(0.0, y - cy, 1.0, 1.6 * gap)
        } else {
            (1.0 - (y - cy) / (eye.upper.y - 1.0 - cy).max(1.0)).clamp(0.0, 1.0)
        };
        lateral * vertical
    }

    /// Vertical centre of the head region.
    fn head_cy(&self) -> f32 {
        let brows = (self.brows[0].mid.y + self.brows[1].mid.y) * 0.5;
        (brows + self.chin.y) * 0.5
    }

    /// 1 over the head (face and hair), fading out over the neck, shoulders and background.
    fn head_mask(&self, x: f32, y: f32) -> f32 {
        let ry = (self.chin.y - self.head_cy()) * 1.3;
        let rx = self.face_rx * 1.45;
        let r = (((x - self.face_cx) / rx).powi(2) + ((y - self.head_cy()) / ry).powi(2)).sqrt();
        1.0 - smoothstep(0.75, 1.25, r)
    }

    /// Depth of the face surface towards the viewer (pixels): a sphere plus the nose.
    fn depth(&self, x: f32, y: f32) -> f32 {
        let rz = self.face_rx * 1.1;
        let cy = self.nose.y - 0.03 * self.size;
        let u = (x - self.face_cx) / rz;
        let v = (y - cy) / (rz * 1.3);
        let sphere = (1.0 - u * u - v * v).max(0.0).sqrt();
        let nose = gauss2(
            x - self.nose.x,
            y - (self.nose.y - 0.02 * self.size),
            0.04 * self.size,
            0.06 * self.size,
        );
        // The part of the depth that moves relative to the silhouette.
        0.55 * rz * sphere + 0.12 * rz * nose
    }
}
