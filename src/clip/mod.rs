//! Baked face clips: a whole line's face frames rendered once, stored compressed with
//! their timing, and played back in sync with the line's audio at no inference cost. This
//! is how a game ships neural faces to players without a GPU or the checkpoints.
//!
//! `edtalk bake-clip` writes clips (one line, or a whole game's dialogue from a manifest);
//! `edtalk clip-frames` writes a clip's frames back out as PNGs. In code:
//!
//! ```no_run
//! use bevy_edtalk::clip::{ClipCursor, FaceClip};
//!
//! let clip = FaceClip::read("assets/clips/greeting.faceclip")?;
//! // Each game frame, the face at the audio's playhead. A cursor holds one decoded frame
//! // and decodes one small PNG per new frame while the line plays forward.
//! let mut cursor = ClipCursor::new();
//! if let Some(face) = cursor.at_time(&clip, 1.25) {
//!     let face = face?;
//!     assert_eq!((face.width, face.height), (clip.width(), clip.height()));
//! }
//! # Ok::<(), bevy_edtalk::clip::ClipError>(())
//! ```
//!
//! # Timing
//!
//! Frame `i` shows during `[i / fps, (i + 1) / fps)` of the audio (25 fps: 40 ms each),
//! the frames `edtalk render --frames-out` writes for the same line, one for one. The
//! audio may run up to one frame longer than the last whole frame;
//! [`FaceClip::index_at`] holds the last frame over that tail.
//!
//! # Decoding and memory
//!
//! Opening a clip ([`FaceClip::decode`], [`FaceClip::read`]) checks the whole file (header
//! ranges, every record's bounds and PNG header, the CRC-32) but inflates no pixels; the
//! file's bytes stay in memory (0.15 to 0.4 MB per second of speech for a 256 px face;
//! see the README). Pixels are decoded on demand:
//!
//! * [`ClipCursor`] (for playback) holds one frame, `width * height * 4` bytes (256 KB at
//!   256 px): playing forward decodes one delta PNG per frame, seeking back restarts at
//!   the key frame (at most 50 PNG decodes).
//! * [`FaceClip::frame`] / [`FaceClip::frame_at`] keep every frame they return inside the
//!   clip (6.6 MB per second of speech at 256 px if a whole line is asked for) until
//!   [`FaceClip::forget_decoded`].
//! * [`FaceClip::frames`] decodes each frame once, in order, keeping nothing.
//!
//! # File format (version 1)
//!
//! One file, little-endian throughout:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `FACECLIP` |
//! | 2 | format version, `1` |
//! | 2 | flags, `0` (reserved) |
//! | 4 + 4 | frame width, height in pixels (1..=8192) |
//! | 4 | frames per second, `f32` (25 for EDTalk) |
//! | 4 | frame count (1..=360 000) |
//! | 8 | audio duration in seconds, `f64` |
//! | 1 + 3 | tolerance (0 lossless, up to 4), then three reserved zero bytes |
//! | 4 + n | metadata length, then that many bytes of UTF-8 (empty: none) |
//! | per frame | kind `u8` (0 key, 1 delta), rectangle x, y, w, h, PNG length (`u32`s), PNG |
//! | 4 | CRC-32 of every byte before it |
//!
//! A *key* frame's PNG is the whole frame. A *delta* frame's PNG holds, inside the
//! smallest rectangle where it differs from the previous frame, the difference from that
//! frame: per byte and wrapping at tolerance 0; rounded to steps of `2t + 1` (a signed
//! byte each, applied with clamping) at tolerance `t`, taken against the frame as the
//! decoder rebuilds it so errors never add up. An unchanged frame is a 0x0 rectangle and
//! no PNG. PNGs are 8-bit RGB where the alpha says nothing (opaque key frames, deltas of
//! opaque faces), else RGBA. A key frame starts the clip and every 50 frames after
//! ([`ClipEncoder::with_key_interval`]).
//!
//! Why this design: lossless by default, so a baked clip plays back exactly the frames
//! `render` writes; only the PNG codec the crate already links (`image`), so nothing new
//! to build or ship; and consecutive frames of a talking face differ only around the mouth
//! and eyes, so deltas are a sixth of whole frames (measured in the README). Lossy video
//! codecs would be smaller still but need a decoder the crate does not have and could not
//! promise the same frames; tolerance 1 (invisible) is the middle ground, 40% smaller.

mod codec;
mod encoder;
mod error;
pub mod format;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

pub use encoder::{ClipEncoder, DEFAULT_KEY_INTERVAL};
pub use error::ClipError;
use format::{Header, Kind, Record};

use crate::render::FaceFrame;

/// A baked line: its face frames (compressed; decoded on demand) and timing. See the
/// module docs for the file format and memory use.
#[derive(Clone)]
pub struct FaceClip {
    /// Unique per decoded clip (clones share it: same bytes), so a [`ClipCursor`] knows
    /// whether the frame it holds belongs to the clip it is asked about.
    id: u64,
    /// The whole file; records point into it.
    bytes: Arc<[u8]>,
    header: Header,
    records: Vec<Record>,
    /// Decoded frames, filled on first use.
    decoded: Vec<OnceLock<FaceFrame>>,
}

impl std::fmt::Debug for FaceClip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceClip")
            .field("width", &self.header.width)
            .field("height", &self.header.height)
            .field("fps", &self.header.fps)
            .field("frames", &self.records.len())
            .field("audio_seconds", &self.header.audio_seconds)
            .field("bytes", &self.bytes.len())
            .field("metadata", &self.header.metadata)
            .finish()
    }
}

impl FaceClip {
    /// Compresses whole frames at once (see [`ClipEncoder`] to add them one at a time).
    pub fn from_frames(
        frames: &[FaceFrame],
        fps: f32,
        audio_seconds: f64,
        metadata: Option<&str>,
    ) -> Result<Self, ClipError> {
        let first = frames.first().ok_or(ClipError::Encode {
            index: 0,
            problem: "a clip needs at least one frame".into(),
        })?;
        let mut enc = ClipEncoder::new(first.width, first.height, fps)?;
        for f in frames {
            enc.push(f)?;
        }
        enc.finish(audio_seconds, metadata)
    }

    /// Opens a clip from its bytes, checking all of it (see the module docs) but decoding
    /// no pixels yet.
    pub fn decode(bytes: &[u8]) -> Result<Self, ClipError> {
        let (header, records) = format::parse(bytes)?;
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            bytes: bytes.into(),
            decoded: (0..records.len()).map(|_| OnceLock::new()).collect(),
            header,
            records,
        })
    }

    /// Reads and opens a `.faceclip` file; errors name it.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, ClipError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ClipError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::decode(&bytes).map_err(|e| e.in_file(path))
    }

    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        self.bytes.to_vec()
    }

    /// Writes the file (directly; callers wanting an atomic write write a temporary name
    /// and rename it).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), ClipError> {
        let path = path.as_ref();
        std::fs::write(path, &self.bytes).map_err(|source| ClipError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Frame width in pixels.
    pub fn width(&self) -> u32 {
        self.header.width
    }

    /// Frame height in pixels.
    pub fn height(&self) -> u32 {
        self.header.height
    }

    /// Frames per second.
    pub fn fps(&self) -> f32 {
        self.header.fps
    }

    /// Number of frames.
    pub fn frame_count(&self) -> usize {
        self.records.len()
    }

    /// The line's audio duration in seconds.
    pub fn audio_seconds(&self) -> f64 {
        self.header.audio_seconds
    }

    /// Seconds the frames cover: `frame_count / fps`.
    pub fn frames_seconds(&self) -> f64 {
        self.records.len() as f64 / self.header.fps as f64
    }

    /// The metadata string, if one was stored (e.g. what the clip was baked from).
    pub fn metadata(&self) -> Option<&str> {
        self.header.metadata.as_deref()
    }

    /// Size of the file in bytes.
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    /// The frame showing `seconds` into the audio: `floor(seconds * fps)`, the last frame
    /// over the audio's tail shorter than a frame, `None` before 0 and after the audio.
    pub fn index_at(&self, seconds: f64) -> Option<usize> {
        if seconds.is_nan() || seconds < 0.0 {
            return None;
        }
        // The epsilon keeps t = i / fps on frame i despite rounding (0.28 * 25 = 6.99..).
        let i = (seconds * self.header.fps as f64 + 1e-9).floor();
        let n = self.records.len();
        if i < n as f64 {
            Some(i as usize)
        } else if seconds < self.header.audio_seconds.max(self.frames_seconds()) {
            Some(n - 1)
        } else {
            None
        }
    }

    /// The frame showing `seconds` into the audio (see [`FaceClip::index_at`]), decoded
    /// and kept on first use; `None` outside the line or if its pixels are damaged.
    pub fn frame_at(&self, seconds: f64) -> Option<&FaceFrame> {
        self.frame(self.index_at(seconds)?)
    }

    /// Frame `index`, decoded and kept on first use; `None` past the end or if its pixels
    /// are damaged ([`FaceClip::try_frame`] says why).
    pub fn frame(&self, index: usize) -> Option<&FaceFrame> {
        self.try_frame(index).ok()
    }

    /// Frame `index`, decoded and kept on first use (from the nearest kept frame before
    /// it, or its key frame).
    pub fn try_frame(&self, index: usize) -> Result<&FaceFrame, ClipError> {
        let slot = self.slot(index)?;
        if let Some(f) = slot.get() {
            return Ok(f);
        }
        let key = self.records[index].key;
        let have = (key..index)
            .rev()
            .find(|&j| self.decoded[j].get().is_some());
        let mut px = have
            .and_then(|j| self.decoded[j].get())
            .map(|f| f.rgba.clone())
            .unwrap_or_default();
        self.rebuild(index, &mut px, have)?;
        // Another thread may have decoded it meanwhile; both results are equal.
        let _ = slot.set(self.frame_of(px));
        slot.get().ok_or(ClipError::NoSuchFrame {
            index,
            count: self.records.len(),
        })
    }

    /// Frame `index` as a new buffer, keeping nothing decoded (see [`ClipCursor`] to
    /// play a clip with one frame in memory).
    pub fn decode_frame(&self, index: usize) -> Result<FaceFrame, ClipError> {
        if let Some(f) = self.slot(index)?.get() {
            return Ok(f.clone());
        }
        ClipCursor::new().seek(self, index).cloned()
    }

    /// Every frame in order, each a new buffer, decoding each PNG once.
    pub fn frames(&self) -> impl Iterator<Item = Result<FaceFrame, ClipError>> + '_ {
        let mut cursor = ClipCursor::new();
        (0..self.records.len()).map(move |i| cursor.seek(self, i).cloned())
    }

    /// Drops every decoded frame (they decode again when next asked for).
    pub fn forget_decoded(&mut self) {
        self.decoded.iter_mut().for_each(|s| *s = OnceLock::new());
    }

    /// Largest per-channel error of its frames against the rendered ones (0: lossless;
    /// see [`ClipEncoder::with_tolerance`]).
    pub fn tolerance(&self) -> u8 {
        self.header.tolerance
    }

    fn frame_of(&self, rgba: Vec<u8>) -> FaceFrame {
        FaceFrame {
            width: self.header.width,
            height: self.header.height,
            rgba,
        }
    }

    /// Makes `px` frame `index`: it holds frame `have` (if that is in `index`'s chain
    /// of deltas) or anything (then decoding starts at the key frame).
    fn rebuild(
        &self,
        index: usize,
        px: &mut Vec<u8>,
        have: Option<usize>,
    ) -> Result<(), ClipError> {
        let key = self.records[index].key;
        let start = match have {
            Some(h) if (key..=index).contains(&h) => h + 1,
            _ => key,
        };
        for m in start..=index {
            self.step(m, px)?;
        }
        Ok(())
    }

    /// Applies record `index` to `px`, which holds the frame before it (a key frame
    /// replaces it).
    fn step(&self, index: usize, px: &mut Vec<u8>) -> Result<(), ClipError> {
        let rec = &self.records[index];
        let bad = |problem: String| ClipError::BadFrame { index, problem };
        let png = &self.bytes[rec.png.clone()];
        match rec.kind {
            Kind::Key => *px = codec::decode_png(png, rec.rect, 255).map_err(bad)?,
            Kind::Delta if rec.rect.is_empty() => {}
            Kind::Delta => {
                let d = codec::decode_png(png, rec.rect, 0).map_err(bad)?;
                let (w, tol) = (self.header.width, self.header.tolerance);
                codec::apply(px, w, rec.rect, &d, tol);
            }
        }
        Ok(())
    }

    fn slot(&self, index: usize) -> Result<&OnceLock<FaceFrame>, ClipError> {
        self.decoded.get(index).ok_or(ClipError::NoSuchFrame {
            index,
            count: self.records.len(),
        })
    }
}

/// Plays a clip holding one decoded frame: seeking forward decodes only the frames in
/// between (one PNG per frame in normal playback), seeking back restarts at the key frame.
/// What a game keeps per talking face; the clip itself stays shared and untouched.
#[derive(Clone, Debug)]
pub struct ClipCursor {
    /// The clip it decoded from ([`FaceClip`]'s id) and which frame it holds.
    at: Option<(u64, usize)>,
    frame: FaceFrame,
}

impl Default for ClipCursor {
    fn default() -> Self {
        Self::new()
    }
}

impl ClipCursor {
    /// A cursor holding nothing yet.
    pub fn new() -> Self {
        Self {
            at: None,
            frame: FaceFrame {
                width: 0,
                height: 0,
                rgba: Vec::new(),
            },
        }
    }

    /// Frame `index` of `clip`.
    pub fn seek(&mut self, clip: &FaceClip, index: usize) -> Result<&FaceFrame, ClipError> {
        clip.slot(index)?;
        let have = match self.at {
            Some((id, h)) if id == clip.id => Some(h),
            _ => None,
        };
        if have != Some(index) {
            // Cleared first: a failed decode leaves the buffer half-updated.
            self.at = None;
            clip.rebuild(index, &mut self.frame.rgba, have)?;
            (self.frame.width, self.frame.height) = (clip.width(), clip.height());
            self.at = Some((clip.id, index));
        }
        Ok(&self.frame)
    }

    /// The frame showing `seconds` into `clip`'s audio ([`FaceClip::index_at`]); `None`
    /// outside the line.
    pub fn at_time(
        &mut self,
        clip: &FaceClip,
        seconds: f64,
    ) -> Option<Result<&FaceFrame, ClipError>> {
        let index = clip.index_at(seconds)?;
        Some(self.seek(clip, index))
    }
}
