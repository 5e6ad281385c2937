//! Mel front end against the PyTorch/librosa reference (tests/fixtures/edtalk/audio2lip_io).

use bevy_edtalk::audio::{
    MEL_BANDS, MelSpectrogram, frame_windows, num_video_frames, slaney_mel_basis,
};
use candle_core::{Device, Tensor};
use std::collections::HashMap;

fn fixture() -> HashMap<String, Tensor> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/edtalk/audio2lip_io.safetensors"
    );
    candle_core::safetensors::load(path, &Device::Cpu).expect("fixture loads")
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn mel_basis_matches_librosa() {
    let io = fixture();
    let expected = flat(&io["mel_basis"]);
    let ours = slaney_mel_basis(16_000.0, 800, 80, 55.0, 7600.0);
    let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = max_abs_diff(&ours, &expected);
    assert!(diff <= 1e-5 * scale, "max diff {diff} (scale {scale})");
}

#[test]
fn mel_matches_reference() {
    let io = fixture();
    let wav = flat(&io["input.wav16k"]);
    let frames = num_video_frames(wav.len());
    let mel = MelSpectrogram::new().compute(&wav[..frames * 640]);
    let expected = flat(&io["mel"]);
    assert_eq!(mel.frames, io["mel"].dims()[0]);
    assert_eq!(mel.frames * MEL_BANDS, expected.len());
    let diff = max_abs_diff(&mel.data, &expected);
    let mean = mel
        .data
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / expected.len() as f32;
    println!("mel max abs diff {diff}, mean {mean}");
    assert!(diff < 2e-3, "max abs diff {diff}");
}

#[test]
fn windows_match_reference() {
    let io = fixture();
    let wav = flat(&io["input.wav16k"]);
    let frames = num_video_frames(wav.len());
    assert_eq!(frames, io["windows"].dims()[0]);
    // Windows built from the reference mel isolate the indexing from the STFT.
    let reference_mel = bevy_edtalk::audio::Mel {
        frames: io["mel"].dims()[0],
        data: flat(&io["mel"]),
    };
    let w = frame_windows(&reference_mel, frames);
    assert_eq!(w, flat(&io["windows"]));
}
