//! Streaming input: interleaved chunks at any rate and channel count in, 16 kHz mono out,
//! for live or generated speech. Downmix first, then rubato's FFT resampler chunk by chunk;
//! its start-up delay is dropped so output sample `n` lines up with input time `n / 16000`.

use super::SAMPLE_RATE;
use super::decode::sanitize;
use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler};

/// Errors of an [`AudioStream`].
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The stream was configured with an unusable format.
    #[error("audio stream: unusable format {rate} Hz, {channels} channels: {reason}")]
    Format {
        /// Sample rate given.
        rate: u32,
        /// Channels given.
        channels: usize,
        /// Why it is unusable.
        reason: String,
    },
    /// rubato failed on a chunk.
    #[error("audio stream: resampling failed at input sample {at}: {reason}")]
    Resample {
        /// Input frames consumed before the failure.
        at: usize,
        /// rubato's message.
        reason: String,
    },
}

const CHUNK: usize = 1024;

/// Converts pushed interleaved audio to 16 kHz mono incrementally.
pub struct AudioStream {
    rate: u32,
    channels: usize,
    resampler: Option<Fft<f32>>,
    pending: Vec<f32>,
    to_skip: usize,
    consumed: usize,
    out: Vec<f32>,
    taken: usize,
    produced_expected: f64,
    finished: bool,
}

impl AudioStream {
    /// A stream of interleaved `channels`-channel audio at `rate` Hz.
    pub fn new(rate: u32, channels: usize) -> Result<Self, StreamError> {
        let err = |reason: &str| StreamError::Format {
            rate,
            channels,
            reason: reason.into(),
        };
        if rate == 0 {
            return Err(err("sample rate must be positive"));
        }
        if channels == 0 {
            return Err(err("at least one channel is needed"));
        }
        let resampler = if rate == SAMPLE_RATE {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    rate as usize,
                    SAMPLE_RATE as usize,
                    CHUNK,
                    1,
                    FixedSync::Input,
                )
                .map_err(|e| err(&e.to_string()))?,
            )
        };
        let to_skip = resampler.as_ref().map_or(0, |r| r.output_delay());
        Ok(Self {
            rate,
            channels,
            resampler,
            pending: Vec::new(),
            to_skip,
            consumed: 0,
            out: Vec::new(),
            taken: 0,
            produced_expected: 0.0,
            finished: false,
        })
    }

    /// Pushes interleaved samples (a trailing partial frame is dropped; non-finite samples
    /// are replaced). Ignored after [`AudioStream::finish`].
    pub fn push(&mut self, interleaved: &[f32]) -> Result<(), StreamError> {
        if self.finished {
            return Ok(());
        }
        let mut mono = super::resample::downmix_to_mono(interleaved, self.channels);
        sanitize(&mut mono);
        self.produced_expected += mono.len() as f64 * SAMPLE_RATE as f64 / self.rate as f64;
        if self.resampler.is_none() {
            self.out.extend_from_slice(&mono);
            return Ok(());
        }
        self.pending.extend_from_slice(&mono);
        self.run(false)
    }

    /// Flushes the resampler: no more input will come.
    pub fn finish(&mut self) -> Result<(), StreamError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if self.resampler.is_some() {
            self.run(true)?;
            // Keep exactly the expected length: drop the resampler's tail padding.
            let expected = self.produced_expected.round() as usize;
            let total = self.total_out();
            if total > expected {
                let extra = (total - expected).min(self.out.len());
                self.out.truncate(self.out.len() - extra);
            }
        }
        Ok(())
    }

    /// Whether [`AudioStream::finish`] was called.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Takes the 16 kHz mono samples produced since the last call.
    pub fn take(&mut self) -> Vec<f32> {
        self.taken += self.out.len();
        std::mem::take(&mut self.out)
    }

    fn total_out(&self) -> usize {
        self.taken + self.out.len()
    }

    fn run(&mut self, flush: bool) -> Result<(), StreamError> {
        let Some(resampler) = self.resampler.as_mut() else {
            return Ok(());
        };
        let mut out_buf = vec![vec![0.0f32; resampler.output_frames_max()]; 1];
        loop {
            let need = resampler.input_frames_next();
            if self.pending.len() < need {
                // Flushing: feed zeros until everything expected (plus the delay) came out.
                if !flush || (self.taken + self.out.len()) as f64 >= self.produced_expected {
                    break;
                }
                self.pending.resize(need, 0.0);
            }
            let input = [self.pending[..need].to_vec()];
            let adapter =
                SequentialSliceOfVecs::new(&input, 1, need).map_err(|e| StreamError::Resample {
                    at: self.consumed,
                    reason: e.to_string(),
                })?;
            let frames_max = out_buf[0].len();
            let mut out_adapter = SequentialSliceOfVecs::new_mut(&mut out_buf, 1, frames_max)
                .map_err(|e| StreamError::Resample {
                    at: self.consumed,
                    reason: e.to_string(),
                })?;
            let (n_in, n_out) = resampler
                .process_into_buffer(&adapter, &mut out_adapter, None)
                .map_err(|e| StreamError::Resample {
                    at: self.consumed,
                    reason: e.to_string(),
                })?;
            self.pending.drain(..n_in.min(self.pending.len()));
            self.consumed += n_in;
            let produced = &out_buf[0][..n_out];
            let skip = self.to_skip.min(produced.len());
            self.to_skip -= skip;
            self.out.extend_from_slice(&produced[skip..]);
        }
        Ok(())
    }
}
