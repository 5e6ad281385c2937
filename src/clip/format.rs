//! The `.faceclip` container: header, frame records and checksum (layout in the module
//! docs of [`crate::clip`]). Parsing checks every length and range before it is used, so
//! hostile bytes give a [`ClipError`], never a panic or a huge allocation.

use std::ops::Range;

use super::ClipError;

/// The first eight bytes of every clip.
pub const MAGIC: [u8; 8] = *b"FACECLIP";
/// [`MAGIC`] as text, for messages.
pub(crate) const MAGIC_TEXT: &str = "FACECLIP";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Largest frame side (the same bound as portraits).
pub const MAX_SIDE: u32 = 8192;
/// Most frames in one clip: four hours at 25 fps, far beyond any line of dialogue.
pub const MAX_FRAMES: u32 = 4 * 60 * 60 * 25;
/// Longest metadata string.
pub const MAX_METADATA: u32 = 1 << 20;
/// Largest per-channel error a clip may be encoded with (see `ClipEncoder::with_tolerance`).
pub const MAX_TOLERANCE: u8 = 4;
/// Bytes of the fixed header (magic to metadata length).
pub(crate) const HEADER_LEN: usize = 44;
/// Bytes of a frame record before its PNG: kind, x, y, w, h, length.
pub(crate) const RECORD_LEN: usize = 21;

/// A rectangle of a frame, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub fn is_empty(&self) -> bool {
        self.w == 0 || self.h == 0
    }
}

/// How a frame's pixels are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The whole frame's pixels.
    Key = 0,
    /// Differences from the previous frame inside a rectangle (see `codec`).
    Delta = 1,
}

/// The fixed header's values.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Header {
    pub width: u32,
    pub height: u32,
    pub fps: f32,
    pub frame_count: u32,
    pub audio_seconds: f64,
    /// Largest per-channel error of a delta frame: 0 is lossless.
    pub tolerance: u8,
    pub metadata: Option<String>,
}

/// Where one frame's stored pixels are.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Record {
    pub kind: Kind,
    pub rect: Rect,
    /// The PNG's bytes in the file (empty for an unchanged delta).
    pub png: Range<usize>,
    /// The key frame its chain of deltas starts from (a key frame's own index).
    pub key: usize,
}

/// Bounds-checked little-endian reads.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8], ClipError> {
        let available = self.bytes.len() - self.pos;
        if n > available {
            return Err(ClipError::Truncated {
                what: what(),
                offset: self.pos,
                needed: n,
                available,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], ClipError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, ClipError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
}

fn header_err(problem: String) -> ClipError {
    ClipError::BadHeader(problem)
}

/// Checks a frame size and rate the way the parser does (the encoder uses it too).
pub(crate) fn check_geometry(width: u32, height: u32, fps: f32) -> Result<(), ClipError> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(header_err(format!(
            "frame size {width}x{height} is empty or larger than {MAX_SIDE} px a side"
        )));
    }
    if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) {
        return Err(header_err(format!(
            "fps is {fps}, expected 0 < fps <= 1000"
        )));
    }
    Ok(())
}

/// Parses a whole clip: header, records (checking each PNG's own header against its
/// rectangle) and the checksum.
pub(crate) fn parse(bytes: &[u8]) -> Result<(Header, Vec<Record>), ClipError> {
    let mut r = Reader { bytes, pos: 0 };
    let head = || "header".to_string();
    let magic_len = bytes.len().min(8);
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(ClipError::BadMagic {
            found: String::from_utf8_lossy(&bytes[..magic_len]).into_owned(),
        });
    }
    let fixed: [u8; HEADER_LEN] = r.array(&head)?;
    let u16_at = |o: usize| u16::from_le_bytes([fixed[o], fixed[o + 1]]);
    let u32_at =
        |o: usize| u32::from_le_bytes([fixed[o], fixed[o + 1], fixed[o + 2], fixed[o + 3]]);
    let version = u16_at(8);
    if version != VERSION {
        return Err(ClipError::UnsupportedVersion { found: version });
    }
    let flags = u16_at(10);
    if flags != 0 {
        return Err(header_err(format!(
            "flags {flags:#06x} are set; version {VERSION} defines none"
        )));
    }
    let (width, height) = (u32_at(12), u32_at(16));
    let fps = f32::from_bits(u32_at(20));
    let frame_count = u32_at(24);
    let mut seconds = [0u8; 8];
    seconds.copy_from_slice(&fixed[28..36]);
    let audio_seconds = f64::from_le_bytes(seconds);
    let tolerance = fixed[36];
    let reserved = &fixed[37..40];
    let meta_len = u32_at(40);
    check_geometry(width, height, fps)?;
    if tolerance > MAX_TOLERANCE {
        return Err(header_err(format!(
            "tolerance {tolerance}; at most {MAX_TOLERANCE}"
        )));
    }
    if reserved != [0, 0, 0] {
        return Err(header_err(format!(
            "reserved bytes {reserved:?} are set; version {VERSION} defines none"
        )));
    }
    if frame_count == 0 || frame_count > MAX_FRAMES {
        return Err(header_err(format!(
            "{frame_count} frames; a clip holds 1 to {MAX_FRAMES}"
        )));
    }
    if !(audio_seconds.is_finite() && (0.0..=1e7).contains(&audio_seconds)) {
        return Err(header_err(format!(
            "audio duration {audio_seconds} s is not a finite number of seconds >= 0"
        )));
    }
    if meta_len > MAX_METADATA {
        return Err(header_err(format!(
            "metadata of {meta_len} bytes; at most {MAX_METADATA}"
        )));
    }
    let meta = r.take(meta_len as usize, &|| "metadata".into())?;
    let metadata = match std::str::from_utf8(meta) {
        Ok("") => None,
        Ok(s) => Some(s.to_string()),
        Err(e) => return Err(header_err(format!("metadata is not UTF-8: {e}"))),
    };
    // Each record takes at least RECORD_LEN bytes: a count the rest of the file cannot
    // hold is refused before anything is sized by it.
    let rest = bytes.len() - r.pos;
    if frame_count as usize > rest / RECORD_LEN {
        return Err(ClipError::Truncated {
            what: format!("{frame_count} frame records ({RECORD_LEN} bytes or more each)"),
            offset: r.pos,
            needed: frame_count as usize * RECORD_LEN,
            available: rest,
        });
    }
    let header = Header {
        width,
        height,
        fps,
        frame_count,
        audio_seconds,
        tolerance,
        metadata,
    };
    let mut records = Vec::with_capacity(frame_count as usize);
    let mut key = None;
    for index in 0..frame_count as usize {
        let record = parse_record(&mut r, &header, index, key)?;
        if record.kind == Kind::Key {
            key = Some(index);
        }
        records.push(record);
    }
    let body_end = r.pos;
    let stored = r.u32(&|| "checksum".into())?;
    let computed = crc32fast::hash(&bytes[..body_end]);
    if stored != computed {
        return Err(ClipError::Checksum { stored, computed });
    }
    if r.pos != bytes.len() {
        return Err(header_err(format!(
            "{} stray bytes after the checksum",
            bytes.len() - r.pos
        )));
    }
    Ok((header, records))
}

fn parse_record(
    r: &mut Reader,
    h: &Header,
    index: usize,
    key: Option<usize>,
) -> Result<Record, ClipError> {
    let what = || format!("frame {index}");
    let fixed: [u8; RECORD_LEN] = r.array(&what)?;
    let u32_at =
        |o: usize| u32::from_le_bytes([fixed[o], fixed[o + 1], fixed[o + 2], fixed[o + 3]]);
    let bad = |problem: String| ClipError::BadFrame { index, problem };
    let rect = Rect {
        x: u32_at(1),
        y: u32_at(5),
        w: u32_at(9),
        h: u32_at(13),
    };
    let len = u32_at(17) as usize;
    let start = r.pos;
    r.take(len, &what)?;
    let (kind, key) = match (fixed[0], key) {
        (0, _) => (Kind::Key, index),
        (1, Some(k)) => (Kind::Delta, k),
        (1, None) => return Err(bad("a delta frame before any key frame".into())),
        (k, _) => return Err(bad(format!("unknown frame kind {k}"))),
    };
    let full = Rect {
        x: 0,
        y: 0,
        w: h.width,
        h: h.height,
    };
    if kind == Kind::Key && rect != full {
        return Err(bad(format!(
            "a key frame's rectangle must be the whole {}x{} frame, not {rect:?}",
            h.width, h.height
        )));
    }
    let inside = |o: u32, n: u32, side: u32| o.checked_add(n).is_some_and(|end| end <= side);
    if !inside(rect.x, rect.w, h.width) || !inside(rect.y, rect.h, h.height) {
        return Err(bad(format!(
            "rectangle {rect:?} lies outside the {}x{} frame",
            h.width, h.height
        )));
    }
    if rect.is_empty() != (len == 0) {
        return Err(bad(format!(
            "{len} bytes of pixels for a {}x{} rectangle",
            rect.w, rect.h
        )));
    }
    if len > 0 {
        super::codec::check_png_header(&r.bytes[start..start + len], rect).map_err(bad)?;
    }
    Ok(Record {
        kind,
        rect,
        png: start..start + len,
        key,
    })
}

/// Writes the header (magic to metadata) for `frame_count` frames.
pub(crate) fn write_header(out: &mut Vec<u8>, h: &Header) {
    let meta = h.metadata.as_deref().unwrap_or("").as_bytes();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&h.width.to_le_bytes());
    out.extend_from_slice(&h.height.to_le_bytes());
    out.extend_from_slice(&h.fps.to_bits().to_le_bytes());
    out.extend_from_slice(&h.frame_count.to_le_bytes());
    out.extend_from_slice(&h.audio_seconds.to_le_bytes());
    out.extend_from_slice(&[h.tolerance, 0, 0, 0]);
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(meta);
}

/// Writes one frame record: its kind, rectangle and PNG.
pub(crate) fn write_record(out: &mut Vec<u8>, kind: Kind, rect: Rect, png: &[u8]) {
    out.push(kind as u8);
    for v in [rect.x, rect.y, rect.w, rect.h, png.len() as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(png);
}

/// Appends the CRC-32 of everything before it.
pub(crate) fn write_checksum(out: &mut Vec<u8>) {
    let crc = crc32fast::hash(out);
    out.extend_from_slice(&crc.to_le_bytes());
}
