//! The inside of the mouth: painted over the gap the warp opens between the lips.

use super::controls::Controls;
use super::geometry::{FaceGeometry, P2};
use super::warp::WarpGrid;

/// Samples along the seam; the gap's outline is a polyline through their images.
const SAMPLES: usize = 24;

const DEEP: [f32; 3] = [34.0, 9.0, 13.0];
const RIM: [f32; 3] = [96.0, 30.0, 36.0];
const TONGUE: [f32; 3] = [158.0, 64.0, 70.0];
const TEETH: [f32; 3] = [238.0, 234.0, 224.0];

/// Per frame scratch for the gap outline (kept by the renderer so frames don't allocate).
#[derive(Clone, Debug, Default)]
pub struct MouthScratch {
    xs: Vec<f32>,
    tops: Vec<f32>,
    bots: Vec<f32>,
}

/// Paints the cavity (dark, redder at the sides), a band of upper teeth and a hint of tongue
/// between the warped lips. Does nothing while the lips are closed.
pub fn paint(
    out: &mut [u8],
    size: usize,
    geom: &FaceGeometry,
    grid: &WarpGrid,
    c: &Controls,
    scratch: &mut MouthScratch,
) {
    let opening =
        c.jaw * (geom.jaw_drop() + geom.upper_lift()) + c.lip_round * 2.0 * geom.round_push();
    if opening < 0.5 {
        return;
    }
    let (l, r) = (geom.mouth_left, geom.mouth_right);
    let MouthScratch { xs, tops, bots } = scratch;
    xs.clear();
    tops.clear();
    bots.clear();
    // Before the smooth motion, a column's rows just above the seam show lower-lip content
    // from `seam + up` down, and rows below it upper-lip content down to `seam + down`
    // (the warp samples each pixel at itself minus the displacement): that band is the gap.
    // The smooth fields then carry the band along with the lips.
    for i in 0..=SAMPLES {
        let x = l.x + (r.x - l.x) * i as f32 / SAMPLES as f32;
        let seam = geom.seam_y(x);
        let up = grid.split_at(P2::new(x, seam - 1.5)).y;
        let down = grid.split_at(P2::new(x, seam + 1.5)).y;
        let top = grid.forward_smooth(P2::new(x, seam + up));
        let bot = grid.forward_smooth(P2::new(x, seam + down.max(up)));
        xs.push((top.x + bot.x) * 0.5);
        tops.push(top.y);
        bots.push(bot.y.max(top.y));
    }
    let x_min = xs.iter().copied().fold(f32::MAX, f32::min).floor().max(0.0) as usize;
    let x_max = (xs.iter().copied().fold(f32::MIN, f32::max).ceil() as usize).min(size - 1);
    let cx = (xs[0] + xs[SAMPLES]) * 0.5;
    let half = ((xs[SAMPLES] - xs[0]) * 0.5).max(1.0);
    let tooth_max = 0.035 * geom.size;
    let mut seg = 0;
    for x in x_min..=x_max {
        let xc = x as f32 + 0.5;
        while seg + 1 < SAMPLES && xs[seg + 1] < xc {
            seg += 1;
        }
        let span = xs[seg + 1] - xs[seg];
        if xc < xs[seg] || xc > xs[seg + 1] || span <= 0.0 {
            continue;
        }
        let t = (xc - xs[seg]) / span;
        let top = tops[seg] + (tops[seg + 1] - tops[seg]) * t;
        let bot = bots[seg] + (bots[seg + 1] - bots[seg]) * t;
        let h = bot - top;
        if h < 0.2 {
            continue;
        }
        let u = ((xc - cx) / half).clamp(-1.0, 1.0);
        let side = u * u;
        let teeth_h = (0.3 * h).min(tooth_max) * (1.0 - smooth(0.55, 0.85, u.abs()));
        let y0 = top.floor().max(0.0) as usize;
        let y1 = (bot.ceil() as usize).min(size - 1);
        for y in y0..=y1 {
            let (yt, yb) = (y as f32, y as f32 + 1.0);
            let cover = (yb.min(bot) - yt.max(top)).clamp(0.0, 1.0);
            if cover <= 0.0 {
                continue;
            }
            let v = ((y as f32 + 0.5 - top) / h).clamp(0.0, 1.0);
            let mut col = mix(DEEP, RIM, side * 0.8 + 0.2 * (1.0 - v) * side);
            let tongue = smooth(0.55, 0.85, v) * (1.0 - side) * smooth(4.0, 10.0, h);
            col = mix(col, TONGUE, tongue * 0.8);
            // Upper teeth hang from the top edge; their lower edge is anti-aliased.
            let tcov = (top + teeth_h - yt).clamp(0.0, 1.0);
            if tcov > 0.0 {
                let shade = 1.0 - 0.3 * side - 0.12 * ((yt - top) / teeth_h.max(1.0));
                col = mix(col, TEETH.map(|c| c * shade), tcov);
            }
            let k = (y * size + x) * 4;
            for ch in 0..3 {
                let o = out[k + ch] as f32;
                out[k + ch] = (o + (col[ch] - o) * cover).round().clamp(0.0, 255.0) as u8;
            }
            out[k + 3] = (out[k + 3] as f32 + (255.0 - out[k + 3] as f32) * cover) as u8;
        }
    }
}

pub(super) fn smooth(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

pub(super) fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}
