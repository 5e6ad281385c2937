//! The contact sheet: every bundled portrait across mouth shapes, the eight emotions, a
//! blink and a head turn, written as one PNG for people to look at, plus checks of what
//! those controls must do to the pixels.
//!
//! The sheet goes to `$CARGO_TARGET_TMPDIR/contact_sheet.png`; with
//! `UPDATE_CONTACT_SHEET=1` a half-size copy also goes to `docs/contact_sheet.png`.
//! Columns: closed, open, "ee", "oo", pressed, the eight emotions in `Emotion::ALL` order
//! (angry, contempt, disgusted, fear, happy, neutral, sad, surprised), blink, head turn.

use bevy_edtalk::motion::{Emotion, MotionFrame};
use bevy_edtalk::render::procedural::ProceduralRenderer;
use bevy_edtalk::render::rig::FaceRig;
use bevy_edtalk::render::{FaceFrame, FaceRenderer, Portrait};
use std::path::{Path, PathBuf};

const SIZE: usize = 256;

struct Member {
    name: String,
    portrait: Portrait,
    rig: FaceRig,
}

fn cast() -> Vec<Member> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/portraits");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rig.ron").map(str::to_string)
        })
        .collect();
    names.sort();
    let cast: Vec<Member> = names
        .into_iter()
        .map(|name| Member {
            portrait: Portrait::load(dir.join(format!("{name}.png"))).unwrap(),
            rig: FaceRig::load(dir.join(format!("{name}.rig.ron"))).unwrap(),
            name,
        })
        .collect();
    assert!(cast.len() >= 4, "expected at least 4 bundled portraits");
    cast
}

fn columns() -> Vec<(&'static str, MotionFrame)> {
    let mut cols = Vec::new();
    let mouth = |jaw: f32, width: f32, round: f32, pressed: f32| {
        let mut m = MotionFrame::default();
        m.mouth.jaw_open = jaw;
        m.mouth.lip_width = width;
        m.mouth.lip_round = round;
        m.mouth.lips_pressed = pressed;
        m
    };
    cols.push(("closed", MotionFrame::default()));
    cols.push(("open", mouth(0.85, 0.0, 0.0, 0.0)));
    cols.push(("ee", mouth(0.3, 1.0, 0.0, 0.0)));
    cols.push(("oo", mouth(0.35, -0.3, 1.0, 0.0)));
    cols.push(("pressed", mouth(0.0, 0.1, 0.0, 1.0)));
    for e in Emotion::ALL {
        let m = MotionFrame {
            expression: e.default_look(),
            ..MotionFrame::default()
        };
        cols.push((e.name(), m));
    }
    let mut blink = MotionFrame::default();
    blink.expression.eye_open = 0.0;
    cols.push(("blink", blink));
    let mut turn = mouth(0.4, 0.0, 0.0, 0.0);
    turn.head.yaw = 0.25;
    turn.head.pitch = 0.06;
    turn.head.roll = 0.06;
    cols.push(("turn", turn));
    cols
}

fn luma(f: &FaceFrame, x: usize, y: usize) -> f32 {
    let k = (y * SIZE + x) * 4;
    0.299 * f.rgba[k] as f32 + 0.587 * f.rgba[k + 1] as f32 + 0.114 * f.rgba[k + 2] as f32
}

/// Mean luminance over a box in normalised coordinates.
fn mean_luma(f: &FaceFrame, x0: f32, y0: f32, x1: f32, y1: f32) -> f32 {
    let s = SIZE as f32;
    let (xa, xb) = ((x0 * s) as usize, (x1 * s) as usize);
    let (ya, yb) = ((y0 * s) as usize, (y1 * s) as usize);
    let mut sum = 0.0;
    for y in ya..yb {
        for x in xa..xb {
            sum += luma(f, x, y);
        }
    }
    sum / ((xb - xa) * (yb - ya)) as f32
}

/// Upper-quartile luminance over a box in normalised coordinates: the skin, not the brows,
/// creases or glasses rims (all darker) that share the box.
fn upper_quartile_luma(f: &FaceFrame, x0: f32, y0: f32, x1: f32, y1: f32) -> f32 {
    let s = SIZE as f32;
    let mut v: Vec<f32> = ((y0 * s) as usize..(y1 * s) as usize)
        .flat_map(|y| ((x0 * s) as usize..(x1 * s) as usize).map(move |x| (x, y)))
        .map(|(x, y)| luma(f, x, y))
        .collect();
    v.sort_by(f32::total_cmp);
    v[v.len() * 3 / 4]
}

/// Mean absolute per-channel difference over a box.
fn mean_diff(a: &FaceFrame, b: &FaceFrame, x0: f32, y0: f32, x1: f32, y1: f32) -> f32 {
    let s = SIZE as f32;
    let mut sum = 0.0;
    let mut n = 0.0;
    for y in (y0 * s) as usize..(y1 * s) as usize {
        for x in (x0 * s) as usize..(x1 * s) as usize {
            for c in 0..3 {
                let k = (y * SIZE + x) * 4 + c;
                sum += (a.rgba[k] as f32 - b.rgba[k] as f32).abs();
                n += 1.0;
            }
        }
    }
    sum / n
}

#[test]
fn contact_sheet() {
    let cast = cast();
    let cols = columns();
    let mut r = ProceduralRenderer::new();
    let mut sheet = image::RgbaImage::new((cols.len() * SIZE) as u32, (cast.len() * SIZE) as u32);
    let mut all_frames = Vec::new();
    for (row, m) in cast.iter().enumerate() {
        r.set_identity(row as u64, &m.portrait, Some(&m.rig))
            .unwrap();
        let frames: Vec<FaceFrame> = cols
            .iter()
            .map(|(_, motion)| r.render_one(row as u64, motion).unwrap())
            .collect();
        for (col, f) in frames.iter().enumerate() {
            let tile =
                image::RgbaImage::from_raw(SIZE as u32, SIZE as u32, f.rgba.clone()).unwrap();
            image::imageops::replace(&mut sheet, &tile, (col * SIZE) as i64, (row * SIZE) as i64);
            let (tx, ty) = ((col * SIZE) as u32, (row * SIZE) as u32);
            label(&mut sheet, tx, ty + SIZE as u32 - 27, cols[col].0, 3);
            if col == 0 {
                label(&mut sheet, tx, ty, &m.name, 3);
            }
        }
        all_frames.push(frames);
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("contact_sheet.png");
    sheet.save(&out).unwrap();
    println!("contact sheet: {}", out.display());
    if std::env::var_os("UPDATE_CONTACT_SHEET").is_some() {
        let rgb = image::DynamicImage::ImageRgba8(sheet.clone()).into_rgb8();
        let half = image::imageops::resize(
            &rgb,
            sheet.width() / 2,
            sheet.height() / 2,
            image::imageops::FilterType::Triangle,
        );
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        half.save(docs.join("contact_sheet.png")).unwrap();
    }

    for (m, frames) in cast.iter().zip(&all_frames) {
        let fitted = m.portrait.fit_square(SIZE as u32);
        let rig = &m.rig;
        for (col, f) in frames.iter().enumerate() {
            // The frame edge never tears: the outermost ring is the portrait's own.
            for i in 0..SIZE {
                for (x, y) in [(i, 0), (i, SIZE - 1), (0, i), (SIZE - 1, i)] {
                    let k = (y * SIZE + x) * 4;
                    assert_eq!(
                        f.rgba[k..k + 4],
                        fitted.rgba()[k..k + 4],
                        "{} / {}: border pixel ({x},{y}) moved",
                        m.name,
                        cols[col].0
                    );
                }
            }
        }
        let [closed, open, ..] = &frames[..] else {
            unreachable!()
        };
        // Neutral controls reproduce the portrait exactly.
        assert_eq!(
            closed.rgba,
            fitted.rgba(),
            "{}: neutral frame differs",
            m.name
        );
        let fit = FaceFrame {
            width: SIZE as u32,
            height: SIZE as u32,
            rgba: fitted.rgba().to_vec(),
        };

        // An open jaw darkens the band just below the lips' seam.
        let (ml, mr) = (rig.mouth_left, rig.mouth_right);
        let seam = (ml.y + mr.y) * 0.5;
        let w = mr.x - ml.x;
        let band = (ml.x + 0.3 * w, seam + 0.005, mr.x - 0.3 * w, seam + 0.04);
        let (lc, lo) = (
            mean_luma(closed, band.0, band.1, band.2, band.3),
            mean_luma(open, band.0, band.1, band.2, band.3),
        );
        assert!(
            lo < lc - 25.0,
            "{}: open mouth band luma {lo} vs closed {lc}",
            m.name
        );

        // A blink covers both eyes with lid-coloured skin: the eye boxes change, and their
        // middle ends up close to the skin just above the eye.
        let blink = &frames[cols.len() - 2];
        for eye in [&rig.left_eye, &rig.right_eye] {
            let (x0, x1) = (eye.outer.x.min(eye.inner.x), eye.outer.x.max(eye.inner.x));
            let (y0, y1) = (eye.upper.y, eye.lower.y);
            let d = mean_diff(blink, closed, x0, y0, x1, y1);
            assert!(d > 20.0, "{}: blink changed the eye by only {d}", m.name);
            let cx = (x0 + x1) * 0.5;
            let hw = (x1 - x0) * 0.15;
            let gap = eye.upper.y - rig.left_brow.mid.y;
            let above = upper_quartile_luma(&fit, x0, y0 - 0.6 * gap, x1, y0 - 0.2 * gap);
            let lid = mean_luma(
                blink,
                cx - hw,
                (y0 + y1) * 0.5 - 0.004,
                cx + hw,
                (y0 + y1) * 0.5,
            );
            assert!(
                (lid - above).abs() < 30.0,
                "{}: closed lid luma {lid}, skin above the eye {above}",
                m.name
            );
        }

        // A head turn to the character's left moves the nose right (image coordinates).
        let turn = &frames[cols.len() - 1];
        let nose = rig.nose_tip;
        let shift = best_shift(&fit, turn, nose.x, nose.y - 0.05, 0.1);
        assert!(
            shift >= 3,
            "{}: nose moved {shift} px on a positive yaw",
            m.name
        );

        // Smile raises the mouth corners: the dark seam near each corner moves up.
        let happy = &frames[5 + Emotion::ALL
            .iter()
            .position(|e| *e == Emotion::Happy)
            .unwrap()];
        for corner in [ml, mr] {
            let inward = if corner.x < 0.5 { 0.012 } else { -0.012 };
            let before = darkest_row(&fit, corner.x + inward, corner.y);
            let after = darkest_row(happy, corner.x + inward, corner.y);
            assert!(
                after + 2 <= before,
                "{}: smile corner row {after} vs {before}",
                m.name
            );
        }
    }
}

/// Horizontal shift (pixels, -20..=20) that best maps a band of `a` onto `b`.
fn best_shift(a: &FaceFrame, b: &FaceFrame, cx: f32, y: f32, h: f32) -> i32 {
    let s = SIZE as f32;
    let (x0, x1) = (((cx - 0.1) * s) as i32, ((cx + 0.1) * s) as i32);
    let (y0, y1) = ((y * s) as usize, ((y + h) * s) as usize);
    let mut best = (f32::MAX, 0);
    for d in -20..=20 {
        let mut sad = 0.0;
        for yy in y0..y1 {
            for x in x0..x1 {
                sad += (luma(a, x as usize, yy) - luma(b, (x + d) as usize, yy)).abs();
            }
        }
        if sad < best.0 {
            best = (sad, d);
        }
    }
    best.1
}

/// Row of the darkest pixel in the column at `x` within 12 px of `y`.
fn darkest_row(f: &FaceFrame, x: f32, y: f32) -> usize {
    let s = SIZE as f32;
    let (x, yc) = ((x * s) as usize, (y * s) as usize);
    (yc - 12..yc + 12)
        .min_by(|&a, &b| luma(f, x, a).total_cmp(&luma(f, x, b)))
        .unwrap()
}

/// 5x7 capitals for the sheet's labels, one row per byte (bit 4 is the left column).
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [30, 17, 17, 17, 17, 17, 30],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 25, 21, 19, 17, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 10, 4, 4, 4, 4],
        '"' => [10, 10, 0, 0, 0, 0, 0],
        _ => [0; 7],
    }
}

/// Writes `text` in white on a dark strip at (x, y), `k` pixels per font pixel.
fn label(img: &mut image::RgbaImage, x: u32, y: u32, text: &str, k: u32) {
    let w = text.len() as u32 * 6 * k + 2 * k;
    for yy in y..(y + 9 * k).min(img.height()) {
        for xx in x..(x + w).min(img.width()) {
            let p = img.get_pixel_mut(xx, yy);
            for c in 0..3 {
                p[c] = (p[c] as u32 * 2 / 5) as u8;
            }
        }
    }
    for (i, ch) in text.chars().enumerate() {
        for (row, bits) in glyph(ch).iter().enumerate() {
            for col in 0..5 {
                if bits & (16 >> col) == 0 {
                    continue;
                }
                for dy in 0..k {
                    for dx in 0..k {
                        let px = x + k + (i as u32 * 6 + col) * k + dx;
                        let py = y + k + row as u32 * k + dy;
                        if px < img.width() && py < img.height() {
                            img.put_pixel(px, py, image::Rgba([255, 255, 255, 255]));
                        }
                    }
                }
            }
        }
    }
}
