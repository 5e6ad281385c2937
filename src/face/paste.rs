//! Pasting an animated face crop back into the full portrait.

use super::align::{CROP_SIZE, SimilarityTransform};
use super::{pixels, portrait};
use crate::render::Portrait;

/// Centre of the blended face ellipse, as a share of the crop (faces in EDTalk crops sit
/// slightly below the middle: forehead above, chin near the bottom).
const ELLIPSE_CENTRE: [f32; 2] = [0.5, 0.53];
/// Semi-axes of the ellipse as a share of the crop: cheek to cheek, hairline to chin.
const ELLIPSE_RADII: [f32; 2] = [0.37, 0.44];
/// Width of the soft edge inside the ellipse, as a share of the crop.
const FEATHER: f32 = 0.12;
/// The mask also fades out over this many crop pixels before the crop's border.
const BORDER_FADE: f32 = 3.0;

/// The original portrait with `crop` (the animated face, any square size standing for
/// EDTalk's 256 px crop) warped back into it. `transform` maps source pixels to 256-crop
/// pixels, as [`AlignedPortrait::transform`](super::AlignedPortrait::transform).
///
/// Crop pixels are sampled bilinearly and blended through a feathered ellipse around the
/// face (soft edge about 12% of the crop wide, nothing taken outside the crop), so hair and
/// background come from the original. Only the face's bounding box is touched; a transform
/// that cannot be inverted leaves the original unchanged.
pub fn paste_back(
    original: &Portrait,
    crop: &Portrait,
    transform: &SimilarityTransform,
) -> Portrait {
    let (w, h, src) = pixels(original);
    let (cw, ch, crop_px) = pixels(crop);
    let mut out = src.to_vec();
    let Some(inv) = transform.invert() else {
        return portrait(w, h, out);
    };
    let full = CROP_SIZE as f32;
    let (cx, cy) = (ELLIPSE_CENTRE[0] * full, ELLIPSE_CENTRE[1] * full);
    let (rx, ry) = (ELLIPSE_RADII[0] * full, ELLIPSE_RADII[1] * full);
    let feather = FEATHER * full;
    let mean_radius = 0.5 * (rx + ry);

    // The ellipse's box in the crop, mapped back: the only source pixels to visit.
    let corners = [
        [cx - rx, cy - ry],
        [cx + rx, cy - ry],
        [cx - rx, cy + ry],
        [cx + rx, cy + ry],
    ]
    .map(|p| inv.apply(p));
    let lo = |i: usize| corners.iter().map(|p| p[i]).fold(f32::INFINITY, f32::min);
    let hi = |i: usize| {
        corners
            .iter()
            .map(|p| p[i])
            .fold(f32::NEG_INFINITY, f32::max)
    };
    let x0 = lo(0).floor().max(0.0) as usize;
    let y0 = lo(1).floor().max(0.0) as usize;
    let x1 = (hi(0).ceil() + 1.0).clamp(0.0, w as f32) as usize;
    let y1 = (hi(1).ceil() + 1.0).clamp(0.0, h as f32) as usize;

    // 256-crop pixel -> crop-image pixel (centres aligned).
    let (sx, sy) = (cw as f32 / full, ch as f32 / full);
    let (cw, ch) = (cw as i64, ch as i64);
    let crop_tap = |x: i64, y: i64, k: usize| {
        let i = ((y.clamp(0, ch - 1) * cw + x.clamp(0, cw - 1)) * 4) as usize + k;
        crop_px[i] as f32
    };
    for y in y0..y1 {
        for x in x0..x1 {
            let [u, v] = transform.apply([x as f32, y as f32]);
            let (dx, dy) = ((u - cx) / rx, (v - cy) / ry);
            let r = (dx * dx + dy * dy).sqrt();
            let inside = (1.0 - r) * mean_radius / feather;
            let edge = u.min(v).min(full - 1.0 - u).min(full - 1.0 - v) / BORDER_FADE;
            let m = smoothstep(inside) * edge.clamp(0.0, 1.0);
            if m <= 0.0 {
                continue;
            }
            let (qx, qy) = ((u + 0.5) * sx - 0.5, (v + 0.5) * sy - 0.5);
            let (fx0, fy0) = (qx.floor(), qy.floor());
            let (fx, fy) = (qx - fx0, qy - fy0);
            let (ix, iy) = (fx0 as i64, fy0 as i64);
            let o = (y * w as usize + x) * 4;
            for k in 0..4 {
                let top = crop_tap(ix, iy, k) * (1.0 - fx) + crop_tap(ix + 1, iy, k) * fx;
                let bottom =
                    crop_tap(ix, iy + 1, k) * (1.0 - fx) + crop_tap(ix + 1, iy + 1, k) * fx;
                let c = top * (1.0 - fy) + bottom * fy;
                let blended = out[o + k] as f32 * (1.0 - m) + c * m;
                out[o + k] = blended.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    portrait(w, h, out)
}

/// `3t^2 - 2t^3` on `t` clamped to 0..1.
fn smoothstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paste_changes_the_face_and_leaves_the_rest() {
        let original = portrait(64, 64, vec![10; 64 * 64 * 4]);
        let crop = portrait(32, 32, vec![200; 32 * 32 * 4]);
        // The 256 crop covers the 64 px image four times over: source px * 4.
        let t = SimilarityTransform {
            a: 4.0,
            ..SimilarityTransform::IDENTITY
        };
        let out = paste_back(&original, &crop, &t);
        let (_, _, px) = pixels(&out);
        let at = |x: usize, y: usize| px[(y * 64 + x) * 4];
        assert_eq!(at(32, 34), 200, "face centre comes from the crop");
        assert_eq!(at(1, 1), 10, "corners stay");
        let edge = at(32, 34 + 23);
        assert!(edge > 10 && edge < 200, "feathered edge, found {edge}");
    }
}
