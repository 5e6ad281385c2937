//! Baked face clips: a whole line's face frames rendered once, stored compressed with
//! their timing, and played back in sync with the line's audio at no inference cost. This
//! is how a game ships neural faces to players without a GPU or the checkpoints.
//!
//! `edtalk bake-clip` writes clips (one line, or a whole game's dialogue from a manifest);
//! `edtalk clip-frames` writes a clip's frames back out as PNGs. In code:
//!
//! ```no_run
//! use bevy_edtalk::clip::FaceClip;
//!
//! let clip = FaceClip::read("assets/clips/greeting.faceclip")?;
//! // Each game frame: the face at the audio's playhead.
//! if let Some(face) = clip.frame_at(1.25) {
//!     assert_eq!((face.width, face.height), (clip.width(), clip.height()));
//! }
//! # Ok::<(), bevy_edtalk::clip::ClipError>(())
//! ```
//!
//! # Timing
//!
//! Frame `i` shows during `[i / fps, (i + 1) / fps)` of the audio (25 fps: 40 ms each),
//! exactly the frames `edtalk render --frames-out` writes for the same line. The audio may
//! run up to one frame longer than the last whole frame; [`FaceClip::frame_at`] holds the
//! last frame over that tail.
//!
//! # Decoding
//!
//! Opening a clip ([`FaceClip::decode`], [`FaceClip::read`]) checks the whole file (header
//! ranges, every record's bounds and PNG header, the CRC-32) but inflates no pixels.
//! Frames are decoded when first asked for and kept ([`FaceClip::frame`]); a frame costs at
//! most two PNG decodes (its own and its key frame's), so seeking is as cheap as playing.
//! Resident memory is the file itself (about 0.2 MB per second of speech for a 256 px
//! face) plus `width * height * 4` bytes per decoded frame (6.6 MB per second at 256 px);
//! [`FaceClip::forget_decoded`] drops them after a line, and [`FaceClip::decode_frame`]
//! decodes without keeping anything but key frames.
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
//! | 4 + n | metadata length, then that many bytes of UTF-8 (empty: none) |
//! | per frame | kind `u8` (0 key, 1 delta), rectangle x, y, w, h (`u32` each), PNG length `u32`, PNG |
//! | 4 | CRC-32 of every byte before it |
//!
//! A *key* frame's PNG is the whole frame (8-bit RGBA). A *delta* frame stores, inside the
//! smallest rectangle where it differs from the last key frame, the per-byte wrapping
//! difference `frame - key` as an RGBA PNG (an unchanged frame stores a 0x0 rectangle and
//! no PNG). A key frame starts the clip and every 50 frames after
//! ([`ClipEncoder::with_key_interval`]).
//!
//! Why this design: it is lossless, so a baked clip plays back exactly the frames `render`
//! writes; it needs only the PNG codec games already link (`image`); and a talking face
//! with a still head changes only around the mouth and eyes, so deltas are small: measured
//! sizes are in the README. Lossy video codecs would be smaller but need a decoder the
//! crate does not have and would break "the same frames".

mod codec;
mod encoder;
mod error;
pub mod format;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::{Arc, OnceLock};

pub use encoder::{ClipEncoder, DEFAULT_KEY_INTERVAL};
pub use error::ClipError;
use format::{Header, Kind, Record};

use crate::render::FaceFrame;

/// A baked line: its face frames (compressed; decoded on demand) and timing. See the
/// module docs for the file format and memory use.
#[derive(Clone)]
pub struct FaceClip {
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
        Ok(Self {
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

    /// Frame `index`, decoded and kept on first use.
    pub fn try_frame(&self, index: usize) -> Result<&FaceFrame, ClipError> {
        let slot = self.slot(index)?;
        if let Some(f) = slot.get() {
            return Ok(f);
        }
        let frame = self.decode_uncached(index)?;
        // Another thread may have decoded it meanwhile; both results are equal.
        let _ = slot.set(frame);
        slot.get().ok_or(ClipError::NoSuchFrame {
            index,
            count: self.records.len(),
        })
    }

    /// Frame `index` as a new buffer, keeping no decoded pixels except its key frame's.
    pub fn decode_frame(&self, index: usize) -> Result<FaceFrame, ClipError> {
        if let Some(f) = self.slot(index)?.get() {
            return Ok(f.clone());
        }
        self.decode_uncached(index)
    }

    /// Every frame in order, each a new buffer (see [`FaceClip::decode_frame`]).
    pub fn frames(&self) -> impl Iterator<Item = Result<FaceFrame, ClipError>> + '_ {
        (0..self.records.len()).map(|i| self.decode_frame(i))
    }

    /// Drops every decoded frame (they decode again when next asked for).
    pub fn forget_decoded(&mut self) {
        self.decoded.iter_mut().for_each(|s| *s = OnceLock::new());
    }

    fn slot(&self, index: usize) -> Result<&OnceLock<FaceFrame>, ClipError> {
        self.decoded.get(index).ok_or(ClipError::NoSuchFrame {
            index,
            count: self.records.len(),
        })
    }

    fn decode_uncached(&self, index: usize) -> Result<FaceFrame, ClipError> {
        let rec = &self.records[index];
        let bad = |problem: String| ClipError::BadFrame { index, problem };
        let png = &self.bytes[rec.png.clone()];
        let rgba = match rec.kind {
            Kind::Key => codec::decode_png(png, rec.rect).map_err(bad)?,
            Kind::Delta => {
                let mut px = self.try_frame(rec.key)?.rgba.clone();
                if !rec.rect.is_empty() {
                    let res = codec::decode_png(png, rec.rect).map_err(bad)?;
                    codec::apply_residual(&mut px, self.header.width, rec.rect, &res);
                }
                px
            }
        };
        Ok(FaceFrame {
            width: self.header.width,
            height: self.header.height,
            rgba,
        })
    }
}
