//! Audio2Lip against the PyTorch reference (seeded random full-size weights).

use bevy_edtalk::audio::{MelSpectrogram, frame_windows, num_video_frames};
use bevy_edtalk::model::audio2lip::{Audio2Lip, StreamSmoother, gaussian_kernel3, smooth_clip};
use candle_core::{Device, Tensor};
use std::collections::HashMap;

fn load(name: &str) -> HashMap<String, Tensor> {
    let path = format!(
        "{}/tests/fixtures/edtalk/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    candle_core::safetensors::load(path, &Device::Cpu).expect("fixture loads")
}

fn rows(t: &Tensor) -> Vec<[f32; 20]> {
    t.to_vec2::<f32>()
        .unwrap()
        .into_iter()
        .map(|r| std::array::from_fn(|i| r[i]))
        .collect()
}

fn max_rel(a: &[[f32; 20]], b: &[[f32; 20]]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b
        .iter()
        .flatten()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-6);
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

#[test]
fn kernel_is_the_demo_one() {
    let k = gaussian_kernel3();
    for (a, b) in k.iter().zip([0.27406862f32, 0.45186276, 0.27406862]) {
        assert!((a - b).abs() < 1e-7);
    }
}

#[test]
fn lip_from_reference_windows_matches() {
    let io = load("audio2lip_io.safetensors");
    let model =
        Audio2Lip::from_tensors(load("audio2lip_weights.safetensors"), &Device::Cpu).unwrap();
    let windows: Vec<f32> = io["windows"].flatten_all().unwrap().to_vec1().unwrap();
    let frames = io["windows"].dims()[0];
    let lip = model.lip_coeffs(&windows, frames, 16).unwrap();
    let expected = rows(&io["lip"]);
    let err = max_rel(&lip, &expected);
    println!("lip max error relative to max |lip|: {err}");
    assert!(err < 1e-4, "{err}");
    let smooth = smooth_clip(&lip);
    let err_s = max_rel(&smooth, &rows(&io["lip_smooth"]));
    assert!(err_s < 1e-4, "{err_s}");
    // The streaming smoother gives the same sequence.
    let mut s = StreamSmoother::<20>::default();
    let mut streamed: Vec<[f32; 20]> = lip.iter().filter_map(|f| s.push(*f)).collect();
    streamed.extend(s.finish());
    assert_eq!(streamed, smooth);
}

#[test]
fn end_to_end_from_the_waveform() {
    let io = load("audio2lip_io.safetensors");
    let model =
        Audio2Lip::from_tensors(load("audio2lip_weights.safetensors"), &Device::Cpu).unwrap();
    let wav: Vec<f32> = io["input.wav16k"].to_vec1().unwrap();
    let frames = num_video_frames(wav.len());
    let mel = MelSpectrogram::new().compute(&wav[..frames * 640]);
    let lip = smooth_clip(
        &model
            .lip_coeffs(&frame_windows(&mel, frames), frames, 64)
            .unwrap(),
    );
    let err = max_rel(&lip, &rows(&io["lip_smooth"]));
    println!("end-to-end lip_smooth max error relative to max |lip|: {err}");
    assert!(err < 2e-3, "{err}");
}

#[test]
fn missing_tensor_is_named() {
    let mut w = load("audio2lip_weights.safetensors");
    w.remove("audio_encoder.4.conv_block.1.running_var");
    let err = Audio2Lip::from_tensors(w, &Device::Cpu)
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        err.contains("audio_encoder.4.conv_block.1.running_var"),
        "{err}"
    );
    let bad = Audio2Lip::random(1, &Device::Cpu)
        .unwrap()
        .lip_coeffs(&[0.0; 10], 1, 1);
    assert!(bad.is_err());
}
