//! Frame pixels <-> PNG records. A key frame is its own pixels; a delta frame is the
//! per-byte wrapping difference `frame - key` inside the rectangle where they differ. A
//! talking face with a still head changes only around the mouth and eyes, so most of a
//! delta is outside its rectangle or zero inside it, which deflate stores in a few bytes;
//! wrapping arithmetic keeps it exact (lossless) both ways.

use image::codecs::png::{CompressionType, FilterType, PngDecoder, PngEncoder};
use image::{ExtendedColorType, ImageDecoder, ImageEncoder};

use super::format::Rect;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// The smallest rectangle holding every pixel where `a` and `b` differ (both `width` wide,
/// RGBA8); empty when they are equal.
pub(crate) fn changed_rect(a: &[u8], b: &[u8], width: u32) -> Rect {
    let row_bytes = width as usize * 4;
    let (mut x0, mut x1, mut y0, mut y1) = (usize::MAX, 0, usize::MAX, 0);
    for (y, (ra, rb)) in a
        .chunks_exact(row_bytes)
        .zip(b.chunks_exact(row_bytes))
        .enumerate()
    {
        if ra == rb {
            continue;
        }
        let first = ra.iter().zip(rb).position(|(p, q)| p != q).unwrap_or(0) / 4;
        let last = ra.iter().zip(rb).rposition(|(p, q)| p != q).unwrap_or(0) / 4;
        (x0, x1) = (x0.min(first), x1.max(last + 1));
        (y0, y1) = (y0.min(y), y + 1);
    }
    if y0 == usize::MAX {
        return Rect::default();
    }
    Rect {
        x: x0 as u32,
        y: y0 as u32,
        w: (x1 - x0) as u32,
        h: (y1 - y0) as u32,
    }
}

/// `frame - key` (per byte, wrapping) inside `rect`, row-major.
pub(crate) fn residual(frame: &[u8], key: &[u8], width: u32, rect: Rect) -> Vec<u8> {
    let mut out = Vec::with_capacity(rect.w as usize * rect.h as usize * 4);
    for (f, k) in rows(frame, width, rect).zip(rows(key, width, rect)) {
        out.extend(f.iter().zip(k).map(|(f, k)| f.wrapping_sub(*k)));
    }
    out
}

/// Adds a residual back onto `key` (a copy of the key frame) inside `rect`.
pub(crate) fn apply_residual(key: &mut [u8], width: u32, rect: Rect, residual: &[u8]) {
    let span = rect.w as usize * 4;
    let stride = width as usize * 4;
    for (row, res) in residual.chunks_exact(span).enumerate() {
        let start = (rect.y as usize + row) * stride + rect.x as usize * 4;
        for (k, r) in key[start..start + span].iter_mut().zip(res) {
            *k = k.wrapping_add(*r);
        }
    }
}

fn rows(px: &[u8], width: u32, rect: Rect) -> impl Iterator<Item = &[u8]> {
    let stride = width as usize * 4;
    let (x, w) = (rect.x as usize * 4, rect.w as usize * 4);
    px.chunks_exact(stride)
        .skip(rect.y as usize)
        .take(rect.h as usize)
        .map(move |row| &row[x..x + w])
}

/// Compresses `w x h` RGBA8 bytes as a PNG.
pub(crate) fn encode_png(rgba: &[u8], w: u32, h: u32) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    // Level 6 with adaptive filters: measured on 256 px faces, `Best` saves under 2% and
    // takes several times longer, `Fast` is a third larger.
    PngEncoder::new_with_quality(&mut out, CompressionType::Level(6), FilterType::Adaptive)
        .write_image(rgba, w, h, ExtendedColorType::Rgba8)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decodes a record's PNG, which must be `rect`'s size in RGBA8.
pub(crate) fn decode_png(png: &[u8], rect: Rect) -> Result<Vec<u8>, String> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(rect.w);
    limits.max_image_height = Some(rect.h);
    let decoder = PngDecoder::with_limits(std::io::Cursor::new(png), limits)
        .map_err(|e| format!("unreadable PNG: {e}"))?;
    let (w, h) = decoder.dimensions();
    if (w, h) != (rect.w, rect.h) || decoder.color_type() != image::ColorType::Rgba8 {
        return Err(format!(
            "PNG is {w}x{h} {:?}, expected {}x{} Rgba8",
            decoder.color_type(),
            rect.w,
            rect.h
        ));
    }
    let mut px = vec![0u8; rect.w as usize * rect.h as usize * 4];
    decoder
        .read_image(&mut px)
        .map_err(|e| format!("unreadable PNG: {e}"))?;
    Ok(px)
}

/// Checks a record's PNG signature and IHDR (size, 8-bit RGBA) without inflating it, so a
/// clip with mislabelled frames is refused when it is opened rather than mid-line.
pub(crate) fn check_png_header(png: &[u8], rect: Rect) -> Result<(), String> {
    let be = |o: usize| u32::from_be_bytes([png[o], png[o + 1], png[o + 2], png[o + 3]]);
    if png.len() < 33 || png[..8] != PNG_SIGNATURE || &png[12..16] != b"IHDR" {
        return Err("its pixels are not a PNG".into());
    }
    let (w, h, depth, color) = (be(16), be(20), png[24], png[25]);
    if (w, h) != (rect.w, rect.h) || depth != 8 || color != 6 {
        return Err(format!(
            "its PNG is {w}x{h} (depth {depth}, colour type {color}); expected {}x{} 8-bit RGBA",
            rect.w, rect.h
        ));
    }
    Ok(())
}
