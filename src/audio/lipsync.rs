//! Signal-processing lip-sync: per 25 fps frame, semantic [`MouthControls`] from loudness
//! and spectral shape, with no checkpoint.
//!
//! Each frame looks at 1024 samples (64 ms) centred on the frame. Loudness (RMS, relative
//! to a slowly decaying peak so quiet and loud voices both open the mouth) gates
//! everything; below the gate the mouth closes. The first two formants come from an LPC
//! envelope (order 16, autocorrelation method): F1 tracks jaw opening (high for "aa", low
//! for "ee"/"oo"), F2 tracks lip spreading vs. rounding (high for "ee", low for "oo").
//! A bilabial nasal or closure ("m", "b", "p") shows as voiced energy concentrated below
//! 500 Hz with little above 1 kHz; that presses the lips and shuts the jaw. A light
//! one-pole smoother with fast attack and slower release removes jitter.
//!
//! The mapping is formant-based rather than profile-matching (as uLipSync does with MFCCs)
//! so it needs no per-voice calibration.

use super::{SAMPLE_RATE, SAMPLES_PER_FRAME};
use crate::motion::MouthControls;
use realfft::{RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// Analysis window in samples, centred on the frame centre.
pub const WINDOW: usize = 1024;
const LPC_ORDER: usize = 16;
/// Samples past the end of a frame the analysis needs.
pub const LIPSYNC_LOOKAHEAD_SAMPLES: usize = WINDOW / 2 - SAMPLES_PER_FRAME / 2;

/// Tuning of the DSP lip-sync.
#[derive(Clone, Debug)]
pub struct LipSyncSettings {
    /// RMS level (dBFS) below which a frame counts as silence.
    pub silence_db: f32,
    /// Range (dB) below the running peak over which loudness rises from 0 to 1.
    pub dynamic_range_db: f32,
    /// Per-frame smoothing factor for opening movements (1 = none).
    pub attack: f32,
    /// Per-frame smoothing factor for closing movements (1 = none).
    pub release: f32,
}

impl Default for LipSyncSettings {
    fn default() -> Self {
        Self {
            silence_db: -50.0,
            dynamic_range_db: 30.0,
            attack: 0.7,
            release: 0.5,
        }
    }
}

/// What the analysis found in one frame (before mapping to controls); for tests and tools.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FrameFeatures {
    /// RMS level in dBFS.
    pub level_db: f32,
    /// Loudness 0..1 after the gate and the running-peak normalisation.
    pub loudness: f32,
    /// First formant estimate in Hz (0 when none was found).
    pub f1: f32,
    /// Second formant estimate in Hz (0 when none was found).
    pub f2: f32,
    /// Fraction of spectral energy below 500 Hz among 0-4 kHz.
    pub low_ratio: f32,
}

/// A coarse mouth-shape class of a frame, for evaluation and debugging.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Viseme {
    /// Mouth at rest.
    Silent,
    /// Lips together ("m", "b", "p").
    Closed,
    /// Open ("aa").
    Open,
    /// Spread ("ee").
    Spread,
    /// Rounded ("oo").
    Round,
}

impl MouthControls {
    /// The coarse class of these controls.
    pub fn viseme(&self) -> Viseme {
        if self.lips_pressed > 0.5 {
            Viseme::Closed
        } else if self.jaw_open < 0.08 && self.lip_round < 0.2 {
            Viseme::Silent
        } else if self.lip_round > 0.4 && self.lip_round > self.lip_width {
            Viseme::Round
        } else if self.lip_width > 0.3 && self.jaw_open < 0.6 {
            Viseme::Spread
        } else {
            Viseme::Open
        }
    }
}

/// The DSP lip-sync analyser. Stateful (running peak and smoothing), so feed frames in
/// order; use [`LipSync::process_clip`] for a whole clip.
pub struct LipSync {
    settings: LipSyncSettings,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    peak_db: f32,
    state: MouthControls,
    last: FrameFeatures,
    buf: Vec<f32>,
    spectrum: Vec<realfft::num_complex::Complex<f32>>,
    scratch: Vec<realfft::num_complex::Complex<f32>>,
}

impl LipSync {
    /// A fresh analyser.
    pub fn new(settings: LipSyncSettings) -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(WINDOW);
        let window = (0..WINDOW)
            .map(|n| {
                (0.54 - 0.46 * (2.0 * std::f64::consts::PI * n as f64 / (WINDOW - 1) as f64).cos())
                    as f32
            })
            .collect();
        let spectrum = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        Self {
            settings,
            fft,
            window,
            peak_db: -30.0,
            state: MouthControls::default(),
            last: FrameFeatures::default(),
            buf: vec![0.0; WINDOW],
            spectrum,
            scratch,
        }
    }

    /// Mouth controls for every 25 fps frame of a 16 kHz clip (`floor(len / 640)` frames).
    pub fn process_clip(&mut self, samples: &[f32]) -> Vec<MouthControls> {
        let frames = samples.len() / SAMPLES_PER_FRAME;
        (0..frames)
            .map(|i| self.process_frame(samples, i))
            .collect()
    }

    /// Controls for frame `i` of `samples` (16 kHz mono, samples outside count as silence).
    pub fn process_frame(&mut self, samples: &[f32], i: usize) -> MouthControls {
        let features = self.analyze_frame(samples, i);
        self.last = features;
        let target = self.map(&features);
        self.smooth(target)
    }

    /// Controls for a frame given its analysis window: the 1024 samples centred on the
    /// frame centre (for streams that keep their own buffer).
    pub fn process_window(&mut self, window: &[f32]) -> MouthControls {
        let features = self.analyze_window(window);
        self.last = features;
        let target = self.map(&features);
        self.smooth(target)
    }

    /// Features of the frame processed last.
    pub fn last_features(&self) -> FrameFeatures {
        self.last
    }

    /// Analysis of frame `i` only (updates the running peak).
    pub fn analyze_frame(&mut self, samples: &[f32], i: usize) -> FrameFeatures {
        let centre = i * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME / 2;
        let start = centre as isize - (WINDOW / 2) as isize;
        let mut window = [0.0f32; WINDOW];
        for (k, w) in window.iter_mut().enumerate() {
            let idx = start + k as isize;
            if idx >= 0 {
                *w = samples.get(idx as usize).copied().unwrap_or(0.0);
            }
        }
        self.analyze_window(&window)
    }

    fn analyze_window(&mut self, samples: &[f32]) -> FrameFeatures {
        let n = samples.len().min(WINDOW);
        let clean = |v: f32| {
            if v.is_finite() {
                v.clamp(-4.0, 4.0)
            } else {
                0.0
            }
        };
        // Loudness over the central frame-length part, so neighbours leak in little.
        let lo = n.saturating_sub(SAMPLES_PER_FRAME) / 2;
        let hi = (lo + SAMPLES_PER_FRAME).min(n);
        let energy: f32 = samples[lo..hi]
            .iter()
            .map(|&v| clean(v) * clean(v))
            .sum::<f32>()
            / (hi - lo).max(1) as f32;
        let level_db = 10.0 * energy.max(1e-12).log10();
        // Running peak: jumps up, decays ~6 dB per second.
        self.peak_db = (self.peak_db - 0.25)
            .max(level_db)
            .max(self.settings.silence_db + 10.0);
        let loudness = if level_db < self.settings.silence_db {
            0.0
        } else {
            ((level_db - (self.peak_db - self.settings.dynamic_range_db))
                / self.settings.dynamic_range_db)
                .clamp(0.0, 1.0)
        };
        if loudness == 0.0 {
            return FrameFeatures {
                level_db,
                ..Default::default()
            };
        }
        // Pre-emphasis and Hamming window.
        let mut prev = 0.0f32;
        for (k, (b, w)) in self.buf.iter_mut().zip(&self.window).enumerate() {
            let v = if k < n { clean(samples[k]) } else { 0.0 };
            *b = (v - 0.97 * prev) * w;
            prev = v;
        }
        let lpc = lpc(&self.buf, LPC_ORDER);
        // Envelope 1/|A(f)| on the FFT grid.
        let mut a = vec![0.0f32; WINDOW];
        a[..lpc.len()].copy_from_slice(&lpc);
        let mut env = vec![0.0f32; WINDOW / 2 + 1];
        if self
            .fft
            .process_with_scratch(&mut a, &mut self.spectrum, &mut self.scratch)
            .is_ok()
        {
            for (e, c) in env.iter_mut().zip(&self.spectrum) {
                *e = 1.0 / c.norm().max(1e-9);
            }
        }
        let hz_per_bin = SAMPLE_RATE as f32 / WINDOW as f32;
        let peaks = envelope_peaks(&env, hz_per_bin);
        let f1 = peaks
            .iter()
            .copied()
            .find(|&f| (200.0..1100.0).contains(&f))
            .unwrap_or(0.0);
        let f2 = peaks
            .iter()
            .copied()
            .find(|&f| f > f1 + 150.0 && (600.0..3200.0).contains(&f))
            .unwrap_or(0.0);
        // Low-band share from the raw (un-emphasised) spectrum.
        for k in 0..WINDOW {
            a[k] = if k < n {
                clean(samples[k]) * self.window[k]
            } else {
                0.0
            };
        }
        let mut low_ratio = 0.0;
        if self
            .fft
            .process_with_scratch(&mut a, &mut self.spectrum, &mut self.scratch)
            .is_ok()
        {
            let bin = |hz: f32| (hz / hz_per_bin) as usize;
            let power = |r: std::ops::Range<usize>| -> f32 {
                self.spectrum[r].iter().map(|c| c.norm_sqr()).sum()
            };
            let low = power(bin(60.0)..bin(500.0));
            let all = power(bin(60.0)..bin(4000.0)).max(1e-12);
            low_ratio = low / all;
        }
        FrameFeatures {
            level_db,
            loudness,
            f1,
            f2,
            low_ratio,
        }
    }

    /// Target controls for one frame's features.
    fn map(&self, f: &FrameFeatures) -> MouthControls {
        if f.loudness <= 0.0 {
            return MouthControls::default();
        }
        let ramp = |x: f32, a: f32, b: f32| ((x - a) / (b - a)).clamp(0.0, 1.0);
        // Nasal murmur / closure: almost all energy below 500 Hz and a first resonance
        // lower than any vowel's (an "oo" has F1 near 300-350 Hz and less low-band share).
        let low_f1 = if f.f1 > 0.0 {
            1.0 - ramp(f.f1, 270.0, 340.0)
        } else {
            1.0
        };
        let pressed = ramp(f.low_ratio, 0.80, 0.92) * low_f1;
        let openness = if f.f1 > 0.0 {
            ramp(f.f1, 280.0, 750.0)
        } else {
            0.3
        };
        let front = if f.f2 > 0.0 {
            ramp(f.f2, 1000.0, 2000.0)
        } else {
            0.5
        };
        let voiced = ramp(f.loudness, 0.0, 0.3);
        let jaw_open = f.loudness.sqrt() * (0.15 + 0.85 * openness) * (1.0 - pressed);
        let lip_width = (2.0 * front - 1.0) * voiced * (1.0 - 0.5 * openness);
        let lip_round = (1.0 - front) * (1.0 - openness) * voiced * (1.0 - pressed);
        MouthControls {
            jaw_open: jaw_open.clamp(0.0, 1.0),
            lip_width: lip_width.clamp(-1.0, 1.0),
            lip_round: lip_round.clamp(0.0, 1.0),
            lips_pressed: pressed.clamp(0.0, 1.0),
        }
    }

    fn smooth(&mut self, target: MouthControls) -> MouthControls {
        let (attack, release) = (self.settings.attack, self.settings.release);
        let step = |cur: f32, tgt: f32| {
            let k = if tgt.abs() > cur.abs() {
                attack
            } else {
                release
            };
            cur + k * (tgt - cur)
        };
        let s = &mut self.state;
        s.jaw_open = step(s.jaw_open, target.jaw_open);
        s.lip_width = step(s.lip_width, target.lip_width);
        s.lip_round = step(s.lip_round, target.lip_round);
        s.lips_pressed = step(s.lips_pressed, target.lips_pressed);
        *s
    }
}

/// LPC coefficients `[1, a1, .., a_order]` by autocorrelation and Levinson-Durbin.
fn lpc(x: &[f32], order: usize) -> Vec<f32> {
    let r: Vec<f64> = (0..=order)
        .map(|lag| {
            x.iter()
                .zip(&x[lag..])
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum::<f64>()
        })
        .collect();
    let mut a = vec![0.0f64; order + 1];
    a[0] = 1.0;
    // Slight lag-0 boost keeps the recursion stable on near-silent or pure-tone input.
    let mut err = r[0] * (1.0 + 1e-6) + 1e-12;
    for i in 1..=order {
        let acc: f64 = (1..i).map(|j| a[j] * r[i - j]).sum::<f64>() + r[i];
        let k = -acc / err;
        let prev = a.clone();
        for j in 1..i {
            a[j] = prev[j] + k * prev[i - j];
        }
        a[i] = k;
        err *= 1.0 - k * k;
        if err <= 0.0 {
            break;
        }
    }
    a.into_iter().map(|v| v as f32).collect()
}

/// Frequencies (Hz) of the local maxima of an envelope, refined by parabolic interpolation.
fn envelope_peaks(env: &[f32], hz_per_bin: f32) -> Vec<f32> {
    let mut peaks = Vec::new();
    for k in 1..env.len().saturating_sub(1) {
        if env[k] > env[k - 1] && env[k] >= env[k + 1] {
            let (l, c, r) = (env[k - 1].ln(), env[k].ln(), env[k + 1].ln());
            let denom = l - 2.0 * c + r;
            let offset = if denom.abs() > 1e-12 {
                0.5 * (l - r) / denom
            } else {
                0.0
            };
            peaks.push((k as f32 + offset.clamp(-0.5, 0.5)) * hz_per_bin);
        }
    }
    peaks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lpc_finds_a_resonance() {
        // A decaying 700 Hz resonance excited by impulses every 100 samples.
        let mut x = vec![0.0f32; WINDOW];
        let (r, w) = (0.98f64, 2.0 * std::f64::consts::PI * 700.0 / 16_000.0);
        let (mut y1, mut y2) = (0.0f64, 0.0f64);
        for (n, v) in x.iter_mut().enumerate() {
            let e = if n % 100 == 0 { 1.0 } else { 0.0 };
            let y = e + 2.0 * r * w.cos() * y1 - r * r * y2;
            y2 = y1;
            y1 = y;
            *v = y as f32;
        }
        let a = lpc(&x, 4);
        let mut c = vec![0.0f32; WINDOW];
        c[..a.len()].copy_from_slice(&a);
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(WINDOW);
        let mut s = fft.make_output_vec();
        fft.process(&mut c, &mut s).unwrap();
        let env: Vec<f32> = s.iter().map(|c| 1.0 / c.norm()).collect();
        let peaks = envelope_peaks(&env, 16_000.0 / WINDOW as f32);
        assert!(peaks.iter().any(|&f| (f - 700.0).abs() < 40.0), "{peaks:?}");
    }

    #[test]
    fn silence_and_garbage_close_the_mouth() {
        let mut ls = LipSync::new(LipSyncSettings::default());
        let mut x = vec![0.0f32; 6400];
        x[100] = f32::NAN;
        x[200] = f32::INFINITY;
        for m in ls.process_clip(&x) {
            assert_eq!(m, MouthControls::default());
        }
    }
}
