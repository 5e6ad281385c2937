//! Audio front end: decoding, resampling to 16 kHz mono, the mel spectrogram, and
//! signal-processing lip-sync.
//!
//! Everything downstream of decoding works on 16 kHz mono `f32` samples, the rate EDTalk's
//! Audio2Lip was trained on. One 25 fps video frame is [`SAMPLES_PER_FRAME`] = 640 samples.

pub mod decode;
pub mod lipsync;
pub mod mel;
pub mod resample;
pub mod stream;
pub mod windows;

pub use decode::{AudioError, DecodeOptions, DecodedAudio, SourceAudio, decode_bytes, decode_file};
pub use lipsync::{LipSync, LipSyncSettings};
pub use mel::{MEL_BANDS, Mel, MelSpectrogram, slaney_mel_basis};
pub use resample::{downmix_to_mono, resample_to_16k};
pub use stream::{AudioStream, StreamError};
pub use windows::{MEL_WINDOW, frame_windows, num_video_frames};

/// Sample rate of everything after decoding.
pub const SAMPLE_RATE: u32 = 16_000;
/// 16 kHz samples per 25 fps motion frame.
pub const SAMPLES_PER_FRAME: usize = 640;
