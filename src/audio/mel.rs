//! The Wav2Lip / EDTalk mel spectrogram (`audio.melspectrogram` with the official
//! hparams): pre-emphasis 0.97, centred STFT (n_fft 800, hop 200, periodic Hann window of
//! 800) with reflect padding as librosa 0.8 does, magnitude, Slaney mel (80 bands,
//! 55-7600 Hz), `20 log10(max(1e-5, x)) - 20` dB, then symmetric normalisation of
//! [-100, 0] dB to [-4, 4] with clipping.

use realfft::{RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// Mel bands.
pub const MEL_BANDS: usize = 80;
/// FFT size (and window length).
pub const N_FFT: usize = 800;
/// Hop between STFT frames (12.5 ms at 16 kHz: 80 mel frames per second).
pub const HOP: usize = 200;
const N_BINS: usize = N_FFT / 2 + 1;
/// Pre-emphasis coefficient.
pub const PREEMPHASIS: f32 = 0.97;
const MIN_LEVEL_DB: f32 = -100.0;
const REF_LEVEL_DB: f32 = 20.0;
const MAX_ABS_VALUE: f32 = 4.0;
const F_MIN: f64 = 55.0;
const F_MAX: f64 = 7600.0;

/// A mel spectrogram: `frames` rows of [`MEL_BANDS`] normalised values, row-major.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mel {
    /// Number of STFT frames (rows).
    pub frames: usize,
    /// `frames * MEL_BANDS` values in [-4, 4].
    pub data: Vec<f32>,
}

impl Mel {
    /// Row `t` (80 values).
    pub fn row(&self, t: usize) -> &[f32] {
        &self.data[t * MEL_BANDS..(t + 1) * MEL_BANDS]
    }
}

/// The mel front end with its FFT plan, window and filter bank prepared once.
pub struct MelSpectrogram {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    /// `MEL_BANDS x N_BINS`, row-major, each row stored only over its non-zero span.
    filters: Vec<(usize, Vec<f32>)>,
}

impl Default for MelSpectrogram {
    fn default() -> Self {
        Self::new()
    }
}

impl MelSpectrogram {
    /// Plans the FFT and builds the window and the Slaney filter bank.
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        // scipy's periodic Hann ("fftbins=True"), what librosa's stft uses.
        let window = (0..N_FFT)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32
            })
            .collect();
        let basis = slaney_mel_basis(16_000.0, N_FFT, MEL_BANDS, F_MIN, F_MAX);
        let filters = basis
            .chunks_exact(N_BINS)
            .map(|row| {
                let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w != 0.0).map_or(first, |l| l + 1);
                (first, row[first..last].to_vec())
            })
            .collect();
        Self {
            fft,
            window,
            filters,
        }
    }

    /// One normalised mel row from `segment`, the 800 pre-emphasised (and, at the edges,
    /// reflect-padded) samples of that STFT frame. Used by streams that keep their own buffer.
    pub fn row(&self, segment: &[f32]) -> [f32; MEL_BANDS] {
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut magnitude = vec![0.0f32; N_BINS];
        let mut out = [0.0f32; MEL_BANDS];
        self.row_into(
            segment,
            &mut input,
            &mut spectrum,
            &mut scratch,
            &mut magnitude,
            &mut out,
        );
        out
    }

    fn row_into(
        &self,
        segment: &[f32],
        input: &mut [f32],
        spectrum: &mut [realfft::num_complex::Complex<f32>],
        scratch: &mut [realfft::num_complex::Complex<f32>],
        magnitude: &mut [f32],
        out: &mut [f32],
    ) {
        input.iter_mut().for_each(|v| *v = 0.0);
        for ((dst, &x), &w) in input.iter_mut().zip(segment).zip(&self.window) {
            *dst = x * w;
        }
        // Sizes come from the plan itself, so this cannot fail.
        if self
            .fft
            .process_with_scratch(input, spectrum, scratch)
            .is_err()
        {
            spectrum.iter_mut().for_each(|c| *c = Default::default());
        }
        for (m, c) in magnitude.iter_mut().zip(spectrum.iter()) {
            *m = c.norm();
        }
        for ((first, weights), o) in self.filters.iter().zip(out.iter_mut()) {
            let energy: f32 = weights
                .iter()
                .zip(&magnitude[*first..])
                .map(|(w, m)| w * m)
                .sum();
            *o = normalize_db(energy);
        }
    }

    /// Number of STFT frames for `len` samples: `1 + len / HOP` (centred), 0 for no samples.
    pub fn num_frames(len: usize) -> usize {
        if len == 0 { 0 } else { 1 + len / HOP }
    }

    /// The normalised mel spectrogram of 16 kHz samples (call it on the signal cut to whole
    /// 25 fps frames to match the official pipeline). Non-finite samples count as 0.
    pub fn compute(&self, wav: &[f32]) -> Mel {
        let frames = Self::num_frames(wav.len());
        if frames == 0 {
            return Mel::default();
        }
        // Pre-emphasis y[n] = x[n] - 0.97 x[n-1], with x[-1] = 0 (lfilter's zero state).
        let clean = |v: f32| if v.is_finite() { v } else { 0.0 };
        let mut y = Vec::with_capacity(wav.len());
        let mut prev = 0.0f32;
        for &v in wav {
            let v = clean(v);
            y.push(v - PREEMPHASIS * prev);
            prev = v;
        }
        // Centre with reflect padding (numpy 'reflect': the edge sample is not repeated).
        let pad = N_FFT / 2;
        let n = y.len() as isize;
        let padded: Vec<f32> = (-(pad as isize)..n + pad as isize)
            .map(|i| y[reflect_index(i, n)])
            .collect();

        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut magnitude = vec![0.0f32; N_BINS];
        let mut data = vec![0.0f32; frames * MEL_BANDS];
        for (t, out) in data.chunks_exact_mut(MEL_BANDS).enumerate() {
            let start = t * HOP;
            self.row_into(
                &padded[start..start + N_FFT],
                &mut input,
                &mut spectrum,
                &mut scratch,
                &mut magnitude,
                out,
            );
        }
        Mel { frames, data }
    }
}

/// dB with the official floor and reference level, then symmetric [-4, 4] scaling.
fn normalize_db(amplitude: f32) -> f32 {
    let db = 20.0 * amplitude.max(1e-5).log10() - REF_LEVEL_DB;
    let scaled = 2.0 * MAX_ABS_VALUE * ((db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS_VALUE;
    scaled.clamp(-MAX_ABS_VALUE, MAX_ABS_VALUE)
}

/// numpy 'reflect' padding index for position `i` of a signal of length `n`, bouncing as
/// often as needed (only relevant for signals shorter than the pad).
pub(crate) fn reflect_index(i: isize, n: isize) -> usize {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - m }) as usize
}

fn hz_to_mel(hz: f64) -> f64 {
    // Slaney: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// The Slaney-style mel filter bank (librosa's `filters.mel` with `htk=False`,
/// `norm='slaney'`): `n_mels x (n_fft/2 + 1)` triangles, row-major, area-normalised.
pub fn slaney_mel_basis(sr: f64, n_fft: usize, n_mels: usize, fmin: f64, fmax: f64) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..n_bins)
        .map(|k| k as f64 * (sr / 2.0) / (n_bins - 1).max(1) as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(fmin), hz_to_mel(fmax));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut basis = vec![0.0f32; n_mels * n_bins];
    for m in 0..n_mels {
        let (left, centre, right) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let enorm = 2.0 / (right - left);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - left) / (centre - left);
            let upper = (right - f) / (right - centre);
            let w = lower.min(upper).max(0.0);
            basis[m * n_bins + k] = (w * enorm) as f32;
        }
    }
    basis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy() {
        // np.pad([0,1,2,3], 3, 'reflect') = [3,2,1,0,1,2,3,2,1,0]
        let idx: Vec<usize> = (-3..7).map(|i| reflect_index(i, 4)).collect();
        assert_eq!(idx, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn slaney_scale_round_trips() {
        for hz in [0.0, 55.0, 999.0, 1000.0, 4000.0, 7600.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6);
        }
    }

    #[test]
    fn silence_is_the_floor() {
        let mel = MelSpectrogram::new().compute(&[0.0; 640]);
        assert_eq!(mel.frames, 4);
        assert!(mel.data.iter().all(|&v| v == -4.0));
    }
}
