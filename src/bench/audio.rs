//! Audio benchmarks: mel + Audio2Lip (full-size random weights) and the DSP lip-sync, as
//! real-time factors (seconds of audio processed per second of wall time) on a synthetic
//! speech-like signal.

use super::neural::set_threads;
use super::{BenchOptions, emit};
use crate::audio::{
    LipSync, LipSyncSettings, MEL_BANDS, MEL_WINDOW, MelSpectrogram, frame_windows,
    num_video_frames,
};
use crate::model::audio2lip::Audio2Lip;
use candle_core::Tensor;
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

/// Windows per Audio2Lip batch in the benchmarks: PyTorch's reference figure is for a
/// batch of 100 frames.
pub const BENCH_BATCH: usize = 100;

/// Runs both benchmarks and prints their JSON lines.
pub fn run(options: &BenchOptions) -> Vec<serde_json::Value> {
    let mut figures = audio2lip(options);
    figures.push(dsp_lipsync(options));
    figures
}

/// Mel + Audio2Lip on the candle CPU device with full-size random weights
/// (`edtalk bench --only audio2lip`): the real-time factor of the whole path, the mel's
/// share of it, and the time per block at a batch of [`BENCH_BATCH`] windows.
pub fn audio2lip(options: &BenchOptions) -> Vec<serde_json::Value> {
    if let Err(e) = set_threads(options.threads) {
        eprintln!("audio2lip bench: {e}");
        return Vec::new();
    }
    let seconds = if options.quick { 2.0 } else { 20.0 };
    let audio = synthetic_speech(seconds);
    let frames = num_video_frames(audio.len());
    let device = candle_core::Device::Cpu;
    let model = match Audio2Lip::random(0, &device) {
        Ok(model) => model,
        Err(e) => {
            eprintln!("audio2lip bench: cannot build the model: {e}");
            return Vec::new();
        }
    };
    let mel = MelSpectrogram::new();
    // Returns the seconds spent on the mel and its windows.
    let run_once = || -> Result<f64, String> {
        let start = Instant::now();
        let m = mel.compute(&audio[..frames * crate::audio::SAMPLES_PER_FRAME]);
        let w = frame_windows(&m, frames);
        let mel_s = start.elapsed().as_secs_f64();
        model
            .lip_coeffs(&w, frames, BENCH_BATCH)
            .map(|_| mel_s)
            .map_err(|e| e.to_string())
    };
    // Warm-up, then the timed runs; the best one counts (other processes share the
    // machine), and the median is printed beside it.
    let _ = run_once();
    let reps = if options.quick { 1 } else { 7 };
    let mut walls = Vec::with_capacity(reps);
    let mut mel_share = f64::NAN;
    for _ in 0..reps {
        let start = Instant::now();
        match run_once() {
            Ok(mel_s) => {
                let wall = start.elapsed().as_secs_f64();
                if walls.iter().all(|&w| wall < w) {
                    mel_share = mel_s / wall;
                }
                walls.push(wall);
            }
            Err(e) => {
                eprintln!("audio2lip bench failed: {e}");
                return Vec::new();
            }
        }
    }
    walls.sort_by(f64::total_cmp);
    let (best, median) = (walls[0], walls[walls.len() / 2]);
    let mut figures = vec![emit(serde_json::json!({
        "bench": "audio2lip",
        "realtime_factor": seconds as f64 / best,
        "median_realtime_factor": seconds as f64 / median,
        "ms_per_frame": best * 1000.0 / frames as f64,
        "mel_share": mel_share,
        "threads": rayon::current_num_threads(),
        "batch": BENCH_BATCH,
        "audio_seconds": seconds,
    }))];
    match layer_times(&model, options.quick) {
        Ok(f) => figures.push(emit(f)),
        Err(e) => eprintln!("audio2lip per-layer bench failed: {e}"),
    }
    figures
}

/// Best time of each block over a few forward passes of one batch, in ms per batch.
fn layer_times(model: &Audio2Lip, quick: bool) -> Result<serde_json::Value, String> {
    let n = MEL_BANDS * MEL_WINDOW * BENCH_BATCH;
    let data: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 997) as f32 / 125.0 - 4.0)
        .collect();
    let x = Tensor::from_vec(
        data,
        (BENCH_BATCH, 1, MEL_BANDS, MEL_WINDOW),
        model.device(),
    )
    .map_err(|e| e.to_string())?;
    let mut best: Vec<(String, f64)> = Vec::new();
    for _ in 0..if quick { 2 } else { 6 } {
        let (_, times) = model.forward_profiled(&x).map_err(|e| e.to_string())?;
        if best.is_empty() {
            best = times;
        } else {
            for (b, (_, t)) in best.iter_mut().zip(times) {
                b.1 = b.1.min(t);
            }
        }
    }
    let total: f64 = best.iter().map(|(_, t)| t).sum();
    let layers: serde_json::Map<String, serde_json::Value> = best
        .into_iter()
        .map(|(name, t)| (name, serde_json::json!((t * 1e5).round() / 100.0)))
        .collect();
    Ok(serde_json::json!({
        "bench": "audio2lip_layers",
        "batch": BENCH_BATCH,
        "threads": rayon::current_num_threads(),
        "ms_per_batch": layers,
        "total_ms": (total * 1e5).round() / 100.0,
    }))
}

/// The DSP lip-sync's real-time factor.
pub fn dsp_lipsync(options: &BenchOptions) -> serde_json::Value {
    let seconds = if options.quick { 2.0 } else { 20.0 };
    let audio = synthetic_speech(seconds);
    let reps = if options.quick { 2 } else { 20 };
    let start = Instant::now();
    let mut frames = 0;
    for _ in 0..reps {
        frames += LipSync::new(LipSyncSettings::default())
            .process_clip(&audio)
            .len();
    }
    let wall = start.elapsed().as_secs_f64();
    emit(serde_json::json!({
        "bench": "dsp_lipsync",
        "realtime_factor": (seconds as f64 * reps as f64) / wall,
        "frames": frames,
    }))
}
