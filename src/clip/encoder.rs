//! Building a clip one frame at a time, so a long line is never held uncompressed.

use super::codec;
use super::format::{self, Header, Kind, Rect};
use super::{ClipError, FaceClip};
use crate::render::FaceFrame;

/// Default [`ClipEncoder::with_key_interval`]: a key frame every two seconds at 25 fps.
pub const DEFAULT_KEY_INTERVAL: usize = 50;

/// Compresses frames into a [`FaceClip`]: `push` each frame in order, then `finish`.
///
/// ```
/// use bevy_edtalk::clip::ClipEncoder;
/// use bevy_edtalk::render::FaceFrame;
///
/// let mut enc = ClipEncoder::new(8, 8, 25.0).unwrap();
/// for shade in [10u8, 20, 30] {
///     enc.push(&FaceFrame { width: 8, height: 8, rgba: vec![shade; 8 * 8 * 4] }).unwrap();
/// }
/// let clip = enc.finish(0.12, Some("three shades")).unwrap();
/// assert_eq!(clip.frame_count(), 3);
/// assert_eq!(clip.frame(1).unwrap().rgba[0], 20);
/// ```
pub struct ClipEncoder {
    width: u32,
    height: u32,
    fps: f32,
    key_interval: usize,
    tolerance: u8,
    /// Frame records written so far (the header is written by `finish`, when the count
    /// is known).
    records: Vec<u8>,
    /// The previous frame as the decoder will rebuild it, and how many frames ago the
    /// last key frame was.
    prev: Option<(Vec<u8>, usize)>,
    /// The whole-frame delta, reused from frame to frame.
    scratch: Vec<u8>,
    frames: usize,
}

impl ClipEncoder {
    /// An encoder for `width x height` frames at `fps`.
    pub fn new(width: u32, height: u32, fps: f32) -> Result<Self, ClipError> {
        format::check_geometry(width, height, fps)?;
        Ok(Self {
            width,
            height,
            fps,
            key_interval: DEFAULT_KEY_INTERVAL,
            tolerance: 0,
            records: Vec::new(),
            prev: None,
            scratch: Vec::new(),
            frames: 0,
        })
    }

    /// A key frame every `n` frames (at least 1; 1 stores every frame whole). Longer
    /// intervals are a little smaller; seeking to a frame decodes at most `n` PNGs (its
    /// key frame and the deltas after it), playing forward one per frame.
    pub fn with_key_interval(mut self, n: usize) -> Self {
        self.key_interval = n.max(1);
        self
    }

    /// Lets every channel of a delta frame land within `tolerance` levels of the pixel
    /// given (0, the default, is lossless; at most [`format::MAX_TOLERANCE`]). At 1 the
    /// difference is invisible and a talking face's clip about 40% smaller.
    pub fn with_tolerance(mut self, tolerance: u8) -> Result<Self, ClipError> {
        if tolerance > format::MAX_TOLERANCE {
            return Err(ClipError::Encode {
                index: 0,
                problem: format!("tolerance {tolerance}; at most {}", format::MAX_TOLERANCE),
            });
        }
        self.tolerance = tolerance;
        Ok(self)
    }

    /// Frames pushed so far.
    pub fn frame_count(&self) -> usize {
        self.frames
    }

    /// Compresses the next frame.
    pub fn push(&mut self, frame: &FaceFrame) -> Result<(), ClipError> {
        let index = self.frames;
        let fail = |problem: String| ClipError::Encode { index, problem };
        if (frame.width, frame.height) != (self.width, self.height) {
            return Err(fail(format!(
                "it is {}x{}, the clip is {}x{}",
                frame.width, frame.height, self.width, self.height
            )));
        }
        let len = self.width as usize * self.height as usize * 4;
        if frame.rgba.len() != len {
            return Err(fail(format!(
                "{} bytes of pixels, expected {len}",
                frame.rgba.len()
            )));
        }
        if index >= format::MAX_FRAMES as usize {
            return Err(fail(format!(
                "a clip holds at most {} frames",
                format::MAX_FRAMES
            )));
        }
        let (w, h, tol) = (self.width, self.height, self.tolerance);
        match &mut self.prev {
            Some((prev, age)) if *age < self.key_interval => {
                let rect = codec::delta(&frame.rgba, prev, w, tol, &mut self.scratch);
                let mut png = Vec::new();
                if !rect.is_empty() {
                    let d = codec::crop(&self.scratch, w, rect);
                    png = codec::encode_png(&d, rect.w, rect.h, 0).map_err(fail)?;
                    codec::apply(prev, w, rect, &d, tol);
                }
                format::write_record(&mut self.records, Kind::Delta, rect, &png);
                *age += 1;
            }
            _ => {
                let png = codec::encode_png(&frame.rgba, w, h, 255).map_err(fail)?;
                let full = Rect { x: 0, y: 0, w, h };
                format::write_record(&mut self.records, Kind::Key, full, &png);
                self.prev = Some((frame.rgba.clone(), 1));
            }
        }
        self.frames += 1;
        Ok(())
    }

    /// The finished clip: `audio_seconds` is the line's audio duration (the frames cover
    /// `frame_count / fps` of it), `metadata` any text worth keeping with it (e.g. what
    /// it was baked from).
    pub fn finish(self, audio_seconds: f64, metadata: Option<&str>) -> Result<FaceClip, ClipError> {
        if self.frames == 0 {
            return Err(ClipError::Encode {
                index: 0,
                problem: "a clip needs at least one frame".into(),
            });
        }
        let header = Header {
            width: self.width,
            height: self.height,
            fps: self.fps,
            frame_count: self.frames as u32,
            audio_seconds,
            tolerance: self.tolerance,
            metadata: metadata.filter(|m| !m.is_empty()).map(str::to_string),
        };
        let mut bytes = Vec::with_capacity(format::HEADER_LEN + self.records.len() + 4096);
        format::write_header(&mut bytes, &header);
        bytes.extend_from_slice(&self.records);
        format::write_checksum(&mut bytes);
        // Reading back what was written checks the header values (duration, metadata
        // length) with the same rules every reader applies.
        FaceClip::decode(&bytes)
    }
}
