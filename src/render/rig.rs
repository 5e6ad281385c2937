//! The per-portrait face rig: landmark positions the procedural renderer warps around.
//!
//! Coordinates are normalised to the square portrait (0..1, x right, y down), so one rig
//! fits the portrait at any resolution. "Left" and "right" are the viewer's (image) sides.
//! Rigs live next to their portrait as `<name>.rig.ron`; [`FaceRig::default`] fits
//! EDTalk-style aligned face crops (face centred, eyes near y = 0.43, mouth near y = 0.70).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A landmark position in normalised image coordinates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// 0 at the left edge, 1 at the right edge.
    pub x: f32,
    /// 0 at the top edge, 1 at the bottom edge.
    pub y: f32,
}

impl Point {
    /// A point from its coordinates.
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }
}

/// One eye: its two corners and the apexes of the upper and lower lid (where the visible
/// eye is tallest).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eye {
    /// Corner towards the face outline.
    pub outer: Point,
    /// Corner towards the nose.
    pub inner: Point,
    /// Highest point of the upper lid edge.
    pub upper: Point,
    /// Lowest point of the lower lid edge.
    pub lower: Point,
}

/// One eyebrow, from the temple side to the nose side.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Brow {
    /// End towards the temple.
    pub outer: Point,
    /// Middle of the arch.
    pub mid: Point,
    /// End towards the nose.
    pub inner: Point,
}

/// Landmarks of one portrait.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaceRig {
    /// The eye on the image's left.
    pub left_eye: Eye,
    /// The eye on the image's right.
    pub right_eye: Eye,
    /// The brow on the image's left.
    pub left_brow: Brow,
    /// The brow on the image's right.
    pub right_brow: Brow,
    /// Tip of the nose.
    pub nose_tip: Point,
    /// Mouth corner on the image's left.
    pub mouth_left: Point,
    /// Mouth corner on the image's right.
    pub mouth_right: Point,
    /// Top edge of the upper lip, at the middle.
    pub upper_lip: Point,
    /// Bottom edge of the lower lip, at the middle.
    pub lower_lip: Point,
    /// Bottom of the chin.
    pub chin: Point,
    /// Face outline from the left temple down around the chin to the right temple
    /// (at least 3 points); bounds the region the head turn moves.
    pub face_outline: Vec<Point>,
}

impl Default for FaceRig {
    /// Landmarks of an average EDTalk-aligned 256 px crop.
    fn default() -> Self {
        let eye = |cx: f32, side: f32| Eye {
            outer: Point::new(cx - side * 0.055, 0.435),
            inner: Point::new(cx + side * 0.055, 0.435),
            upper: Point::new(cx, 0.41),
            lower: Point::new(cx, 0.455),
        };
        let brow = |cx: f32, side: f32| Brow {
            outer: Point::new(cx - side * 0.07, 0.37),
            mid: Point::new(cx, 0.35),
            inner: Point::new(cx + side * 0.06, 0.36),
        };
        let face_outline = (0..=8)
            .map(|i| {
                // Half an ellipse from the left temple (angle pi) to the right one (0).
                let a = std::f32::consts::PI * (1.0 - i as f32 / 8.0);
                Point::new(0.5 + 0.27 * a.cos(), 0.5 + 0.36 * a.sin())
            })
            .collect();
        Self {
            left_eye: eye(0.385, 1.0),
            right_eye: eye(0.615, -1.0),
            left_brow: brow(0.385, 1.0),
            right_brow: brow(0.615, -1.0),
            nose_tip: Point::new(0.5, 0.575),
            mouth_left: Point::new(0.425, 0.7),
            mouth_right: Point::new(0.575, 0.7),
            upper_lip: Point::new(0.5, 0.68),
            lower_lip: Point::new(0.5, 0.73),
            chin: Point::new(0.5, 0.86),
            face_outline,
        }
    }
}

/// Errors reading or validating a face rig.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    /// The rig file could not be read.
    #[error("face rig {path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The RON text does not describe a rig (the message carries line and column).
    #[error("face rig {what}: not a valid rig: {source}")]
    Parse {
        /// The file or a description of the text.
        what: String,
        /// RON's error with its position.
        // Boxed: RON's error is large and would bloat every `Result` carrying this enum.
        source: Box<ron::error::SpannedError>,
    },
    /// The rig could not be written as RON.
    #[error("face rig: cannot write RON: {0}")]
    Write(Box<ron::Error>),
    /// A coordinate is NaN or infinite.
    #[error("face rig: landmark `{landmark}` is not a finite number (found x={x}, y={y})")]
    NotFinite {
        /// The landmark's name.
        landmark: String,
        /// Its x.
        x: f32,
        /// Its y.
        y: f32,
    },
    /// A landmark lies far outside the image (more than a quarter image beyond an edge).
    #[error(
        "face rig: landmark `{landmark}` at ({x}, {y}) is outside the image; expected \
         normalised coordinates in 0..1"
    )]
    OutsideImage {
        /// The landmark's name.
        landmark: String,
        /// Its x.
        x: f32,
        /// Its y.
        y: f32,
    },
    /// A feature is too small to animate.
    #[error("face rig: `{feature}` is degenerate: {detail}")]
    Degenerate {
        /// The feature (eye, brow, mouth...).
        feature: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Features are in an order no swap can fix (e.g. the mouth above the eyes).
    #[error("face rig: expected {expected}, found {found}")]
    Order {
        /// The order a face has.
        expected: String,
        /// What the rig has.
        found: String,
    },
    /// Too few outline points.
    #[error("face rig: `face_outline` needs at least 3 points, found {0}")]
    Outline(usize),
}

/// How far outside 0..1 a landmark may sit and still be clamped rather than rejected.
const CLAMP_SLACK: f32 = 0.25;
/// Smallest feature extent accepted (normalised), about 2 px at 256 px.
const MIN_EXTENT: f32 = 0.008;

impl FaceRig {
    /// Parses RON text; `what` names the source in error messages. The rig is validated.
    pub fn from_ron(text: &str, what: &str) -> Result<Self, RigError> {
        let rig: FaceRig =
            ron::Options::default()
                .from_str(text)
                .map_err(|source| RigError::Parse {
                    what: what.to_string(),
                    source: Box::new(source),
                })?;
        Ok(rig.validated()?.0)
    }

    /// Reads and validates a `.rig.ron` file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, RigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| RigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_ron(&text, &path.display().to_string())
    }

    /// The rig as pretty RON text.
    pub fn to_ron(&self) -> Result<String, RigError> {
        let cfg = ron::ser::PrettyConfig::new()
            .depth_limit(2)
            .struct_names(false);
        ron::ser::to_string_pretty(self, cfg).map_err(|e| RigError::Write(Box::new(e)))
    }

    /// Checks the rig and repairs what has an obvious fix: landmarks slightly outside the
    /// image are clamped into it, and pairs given the wrong way round (eyes, brows, corners,
    /// lips, lid apexes) are swapped. Returns the repaired rig and one note per repair;
    /// errors for non-finite values, landmarks far outside, degenerate features and orders
    /// no swap can fix.
    pub fn validated(&self) -> Result<(FaceRig, Vec<String>), RigError> {
        let mut rig = self.clone();
        let mut notes = Vec::new();
        if rig.face_outline.len() < 3 {
            return Err(RigError::Outline(rig.face_outline.len()));
        }
        for (name, p) in rig.landmarks_mut() {
            if !p.x.is_finite() || !p.y.is_finite() {
                return Err(RigError::NotFinite {
                    landmark: name,
                    x: p.x,
                    y: p.y,
                });
            }
            let lo = -CLAMP_SLACK;
            let hi = 1.0 + CLAMP_SLACK;
            if p.x < lo || p.x > hi || p.y < lo || p.y > hi {
                return Err(RigError::OutsideImage {
                    landmark: name,
                    x: p.x,
                    y: p.y,
                });
            }
            let clamped = Point::new(p.x.clamp(0.0, 1.0), p.y.clamp(0.0, 1.0));
            if clamped != *p {
                notes.push(format!(
                    "`{name}` at ({}, {}) clamped into the image",
                    p.x, p.y
                ));
                *p = clamped;
            }
        }

        // Pairs the wrong way round.
        let eye_x = |e: &Eye| (e.outer.x + e.inner.x) * 0.5;
        if eye_x(&rig.left_eye) > eye_x(&rig.right_eye) {
            std::mem::swap(&mut rig.left_eye, &mut rig.right_eye);
            notes.push("`left_eye` and `right_eye` swapped (left was right of right)".into());
        }
        let brow_x = |b: &Brow| b.mid.x;
        if brow_x(&rig.left_brow) > brow_x(&rig.right_brow) {
            std::mem::swap(&mut rig.left_brow, &mut rig.right_brow);
            notes.push("`left_brow` and `right_brow` swapped".into());
        }
        if rig.mouth_left.x > rig.mouth_right.x {
            std::mem::swap(&mut rig.mouth_left, &mut rig.mouth_right);
            notes.push("`mouth_left` and `mouth_right` swapped".into());
        }
        if rig.upper_lip.y > rig.lower_lip.y {
            std::mem::swap(&mut rig.upper_lip, &mut rig.lower_lip);
            notes.push("`upper_lip` and `lower_lip` swapped".into());
        }
        // On the image's left the outer corner has the smaller x; on the right the larger.
        for (name, eye, outer_is_left) in [
            ("left_eye", &mut rig.left_eye, true),
            ("right_eye", &mut rig.right_eye, false),
        ] {
            if (eye.outer.x < eye.inner.x) != outer_is_left {
                std::mem::swap(&mut eye.outer, &mut eye.inner);
                notes.push(format!("`{name}.outer` and `{name}.inner` swapped"));
            }
            if eye.upper.y > eye.lower.y {
                std::mem::swap(&mut eye.upper, &mut eye.lower);
                notes.push(format!("`{name}.upper` and `{name}.lower` swapped"));
            }
        }
        for (name, brow, outer_is_left) in [
            ("left_brow", &mut rig.left_brow, true),
            ("right_brow", &mut rig.right_brow, false),
        ] {
            if (brow.outer.x < brow.inner.x) != outer_is_left {
                std::mem::swap(&mut brow.outer, &mut brow.inner);
                notes.push(format!("`{name}.outer` and `{name}.inner` swapped"));
            }
        }

        // Sizes.
        for (name, eye) in [("left_eye", &rig.left_eye), ("right_eye", &rig.right_eye)] {
            let w = (eye.outer.x - eye.inner.x).abs();
            let h = eye.lower.y - eye.upper.y;
            if w < MIN_EXTENT || h < MIN_EXTENT {
                return Err(RigError::Degenerate {
                    feature: name.into(),
                    detail: format!(
                        "expected width and height of at least {MIN_EXTENT}, found {w:.4} x {h:.4}"
                    ),
                });
            }
        }
        let mw = rig.mouth_right.x - rig.mouth_left.x;
        let mh = rig.lower_lip.y - rig.upper_lip.y;
        if mw < MIN_EXTENT * 2.0 || mh < MIN_EXTENT {
            return Err(RigError::Degenerate {
                feature: "mouth".into(),
                detail: format!(
                    "expected width of at least {} and height of at least {MIN_EXTENT}, found {mw:.4} x {mh:.4}",
                    MIN_EXTENT * 2.0
                ),
            });
        }

        // Vertical order of the features: brows, eyes, nose, mouth, chin.
        let eyes_y = (rig.left_eye.upper.y + rig.right_eye.upper.y) * 0.5;
        let eyes_low = rig.left_eye.lower.y.max(rig.right_eye.lower.y);
        let brows_y = (rig.left_brow.mid.y + rig.right_brow.mid.y) * 0.5;
        let mouth_y = (rig.mouth_left.y + rig.mouth_right.y) * 0.5;
        let checks = [
            (
                "brows above the eyes",
                brows_y < eyes_y,
                "brows",
                brows_y,
                "eyes",
                eyes_y,
            ),
            (
                "eyes above the nose tip",
                eyes_low < rig.nose_tip.y,
                "eyes",
                eyes_low,
                "nose_tip",
                rig.nose_tip.y,
            ),
            (
                "nose tip above the upper lip",
                rig.nose_tip.y < rig.upper_lip.y,
                "nose_tip",
                rig.nose_tip.y,
                "upper_lip",
                rig.upper_lip.y,
            ),
            (
                "mouth corners between the lips' top and bottom edges",
                mouth_y > rig.upper_lip.y - mh && mouth_y < rig.lower_lip.y + mh,
                "mouth corners",
                mouth_y,
                "upper_lip",
                rig.upper_lip.y,
            ),
            (
                "chin below the lower lip",
                rig.chin.y > rig.lower_lip.y,
                "chin",
                rig.chin.y,
                "lower_lip",
                rig.lower_lip.y,
            ),
        ];
        for (expected, ok, a, ay, b, by) in checks {
            if !ok {
                return Err(RigError::Order {
                    expected: expected.into(),
                    found: format!("{a} at y={ay:.3} and {b} at y={by:.3}"),
                });
            }
        }
        Ok((rig, notes))
    }

    /// Every landmark with its key path (e.g. `left_eye.outer`), mutably.
    fn landmarks_mut(&mut self) -> Vec<(String, &mut Point)> {
        let mut out: Vec<(String, &mut Point)> = Vec::new();
        for (name, eye) in [
            ("left_eye", &mut self.left_eye),
            ("right_eye", &mut self.right_eye),
        ] {
            out.push((format!("{name}.outer"), &mut eye.outer));
            out.push((format!("{name}.inner"), &mut eye.inner));
            out.push((format!("{name}.upper"), &mut eye.upper));
            out.push((format!("{name}.lower"), &mut eye.lower));
        }
        for (name, brow) in [
            ("left_brow", &mut self.left_brow),
            ("right_brow", &mut self.right_brow),
        ] {
            out.push((format!("{name}.outer"), &mut brow.outer));
            out.push((format!("{name}.mid"), &mut brow.mid));
            out.push((format!("{name}.inner"), &mut brow.inner));
        }
        out.push(("nose_tip".into(), &mut self.nose_tip));
        out.push(("mouth_left".into(), &mut self.mouth_left));
        out.push(("mouth_right".into(), &mut self.mouth_right));
        out.push(("upper_lip".into(), &mut self.upper_lip));
        out.push(("lower_lip".into(), &mut self.lower_lip));
        out.push(("chin".into(), &mut self.chin));
        for (i, p) in self.face_outline.iter_mut().enumerate() {
            out.push((format!("face_outline[{i}]"), p));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rig_is_valid_and_round_trips() {
        let rig = FaceRig::default();
        let (fixed, notes) = rig.validated().unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(fixed, rig);
        let text = rig.to_ron().unwrap();
        assert_eq!(FaceRig::from_ron(&text, "test").unwrap(), rig);
    }
}
