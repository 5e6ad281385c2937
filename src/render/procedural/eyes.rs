//! Eyelids: skin painted down over the eye for blinks and closed eyes, and up from below
//! for a squint, in colours sampled from the portrait around each eye.

use super::controls::Controls;
use super::geometry::{EyePx, FaceGeometry, P2};
use super::mouth::{mix, smooth};
use super::warp::WarpGrid;

/// Colours of one eye's surroundings, sampled once per identity.
#[derive(Clone, Copy, Debug)]
pub struct LidColors {
    /// Skin of the upper lid.
    pub lid: [f32; 3],
    /// Skin below the eye.
    pub under: [f32; 3],
    /// Lash line.
    pub lash: [f32; 3],
}

fn luma(c: [f32; 3]) -> f32 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

fn rgb(p: u32) -> [f32; 3] {
    let b = p.to_le_bytes();
    [b[0] as f32, b[1] as f32, b[2] as f32]
}

impl LidColors {
    /// Samples the portrait (packed by `pad_source`, `size` px square) around `eye`, below
    /// `brow_y`.
    pub fn sample(pixels: &[u32], size: usize, eye: &EyePx, brow_y: f32) -> Self {
        let at = |x: f32, y: f32| {
            let xi = (x.round().max(0.0) as usize).min(size - 1);
            let yi = (y.round().max(0.0) as usize).min(size - 1);
            rgb(pixels[yi * (size + 1) + xi])
        };
        let c = eye.center();
        let hw = eye.half_width();
        let gap = (eye.upper.y - brow_y).max(3.0);
        // The median by brightness, so a crease, lash or glasses rim in the band does not
        // tint the lid.
        let median = |y0: f32, y1: f32| {
            let mut samples = [[0.0f32; 3]; 28];
            for j in 0..4 {
                for i in 0..7 {
                    let x = c.x + hw * (-0.45 + 0.15 * i as f32);
                    let y = y0 + (y1 - y0) * j as f32 / 3.0;
                    samples[j * 7 + i] = at(x, y);
                }
            }
            samples.sort_by(|a, b| luma(*a).total_cmp(&luma(*b)));
            samples[samples.len() / 2]
        };
        let lid = median(eye.upper.y - 0.55 * gap, eye.upper.y - 0.3 * gap);
        let h = eye.height();
        let under = median(eye.lower.y + 0.35 * h, eye.lower.y + 0.7 * h);
        let mut lash = lid;
        for j in 0..6 {
            for i in 0..9 {
                let p = at(
                    c.x + hw * (-0.6 + 0.15 * i as f32),
                    eye.upper.y - 2.0 + j as f32,
                );
                if luma(p) < luma(lash) {
                    lash = p;
                }
            }
        }
        if luma(lash) > 0.6 * luma(lid) {
            lash = lid.map(|v| v * 0.3);
        }
        Self { lid, under, lash }
    }
}

/// The eye's outline in the frame: corners left and right, upper and lower apex.
struct Outline {
    a: P2,
    b: P2,
    up: P2,
    lo: P2,
}

impl Outline {
    fn curve(&self, apex: P2, x: f32) -> f32 {
        let (a, b) = (self.a, self.b);
        if x < apex.x {
            let t = ((x - a.x) / (apex.x - a.x).max(0.5)).clamp(0.0, 1.0);
            a.y + (apex.y - a.y) * (1.0 - (1.0 - t) * (1.0 - t))
        } else {
            let t = ((b.x - x) / (b.x - apex.x).max(0.5)).clamp(0.0, 1.0);
            b.y + (apex.y - b.y) * (1.0 - (1.0 - t) * (1.0 - t))
        }
    }
}

/// Paints both eyes' lids for this frame's openness and squint.
pub fn paint(
    out: &mut [u8],
    size: usize,
    geom: &FaceGeometry,
    grid: &WarpGrid,
    c: &Controls,
    colors: &[LidColors; 2],
) {
    let closure = c.lid_closure();
    let squint = c.squint * 0.35;
    if closure <= 0.0 && squint <= 0.0 {
        return;
    }
    for (eye, col) in geom.eyes.iter().zip(colors) {
        let (o, n) = (grid.forward(eye.outer), grid.forward(eye.inner));
        let (a, b) = if o.x < n.x { (o, n) } else { (n, o) };
        let ol = Outline {
            a,
            b,
            up: grid.forward(eye.upper),
            lo: grid.forward(eye.lower),
        };
        let x0 = (a.x - 1.0).floor().max(0.0) as usize;
        let x1 = ((b.x + 1.0).ceil() as usize).min(size - 1);
        for x in x0..=x1 {
            let xc = x as f32 + 0.5;
            // Fades the lid out over the last pixel beyond each corner.
            let end = smooth(a.x - 1.0, a.x + 0.5, xc) * (1.0 - smooth(b.x - 0.5, b.x + 1.0, xc));
            if end <= 0.0 {
                continue;
            }
            let top = ol.curve(ol.up, xc);
            let bot = ol.curve(ol.lo, xc);
            let open_h = (bot - top).max(0.0);
            // Lower lid first, so a closing upper lid covers it.
            if squint > 0.0 {
                let edge = bot - squint * open_h;
                fill_span(out, size, x, edge, bot + 1.0, end, |t| {
                    mix(col.under, col.lash, 0.25 * (1.0 - smooth(0.0, 0.5, t)))
                });
            }
            if closure > 0.0 {
                let lid_edge = top + closure * open_h;
                let start = top - 2.5;
                fill_span(out, size, x, start, lid_edge, end, |t| {
                    // A little darker towards the edge, where the lid folds.
                    mix(col.lid, col.lash, 0.18 * smooth(0.5, 1.0, t))
                });
                let th = 0.8 + 0.9 * closure;
                fill_span(
                    out,
                    size,
                    x,
                    lid_edge - th * 0.6,
                    lid_edge + th * 0.4,
                    end,
                    |_| col.lash,
                );
            }
        }
    }
}

/// Blends `color(t)` over column `x` from `y0` to `y1` (t runs 0..1 along the span), with
/// anti-aliased ends and an overall `alpha`.
fn fill_span(
    out: &mut [u8],
    size: usize,
    x: usize,
    y0: f32,
    y1: f32,
    alpha: f32,
    color: impl Fn(f32) -> [f32; 3],
) {
    if y1 <= y0 {
        return;
    }
    let ya = y0.floor().max(0.0) as usize;
    let yb = (y1.ceil() as usize).min(size);
    for y in ya..yb {
        let (yt, ybt) = (y as f32, y as f32 + 1.0);
        let cover = (ybt.min(y1) - yt.max(y0)).clamp(0.0, 1.0) * alpha;
        if cover <= 0.0 {
            continue;
        }
        let t = ((y as f32 + 0.5 - y0) / (y1 - y0)).clamp(0.0, 1.0);
        let c = color(t);
        let k = (y * size + x) * 4;
        for ch in 0..3 {
            let o = out[k + ch] as f32;
            out[k + ch] = (o + (c[ch] - o) * cover).round().clamp(0.0, 255.0) as u8;
        }
    }
}
