//! Audio benchmarks: mel + Audio2Lip (full-size random weights) and the DSP lip-sync, as
//! real-time factors (seconds of audio processed per second of wall time) on a synthetic
//! speech-like signal.

use super::{BenchOptions, emit};
use crate::audio::{LipSync, LipSyncSettings, MelSpectrogram, frame_windows, num_video_frames};
use crate::model::audio2lip::Audio2Lip;
use std::time::Instant;

/// A deterministic vowel-like test signal: a 120 Hz pulse train through two resonances,
/// amplitude-modulated at syllable rate.
pub fn synthetic_speech(seconds: f32) -> Vec<f32> {
    let n = (seconds * 16_000.0) as usize;
    let mut out = Vec::with_capacity(n);
    let res = |f: f64, r: f64| {
        (
            2.0 * r * (2.0 * std::f64::consts::PI * f / 16_000.0).cos(),
            -r * r,
        )
    };
    let ((a1, b1), (a2, b2)) = (res(700.0, 0.97), res(1200.0, 0.96));
    let (mut y1, mut y2, mut z1, mut z2) = (0.0f64, 0.0, 0.0, 0.0);
    for i in 0..n {
        let e = if i % 133 == 0 { 1.0 } else { 0.0 };
        let y = e + a1 * y1 + b1 * y2;
        y2 = y1;
        y1 = y;
        let z = y + a2 * z1 + b2 * z2;
        z2 = z1;
        z1 = z;
        let env = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * 4.0 * i as f64 / 16_000.0).sin();
        out.push((0.02 * z * env) as f32);
    }
    out
}

/// Runs both benchmarks and prints their JSON lines.
pub fn run(options: &BenchOptions) -> Vec<serde_json::Value> {
    let seconds = if options.quick { 2.0 } else { 20.0 };
    let audio = synthetic_speech(seconds);
    let mut figures = Vec::new();

    // Mel + Audio2Lip on the candle CPU device.
    let device = candle_core::Device::Cpu;
    match Audio2Lip::random(0, &device) {
        Ok(model) => {
            let mel = MelSpectrogram::new();
            let run_once = || -> Result<usize, String> {
                let frames = num_video_frames(audio.len());
                let m = mel.compute(&audio[..frames * crate::audio::SAMPLES_PER_FRAME]);
                let w = frame_windows(&m, frames);
                model
                    .lip_coeffs(&w, frames, 64)
                    .map(|l| l.len())
                    .map_err(|e| e.to_string())
            };
            // Warm-up, then the timed run.
            let _ = run_once();
            let start = Instant::now();
            let reps = if options.quick { 1 } else { 2 };
            let mut ok = true;
            for _ in 0..reps {
                if let Err(e) = run_once() {
                    eprintln!("audio2lip bench failed: {e}");
                    ok = false;
                }
            }
            if ok {
                let wall = start.elapsed().as_secs_f64();
                figures.push(emit(serde_json::json!({
                    "bench": "audio2lip",
                    "realtime_factor": (seconds as f64 * reps as f64) / wall,
                    "threads": options.threads,
                    "audio_seconds": seconds,
                })));
            }
        }
        Err(e) => eprintln!("audio2lip bench: cannot build the model: {e}"),
    }

    // DSP lip-sync.
    let reps = if options.quick { 2 } else { 20 };
    let start = Instant::now();
    let mut frames = 0;
    for _ in 0..reps {
        frames += LipSync::new(LipSyncSettings::default())
            .process_clip(&audio)
            .len();
    }
    let wall = start.elapsed().as_secs_f64();
    figures.push(emit(serde_json::json!({
        "bench": "dsp_lipsync",
        "realtime_factor": (seconds as f64 * reps as f64) / wall,
        "frames": frames,
    })));
    figures
}
