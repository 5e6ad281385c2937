//! Fitting the face rig to five detected landmarks.

use super::rig::{FaceRig, Point};
use crate::face::SimilarityTransform;

impl FaceRig {
    /// A rig for a portrait whose five landmarks (left eye centre, right eye centre, nose
    /// tip, left and right mouth corner; image sides) are given in normalised coordinates
    /// of the square portrait (0..1).
    ///
    /// The default rig is moved with the similarity that best maps its own five points onto
    /// the given ones, then the eyes are centred on the eye landmarks, the nose tip and mouth
    /// corners placed on theirs and the lips moved with the mouth. The result always passes
    /// [`FaceRig::validated`] (landmarks are clamped into the image); points that no rig can
    /// follow (non-finite, mouth above the eyes...) give the plain similarity fit, or the
    /// default rig when even that is unusable.
    pub fn fit_landmarks(five: &[[f32; 2]; 5]) -> FaceRig {
        let base = FaceRig::default();
        let own = five_points(&base);
        let Ok(t) = SimilarityTransform::estimate(&own, five) else {
            return base;
        };
        let moved = map_rig(&base, |p| t.apply(p));
        let mut fitted = moved.clone();
        // Each eye centred exactly on its landmark.
        for (eye, target) in [
            (&mut fitted.left_eye, five[0]),
            (&mut fitted.right_eye, five[1]),
        ] {
            let c = [
                (eye.outer.x + eye.inner.x) * 0.5,
                (eye.outer.y + eye.inner.y) * 0.5,
            ];
            let d = [target[0] - c[0], target[1] - c[1]];
            for p in [
                &mut eye.outer,
                &mut eye.inner,
                &mut eye.upper,
                &mut eye.lower,
            ] {
                *p = Point::new(p.x + d[0], p.y + d[1]);
            }
        }
        fitted.nose_tip = point(five[2]);
        // The lips follow the mouth centre; the corners sit on the landmarks.
        let old_mid = mid(moved.mouth_left, moved.mouth_right);
        fitted.mouth_left = point(five[3]);
        fitted.mouth_right = point(five[4]);
        let new_mid = mid(fitted.mouth_left, fitted.mouth_right);
        let d = [new_mid.x - old_mid.x, new_mid.y - old_mid.y];
        for p in [&mut fitted.upper_lip, &mut fitted.lower_lip] {
            *p = Point::new(p.x + d[0], p.y + d[1]);
        }
        [fitted, moved]
            .into_iter()
            .find_map(|r| clamp_into_image(r).validated().ok().map(|(r, _)| r))
            .unwrap_or(base)
    }
}

/// The rig's own five points, in the order of [`FaceRig::fit_landmarks`].
fn five_points(r: &FaceRig) -> [[f32; 2]; 5] {
    let eye = |e: &super::rig::Eye| [(e.outer.x + e.inner.x) * 0.5, (e.outer.y + e.inner.y) * 0.5];
    [
        eye(&r.left_eye),
        eye(&r.right_eye),
        [r.nose_tip.x, r.nose_tip.y],
        [r.mouth_left.x, r.mouth_left.y],
        [r.mouth_right.x, r.mouth_right.y],
    ]
}

fn point(p: [f32; 2]) -> Point {
    Point::new(p[0], p[1])
}

fn mid(a: Point, b: Point) -> Point {
    Point::new((a.x + b.x) * 0.5, (a.y + b.y) * 0.5)
}

/// Every landmark of `r` mapped by `f`.
fn map_rig(r: &FaceRig, f: impl Fn([f32; 2]) -> [f32; 2]) -> FaceRig {
    let m = |p: Point| point(f([p.x, p.y]));
    let mut out = r.clone();
    for e in [&mut out.left_eye, &mut out.right_eye] {
        e.outer = m(e.outer);
        e.inner = m(e.inner);
        e.upper = m(e.upper);
        e.lower = m(e.lower);
    }
    for b in [&mut out.left_brow, &mut out.right_brow] {
        b.outer = m(b.outer);
        b.mid = m(b.mid);
        b.inner = m(b.inner);
    }
    for p in [
        &mut out.nose_tip,
        &mut out.mouth_left,
        &mut out.mouth_right,
        &mut out.upper_lip,
        &mut out.lower_lip,
        &mut out.chin,
    ] {
        *p = m(*p);
    }
    for p in &mut out.face_outline {
        *p = m(*p);
    }
    out
}

/// The rig with every finite landmark clamped into 0..1 (validation rejects points far
/// outside; a face near the portrait's edge may push its outline or chin out).
fn clamp_into_image(r: FaceRig) -> FaceRig {
    map_rig(&r, |p| {
        if p[0].is_finite() && p[1].is_finite() {
            [p[0].clamp(0.0, 1.0), p[1].clamp(0.0, 1.0)]
        } else {
            p
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_points_give_back_the_default_rig() {
        let base = FaceRig::default();
        let fitted = FaceRig::fit_landmarks(&five_points(&base));
        let a = five_points(&fitted);
        for (p, q) in a.iter().zip(five_points(&base)) {
            assert!((p[0] - q[0]).abs() < 1e-5 && (p[1] - q[1]).abs() < 1e-5);
        }
    }

    #[test]
    fn shifted_face_moves_the_rig_and_bad_points_fall_back() {
        let mut five = five_points(&FaceRig::default());
        five.iter_mut().for_each(|p| p[0] += 0.2);
        let fitted = FaceRig::fit_landmarks(&five);
        assert!((fitted.upper_lip.x - 0.7).abs() < 1e-4);
        assert!(fitted.validated().is_ok());
        let nan = [[f32::NAN, 0.0]; 5];
        assert_eq!(FaceRig::fit_landmarks(&nan), FaceRig::default());
    }
}
