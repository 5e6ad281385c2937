//! Draws the bundled cast: stylised 256 px character portraits, each with the face rig that
//! matches where its features were drawn.
//!
//! `cargo run --no-default-features --example generate_cast [out_dir]` writes
//! `<out_dir>/<name>.png` and `<out_dir>/<name>.rig.ron` (default `assets/portraits`).
//!
//! Shapes are signed distance functions in pixels, filled with analytic anti-aliasing
//! (coverage from the distance) and soft shading, so the art scales cleanly and the
//! generator knows every landmark exactly.

use bevy_edtalk::render::rig::{Brow, Eye, FaceRig, Point};
use std::path::PathBuf;

const S: usize = 256;
type Rgb = [f32; 3];
/// A point in pixels.
type Pt = (f32, f32);

// ---------------------------------------------------------------------------------------
// Small maths

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn scale(a: Rgb, k: f32) -> Rgb {
    a.map(|v| v * k)
}

fn hex(v: u32) -> Rgb {
    [
        ((v >> 16) & 0xff) as f32 / 255.0,
        ((v >> 8) & 0xff) as f32 / 255.0,
        (v & 0xff) as f32 / 255.0,
    ]
}

/// Deterministic hash noise in 0..1 for grain.
fn hash(x: i32, y: i32, seed: u32) -> f32 {
    let mut h = (x as u32).wrapping_mul(374_761_393)
        ^ (y as u32).wrapping_mul(668_265_263)
        ^ seed.wrapping_mul(2_246_822_519);
    h = (h ^ (h >> 13)).wrapping_mul(1_274_126_177);
    ((h ^ (h >> 16)) & 0xffff) as f32 / 65535.0
}

fn len(x: f32, y: f32) -> f32 {
    (x * x + y * y).sqrt()
}

/// Signed distance to an ellipse (approximate; exact enough for a 1 px edge).
fn sd_ellipse(x: f32, y: f32, cx: f32, cy: f32, rx: f32, ry: f32) -> f32 {
    let (u, v) = ((x - cx) / rx, (y - cy) / ry);
    let k = len(u, v);
    let g = len(u / rx, v / ry).max(1e-6);
    (k - 1.0) * k / g
}

fn sd_circle(x: f32, y: f32, cx: f32, cy: f32, r: f32) -> f32 {
    len(x - cx, y - cy) - r
}

/// Distance to segment ab.
fn seg(x: f32, y: f32, a: (f32, f32), b: (f32, f32)) -> (f32, f32) {
    let (px, py) = (x - a.0, y - a.1);
    let (bx, by) = (b.0 - a.0, b.1 - a.1);
    let h = ((px * bx + py * by) / (bx * bx + by * by).max(1e-6)).clamp(0.0, 1.0);
    (len(px - bx * h, py - by * h), h)
}

/// Signed distance to a closed polygon.
fn sd_polygon(x: f32, y: f32, pts: &[(f32, f32)]) -> f32 {
    let mut d = f32::MAX;
    let mut inside = false;
    let n = pts.len();
    for i in 0..n {
        let a = pts[i];
        let b = pts[(i + n - 1) % n];
        d = d.min(seg(x, y, a, b).0);
        if (a.1 > y) != (b.1 > y) && x < (b.0 - a.0) * (y - a.1) / (b.1 - a.1) + a.0 {
            inside = !inside;
        }
    }
    if inside { -d } else { d }
}

fn quad(a: (f32, f32), c: (f32, f32), b: (f32, f32), t: f32) -> (f32, f32) {
    let u = 1.0 - t;
    (
        u * u * a.0 + 2.0 * u * t * c.0 + t * t * b.0,
        u * u * a.1 + 2.0 * u * t * c.1 + t * t * b.1,
    )
}

/// Distance to a tapered stroke along a quadratic Bezier from `a` (width `wa`) via control
/// `c` to `b` (width `wb`).
fn sd_stroke(x: f32, y: f32, a: (f32, f32), c: (f32, f32), b: (f32, f32), wa: f32, wb: f32) -> f32 {
    const N: usize = 16;
    let mut best = f32::MAX;
    let mut prev = a;
    for i in 1..=N {
        let t1 = i as f32 / N as f32;
        let p = quad(a, c, b, t1);
        let (d, h) = seg(x, y, prev, p);
        let t = (i as f32 - 1.0 + h) / N as f32;
        let w = wa + (wb - wa) * t;
        best = best.min(d - w * 0.5);
        prev = p;
    }
    best
}

/// Point on the arc of the circle through `l`, `apex` and `r` (apex midway in x).
fn arc_circle(l: (f32, f32), apex: (f32, f32)) -> (f32, f32, f32) {
    let w = (apex.0 - l.0).abs();
    let h = (apex.1 - l.1).abs().max(0.5);
    let r = (w * w + h * h) / (2.0 * h);
    let cy = if apex.1 < l.1 { apex.1 + r } else { apex.1 - r };
    (apex.0, cy, r)
}

// ---------------------------------------------------------------------------------------
// Canvas

struct Canvas {
    px: Vec<Rgb>,
}

impl Canvas {
    fn new() -> Self {
        Self {
            px: vec![[0.0; 3]; S * S],
        }
    }

    /// Fills a shape: `sdf` in pixels (negative inside), `color(x, y, d)`, edge softness in
    /// pixels (0.5 is a crisp anti-aliased edge), overall opacity. Only the box is visited.
    fn fill(
        &mut self,
        bbox: (f32, f32, f32, f32),
        sdf: impl Fn(f32, f32) -> f32,
        color: impl Fn(f32, f32, f32) -> Rgb,
        soft: f32,
        opacity: f32,
    ) {
        let x0 = (bbox.0 - soft - 1.0).floor().max(0.0) as usize;
        let y0 = (bbox.1 - soft - 1.0).floor().max(0.0) as usize;
        let x1 = ((bbox.2 + soft + 1.0).ceil() as usize).min(S - 1);
        let y1 = ((bbox.3 + soft + 1.0).ceil() as usize).min(S - 1);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
                let d = sdf(fx, fy);
                let cov = if soft <= 0.5 {
                    (0.5 - d).clamp(0.0, 1.0)
                } else {
                    smoothstep(soft, -soft, d)
                } * opacity;
                if cov <= 0.0 {
                    continue;
                }
                let c = color(fx, fy, d);
                let p = &mut self.px[y * S + x];
                *p = mix(*p, c, cov);
            }
        }
    }

    fn save(&self, path: &std::path::Path, seed: u32) -> Result<(), image::ImageError> {
        let mut img = image::RgbaImage::new(S as u32, S as u32);
        for (i, p) in self.px.iter().enumerate() {
            let (x, y) = ((i % S) as i32, (i / S) as i32);
            // A little dither so gradients do not band.
            let n = (hash(x, y, seed) - 0.5) / 255.0 * 1.5;
            let c = p.map(|v| ((v + n).clamp(0.0, 1.0) * 255.0).round() as u8);
            img.put_pixel(x as u32, y as u32, image::Rgba([c[0], c[1], c[2], 255]));
        }
        img.save(path)
    }
}

const FULL: (f32, f32, f32, f32) = (0.0, 0.0, S as f32, S as f32);

// ---------------------------------------------------------------------------------------
// Characters

#[derive(Clone, Copy)]
enum Hair {
    /// Long, wavy, parted on one side.
    LongWavy,
    /// Short tight curls.
    Curls,
    /// Chin-length bob with a straight fringe.
    Bob,
    /// Short spikes swept up.
    Spikes,
    /// Grey, short at the sides, receding.
    Receding,
}

#[derive(Clone, Copy)]
enum Collar {
    Turtleneck,
    Shirt,
    RoundNeck,
    HighJacket,
    Hoodie,
}

struct Character {
    name: &'static str,
    skin: Rgb,
    hair: Rgb,
    hair_style: Hair,
    iris: Rgb,
    lips: Rgb,
    cloth: Rgb,
    cloth2: Rgb,
    collar: Collar,
    bg_top: Rgb,
    bg_bottom: Rgb,
    face_rx: f32,
    eye_dx: f32,
    eye_w: f32,
    eye_h: f32,
    mouth_w: f32,
    brow_w: f32,
    lashes_wing: bool,
    freckles: bool,
    glasses: bool,
    seed: u32,
}

fn cast() -> Vec<Character> {
    vec![
        Character {
            name: "ada",
            skin: hex(0xf2c9ae),
            hair: hex(0x9a3b1f),
            hair_style: Hair::LongWavy,
            iris: hex(0x3f8a5a),
            lips: hex(0xc8646a),
            cloth: hex(0x1f7a80),
            cloth2: hex(0x176066),
            collar: Collar::Turtleneck,
            bg_top: hex(0x9db4d6),
            bg_bottom: hex(0x4f6690),
            face_rx: 60.0,
            eye_dx: 28.0,
            eye_w: 13.5,
            eye_h: 6.5,
            mouth_w: 19.0,
            brow_w: 3.2,
            lashes_wing: true,
            freckles: true,
            glasses: false,
            seed: 1,
        },
        Character {
            name: "bram",
            skin: hex(0x7a4a32),
            hair: hex(0x1d1715),
            hair_style: Hair::Curls,
            iris: hex(0x5a3418),
            lips: hex(0x7e4238),
            cloth: hex(0xd9a637),
            cloth2: hex(0xf1ece0),
            collar: Collar::Shirt,
            bg_top: hex(0xaac09c),
            bg_bottom: hex(0x55704f),
            face_rx: 65.0,
            eye_dx: 29.0,
            eye_w: 13.0,
            eye_h: 5.6,
            mouth_w: 21.0,
            brow_w: 4.4,
            lashes_wing: false,
            freckles: false,
            glasses: false,
            seed: 2,
        },
        Character {
            name: "cleo",
            skin: hex(0xd3a07a),
            hair: hex(0x16131c),
            hair_style: Hair::Bob,
            iris: hex(0xa86f22),
            lips: hex(0xa43f58),
            cloth: hex(0x6f3f8f),
            cloth2: hex(0xe9dff0),
            collar: Collar::RoundNeck,
            bg_top: hex(0xfbd2ad),
            bg_bottom: hex(0xe08a74),
            face_rx: 61.0,
            eye_dx: 28.5,
            eye_w: 13.5,
            eye_h: 6.2,
            mouth_w: 18.0,
            brow_w: 3.4,
            lashes_wing: true,
            freckles: false,
            glasses: false,
            seed: 3,
        },
        Character {
            name: "dax",
            skin: hex(0xf6ddd3),
            hair: hex(0xf0dc9a),
            hair_style: Hair::Spikes,
            iris: hex(0x3f7fd6),
            lips: hex(0xcf8a84),
            cloth: hex(0x252c45),
            cloth2: hex(0xe5793a),
            collar: Collar::HighJacket,
            bg_top: hex(0x6a4f91),
            bg_bottom: hex(0x261a40),
            face_rx: 62.0,
            eye_dx: 28.0,
            eye_w: 12.5,
            eye_h: 6.0,
            mouth_w: 19.5,
            brow_w: 3.0,
            lashes_wing: false,
            freckles: false,
            glasses: false,
            seed: 4,
        },
        Character {
            name: "edith",
            skin: hex(0xe8b99a),
            hair: hex(0xc9c6c4),
            hair_style: Hair::Receding,
            iris: hex(0x6b7f8f),
            lips: hex(0xb56f6a),
            cloth: hex(0xa23b3b),
            cloth2: hex(0x7f2c2c),
            collar: Collar::Hoodie,
            bg_top: hex(0xe6dcc0),
            bg_bottom: hex(0xa99a73),
            face_rx: 63.0,
            eye_dx: 28.5,
            eye_w: 12.5,
            eye_h: 5.4,
            mouth_w: 20.0,
            brow_w: 3.6,
            lashes_wing: false,
            freckles: false,
            glasses: true,
            seed: 5,
        },
    ]
}

/// Where a character's features are, in pixels; the rig is written from these.
struct Layout {
    cx: f32,
    cy: f32,
    rx: f32,
    ry_up: f32,
    ry_low: f32,
    taper: f32,
    eye_y: f32,
    brow_y: f32,
    nose_y: f32,
    mouth_y: f32,
    upper_lip_h: f32,
    lower_lip_h: f32,
}

impl Layout {
    fn for_char(c: &Character) -> Self {
        Self {
            cx: 128.0,
            cy: 120.0,
            rx: c.face_rx,
            ry_up: 78.0,
            ry_low: 86.0,
            taper: 0.3,
            eye_y: 110.0,
            brow_y: 92.0,
            nose_y: 152.0,
            mouth_y: 177.0,
            upper_lip_h: 6.0,
            lower_lip_h: 7.5,
        }
    }

    fn chin(&self) -> (f32, f32) {
        (self.cx, self.cy + self.ry_low)
    }

    /// Face outline at angle `a` (0 = right cheek, pi/2 = chin, y down).
    fn outline(&self, a: f32) -> (f32, f32) {
        let (c, s) = (a.cos(), a.sin());
        if s >= 0.0 {
            // Jaw: narrows towards a soft, slightly square chin.
            let k = 1.0 - self.taper * s.powf(1.6);
            (
                self.cx + self.rx * c * k,
                self.cy + self.ry_low * s.powf(0.9),
            )
        } else {
            (self.cx + self.rx * c, self.cy + self.ry_up * s)
        }
    }

    fn face_polygon(&self) -> Vec<(f32, f32)> {
        (0..96)
            .map(|i| self.outline(i as f32 / 96.0 * std::f32::consts::TAU))
            .collect()
    }
}

fn draw(c: &Character) -> (Canvas, FaceRig) {
    let l = Layout::for_char(c);
    let mut cv = Canvas::new();
    let face_poly = l.face_polygon();
    let face = |x: f32, y: f32| sd_polygon(x, y, &face_poly);
    let shadow_of = |k: Rgb| scale(k, 0.72);
    let skin_shadow = mix(shadow_of(c.skin), [0.45, 0.2, 0.25], 0.15);
    let hair_dark = scale(c.hair, 0.6);
    let hair_light = mix(c.hair, [1.0, 0.97, 0.9], 0.35);

    // Background: vertical gradient, a soft light behind the head, vignette.
    cv.fill(
        FULL,
        |_, _| -1e3,
        |x, y, _| {
            let t = y / S as f32;
            let mut col = mix(c.bg_top, c.bg_bottom, t);
            let glow = (-(len(x - 120.0, y - 100.0) / 110.0).powi(2)).exp();
            col = mix(col, mix(c.bg_top, [1.0; 3], 0.4), 0.45 * glow);
            let v = len(x - 128.0, y - 128.0) / 181.0;
            scale(col, 1.0 - 0.25 * v * v)
        },
        0.5,
        1.0,
    );
    // Faint bokeh discs.
    for i in 0..7u32 {
        let bx = 20.0 + hash(i as i32, 1, c.seed) * 216.0;
        let by = 15.0 + hash(i as i32, 2, c.seed) * 120.0;
        let r = 6.0 + hash(i as i32, 3, c.seed) * 14.0;
        cv.fill(
            (bx - r, by - r, bx + r, by + r),
            |x, y| sd_circle(x, y, bx, by, r),
            |_, _, _| mix(c.bg_top, [1.0; 3], 0.5),
            2.0,
            0.12,
        );
    }

    let head_top = l.cy - l.ry_up;
    // Hair behind the head.
    let hair_shade = |x: f32, y: f32, d: f32| {
        let strands = 0.5 + 0.5 * ((x * 0.42 + 5.0 * (y * 0.045).sin()) * 1.0).sin();
        let sheen = (-((y - (head_top + 22.0)) / 14.0).powi(2)).exp();
        let rim = smoothstep(-14.0, 0.0, d);
        let base = mix(c.hair, hair_dark, 0.5 * rim + 0.15 * strands);
        mix(base, hair_light, 0.35 * sheen * (0.6 + 0.4 * strands))
    };
    match c.hair_style {
        Hair::LongWavy => {
            let back = |x: f32, y: f32| {
                let wave = 4.0 * ((y * 0.09).sin());
                let top = sd_ellipse(x, y, l.cx, l.cy - 6.0, l.rx + 16.0, l.ry_up + 14.0);
                let hw = l.rx + 18.0 + 10.0 * smoothstep(120.0, 230.0, y) + wave;
                let body = ((x - l.cx).abs() - hw).max(y - 236.0).max(l.cy - y);
                top.min(body)
            };
            cv.fill(
                FULL,
                back,
                |x, y, d| scale(hair_shade(x, y, d), 0.85),
                0.5,
                1.0,
            );
        }
        Hair::Bob => {
            let back = |x: f32, y: f32| {
                let top = sd_ellipse(x, y, l.cx, l.cy - 4.0, l.rx + 15.0, l.ry_up + 13.0);
                let body = ((x - l.cx).abs() - (l.rx + 15.0))
                    .max(y - 196.0)
                    .max(l.cy - y);
                top.min(body)
            };
            cv.fill(
                FULL,
                back,
                |x, y, d| scale(hair_shade(x, y, d), 0.8),
                0.5,
                1.0,
            );
        }
        _ => {}
    }

    // Neck, with the jaw's shadow on it.
    let neck = |x: f32, y: f32| {
        ((x - l.cx).abs() - 27.0)
            .max(l.cy + 20.0 - y)
            .max(y - 236.0)
    };
    let neck_col = |x: f32| {
        mix(
            c.skin,
            skin_shadow,
            0.35 + 0.25 * ((x - l.cx).abs() / 27.0).min(1.0),
        )
    };
    cv.fill(FULL, neck, |x, _, _| neck_col(x), 0.5, 1.0);
    cv.fill(
        FULL,
        |x, y| face(x, y - 9.0).max(neck(x, y)),
        |_, _, _| scale(skin_shadow, 0.85),
        6.0,
        0.6,
    );

    // Body and clothing.
    // Sloping shoulders: a rounded trapezoid from the base of the neck.
    let shoulders = [
        (l.cx - 36.0, 204.0),
        (l.cx + 36.0, 204.0),
        (l.cx + 128.0, 242.0),
        (l.cx + 150.0, 300.0),
        (l.cx - 150.0, 300.0),
        (l.cx - 128.0, 242.0),
    ];
    let body = |x: f32, y: f32| sd_polygon(x, y, &shoulders) - 8.0;
    cv.fill(
        FULL,
        body,
        |x, y, d| {
            let fold = 0.5 + 0.5 * ((x - 128.0) * 0.05).cos();
            let rim = smoothstep(-20.0, 0.0, d);
            let lit = mix(
                c.cloth,
                scale(c.cloth, 0.7),
                0.35 * rim + 0.2 * (1.0 - fold),
            );
            mix(lit, scale(c.cloth, 0.8), smoothstep(200.0, 256.0, y) * 0.3)
        },
        0.5,
        1.0,
    );
    if let Collar::Hoodie = c.collar {
        // Hood lying around the neck, behind it.
        let hood = |x: f32, y: f32| sd_ellipse(x, y, 128.0, 226.0, 66.0, 26.0);
        cv.fill(
            FULL,
            hood,
            |_, _, d| mix(c.cloth2, scale(c.cloth2, 0.6), smoothstep(-14.0, 0.0, d)),
            0.5,
            1.0,
        );
    }

    // Collars in front of the neck.
    match c.collar {
        Collar::Turtleneck => {
            let band =
                |x: f32, y: f32| ((x - l.cx).abs() - 33.0).max(210.0 - y).max(y - 250.0) - 3.0;
            cv.fill(
                FULL,
                band,
                |x, _, d| {
                    let rib = 0.5 + 0.5 * (x * 0.9).sin();
                    mix(
                        c.cloth,
                        c.cloth2,
                        0.35 * rib + 0.4 * smoothstep(-6.0, 0.0, d),
                    )
                },
                0.5,
                1.0,
            );
        }
        Collar::Shirt => {
            // V opening with skin, then two folded collar points.
            let v = [(l.cx - 26.0, 214.0), (l.cx + 26.0, 214.0), (l.cx, 252.0)];
            cv.fill(
                FULL,
                |x, y| sd_polygon(x, y, &v),
                |x, y, _| mix(neck_col(x), skin_shadow, smoothstep(214.0, 250.0, y) * 0.5),
                0.5,
                1.0,
            );
            for side in [-1.0f32, 1.0] {
                let p = [
                    (l.cx + side * 30.0, 206.0),
                    (l.cx + side * 2.0, 246.0),
                    (l.cx + side * 22.0, 240.0),
                    (l.cx + side * 44.0, 224.0),
                ];
                cv.fill(
                    FULL,
                    |x, y| sd_polygon(x, y, &p) - 0.5,
                    |_, _, d| mix(c.cloth2, scale(c.cloth2, 0.75), smoothstep(-5.0, 0.0, d)),
                    0.5,
                    1.0,
                );
            }
            // Buttons.
            cv.fill(
                FULL,
                |x, y| sd_circle(x, y, l.cx, 252.0, 2.0),
                |_, _, _| scale(c.cloth, 0.6),
                0.5,
                1.0,
            );
        }
        Collar::RoundNeck => {
            let neckline = |x: f32, y: f32| sd_ellipse(x, y, l.cx, 212.0, 36.0, 18.0);
            // The neckline cut shows skin; a contrasting trim runs around it.
            cv.fill(
                FULL,
                |x, y| neckline(x, y).max(212.0 - y),
                |x, y, _| mix(neck_col(x), skin_shadow, smoothstep(212.0, 230.0, y) * 0.4),
                0.5,
                1.0,
            );
            cv.fill(
                FULL,
                |x, y| neckline(x, y).abs().max(212.0 - y) - 2.2,
                |_, _, _| c.cloth2,
                0.5,
                1.0,
            );
        }
        Collar::HighJacket => {
            for side in [-1.0f32, 1.0] {
                let p = [
                    (l.cx + side * 24.0, 196.0),
                    (l.cx + side * 40.0, 204.0),
                    (l.cx + side * 58.0, 240.0),
                    (l.cx + side * 6.0, 256.0),
                    (l.cx + side * 4.0, 226.0),
                ];
                cv.fill(
                    FULL,
                    |x, y| sd_polygon(x, y, &p),
                    |x, _, d| {
                        let inner = smoothstep(6.0, 0.0, (x - l.cx).abs() - 4.0);
                        let base = mix(
                            scale(c.cloth, 1.25),
                            scale(c.cloth, 0.8),
                            smoothstep(-8.0, 0.0, d),
                        );
                        mix(base, c.cloth2, inner * 0.9)
                    },
                    0.5,
                    1.0,
                );
            }
            // Zip.
            cv.fill(
                FULL,
                |x, y| ((x - l.cx).abs() - 1.0).max(226.0 - y),
                |_, _, _| hex(0xb8b8c0),
                0.5,
                1.0,
            );
        }
        Collar::Hoodie => {
            for side in [-1.0f32, 1.0] {
                let sx = l.cx + side * 14.0;
                cv.fill(
                    FULL,
                    |x, y| {
                        sd_stroke(
                            x,
                            y,
                            (sx, 226.0),
                            (sx + side * 2.0, 240.0),
                            (sx - side * 1.0, 256.0),
                            2.4,
                            2.0,
                        )
                    },
                    |_, _, _| hex(0xf0ece4),
                    0.5,
                    1.0,
                );
            }
        }
    }

    // Ears.
    for side in [-1.0f32, 1.0] {
        let ex = l.cx + side * (l.rx - 3.0);
        let ey = l.eye_y + 16.0;
        cv.fill(
            (ex - 14.0, ey - 20.0, ex + 14.0, ey + 20.0),
            |x, y| sd_ellipse(x, y, ex, ey, 9.5, 16.0),
            |x, _, d| {
                let inner = smoothstep(-2.0, -7.0, d) * smoothstep(0.0, 6.0, side * (x - ex) + 4.0);
                mix(mix(c.skin, skin_shadow, 0.3), skin_shadow, 0.6 * inner)
            },
            0.5,
            1.0,
        );
    }

    // Face: skin with soft rim shading, light from the upper left, cheeks.
    let (ldx, rdx) = (l.cx - c.eye_dx, l.cx + c.eye_dx);
    cv.fill(
        FULL,
        face,
        |x, y, d| {
            let rim = smoothstep(-22.0, 0.0, d);
            let side_light = ((x - l.cx) / l.rx).clamp(-1.0, 1.0);
            let mut col = mix(c.skin, skin_shadow, 0.55 * rim + 0.1 * side_light.max(0.0));
            let forehead =
                (-(len((x - l.cx + 14.0) / 30.0, (y - (l.brow_y - 22.0)) / 16.0)).powi(2)).exp();
            col = mix(col, [1.0, 0.98, 0.95], 0.18 * forehead);
            for ex in [ldx, rdx] {
                let blush = (-(len((x - ex) / 15.0, (y - (l.eye_y + 28.0)) / 10.0)).powi(2)).exp();
                col = mix(col, mix(c.lips, c.skin, 0.4), 0.28 * blush);
            }
            col
        },
        0.5,
        1.0,
    );
    if c.freckles {
        for i in 0..46 {
            let side = if i % 2 == 0 { -1.0 } else { 1.0 };
            let fx = l.cx + side * (12.0 + hash(i, 7, c.seed) * 30.0);
            let fy = l.eye_y + 14.0 + hash(i, 8, c.seed) * 18.0;
            let r = 0.7 + hash(i, 9, c.seed) * 0.7;
            cv.fill(
                (fx - 3.0, fy - 3.0, fx + 3.0, fy + 3.0),
                |x, y| sd_circle(x, y, fx, fy, r),
                |_, _, _| scale(c.skin, 0.72),
                0.7,
                0.55,
            );
        }
    }

    // Nose: side shadow, nostrils, tip highlight.
    let ny = l.nose_y;
    cv.fill(
        FULL,
        |x, y| {
            sd_stroke(
                x,
                y,
                (l.cx + 5.0, l.eye_y + 6.0),
                (l.cx + 8.0, ny - 16.0),
                (l.cx + 8.0, ny - 4.0),
                3.0,
                5.0,
            )
        },
        |_, _, _| skin_shadow,
        3.0,
        0.3,
    );
    cv.fill(
        FULL,
        |x, y| {
            sd_stroke(
                x,
                y,
                (l.cx - 10.0, ny),
                (l.cx, ny + 7.0),
                (l.cx + 10.0, ny),
                3.0,
                3.0,
            )
        },
        |_, _, _| skin_shadow,
        2.0,
        0.45,
    );
    for side in [-1.0f32, 1.0] {
        let (nx, nyy) = (l.cx + side * 5.5, ny + 2.5);
        cv.fill(
            (nx - 5.0, nyy - 4.0, nx + 5.0, nyy + 4.0),
            |x, y| sd_ellipse(x, y, nx, nyy, 2.8, 1.6),
            |_, _, _| scale(skin_shadow, 0.55),
            0.8,
            0.8,
        );
    }
    cv.fill(
        (l.cx - 8.0, ny - 10.0, l.cx + 6.0, ny),
        |x, y| sd_circle(x, y, l.cx - 1.5, ny - 4.5, 2.2),
        |_, _, _| [1.0; 3],
        2.0,
        0.35,
    );

    // Mouth: straight seam between the corners, cupid's-bow upper lip, fuller lower lip.
    let my = l.mouth_y;
    let mw = c.mouth_w;
    let (ul, ll) = (l.upper_lip_h, l.lower_lip_h);
    let upper_edge = |x: f32| {
        let t = ((x - l.cx) / mw).clamp(-1.0, 1.0);
        let bow = 1.0 - 0.28 * (-(t / 0.14).powi(2)).exp();
        my - ul * (1.0 - t * t).max(0.0).powf(0.7) * bow / 0.93
    };
    let lower_edge = |x: f32| {
        let t = ((x - l.cx) / mw).clamp(-1.0, 1.0);
        my + ll * (1.0 - t * t).max(0.0).powf(0.6)
    };
    let lip_box = (
        l.cx - mw - 2.0,
        my - ul - 3.0,
        l.cx + mw + 2.0,
        my + ll + 3.0,
    );
    // Soft shadow below the lower lip.
    cv.fill(
        lip_box,
        |x, y| sd_ellipse(x, y, l.cx, my + ll + 3.5, mw * 0.55, 3.0),
        |_, _, _| skin_shadow,
        2.5,
        0.35,
    );
    let lip_dark = scale(c.lips, 0.78);
    cv.fill(
        lip_box,
        |x, y| (upper_edge(x) - y).max(y - my).max((x - l.cx).abs() - mw),
        |_, _, _| lip_dark,
        0.5,
        1.0,
    );
    cv.fill(
        lip_box,
        |x, y| (my - y).max(y - lower_edge(x)).max((x - l.cx).abs() - mw),
        |x, y, _| {
            let hl = (-(len((x - l.cx) / (mw * 0.45), (y - (my + ll * 0.45)) / 1.8)).powi(2)).exp();
            mix(c.lips, [1.0, 0.95, 0.95], 0.35 * hl)
        },
        0.5,
        1.0,
    );
    cv.fill(
        lip_box,
        |x, y| ((y - my).abs() - 0.55).max((x - l.cx).abs() - mw - 1.0),
        |_, _, _| scale(c.lips, 0.42),
        0.5,
        1.0,
    );
    for side in [-1.0f32, 1.0] {
        let (kx, ky) = (l.cx + side * (mw + 0.5), my);
        cv.fill(
            (kx - 4.0, ky - 4.0, kx + 4.0, ky + 4.0),
            |x, y| sd_circle(x, y, kx, ky, 1.3),
            |_, _, _| scale(skin_shadow, 0.8),
            1.2,
            0.6,
        );
    }

    // Eyes.
    let lash = mix(scale(c.hair, 0.35), [0.08, 0.06, 0.06], 0.6);
    let mut eyes = Vec::new();
    for (ex, side) in [(ldx, -1.0f32), (rdx, 1.0)] {
        let ey = l.eye_y;
        let (w, h_up, h_lo) = (c.eye_w, c.eye_h, c.eye_h * 0.75);
        // Outer corner a touch higher: a friendlier, stylised eye.
        let outer = (ex + side * w, ey - 0.8);
        let inner = (ex - side * w, ey + 0.4);
        let up_apex = (ex - side * 1.0, ey - h_up);
        let lo_apex = (ex + side * 0.5, ey + h_lo);
        let cy = (outer.1 + inner.1) * 0.5;
        let (ucx, ucy, ur) = arc_circle((ex - w, cy), (ex, ey - h_up));
        let (lcx, lcy, lr) = arc_circle((ex - w, cy), (ex, ey + h_lo));
        let almond = move |x: f32, y: f32| {
            let tilt = (outer.1 - inner.1) / (outer.0 - inner.0) * (x - ex);
            let y = y - tilt;
            sd_circle(x, y, ucx, ucy, ur).max(sd_circle(x, y, lcx, lcy, lr))
        };
        let ebox = (ex - w - 4.0, ey - h_up - 8.0, ex + w + 4.0, ey + h_lo + 4.0);
        // Crease above the eye.
        cv.fill(
            ebox,
            |x, y| {
                (sd_circle(x, y, ucx, ucy - 4.5, ur + 0.5).abs() - 0.6)
                    .max((x - ex).abs() - w * 0.85)
                    .max(y - (ey - 2.0))
            },
            |_, _, _| skin_shadow,
            0.9,
            0.35,
        );
        cv.fill(
            ebox,
            almond,
            |_, y, _| {
                mix(
                    hex(0xf4f1ec),
                    hex(0xcfc6c2),
                    smoothstep(ey + 1.0, ey - h_up, y) * 0.7,
                )
            },
            0.5,
            1.0,
        );
        let (ix, iy, ir) = (ex + side * 0.5, ey + 0.3, c.eye_h * 0.98);
        cv.fill(
            ebox,
            |x, y| sd_circle(x, y, ix, iy, ir).max(almond(x, y)),
            |x, y, _| {
                let r = len(x - ix, y - iy) / ir;
                let lower = smoothstep(iy - ir, iy + ir, y);
                let base = mix(scale(c.iris, 0.7), mix(c.iris, [1.0; 3], 0.25), lower);
                let col = mix(base, scale(c.iris, 0.35), smoothstep(0.75, 1.0, r));
                let rays = 0.5 + 0.5 * ((y - iy).atan2(x - ix) * 9.0).sin();
                mix(col, scale(c.iris, 1.15), 0.12 * rays * (1.0 - r))
            },
            0.5,
            1.0,
        );
        cv.fill(
            ebox,
            |x, y| sd_circle(x, y, ix, iy, ir * 0.42).max(almond(x, y)),
            |_, _, _| hex(0x0d0a0a),
            0.5,
            1.0,
        );
        // Shadow of the upper lid on the eyeball.
        cv.fill(
            ebox,
            |x, y| almond(x, y).max(y - (ey - h_up + 2.5)),
            |_, _, _| scale(c.skin, 0.35),
            1.2,
            0.35,
        );
        cv.fill(
            ebox,
            |x, y| sd_circle(x, y, ix - 2.0, iy - 2.2, 1.5),
            |_, _, _| [1.0; 3],
            0.5,
            0.95,
        );
        cv.fill(
            ebox,
            |x, y| sd_circle(x, y, ix + 1.8, iy + 1.8, 0.7),
            |_, _, _| [1.0; 3],
            0.5,
            0.6,
        );
        // Upper lash line: thick at the outer corner, optional wing.
        let (lo, li) = ((outer.0, outer.1 - 0.2), (inner.0, inner.1));
        let ctrl = (ex, 2.0 * (ey - h_up) - (lo.1 + li.1) * 0.5 - 1.0);
        cv.fill(
            ebox,
            |x, y| sd_stroke(x, y, li, ctrl, lo, 1.3, 2.8),
            |_, _, _| lash,
            0.5,
            1.0,
        );
        if c.lashes_wing {
            cv.fill(
                ebox,
                |x, y| {
                    sd_stroke(
                        x,
                        y,
                        lo,
                        (lo.0 + side * 2.5, lo.1 - 0.8),
                        (lo.0 + side * 5.0, lo.1 - 3.0),
                        2.4,
                        0.4,
                    )
                },
                |_, _, _| lash,
                0.5,
                1.0,
            );
        }
        // Lower lid line, faint.
        let lctrl = (ex, 2.0 * (ey + h_lo) - (lo.1 + li.1) * 0.5);
        cv.fill(
            ebox,
            |x, y| sd_stroke(x, y, li, lctrl, lo, 0.6, 1.0),
            |_, _, _| scale(skin_shadow, 0.8),
            0.6,
            0.55,
        );
        eyes.push((outer, inner, up_apex, lo_apex));
    }

    // Brows: tapered strokes, thick at the inner end.
    let mut brows = Vec::new();
    for (ex, side) in [(ldx, -1.0f32), (rdx, 1.0)] {
        let inner = (ex - side * 12.0, l.brow_y + 2.0);
        let outer = (ex + side * 16.0, l.brow_y + 1.0);
        let ctrl = (ex + side * 3.0, l.brow_y - 6.0);
        let mid = quad(inner, ctrl, outer, 0.5);
        cv.fill(
            (ex - 22.0, l.brow_y - 10.0, ex + 22.0, l.brow_y + 8.0),
            |x, y| sd_stroke(x, y, inner, ctrl, outer, c.brow_w * 1.6, c.brow_w * 0.6),
            |_, y, _| {
                mix(
                    hair_dark,
                    scale(hair_dark, 0.7),
                    smoothstep(l.brow_y - 4.0, l.brow_y + 2.0, y),
                )
            },
            0.6,
            1.0,
        );
        brows.push((outer, mid, inner));
    }

    if c.glasses {
        for ex in [ldx, rdx] {
            let rim = |x: f32, y: f32| {
                let (dx, dy) = ((x - ex).abs() - 10.0, (y - (l.eye_y + 1.0)).abs() - 8.0);
                let out = len(dx.max(0.0), dy.max(0.0)) + dx.max(dy).min(0.0) - 5.0;
                out.abs() - 1.1
            };
            cv.fill(
                (ex - 20.0, l.eye_y - 18.0, ex + 20.0, l.eye_y + 18.0),
                rim,
                |_, _, _| hex(0x3a2a22),
                0.5,
                1.0,
            );
        }
        cv.fill(
            FULL,
            |x, y| {
                sd_stroke(
                    x,
                    y,
                    (ldx + 15.0, l.eye_y - 3.0),
                    (l.cx, l.eye_y - 7.0),
                    (rdx - 15.0, l.eye_y - 3.0),
                    2.0,
                    2.0,
                )
            },
            |_, _, _| hex(0x3a2a22),
            0.5,
            1.0,
        );
    }

    // Hair in front: a cap over the skull cut by the hairline, with its shadow first.
    let hairline: Box<dyn Fn(f32) -> f32> = match c.hair_style {
        // Side part sweeping down to the right.
        Hair::LongWavy => Box::new(move |x: f32| {
            let t = (x - l.cx) / l.rx;
            l.brow_y - 14.0 + 9.0 * t + 14.0 * (t * t) - 6.0 * (-(((t + 0.35) / 0.3).powi(2))).exp()
        }),
        Hair::Curls => Box::new(move |x: f32| {
            let t = (x - l.cx) / l.rx;
            l.brow_y - 22.0 + 8.0 * t * t
        }),
        Hair::Bob => Box::new(move |x: f32| {
            let t = (x - l.cx) / l.rx;
            l.brow_y - 6.0
                + 2.0 * t * t
                + if t.abs() > 0.72 {
                    60.0 * (t.abs() - 0.72)
                } else {
                    0.0
                }
        }),
        Hair::Spikes => Box::new(move |x: f32| {
            let t = (x - l.cx) / l.rx;
            l.brow_y - 20.0 + 3.0 * (t * 9.0).sin() + 6.0 * t * t
        }),
        Hair::Receding => Box::new(move |x: f32| {
            let t = (x - l.cx) / l.rx;
            l.brow_y - 34.0 + 28.0 * t * t
        }),
    };
    let (cap_rx, cap_ry, cap_dy) = match c.hair_style {
        Hair::Curls => (l.rx + 9.0, l.ry_up + 10.0, -4.0),
        Hair::Spikes => (l.rx + 7.0, l.ry_up + 8.0, -2.0),
        Hair::Receding => (l.rx + 4.0, l.ry_up + 3.0, 0.0),
        _ => (l.rx + 12.0, l.ry_up + 12.0, -3.0),
    };
    let cap = |x: f32, y: f32| {
        let base = sd_ellipse(x, y, l.cx, l.cy + cap_dy, cap_rx, cap_ry).max(y - hairline(x));
        match c.hair_style {
            Hair::Spikes => {
                let mut d = base;
                for i in 0..7 {
                    let a = -2.6 + i as f32 * 0.35;
                    let (bx, by) = (l.cx + 52.0 * a.cos(), l.cy - 48.0 + 40.0 * a.sin());
                    let tip = (
                        bx + 34.0 * (a + 0.2).cos(),
                        by + 36.0 * (a - 0.1).sin() - 10.0,
                    );
                    let tri = [(bx - 13.0, by + 6.0), tip, (bx + 13.0, by + 2.0)];
                    d = d.min(sd_polygon(x, y, &tri).max(y - hairline(x) + 4.0));
                }
                d
            }
            Hair::Receding => {
                // Bald crown: only the sides keep hair.
                let crown = sd_ellipse(x, y, l.cx, l.cy - 60.0, l.rx - 14.0, 52.0);
                base.max(-crown)
            }
            _ => base,
        }
    };
    cv.fill(
        FULL,
        |x, y| cap(x, y - 4.0),
        |_, _, _| skin_shadow,
        4.0,
        0.45,
    );
    cv.fill(FULL, cap, hair_shade, 0.5, 1.0);
    if let Hair::Curls = c.hair_style {
        // Tight curls: rings of small discs over the cap, each with a highlight.
        for i in 0..90 {
            let a = hash(i, 11, c.seed) * std::f32::consts::PI + std::f32::consts::PI;
            let rr = 0.55 + 0.45 * hash(i, 12, c.seed).sqrt();
            let (bx, by) = (
                l.cx + cap_rx * rr * a.cos(),
                l.cy + cap_dy + cap_ry * rr * a.sin(),
            );
            if by > hairline(bx) + 2.0 {
                continue;
            }
            let r = 4.0 + hash(i, 13, c.seed) * 3.0;
            cv.fill(
                (bx - r - 2.0, by - r - 2.0, bx + r + 2.0, by + r + 2.0),
                |x, y| sd_circle(x, y, bx, by, r),
                |x, y, _| {
                    let hl = smoothstep(r, 0.0, len(x - bx + r * 0.35, y - by + r * 0.35));
                    mix(c.hair, mix(c.hair, [0.6, 0.5, 0.45], 0.5), 0.6 * hl)
                },
                0.5,
                0.9,
            );
        }
    }
    if let Hair::LongWavy = c.hair_style {
        // Locks falling in front of the shoulders.
        for side in [-1.0f32, 1.0] {
            let x0 = l.cx + side * (l.rx + 4.0);
            cv.fill(
                FULL,
                |x, y| {
                    sd_stroke(
                        x,
                        y,
                        (x0, l.eye_y),
                        (x0 + side * 14.0, 190.0),
                        (x0 + side * 4.0, 246.0),
                        14.0,
                        8.0,
                    )
                },
                |x, y, d| hair_shade(x, y, d * 0.5),
                0.5,
                1.0,
            );
        }
    }

    // The rig, from the exact positions above.
    let n = |p: (f32, f32)| Point::new(p.0 / S as f32, p.1 / S as f32);
    let mk_eye = |(outer, inner, up, lo): (Pt, Pt, Pt, Pt)| Eye {
        outer: n(outer),
        inner: n(inner),
        upper: n(up),
        lower: n(lo),
    };
    let mk_brow = |(o, m, i): (Pt, Pt, Pt)| Brow {
        outer: n(o),
        mid: n(m),
        inner: n(i),
    };
    let face_outline = (0..=10)
        .map(|i| n(l.outline(std::f32::consts::PI * (1.0 - i as f32 / 10.0))))
        .collect();
    let rig = FaceRig {
        left_eye: mk_eye(eyes[0]),
        right_eye: mk_eye(eyes[1]),
        left_brow: mk_brow(brows[0]),
        right_brow: mk_brow(brows[1]),
        nose_tip: n((l.cx, l.nose_y)),
        mouth_left: n((l.cx - mw, my)),
        mouth_right: n((l.cx + mw, my)),
        upper_lip: n((l.cx, upper_edge(l.cx))),
        lower_lip: n((l.cx, lower_edge(l.cx))),
        chin: n(l.chin()),
        face_outline,
    };
    (cv, rig)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/portraits"));
    std::fs::create_dir_all(&out)?;
    for c in cast() {
        let (canvas, rig) = draw(&c);
        let (rig, notes) = rig.validated()?;
        if !notes.is_empty() {
            return Err(format!("{}: generated rig needed repairs: {notes:?}", c.name).into());
        }
        let png = out.join(format!("{}.png", c.name));
        canvas.save(&png, c.seed)?;
        std::fs::write(out.join(format!("{}.rig.ron", c.name)), rig.to_ron()?)?;
        println!("wrote {}", png.display());
    }
    Ok(())
}
