//! Decoding audio files (wav, ogg/vorbis, mp3, flac) to 16 kHz mono with symphonia.
//!
//! The plugin plays the same file through kira; this module only needs the samples once,
//! to compute motion. Length policy: clips longer than [`DecodeOptions::max_seconds`]
//! (10 minutes by default) are rejected while decoding, before they fill memory; longer or
//! live audio goes through [`super::AudioStream`] instead.

use super::resample::resample_to_16k;
use std::path::{Path, PathBuf};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

/// Why a clip could not be turned into 16 kHz mono samples. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened or read.
    #[error("cannot read audio file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No reader or decoder recognises the data.
    #[error("{path}: not a supported audio file (expected wav, ogg/vorbis, mp3 or flac): {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What symphonia reported.
        reason: String,
    },
    /// The container holds no audio track.
    #[error("{path}: the file holds no audio track")]
    NoAudioTrack {
        /// The file.
        path: PathBuf,
    },
    /// The stream is malformed beyond what can be skipped.
    #[error("{path}: corrupt audio data: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Decoding gave no samples at all.
    #[error("{path}: the file decodes to zero samples")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The clip is longer than the configured limit.
    #[error(
        "{path}: audio is longer than the limit of {limit_seconds} s (at least {seconds:.1} s); \
         stream it with AudioStream or raise DecodeOptions::max_seconds"
    )]
    TooLong {
        /// The file.
        path: PathBuf,
        /// Seconds decoded when the limit was hit.
        seconds: f32,
        /// The limit.
        limit_seconds: f32,
    },
    /// Resampling to 16 kHz failed (e.g. a zero sample rate in the header).
    #[error("{path}: {reason}")]
    Resample {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Decoding settings.
#[derive(Clone, Debug)]
pub struct DecodeOptions {
    /// Longest accepted clip, in seconds (default 600).
    pub max_seconds: f32,
    /// Also keep the source's own samples (its rate, up to two channels) for playback at
    /// full quality; the 16 kHz mono copy is for analysis only (default off).
    pub keep_source: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_seconds: 600.0,
            keep_source: false,
        }
    }
}

/// A clip's own samples, for playback: as decoded, at the source's rate.
#[derive(Clone, Debug, Default)]
pub struct SourceAudio {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channels in the file (more than two are folded into two for playback).
    pub channels: usize,
    /// Stereo frames (left, right); a mono source has both sides equal. Non-finite
    /// samples are replaced as in [`DecodedAudio::samples`].
    pub frames: Vec<[f32; 2]>,
}

/// A decoded clip: 16 kHz mono samples plus what the source was.
#[derive(Clone, Debug, Default)]
pub struct DecodedAudio {
    /// 16 kHz mono samples; non-finite input samples have been replaced.
    pub samples: Vec<f32>,
    /// Sample rate of the source.
    pub source_rate: u32,
    /// Channel count of the source (at its first packet).
    pub source_channels: usize,
    /// How many non-finite (NaN or infinite) samples were replaced: NaN by 0, ±inf by ±1.
    pub sanitized: usize,
    /// The source's own samples, with [`DecodeOptions::keep_source`].
    pub source: Option<SourceAudio>,
}

impl DecodedAudio {
    /// Duration in seconds.
    pub fn seconds(&self) -> f32 {
        self.samples.len() as f32 / super::SAMPLE_RATE as f32
    }
}

/// Decodes a file to 16 kHz mono.
pub fn decode_file(
    path: impl AsRef<Path>,
    options: &DecodeOptions,
) -> Result<DecodedAudio, AudioError> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| AudioError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_source(Box::new(file), path, options)
}

/// Decodes an in-memory file to 16 kHz mono; `name` (a path or file name) gives the format
/// hint from its extension and names the clip in errors.
pub fn decode_bytes(
    bytes: Vec<u8>,
    name: impl AsRef<Path>,
    options: &DecodeOptions,
) -> Result<DecodedAudio, AudioError> {
    decode_source(
        Box::new(std::io::Cursor::new(bytes)),
        name.as_ref(),
        options,
    )
}

fn decode_source(
    source: Box<dyn MediaSource>,
    path: &Path,
    options: &DecodeOptions,
) -> Result<DecodedAudio, AudioError> {
    let p = || path.to_path_buf();
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match e {
            SymphoniaError::IoError(source)
                if source.kind() != std::io::ErrorKind::UnexpectedEof =>
            {
                AudioError::Io { path: p(), source }
            }
            other => AudioError::Unsupported {
                path: p(),
                reason: other.to_string(),
            },
        })?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::NoAudioTrack { path: p() })?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|c| c.audio())
        .ok_or_else(|| AudioError::NoAudioTrack { path: p() })?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| AudioError::Unsupported {
            path: p(),
            reason: e.to_string(),
        })?;

    let mut mono: Vec<f32> = Vec::new();
    let mut stereo: Vec<[f32; 2]> = Vec::new();
    let mut rate: Option<u32> = params.sample_rate;
    let mut channels = 0usize;
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut decode_errors = 0usize;
    let mut last_decode_error = String::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A truncated file ends early; keep what was decoded.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(SymphoniaError::IoError(source)) => {
                return Err(AudioError::Io { path: p(), source });
            }
            Err(e) => {
                if mono.is_empty() {
                    return Err(AudioError::Corrupt {
                        path: p(),
                        reason: e.to_string(),
                    });
                }
                // Damage after good audio: keep the good part.
                break;
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            Err(SymphoniaError::DecodeError(msg)) => {
                // Skippable damage in one packet.
                decode_errors += 1;
                last_decode_error = msg.to_string();
                continue;
            }
            Err(e) => {
                return Err(AudioError::Corrupt {
                    path: p(),
                    reason: e.to_string(),
                });
            }
        };
        let buf_rate = buf.spec().rate();
        match rate {
            None | Some(0) => rate = Some(buf_rate),
            Some(r) if r != buf_rate && buf_rate != 0 => {
                return Err(AudioError::Corrupt {
                    path: p(),
                    reason: format!("sample rate changes from {r} Hz to {buf_rate} Hz mid-stream"),
                });
            }
            _ => {}
        }
        if channels == 0 {
            channels = buf.num_planes();
        }
        buf.copy_to_vecs_planar::<f32>(&mut planes);
        let n = buf.frames();
        let count = buf.num_planes().max(1);
        let scale = 1.0 / count as f32;
        if options.keep_source {
            stereo.extend((0..n).map(|i| stereo_frame(&planes, count, i)));
        }
        mono.extend((0..n).map(|i| {
            planes
                .iter()
                .take(count)
                .map(|plane| plane.get(i).copied().unwrap_or(0.0))
                .sum::<f32>()
                * scale
        }));
        let r = rate.unwrap_or(0).max(1) as f32;
        let seconds = mono.len() as f32 / r;
        if seconds > options.max_seconds {
            return Err(AudioError::TooLong {
                path: p(),
                seconds,
                limit_seconds: options.max_seconds,
            });
        }
    }
    if mono.is_empty() {
        if decode_errors > 0 {
            return Err(AudioError::Corrupt {
                path: p(),
                reason: format!(
                    "{decode_errors} packets failed to decode, last: {last_decode_error}"
                ),
            });
        }
        return Err(AudioError::Empty { path: p() });
    }
    let sanitized = sanitize(&mut mono);
    let source_rate = rate.unwrap_or(0);
    let source = options.keep_source.then(|| {
        for f in &mut stereo {
            sanitize(f);
        }
        SourceAudio {
            sample_rate: source_rate,
            channels,
            frames: stereo,
        }
    });
    let samples = resample_to_16k(&mono, source_rate)
        .map_err(|reason| AudioError::Resample { path: p(), reason })?;
    if samples.is_empty() {
        return Err(AudioError::Empty { path: p() });
    }
    Ok(DecodedAudio {
        samples,
        source_rate,
        source_channels: channels,
        sanitized,
        source,
    })
}

/// Frame `i` of the decoded planes as stereo: mono on both sides, the first two channels
/// of a stereo file, and for more channels the even ones left and the odd ones right.
fn stereo_frame(planes: &[Vec<f32>], count: usize, i: usize) -> [f32; 2] {
    let at = |c: usize| planes.get(c).and_then(|p| p.get(i)).copied().unwrap_or(0.0);
    match count {
        0 | 1 => [at(0), at(0)],
        2 => [at(0), at(1)],
        n => {
            let side = |first: usize| {
                let idx: Vec<usize> = (first..n).step_by(2).collect();
                idx.iter().map(|&c| at(c)).sum::<f32>() / idx.len().max(1) as f32
            };
            [side(0), side(1)]
        }
    }
}

/// Replaces NaN by 0 and ±inf by ±1; returns how many samples were replaced.
pub fn sanitize(samples: &mut [f32]) -> usize {
    let mut replaced = 0;
    for s in samples.iter_mut() {
        if !s.is_finite() {
            replaced += 1;
            *s = if s.is_nan() { 0.0 } else { s.signum() };
        }
    }
    replaced
}
